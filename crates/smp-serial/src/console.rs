//! Console framing: Zephyr's "SMP over console/UART", IO-free.
//!
//! ```text
//! packet  = length (u16, big-endian: SMP frame + CRC) | SMP frame | CRC16 (big-endian)
//! text    = base64(packet)
//! line 1  = 06 09 | text[0..n]        | 0a
//! line k  = 04 14 | text[n(k-1)..n k] | 0a        n = (line_length - 4) / 4 * 4
//! ```
//!
//! The CRC is [`crc16`] (CRC-16/XMODEM) of the SMP frame alone. Each line
//! carries a multiple of 4 base64 characters, so it decodes by itself, and is at most
//! `line_length - 1` bytes long (a device's line buffer of `line_length` bytes also holds
//! a terminating NUL). Between frames, and between the lines of a frame, the device may
//! print anything else (logs, a shell prompt): [`ConsoleDeframer`] skips it.
//!
//! Numbers checked against the reference, `smp` 4.2.0 `smp/packet.py` (`encode`,
//! `decode`) and `smpclient` 7.3.0 `smpclient/transport/serial/encoded.py`, and against
//! Zephyr's `subsys/mgmt/mcumgr/transport/src/serial_util.c`; the encoder's output is
//! compared with the reference's own in this crate's tests (`scripts/gen_serial_vectors.py`).

use smp_transport::FramePool;

use crate::base64;
use crate::crc::crc16;
use crate::error::{FrameError, OptionsError};

/// First two bytes of a frame's first line.
pub const START: [u8; 2] = [0x06, 0x09];
/// First two bytes of each later line of a frame.
pub const CONTINUATION: [u8; 2] = [0x04, 0x14];
/// Last byte of every line.
pub const END: u8 = b'\n';
/// Bytes of the delimiter at the start of each line.
pub const DELIMITER_SIZE: usize = 2;
/// Bytes of the length field at the start of a packet.
pub const LENGTH_SIZE: usize = 2;
/// Bytes of the CRC at the end of a packet.
pub const CRC_SIZE: usize = 2;
/// Bytes a packet adds to the SMP frame (length field and CRC); they share the device's
/// buffer with the frame.
pub const OVERHEAD: usize = LENGTH_SIZE + CRC_SIZE;
/// The line length devices take by convention (Zephyr's `MCUMGR_SERIAL_MAX_FRAME`).
pub const DEFAULT_LINE_LENGTH: usize = 128;
/// A line length leaves this many bytes for base64 characters, rounded down to a multiple
/// of 4: the delimiter and the newline, and one more byte, as the reference subtracts 4
/// (the device's line buffer also holds a terminating NUL).
pub const LINE_LENGTH_SUBTRACTOR: usize = 4;
/// Base64 characters per group: lines carry whole groups.
const GROUP: usize = 4;
/// The shortest line length that carries a base64 group.
pub const MIN_LINE_LENGTH: usize = LINE_LENGTH_SUBTRACTOR + GROUP;
/// The largest SMP frame a packet can carry: its length field (u16) counts the CRC too.
pub const MAX_FRAME: usize = u16::MAX as usize - CRC_SIZE;
/// The longest line the deframer takes: the whole of the largest packet on one line.
pub const MAX_LINE: usize = base64::encoded_len(LENGTH_SIZE + u16::MAX as usize);

/// What the reference budgets for the base64 of one line's length field and CRC when it
/// sizes messages by line buffers: `ceil(4/3 × 4) + 2` (`_base64_cost(4)`).
const REFERENCE_OVERHEAD_COST: usize = 8;

/// A console line length that carries data: at least [`MIN_LINE_LENGTH`] bytes.
///
/// ```
/// use smp_serial::console::LineLength;
///
/// assert_eq!(LineLength::default().get(), 128);
/// assert_eq!(LineLength::default().chars(), 124);
/// assert_eq!(LineLength::new(127).unwrap().chars(), 120);
/// assert!(LineLength::new(7).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LineLength(usize);

impl LineLength {
    /// A line length, checked.
    pub const fn new(line_length: usize) -> Result<Self, OptionsError> {
        if line_length < MIN_LINE_LENGTH {
            return Err(OptionsError::LineTooShort {
                line_length,
                min: MIN_LINE_LENGTH,
            });
        }
        Ok(Self(line_length))
    }

    /// The line length in bytes.
    pub const fn get(self) -> usize {
        self.0
    }

    /// Base64 characters each line carries: `(line_length - 4) / 4 * 4`.
    pub const fn chars(self) -> usize {
        (self.0 - LINE_LENGTH_SUBTRACTOR) / GROUP * GROUP
    }
}

impl Default for LineLength {
    fn default() -> Self {
        Self(DEFAULT_LINE_LENGTH)
    }
}

/// The largest SMP frame the device takes when its decoded buffer is `buf_size` bytes
/// (its MCUmgr `buf_size`): the length field and CRC share that buffer, so `buf_size - 4`.
/// The reference's `BufferSize` strategy, and its `Auto` one once it knows `buf_size`.
///
/// ```
/// assert_eq!(smp_serial::console::max_frame_for_buf_size(384), 380);
/// ```
pub const fn max_frame_for_buf_size(buf_size: usize) -> usize {
    buf_size.saturating_sub(OVERHEAD)
}

/// The largest SMP frame the reference sends when the device buffers `line_buffers` lines
/// of `line_length` bytes (its `BufferParams` strategy): of the encoded budget
/// `line_length × line_buffers`, what base64 leaves (`floor(3/4 × budget) - 2`), less
/// 10 B per line (delimiter and the length field and CRC the reference budgets per line)
/// and 1 B for the newline. 0 when nothing is left.
///
/// ```
/// use smp_serial::console::max_frame_for_line_buffers;
///
/// assert_eq!(max_frame_for_line_buffers(128, 1), 83);
/// assert_eq!(max_frame_for_line_buffers(128, 2), 169);
/// assert_eq!(max_frame_for_line_buffers(512, 4), 1493);
/// ```
pub const fn max_frame_for_line_buffers(line_length: usize, line_buffers: usize) -> usize {
    let budget = line_length.saturating_mul(line_buffers);
    if budget < GROUP {
        return 0;
    }
    // floor(3/4 × budget), without overflowing.
    let decodable = (budget - budget.div_ceil(4)).saturating_sub(2);
    let framing = (REFERENCE_OVERHEAD_COST + DELIMITER_SIZE)
        .saturating_mul(line_buffers)
        .saturating_add(1);
    decodable.saturating_sub(framing)
}

/// Encodes one SMP frame as console lines, back to back, each ending with `\n`.
///
/// Fails only for a frame larger than [`MAX_FRAME`] (its length field would overflow).
///
/// ```
/// use smp_serial::console::{encode, LineLength};
///
/// let echo = b"\x0a\x00\x00\x09\x00\x00\x00\x00\xa1\x61\x64\x65hello";
/// let lines = encode(echo, LineLength::default()).unwrap();
/// assert_eq!(lines, b"\x06\x09ABMKAAAJAAAAAKFhZGVoZWxsb6J/\n");
/// ```
pub fn encode(frame: &[u8], line_length: LineLength) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::new();
    encode_into(frame, line_length, &mut out)?;
    Ok(out)
}

/// [`encode`], appending to `out`. On error `out` is left as it was.
pub fn encode_into(
    frame: &[u8],
    line_length: LineLength,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let length = u16::try_from(frame.len() + CRC_SIZE).map_err(|_| FrameError::TooLong {
        len: frame.len(),
        max: MAX_FRAME,
    })?;
    let mut packet = Vec::with_capacity(frame.len() + OVERHEAD);
    packet.extend_from_slice(&length.to_be_bytes());
    packet.extend_from_slice(frame);
    packet.extend_from_slice(&crc16(frame).to_be_bytes());
    let mut text = Vec::new();
    base64::encode_into(&packet, &mut text);
    let chars = line_length.chars();
    let line_count = text.len().div_ceil(chars);
    out.reserve(text.len() + line_count * (DELIMITER_SIZE + 1));
    for (index, chunk) in text.chunks(chars).enumerate() {
        out.extend_from_slice(if index == 0 { &START } else { &CONTINUATION });
        out.extend_from_slice(chunk);
        out.push(END);
    }
    Ok(())
}

/// The lines of an encoded message, each with its newline.
pub fn lines(encoded: &[u8]) -> impl Iterator<Item = &[u8]> {
    encoded.split_inclusive(|&b| b == END)
}

/// Which delimiter a line started with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineKind {
    Start,
    Continuation,
}

impl LineKind {
    fn of(first: u8, second: u8) -> Option<Self> {
        match [first, second] {
            START => Some(Self::Start),
            CONTINUATION => Some(Self::Continuation),
            _ => None,
        }
    }
}

/// Where the scanner is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// Outside any frame line: bytes are skipped until a delimiter.
    Outside,
    /// Collecting a frame line's characters until its newline.
    InLine,
    /// Skipping the rest of a line too long to be a frame line.
    SkipLine,
}

/// What the lines received so far make of the current frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Assembly {
    /// No frame started.
    Idle,
    /// A frame started; `frame` holds its decoded bytes.
    Assembling {
        /// Bytes the length field announces: SMP frame and CRC.
        announced: usize,
    },
    /// The current frame failed; its continuation lines are skipped.
    Discarding,
}

/// What [`ConsoleDeframer::scan`] stopped at.
enum Scanned {
    /// A whole line is in `line`.
    Line,
    /// A line too long for any frame.
    TooLong(FrameError),
    /// The input is used up.
    NeedMore,
}

/// Whole SMP frames out of a console byte stream, without IO.
///
/// Feed it bytes as they arrive with [`push`](Self::push), in chunks of any size, then
/// call [`next_frame`](Self::next_frame) until it returns `None`. Each call returns one
/// whole frame (the SMP frame alone: no length field, no CRC), or one
/// [`FrameError`] for a frame that was dropped; the frame after it decodes normally.
///
/// Anything that is not a frame line is skipped: log lines, shell prompts, a line that
/// starts in the middle of other text. A delimiter (`06 09`, `04 14`) found inside a
/// frame line ends that line as cut off. Memory held is bounded by one line of at most
/// [`MAX_LINE`] characters and one packet of at most 64 KiB; a longer line is dropped.
///
/// ```
/// use smp_serial::console::ConsoleDeframer;
///
/// let mut deframer = ConsoleDeframer::new();
/// deframer.push(b"uart:~$ \x06\x09ABMKAAAJAAAAAKFhZGVoZWxsb6J/\n");
/// let frame = deframer.next_frame().unwrap().unwrap();
/// assert_eq!(frame, b"\x0a\x00\x00\x09\x00\x00\x00\x00\xa1\x61\x64\x65hello");
/// assert!(deframer.next_frame().is_none());
/// assert_eq!(deframer.skipped(), 8);
/// ```
#[derive(Debug)]
pub struct ConsoleDeframer {
    /// Bytes pushed and not yet scanned, from `pos` on.
    input: Vec<u8>,
    pos: usize,
    scan: Scan,
    /// The current line's characters (without delimiter and newline).
    line: Vec<u8>,
    line_kind: LineKind,
    /// `line` holds a whole line not yet taken.
    line_ready: bool,
    /// The whole line did not arrive: the next line's delimiter cut it off.
    line_cut: bool,
    assembly: Assembly,
    /// Decoded bytes of the current frame: length field, SMP frame, CRC.
    frame: Vec<u8>,
    /// Lines of the current frame so far.
    lines: usize,
    /// Bytes skipped outside frame lines.
    skipped: u64,
}

impl Default for ConsoleDeframer {
    fn default() -> Self {
        Self::new()
    }
}

impl ConsoleDeframer {
    /// An empty deframer, outside any frame.
    pub const fn new() -> Self {
        Self {
            input: Vec::new(),
            pos: 0,
            scan: Scan::Outside,
            line: Vec::new(),
            line_kind: LineKind::Start,
            line_ready: false,
            line_cut: false,
            assembly: Assembly::Idle,
            frame: Vec::new(),
            lines: 0,
            skipped: 0,
        }
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.input.drain(..self.pos);
        self.pos = 0;
        self.input.extend_from_slice(bytes);
    }

    /// The next whole frame, or the error that cost a frame; `None` until more bytes
    /// arrive.
    pub fn next_frame(&mut self) -> Option<Result<Vec<u8>, FrameError>> {
        self.next_frame_pooled(&FramePool::new(0))
    }

    /// [`next_frame`](Self::next_frame), with the frame in a buffer from `pool`.
    pub fn next_frame_pooled(&mut self, pool: &FramePool) -> Option<Result<Vec<u8>, FrameError>> {
        loop {
            if self.line_ready {
                if let Some(result) = self.take_line(pool) {
                    return Some(result);
                }
                continue;
            }
            match self.scan() {
                Scanned::Line => {}
                Scanned::TooLong(err) => return Some(Err(err)),
                Scanned::NeedMore => return None,
            }
        }
    }

    /// Bytes held: not yet scanned, in the current line, and decoded for the current frame.
    pub fn pending(&self) -> usize {
        self.input.len() - self.pos + self.line.len() + self.frame.len()
    }

    /// Bytes skipped so far because they were not part of a frame line.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Drops everything held, as if nothing had been received.
    pub fn reset(&mut self) {
        *self = Self {
            skipped: self.skipped,
            ..Self::new()
        };
    }

    /// Scans input until a whole line is in `line`.
    fn scan(&mut self) -> Scanned {
        loop {
            if self.scan == Scan::Outside {
                let rest = &self.input[self.pos..];
                match find_delimiter(rest) {
                    Some((at, kind)) => {
                        self.skipped += at as u64;
                        self.pos += at + DELIMITER_SIZE;
                        self.scan = Scan::InLine;
                        self.line_kind = kind;
                        self.line.clear();
                    }
                    None => {
                        // A last byte that may begin a delimiter waits for the next push.
                        let keep = usize::from(
                            rest.last()
                                .is_some_and(|&b| b == START[0] || b == CONTINUATION[0]),
                        );
                        self.skipped += (rest.len() - keep) as u64;
                        self.pos = self.input.len() - keep;
                        return Scanned::NeedMore;
                    }
                }
            }
            while let Some(&byte) = self.input.get(self.pos) {
                if byte == END {
                    self.pos += 1;
                    let was = self.scan;
                    self.scan = Scan::Outside;
                    if was == Scan::InLine {
                        self.line_ready = true;
                        self.line_cut = false;
                        return Scanned::Line;
                    }
                    break;
                }
                if byte == START[0] || byte == CONTINUATION[0] {
                    let Some(&next) = self.input.get(self.pos + 1) else {
                        return Scanned::NeedMore;
                    };
                    if LineKind::of(byte, next).is_some() {
                        // The next line begins before this one ended.
                        let was = self.scan;
                        self.scan = Scan::Outside;
                        if was == Scan::InLine {
                            self.line_ready = true;
                            self.line_cut = true;
                            return Scanned::Line;
                        }
                        break;
                    }
                }
                self.pos += 1;
                if self.scan == Scan::InLine {
                    if self.line.len() == MAX_LINE {
                        self.scan = Scan::SkipLine;
                        self.line.clear();
                        self.drop_frame();
                        return Scanned::TooLong(FrameError::TooLong {
                            len: MAX_LINE + 1,
                            max: MAX_LINE,
                        });
                    }
                    self.line.push(byte);
                }
            }
            if self.pos == self.input.len() {
                return Scanned::NeedMore;
            }
        }
    }

    /// Takes the whole line in `line` into the frame. `None` when it neither completes
    /// nor breaks a frame.
    fn take_line(&mut self, pool: &FramePool) -> Option<Result<Vec<u8>, FrameError>> {
        if self.line_kind == LineKind::Start {
            if let Assembly::Assembling { announced } = self.assembly {
                // Lines of the current frame were lost. Report it, then take this start
                // line on the next call (`line_ready` stays set).
                let received = self.frame.len() - LENGTH_SIZE;
                self.drop_frame();
                self.assembly = Assembly::Idle;
                return Some(Err(FrameError::LengthMismatch {
                    announced,
                    received,
                }));
            }
            self.line_ready = false;
            self.frame.clear();
            self.lines = 1;
            if !self.decode_line() {
                self.drop_frame();
                return Some(Err(FrameError::BadBase64 { line: 1 }));
            }
            let Some(length) = self.frame.first_chunk::<LENGTH_SIZE>() else {
                let len = self.frame.len();
                self.drop_frame();
                return Some(Err(FrameError::TooShort { len }));
            };
            let announced = usize::from(u16::from_be_bytes(*length));
            if announced < CRC_SIZE {
                self.drop_frame();
                return Some(Err(FrameError::TooShort { len: announced }));
            }
            self.assembly = Assembly::Assembling { announced };
            return self.complete(announced, pool);
        }
        self.line_ready = false;
        match self.assembly {
            Assembly::Idle | Assembly::Discarding => self.line.clear(),
            Assembly::Assembling { .. } => {}
        }
        match self.assembly {
            Assembly::Idle => {
                self.drop_frame();
                Some(Err(FrameError::MissingStart))
            }
            Assembly::Discarding => None,
            Assembly::Assembling { announced } => {
                self.lines += 1;
                if !self.decode_line() {
                    let line = self.lines;
                    self.drop_frame();
                    return Some(Err(FrameError::BadBase64 { line }));
                }
                self.complete(announced, pool)
            }
        }
    }

    /// Decodes `line` onto `frame`; false when it is not a whole base64 line.
    fn decode_line(&mut self) -> bool {
        let mut text = self.line.as_slice();
        if let [rest @ .., b'\r'] = text {
            text = rest;
        }
        let decoded = !self.line_cut && base64::decode_into(text, &mut self.frame).is_ok();
        self.line.clear();
        decoded
    }

    /// The frame, once all `announced` bytes arrived and its CRC checks.
    fn complete(
        &mut self,
        announced: usize,
        pool: &FramePool,
    ) -> Option<Result<Vec<u8>, FrameError>> {
        let received = self.frame.len() - LENGTH_SIZE;
        if received < announced {
            return None;
        }
        if received > announced {
            self.drop_frame();
            return Some(Err(FrameError::LengthMismatch {
                announced,
                received,
            }));
        }
        self.assembly = Assembly::Idle;
        let packet = &self.frame[LENGTH_SIZE..];
        let (data, crc) = packet.split_at(packet.len() - CRC_SIZE);
        let expected = u16::from_be_bytes([crc[0], crc[1]]);
        let computed = crc16(data);
        let result = if expected == computed {
            Ok(pool.copy_of(data))
        } else {
            Err(FrameError::CrcMismatch { expected, computed })
        };
        self.frame.clear();
        Some(result)
    }

    /// Drops the current frame; its remaining continuation lines will be skipped.
    fn drop_frame(&mut self) {
        self.frame.clear();
        self.assembly = Assembly::Discarding;
    }
}

/// The first delimiter in `bytes`: its offset and kind.
fn find_delimiter(bytes: &[u8]) -> Option<(usize, LineKind)> {
    bytes
        .windows(DELIMITER_SIZE)
        .enumerate()
        .find_map(|(at, pair)| LineKind::of(pair[0], pair[1]).map(|kind| (at, kind)))
}

#[cfg(test)]
mod tests;
