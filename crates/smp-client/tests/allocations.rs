//! Heap allocations per upload chunk in the steady state of an image upload.
//!
//! A property, not a speed test: an upload of thousands of chunks should allocate
//! nothing per chunk beyond the outgoing frame. The upload runs over the real UDP
//! transport on 127.0.0.1 to a small device on a thread of this process, and a counting
//! global allocator (`dhat` in testing mode, so this crate keeps `forbid(unsafe_code)`)
//! counts every allocation and reallocation of the whole process: the client, its UDP
//! transport, the tokio runtime and the device. The device answers from fixed buffers
//! and decodes chunks without copying them, so it allocates nothing per chunk, and the
//! count is the client side's own.
//!
//! One test in its own file: the counter is global, so nothing may run beside it.
//! `cargo test -p smp-client --test allocations -- --nocapture` prints the numbers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use minicbor::{Decoder, Encoder};
use smp_client::header::{self, Header, command, group};
use smp_client::{Client, ClientOptions, ImageUploadOptions};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// UDP's frame limit over a 1500-byte MTU.
const FRAME_LIMIT: usize = 1472;
/// What the device reports: the client may keep `BUF_COUNT - 1` chunks in flight.
const BUF_COUNT: u32 = 4;
/// Image size: about 300 chunks.
const IMAGE_LEN: usize = 300 * 1446;
/// Chunks at the start and the end left out of the steady state.
const EDGE: u64 = 40;
/// Allocations per chunk the process may make: the outgoing frame, nothing else.
const MAX_ALLOCATIONS_PER_CHUNK: f64 = 1.0;
/// Allocations the process may make beyond that in the whole steady state (a table
/// that grows once), so that one stray allocation per chunk is not hidden by an average.
const MAX_EXTRA_ALLOCATIONS: f64 = 4.0;
/// Bytes per chunk the process may allocate: the outgoing frame, at most the frame limit.
const MAX_BYTES_PER_CHUNK: f64 = FRAME_LIMIT as f64;
/// Bytes the process may allocate beyond that in the whole steady state.
const MAX_EXTRA_BYTES: f64 = 4096.0;

/// A device that answers MCUmgr parameters and image upload chunks, nothing else, on a
/// blocking socket of its own thread, without allocating per request.
struct Device {
    socket: UdpSocket,
    off: u64,
    len: u64,
    /// Upload chunks handled, for the test to count.
    chunks: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Device {
    fn serve(mut self) {
        let mut request = vec![0; 65_536];
        let mut reply = Vec::with_capacity(256);
        self.socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        while !self.stop.load(Ordering::Relaxed) {
            let Ok((len, peer)) = self.socket.recv_from(&mut request) else {
                continue;
            };
            self.handle(&request[..len], &mut reply);
            self.socket.send_to(&reply, peer).unwrap();
        }
    }

    fn handle(&mut self, frame: &[u8], out: &mut Vec<u8>) {
        let request = Header::decode(frame).unwrap();
        out.clear();
        out.extend_from_slice(&[0; header::SIZE]);
        let mut e = Encoder::new(&mut *out);
        e.begin_map().unwrap();
        match (request.group, request.command) {
            (group::OS, command::os::MCUMGR_PARAMS) => {
                e.str("buf_size").unwrap().u32(2048).unwrap();
                e.str("buf_count").unwrap().u32(BUF_COUNT).unwrap();
            }
            (group::IMAGE, command::image::UPLOAD) => {
                let (off, len, data) = chunk(&frame[header::SIZE..]);
                if let Some(len) = len {
                    (self.len, self.off) = (len, 0);
                }
                if off == self.off {
                    self.off += data;
                }
                self.chunks.fetch_add(1, Ordering::Relaxed);
                e.str("off").unwrap().u64(self.off).unwrap();
                if self.off == self.len {
                    e.str("match").unwrap().bool(true).unwrap();
                }
            }
            _ => {
                e.str("rc").unwrap().u32(8).unwrap();
            }
        }
        e.end().unwrap();
        let mut reply = request;
        reply.op = request.op.response();
        reply.length = (out.len() - header::SIZE) as u16;
        out[..header::SIZE].copy_from_slice(&reply.encode());
    }
}

/// An upload chunk's `off`, `len` and data length, read in place.
fn chunk(payload: &[u8]) -> (u64, Option<u64>, u64) {
    let mut d = Decoder::new(payload);
    let (mut off, mut len, mut data) = (0, None, 0);
    for _ in 0..d.map().unwrap().unwrap() {
        match d.str().unwrap() {
            "off" => off = d.u64().unwrap(),
            "len" => len = Some(d.u64().unwrap()),
            "data" => data = d.bytes().unwrap().len() as u64,
            _ => d.skip().unwrap(),
        }
    }
    (off, len, data)
}

/// Heap blocks and bytes allocated so far (reallocations count as allocations).
fn allocated() -> (u64, u64) {
    let stats = dhat::HeapStats::get();
    (stats.total_blocks, stats.total_bytes)
}

fn image() -> Vec<u8> {
    let mut image: Vec<u8> = (0..IMAGE_LEN).map(|i| (i * 7 % 251) as u8).collect();
    image[..4].copy_from_slice(&[0x3d, 0xb8, 0xf3, 0x96]);
    image
}

/// Uploads `image` to a device at `addr` whose chunk count is `chunks`; returns the
/// `(chunks, blocks, bytes)` marks at the start and the end of the steady state, and
/// the chunks the upload sent.
async fn upload(
    addr: std::net::SocketAddr,
    chunks: &AtomicU64,
    image: &[u8],
) -> ([(u64, u64, u64); 2], u64) {
    let client = Client::connect_udp(addr.into(), ClientOptions::default())
        .await
        .unwrap();
    assert_eq!(client.buf_count(), Some(BUF_COUNT as usize));
    let total = image.len().div_ceil(1446) as u64;
    let (first, last) = (EDGE, total - EDGE);
    // Fixed storage: the progress callback must not allocate itself.
    let mut marks = [None; 2];
    let summary = client
        .upload_image(image, &ImageUploadOptions::default(), |_| {
            let done = chunks.load(Ordering::Relaxed);
            let slot = if marks[0].is_none() && done >= first {
                0
            } else if marks[1].is_none() && done >= last {
                1
            } else {
                return;
            };
            let (blocks, bytes) = allocated();
            marks[slot] = Some((done, blocks, bytes));
        })
        .await
        .unwrap();
    assert_eq!(summary.matched, Some(true));
    assert_eq!(summary.max_in_flight, BUF_COUNT as usize - 1);
    ([marks[0].unwrap(), marks[1].unwrap()], summary.chunks)
}

#[test]
fn an_upload_allocates_only_its_frames() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let image = image();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let (chunks, stop) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let device = Device {
        socket,
        off: 0,
        len: 0,
        chunks: Arc::clone(&chunks),
        stop: Arc::clone(&stop),
    };
    let device = std::thread::spawn(move || device.serve());

    let _profiler = dhat::Profiler::builder().testing().build();
    let ([from, to], sent) = runtime.block_on(upload(addr, &chunks, &image));
    stop.store(true, Ordering::Relaxed);
    device.join().unwrap();

    let measured = (to.0 - from.0) as f64;
    let blocks = (to.1 - from.1) as f64 / measured;
    let bytes = (to.2 - from.2) as f64 / measured;
    println!(
        "allocations: {blocks:.2} per chunk ({bytes:.0} bytes), whole process over UDP on \
         127.0.0.1 ({sent} chunks of up to {FRAME_LIMIT}-byte frames, {measured} in the \
         steady state, window up to {})",
        BUF_COUNT - 1
    );
    let extra = (blocks - MAX_ALLOCATIONS_PER_CHUNK) * measured;
    assert!(
        extra <= MAX_EXTRA_ALLOCATIONS,
        "the process allocates {blocks:.2} times per chunk over {measured} chunks, \
         {extra:.0} more than one per chunk"
    );
    let extra_bytes = (bytes - MAX_BYTES_PER_CHUNK) * measured;
    assert!(
        extra_bytes <= MAX_EXTRA_BYTES,
        "the process allocates {bytes:.0} bytes per chunk over {measured} chunks, \
         {extra_bytes:.0} more than one frame of {FRAME_LIMIT} bytes per chunk"
    );
}
