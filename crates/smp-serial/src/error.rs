//! The errors of the serial framing layer.

use smp_transport::TransportError;
use smp_transport::header::HeaderError;

/// Why received bytes did not make a frame, or why a frame cannot be framed.
///
/// A receive error costs the frame it names: the deframer drops that frame's bytes and
/// decodes the next frame normally. [`SerialTransport`](crate::SerialTransport) hands
/// these out as [`TransportError::Framing`], whose source this is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A console line is not base64 (a character outside the alphabet, a length that is
    /// not a multiple of 4, misplaced padding, or a line cut off by the next line's
    /// delimiter). Noise on the line or a baud rate mismatch does this.
    #[error(
        "line {line} of a console frame is not valid base64 (noise on the line, or a wrong baud rate?); the frame was dropped"
    )]
    BadBase64 {
        /// Which line of the frame, counting from 1.
        line: usize,
    },

    /// The CRC16 carried by a frame does not match its data: bytes were damaged or lost.
    #[error(
        "frame checksum mismatch: the frame carries CRC {expected:#06x}, its data give {computed:#06x}; the frame was dropped"
    )]
    CrcMismatch {
        /// The CRC the frame carries.
        expected: u16,
        /// The CRC of the data received.
        computed: u16,
    },

    /// A console frame's length field disagrees with the data that came with it: more
    /// data, or the frame's next start line arrived before all of it (lines were lost).
    #[error(
        "console frame length mismatch: its length field announces {announced} B (SMP frame and CRC), {received} B arrived; the frame was dropped"
    )]
    LengthMismatch {
        /// Bytes the length field announces (the SMP frame and its 2-byte CRC).
        announced: usize,
        /// Bytes that arrived for it.
        received: usize,
    },

    /// A frame announces, or grew to, more bytes than any SMP frame can take (or, for
    /// raw framing, than the device's buffer holds); or a frame to send is that large.
    #[error("a frame of {len} B exceeds the largest one allowed here ({max} B); it was dropped")]
    TooLong {
        /// Size reached, announced or asked for.
        len: usize,
        /// The largest allowed.
        max: usize,
    },

    /// A frame is too short to hold its 2-byte CRC.
    #[error("a frame of {len} B is too short to hold its 2-byte CRC; it was dropped")]
    TooShort {
        /// Bytes the frame holds (or its length field announces).
        len: usize,
    },

    /// A console continuation line arrived while no frame was started: the frame's first
    /// line was lost. Its other lines are skipped.
    #[error(
        "a console continuation line arrived with no frame started (its first line was lost); the frame was dropped"
    )]
    MissingStart,

    /// A COBS frame is not valid COBS (a code byte points past the end of the frame).
    #[error("a COBS frame of {len} B is not valid COBS; it was dropped")]
    BadCobs {
        /// Encoded bytes between the delimiters.
        len: usize,
    },

    /// A raw frame does not start with a valid SMP header: the byte stream is out of step
    /// (raw framing has no delimiter to find the next frame by), so every byte received
    /// so far was dropped.
    #[error(
        "a raw frame does not start with a valid SMP header; {dropped} B dropped to resynchronise"
    )]
    BadHeader {
        /// Bytes dropped.
        dropped: usize,
        /// What is wrong with the header.
        #[source]
        source: HeaderError,
    },
}

impl From<FrameError> for TransportError {
    fn from(err: FrameError) -> Self {
        TransportError::Framing(Box::new(err))
    }
}

/// Settings of [`SerialOptions`](crate::SerialOptions) that cannot frame an SMP message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OptionsError {
    /// A console line this short carries no base64 group.
    #[error(
        "a console line of {line_length} B carries no data (2-byte delimiter, newline and 4-character groups): use at least {min} B"
    )]
    LineTooShort {
        /// The line length asked for.
        line_length: usize,
        /// The shortest line that carries data.
        min: usize,
    },

    /// The device's buffer, as configured, leaves less room than an SMP header needs.
    #[error(
        "a device buffer of {buffer} B leaves {room} B for an SMP frame, less than the {needed} B of a header: raise the line buffers or buffer size"
    )]
    NoRoom {
        /// The encoded (line length × line buffers) or decoded (buffer size) budget.
        buffer: usize,
        /// Room left for an SMP frame (header and CBOR).
        room: usize,
        /// Size of an SMP header.
        needed: usize,
    },
}

/// Text that does not name a [`Pacing`](crate::Pacing): `auto` (or `default`), `none`
/// or `BURST:MS`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "pacing {text:?}: {reason}; expected `auto` (the default: unpaced until a loss, then 2 lines and 20 ms), `none`, or BURST:MS (lines written back to back, then a pause in milliseconds, e.g. 2:20)"
)]
pub struct ParsePacingError {
    /// The text given.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl From<OptionsError> for TransportError {
    fn from(err: OptionsError) -> Self {
        TransportError::Framing(Box::new(err))
    }
}
