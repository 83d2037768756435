//! Heap allocations per upload chunk in the steady state of an image upload.
//!
//! A property, not a speed test: an upload of thousands of chunks should not allocate
//! much per chunk beyond the outgoing frame. The upload runs over the in-memory transport
//! to a small in-test device; a counting global allocator (`dhat` in testing mode, so this
//! crate keeps `forbid(unsafe_code)`) counts every allocation and reallocation of the
//! process. The in-test device's and the transport's own share is measured by replaying
//! the very frames of an earlier upload without the client, and taken out.
//!
//! One test in its own file: the counter is global, so nothing may run beside it.
//! `cargo test -p smp-client --test allocations -- --nocapture` prints the numbers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use minicbor::Encoder;
use smp_client::header::{self, Header, command, group};
use smp_client::messages::image::UploadRequest;
use smp_client::transport::MemoryTransport;
use smp_client::{Client, ClientOptions, ImageUploadOptions, Transport};

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
/// Allocations per chunk the client may make: the outgoing frame, nothing else.
const MAX_CLIENT_ALLOCATIONS_PER_CHUNK: f64 = 1.0;
/// Allocations the client may make beyond that in the whole steady state (a table that
/// grows once), so that one stray allocation is not hidden by the average.
const MAX_CLIENT_EXTRA_ALLOCATIONS: f64 = 4.0;
/// Bytes per chunk the client may allocate: the outgoing frame, at most the frame limit.
const MAX_CLIENT_BYTES_PER_CHUNK: f64 = FRAME_LIMIT as f64;
/// Bytes the client may allocate beyond that in the whole steady state.
const MAX_CLIENT_EXTRA_BYTES: f64 = 4096.0;

/// A device that answers MCUmgr parameters and image upload chunks, nothing else,
/// encoding its replies into one reused buffer.
#[derive(Default)]
struct Device {
    off: u64,
    len: u64,
    reply: Vec<u8>,
    /// Upload chunks handled, for the test to count.
    chunks: Rc<Cell<u64>>,
    /// Where to keep a copy of every upload chunk frame, if anywhere.
    record: Option<Rc<RefCell<Vec<Vec<u8>>>>>,
}

impl Device {
    fn handle(&mut self, frame: &[u8]) -> &[u8] {
        let request = Header::decode(frame).unwrap();
        let payload = &frame[header::SIZE..];
        self.reply.clear();
        self.reply.extend_from_slice(&[0; header::SIZE]);
        let mut e = Encoder::new(&mut self.reply);
        e.begin_map().unwrap();
        match (request.group, request.command) {
            (group::OS, command::os::MCUMGR_PARAMS) => {
                e.str("buf_size").unwrap().u32(2048).unwrap();
                e.str("buf_count").unwrap().u32(BUF_COUNT).unwrap();
            }
            (group::IMAGE, command::image::UPLOAD) => {
                if let Some(record) = &self.record {
                    record.borrow_mut().push(frame.to_vec());
                }
                let chunk: UploadRequest<'_> = minicbor::decode(payload).unwrap();
                if let Some(len) = chunk.len {
                    (self.len, self.off) = (len, 0);
                }
                if chunk.off == self.off {
                    self.off += chunk.data.len() as u64;
                }
                self.chunks.set(self.chunks.get() + 1);
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
        reply.length = (self.reply.len() - header::SIZE) as u16;
        self.reply[..header::SIZE].copy_from_slice(&reply.encode());
        &self.reply
    }
}

async fn serve(transport: MemoryTransport, mut device: Device) {
    while let Ok(frame) = transport.receive().await {
        if transport.send(device.handle(&frame)).await.is_err() {
            break;
        }
    }
}

/// Heap blocks and bytes allocated so far (reallocations count as allocations).
fn allocated() -> (u64, u64) {
    let stats = dhat::HeapStats::get();
    (stats.total_blocks, stats.total_bytes)
}

/// Allocations and bytes per chunk between two `(chunks, blocks, bytes)` marks.
fn per_chunk(from: (u64, u64, u64), to: (u64, u64, u64)) -> (f64, f64) {
    let chunks = (to.0 - from.0) as f64;
    (
        (to.1 - from.1) as f64 / chunks,
        (to.2 - from.2) as f64 / chunks,
    )
}

fn image() -> Vec<u8> {
    let mut image: Vec<u8> = (0..IMAGE_LEN).map(|i| (i * 7 % 251) as u8).collect();
    image[..4].copy_from_slice(&[0x3d, 0xb8, 0xf3, 0x96]);
    image
}

/// The upload chunk frames a client sends for `image`, recorded by the device.
async fn frames_of_an_upload(image: &[u8]) -> Vec<Vec<u8>> {
    let (ours, theirs) = MemoryTransport::pair(FRAME_LIMIT).unwrap();
    let record = Rc::new(RefCell::new(Vec::new()));
    let device = Device {
        record: Some(Rc::clone(&record)),
        ..Device::default()
    };
    tokio::task::spawn_local(serve(theirs, device));
    let client = Client::new(ours, ClientOptions::default()).await.unwrap();
    let summary = client
        .upload_image(image, &ImageUploadOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(summary.matched, Some(true));
    record.take()
}

/// The device's and the transport's share: the same frames, sent one at a time on a
/// bare transport, with no client.
async fn without_client(frames: &[Vec<u8>]) -> (f64, f64) {
    let (ours, theirs) = MemoryTransport::pair(FRAME_LIMIT).unwrap();
    let device = Device::default();
    let chunks = Rc::clone(&device.chunks);
    tokio::task::spawn_local(serve(theirs, device));
    let mut marks = [(0, 0, 0); 2];
    let last = frames.len() as u64 - EDGE;
    for frame in frames {
        ours.send(frame).await.unwrap();
        ours.receive().await.unwrap();
        let done = chunks.get();
        if done == EDGE || done == last {
            let (blocks, bytes) = allocated();
            marks[usize::from(done == last)] = (done, blocks, bytes);
        }
    }
    per_chunk(marks[0], marks[1])
}

/// The whole process's allocations per chunk during the steady state of a real upload.
async fn with_client(image: &[u8]) -> (f64, f64, u64, u64) {
    let (ours, theirs) = MemoryTransport::pair(FRAME_LIMIT).unwrap();
    let device = Device::default();
    let chunks = Rc::clone(&device.chunks);
    tokio::task::spawn_local(serve(theirs, device));
    let client = Client::new(ours, ClientOptions::default()).await.unwrap();
    assert_eq!(client.buf_count(), Some(BUF_COUNT as usize));
    let total = image.len().div_ceil(1446) as u64;
    let (first, last) = (EDGE, total - EDGE);
    // Fixed storage: the progress callback must not allocate itself.
    let mut marks = [None; 2];
    let summary = client
        .upload_image(image, &ImageUploadOptions::default(), |_| {
            let done = chunks.get();
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
    let (from, to) = (marks[0].unwrap(), marks[1].unwrap());
    let (blocks, bytes) = per_chunk(from, to);
    (blocks, bytes, summary.chunks, to.0 - from.0)
}

#[test]
fn an_upload_allocates_little_per_chunk() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let image = image();
    let _profiler = dhat::Profiler::builder().testing().build();
    let local = tokio::task::LocalSet::new();
    let ((base_blocks, base_bytes), (blocks, bytes, chunks, measured)) =
        local.block_on(&runtime, async {
            let frames = frames_of_an_upload(&image).await;
            (without_client(&frames).await, with_client(&image).await)
        });
    let client_blocks = blocks - base_blocks;
    let client_bytes = bytes - base_bytes;
    println!(
        "allocations: {client_blocks:.2} per chunk by the client ({client_bytes:.0} bytes); \
         {blocks:.1} per chunk in all, of which {base_blocks:.1} by the in-test device and \
         the in-memory transport ({chunks} chunks of up to {FRAME_LIMIT}-byte frames, window \
         up to {})",
        BUF_COUNT - 1
    );
    let extra = (client_blocks - MAX_CLIENT_ALLOCATIONS_PER_CHUNK) * measured as f64;
    assert!(
        extra <= MAX_CLIENT_EXTRA_ALLOCATIONS,
        "the client allocates {client_blocks:.2} times per chunk over {measured} chunks, \
         {extra:.0} more than one per chunk"
    );
    let extra_bytes = (client_bytes - MAX_CLIENT_BYTES_PER_CHUNK) * measured as f64;
    assert!(
        extra_bytes <= MAX_CLIENT_EXTRA_BYTES,
        "the client allocates {client_bytes:.0} bytes per chunk over {measured} chunks, \
         {extra_bytes:.0} more than one frame of {FRAME_LIMIT} bytes per chunk"
    );
}
