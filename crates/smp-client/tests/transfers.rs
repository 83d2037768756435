//! Image and file transfers against an in-process fake device on the in-memory
//! transport: a device that follows Zephyr's image-upload rules (docs/protocol.md 5.7) and its
//! file-system group closely enough to test chunking, resynchronisation, loss, resume
//! and verification.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use minicbor::Encoder;
use sha2::{Digest, Sha256};
use smp_client::header::{Header, Op, group};
use smp_client::messages::fs;
use smp_client::messages::image::UploadRequest;
use smp_client::transport::MemoryTransport;
use smp_client::{
    Client, ClientError, ClientOptions, FileTransferOptions, HashAlgorithm, ImageUploadOptions,
    Progress, RetryPolicy, TransferError, Transport,
};

const MAGIC: [u8; 4] = [0x3d, 0xb8, 0xf3, 0x96];
const SLOT_SIZE: u64 = 512 * 1024;

/// What the fake device holds and how it misbehaves.
#[derive(Debug, Default)]
struct Device {
    /// The upload in progress: length, announced SHA-256, bytes received.
    upload: Option<(u64, Vec<u8>, Vec<u8>)>,
    /// The `buf_count` it reports (2 when 0): one less chunk may be in flight.
    buf_count: u32,
    /// Drop every n-th request (0: none).
    drop_every: usize,
    /// Handle every n-th request but drop its reply (0: none).
    drop_reply_every: usize,
    /// Answer every n-th request with ENOMEM instead of handling it (0: none).
    enomem_every: usize,
    requests: usize,
    data_bytes_received: usize,
    largest_frame: usize,
    /// Report `match: false` at the end.
    lie_about_match: bool,
    /// The file system.
    files: BTreeMap<String, Vec<u8>>,
    /// Hash types the device computes.
    hash_types: Vec<&'static str>,
    /// The file system error (FS group code) every hash request gets, if any.
    hash_error: Option<u32>,
    /// Flip a byte of every file written, as broken storage would.
    corrupt_writes: bool,
    /// Data bytes per download reply.
    download_chunk: usize,
    /// Refuse a file chunk at the wrong offset with the file's length, as Zephyr 3.3 and
    /// later do; without it, the refusal says nothing more.
    offset_error_len: bool,
    /// How long a new image upload's slot erase takes. Meanwhile the device answers
    /// nothing, and what arrives is dropped (its two buffers are taken, as on Zephyr).
    erase: Duration,
    /// How long checking a complete image takes (the last chunk's reply waits), with the
    /// same effect as an erase.
    check: Duration,
    /// Set when an erase starts: the reply waits this long.
    busy_for: Option<Duration>,
    /// Requests dropped during an erase, the client's probes (empty echoes) apart.
    dropped_while_busy: usize,
    /// Probes dropped during an erase.
    probes_dropped_while_busy: usize,
    /// Forget a complete upload, as Zephyr does, keeping the image in the slot (which
    /// the image state lists): a chunk after it is answered with offset 0.
    forget_complete: bool,
    /// The secondary slot, once an upload completed (with `forget_complete`).
    slot1: Vec<u8>,
    /// Drop the reply to the chunk that completes the upload, once.
    drop_completing_reply: bool,
    /// Lose the upload in progress (as a reboot does) when the last chunk first
    /// arrives, and drop that chunk.
    reboot_before_last: bool,
}

fn reply_frame(request: &Header, body: impl FnOnce(&mut Encoder<&mut Vec<u8>>)) -> Vec<u8> {
    let mut payload = Vec::new();
    let mut e = Encoder::new(&mut payload);
    e.begin_map().unwrap();
    body(&mut e);
    e.end().unwrap();
    let mut header = *request;
    header.op = request.op.response();
    header.length = payload.len() as u16;
    let mut frame = header.encode().to_vec();
    frame.extend(payload);
    frame
}

fn group_error(request: &Header, rc: u32) -> Vec<u8> {
    reply_frame(request, |e| {
        e.str("err").unwrap().begin_map().unwrap();
        e.str("group").unwrap().u16(request.group).unwrap();
        e.str("rc").unwrap().u32(rc).unwrap();
        e.end().unwrap();
    })
}

impl Device {
    fn handle(&mut self, frame: &[u8]) -> Option<Vec<u8>> {
        self.requests += 1;
        self.largest_frame = self.largest_frame.max(frame.len());
        let requests = self.requests;
        let every = |n: usize| n > 0 && requests % n == 0;
        if every(self.drop_every) {
            return None;
        }
        let request = Header::decode(frame).unwrap();
        if every(self.enomem_every) && request.group != group::OS {
            return Some(reply_frame(&request, |e| {
                e.str("rc").unwrap().u32(2).unwrap();
            }));
        }
        let reply = self.answer(&request, frame);
        if every(self.drop_reply_every) {
            return None;
        }
        reply
    }

    fn answer(&mut self, request: &Header, frame: &[u8]) -> Option<Vec<u8>> {
        let request = *request;
        match (request.group, request.command) {
            (group::OS, 6) => Some(reply_frame(&request, |e| {
                let buf_count = if self.buf_count == 0 {
                    2
                } else {
                    self.buf_count
                };
                e.str("buf_size").unwrap().u32(2048).unwrap();
                e.str("buf_count").unwrap().u32(buf_count).unwrap();
            })),
            (group::IMAGE, 1) => {
                let chunk: UploadRequest<'_> = minicbor::decode(&frame[8..]).unwrap();
                if self.reboot_before_last {
                    let len = self.upload.as_ref().map(|upload| upload.0);
                    if len.is_some_and(|len| chunk.off + chunk.data.len() as u64 == len) {
                        self.reboot_before_last = false;
                        self.upload = None;
                        return None;
                    }
                }
                let reply = self.upload(&request, &chunk);
                let complete = self.slot1.len() as u64 == chunk.off + chunk.data.len() as u64;
                if self.drop_completing_reply && complete && chunk.off > 0 {
                    self.drop_completing_reply = false;
                    return None;
                }
                Some(reply)
            }
            (group::IMAGE, 0) if request.op == Op::Read => {
                let hash = smp_mcuboot::Image::parse(&self.slot1)
                    .ok()
                    .and_then(|image| image.hash());
                Some(reply_frame(&request, |e| {
                    e.str("images").unwrap().array(1).unwrap();
                    e.begin_map().unwrap();
                    e.str("slot").unwrap().u32(1).unwrap();
                    e.str("version").unwrap().str("1.2.3").unwrap();
                    if let Some(hash) = hash {
                        e.str("hash").unwrap().bytes(&hash).unwrap();
                    }
                    e.end().unwrap();
                }))
            }
            (group::FS, 0) if request.op == Op::Write => {
                let chunk: fs::UploadRequest<'_> = minicbor::decode(&frame[8..]).unwrap();
                Some(self.file_write(&request, &chunk))
            }
            (group::FS, 0) => {
                let read: fs::DownloadRequest = minicbor::decode(&frame[8..]).unwrap();
                Some(self.file_read(&request, &read))
            }
            (group::FS, 1) => {
                let status: fs::StatusRequest = minicbor::decode(&frame[8..]).unwrap();
                Some(match self.files.get(&status.name) {
                    Some(file) => {
                        let len = file.len() as u64;
                        reply_frame(&request, |e| {
                            e.str("len").unwrap().u64(len).unwrap();
                        })
                    }
                    None => group_error(&request, 3),
                })
            }
            (group::FS, 2) => {
                let hash: fs::HashRequest = minicbor::decode(&frame[8..]).unwrap();
                Some(self.file_hash(&request, &hash))
            }
            _ => Some(reply_frame(&request, |e| {
                e.str("rc").unwrap().u32(8).unwrap();
            })),
        }
    }

    fn upload(&mut self, request: &Header, chunk: &UploadRequest<'_>) -> Vec<u8> {
        self.data_bytes_received += chunk.data.len();
        if chunk.off == 0 {
            let len = chunk.len.expect("the first chunk carries len");
            let sha = chunk.sha.clone().expect("the first chunk carries sha");
            if let Some((held_len, held_sha, held)) = &self.upload {
                if *held_len == len && *held_sha == sha && !held.is_empty() {
                    let off = held.len() as u64;
                    return reply_frame(request, |e| {
                        e.str("off").unwrap().u64(off).unwrap();
                    });
                }
            }
            if chunk.data.len() < 32 || chunk.data[..4] != MAGIC {
                return group_error(request, 23);
            }
            if len > SLOT_SIZE {
                return group_error(request, 30);
            }
            self.upload = Some((len, sha, Vec::new()));
            if !self.erase.is_zero() {
                self.busy_for = Some(self.erase);
            }
        }
        let Some((len, sha, held)) = self.upload.as_mut() else {
            if self.forget_complete {
                // Nothing in progress: the device expects a first chunk.
                return reply_frame(request, |e| {
                    e.str("off").unwrap().u64(0).unwrap();
                });
            }
            return reply_frame(request, |e| {
                e.str("rc").unwrap().u32(3).unwrap();
            });
        };
        if chunk.off != held.len() as u64 {
            // Wrong offset: dropped, the expected offset answered as success.
            let off = held.len() as u64;
            return reply_frame(request, |e| {
                e.str("off").unwrap().u64(off).unwrap();
            });
        }
        if held.len() as u64 + chunk.data.len() as u64 > *len {
            return group_error(request, 31);
        }
        held.extend_from_slice(&chunk.data);
        let off = held.len() as u64;
        let done = off == *len;
        if done && !self.check.is_zero() {
            self.busy_for = Some(self.check);
        }
        let matched =
            Sha256::digest(&held[..]).as_slice() == sha.as_slice() && !self.lie_about_match;
        if done && self.forget_complete {
            self.slot1 = std::mem::take(held);
            self.upload = None;
        }
        reply_frame(request, |e| {
            e.str("off").unwrap().u64(off).unwrap();
            if done {
                e.str("match").unwrap().bool(matched).unwrap();
            }
        })
    }
}

impl Device {
    fn file_write(&mut self, request: &Header, chunk: &fs::UploadRequest<'_>) -> Vec<u8> {
        let mut data = chunk.data.to_vec();
        if self.corrupt_writes && !data.is_empty() {
            data[0] ^= 1;
        }
        if chunk.off == 0 {
            assert!(chunk.len.is_some(), "the first chunk carries len");
            self.files.insert(chunk.name.clone(), data);
        } else {
            let Some(file) = self.files.get_mut(&chunk.name) else {
                return group_error(request, 3);
            };
            if chunk.off != file.len() as u64 {
                let len = file.len() as u64;
                if !self.offset_error_len {
                    return group_error(request, 11);
                }
                return reply_frame(request, |e| {
                    e.str("err").unwrap().begin_map().unwrap();
                    e.str("group").unwrap().u16(request.group).unwrap();
                    e.str("rc").unwrap().u32(11).unwrap();
                    e.end().unwrap();
                    e.str("len").unwrap().u64(len).unwrap();
                });
            }
            file.extend(data);
        }
        let off = self.files[&chunk.name].len() as u64;
        reply_frame(request, |e| {
            e.str("off").unwrap().u64(off).unwrap();
        })
    }

    fn file_read(&mut self, request: &Header, read: &fs::DownloadRequest) -> Vec<u8> {
        let Some(file) = self.files.get(&read.name) else {
            return group_error(request, 3);
        };
        let start = (read.off as usize).min(file.len());
        let end = (start + self.download_chunk).min(file.len());
        let len = file.len() as u64;
        reply_frame(request, |e| {
            e.str("off").unwrap().u64(read.off).unwrap();
            e.str("data").unwrap().bytes(&file[start..end]).unwrap();
            if read.off == 0 {
                e.str("len").unwrap().u64(len).unwrap();
            }
        })
    }

    fn file_hash(&mut self, request: &Header, hash: &fs::HashRequest) -> Vec<u8> {
        if let Some(rc) = self.hash_error {
            return group_error(request, rc);
        }
        let kind = hash.r#type.clone().unwrap_or_else(|| "sha256".into());
        if !self.hash_types.contains(&kind.as_str()) {
            return group_error(request, 13);
        }
        let Some(file) = self.files.get(&hash.name) else {
            return group_error(request, 3);
        };
        let len = file.len() as u64;
        reply_frame(request, |e| {
            e.str("type").unwrap().str(&kind).unwrap();
            e.str("len").unwrap().u64(len).unwrap();
            e.str("output").unwrap();
            if kind == "sha256" {
                e.bytes(&Sha256::digest(file)).unwrap();
            } else {
                e.u32(crc32fast::hash(file)).unwrap();
            }
        })
    }
}

/// Serves `device` on the far end of a link until the link closes.
fn serve(end: MemoryTransport, device: Arc<Mutex<Device>>) {
    tokio::spawn(async move {
        while let Ok(frame) = end.receive().await {
            let (reply, busy_for) = {
                let mut device = device.lock().unwrap();
                let reply = device.handle(&frame);
                (reply, device.busy_for.take())
            };
            if let Some(busy_for) = busy_for {
                tokio::time::sleep(busy_for).await;
                // What arrived meanwhile found no free buffer.
                while let Ok(Ok(frame)) = tokio::time::timeout(Duration::ZERO, end.receive()).await
                {
                    let header = Header::decode(&frame).unwrap();
                    let mut device = device.lock().unwrap();
                    if (header.group, header.command) == (group::OS, 0) {
                        device.probes_dropped_while_busy += 1;
                    } else {
                        device.dropped_while_busy += 1;
                    }
                }
            }
            if let Some(reply) = reply {
                if end.send(&reply).await.is_err() {
                    break;
                }
            }
        }
    });
}

async fn client_for(device: Arc<Mutex<Device>>) -> Client<MemoryTransport> {
    let (client_end, device_end) = MemoryTransport::pair(1472).unwrap();
    serve(device_end, device);
    let options = ClientOptions::default()
        .with_retry(RetryPolicy::default().with_timeout(Duration::from_millis(200)));
    Client::new(client_end, options).await.unwrap()
}

fn image(len: usize) -> Vec<u8> {
    let mut data: Vec<u8> = (0..len).map(|i| (i * 31 % 253) as u8).collect();
    data[..4].copy_from_slice(&MAGIC);
    data
}

fn fast_options() -> ImageUploadOptions {
    ImageUploadOptions::default()
        .with_first_timeout(Duration::from_millis(500))
        .with_last_timeout(Duration::from_millis(500))
}

#[tokio::test(start_paused = true)]
async fn an_image_arrives_byte_identical_with_progress() {
    let device = Arc::new(Mutex::new(Device::default()));
    let client = client_for(device.clone()).await;
    let data = image(100_000);
    let mut seen: Vec<Progress> = Vec::new();
    let summary = client
        .upload_image(&data, &fast_options(), |p| seen.push(p))
        .await
        .unwrap();
    assert_eq!(summary.matched, Some(true));
    assert_eq!(summary.len, 100_000);
    assert_eq!(summary.resumed_at, 0);
    assert_eq!(summary.sha256.as_slice(), Sha256::digest(&data).as_slice());
    let device = device.lock().unwrap();
    assert_eq!(device.upload.as_ref().unwrap().2, data);
    assert_eq!(
        device.largest_frame, 1472,
        "chunks fill the frame limit exactly"
    );
    assert_eq!(device.data_bytes_received, data.len());
    assert!(seen.windows(2).all(|w| w[0].done < w[1].done));
    assert_eq!(seen.last(), Some(&Progress::new(100_000, 100_000)));
    assert_eq!(seen.len() as u64, summary.chunks);
}

#[tokio::test(start_paused = true)]
async fn lost_requests_are_retried_and_the_image_is_intact() {
    let device = Arc::new(Mutex::new(Device {
        drop_every: 7,
        ..Device::default()
    }));
    let client = client_for(device.clone()).await;
    let data = image(60_000);
    let summary = client
        .upload_image(&data, &fast_options(), |_| {})
        .await
        .unwrap();
    assert_eq!(summary.matched, Some(true));
    assert_eq!(device.lock().unwrap().upload.as_ref().unwrap().2, data);
}

#[tokio::test(start_paused = true)]
async fn an_interrupted_upload_resumes_where_the_device_stopped() {
    let device = Arc::new(Mutex::new(Device::default()));
    let client = client_for(device.clone()).await;
    let data = image(200_000);

    // Cut the upload half way by dropping its future.
    let (half_tx, half_rx) = tokio::sync::oneshot::channel::<()>();
    let mut half_tx = Some(half_tx);
    let options = fast_options();
    let cut = tokio::select! {
        result = client.upload_image(&data, &options, |p| {
            if p.done >= p.total / 2 {
                if let Some(tx) = half_tx.take() {
                    let _ = tx.send(());
                }
            }
        }) => panic!("the upload should have been cut, it ended with {result:?}"),
        _ = half_rx => device.lock().unwrap().upload.as_ref().unwrap().2.len(),
    };
    assert!((100_000..200_000).contains(&cut), "cut at {cut}");
    let sent_before = device.lock().unwrap().data_bytes_received;

    let summary = client
        .upload_image(&data, &fast_options(), |_| {})
        .await
        .unwrap();
    assert!(
        summary.resumed_at >= cut as u64,
        "resumed at {}",
        summary.resumed_at
    );
    assert_eq!(summary.matched, Some(true));
    let device = device.lock().unwrap();
    assert_eq!(device.upload.as_ref().unwrap().2, data);
    // Only the first chunk's data and the rest were sent again, not the whole image.
    let sent_after = device.data_bytes_received - sent_before;
    assert!(
        sent_after < data.len() - cut + 1500,
        "sent {sent_after} bytes again"
    );
}

#[tokio::test(start_paused = true)]
async fn device_refusals_are_typed_errors() {
    let device = Arc::new(Mutex::new(Device::default()));
    let client = client_for(device.clone()).await;
    let mut not_mcuboot = image(10_000);
    not_mcuboot[0] = 0;
    match client
        .upload_image(&not_mcuboot, &fast_options(), |_| {})
        .await
    {
        Err(ClientError::Device(err)) => {
            assert_eq!(err.to_string(), "IMG 23 INVALID_IMAGE_HEADER_MAGIC");
        }
        other => panic!("expected a device error, got {other:?}"),
    }
    let too_big = image(SLOT_SIZE as usize + 1);
    match client.upload_image(&too_big, &fast_options(), |_| {}).await {
        Err(ClientError::Device(err)) => assert_eq!(err.name(), Some("INVALID_IMAGE_TOO_LARGE")),
        other => panic!("expected a device error, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_mismatch_at_the_end_is_an_error() {
    let device = Arc::new(Mutex::new(Device {
        lie_about_match: true,
        ..Device::default()
    }));
    let client = client_for(device).await;
    match client
        .upload_image(&image(5_000), &fast_options(), |_| {})
        .await
    {
        Err(ClientError::Transfer(TransferError::ImageMismatch)) => {}
        other => panic!("expected a transfer error, got {other:?}"),
    }
}

fn file_device(hash_types: &[&'static str]) -> Arc<Mutex<Device>> {
    Arc::new(Mutex::new(Device {
        hash_types: hash_types.to_vec(),
        download_chunk: 700,
        ..Device::default()
    }))
}

fn file_data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 17 % 256) as u8).collect()
}

#[tokio::test(start_paused = true)]
async fn a_file_goes_up_and_comes_back_identical_and_verified() {
    let device = file_device(&["crc32", "sha256"]);
    let client = client_for(device.clone()).await;
    let data = file_data(5000);
    let options = FileTransferOptions::default();
    let mut done = 0;
    let up = client
        .upload_file("/lfs/a.bin", &data, &options, |p| done = p.done)
        .await
        .unwrap();
    assert_eq!(
        (up.len, done, up.verified_with),
        (5000, 5000, Some(HashAlgorithm::Sha256))
    );
    assert!(
        up.chunks >= 4,
        "5000 bytes need several 1472-byte frames, took {}",
        up.chunks
    );
    assert_eq!(device.lock().unwrap().files["/lfs/a.bin"], data);

    let mut seen = Vec::new();
    let (down, summary) = client
        .download_file("/lfs/a.bin", &options, |p| seen.push(p))
        .await
        .unwrap();
    assert_eq!(down, data);
    assert_eq!(summary.chunks, 8, "700-byte replies");
    assert_eq!(summary.verified_with, Some(HashAlgorithm::Sha256));
    assert_eq!(seen.last(), Some(&Progress::new(5000, 5000)));
}

#[tokio::test(start_paused = true)]
async fn verification_falls_back_to_crc32_then_to_none() {
    let client = client_for(file_device(&["crc32"])).await;
    let data = file_data(1000);
    let options = FileTransferOptions::default();
    let up = client
        .upload_file("/f", &data, &options, |_| {})
        .await
        .unwrap();
    assert_eq!(up.verified_with, Some(HashAlgorithm::Crc32));

    let client = client_for(file_device(&[])).await;
    let up = client
        .upload_file("/f", &data, &options, |_| {})
        .await
        .unwrap();
    assert_eq!(up.verified_with, None);
}

#[tokio::test(start_paused = true)]
async fn a_corrupted_file_is_an_error() {
    let device = file_device(&["sha256"]);
    device.lock().unwrap().corrupt_writes = true;
    let client = client_for(device).await;
    match client
        .upload_file(
            "/f",
            &file_data(3000),
            &FileTransferOptions::default(),
            |_| {},
        )
        .await
    {
        Err(ClientError::Transfer(TransferError::HashMismatch { algorithm, .. })) => {
            assert_eq!(algorithm, HashAlgorithm::Sha256)
        }
        other => panic!("expected a verification failure, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn file_system_errors_are_not_mistaken_for_missing_hashes() {
    let device = file_device(&["sha256"]);
    // FS 7 FILE_READ_FAILED: the device cannot read back what it wrote.
    device.lock().unwrap().hash_error = Some(7);
    let client = client_for(device).await;
    match client
        .upload_file(
            "/f",
            &file_data(100),
            &FileTransferOptions::default(),
            |_| {},
        )
        .await
    {
        Err(ClientError::Device(err)) => assert_eq!(err.name(), Some("FILE_READ_FAILED")),
        other => panic!("expected the device's error, got {other:?}"),
    }
    let options = FileTransferOptions::default().with_verify(false);
    let up = client
        .upload_file("/g", &file_data(100), &options, |_| {})
        .await
        .unwrap();
    assert_eq!(up.verified_with, None);
}

#[tokio::test(start_paused = true)]
async fn downloading_a_missing_file_is_a_typed_error() {
    let client = client_for(file_device(&["sha256"])).await;
    match client
        .download_file("/nope", &FileTransferOptions::default(), |_| {})
        .await
    {
        Err(ClientError::Device(err)) => assert_eq!(err.to_string(), "FS 3 FILE_NOT_FOUND"),
        other => panic!("expected FILE_NOT_FOUND, got {other:?}"),
    }
}

/// A device with `buf_count` buffers: `buf_count - 1` chunks may be in flight.
fn pipelining_device(buf_count: u32) -> Device {
    Device {
        buf_count,
        hash_types: vec!["sha256"],
        ..Device::default()
    }
}

#[tokio::test(start_paused = true)]
async fn chunks_are_pipelined_up_to_the_device_buffers() {
    let device = Arc::new(Mutex::new(pipelining_device(4)));
    let client = client_for(device.clone()).await;
    assert_eq!(client.max_in_flight(), 3);
    let data = image(100_000);
    let mut seen: Vec<Progress> = Vec::new();
    let summary = client
        .upload_image(&data, &fast_options(), |p| seen.push(p))
        .await
        .unwrap();
    assert_eq!(summary.matched, Some(true));
    assert_eq!(summary.max_in_flight, 3);
    assert_eq!(
        summary.chunks,
        seen.len() as u64,
        "one reply per chunk, each one new"
    );
    let device = device.lock().unwrap();
    assert_eq!(device.upload.as_ref().unwrap().2, data);
    assert_eq!(device.data_bytes_received, data.len(), "nothing sent twice");
    assert_eq!(device.largest_frame, 1472);
    assert!(seen.windows(2).all(|w| w[0].done < w[1].done));
}

#[tokio::test(start_paused = true)]
async fn the_window_option_only_lowers_the_window() {
    for (window, expected) in [(Some(1), 1), (Some(2), 2), (Some(8), 3), (None, 3)] {
        let device = Arc::new(Mutex::new(pipelining_device(4)));
        let client = client_for(device.clone()).await;
        let options = fast_options().with_window(window.and_then(std::num::NonZeroUsize::new));
        let data = image(30_000);
        let summary = client.upload_image(&data, &options, |_| {}).await.unwrap();
        assert_eq!(summary.max_in_flight, expected, "window {window:?}");
        assert_eq!(device.lock().unwrap().upload.as_ref().unwrap().2, data);
    }
    // A device that does not report its buffers gets one chunk at a time.
    let device = Arc::new(Mutex::new(pipelining_device(0)));
    let client = client_for(device).await;
    let options = fast_options().with_window(std::num::NonZeroUsize::new(4));
    let summary = client
        .upload_image(&image(30_000), &options, |_| {})
        .await
        .unwrap();
    assert_eq!(summary.max_in_flight, 1);
}

#[tokio::test(start_paused = true)]
async fn pipelined_uploads_survive_lost_requests_replies_and_busy_answers() {
    for (drop_every, drop_reply_every, enomem_every) in
        [(7, 0, 0), (0, 5, 0), (0, 0, 6), (11, 13, 17), (3, 0, 0)]
    {
        let device = Arc::new(Mutex::new(Device {
            drop_every,
            drop_reply_every,
            enomem_every,
            ..pipelining_device(5)
        }));
        let client = client_for(device.clone()).await;
        let data = image(150_000);
        let summary = client
            .upload_image(&data, &fast_options(), |_| {})
            .await
            .unwrap_or_else(|err| panic!("{drop_every}/{drop_reply_every}/{enomem_every}: {err}"));
        // This device keeps a complete upload, so when the last reply is lost, the resent
        // chunk learns the offset without `match`.
        assert_ne!(summary.matched, Some(false));
        assert_eq!(summary.max_in_flight, 4);
        assert_eq!(device.lock().unwrap().upload.as_ref().unwrap().2, data);
    }
}

#[tokio::test(start_paused = true)]
async fn pipelined_file_uploads_resume_after_a_refused_chunk() {
    // With the length in the refusal (Zephyr 3.3+), and without it (a status request).
    for offset_error_len in [true, false] {
        let device = Arc::new(Mutex::new(Device {
            drop_every: 9,
            offset_error_len,
            download_chunk: 700,
            ..pipelining_device(4)
        }));
        let client = client_for(device.clone()).await;
        let data = file_data(60_000);
        let summary = client
            .upload_file("/lfs/p.bin", &data, &FileTransferOptions::default(), |_| {})
            .await
            .unwrap_or_else(|err| panic!("offset_error_len {offset_error_len}: {err}"));
        assert_eq!(summary.max_in_flight, 3);
        assert_eq!(summary.verified_with, Some(HashAlgorithm::Sha256));
        assert_eq!(device.lock().unwrap().files["/lfs/p.bin"], data);
    }
}

#[tokio::test(start_paused = true)]
async fn a_silent_device_fails_a_pipelined_upload_with_a_timeout() {
    let device = Arc::new(Mutex::new(pipelining_device(4)));
    let client = client_for(device.clone()).await;
    device.lock().unwrap().drop_every = 1;
    match client
        .upload_image(&image(50_000), &fast_options(), |_| {})
        .await
    {
        Err(ClientError::Timeout {
            group: 1,
            command: 1,
            attempts,
            ..
        }) => assert_eq!(attempts, client.options().retry.retries + 1),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[test]
fn upload_futures_can_be_spawned() {
    fn assert_send<T: Send>(_: &T) {}
    let (client_end, _device_end) = MemoryTransport::pair(1472).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let options = ClientOptions::default().with_read_params(false);
    let client = runtime.block_on(Client::new(client_end, options)).unwrap();
    let data = image(10);
    let (image_options, file_options) = (
        ImageUploadOptions::default(),
        FileTransferOptions::default(),
    );
    let upload = client.upload_image(&data, &image_options, |_| {});
    assert_send(&upload);
    let file = client.upload_file("/f", &data, &file_options, |_| {});
    assert_send(&file);
}

#[tokio::test(start_paused = true)]
async fn a_late_reply_to_the_first_chunk_still_counts() {
    // The erase outlasts the first chunk's timeout, and the re-sent first chunk finds no
    // buffer (nor do the client's probes meanwhile): the reply to the first attempt is
    // what moves the upload on.
    let device = Arc::new(Mutex::new(Device {
        erase: Duration::from_millis(700),
        ..pipelining_device(2)
    }));
    let client = client_for(device.clone()).await;
    let data = image(20_000);
    let started = tokio::time::Instant::now();
    let summary = client
        .upload_image(&data, &fast_options(), |_| {})
        .await
        .unwrap();
    assert_eq!(summary.matched, Some(true));
    let device = device.lock().unwrap();
    assert_eq!(
        device.dropped_while_busy, 1,
        "the re-sent first chunk was dropped"
    );
    // Probes went while the device erased, spaced (each wait twice the one before),
    // never a flood: six in the 700 ms.
    assert_eq!(
        device.probes_dropped_while_busy, 6,
        "probes during the erase"
    );
    assert_eq!(device.upload.as_ref().unwrap().2, data);
    // Not another 500 ms timeout for the re-sent chunk.
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_first_or_last_chunk_is_never_sent_again_early() {
    // The middle chunks are answered at once, so their learned timer is the policy's
    // 25 ms minimum; the slot erase and the image check take 300 ms. The first and last
    // chunks keep timers of their own: never sent again while the device works (a
    // re-sent chunk would find no buffer and be counted), on the first upload (nothing
    // learned: the 2 s timeouts) nor on the next one (learned: 300 ms and its variation).
    let device = Arc::new(Mutex::new(Device {
        erase: Duration::from_millis(300),
        check: Duration::from_millis(300),
        ..pipelining_device(2)
    }));
    let client = client_for(device.clone()).await;
    let options = ImageUploadOptions::default()
        .with_first_timeout(Duration::from_secs(2))
        .with_last_timeout(Duration::from_secs(2));
    let mut sent = 0;
    for version in [1u8, 2] {
        let mut data = image(30_000);
        data[100] = version;
        let started = tokio::time::Instant::now();
        let summary = client.upload_image(&data, &options, |_| {}).await.unwrap();
        assert_eq!(summary.matched, Some(true));
        sent += data.len();
        let device = device.lock().unwrap();
        assert_eq!(
            device.dropped_while_busy, 0,
            "upload {version}: sent again while busy"
        );
        // Spaced probes while the device erased and checked: six per upload.
        assert_eq!(
            device.probes_dropped_while_busy,
            6 * usize::from(version),
            "upload {version}: probes while busy"
        );
        assert_eq!(
            device.data_bytes_received, sent,
            "upload {version}: nothing sent twice"
        );
        // The erase and the check, nothing else: no timeout was waited for.
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(600),
            "upload {version}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_lost_middle_chunk_goes_again_after_the_learned_timer() {
    // One chunk in flight at a time, every 5th request lost: each loss costs the learned
    // timer (the 25 ms minimum here, where the device answers at once), not the 200 ms
    // timeout. Neither the first chunk (request 2, after the parameters) nor the last is
    // among the lost ones here: their timers are not learned, and a 500 ms timeout would
    // show in the time.
    let device = Arc::new(Mutex::new(Device {
        drop_every: 5,
        ..pipelining_device(2)
    }));
    let client = client_for(device.clone()).await;
    let data = image(30_000);
    let started = tokio::time::Instant::now();
    let summary = client
        .upload_image(&data, &fast_options(), |_| {})
        .await
        .unwrap();
    assert_eq!(summary.matched, Some(true));
    let lost = device.lock().unwrap().requests / 5;
    assert!(lost >= 3, "{lost} losses");
    assert!(
        started.elapsed() <= client.options().retry.min_rto * lost as u32 * 2,
        "{lost} losses took {:?}",
        started.elapsed()
    );
}

/// A real MCUboot image of about `len` bytes.
fn mcuboot_image(len: usize, seed: u64) -> Vec<u8> {
    smp_mcuboot::ImageBuilder::new("1.2.3".parse().unwrap())
        .build(&smp_mcuboot::sample_body(len, seed))
}

#[tokio::test(start_paused = true)]
async fn a_lost_last_reply_does_not_start_the_upload_again() {
    // The device completes the upload and forgets it (Zephyr does); the reply is lost,
    // the re-sent last chunk is answered with offset 0. The image state shows the image
    // in slot 1: the upload is done, nothing but the last chunk went twice.
    for buf_count in [2, 5] {
        let device = Arc::new(Mutex::new(Device {
            forget_complete: true,
            drop_completing_reply: true,
            ..pipelining_device(buf_count)
        }));
        let client = client_for(device.clone()).await;
        let data = mcuboot_image(30_000, 4);
        let mut seen = Vec::new();
        let summary = client
            .upload_image(&data, &fast_options(), |p| seen.push(p.done))
            .await
            .unwrap();
        assert_eq!(summary.matched, Some(true), "buf_count {buf_count}");
        assert_eq!(seen.last(), Some(&(data.len() as u64)));
        let device = device.lock().unwrap();
        assert!(!device.drop_completing_reply, "the reply was dropped");
        assert_eq!(device.slot1, data);
        let resent = device.data_bytes_received - data.len();
        assert!(
            resent > 0 && resent < 1500,
            "buf_count {buf_count}: only the last chunk went again ({resent} bytes)"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_device_that_lost_the_upload_gets_it_again() {
    // The device loses the upload (a reboot) just as the last chunk arrives: the re-sent
    // chunk is answered with offset 0 too, but the image state does not show the image,
    // so the upload starts over, and completes.
    let device = Arc::new(Mutex::new(Device {
        forget_complete: true,
        reboot_before_last: true,
        ..pipelining_device(2)
    }));
    let client = client_for(device.clone()).await;
    let data = mcuboot_image(30_000, 5);
    let summary = client
        .upload_image(&data, &fast_options(), |_| {})
        .await
        .unwrap();
    assert_eq!(summary.matched, Some(true));
    let device = device.lock().unwrap();
    assert_eq!(device.slot1, data);
    assert!(
        device.data_bytes_received > 2 * data.len() - 1500,
        "sent twice: {} bytes",
        device.data_bytes_received
    );
}
