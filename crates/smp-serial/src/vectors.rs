//! The reference's own bytes and sizes (`vectors.txt`, written by
//! `scripts/gen_serial_vectors.py` from `smpclient` 7.3.0 and `smp` 4.2.0), checked against
//! this crate's encoders, deframers and sizing.

use crate::cobs::{self, CobsDeframer};
use crate::console::{self, ConsoleDeframer, LineLength};
use crate::raw::RawDeframer;
use crate::{Framing, SerialOptions, crc16, encode};

const VECTORS: &str = include_str!("vectors.txt");

fn unhex(field: &str) -> Vec<u8> {
    if field == "-" {
        return Vec::new();
    }
    assert!(field.len() % 2 == 0, "odd hex {field:?}");
    (0..field.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&field[i..i + 2], 16).expect("hex"))
        .collect()
}

fn number(field: &str) -> usize {
    field.parse().expect("a number")
}

/// Every vector of `kind`, as its fields.
fn vectors(kind: &str) -> Vec<Vec<&'static str>> {
    let found: Vec<Vec<&str>> = VECTORS
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| line.split(' ').collect::<Vec<_>>())
        .filter(|fields| fields[0] == kind)
        .map(|fields| fields[1..].to_vec())
        .collect();
    assert!(!found.is_empty(), "no {kind} vectors");
    found
}

/// Every frame `deframer` yields from `wire` pushed in chunks of `chunk` bytes.
fn console_frames(wire: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    let mut deframer = ConsoleDeframer::new();
    let mut frames = Vec::new();
    for piece in wire.chunks(chunk) {
        deframer.push(piece);
        while let Some(frame) = deframer.next_frame() {
            frames.push(frame.expect("a reference frame decodes"));
        }
    }
    assert_eq!(deframer.pending(), 0);
    frames
}

#[test]
fn crc16_matches_the_reference() {
    for v in vectors("crc16") {
        let expected = u16::from_str_radix(v[1], 16).unwrap();
        assert_eq!(crc16(&unhex(v[0])), expected, "crc16 of {}", v[0]);
    }
}

#[test]
fn console_encoding_matches_the_reference_byte_for_byte() {
    let all = vectors("console");
    assert!(all.len() >= 70);
    for v in all {
        let (line_length, lines, frame, wire) =
            (number(v[0]), number(v[1]), unhex(v[2]), unhex(v[3]));
        let line_length = LineLength::new(line_length).unwrap();
        let ours = console::encode(&frame, line_length).unwrap();
        assert_eq!(
            ours,
            wire,
            "{} B frame, line length {}",
            frame.len(),
            line_length.get()
        );
        assert_eq!(encode(Framing::Console, &frame, line_length).unwrap(), wire);
        // The reference writes one line at a time: the same lines.
        assert_eq!(console::lines(&ours).count(), lines);
        for line in console::lines(&ours) {
            assert!(line.len() < line_length.get(), "a line of {} B", line.len());
        }
        // And they decode back, whole or a byte at a time.
        assert_eq!(
            console_frames(&wire, wire.len()),
            std::slice::from_ref(&frame)
        );
        assert_eq!(console_frames(&wire, 1), [frame]);
    }
}

#[test]
fn console_decoding_matches_the_reference() {
    for v in vectors("console_decode") {
        let (wire, frame) = (unhex(v[0]), unhex(v[1]));
        assert_eq!(console_frames(&wire, 7), [frame]);
    }
}

#[test]
fn raw_framing_is_the_frame_itself() {
    for v in vectors("raw") {
        let (frame, wire) = (unhex(v[0]), unhex(v[1]));
        assert_eq!(
            encode(Framing::Raw, &frame, LineLength::default()).unwrap(),
            wire
        );
        let mut deframer = RawDeframer::new(4096);
        deframer.push(&wire);
        assert_eq!(deframer.next_frame(), Some(Ok(frame)));
        assert_eq!(deframer.next_frame(), None);
    }
}

#[test]
fn cobs_matches_the_reference_byte_for_byte() {
    for v in vectors("cobs") {
        let (data, encoded) = (unhex(v[0]), unhex(v[1]));
        let mut ours = Vec::new();
        cobs::encode_into(&data, &mut ours);
        assert_eq!(ours, encoded, "{} B", data.len());
        let mut decoded = Vec::new();
        cobs::decode_into(&encoded, &mut decoded).unwrap();
        assert_eq!(decoded, data);
    }
    for v in vectors("cobs_frame") {
        let (frame, reference) = (unhex(v[0]), unhex(v[1]));
        // Ours is the reference's frame with a `00` before it.
        let wire = [&[cobs::DELIMITER][..], &reference].concat();
        assert_eq!(cobs::encode(&frame), wire);
        assert_eq!(
            encode(Framing::RawCobs, &frame, LineLength::default()).unwrap(),
            wire
        );
        let mut deframer = CobsDeframer::new();
        deframer.push(&wire);
        deframer.push(&reference);
        assert_eq!(deframer.next_frame(), Some(Ok(frame.clone())));
        assert_eq!(deframer.next_frame(), Some(Ok(frame)));
        assert_eq!(deframer.next_frame(), None);
    }
    for v in vectors("cobs_take") {
        let wire = unhex(v[0]);
        let expected: Vec<Vec<u8>> = v[1..].iter().map(|f| unhex(f)).collect();
        let mut deframer = CobsDeframer::new();
        deframer.push(&wire);
        let mut frames = Vec::new();
        let mut errors = 0;
        while let Some(result) = deframer.next_frame() {
            match result {
                Ok(frame) => frames.push(frame),
                // The reference drops damaged frames silently; we report them.
                Err(_) => errors += 1,
            }
        }
        assert_eq!(frames, expected);
        assert_eq!(errors, 1);
    }
}

#[test]
fn sizing_matches_the_reference() {
    let console = SerialOptions::default();
    for v in vectors("size_lines") {
        let options = console
            .clone()
            .line_length(number(v[0]))
            .line_buffers(number(v[1]));
        match v[2] {
            "refused" => assert!(options.max_unencoded_size().is_err(), "{v:?}"),
            // The reference accepts room for less than a header; no frame fits in it.
            max if number(max) < crate::header::SIZE => {
                assert!(options.max_unencoded_size().is_err(), "{v:?}");
            }
            max => {
                assert_eq!(options.max_unencoded_size(), Ok(number(max)), "{v:?}");
                assert_eq!(options.mtu(), number(v[3]), "{v:?}");
                assert_eq!(
                    console::max_frame_for_line_buffers(number(v[0]), number(v[1])),
                    number(max)
                );
            }
        }
    }
    for v in vectors("size_buf") {
        let options = console.clone().buf_size(number(v[0]));
        assert_eq!(options.max_unencoded_size(), Ok(number(v[1])), "{v:?}");
        assert_eq!(options.mtu(), number(v[2]), "{v:?}");
    }
    let v = &vectors("size_auto")[0];
    assert_eq!(console.max_unencoded_size(), Ok(number(v[0])));
    assert_eq!(console.mtu(), number(v[1]));
    for v in vectors("size_raw") {
        let raw = console.clone().framing(Framing::Raw);
        let (options, mtu) = match v[0] {
            "-" => (raw, Some(number(v[2]))),
            // The reference keeps its constructor's MTU once it knows buf_size; we report
            // buf_size, as if it had been constructed with it.
            buf_size => (raw.buf_size(number(buf_size)), None),
        };
        assert_eq!(options.max_unencoded_size(), Ok(number(v[1])), "{v:?}");
        if let Some(mtu) = mtu {
            assert_eq!(options.mtu(), mtu);
        }
        let cobs = options.framing(Framing::RawCobs);
        assert_eq!(cobs.max_unencoded_size(), Ok(number(v[1])), "{v:?}");
    }
}
