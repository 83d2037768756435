//! Raw framing: the bare SMP frame on the line, IO-free.
//!
//! ```text
//! frame = header (8 B, its length field L) | payload (L B)
//! ```
//!
//! Nothing marks where a frame starts or ends but the header's length field, so the line
//! carries nothing else (no logs, no shell). This is Zephyr's raw UART transport
//! (`CONFIG_MCUMGR_TRANSPORT_RAW_UART`) and MCUboot's `BOOT_SERIAL_RAW_PROTOCOL`; the
//! reference is `smpclient` 7.3.0 `smpclient/transport/serial/unencoded.py`
//! (`SMPSerialRawTransport` without framing), which writes the frame as it is.

use smp_transport::FramePool;
use smp_transport::header::{Header, MAX_FRAME_SIZE, SIZE};

use crate::error::FrameError;

/// Whole SMP frames out of a raw byte stream, without IO.
///
/// Feed it bytes with [`push`](Self::push), then call [`next_frame`](Self::next_frame)
/// until it returns `None`. A header that does not decode, or that announces a frame
/// larger than `max_frame` (the device's buffer: a damaged length field would otherwise
/// swallow the frames behind it, as the reference also refuses it), costs every byte
/// held at that moment, reported as one error: with no delimiter to look for, the next
/// chunk of bytes that arrives is taken as the start of a frame. Bytes after a frame are
/// kept as the start of the next one (the reference drops them).
///
/// ```
/// use smp_serial::raw::RawDeframer;
///
/// let mut deframer = RawDeframer::new(384);
/// deframer.push(b"\x0b\x00\x00\x07\x00\x00\x01\x00\xbf\x61\x72\x62hi");
/// assert_eq!(deframer.next_frame(), None);
/// deframer.push(b"\xff");
/// let frame = deframer.next_frame().unwrap().unwrap();
/// assert_eq!(frame, b"\x0b\x00\x00\x07\x00\x00\x01\x00\xbf\x61\x72\x62hi\xff");
/// ```
#[derive(Debug)]
pub struct RawDeframer {
    input: Vec<u8>,
    pos: usize,
    max_frame: usize,
}

impl RawDeframer {
    /// An empty deframer taking frames of at most `max_frame` bytes (header included;
    /// capped at the largest frame a header can announce).
    pub fn new(max_frame: usize) -> Self {
        Self {
            input: Vec::new(),
            pos: 0,
            max_frame: max_frame.min(MAX_FRAME_SIZE),
        }
    }

    /// The largest frame taken.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Takes frames of at most `max_frame` bytes from now on.
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.max_frame = max_frame.min(MAX_FRAME_SIZE);
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.input.drain(..self.pos);
        self.pos = 0;
        self.input.extend_from_slice(bytes);
    }

    /// The next whole frame, or the error that cost the bytes held; `None` until more
    /// bytes arrive.
    pub fn next_frame(&mut self) -> Option<Result<Vec<u8>, FrameError>> {
        self.next_frame_pooled(&FramePool::new(0))
    }

    /// [`next_frame`](Self::next_frame), with the frame in a buffer from `pool`.
    pub fn next_frame_pooled(&mut self, pool: &FramePool) -> Option<Result<Vec<u8>, FrameError>> {
        let held = &self.input[self.pos..];
        if held.len() < SIZE {
            return None;
        }
        let len = match Header::decode(held) {
            Ok(header) => header.frame_len(),
            Err(source) => {
                let dropped = self.drop_held();
                return Some(Err(FrameError::BadHeader { dropped, source }));
            }
        };
        if len > self.max_frame {
            self.drop_held();
            return Some(Err(FrameError::TooLong {
                len,
                max: self.max_frame,
            }));
        }
        let frame = held.get(..len)?;
        let frame = pool.copy_of(frame);
        self.pos += len;
        Some(Ok(frame))
    }

    /// Bytes held for a frame not yet complete.
    pub fn pending(&self) -> usize {
        self.input.len() - self.pos
    }

    /// Drops everything held.
    pub fn reset(&mut self) {
        self.drop_held();
    }

    fn drop_held(&mut self) -> usize {
        let dropped = self.pending();
        self.input.clear();
        self.pos = 0;
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smp_transport::header::HeaderError;

    /// `{"r": "hi"}` answering an echo, as Zephyr encodes it (PROTOCOL.md section 1).
    const REPLY: [u8; 15] = [
        0x0b, 0x00, 0x00, 0x07, 0x00, 0x00, 0x01,
        0x00, // v2 WRITE_RSP, len 7, OS, seq 1, echo
        0xbf, 0x61, 0x72, 0x62, 0x68, 0x69, 0xff, // {_ "r": "hi"}
    ];

    #[test]
    fn frames_in_any_chunks() {
        let stream: Vec<u8> = [REPLY, REPLY].concat();
        for chunk in [1, 2, 7, 8, 9, 15, 16, 30] {
            let mut d = RawDeframer::new(384);
            let mut frames = Vec::new();
            for piece in stream.chunks(chunk) {
                d.push(piece);
                while let Some(frame) = d.next_frame() {
                    frames.push(frame.unwrap());
                }
            }
            assert_eq!(
                frames,
                [REPLY.to_vec(), REPLY.to_vec()],
                "chunks of {chunk}"
            );
            assert_eq!(d.pending(), 0);
        }
    }

    #[test]
    fn header_only_frame() {
        let mut d = RawDeframer::new(384);
        d.push(&[0x09, 0, 0, 0, 0, 0, 0, 6]);
        assert_eq!(d.next_frame(), Some(Ok(vec![0x09, 0, 0, 0, 0, 0, 0, 6])));
    }

    #[test]
    fn a_bad_header_drops_what_is_held_then_frames_flow_again() {
        let mut d = RawDeframer::new(384);
        let mut garbage = vec![0x0f, 0, 0, 0, 0, 0, 0, 0]; // op 7: reserved
        garbage.extend(&REPLY[..4]);
        d.push(&garbage);
        assert_eq!(
            d.next_frame(),
            Some(Err(FrameError::BadHeader {
                dropped: 12,
                source: HeaderError::ReservedOp { value: 7 }
            }))
        );
        assert_eq!(d.pending(), 0);
        d.push(&REPLY);
        assert_eq!(d.next_frame(), Some(Ok(REPLY.to_vec())));
    }

    #[test]
    fn a_frame_larger_than_the_device_buffer_is_refused() {
        let mut d = RawDeframer::new(64);
        // Announces 0x1234 + 8 bytes.
        d.push(&[0x0b, 0, 0x12, 0x34, 0, 0, 0, 0, 1, 2, 3]);
        assert_eq!(
            d.next_frame(),
            Some(Err(FrameError::TooLong {
                len: 0x123c,
                max: 64
            }))
        );
        assert_eq!(d.pending(), 0);
        d.push(&REPLY);
        assert_eq!(d.next_frame(), Some(Ok(REPLY.to_vec())));
        // The bound never exceeds what a header can announce.
        assert_eq!(RawDeframer::new(usize::MAX).max_frame(), MAX_FRAME_SIZE);
    }

    #[test]
    fn reset_forgets_a_partial_frame() {
        let mut d = RawDeframer::new(384);
        d.push(&REPLY[..10]);
        assert_eq!(d.next_frame(), None);
        d.reset();
        d.push(&REPLY);
        assert_eq!(d.next_frame(), Some(Ok(REPLY.to_vec())));
    }
}
