//! Chunked transfers: image upload, file upload and download.
//!
//! The planning (how much data fits a frame, what the device's offset means for the
//! next chunk) is plain state driven by the async functions on [`Client`]; tests drive
//! it directly.

use std::borrow::Cow;
use std::time::Duration;

use sha2::{Digest, Sha256};
use smp_transport::Transport;
use smp_transport::header;

use crate::messages::image::{UploadRequest, UploadResponse};
use crate::{Client, ClientError};

/// Bytes CBOR needs, beyond the initial byte, to write a length `n` (RFC 8949 §3).
///
/// The reference client sizes data with the length of the room left (`avail`) rather
/// than of the data itself; [`fit_data`] does the same so chunk sizes match it.
pub const fn cbor_len_extra(n: usize) -> usize {
    if n < 24 {
        0
    } else if n <= 0xff {
        1
    } else if n <= 0xffff {
        2
    } else {
        4
    }
}

/// Data bytes that fit a frame of `frame_limit` bytes when the same request with empty
/// data takes `empty_frame_len` bytes (header included).
pub const fn fit_data(frame_limit: usize, empty_frame_len: usize) -> usize {
    let avail = frame_limit.saturating_sub(empty_frame_len);
    avail - cbor_len_extra(avail)
}

/// How far a transfer has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes the device has confirmed.
    pub done: u64,
    /// Size of the whole transfer.
    pub total: u64,
}

/// Settings of [`Client::upload_image`].
#[derive(Debug, Clone)]
pub struct ImageUploadOptions {
    /// Image number (multi-image devices); `None` leaves it to the device (image 0).
    pub image: Option<u32>,
    /// Ask the device to refuse an image that is not newer than the running one.
    pub upgrade: bool,
    /// Per-attempt timeout of the first chunk, which may wait for a slot erase.
    pub first_timeout: Duration,
    /// Per-attempt timeout of the last chunk, which may wait for the image check.
    pub last_timeout: Duration,
}

impl Default for ImageUploadOptions {
    fn default() -> Self {
        Self {
            image: Some(0),
            upgrade: false,
            first_timeout: Duration::from_secs(40),
            last_timeout: Duration::from_secs(10),
        }
    }
}

/// What a finished upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSummary {
    /// Image size.
    pub len: u64,
    /// SHA-256 of the image, as announced to the device.
    pub sha256: [u8; 32],
    /// Offset the device reported on the first reply: non-zero when it resumed an
    /// interrupted upload of the same image.
    pub resumed_at: u64,
    /// Chunks sent, re-sends after timeouts not counted.
    pub chunks: u64,
    /// The device's `match` on the last reply, when it sent one.
    pub matched: Option<bool>,
}

/// Replies that may pass without the device's offset moving before an upload gives up.
const MAX_STALLS: u32 = 8;

/// The state of one upload: what was confirmed, what to send next.
///
/// The device's offset in each reply drives it: equal to what was sent means accepted,
/// anything else (a lost or rejected chunk, a resumed upload) is where to continue.
#[derive(Debug)]
pub(crate) struct UploadPlan<'a> {
    data: &'a [u8],
    sha256: [u8; 32],
    image: Option<u32>,
    upgrade: Option<bool>,
    frame_limit: usize,
    /// The offset the device expects next.
    off: u64,
    stalls: u32,
}

impl<'a> UploadPlan<'a> {
    pub(crate) fn new(data: &'a [u8], options: &ImageUploadOptions, frame_limit: usize) -> Self {
        Self {
            data,
            sha256: Sha256::digest(data).into(),
            image: options.image,
            upgrade: Some(options.upgrade),
            frame_limit,
            off: 0,
            stalls: 0,
        }
    }

    fn len(&self) -> u64 {
        self.data.len() as u64
    }

    /// The request for the chunk at the device's offset, filled to the frame limit.
    pub(crate) fn next_request(&self) -> Result<UploadRequest<'a>, ClientError> {
        let mut request = if self.off == 0 {
            UploadRequest {
                len: Some(self.len()),
                sha: Some(self.sha256.to_vec()),
                image: self.image,
                upgrade: self.upgrade,
                ..UploadRequest::chunk(0, &[])
            }
        } else {
            UploadRequest::chunk(self.off, &[])
        };
        let empty = header::SIZE + minicbor::len(&request);
        let start = usize::try_from(self.off)
            .unwrap_or(usize::MAX)
            .min(self.data.len());
        let room = fit_data(self.frame_limit, empty);
        if room == 0 && start < self.data.len() {
            return Err(ClientError::FrameTooLarge {
                len: empty + 1,
                max: self.frame_limit,
            });
        }
        let end = start + room.min(self.data.len() - start);
        request.data = Cow::Borrowed(&self.data[start..end]);
        Ok(request)
    }

    /// Takes the device's answer to a chunk; `Ok(true)` when the upload is complete.
    pub(crate) fn on_reply(&mut self, reply: &UploadResponse) -> Result<bool, ClientError> {
        if reply.off > self.len() {
            return Err(ClientError::Transfer(format!(
                "device reports offset {} beyond the image's {} bytes",
                reply.off,
                self.len()
            )));
        }
        if reply.off > self.off || reply.off == self.len() {
            self.stalls = 0;
        } else {
            self.stalls += 1;
            if self.stalls > MAX_STALLS {
                return Err(ClientError::Transfer(format!(
                    "device stopped accepting data at offset {} ({MAX_STALLS} replies without progress)",
                    reply.off
                )));
            }
        }
        self.off = reply.off;
        if reply.off < self.len() {
            return Ok(false);
        }
        match reply.r#match {
            Some(false) => Err(ClientError::Transfer(
                "device reports the uploaded image does not match its SHA-256".into(),
            )),
            _ => Ok(true),
        }
    }

    pub(crate) fn progress(&self) -> Progress {
        Progress {
            done: self.off,
            total: self.len(),
        }
    }
}

impl<T: Transport + 'static> Client<T> {
    /// Uploads an MCUboot image to the device's secondary slot.
    ///
    /// The first chunk carries the image's length and SHA-256: a device that holds an
    /// interrupted upload of the same image continues from where it stopped. Chunks fill
    /// the frame limit; the device's offsets drive what is sent next; timeouts re-send,
    /// busy replies back off. `progress` is called after every reply. Dropping the future
    /// cancels the upload; calling this again with the same image resumes it.
    pub async fn upload_image(
        &self,
        image: &[u8],
        options: &ImageUploadOptions,
        mut progress: impl FnMut(Progress),
    ) -> Result<UploadSummary, ClientError> {
        let mut plan = UploadPlan::new(image, options, self.frame_limit());
        let mut chunks = 0;
        let mut resumed_at = 0;
        loop {
            let request = plan.next_request()?;
            let first = request.off == 0;
            let last = request.off + request.data.len() as u64 == plan.len();
            let timeout = if first {
                options.first_timeout
            } else if last {
                options.last_timeout
            } else {
                self.options().retry.timeout
            };
            let reply = self.request_with_timeout(&request, timeout).await?;
            chunks += 1;
            let done = plan.on_reply(&reply)?;
            if first && reply.off > request.data.len() as u64 {
                resumed_at = reply.off;
                tracing::info!(resumed_at, "device resumes an interrupted upload");
            }
            progress(plan.progress());
            if done {
                tracing::info!(len = plan.len(), chunks, "image upload complete");
                return Ok(UploadSummary {
                    len: plan.len(),
                    sha256: plan.sha256,
                    resumed_at,
                    chunks,
                    matched: reply.r#match,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(len: usize) -> Vec<u8> {
        let mut data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        data[..4].copy_from_slice(&[0x3d, 0xb8, 0xf3, 0x96]);
        data
    }

    #[test]
    fn chunk_sizes_match_the_reference_client() {
        // PROTOCOL.md 5.8: 1472-byte frames, 429,552-byte image.
        let data = image(429_552);
        let mut plan = UploadPlan::new(&data, &ImageUploadOptions::default(), 1472);
        let first = plan.next_request().unwrap();
        assert_eq!(first.data.len(), 1387);
        assert_eq!(header::SIZE + minicbor::len(&first), 1472);
        plan.on_reply(&UploadResponse {
            off: 1387,
            r#match: None,
        })
        .unwrap();
        let second = plan.next_request().unwrap();
        assert_eq!((second.off, second.data.len()), (1387, 1448));
        assert_eq!(second.len, None);
        assert_eq!(second.sha, None);
        assert_eq!(header::SIZE + minicbor::len(&second), 1472);
        plan.on_reply(&UploadResponse {
            off: 200_000,
            r#match: None,
        })
        .unwrap();
        assert_eq!(plan.next_request().unwrap().data.len(), 1446);
    }

    #[test]
    fn cbor_length_steps() {
        assert_eq!(
            [0, 23, 24, 255, 256, 65_535, 65_536].map(cbor_len_extra),
            [0, 0, 1, 1, 2, 2, 4]
        );
        assert_eq!(fit_data(100, 100), 0);
        assert_eq!(fit_data(100, 120), 0);
        assert_eq!(fit_data(130, 100), 29);
    }

    #[test]
    fn the_devices_offset_drives_the_next_chunk() {
        let data = image(10_000);
        let mut plan = UploadPlan::new(&data, &ImageUploadOptions::default(), 512);
        let first = plan.next_request().unwrap();
        let sent = first.data.len() as u64;
        // The device resumes an earlier upload at 6000.
        assert!(
            !plan
                .on_reply(&UploadResponse {
                    off: 6000,
                    r#match: None
                })
                .unwrap()
        );
        assert_eq!(plan.next_request().unwrap().off, 6000);
        // A lost chunk: the device is still at 6000; resend from there.
        assert!(
            !plan
                .on_reply(&UploadResponse {
                    off: 6000,
                    r#match: None
                })
                .unwrap()
        );
        assert_eq!(plan.next_request().unwrap().off, 6000);
        // The device went back (it restarted the upload).
        assert!(
            !plan
                .on_reply(&UploadResponse {
                    off: sent,
                    r#match: None
                })
                .unwrap()
        );
        assert_eq!(plan.next_request().unwrap().off, sent);
        assert!(
            plan.on_reply(&UploadResponse {
                off: 10_000,
                r#match: Some(true)
            })
            .unwrap()
        );
        assert_eq!(
            plan.progress(),
            Progress {
                done: 10_000,
                total: 10_000
            }
        );
    }

    #[test]
    fn bad_answers_are_errors() {
        let data = image(1000);
        let mut plan = UploadPlan::new(&data, &ImageUploadOptions::default(), 512);
        assert!(matches!(
            plan.on_reply(&UploadResponse {
                off: 1001,
                r#match: None
            }),
            Err(ClientError::Transfer(_))
        ));
        assert!(matches!(
            plan.on_reply(&UploadResponse {
                off: 1000,
                r#match: Some(false)
            }),
            Err(ClientError::Transfer(_))
        ));
        let mut plan = UploadPlan::new(&data, &ImageUploadOptions::default(), 512);
        for _ in 0..MAX_STALLS {
            plan.on_reply(&UploadResponse {
                off: 0,
                r#match: None,
            })
            .unwrap();
        }
        assert!(matches!(
            plan.on_reply(&UploadResponse {
                off: 0,
                r#match: None
            }),
            Err(ClientError::Transfer(_))
        ));
    }

    #[test]
    fn a_frame_too_small_for_any_data_is_refused() {
        let data = image(1000);
        let plan = UploadPlan::new(&data, &ImageUploadOptions::default(), 80);
        assert!(matches!(
            plan.next_request(),
            Err(ClientError::FrameTooLarge { max: 80, .. })
        ));
    }

    #[test]
    fn the_last_chunk_is_exactly_the_rest() {
        let data = image(3000);
        let mut plan = UploadPlan::new(&data, &ImageUploadOptions::default(), 1472);
        plan.on_reply(&UploadResponse {
            off: 2900,
            r#match: None,
        })
        .unwrap();
        let last = plan.next_request().unwrap();
        assert_eq!(last.data.as_ref(), &data[2900..]);
    }
}
