//! Codec micro-benchmarks: what the client does to every frame it sends and receives.
//!
//! `cargo bench -p smp-client --bench codec`; `cargo xtask bench` runs them too and puts
//! the medians in `BENCHMARKS.md`. Requests are encoded as the client encodes them (CBOR
//! payload, then header and payload in one frame); replies are decoded as it decodes
//! them (header, then the typed payload), from bytes as Zephyr writes them.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use smp_client::Request;
use smp_client::header::{self, Header, Op, group};
use smp_client::messages::image::{UploadRequest, UploadResponse};
use smp_client::messages::os::{EchoRequest, EchoResponse};

/// The frame limit of UDP over a 1500-byte MTU: what an upload chunk fills.
const FRAME_LIMIT: usize = 1472;

/// A request's frame: its header, then its CBOR payload.
fn frame<R: Request>(request: &R) -> Vec<u8> {
    let payload = minicbor::to_vec(request).unwrap();
    let header = Header::new(R::OP, R::GROUP, R::COMMAND, payload.len() as u16);
    let mut frame = Vec::with_capacity(header::SIZE + payload.len());
    frame.extend_from_slice(&header.encode());
    frame.extend_from_slice(&payload);
    frame
}

/// A reply frame around `payload`, as the device sends it.
fn reply(group: u16, command: u8, payload: &[u8]) -> Vec<u8> {
    let header = Header::new(Op::WriteRsp, group, command, payload.len() as u16).with_sequence(7);
    let mut frame = header.encode().to_vec();
    frame.extend_from_slice(payload);
    frame
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");

    let header = Header::new(Op::Write, group::IMAGE, 1, 1464).with_sequence(42);
    g.bench_function("header_encode", |b| b.iter(|| black_box(&header).encode()));
    let encoded = header.encode();
    g.bench_function("header_decode", |b| {
        b.iter(|| Header::decode(black_box(&encoded)).unwrap())
    });

    let echo = EchoRequest {
        d: "hello, device".into(),
    };
    g.bench_function("echo_request_encode", |b| {
        b.iter(|| frame(black_box(&echo)))
    });

    // A chunk in the middle of a 1 MiB image, filled to the frame limit as the client
    // fills it (docs/protocol.md 5.8: 1446 bytes once the offset needs 4 bytes).
    let image: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 7 % 251) as u8).collect();
    let off = 500_000;
    let chunk = UploadRequest::chunk(off, &image[off as usize..off as usize + 1446]);
    assert_eq!(header::SIZE + minicbor::len(&chunk), FRAME_LIMIT);
    g.bench_function("upload_chunk_request_encode", |b| {
        b.iter(|| frame(black_box(&chunk)))
    });

    // Zephyr's replies are indefinite-length maps.
    let echo_reply = reply(group::OS, 0, b"\xbf\x61r\x6dhello, device\xff");
    g.bench_function("echo_reply_decode", |b| {
        b.iter(|| {
            let frame = black_box(&echo_reply);
            let header = Header::decode(frame).unwrap();
            let reply: EchoResponse =
                minicbor::decode(&frame[header::SIZE..header.frame_len()]).unwrap();
            reply
        })
    });
    let upload_reply = reply(group::IMAGE, 1, b"\xbf\x63off\x1a\x00\x07\xa1\x20\xff");
    g.bench_function("upload_reply_decode", |b| {
        b.iter(|| {
            let frame = black_box(&upload_reply);
            let header = Header::decode(frame).unwrap();
            let reply: UploadResponse =
                minicbor::decode(&frame[header::SIZE..header.frame_len()]).unwrap();
            reply
        })
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
