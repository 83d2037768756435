//! Property test of the image upload planner, black box: `Client::upload_image` over the
//! in-memory transport against a scripted device that answers random but valid offsets
//! (accepts a chunk, drops it, goes back, resumes an earlier upload), for random image
//! sizes and frame sizes from 64 to 8192 bytes, on a paused clock.
//!
//! Properties: no frame is larger than the frame limit; every chunk carries exactly the
//! image's bytes at its offset and never runs past the image's end; the upload succeeds
//! and the device ends up with exactly the image. The only acceptable failure is
//! `FrameTooLarge` for a frame too small for the first chunk's fields (about 90 bytes),
//! with nothing oversized sent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use smp_client::header::{self, Header, Op, group};
use smp_client::messages::build;
use smp_client::messages::image::{UploadRequest, UploadResponse};
use smp_client::transport::MemoryTransport;
use smp_client::{
    Client, ClientError, ClientOptions, ImageUploadOptions, Transport, UploadSummary,
};

/// What the scripted device saw.
#[derive(Debug, Default)]
struct Seen {
    /// Length of every frame received.
    frames: Vec<usize>,
    /// Chunks whose data differs from the image at their offset, or run past its end.
    bad_chunks: Vec<(u64, usize)>,
    /// The device's data when the client went away.
    held: Vec<u8>,
    /// Chunks the device appended to its data.
    accepted: usize,
}

/// The device's answers to chunks at the offset it expects, one script entry each
/// (accept when the script is used up): 0-9 accept, 10-12 drop the data (answer the
/// old offset, as after a lost or refused write), 13-15 go back to a quarter, half or
/// three quarters of what it holds. Never more than 3 refusals in a row, so that the
/// client's stall limit (8 replies without progress) is never the reason to fail.
struct Device {
    image: Vec<u8>,
    script: Vec<u8>,
    step: usize,
    refusals: usize,
    /// An interrupted upload of the same image the device holds at start.
    resume: Option<usize>,
    /// Image size announced by the first chunk (0: no upload in progress).
    len: u64,
    seen: Arc<Mutex<Seen>>,
}

impl Device {
    fn answer(&mut self, chunk: &UploadRequest<'_>) -> UploadResponse {
        let mut seen = self.seen.lock().unwrap();
        let start = usize::try_from(chunk.off).unwrap();
        let expected = self.image.get(start..start + chunk.data.len());
        if expected != Some(&chunk.data[..]) {
            seen.bad_chunks.push((chunk.off, chunk.data.len()));
        }
        if chunk.off == 0 {
            self.len = chunk.len.expect("the first chunk carries len");
            match self.resume.take() {
                // Same image (the fake trusts the length): continue where it stopped.
                Some(at) if at > 0 && self.len == self.image.len() as u64 => {
                    seen.held = self.image[..at].to_vec();
                    return build(|v: &mut UploadResponse| {
                        v.off = at as u64;
                        v.r#match = None;
                    });
                }
                _ => seen.held.clear(),
            }
        }
        let held = seen.held.len() as u64;
        if chunk.off != held || self.len == 0 {
            // Zephyr: a chunk at another offset is dropped, the expected one answered.
            return build(|v: &mut UploadResponse| {
                v.off = held;
                v.r#match = None;
            });
        }
        let mut decision = self.script.get(self.step).copied().unwrap_or(0);
        self.step += 1;
        if chunk.off == 0 || self.refusals >= 3 {
            decision = 0;
        }
        match decision {
            10..=12 => self.refusals += 1,
            13..=15 => {
                self.refusals += 1;
                let keep = seen.held.len() * usize::from(decision - 12) / 4;
                seen.held.truncate(keep);
            }
            _ => {
                self.refusals = 0;
                seen.held.extend_from_slice(&chunk.data);
                seen.accepted += 1;
            }
        }
        let off = seen.held.len() as u64;
        build(|v: &mut UploadResponse| {
            v.off = off;
            v.r#match = (off == self.len).then(|| seen.held == self.image);
        })
    }

    async fn serve(mut self, end: MemoryTransport, frame_limit: usize) {
        while let Ok(frame) = end.receive().await {
            self.seen.lock().unwrap().frames.push(frame.len());
            let request = Header::decode(&frame).unwrap();
            assert_eq!(
                (request.op, request.group, request.command),
                (Op::Write, group::IMAGE, 1)
            );
            let chunk: UploadRequest<'_> = minicbor::decode(&frame[header::SIZE..]).unwrap();
            let answer = self.answer(&chunk);
            let payload = minicbor::to_vec(answer).unwrap();
            let mut reply = Header {
                op: Op::WriteRsp,
                length: payload.len() as u16,
                ..request
            }
            .encode()
            .to_vec();
            reply.extend(payload);
            assert!(reply.len() <= frame_limit);
            if end.send(&reply).await.is_err() {
                break;
            }
        }
    }
}

fn upload(
    image: Vec<u8>,
    frame_limit: usize,
    resume: Option<usize>,
    script: Vec<u8>,
) -> (Result<UploadSummary, ClientError>, Seen) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async move {
        let (client_end, device_end) = MemoryTransport::pair(frame_limit).unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let device = Device {
            image: image.clone(),
            script,
            step: 0,
            refusals: 0,
            resume,
            len: 0,
            seen: seen.clone(),
        };
        let device = tokio::spawn(device.serve(device_end, frame_limit));
        let options = ClientOptions::default().with_read_params(false);
        let client = Client::new(client_end, options).await.unwrap();
        assert_eq!(client.frame_limit(), frame_limit);
        let result = client
            .upload_image(&image, &ImageUploadOptions::default(), |_| {})
            .await;
        drop(client);
        device.await.unwrap();
        let seen = std::mem::take(&mut *seen.lock().unwrap());
        (result, seen)
    })
}

fn image(len: usize, seed: u8) -> Vec<u8> {
    let mut image: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed ^ (i >> 8) as u8)
        .collect();
    let magic = [0x3d, 0xb8, 0xf3, 0x96];
    let n = len.min(4);
    image[..n].copy_from_slice(&magic[..n]);
    image
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn chunks_fit_the_frame_and_cover_the_image(
        len in 1usize..60_000,
        frame_limit in 64usize..=8192,
        resume in proptest::option::of(0.0f64..1.0),
        script in proptest::collection::vec(0u8..16, 0..300),
        seed in any::<u8>(),
    ) {
        let image = image(len, seed);
        let resume = resume.map(|f| (len as f64 * f) as usize);
        let (result, seen) = upload(image.clone(), frame_limit, resume, script);
        let largest = seen.frames.iter().copied().max().unwrap_or(0);
        prop_assert!(
            largest <= frame_limit,
            "a frame of {} bytes exceeds the {} byte limit", largest, frame_limit
        );
        prop_assert!(seen.bad_chunks.is_empty(), "chunks with wrong data: {:?}", seen.bad_chunks);
        match result {
            Ok(summary) => {
                prop_assert_eq!(summary.len, len as u64);
                prop_assert_eq!(summary.matched, Some(true));
                prop_assert!(seen.held == image, "the device holds {} bytes that differ from the image", seen.held.len());
                prop_assert!(seen.accepted >= 1);
            }
            Err(ClientError::FrameTooLarge { max, .. }) => {
                prop_assert_eq!(max, frame_limit);
                prop_assert!(frame_limit < 128, "FrameTooLarge with a {} byte frame", frame_limit);
                prop_assert!(seen.frames.is_empty(), "frames sent before refusing: {:?}", seen.frames);
            }
            Err(err) => prop_assert!(false, "the upload failed: {}", err),
        }
    }
}

/// The smallest frames: too small for the first chunk's fields, refused before sending;
/// a little larger, every chunk still fits.
#[test]
fn small_frames() {
    let image = image(5_000, 7);
    let (result, seen) = upload(image.clone(), 64, None, Vec::new());
    assert!(
        matches!(result, Err(ClientError::FrameTooLarge { max: 64, .. })),
        "{result:?}"
    );
    assert!(seen.frames.is_empty());
    let (result, seen) = upload(image.clone(), 160, Some(1_000), vec![10, 13, 0, 11, 15]);
    assert_eq!(result.unwrap().matched, Some(true));
    assert_eq!(seen.held, image);
    assert!(seen.frames.iter().all(|&f| f <= 160));
}
