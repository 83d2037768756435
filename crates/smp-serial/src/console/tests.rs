use proptest::prelude::*;

use super::*;

/// `EchoWrite(d="hello")`, sequence 0 (PROTOCOL.md section 1).
const ECHO: [u8; 17] = [
    0x0a, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x00, // v2 WRITE, len 9, OS, seq 0, echo
    0xa1, 0x61, 0x64, 0x65, 0x68, 0x65, 0x6c, 0x6c, 0x6f, // {"d": "hello"}
];

/// Zephyr's reply to an echo: `{r: "hi"}` in an indefinite map.
const REPLY: [u8; 15] = [
    0x0b, 0x00, 0x00, 0x07, 0x00, 0x00, 0x01, 0x00, // v2 WRITE_RSP, len 7, OS, seq 1, echo
    0xbf, 0x61, 0x72, 0x62, 0x68, 0x69, 0xff, // {_ "r": "hi"}
];

/// A frame of `len` bytes: a header announcing the rest, then a pattern.
fn frame(len: usize) -> Vec<u8> {
    let payload = len.saturating_sub(8);
    let mut f = vec![0x0b, 0, (payload >> 8) as u8, payload as u8, 0, 8, 0x42, 0];
    f.extend((0..payload).map(|i| (i * 13 + 5) as u8));
    f.truncate(len);
    f
}

/// Console lines carrying `packet` (length field, data and CRC, made by hand), `chars`
/// base64 characters per line.
fn lines_of(packet: &[u8], chars: usize) -> Vec<u8> {
    let mut text = Vec::new();
    base64::encode_into(packet, &mut text);
    let mut out = Vec::new();
    for (i, chunk) in text.chunks(chars).enumerate() {
        out.extend(if i == 0 { START } else { CONTINUATION });
        out.extend(chunk);
        out.push(END);
    }
    out
}

/// A packet with the given length field and CRC around `data`.
fn packet(length: u16, data: &[u8], crc: u16) -> Vec<u8> {
    let mut p = length.to_be_bytes().to_vec();
    p.extend(data);
    p.extend(crc.to_be_bytes());
    p
}

fn encoded(f: &[u8], line_length: usize) -> Vec<u8> {
    encode(f, LineLength::new(line_length).unwrap()).unwrap()
}

/// Everything a deframer makes of `stream`, pushed in chunks of `chunk` bytes.
fn deframe(stream: &[u8], chunk: usize) -> Vec<Result<Vec<u8>, FrameError>> {
    let mut d = ConsoleDeframer::new();
    let mut out = Vec::new();
    for piece in stream.chunks(chunk.max(1)) {
        d.push(piece);
        while let Some(result) = d.next_frame() {
            out.push(result);
        }
    }
    out
}

#[test]
fn an_echo_request_on_one_line() {
    let wire = encoded(&ECHO, 128);
    let mut expected = vec![0x06, 0x09]; // start delimiter
    // base64 of: 00 13 (17 B frame + 2 B CRC), the frame, CRC a2 7f.
    expected.extend(b"ABMKAAAJAAAAAKFhZGVoZWxsb6J/");
    expected.push(b'\n');
    assert_eq!(wire, expected);
    assert_eq!(deframe(&wire, 1), [Ok(ECHO.to_vec())]);
}

#[test]
fn lines_carry_whole_base64_groups_and_stay_under_the_line_length() {
    // 314 B frame: 318 B packet, 424 characters; 124 per 128-byte line: 4 lines.
    let f = frame(314);
    let wire = encoded(&f, 128);
    let all: Vec<&[u8]> = lines(&wire).collect();
    assert_eq!(
        all.iter().map(|l| l.len()).collect::<Vec<_>>(),
        [127, 127, 127, 55]
    );
    assert!(all[0].starts_with(&START));
    assert!(all[1..].iter().all(|l| l.starts_with(&CONTINUATION)));
    assert!(all.iter().all(|l| (l.len() - 3) % 4 == 0));
    assert_eq!(deframe(&wire, 5), [Ok(f)]);
    // The shortest line length: one group per line.
    let wire = encoded(&ECHO, MIN_LINE_LENGTH);
    assert!(lines(&wire).all(|l| l.len() == 7));
    assert_eq!(lines(&wire).count(), 7);
    assert_eq!(deframe(&wire, 3), [Ok(ECHO.to_vec())]);
}

#[test]
fn too_large_a_frame_is_refused() {
    let line = LineLength::default();
    assert!(encode(&vec![0; MAX_FRAME], line).is_ok());
    let mut out = vec![9];
    assert_eq!(
        encode_into(&vec![0; MAX_FRAME + 1], line, &mut out),
        Err(FrameError::TooLong {
            len: MAX_FRAME + 1,
            max: MAX_FRAME
        })
    );
    assert_eq!(out, [9]);
}

#[test]
fn logs_and_prompts_around_and_between_lines_are_skipped() {
    let f = frame(200);
    let wire = encoded(&f, 64);
    let mut stream = b"*** Booting Zephyr OS ***\r\n[00:00:00.010] <inf> app: up\n".to_vec();
    let mut junk = stream.len();
    for (i, line) in lines(&wire).enumerate() {
        stream.extend(line);
        let log = format!("[00:00:0{i}] <dbg> noise, line {i}\r\n");
        stream.extend(log.as_bytes());
        junk += log.len();
    }
    // A prompt without a newline right before the next frame.
    stream.extend(b"uart:~$ ");
    junk += 8;
    stream.extend(encoded(&REPLY, 128));
    for chunk in [1, 2, 3, 16, stream.len()] {
        let mut d = ConsoleDeframer::new();
        let mut frames = Vec::new();
        for piece in stream.chunks(chunk) {
            d.push(piece);
            while let Some(result) = d.next_frame() {
                frames.push(result.unwrap());
            }
        }
        assert_eq!(frames, [f.clone(), REPLY.to_vec()], "chunks of {chunk}");
        assert_eq!(d.skipped(), junk as u64);
        assert_eq!(d.pending(), 0);
    }
}

#[test]
fn crlf_line_endings_are_taken() {
    let wire = encoded(&frame(150), 64);
    let crlf: Vec<u8> = lines(&wire)
        .flat_map(|l| [&l[..l.len() - 1], b"\r\n"].concat())
        .collect();
    assert_eq!(deframe(&crlf, 4), [Ok(frame(150))]);
}

#[test]
fn lines_split_anywhere_by_zephyr_decode() {
    // Zephyr sends 93 raw bytes per line (its first group: the length field and the
    // first byte) and may pad each line's last group; every line decodes by itself.
    // Here: lines of 3, 1, 2, 3 and 3 bytes, padded where they are not whole groups.
    let f = frame(8);
    let p = packet(10, &f, crc16(&f));
    let mut stream = Vec::new();
    for (i, part) in [&p[..3], &p[3..4], &p[4..6], &p[6..9], &p[9..]]
        .iter()
        .enumerate()
    {
        stream.extend(if i == 0 { START } else { CONTINUATION });
        base64::encode_into(part, &mut stream);
        stream.push(END);
    }
    assert_eq!(deframe(&stream, 1), [Ok(f)]);
}

#[test]
fn bad_base64_costs_one_frame() {
    let f = frame(300);
    // The first line of a 3-line frame with an invalid character.
    let mut broken = encoded(&f, 128);
    broken[10] = b'*';
    // The second line of the next frame cut short by 3 characters.
    let good = encoded(&f, 128);
    let second = 127 + 20;
    let mut cut = good[..second].to_vec();
    cut.extend(&good[second + 3..]);
    let stream = [broken, cut, encoded(&REPLY, 128)].concat();
    assert_eq!(
        deframe(&stream, 9),
        [
            Err(FrameError::BadBase64 { line: 1 }),
            Err(FrameError::BadBase64 { line: 2 }),
            Ok(REPLY.to_vec())
        ]
    );
}

#[test]
fn a_crc_mismatch_costs_one_frame() {
    let data = &ECHO[..];
    let stream = [
        lines_of(&packet(19, data, crc16(data) ^ 0x0100), 124),
        encoded(&REPLY, 128),
    ]
    .concat();
    assert_eq!(
        deframe(&stream, 1),
        [
            Err(FrameError::CrcMismatch {
                expected: 0xa37f,
                computed: 0xa27f
            }),
            Ok(REPLY.to_vec())
        ]
    );
}

#[test]
fn a_length_longer_than_the_data_is_found_at_the_next_frame() {
    // Announces 40 B; 19 arrive (the rest of the frame lost), then a new frame starts.
    let data = &ECHO[..];
    let stream = [
        lines_of(&packet(40, data, crc16(data)), 124),
        encoded(&REPLY, 128),
        encoded(&ECHO, 128),
    ]
    .concat();
    assert_eq!(
        deframe(&stream, 6),
        [
            Err(FrameError::LengthMismatch {
                announced: 40,
                received: 19
            }),
            Ok(REPLY.to_vec()),
            Ok(ECHO.to_vec())
        ]
    );
}

#[test]
fn a_length_shorter_than_the_data_costs_one_frame() {
    let f = frame(200);
    // Announces 100 B; the packet carries 202, in lines of 64 characters (48 B).
    let stream = [
        lines_of(&packet(100, &f, crc16(&f)), 64),
        encoded(&REPLY, 128),
    ]
    .concat();
    let results = deframe(&stream, 11);
    assert_eq!(
        results,
        [
            Err(FrameError::LengthMismatch {
                announced: 100,
                received: 142 // 3 lines of 48 B, less the length field
            }),
            Ok(REPLY.to_vec())
        ]
    );
    // On one line the excess shows at once.
    let stream = [lines_of(&packet(4, &ECHO, 0), 124), encoded(&REPLY, 128)].concat();
    assert_eq!(
        deframe(&stream, 100),
        [
            Err(FrameError::LengthMismatch {
                announced: 4,
                received: 19
            }),
            Ok(REPLY.to_vec())
        ]
    );
}

#[test]
fn a_length_that_cannot_hold_a_crc_or_a_first_line_without_one() {
    let stream = [
        lines_of(&packet(1, &[], 0)[..3], 124), // length 1 and one byte
        lines_of(&[0x00], 124),                 // a first line of 1 B: no length field
        encoded(&REPLY, 128),
    ]
    .concat();
    assert_eq!(
        deframe(&stream, 2),
        [
            Err(FrameError::TooShort { len: 1 }),
            Err(FrameError::TooShort { len: 1 }),
            Ok(REPLY.to_vec())
        ]
    );
}

#[test]
fn continuation_lines_without_a_start_are_one_error() {
    let wire = encoded(&frame(400), 128);
    let first = lines(&wire).next().unwrap().len();
    let headless = &wire[first..];
    assert_eq!(lines(headless).count(), 4);
    let stream = [headless, &encoded(&REPLY, 128)].concat();
    assert_eq!(
        deframe(&stream, 13),
        [Err(FrameError::MissingStart), Ok(REPLY.to_vec())]
    );
}

#[test]
fn a_line_cut_off_by_the_next_frame() {
    // A start line that stops in the middle (at a whole group, so that it would decode),
    // then a whole frame: the cut line costs its frame, the next one decodes.
    let wire = encoded(&ECHO, 128);
    let stream = [&wire[..10], &encoded(&REPLY, 128)[..]].concat();
    assert_eq!(
        deframe(&stream, 1),
        [Err(FrameError::BadBase64 { line: 1 }), Ok(REPLY.to_vec())]
    );
    // A continuation line cut off by a start line.
    let long = encoded(&frame(200), 128);
    let stream = [&long[..127 + 30], &encoded(&REPLY, 128)[..]].concat();
    assert_eq!(
        deframe(&stream, 7),
        [Err(FrameError::BadBase64 { line: 2 }), Ok(REPLY.to_vec())]
    );
}

#[test]
fn a_delimiter_split_across_pushes() {
    let wire = encoded(&ECHO, 128);
    let mut d = ConsoleDeframer::new();
    d.push(b"log\x06");
    assert!(d.next_frame().is_none());
    d.push(&wire[1..]);
    assert_eq!(d.next_frame(), Some(Ok(ECHO.to_vec())));
    // A lone 06 or 04 in text is just text.
    let stream = [b"\x06 \x04\x04\x06\x06x\n".as_slice(), &wire].concat();
    assert_eq!(deframe(&stream, 1), [Ok(ECHO.to_vec())]);
}

#[test]
fn an_endless_line_is_dropped_with_bounded_memory() {
    let mut d = ConsoleDeframer::new();
    d.push(&START);
    let chunk = vec![b'A'; 4096];
    let mut errors = Vec::new();
    for _ in 0..(MAX_LINE / chunk.len() + 3) {
        d.push(&chunk);
        while let Some(result) = d.next_frame() {
            errors.push(result);
        }
        assert!(
            d.pending() <= MAX_LINE + chunk.len(),
            "holds {}",
            d.pending()
        );
    }
    assert_eq!(
        errors,
        [Err(FrameError::TooLong {
            len: MAX_LINE + 1,
            max: MAX_LINE
        })]
    );
    // The rest of that line is skipped; the next frame decodes.
    d.push(b"AAAA\n");
    d.push(&encoded(&REPLY, 128));
    assert_eq!(d.next_frame(), Some(Ok(REPLY.to_vec())));
    assert_eq!(d.pending(), 0);
}

#[test]
fn the_largest_frame_on_one_line() {
    let f = frame(MAX_FRAME);
    let wire = encoded(&f, MAX_LINE + 4);
    assert_eq!(lines(&wire).count(), 1);
    assert_eq!(deframe(&wire, 8192), [Ok(f)]);
}

#[test]
fn an_empty_frame_and_reset() {
    let wire = encoded(&[], 128);
    assert_eq!(wire, b"\x06\x09AAIAAA==\n");
    assert_eq!(deframe(&wire, 1), [Ok(Vec::new())]);
    let mut d = ConsoleDeframer::new();
    d.push(b"xx");
    d.push(&encoded(&frame(300), 128)[..200]);
    assert!(d.next_frame().is_none());
    assert!(d.pending() > 0);
    d.reset();
    assert_eq!(d.pending(), 0);
    d.push(&encoded(&ECHO, 128));
    assert_eq!(d.next_frame(), Some(Ok(ECHO.to_vec())));
    assert_eq!(d.skipped(), 2, "reset keeps the count");
}

#[test]
fn sizing() {
    assert_eq!(max_frame_for_line_buffers(128, 2), 169);
    assert_eq!(max_frame_for_line_buffers(3, 1), 0);
    assert_eq!(max_frame_for_line_buffers(16, 2), 1);
    assert_eq!(
        max_frame_for_line_buffers(usize::MAX, 1),
        usize::MAX - usize::MAX / 4 - 14
    );
    assert_eq!(max_frame_for_buf_size(384), 380);
    assert_eq!(max_frame_for_buf_size(3), 0);
    // A frame of the size the reference allots fits the encoded budget it assumed.
    for (line_length, buffers) in [(128, 1), (128, 2), (128, 4), (512, 1), (512, 3)] {
        let max = max_frame_for_line_buffers(line_length, buffers);
        let wire = encoded(&frame(max), line_length);
        assert!(
            wire.len() <= line_length * buffers,
            "{line_length} x {buffers}"
        );
        assert!(lines(&wire).count() <= buffers);
    }
}

/// Text a device prints between frames: anything but the delimiters' first bytes.
fn junk() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            Just(b'\n'),
            Just(b'\r'),
            Just(START[1]),
            Just(CONTINUATION[1]),
            any::<u8>().prop_filter("not a delimiter's first byte", |b| {
                *b != START[0] && *b != CONTINUATION[0]
            }),
        ],
        0..40,
    )
}

proptest! {
    #[test]
    fn encode_then_deframe_is_the_identity(
        frames in proptest::collection::vec((0usize..700, junk()), 1..5),
        line_length in MIN_LINE_LENGTH..300,
        chunks in proptest::collection::vec(1usize..200, 1..20),
    ) {
        let line_length = LineLength::new(line_length).unwrap();
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for (len, junk) in &frames {
            let f = frame(*len);
            stream.extend(junk);
            let wire = encode(&f, line_length).unwrap();
            // Junk between the lines of a frame too, when it ends a line of its own.
            for line in lines(&wire) {
                stream.extend(line);
                if junk.last() == Some(&END) {
                    stream.extend(junk);
                }
            }
            expected.push(f);
        }
        let mut d = ConsoleDeframer::new();
        let mut got = Vec::new();
        let mut at = 0;
        for size in chunks.iter().cycle() {
            if at >= stream.len() {
                break;
            }
            let end = (at + size).min(stream.len());
            d.push(&stream[at..end]);
            at = end;
            while let Some(result) = d.next_frame() {
                got.push(result.unwrap());
            }
        }
        prop_assert_eq!(got, expected);
        prop_assert_eq!(d.pending(), 0);
    }

    #[test]
    fn any_bytes_never_make_more_than_announced(
        stream in proptest::collection::vec(any::<u8>(), 0..2000).prop_map(|bytes| {
            // Half the bytes from those that matter to the framing.
            const MEANINGFUL: [u8; 8] = [
                START[0], START[1], CONTINUATION[0], CONTINUATION[1], END, b'A', b'=', b'/',
            ];
            bytes
                .into_iter()
                .map(|b| if b & 1 == 0 { MEANINGFUL[usize::from(b >> 1) % 8] } else { b })
                .collect::<Vec<u8>>()
        }),
    ) {
        // Whatever comes out is a frame whose CRC checked: never longer than a packet
        // can announce, and nothing panics.
        for f in deframe(&stream, 37).into_iter().flatten() {
            prop_assert!(f.len() <= MAX_FRAME);
        }
    }
}
