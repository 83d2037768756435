//! Errors of the client: the device's own (data) and everything that went wrong on the way.
//!
//! Each error says what happened in its own message and hands the error that caused it,
//! if any, to [`source`](std::error::Error::source), never both: a report that walks the
//! chain (`anyhow`'s `{:#}`, the `smp` tool) prints every cause exactly once.

use std::convert::Infallible;
use std::fmt;
use std::time::Duration;

use smp_proto::DeviceError;
use smp_transport::header::command;
use smp_transport::{HumanDuration, TransportError};

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The transport failed (socket error, closed).
    #[error(transparent)]
    Transport(#[from] TransportError),

    /// The device answered with an error code.
    ///
    /// The code is what this error is, not what caused it, so it is part of the message
    /// and not a [`source`](std::error::Error::source).
    #[error("device refused: {0}")]
    Device(DeviceError),

    /// No reply arrived in time, after every retry.
    #[error(
        "no reply from the device to {} (sequence {sequence}) after {attempts} attempts over {}",
        CommandName(*group, *command),
        HumanDuration(*waited)
    )]
    Timeout {
        /// Group of the request.
        group: u16,
        /// Command of the request.
        command: u8,
        /// Sequence number of the last attempt.
        sequence: u8,
        /// Attempts made.
        attempts: u32,
        /// Time spent waiting in all.
        waited: Duration,
    },

    /// The device kept answering "busy" or "out of memory" for longer than the retries allow.
    #[error("device stayed busy ({last}) through {attempts} attempts")]
    Busy {
        /// The last back-pressure error.
        last: DeviceError,
        /// Attempts made.
        attempts: u32,
    },

    /// Every one of the 256 sequence numbers already waits for a reply.
    #[error("256 requests are already waiting for replies on this client")]
    TooManyInFlight,

    /// The encoded request does not fit one frame the device accepts.
    #[error(
        "request of {len} B does not fit the {max} B frame limit (transport MTU and device buffer)"
    )]
    FrameTooLarge {
        /// Encoded frame size.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// Every reply to the request was malformed (each was taken as lost and the request
    /// sent again, within the retry policy).
    #[error("malformed reply to {}", CommandName(*group, *command))]
    Decode {
        /// Group of the request.
        group: u16,
        /// Command of the request.
        command: u8,
        /// What was wrong with the last reply.
        #[source]
        source: ReplyError,
    },

    /// A request could not be encoded (a message type's own `Encode` failed).
    #[error("cannot encode the request")]
    Encode(#[source] minicbor::encode::Error<Infallible>),

    /// A transfer did not end as the device and the client agreed.
    #[error(transparent)]
    Transfer(#[from] TransferError),

    /// A firmware upgrade could not go on ([`Client::upgrade`](crate::Client::upgrade)).
    #[error(transparent)]
    Upgrade(#[from] crate::UpgradeError),

    /// The client's connection is closed.
    #[error("client is closed")]
    Closed,
}

impl From<DeviceError> for ClientError {
    fn from(err: DeviceError) -> Self {
        Self::Device(err)
    }
}

/// What was wrong with a reply that was not a device error but not the expected
/// response either.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// The payload did not decode as the response.
    #[error(transparent)]
    Cbor(#[from] minicbor::decode::Error),

    /// An echo came back with other text than was sent.
    #[error("the echo came back different ({sent} bytes sent, {received} received)")]
    EchoMismatch {
        /// Bytes of text sent.
        sent: usize,
        /// Bytes of text received.
        received: usize,
    },
}

/// A hash or checksum a device computes over a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HashAlgorithm {
    /// SHA-256.
    Sha256,
    /// IEEE 802.3 CRC32 (as zlib and Zephyr's `crc32_ieee` compute it).
    Crc32,
}

impl HashAlgorithm {
    /// The name the file system group uses (`"sha256"`, `"crc32"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Crc32 => "crc32",
        }
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a transfer (image upload, file upload or download) failed although every request
/// got an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// The first answer of a download did not give the file's length.
    #[error("the device did not say how long {name} is")]
    UnknownLength {
        /// The file.
        name: String,
    },

    /// A download answer for an offset no request asked for.
    #[error("an answer for offset {off} of {name} that was never asked for")]
    Unasked {
        /// The file.
        name: String,
        /// The offset answered.
        off: u64,
    },

    /// A download answer for another offset than its request asked for.
    #[error("asked for offset {asked} of {name}, the device sent offset {sent}")]
    WrongOffset {
        /// The file.
        name: String,
        /// The offset asked for.
        asked: u64,
        /// The offset sent.
        sent: u64,
    },

    /// The device sent more of a file than the length it gave.
    #[error("the device sent more of {name} than its length of {len} bytes")]
    BeyondLength {
        /// The file.
        name: String,
        /// The length it gave.
        len: u64,
    },

    /// The device sent an empty chunk before the end of a file.
    #[error("the device sent no data at offset {off} of {name} ({len} bytes)")]
    NoData {
        /// The file.
        name: String,
        /// Where.
        off: u64,
        /// The file's length.
        len: u64,
    },

    /// A file is longer than this machine can hold in memory.
    #[error("{name} ({len} bytes) is too large for this machine's memory")]
    TooLarge {
        /// The file.
        name: String,
        /// Its length.
        len: u64,
    },

    /// The device kept reporting an upload offset beyond everything sent (a damaged
    /// reply is ignored once; this is one that does not go away).
    #[error("the device reports offset {off}, beyond the {sent} bytes sent, again and again")]
    OffsetBeyondSent {
        /// The offset the device reported.
        off: u64,
        /// The end of everything sent.
        sent: u64,
    },

    /// The device stopped taking data: chunks sent again from its offset were not
    /// accepted, time after time.
    #[error("the device stopped accepting data at offset {off} of {len} bytes")]
    Stalled {
        /// The offset the device holds.
        off: u64,
        /// The size of the transfer.
        len: u64,
    },

    /// The device checked the uploaded image against the SHA-256 announced with the
    /// first chunk, and it did not match.
    #[error("the device reports the uploaded image does not match its SHA-256")]
    ImageMismatch,

    /// The device refused a chunk as being at the wrong offset without saying which
    /// offset it expects, and has no way to be asked.
    #[error("the device refused a chunk without saying where it stands")]
    NoOffset,

    /// The device's hash of a transferred file differs from the local data's.
    #[error(
        "the device's {algorithm} of {name} ({device_len} bytes) differs from the local data ({local_len} bytes)"
    )]
    HashMismatch {
        /// The file.
        name: String,
        /// The hash compared.
        algorithm: HashAlgorithm,
        /// The length the device hashed.
        device_len: u64,
        /// The length of the local data.
        local_len: u64,
    },
}

/// Prints an error and every cause under it, each once, separated by `: ` (as
/// `anyhow`'s `{:#}` does): `malformed reply to os echo: unexpected type array at
/// position 0: expected map`.
///
/// ```
/// use smp_client::{ErrorChain, TransportError};
///
/// let err = TransportError::Unreachable(std::io::ErrorKind::ConnectionRefused.into());
/// assert_eq!(ErrorChain(&err).to_string(), "the device is unreachable: connection refused");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'a));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(err) = cause {
            write!(f, ": {err}")?;
            cause = err.source();
        }
        Ok(())
    }
}

/// Names a request in a message: its command's name (`os params`), or its ids for a
/// group the client does not know.
pub(crate) struct CommandName(pub(crate) u16, pub(crate) u8);

impl fmt::Display for CommandName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match command::name(self.0, self.1) {
            Some(name) => f.write_str(name),
            None => write!(f, "group {} command {}", self.0, self.1),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use smp_proto::ErrorScope;
    use smp_transport::header::group;

    #[test]
    fn a_device_error_names_the_code_once() {
        let e = ClientError::from(DeviceError {
            group: group::IMAGE,
            rc: 30,
            scope: ErrorScope::Group,
            reason: None,
        });
        assert_eq!(
            e.to_string(),
            "device refused: IMG 30 INVALID_IMAGE_TOO_LARGE"
        );
        assert!(
            e.source().is_none(),
            "the code is not printed again as a cause"
        );
    }

    #[test]
    fn a_timeout_names_the_command_and_prints_seconds() {
        let timeout = |group, command, waited| ClientError::Timeout {
            group,
            command,
            sequence: 7,
            attempts: 4,
            waited,
        };
        assert_eq!(
            timeout(0, 6, Duration::from_nanos(10_360_806_069)).to_string(),
            "no reply from the device to os params (sequence 7) after 4 attempts over 10.4 s"
        );
        assert_eq!(
            timeout(64, 3, Duration::from_millis(250)).to_string(),
            "no reply from the device to group 64 command 3 (sequence 7) after 4 attempts over 250 ms"
        );
    }

    #[test]
    fn a_malformed_reply_keeps_the_decoder_error_as_its_source() {
        let cbor = minicbor::decode::<smp_proto::messages::os::EchoResponse>(b"\x80")
            .expect_err("an array is not a map");
        let e = ClientError::Decode {
            group: 0,
            command: 0,
            source: cbor.into(),
        };
        assert_eq!(e.to_string(), "malformed reply to os echo");
        let source = e.source().expect("a source");
        assert!(source.to_string().contains("expected map"), "{source}");
        assert!(source.source().is_none());
    }

    #[test]
    fn transfer_errors_carry_their_fields() {
        let e = ClientError::from(TransferError::HashMismatch {
            name: "/lfs1/a".into(),
            algorithm: HashAlgorithm::Crc32,
            device_len: 3,
            local_len: 4,
        });
        assert_eq!(
            e.to_string(),
            "the device's crc32 of /lfs1/a (3 bytes) differs from the local data (4 bytes)"
        );
        assert!(matches!(
            e,
            ClientError::Transfer(TransferError::HashMismatch {
                algorithm: HashAlgorithm::Crc32,
                ..
            })
        ));
    }
}
