//! One entry point over the three framings.

use smp_transport::FramePool;
use smp_transport::header::MAX_FRAME_SIZE;

use crate::cobs::{self, CobsDeframer};
use crate::console::{self, ConsoleDeframer, LineLength};
use crate::error::FrameError;
use crate::options::Framing;
use crate::raw::RawDeframer;

/// Encodes one SMP frame for the wire in `framing`; `line_length` matters to console
/// framing only.
///
/// Fails with [`FrameError::TooLong`] for a frame larger than the framing can carry
/// ([`console::MAX_FRAME`], or the largest frame a header can announce).
///
/// ```
/// use smp_serial::{encode, Framing};
/// use smp_serial::console::LineLength;
///
/// let params = [0x08, 0, 0, 1, 0, 0, 0, 6, 0xa0];
/// assert_eq!(encode(Framing::Raw, &params, LineLength::default()).unwrap(), params);
/// assert_eq!(
///     encode(Framing::Console, &params, LineLength::default()).unwrap(),
///     b"\x06\x09AAsIAAABAAAABqBzEw==\n"
/// );
/// ```
pub fn encode(
    framing: Framing,
    frame: &[u8],
    line_length: LineLength,
) -> Result<Vec<u8>, FrameError> {
    let too_long = || FrameError::TooLong {
        len: frame.len(),
        max: MAX_FRAME_SIZE,
    };
    match framing {
        Framing::Console => console::encode(frame, line_length),
        Framing::Raw if frame.len() > MAX_FRAME_SIZE => Err(too_long()),
        Framing::Raw => Ok(frame.to_vec()),
        Framing::RawCobs if frame.len() > MAX_FRAME_SIZE => Err(too_long()),
        Framing::RawCobs => Ok(cobs::encode(frame)),
    }
}

/// The deframer of any [`Framing`]: whole SMP frames out of a byte stream, without IO.
///
/// Push bytes as they arrive, then take frames until [`next_frame`](Self::next_frame)
/// returns `None`. See [`ConsoleDeframer`], [`RawDeframer`] and [`CobsDeframer`] for what
/// each framing skips, refuses and keeps.
///
/// ```
/// use smp_serial::{Deframer, Framing};
///
/// let mut deframer = Deframer::new(Framing::Console, 384);
/// deframer.push(b"\x06\x09ABELAAAH");
/// assert!(deframer.next_frame().is_none());
/// deframer.push(b"AAABAL9hcmJoaf81Gg==\n");
/// let frame = deframer.next_frame().unwrap().unwrap();
/// assert_eq!(frame, b"\x0b\x00\x00\x07\x00\x00\x01\x00\xbf\x61\x72\x62hi\xff");
/// ```
#[derive(Debug)]
pub struct Deframer(Inner);

#[derive(Debug)]
enum Inner {
    Console(ConsoleDeframer),
    Raw(RawDeframer),
    Cobs(CobsDeframer),
}

impl Deframer {
    /// A deframer for `framing`. `max_frame` bounds raw frames (see [`RawDeframer`]);
    /// the others are self-delimiting and bounded by the largest frame they can carry.
    pub fn new(framing: Framing, max_frame: usize) -> Self {
        Self(match framing {
            Framing::Console => Inner::Console(ConsoleDeframer::new()),
            Framing::Raw => Inner::Raw(RawDeframer::new(max_frame)),
            Framing::RawCobs => Inner::Cobs(CobsDeframer::new()),
        })
    }

    /// Changes the bound of raw frames (self-delimiting framings have their own).
    pub fn set_max_frame(&mut self, max_frame: usize) {
        if let Inner::Raw(d) = &mut self.0 {
            d.set_max_frame(max_frame);
        }
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        match &mut self.0 {
            Inner::Console(d) => d.push(bytes),
            Inner::Raw(d) => d.push(bytes),
            Inner::Cobs(d) => d.push(bytes),
        }
    }

    /// The next whole SMP frame, or the error that cost a frame; `None` until more bytes
    /// arrive.
    pub fn next_frame(&mut self) -> Option<Result<Vec<u8>, FrameError>> {
        self.next_frame_pooled(&FramePool::new(0))
    }

    /// [`next_frame`](Self::next_frame), with the frame in a buffer from `pool`.
    pub fn next_frame_pooled(&mut self, pool: &FramePool) -> Option<Result<Vec<u8>, FrameError>> {
        match &mut self.0 {
            Inner::Console(d) => d.next_frame_pooled(pool),
            Inner::Raw(d) => d.next_frame_pooled(pool),
            Inner::Cobs(d) => d.next_frame_pooled(pool),
        }
    }

    /// Bytes held for frames not yet complete.
    pub fn pending(&self) -> usize {
        match &self.0 {
            Inner::Console(d) => d.pending(),
            Inner::Raw(d) => d.pending(),
            Inner::Cobs(d) => d.pending(),
        }
    }

    /// Drops everything held.
    pub fn reset(&mut self) {
        match &mut self.0 {
            Inner::Console(d) => d.reset(),
            Inner::Raw(d) => d.reset(),
            Inner::Cobs(d) => d.reset(),
        }
    }
}
