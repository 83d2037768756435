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

use crate::messages::fs;
use crate::messages::image::{UploadRequest, UploadResponse};
use crate::{Client, ClientError, Request};

/// Bytes CBOR needs, beyond the initial byte, to write a length `n` (RFC 8949 §3).
///
/// The reference client sizes data with the length of the room left (`avail`) rather
/// than of the data itself; [`fit_data`] does the same so chunk sizes match it.
pub const fn cbor_len_extra(n: usize) -> usize {
    crate::cbor::head_len(n as u64) - 1
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

/// A request that carries one chunk of an upload.
pub(crate) trait ChunkRequest<'a>: Request + minicbor::CborLen<()> {
    /// Puts the chunk's data in.
    fn set_data(&mut self, data: &'a [u8]);
    /// The device's offset (and, for images, `match`) from the reply.
    fn reply_offset(reply: &Self::Response) -> (u64, Option<bool>);
}

impl<'a> ChunkRequest<'a> for UploadRequest<'a> {
    fn set_data(&mut self, data: &'a [u8]) {
        self.data = Cow::Borrowed(data);
    }
    fn reply_offset(reply: &UploadResponse) -> (u64, Option<bool>) {
        (reply.off, reply.r#match)
    }
}

impl<'a> ChunkRequest<'a> for fs::UploadRequest<'a> {
    fn set_data(&mut self, data: &'a [u8]) {
        self.data = Cow::Borrowed(data);
    }
    fn reply_offset(reply: &fs::UploadResponse) -> (u64, Option<bool>) {
        (reply.off, None)
    }
}

/// The state of one upload: what the device confirmed, what to send next.
///
/// The device's offset in each reply drives it: equal to what was sent means accepted,
/// anything else (a lost or rejected chunk, a resumed upload) is where to continue.
#[derive(Debug)]
pub(crate) struct UploadPlan<'a> {
    data: &'a [u8],
    frame_limit: usize,
    /// The offset the device expects next.
    off: u64,
    stalls: u32,
}

impl<'a> UploadPlan<'a> {
    pub(crate) fn new(data: &'a [u8], frame_limit: usize) -> Self {
        Self {
            data,
            frame_limit,
            off: 0,
            stalls: 0,
        }
    }

    pub(crate) fn len(&self) -> u64 {
        self.data.len() as u64
    }

    pub(crate) fn off(&self) -> u64 {
        self.off
    }

    /// Fills `request` (built for the current offset, data empty) with as much data as
    /// the frame limit allows.
    pub(crate) fn fill<R: ChunkRequest<'a>>(&self, request: &mut R) -> Result<usize, ClientError> {
        let empty = header::SIZE + minicbor::len(&*request);
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
        request.set_data(&self.data[start..end]);
        Ok(end - start)
    }

    /// Takes the device's offset after a chunk; `Ok(true)` when the upload is complete.
    pub(crate) fn on_reply(
        &mut self,
        off: u64,
        matched: Option<bool>,
    ) -> Result<bool, ClientError> {
        if off > self.len() {
            return Err(ClientError::Transfer(format!(
                "device reports offset {off} beyond the {} bytes sent",
                self.len()
            )));
        }
        if off > self.off || off == self.len() {
            self.stalls = 0;
        } else {
            self.stalls += 1;
            if self.stalls > MAX_STALLS {
                return Err(ClientError::Transfer(format!(
                    "device stopped accepting data at offset {off} ({MAX_STALLS} replies without progress)"
                )));
            }
        }
        self.off = off;
        if off < self.len() {
            return Ok(false);
        }
        match matched {
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

/// The image upload's first chunk, or a later one, for the plan's offset.
fn image_chunk<'a>(
    off: u64,
    len: u64,
    sha256: &[u8; 32],
    options: &ImageUploadOptions,
) -> UploadRequest<'a> {
    if off == 0 {
        UploadRequest {
            len: Some(len),
            sha: Some(sha256.to_vec()),
            image: options.image,
            upgrade: Some(options.upgrade),
            ..UploadRequest::chunk(0, &[])
        }
    } else {
        UploadRequest::chunk(off, &[])
    }
}

/// Per-attempt timeouts of the first, middle and last chunks.
#[derive(Debug, Clone, Copy)]
struct ChunkTimeouts {
    first: Duration,
    middle: Duration,
    last: Duration,
}

/// What [`Client::upload_chunks`] did.
struct ChunksSent {
    chunks: u64,
    resumed_at: u64,
    matched: Option<bool>,
}

/// Settings of [`Client::upload_file`] and [`Client::download_file`].
#[derive(Debug, Clone)]
pub struct FileTransferOptions {
    /// Compare the device's SHA-256 (or CRC32) of the file with the local data afterwards,
    /// when the device can compute one.
    pub verify: bool,
}

impl Default for FileTransferOptions {
    fn default() -> Self {
        Self { verify: true }
    }
}

/// What a finished file transfer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTransferSummary {
    /// File size.
    pub len: u64,
    /// Chunks exchanged.
    pub chunks: u64,
    /// The check that compared the device's file with the local data: `"sha256"` or
    /// `"crc32"`, or `None` when the device offers neither (or `verify` was off).
    pub verified_with: Option<&'static str>,
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
        progress: impl FnMut(Progress),
    ) -> Result<UploadSummary, ClientError> {
        let sha256: [u8; 32] = Sha256::digest(image).into();
        let len = image.len() as u64;
        let timeouts = ChunkTimeouts {
            first: options.first_timeout,
            middle: self.options().retry.timeout,
            last: options.last_timeout,
        };
        let sent = self
            .upload_chunks(
                image,
                |off| image_chunk(off, len, &sha256, options),
                timeouts,
                progress,
            )
            .await?;
        tracing::info!(len, chunks = sent.chunks, "image upload complete");
        Ok(UploadSummary {
            len,
            sha256,
            resumed_at: sent.resumed_at,
            chunks: sent.chunks,
            matched: sent.matched,
        })
    }

    /// Uploads `data` to the file `name` on the device, replacing it, then checks the
    /// device's hash of it when `options.verify` is set and the device can compute one.
    pub async fn upload_file(
        &self,
        name: &str,
        data: &[u8],
        options: &FileTransferOptions,
        progress: impl FnMut(Progress),
    ) -> Result<FileTransferSummary, ClientError> {
        let len = data.len() as u64;
        let timeout = self.options().retry.timeout;
        let timeouts = ChunkTimeouts {
            first: timeout,
            middle: timeout,
            last: timeout,
        };
        let chunk = |off: u64| fs::UploadRequest {
            len: (off == 0).then_some(len),
            off,
            data: Cow::Borrowed(&[]),
            name: name.to_owned(),
        };
        let sent = self.upload_chunks(data, chunk, timeouts, progress).await?;
        let verified_with = if options.verify {
            self.verify_file(name, data).await?
        } else {
            None
        };
        Ok(FileTransferSummary {
            len,
            chunks: sent.chunks,
            verified_with,
        })
    }

    /// Downloads the file `name`; the device's `len` on the first reply says when it is
    /// complete. Checks the device's hash of the file when `options.verify` is set and the
    /// device can compute one.
    pub async fn download_file(
        &self,
        name: &str,
        options: &FileTransferOptions,
        mut progress: impl FnMut(Progress),
    ) -> Result<(Vec<u8>, FileTransferSummary), ClientError> {
        let mut data = Vec::new();
        let mut total = None;
        let mut chunks = 0;
        loop {
            let request = fs::DownloadRequest {
                off: data.len() as u64,
                name: name.to_owned(),
            };
            let reply = self.request(&request).await?;
            chunks += 1;
            if reply.off != request.off {
                return Err(ClientError::Transfer(format!(
                    "asked for offset {} of {name}, the device sent offset {}",
                    request.off, reply.off
                )));
            }
            let total = match total {
                Some(total) => total,
                None => *total.insert(reply.len.ok_or_else(|| {
                    ClientError::Transfer(format!("the device did not say how long {name} is"))
                })?),
            };
            if data.len() as u64 + reply.data.len() as u64 > total {
                return Err(ClientError::Transfer(format!(
                    "the device sent more of {name} than its length of {total} bytes"
                )));
            }
            if reply.data.is_empty() && (data.len() as u64) < total {
                return Err(ClientError::Transfer(format!(
                    "the device sent no data at offset {} of {name} ({total} bytes)",
                    data.len()
                )));
            }
            data.extend_from_slice(&reply.data);
            progress(Progress {
                done: data.len() as u64,
                total,
            });
            if data.len() as u64 == total {
                break;
            }
        }
        let verified_with = if options.verify {
            self.verify_file(name, &data).await?
        } else {
            None
        };
        let summary = FileTransferSummary {
            len: data.len() as u64,
            chunks,
            verified_with,
        };
        Ok((data, summary))
    }

    /// Compares the device's SHA-256 (else CRC32) of `name` with `data`. `None` when the
    /// device computes neither.
    async fn verify_file(
        &self,
        name: &str,
        data: &[u8],
    ) -> Result<Option<&'static str>, ClientError> {
        for kind in ["sha256", "crc32"] {
            let request = fs::HashRequest {
                name: name.to_owned(),
                r#type: Some(kind.to_owned()),
                ..fs::HashRequest::default()
            };
            let reply = match self.request(&request).await {
                Ok(reply) => reply,
                Err(ClientError::Device(err)) if err.is_unsupported_hash() => {
                    tracing::debug!(%err, kind, "device cannot hash the file this way");
                    continue;
                }
                Err(err) => return Err(err),
            };
            let expected = match kind {
                "sha256" => fs::HashOutput::Bytes(Sha256::digest(data).to_vec()),
                _ => fs::HashOutput::Int(crc32(data).into()),
            };
            if reply.output != expected || reply.len != data.len() as u64 {
                return Err(ClientError::Transfer(format!(
                    "the device's {kind} of {name} ({} bytes) differs from the local data ({} bytes)",
                    reply.len,
                    data.len()
                )));
            }
            return Ok(Some(kind));
        }
        Ok(None)
    }

    /// Sends the chunks of `data`, each request built by `chunk` for the device's current
    /// offset and filled to the frame limit, until the device has all of it.
    async fn upload_chunks<'a, R: ChunkRequest<'a>>(
        &self,
        data: &'a [u8],
        chunk: impl Fn(u64) -> R,
        timeouts: ChunkTimeouts,
        mut progress: impl FnMut(Progress),
    ) -> Result<ChunksSent, ClientError> {
        let mut plan = UploadPlan::new(data, self.frame_limit());
        let mut sent = ChunksSent {
            chunks: 0,
            resumed_at: 0,
            matched: None,
        };
        loop {
            let off = plan.off();
            let mut request = chunk(off);
            let len = plan.fill(&mut request)? as u64;
            let timeout = if off == 0 {
                timeouts.first
            } else if off + len == plan.len() {
                timeouts.last
            } else {
                timeouts.middle
            };
            let reply = self.request_with_timeout(&request, timeout).await?;
            sent.chunks += 1;
            let (reply_off, matched) = R::reply_offset(&reply);
            if off == 0 && reply_off > len {
                sent.resumed_at = reply_off;
                tracing::info!(
                    resumed_at = reply_off,
                    "device resumes an interrupted upload"
                );
            }
            let done = plan.on_reply(reply_off, matched)?;
            progress(plan.progress());
            if done {
                sent.matched = matched;
                return Ok(sent);
            }
        }
    }
}

/// IEEE 802.3 CRC32 (as zlib and Zephyr's `crc32_ieee`), for checking files.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(len: usize) -> Vec<u8> {
        let mut data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        data[..4].copy_from_slice(&[0x3d, 0xb8, 0xf3, 0x96]);
        data
    }

    /// The image request the plan would send next.
    fn next<'a>(plan: &UploadPlan<'a>) -> UploadRequest<'a> {
        let mut request = image_chunk(
            plan.off(),
            plan.len(),
            &[0xab; 32],
            &ImageUploadOptions::default(),
        );
        plan.fill(&mut request).unwrap();
        request
    }

    #[test]
    fn chunk_sizes_match_the_reference_client() {
        // PROTOCOL.md 5.8: 1472-byte frames, 429,552-byte image.
        let data = image(429_552);
        let mut plan = UploadPlan::new(&data, 1472);
        let first = next(&plan);
        assert_eq!(first.data.len(), 1387);
        assert_eq!(
            (first.len, first.image, first.upgrade),
            (Some(429_552), Some(0), Some(false))
        );
        assert_eq!(header::SIZE + minicbor::len(&first), 1472);
        plan.on_reply(1387, None).unwrap();
        let second = next(&plan);
        assert_eq!((second.off, second.data.len()), (1387, 1448));
        assert_eq!((second.len, second.sha.as_ref()), (None, None));
        assert_eq!(header::SIZE + minicbor::len(&second), 1472);
        plan.on_reply(200_000, None).unwrap();
        assert_eq!(next(&plan).data.len(), 1446);
    }

    #[test]
    fn file_chunks_fill_the_frame_too() {
        let data = vec![7u8; 5000];
        let plan = UploadPlan::new(&data, 512);
        let mut request = fs::UploadRequest {
            len: Some(5000),
            name: "/lfs1/a.bin".into(),
            ..fs::UploadRequest::default()
        };
        let len = plan.fill(&mut request).unwrap();
        assert_eq!(header::SIZE + minicbor::len(&request), 512);
        assert_eq!(request.data.len(), len);
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
        let mut plan = UploadPlan::new(&data, 512);
        let sent = next(&plan).data.len() as u64;
        // The device resumes an earlier upload at 6000.
        assert!(!plan.on_reply(6000, None).unwrap());
        assert_eq!(next(&plan).off, 6000);
        // A lost chunk: the device is still at 6000; resend from there.
        assert!(!plan.on_reply(6000, None).unwrap());
        assert_eq!(next(&plan).off, 6000);
        // The device went back (it restarted the upload).
        assert!(!plan.on_reply(sent, None).unwrap());
        assert_eq!(next(&plan).off, sent);
        assert!(plan.on_reply(10_000, Some(true)).unwrap());
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
        let mut plan = UploadPlan::new(&data, 512);
        assert!(matches!(
            plan.on_reply(1001, None),
            Err(ClientError::Transfer(_))
        ));
        assert!(matches!(
            plan.on_reply(1000, Some(false)),
            Err(ClientError::Transfer(_))
        ));
        let mut plan = UploadPlan::new(&data, 512);
        for _ in 0..MAX_STALLS {
            plan.on_reply(0, None).unwrap();
        }
        assert!(matches!(
            plan.on_reply(0, None),
            Err(ClientError::Transfer(_))
        ));
    }

    #[test]
    fn a_frame_too_small_for_any_data_is_refused() {
        let data = image(1000);
        let plan = UploadPlan::new(&data, 80);
        let mut request = image_chunk(0, 1000, &[0; 32], &ImageUploadOptions::default());
        assert!(matches!(
            plan.fill(&mut request),
            Err(ClientError::FrameTooLarge { max: 80, .. })
        ));
    }

    #[test]
    fn the_last_chunk_is_exactly_the_rest() {
        let data = image(3000);
        let mut plan = UploadPlan::new(&data, 1472);
        plan.on_reply(2900, None).unwrap();
        assert_eq!(next(&plan).data.as_ref(), &data[2900..]);
    }

    #[test]
    fn crc32_is_ieee() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }
}
