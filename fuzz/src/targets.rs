//! The properties the fuzz targets check, as plain functions of the fuzzer's bytes.
//!
//! Every function panics when a property breaks and returns normally otherwise. The
//! libFuzzer binaries (`cargo xtask fuzz`, nightly) call them, and the workspace's stable
//! `tests/fuzz_corpus.rs` includes this file with `#[path]` to replay `fuzz/corpus/`. So
//! this file uses nothing but `smp-client` (and what it re-exports), `minicbor` and
//! `tokio`, which both builds provide.
#![forbid(unsafe_code)]

use std::time::Duration;

use minicbor::{CborLen, Decode, Decoder, Encode};
use smp_client::header::{self, Header, HeaderError, MAX_FRAME_SIZE};
use smp_client::messages::build;
use smp_client::messages::os::{EchoRequest, EchoResponse};
use smp_client::messages::{enumeration, fs, image, os, settings, shell, stat, zephyr};
use smp_client::transport::{MemoryTransport, Reassembler};
use smp_client::{Client, ClientError, ClientOptions, Request, RetryPolicy, Transport};

// ---------------------------------------------------------------------------------------
// header_decode

/// `Header::decode` never panics, refuses exactly the inputs it must, and a decoded
/// header encodes to the bytes it came from (the reserved bits 5-7 of byte 0 cleared:
/// for canonical input, the very same bytes) and decodes back to itself.
pub fn header_decode(data: &[u8]) {
    let header = match Header::decode(data) {
        Ok(header) => header,
        Err(err) => {
            match err {
                HeaderError::TooShort { len } => {
                    assert!(len == data.len() && len < header::SIZE, "{err:?}");
                }
                HeaderError::ReservedOp { value } => {
                    assert!(value > 3 && value == data[0] & 0x07, "{err:?}");
                }
                HeaderError::ReservedVersion { value } => {
                    assert!(value > 1 && value == (data[0] >> 3) & 0x03, "{err:?}");
                }
                _ => {}
            }
            assert!(!err.to_string().is_empty());
            return;
        }
    };
    let bytes = header.encode();
    assert_eq!(Header::decode(&bytes), Ok(header), "decode . encode");
    assert_eq!(
        bytes[0],
        data[0] & 0x1f,
        "only the reserved bits are dropped"
    );
    assert_eq!(
        bytes[1..],
        data[1..header::SIZE],
        "the other bytes are kept"
    );
    if data[0] & 0xe0 == 0 {
        assert_eq!(bytes[..], data[..header::SIZE], "canonical input");
    }
    assert_eq!(
        header.frame_len(),
        header::SIZE + usize::from(header.length)
    );
    let mut short = [0u8; header::SIZE - 1];
    assert!(header.encode_into(&mut short).is_err());
    let mut out = data.to_vec();
    header.encode_into(&mut out).expect("room for a header");
    assert_eq!(out[..header::SIZE], bytes);
    assert_eq!(
        out[header::SIZE..],
        data[header::SIZE..],
        "encode_into writes 8 bytes"
    );
    // Its reply answers it; the same reply under another sequence number does not.
    let reply = Header {
        op: header.op.response(),
        ..header
    };
    assert!(header.is_answered_by(&reply));
    assert!(!header.is_answered_by(&reply.with_sequence(header.sequence.wrapping_add(1))));
}

// ---------------------------------------------------------------------------------------
// reply_decode

/// Every response type of `smp_client::messages` decodes the input's payload (after its
/// header, if it has a valid one) without panicking. Whatever decodes encodes again to
/// bytes that decode to a value encoding to the very same bytes (encode . decode is a
/// fixpoint on our own output), `minicbor::len` agrees with the encoding, and a
/// canonical input (definite lengths, shortest heads, text keys in canonical order, no
/// tags, floats or nulls) whose re-encoding has its length encodes to the input itself.
pub fn reply_decode(data: &[u8]) {
    let payload = match Header::decode(data) {
        Ok(_) => &data[header::SIZE..],
        Err(_) => data,
    };
    responses(payload);
}

/// Checks the response of every request type against `payload`.
fn responses(payload: &[u8]) {
    reply::<os::EchoRequest>(payload);
    reply::<os::TaskStatRequest>(payload);
    reply::<os::MpStatRequest>(payload);
    reply::<os::DateTimeRequest>(payload);
    reply::<os::SetDateTimeRequest>(payload);
    reply::<os::ResetRequest>(payload);
    reply::<os::McumgrParamsRequest>(payload);
    reply::<os::InfoRequest>(payload);
    reply::<os::BootloaderInfoRequest>(payload);
    reply::<image::StateRequest>(payload);
    reply::<image::SetStateRequest>(payload);
    reply::<image::UploadRequest<'static>>(payload);
    reply::<image::EraseRequest>(payload);
    reply::<image::SlotInfoRequest>(payload);
    reply::<stat::GroupDataRequest>(payload);
    reply::<stat::ListRequest>(payload);
    reply::<settings::ReadRequest>(payload);
    reply::<settings::WriteRequest>(payload);
    reply::<settings::DeleteRequest>(payload);
    reply::<settings::CommitRequest>(payload);
    reply::<settings::LoadRequest>(payload);
    reply::<settings::SaveRequest>(payload);
    reply::<fs::DownloadRequest>(payload);
    reply::<fs::UploadRequest<'static>>(payload);
    reply::<fs::StatusRequest>(payload);
    reply::<fs::HashRequest>(payload);
    reply::<fs::SupportedHashTypesRequest>(payload);
    reply::<fs::CloseRequest>(payload);
    reply::<shell::ExecRequest>(payload);
    reply::<enumeration::CountRequest>(payload);
    reply::<enumeration::ListRequest>(payload);
    reply::<enumeration::SingleRequest>(payload);
    reply::<enumeration::DetailsRequest>(payload);
    reply::<zephyr::EraseStorageRequest>(payload);
}

fn reply<R: Request>(payload: &[u8])
where
    R::Response: Encode<()> + CborLen<()>,
{
    round_trip::<R::Response>(payload, std::any::type_name::<R>());
}

fn round_trip<T>(payload: &[u8], name: &str)
where
    T: for<'b> Decode<'b, ()> + Encode<()> + CborLen<()>,
{
    let mut d = Decoder::new(payload);
    let Ok(value) = d.decode::<T>() else {
        return;
    };
    let input = &payload[..d.position()];
    let bytes = minicbor::to_vec(&value).expect("encoding into a Vec cannot fail");
    assert_eq!(minicbor::len(&value), bytes.len(), "{name}: CborLen");
    let again: T = minicbor::decode(&bytes)
        .unwrap_or_else(|err| panic!("{name}: our own encoding does not decode: {err}"));
    let bytes_again = minicbor::to_vec(&again).expect("encoding into a Vec cannot fail");
    assert_eq!(
        bytes, bytes_again,
        "{name}: encode . decode is not a fixpoint"
    );
    if bytes.len() == input.len() && canonical(input) {
        assert_eq!(bytes, input, "{name}: canonical input encodes differently");
    }
}

/// True for CBOR as the reference writes it: one item, definite lengths, shortest
/// heads, maps keyed by text in canonical order (shorter first, then bytewise), no
/// tags, floats, `null` or `undefined`.
fn canonical(bytes: &[u8]) -> bool {
    let mut pos = 0;
    canonical_item(bytes, &mut pos, 0) && pos == bytes.len()
}

/// Reads one head: major type and argument, if it is in shortest form.
fn canonical_head(bytes: &[u8], pos: &mut usize) -> Option<(u8, u64)> {
    let first = *bytes.get(*pos)?;
    *pos += 1;
    let (major, info) = (first >> 5, first & 0x1f);
    let (size, min) = match info {
        0..=23 => return Some((major, u64::from(info))),
        24 => (1, 24),
        25 => (2, 0x100),
        26 => (4, 0x1_0000),
        27 => (8, 0x1_0000_0000),
        _ => return None,
    };
    let raw = bytes.get(*pos..*pos + size)?;
    *pos += size;
    let arg = raw.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    (arg >= min).then_some((major, arg))
}

fn canonical_item(bytes: &[u8], pos: &mut usize, depth: usize) -> bool {
    if depth > 16 {
        return false;
    }
    let Some((major, arg)) = canonical_head(bytes, pos) else {
        return false;
    };
    match major {
        0 | 1 => true,
        2 | 3 => take(bytes, pos, arg).is_some(),
        4 => (0..arg).all(|_| canonical_item(bytes, pos, depth + 1)),
        5 => {
            let mut previous: Option<&[u8]> = None;
            for _ in 0..arg {
                let Some((3, len)) = canonical_head(bytes, pos) else {
                    return false;
                };
                let Some(key) = take(bytes, pos, len) else {
                    return false;
                };
                let ordered = previous.is_none_or(|p| (p.len(), p) < (key.len(), key));
                if !ordered || !canonical_item(bytes, pos, depth + 1) {
                    return false;
                }
                previous = Some(key);
            }
            true
        }
        // false and true only.
        7 => arg == 20 || arg == 21,
        _ => false,
    }
}

fn take<'a>(bytes: &'a [u8], pos: &mut usize, len: u64) -> Option<&'a [u8]> {
    let len = usize::try_from(len).ok()?;
    let out = bytes.get(*pos..pos.checked_add(len)?)?;
    *pos += len;
    Some(out)
}

// ---------------------------------------------------------------------------------------
// reassembler

/// Largest datagram a UDP transport reads (its receive buffer).
const MAX_DATAGRAM: usize = 65_536;

/// `Reassembler` fed any datagram sequence: every frame it yields is exactly as long as
/// its header announces (never more), a datagram that is a whole frame by itself comes
/// out unchanged, errors and frames leave nothing held, and it never holds more than
/// 65,543 bytes (the largest frame a header can announce).
pub fn reassembler(data: &[u8]) {
    let mut r = Reassembler::new();
    for datagram in datagrams(data) {
        let whole = Header::decode(&datagram).is_ok_and(|h| h.frame_len() == datagram.len());
        let result = r.push(&datagram);
        match &result {
            Ok(Some(frame)) => {
                let h = Header::decode(frame).expect("a frame starts with a header");
                assert_eq!(frame.len(), h.frame_len(), "frame length != announced");
                assert!(frame.len() <= MAX_FRAME_SIZE);
                assert!(
                    frame.ends_with(&datagram),
                    "the completing datagram ends it"
                );
                assert_eq!(r.pending(), 0, "a completed frame leaves nothing held");
            }
            Ok(None) => assert!(!whole && r.pending() > 0, "an incomplete frame is held"),
            Err(_) => assert_eq!(r.pending(), 0, "an error drops the partial frame"),
        }
        if whole {
            assert_eq!(
                result.ok().flatten(),
                Some(datagram),
                "a whole frame passes as is"
            );
        }
        assert!(r.pending() <= MAX_FRAME_SIZE, "held {} bytes", r.pending());
    }
}

/// Datagrams from fuzzer bytes. Each starts with a tag byte:
/// - `0b0xxx_xxxx`: the next `xxx_xxxx` input bytes as they are;
/// - `0b10xx_fddd`: an 8-byte header from the input (with `f`, its op and version
///   forced valid) and a body of the length it announces, minus 3 plus `ddd`, of the
///   tag byte repeated: frames of every size up to 64 KiB from small inputs;
/// - `0b11xx_xxxx`: the tag byte repeated as often as the next two input bytes say
///   (little-endian): continuation datagrams.
fn datagrams(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some((&tag, tail)) = rest.split_first() {
        rest = tail;
        let mut next = |n: usize| {
            let (taken, left) = rest.split_at(n.min(rest.len()));
            rest = left;
            taken.to_vec()
        };
        let datagram = match tag >> 6 {
            0 | 1 => next(usize::from(tag & 0x7f)),
            2 => {
                let mut head = next(header::SIZE);
                head.resize(header::SIZE, 0);
                if tag & 0x08 != 0 {
                    head[0] &= 0x0b;
                }
                let announced = usize::from(u16::from_be_bytes([head[2], head[3]]));
                let body = (announced + usize::from(tag & 0x07)).saturating_sub(3);
                head.resize((header::SIZE + body).min(MAX_DATAGRAM), tag);
                head
            }
            _ => {
                let mut len = next(2);
                len.resize(2, 0);
                vec![tag; usize::from(u16::from_le_bytes([len[0], len[1]]))]
            }
        };
        out.push(datagram);
    }
    out
}

// ---------------------------------------------------------------------------------------
// client_replies

const FIRST: &str = "first request";
const SECOND: &str = "second request";

/// The client fed arbitrary datagrams while a request waits: a device on the in-memory
/// transport answers the first request with the fuzzer's datagrams (optionally made to
/// answer it), then with the genuine reply, and answers every later request genuinely.
/// Nothing panics; both requests end (on a paused clock: no real waiting); a request
/// that no fuzzed frame answers gets the genuine reply, so garbage neither completes a
/// request nor leaves the client a reply behind; one that a fuzzed frame answers ends
/// in its reply or a typed error.
pub fn client_replies(data: &[u8]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(client_session(data));
}

/// How the scripted device changes a fuzzed datagram before sending it, from its tag.
#[derive(Debug, Clone, Copy)]
struct Patch {
    /// Byte 6 := the request's sequence number.
    sequence: bool,
    /// Op, version, group and command := those of a reply to the request.
    answer: bool,
    /// The header's length := the datagram's length less 8.
    length: bool,
}

/// Fuzzed datagrams: `[tag][len][len bytes]...`; the tag's low bits say how to patch.
fn scripted(data: &[u8]) -> Vec<(Patch, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = data;
    while let [tag, len, tail @ ..] = rest {
        let (datagram, left) = tail.split_at(usize::from(*len).min(tail.len()));
        rest = left;
        let patch = Patch {
            sequence: tag & 1 != 0,
            answer: tag & 2 != 0,
            length: tag & 4 != 0,
        };
        out.push((patch, datagram.to_vec()));
    }
    out
}

fn patched(patch: Patch, datagram: &[u8], request: &Header) -> Vec<u8> {
    let mut d = datagram.to_vec();
    if patch.sequence && d.len() > 6 {
        d[6] = request.sequence;
    }
    if patch.answer && d.len() >= header::SIZE {
        let reply = request.with_sequence(d[6]);
        let bytes = Header {
            op: request.op.response(),
            ..reply
        }
        .encode();
        d[0] = bytes[0];
        d[4..6].copy_from_slice(&bytes[4..6]);
        d[7] = bytes[7];
    }
    if patch.length && d.len() >= header::SIZE {
        let length = u16::try_from(d.len() - header::SIZE).unwrap_or(u16::MAX);
        d[2..4].copy_from_slice(&length.to_be_bytes());
    }
    d
}

/// What the scripted device saw and sent.
#[derive(Debug, Default)]
struct DeviceLog {
    /// Each request's header and echo text, in order of arrival.
    requests: Vec<(Header, String)>,
    /// The fuzzed datagrams, as sent.
    fuzzed: Vec<Vec<u8>>,
}

async fn device_script(device: MemoryTransport, script: Vec<(Patch, Vec<u8>)>) -> DeviceLog {
    let mut log = DeviceLog::default();
    while let Ok(frame) = device.receive().await {
        let request = Header::decode(&frame).expect("the client sends valid headers");
        let echo: EchoRequest =
            minicbor::decode(&frame[header::SIZE..]).expect("the client sends echo requests");
        if log.requests.is_empty() {
            for (patch, datagram) in &script {
                let datagram = patched(*patch, datagram, &request);
                if device.send_datagram(&datagram).is_err() {
                    return log;
                }
                log.fuzzed.push(datagram);
            }
        }
        let payload = minicbor::to_vec(build(|r: &mut EchoResponse| r.r = echo.d.clone()))
            .expect("encodes into a Vec");
        let reply = Header {
            op: request.op.response(),
            length: u16::try_from(payload.len()).expect("a short reply"),
            ..request
        };
        let mut genuine = reply.encode().to_vec();
        genuine.extend(payload);
        log.requests.push((request, echo.d));
        if device.send(&genuine).await.is_err() {
            break;
        }
    }
    log
}

async fn client_session(data: &[u8]) {
    /// Virtual time a request may take before it counts as stuck; far beyond the
    /// retry policy's budget.
    const BOUND: Duration = Duration::from_secs(600);
    let (client_end, device) = MemoryTransport::pair(1472).expect("a link");
    let device = tokio::spawn(device_script(device, scripted(data)));
    let options = ClientOptions::default()
        .with_retry(
            RetryPolicy::default()
                .with_timeout(Duration::from_millis(100))
                .with_retries(2)
                .with_backoff(Duration::from_millis(10))
                .with_max_backoff(Duration::from_millis(40))
                .with_busy_retries(3),
        )
        .with_read_params(false);
    let client = Client::new(client_end, options)
        .await
        .expect("starts without reading the parameters");
    let mut results = Vec::new();
    for text in [FIRST, SECOND] {
        let request = EchoRequest { d: text.into() };
        let result = tokio::time::timeout(BOUND, client.request(&request))
            .await
            .unwrap_or_else(|_| panic!("the request {text:?} never ended"));
        results.push((text, result));
    }
    drop(client);
    let log = device.await.expect("the device task does not panic");

    // The frames the client's transport made of the fuzzed datagrams.
    let mut reassembler = Reassembler::new();
    let frames: Vec<Header> = log
        .fuzzed
        .iter()
        .filter_map(|d| reassembler.push(d).ok().flatten())
        .map(|f| Header::decode(&f).expect("frames have headers"))
        .collect();
    for (text, result) in results {
        // Every header the client used for this request (busy retries take new ones).
        let headers: Vec<&Header> = log
            .requests
            .iter()
            .filter(|(_, d)| d == text)
            .map(|(h, _)| h)
            .collect();
        assert!(
            !headers.is_empty(),
            "the request {text:?} reached the device"
        );
        let fuzz_answers = frames
            .iter()
            .any(|f| headers.iter().any(|h| h.is_answered_by(f)));
        match result {
            Ok(EchoResponse { r, .. }) if r == text => {}
            Ok(other) => assert!(
                fuzz_answers,
                "{text:?} got {other:?}, but no fuzzed frame answers it"
            ),
            Err(err) => {
                assert!(
                    fuzz_answers,
                    "{text:?} failed with {err}, but no fuzzed frame answers it"
                );
                assert!(
                    matches!(
                        err,
                        ClientError::Device(_)
                            | ClientError::Busy { .. }
                            | ClientError::Decode { .. }
                    ),
                    "{text:?}: unexpected error {err:?}"
                );
                assert!(!err.to_string().is_empty());
            }
        }
    }
}
