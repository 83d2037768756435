//! Frames to datagrams and back, without IO.

use smp_header::{Header, MAX_FRAME_SIZE, SIZE};

use crate::{FramePool, TransportError};

/// Splits `frame` into datagrams of at most `max_datagram` bytes, in order.
///
/// A frame that needs more than one datagram is logged with a warning: most servers
/// (Zephyr over UDP among them) do not reassemble frames, so callers should size frames
/// to fit one datagram. `max_datagram` must be at least 1; transports check their MTU
/// at construction so that it is.
pub fn split_frame(frame: &[u8], max_datagram: usize) -> std::slice::Chunks<'_, u8> {
    let max_datagram = max_datagram.max(1);
    if frame.len() > max_datagram {
        tracing::warn!(
            len = frame.len(),
            max_datagram,
            "splitting an SMP frame across datagrams: servers may not reassemble it"
        );
    }
    frame.chunks(max_datagram)
}

/// Rebuilds whole SMP frames from the datagrams that carry them.
///
/// The first datagram of a frame must hold the whole header; the header's `length`
/// tells how many payload bytes follow, and datagrams are concatenated until the frame
/// is complete. Errors (an invalid header, more bytes than announced) discard the
/// partial frame, so the next datagram starts a new one. A datagram that is a whole
/// frame by itself also discards a partial frame: one truncated or garbled datagram
/// must not swallow the well-formed replies that follow it. Memory held is bounded by the
/// largest frame a header can announce ([`MAX_FRAME_SIZE`]) plus one datagram.
#[derive(Debug, Default)]
pub struct Reassembler {
    buf: Vec<u8>,
    /// Whole frame size, once the first datagram's header is decoded.
    expected: Option<usize>,
}

impl Reassembler {
    /// An empty reassembler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one datagram. Returns the frame it completes, `None` while the frame is
    /// incomplete, or an error after which the partial frame is gone.
    pub fn push(&mut self, datagram: &[u8]) -> Result<Option<Vec<u8>>, TransportError> {
        self.push_pooled(datagram, &FramePool::new(0))
    }

    /// [`push`](Self::push), with a frame that is one whole datagram copied into a buffer
    /// from `pool`.
    pub fn push_pooled(
        &mut self,
        datagram: &[u8],
        pool: &FramePool,
    ) -> Result<Option<Vec<u8>>, TransportError> {
        let expected = match self.expected {
            Some(_) if is_whole_frame(datagram) => {
                tracing::debug!(
                    dropped = self.buf.len(),
                    "a whole frame arrived while a split one was incomplete; dropping the partial frame"
                );
                self.reset();
                return Ok(Some(pool.copy_of(datagram)));
            }
            Some(expected) => expected,
            None => {
                // A frame starts here: its header must be in this datagram.
                let header = Header::decode(datagram)?;
                header.frame_len()
            }
        };
        debug_assert!(expected <= MAX_FRAME_SIZE);
        let received = self.buf.len() + datagram.len();
        if received > expected {
            self.reset();
            return Err(TransportError::ExcessData { expected, received });
        }
        if received == expected && self.buf.is_empty() {
            // The common case: one datagram, one frame.
            return Ok(Some(pool.copy_of(datagram)));
        }
        self.buf.extend_from_slice(datagram);
        if received < expected {
            self.expected = Some(expected);
            tracing::trace!(
                received,
                expected,
                "waiting for the rest of a split SMP frame"
            );
            return Ok(None);
        }
        self.expected = None;
        Ok(Some(std::mem::take(&mut self.buf)))
    }

    /// Bytes held for an incomplete frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Drops any partial frame.
    pub fn reset(&mut self) {
        self.buf = Vec::new();
        self.expected = None;
    }
}

/// True when `datagram` is exactly one frame: a valid header and the payload it announces.
fn is_whole_frame(datagram: &[u8]) -> bool {
    Header::decode(datagram).is_ok_and(|header| header.frame_len() == datagram.len())
}

/// The smallest datagram payload that can carry a frame: one header.
pub(crate) const MIN_DATAGRAM: usize = SIZE;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use smp_header::{Op, group};

    /// A frame whose payload bytes (0xff: reserved op) never look like a header, so no
    /// continuation datagram can be mistaken for a whole frame.
    fn frame(payload: usize) -> Vec<u8> {
        let header = Header::new(Op::WriteRsp, group::OS, 0, payload as u16).with_sequence(7);
        let mut frame = header.encode().to_vec();
        frame.resize(frame.len() + payload, 0xff);
        frame
    }

    #[test]
    fn one_datagram_one_frame() {
        let mut r = Reassembler::new();
        let f = frame(20);
        assert_eq!(r.push(&f).unwrap(), Some(f));
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn header_only_frame() {
        let mut r = Reassembler::new();
        let f = frame(0);
        assert_eq!(r.push(&f).unwrap(), Some(f));
    }

    #[test]
    fn frame_across_datagrams() {
        let mut r = Reassembler::new();
        let f = frame(3000);
        let mut parts = split_frame(&f, 1472);
        assert_eq!(r.push(parts.next().unwrap()).unwrap(), None);
        assert_eq!(r.pending(), 1472);
        assert_eq!(r.push(parts.next().unwrap()).unwrap(), None);
        assert_eq!(r.push(parts.next().unwrap()).unwrap(), Some(f.clone()));
        assert!(parts.next().is_none());
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn more_than_announced_is_an_error_and_resets() {
        let mut r = Reassembler::new();
        let mut f = frame(10);
        f.push(0xff);
        match r.push(&f) {
            Err(TransportError::ExcessData {
                expected: 18,
                received: 19,
            }) => {}
            other => panic!("expected ExcessData, got {other:?}"),
        }
        // Excess in a continuation datagram.
        let f = frame(100);
        assert_eq!(r.push(&f[..50]).unwrap(), None);
        let mut rest = f[50..].to_vec();
        rest.extend([1, 2, 3]);
        match r.push(&rest) {
            Err(TransportError::ExcessData {
                expected: 108,
                received: 111,
            }) => {}
            other => panic!("expected ExcessData, got {other:?}"),
        }
        assert_eq!(r.pending(), 0);
        // The next datagram starts a fresh frame.
        let f = frame(4);
        assert_eq!(r.push(&f).unwrap(), Some(f));
    }

    #[test]
    fn a_whole_frame_replaces_a_stale_partial_one() {
        let mut r = Reassembler::new();
        // A header announcing 100 bytes, only 20 of which ever arrive.
        assert_eq!(r.push(&frame(100)[..20]).unwrap(), None);
        for payload in [7, 15, 3] {
            let f = frame(payload);
            assert_eq!(r.push(&f).unwrap(), Some(f));
        }
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn invalid_first_datagram() {
        let mut r = Reassembler::new();
        assert!(matches!(
            r.push(&[0x0b, 0, 0]),
            Err(TransportError::Header(_))
        ));
        assert!(matches!(
            r.push(&[0x07, 0, 0, 0, 0, 0, 0, 0]),
            Err(TransportError::Header(
                smp_header::HeaderError::ReservedOp { value: 7 }
            ))
        ));
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn split_frame_bounds() {
        let f = frame(100);
        assert_eq!(split_frame(&f, 1472).count(), 1);
        let parts: Vec<_> = split_frame(&f, 50).collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [50, 50, 8]
        );
        assert_eq!(parts.concat(), f);
        assert_eq!(split_frame(&[], 50).count(), 0);
    }

    proptest! {
        #[test]
        fn reassembly_never_yields_more_than_announced(
            length in any::<u16>(),
            datagrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..4000), 1..24)
        ) {
            // A valid header announcing `length` starts the stream, then arbitrary
            // datagrams (up to 92 KB in all, more than any frame may hold).
            let mut first = Header::new(Op::ReadRsp, group::FS, 0, length).encode().to_vec();
            first.extend(&datagrams[0]);
            let mut r = Reassembler::new();
            for d in std::iter::once(&first).chain(&datagrams[1..]) {
                if let Ok(Some(frame)) = r.push(d) {
                    let header = Header::decode(&frame).unwrap();
                    prop_assert_eq!(frame.len(), header.frame_len());
                }
                prop_assert!(r.pending() < MAX_FRAME_SIZE);
            }
        }

        #[test]
        fn split_then_reassemble_is_identity(payload in 0usize..5000, max in MIN_DATAGRAM..2000) {
            let f = frame(payload);
            let mut r = Reassembler::new();
            let mut out = None;
            for part in split_frame(&f, max) {
                prop_assert!(part.len() <= max);
                prop_assert!(out.is_none());
                out = r.push(part).unwrap();
            }
            prop_assert_eq!(out, Some(f));
        }
    }
}
