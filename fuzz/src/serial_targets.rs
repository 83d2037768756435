//! The property of the `serial_deframer` fuzz target, as a plain function of the fuzzer's
//! bytes.
//!
//! Kept apart from `targets.rs`, which the workspace's `tests/fuzz_corpus.rs` compiles with
//! only `smp-client` at hand: this file needs `smp-serial` (and what it re-exports).
#![forbid(unsafe_code)]

use smp_serial::console::{self, ConsoleDeframer, LineLength};
use smp_serial::header::{Header, MAX_FRAME_SIZE};
use smp_serial::{FrameError, cobs, raw};

/// The largest frame the raw deframer is given to take.
const RAW_MAX_FRAME: usize = 2048;

/// The three deframers fed any byte stream, in chunks of any size:
/// - nothing panics;
/// - console: every frame out is exactly as long as a start line of the stream announced
///   (its length field less the CRC), never longer than a packet can carry, and every frame
///   the stream carries honestly between other bytes comes out, whole and in order, as
///   the damaged ones and the junk around them cost only themselves;
/// - raw: every frame out is exactly as long as its header announces, within the bound;
/// - COBS: every frame out is at most the largest SMP frame;
/// - and no deframer holds more than one line, one packet and one chunk.
///
/// The input: `[chunk size][line length]`, then pieces, each starting with a tag byte:
/// - `0b0nnn_nnnn`: the next `n` bytes as they are (junk, or anything else);
/// - `0b10nn_nnnn`: an honest frame of `n × 16 + next byte` bytes, console-encoded;
/// - `0b11dd_dddd`: the same (its size from the next byte), but its length field lies by
///   `d - 32` (by 1 when that is 0): it must not come out as a frame of the lie's length.
pub fn serial_deframer(data: &[u8]) {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let Some((&line, rest)) = rest.split_first() else {
        return;
    };
    let chunk = 1 + usize::from(chunk);
    let line_length =
        LineLength::new(console::MIN_LINE_LENGTH + usize::from(line)).expect("at least 8");
    let (stream, honest) = stream(rest, line_length);

    // Console.
    let announced = announced_lengths(&stream);
    let mut deframer = ConsoleDeframer::new();
    let mut frames = Vec::new();
    for piece in stream.chunks(chunk) {
        deframer.push(piece);
        while let Some(result) = deframer.next_frame() {
            match result {
                Ok(frame) => {
                    assert!(frame.len() <= console::MAX_FRAME);
                    assert!(
                        announced.contains(&(frame.len() + console::CRC_SIZE)),
                        "a {} B frame that no start line announced",
                        frame.len()
                    );
                    frames.push(frame);
                }
                Err(err) => check_error(&err),
            }
        }
        assert!(
            deframer.pending() <= console::MAX_LINE + 2 * (u16::MAX as usize) + chunk,
            "holds {} B",
            deframer.pending()
        );
    }
    let mut found = frames.iter();
    for frame in &honest {
        assert!(
            found.any(|f| f == frame),
            "an honest {} B frame did not come out (in order)",
            frame.len()
        );
    }

    // Raw.
    let mut deframer = raw::RawDeframer::new(RAW_MAX_FRAME);
    for piece in stream.chunks(chunk) {
        deframer.push(piece);
        while let Some(result) = deframer.next_frame() {
            match result {
                Ok(frame) => {
                    let header = Header::decode(&frame).expect("a raw frame has a header");
                    assert_eq!(header.frame_len(), frame.len(), "frame length != announced");
                    assert!(frame.len() <= RAW_MAX_FRAME);
                }
                Err(err) => check_error(&err),
            }
        }
        assert!(deframer.pending() < RAW_MAX_FRAME + chunk);
    }

    // COBS.
    let mut deframer = cobs::CobsDeframer::new();
    for piece in stream.chunks(chunk) {
        deframer.push(piece);
        while let Some(result) = deframer.next_frame() {
            match result {
                Ok(frame) => assert!(!frame.is_empty() && frame.len() <= MAX_FRAME_SIZE),
                Err(err) => check_error(&err),
            }
        }
        assert!(deframer.pending() <= cobs::MAX_ENCODED + chunk);
    }
}

/// Every error says something.
fn check_error(err: &FrameError) {
    assert!(!err.to_string().is_empty());
}

/// The byte stream the input describes, and the honest frames in it.
fn stream(mut rest: &[u8], line_length: LineLength) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut stream = Vec::new();
    let mut honest = Vec::new();
    while let Some((&tag, tail)) = rest.split_first() {
        rest = tail;
        let mut next = |n: usize| {
            let (taken, left) = rest.split_at(n.min(rest.len()));
            rest = left;
            taken.to_vec()
        };
        match tag >> 6 {
            0 | 1 => stream.extend(next(usize::from(tag & 0x7f))),
            2 => {
                let extra = next(1).first().copied().unwrap_or(0);
                let len = usize::from(tag & 0x3f) * 16 + usize::from(extra);
                let frame: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(tag)).collect();
                stream.extend(console::encode(&frame, line_length).expect("a small frame"));
                honest.push(frame);
            }
            _ => {
                let len = usize::from(next(1).first().copied().unwrap_or(0));
                let frame: Vec<u8> = (0..len).map(|i| (i as u8) ^ tag).collect();
                let mut lie = i32::from(tag & 0x3f) - 32;
                if lie == 0 {
                    lie = 1;
                }
                stream.extend(lying(&frame, line_length, lie));
            }
        }
    }
    (stream, honest)
}

/// `frame` console-encoded with its length field off by `lie`.
fn lying(frame: &[u8], line_length: LineLength, lie: i32) -> Vec<u8> {
    let mut wire = console::encode(frame, line_length).expect("a small frame");
    // The first 4 characters after `06 09` hold the length field and the first byte.
    let group = &wire[2..6];
    let mut bytes = [0u8; 3];
    decode_group(group, &mut bytes);
    let length = i32::from(u16::from_be_bytes([bytes[0], bytes[1]])) + lie;
    let length = u16::try_from(length.clamp(0, i32::from(u16::MAX))).unwrap_or(0);
    bytes[..2].copy_from_slice(&length.to_be_bytes());
    let padding = group.iter().filter(|&&c| c == b'=').count();
    let mut encoded = encode_group(&bytes);
    for c in encoded.iter_mut().rev().take(padding) {
        *c = b'=';
    }
    wire[2..6].copy_from_slice(&encoded);
    wire
}

/// The length fields of every start line in `stream` whose first group decodes.
fn announced_lengths(stream: &[u8]) -> Vec<usize> {
    let mut found = Vec::new();
    for (at, pair) in stream.windows(2).enumerate() {
        if pair != console::START {
            continue;
        }
        let Some(group) = stream.get(at + 2..at + 6) else {
            continue;
        };
        let mut bytes = [0u8; 3];
        if decode_group(group, &mut bytes) {
            found.push(usize::from(u16::from_be_bytes([bytes[0], bytes[1]])));
        }
    }
    found
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Decodes one base64 group (padding read as zero bits); false if it is not one.
fn decode_group(group: &[u8], out: &mut [u8; 3]) -> bool {
    let mut bits = 0u32;
    for &c in group {
        let value = match c {
            b'=' => 0,
            c => match ALPHABET.iter().position(|&a| a == c) {
                Some(v) => v as u32,
                None => return false,
            },
        };
        bits = bits << 6 | value;
    }
    *out = [(bits >> 16) as u8, (bits >> 8) as u8, bits as u8];
    group.len() == 4
}

fn encode_group(bytes: &[u8; 3]) -> [u8; 4] {
    let bits = u32::from(bytes[0]) << 16 | u32::from(bytes[1]) << 8 | u32::from(bytes[2]);
    [18, 12, 6, 0].map(|shift| ALPHABET[((bits >> shift) & 0x3f) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lie_changes_only_the_length_field() {
        let line = LineLength::default();
        let frame = [0x0bu8, 0, 0, 2, 0, 0, 1, 0, 0xa0, 0xa0];
        let honest = console::encode(&frame, line).unwrap();
        let lied = lying(&frame, line, 3);
        assert_eq!(honest.len(), lied.len());
        assert_eq!(announced_lengths(&honest), [12]);
        assert_eq!(announced_lengths(&lied), [15]);
        assert_eq!(honest[6..], lied[6..]);
        // One byte frame: the first group is padded.
        assert_eq!(announced_lengths(&lying(&[7], line, -2)), [1]);
    }

    #[test]
    fn seeds() {
        serial_deframer(&[]);
        serial_deframer(&[0, 120, 0x81, 0x00]);
        serial_deframer(&[
            3, 0, 5, b'h', b'e', b'l', b'l', b'o', 0x82, 7, 0xe0, 40, 0x83, 1,
        ]);
    }
}
