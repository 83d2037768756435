//! Chunked transfers: image upload, file upload and download.
//!
//! The planning (how much data fits a frame, which chunks are in flight, what the
//! device's offset means for the next chunk, how many chunks may be in flight at once)
//! is plain state, `UploadPlan`, driven by the async functions on [`Client`]; tests
//! drive it directly.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use sha2::{Digest, Sha256};
use smp_transport::Transport;
use smp_transport::header;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

use crate::download::DownloadPlan;
use crate::messages::fs;
use crate::messages::image::{UploadRequest, UploadResponse};
use crate::{Client, ClientError, DeviceError, ErrorScope, Request};

/// Bytes CBOR needs, beyond the initial byte, to write a length `n` (RFC 8949 §3).
///
/// The reference client sizes data with the length of the room left (`avail`) rather
/// than of the data itself; [`fit_data`] does the same so chunk sizes match it.
pub const fn cbor_len_extra(n: usize) -> usize {
    smp_proto::map::head_len(n as u64) - 1
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
    /// Most chunks in flight at once. `None` (the default) is automatic: as many as the
    /// device's buffers hold, [`Client::max_in_flight`] (`buf_count - 1` from its MCUmgr
    /// parameters, 1 when it does not report them). A number only lowers that: the
    /// device's buffers always bound the window. `Some(1)` sends one chunk at a time.
    pub window: Option<NonZeroUsize>,
}

impl Default for ImageUploadOptions {
    fn default() -> Self {
        Self {
            image: Some(0),
            upgrade: false,
            first_timeout: Duration::from_secs(40),
            last_timeout: Duration::from_secs(10),
            window: None,
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
    /// Chunk requests sent. A chunk sent again from the device's offset after a loss
    /// counts again; a re-send of the same frame after a timeout does not.
    pub chunks: u64,
    /// The device's `match` on the last reply, when it sent one.
    pub matched: Option<bool>,
    /// The most chunks that were in flight at once (1: one chunk at a time).
    pub max_in_flight: usize,
}

/// Rewinds in a row, without the device's offset moving, before an upload gives up.
const MAX_STALLS: u32 = 8;

/// `FS_MGMT_ERR_FILE_OFFSET_NOT_VALID`: a file chunk is not at the offset the device
/// expects.
const FS_FILE_OFFSET_NOT_VALID: i64 = 11;

/// A request that carries one chunk of an upload.
pub(crate) trait ChunkRequest<'a>: Request + minicbor::CborLen<()> {
    /// Puts the chunk's data in.
    fn set_data(&mut self, data: &'a [u8]);
    /// The device's offset (and, for images, `match`) from the reply.
    fn reply_offset(reply: &Self::Response) -> (u64, Option<bool>);
    /// Whether a device error answering a chunk means "not at this offset": `None` when
    /// it does not (the upload fails with it), `Some(offset)` when it does, with the
    /// device's expected offset if the reply (its raw `payload`) carries one.
    fn rejection(err: &DeviceError, payload: &[u8]) -> Option<Option<u64>> {
        let _ = (err, payload);
        None
    }
    /// The request that asks the device where it stands, after a rejection that did not
    /// say; `None` when there is none.
    fn offset_query(&self) -> Option<fs::StatusRequest> {
        None
    }
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
    /// Zephyr's file system group refuses a chunk at the wrong offset with
    /// `FILE_OFFSET_NOT_VALID` and (since Zephyr 3.3) the file's length as `len`.
    fn rejection(err: &DeviceError, payload: &[u8]) -> Option<Option<u64>> {
        let wrong_offset = err.scope == ErrorScope::Group
            && err.group == header::group::FS
            && err.rc == FS_FILE_OFFSET_NOT_VALID;
        wrong_offset.then(|| {
            minicbor::decode::<fs::StatusResponse>(payload)
                .ok()
                .map(|status| status.len)
        })
    }
    fn offset_query(&self) -> Option<fs::StatusRequest> {
        Some(fs::StatusRequest {
            name: self.name.clone(),
        })
    }
}

/// The plan gave up: this many rounds of busy replies came in a row without progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exhausted {
    pub(crate) attempts: u32,
}

/// What the plan says after a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Keep going.
    Continue,
    /// The device has all the data; `matched` is its verdict on the image, if it gave one.
    Done { matched: Option<bool> },
}

/// A chunk the plan recorded as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chunk {
    /// Identifies the request in later events; increases in the order sent.
    pub(crate) id: u64,
    /// Offset of its data.
    pub(crate) off: u64,
    /// Bytes of data.
    pub(crate) len: u64,
}

impl Chunk {
    pub(crate) fn end(&self) -> u64 {
        self.off + self.len
    }
}

/// One request waiting for its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sent {
    id: u64,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Data `off..end`.
    Chunk { off: u64, end: u64 },
    /// A question for the device's offset.
    Query,
}

/// The state of one upload: what the device confirmed, which chunks are in flight, what
/// to send next, and how many chunks may be in flight at once (the window). No IO: the
/// async [`Client`] sends what [`next_chunk`](Self::next_chunk) allows and reports every
/// reply, busy reply and timeout back; tests do the same by hand.
///
/// What it relies on (Zephyr's `img_mgmt`, PROTOCOL.md 5): the device handles requests
/// one at a time in the order they arrive, writes a chunk only at the offset it expects,
/// and answers every chunk with the offset it expects next (a chunk at another offset
/// is dropped and answered with success and that offset; the file system group refuses
/// it instead, with the offset as `len` since Zephyr 3.3, and without it the plan asks,
/// see [`on_rejected`](Self::on_rejected)). Hence:
///
/// - The device's offset in a reply is authoritative: it holds exactly the bytes before
///   it. A reply also answers for everything sent before its request: those were
///   handled (or lost) first, so their replies could only carry an older offset, and
///   they hold no device buffer any more. They leave the window without waiting for
///   their own replies.
/// - The first chunk goes alone (the device may erase the slot on it, and its reply
///   says whether it resumes an earlier upload); so does any later chunk at offset 0.
/// - A reply whose offset is not where a chunk still in flight begins means the stream
///   broke (a chunk was lost, or the device restarted or resumed): the next chunk goes
///   at that offset. When a chunk in flight does begin there, the break was already
///   mended by a resend, and the reply is one of the stale answers to chunks sent before
///   the resend: it changes nothing. So one loss causes one resend, not one per chunk
///   that was in flight behind it.
/// - On a timeout the client re-sends the same frame under the same sequence number, as
///   for any request, so a late reply to the first attempt still counts (a slot erase
///   that outlasts the first chunk's timeout); the plan only narrows the window. An
///   overtaken chunk is never re-sent: it leaves the plan, and the client drops its
///   request, as soon as a later chunk is answered.
/// - A busy reply (ENOMEM, EBUSY) means the chunk was not written: it is sent again,
///   after the client's backoff. Busy replies count against the retry policy in rounds:
///   once when nothing sent later is still in flight.
/// - The window starts at its maximum after the first reply, halves (down to 1) on
///   every busy reply, timeout, and loss of a chunk that was itself a resend, and grows
///   by one on every accepted chunk.
///
/// Whatever is lost, duplicated or reordered, the device only ever holds a prefix of the
/// data, so the result is correct; the rules above only decide how fast it gets there.
#[derive(Debug)]
pub(crate) struct UploadPlan<'a> {
    data: &'a [u8],
    frame_limit: usize,
    /// The offset the device last reported: it holds the bytes before it.
    acked: u64,
    /// Where the next chunk begins.
    next: u64,
    /// Requests waiting for an answer, in the order sent.
    in_flight: VecDeque<Sent>,
    next_id: u64,
    /// The largest window: the user's limit and the device's buffers.
    max_window: usize,
    /// The window now.
    window: usize,
    /// The first reply arrived.
    started: bool,
    /// The device refused a chunk without saying where it stands: ask before sending.
    lost_offset: bool,
    /// Busy rounds allowed in a row.
    busy_retries: u32,
    stalls: u32,
    busy: u32,
    chunks: u64,
    peak: usize,
    resumed_at: u64,
    /// The end of the furthest chunk sent: the device cannot hold more.
    sent_end: u64,
}

impl<'a> UploadPlan<'a> {
    /// A plan for `data` in frames of at most `frame_limit` bytes, with at most
    /// `max_window` (at least 1) requests in flight, giving up after `busy_retries`
    /// rounds of busy replies in a row.
    pub(crate) fn new(
        data: &'a [u8],
        frame_limit: usize,
        max_window: usize,
        busy_retries: u32,
    ) -> Self {
        let max_window = max_window.max(1);
        Self {
            data,
            frame_limit,
            acked: 0,
            next: 0,
            in_flight: VecDeque::new(),
            next_id: 0,
            max_window,
            window: max_window,
            started: false,
            lost_offset: false,
            busy_retries,
            stalls: 0,
            busy: 0,
            sent_end: 0,
            chunks: 0,
            peak: 0,
            resumed_at: 0,
        }
    }

    pub(crate) fn len(&self) -> u64 {
        self.data.len() as u64
    }

    /// The offset the device last reported.
    pub(crate) fn acked(&self) -> u64 {
        self.acked
    }

    /// Where the next chunk begins.
    pub(crate) fn next_off(&self) -> u64 {
        self.next
    }

    /// Requests that may be in flight now.
    pub(crate) fn window(&self) -> usize {
        self.window
    }

    /// Requests in flight now.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether request `id` still waits for its answer.
    pub(crate) fn is_in_flight(&self, id: u64) -> bool {
        self.in_flight.iter().any(|sent| sent.id == id)
    }

    /// The most requests that were in flight at once.
    pub(crate) fn peak(&self) -> usize {
        self.peak
    }

    /// Chunks sent, resends included.
    pub(crate) fn chunks_sent(&self) -> u64 {
        self.chunks
    }

    /// The offset the first chunk's reply reported beyond the chunk itself: the device
    /// resumed an earlier upload of the same data there. 0 when it did not.
    pub(crate) fn resumed_at(&self) -> u64 {
        self.resumed_at
    }

    /// The offset of the chunk to send now, if the window has room for one.
    pub(crate) fn next_chunk(&self) -> Option<u64> {
        let alone = self
            .in_flight
            .iter()
            .any(|sent| matches!(sent.kind, Kind::Chunk { off: 0, .. }));
        let more = !self.started || self.next < self.len();
        (!self.lost_offset && !alone && more && self.in_flight.len() < self.window)
            .then_some(self.next)
    }

    /// Fills `request` (built for [`next_off`](Self::next_off), data empty) with as much
    /// data as the frame limit allows; returns how much.
    pub(crate) fn fill<R: ChunkRequest<'a>>(&self, request: &mut R) -> Result<usize, ClientError> {
        let empty = header::SIZE + minicbor::len(&*request);
        let start = usize::try_from(self.next)
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

    /// Fills `request` (built for the offset [`next_chunk`](Self::next_chunk) returned)
    /// and records it as sent.
    pub(crate) fn send<R: ChunkRequest<'a>>(
        &mut self,
        request: &mut R,
    ) -> Result<Chunk, ClientError> {
        let len = self.fill(request)? as u64;
        let chunk = Chunk {
            id: self.next_id,
            off: self.next,
            len,
        };
        self.record(Kind::Chunk {
            off: chunk.off,
            end: chunk.end(),
        });
        self.next = chunk.end();
        self.sent_end = self.sent_end.max(chunk.end());
        self.chunks += 1;
        Ok(chunk)
    }

    /// Whether to ask the device for its offset now (it refused a chunk without saying
    /// where it stands).
    pub(crate) fn wants_query(&self) -> bool {
        self.lost_offset
            && self.in_flight.len() < self.window
            && !self.in_flight.iter().any(|sent| sent.kind == Kind::Query)
    }

    /// Records a question for the device's offset as sent; its answer goes to
    /// [`on_reply`](Self::on_reply).
    pub(crate) fn query_sent(&mut self) -> u64 {
        self.record(Kind::Query)
    }

    fn record(&mut self, kind: Kind) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.in_flight.push_back(Sent { id, kind });
        self.peak = self.peak.max(self.in_flight.len());
        id
    }

    /// Forgets request `id` and everything sent before it; returns what `id` was, or
    /// `None` when it no longer waits (then the answer is stale).
    fn answered(&mut self, id: u64) -> Option<Kind> {
        let position = self.in_flight.iter().position(|sent| sent.id == id)?;
        let kind = self.in_flight[position].kind;
        self.in_flight.drain(..=position);
        Some(kind)
    }

    /// Whether a chunk still in flight begins at `off`.
    fn resent_at(&self, off: u64) -> bool {
        self.in_flight
            .iter()
            .any(|sent| matches!(sent.kind, Kind::Chunk { off: at, .. } if at == off))
    }

    fn shrink(&mut self) {
        self.window = (self.window / 2).max(1);
    }

    /// Takes the device's offset `off` (and `match`) from the reply to request `id`.
    pub(crate) fn on_reply(
        &mut self,
        id: u64,
        off: u64,
        matched: Option<bool>,
    ) -> Result<Step, ClientError> {
        let Some(kind) = self.answered(id) else {
            return Ok(Step::Continue);
        };
        // The device cannot hold more than it was ever sent, except when a first chunk
        // resumes an earlier upload. (A duplicated or re-sent earlier chunk may well be
        // answered with a later offset: that is within what was sent.) A larger offset
        // is a damaged reply (SMP has no checksum of its own): taking it could end the
        // upload early, so it is ignored and the stream goes on from what the device
        // surely holds.
        let credible = match kind {
            Kind::Chunk { off: 0, .. } | Kind::Query => self.len(),
            Kind::Chunk { .. } => self.sent_end,
        };
        if off > credible {
            self.stalls += 1;
            if self.stalls > MAX_STALLS {
                return Err(ClientError::Transfer(format!(
                    "device reports offset {off}, beyond the {credible} bytes sent, again and again"
                )));
            }
            tracing::warn!(
                off,
                credible,
                "reply offset beyond the data sent: ignored as damaged"
            );
            if !self.resent_at(self.acked) {
                self.next = self.acked;
            }
            return Ok(Step::Continue);
        }
        self.started = true;
        self.lost_offset = false;
        let progressed = off > self.acked;
        self.acked = off;
        if progressed {
            (self.stalls, self.busy) = (0, 0);
        }
        if off == self.len() {
            return match matched {
                Some(false) => Err(ClientError::Transfer(
                    "device reports the uploaded image does not match its SHA-256".into(),
                )),
                _ => Ok(Step::Done { matched }),
            };
        }
        if let Kind::Chunk { off: start, end } = kind {
            if start == 0 && off > end {
                self.resumed_at = off;
            }
            if off >= end {
                self.window = (self.window + 1).min(self.max_window);
            }
        }
        if !self.resent_at(off) {
            if off < self.next && !progressed {
                self.stalls += 1;
                if self.stalls > MAX_STALLS {
                    return Err(ClientError::Transfer(format!(
                        "device stopped accepting data at offset {off} ({MAX_STALLS} resends without progress)"
                    )));
                }
                // The chunk sent again after a loss was lost too: ease off, as for a
                // busy reply (the device may be dropping what its buffers cannot hold).
                // A single loss does not narrow the window: on a lossy link that would
                // leave one chunk in flight, whose loss only a timeout reveals.
                if self.stalls > 1 {
                    self.shrink();
                }
            }
            if off != self.next {
                tracing::debug!(
                    from = self.next,
                    to = off,
                    "upload continues at the device's offset"
                );
            }
            self.next = off;
        }
        Ok(Step::Continue)
    }

    /// The device refused chunk `id` as being at the wrong offset without saying which it
    /// expects: ask it ([`wants_query`](Self::wants_query)) before sending on.
    pub(crate) fn on_rejected(&mut self, id: u64) {
        if self.answered(id).is_some() {
            self.lost_offset = true;
        }
    }

    /// Request `id` got a busy reply (ENOMEM, EBUSY): it was not handled. Narrows the
    /// window and sends the chunk again; returns the busy rounds in a row, for the
    /// client's backoff.
    pub(crate) fn on_busy(&mut self, id: u64) -> Result<u32, Exhausted> {
        let Some(kind) = self.answered(id) else {
            return Ok(self.busy);
        };
        self.shrink();
        if self.in_flight.is_empty() {
            self.busy += 1;
            if self.busy > self.busy_retries {
                return Err(Exhausted {
                    attempts: self.busy,
                });
            }
        }
        if let Kind::Chunk { off, .. } = kind {
            if !self.lost_offset && !self.resent_at(off) {
                self.next = self.next.min(off);
            }
        }
        Ok(self.busy)
    }

    /// Request `id` got no answer in time (and goes again, the same frame): narrows the
    /// window.
    pub(crate) fn on_timeout(&mut self, id: u64) {
        if self.is_in_flight(id) {
            self.shrink();
        }
    }

    pub(crate) fn progress(&self) -> Progress {
        Progress {
            done: self.acked,
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
    max_in_flight: usize,
}

/// One request of an upload, as the client sends it.
enum Job<R> {
    /// A chunk.
    Chunk(R),
    /// A question for the device's offset: an ordinary request, with the client's
    /// retries.
    Query(fs::StatusRequest),
}

/// The device's answer to a [`Job`].
#[derive(Debug)]
enum Answer {
    /// The offset the device expects next (and `match`, on the last image chunk).
    Offset { off: u64, matched: Option<bool> },
    /// The chunk was at the wrong offset; the device did not say which it expects.
    Rejected,
    /// ENOMEM or EBUSY: the chunk was not handled.
    Busy(DeviceError),
}

/// Settings of [`Client::upload_file`] and [`Client::download_file`].
#[derive(Debug, Clone)]
pub struct FileTransferOptions {
    /// Compare the device's SHA-256 (or CRC32) of the file with the local data afterwards,
    /// when the device can compute one.
    pub verify: bool,
    /// Most chunks in flight at once, uploading or downloading, as
    /// [`ImageUploadOptions::window`]: `None` (the default) as many as the device's
    /// buffers hold.
    pub window: Option<NonZeroUsize>,
}

impl Default for FileTransferOptions {
    fn default() -> Self {
        Self {
            verify: true,
            window: None,
        }
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
    /// The most chunks that were in flight at once (always 1 for a download).
    pub max_in_flight: usize,
}

impl<T: Transport + 'static> Client<T> {
    /// Uploads an MCUboot image to the device's secondary slot.
    ///
    /// The first chunk carries the image's length and SHA-256: a device that holds an
    /// interrupted upload of the same image continues from where it stopped. Chunks fill
    /// the frame limit. After the first chunk (which goes alone: the device may erase
    /// the slot first), up to [`window`](ImageUploadOptions::window) chunks are in flight
    /// at once, in offset order; the device's offsets drive what is sent next: a lost
    /// chunk is sent again from the offset the device reports, timeouts and busy replies
    /// narrow the window (and back off), accepted chunks widen it again. `progress` is
    /// called whenever the device's offset moves. Dropping the future cancels the upload;
    /// calling this again with the same image resumes it.
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
                options.window,
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
            max_in_flight: sent.max_in_flight,
        })
    }

    /// Uploads `data` to the file `name` on the device, replacing it, then checks the
    /// device's hash of it when `options.verify` is set and the device can compute one.
    ///
    /// Chunks are pipelined as in [`upload_image`](Self::upload_image). A chunk the
    /// device refuses as being at the wrong offset (`FILE_OFFSET_NOT_VALID`) is sent
    /// again from the file length the device reports with the refusal, or, when it
    /// reports none, from the length a status request reads.
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
        let sent = self
            .upload_chunks(data, chunk, timeouts, options.window, progress)
            .await?;
        let verified_with = if options.verify {
            self.verify_file(name, data).await?
        } else {
            None
        };
        Ok(FileTransferSummary {
            len,
            chunks: sent.chunks,
            verified_with,
            max_in_flight: sent.max_in_flight,
        })
    }

    /// Downloads the file `name`; the device's `len` on the first reply says when it is
    /// complete. Checks the device's hash of the file when `options.verify` is set and the
    /// device can compute one.
    ///
    /// Pipelined as uploads are: the first chunk is asked for alone, its answer gives the
    /// chunk size the device sends, and then up to `options.window` requests (by default
    /// [`max_in_flight`](Self::max_in_flight)) ask for the next offsets at once, answers
    /// taken in any order. A short answer leaves a gap that is asked for first. Each
    /// request has the client's timeouts, re-sends and busy retries; one that exhausts
    /// them fails the download.
    pub async fn download_file(
        &self,
        name: &str,
        options: &FileTransferOptions,
        mut progress: impl FnMut(Progress),
    ) -> Result<(Vec<u8>, FileTransferSummary), ClientError> {
        let ask = |off| fs::DownloadRequest {
            off,
            name: name.to_owned(),
        };
        // The first chunk alone: its answer says how long the file is and how much the
        // device sends per answer.
        let first = self.request(&ask(0)).await?;
        let window = options
            .window
            .map_or(usize::MAX, NonZeroUsize::get)
            .min(self.max_in_flight());
        let mut plan = DownloadPlan::start(name, first.off, first.len, &first.data, window)?;
        drop(first);
        progress(Progress {
            done: plan.received(),
            total: plan.len(),
        });
        let mut jobs = JobSlots::new();
        while !plan.is_done() {
            while let Some(off) = plan.next_request() {
                let request = ask(off);
                jobs.start(off, async move { self.request(&request).await });
            }
            if jobs.is_empty() {
                // The plan always has something to ask for or to wait for until it is done.
                return Err(ClientError::Transfer(format!(
                    "download of {name} stalled at {} of {} bytes",
                    plan.received(),
                    plan.len()
                )));
            }
            let (asked, answer) = jobs.next_answer().await;
            let answer = answer?;
            plan.on_reply(asked, answer.off, &answer.data)?;
            progress(Progress {
                done: plan.received(),
                total: plan.len(),
            });
        }
        let (chunks, max_in_flight) = (plan.requests(), plan.peak());
        let data = plan.into_data();
        let verified_with = if options.verify {
            self.verify_file(name, &data).await?
        } else {
            None
        };
        let summary = FileTransferSummary {
            len: data.len() as u64,
            chunks,
            verified_with,
            max_in_flight,
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

    /// Sends the chunks of `data`, each request built by `chunk` for its offset and
    /// filled to the frame limit, until the device has all of it: drives an
    /// [`UploadPlan`] with up to `window` (bounded by [`max_in_flight`](Self::max_in_flight))
    /// chunks in flight.
    ///
    /// Each chunk is one request with the client's timeouts and same-frame re-sends (a
    /// late reply to an earlier attempt still counts, and a chunk that exhausts its
    /// retries fails the upload, as before pipelining). What pipelining adds: a chunk's
    /// request is dropped, and so never re-sent, as soon as a later chunk is answered
    /// (the device has moved past it, or lost it and said so: an overtaken chunk would
    /// only take a device buffer and answer with a stale offset); after a loss the plan
    /// sends from the offset the device reports; busy replies are not retried by the
    /// request but by the plan, in order, after the policy's backoff, and count in rounds
    /// against `busy_retries`; timeouts and busy replies narrow the window.
    async fn upload_chunks<'a, R: ChunkRequest<'a>>(
        &self,
        data: &'a [u8],
        chunk: impl Fn(u64) -> R,
        chunk_timeouts: ChunkTimeouts,
        window: Option<NonZeroUsize>,
        mut progress: impl FnMut(Progress),
    ) -> Result<ChunksSent, ClientError> {
        let policy = &self.options().retry;
        let max_window = window
            .map_or(usize::MAX, NonZeroUsize::get)
            .min(self.max_in_flight());
        let mut plan = UploadPlan::new(data, self.frame_limit(), max_window, policy.busy_retries);
        tracing::debug!(len = plan.len(), window = plan.window(), "upload starts");
        // Requests report their timeouts here as they happen.
        let (timed_out, mut timeouts) = tokio::sync::mpsc::unbounded_channel();
        let mut pending = JobSlots::new();
        let mut pause: Option<Instant> = None;
        loop {
            if pause.is_some_and(|until| Instant::now() >= until) {
                pause = None;
            }
            if pause.is_none() {
                while let Some(off) = plan.next_chunk() {
                    let mut request = chunk(off);
                    let sent = plan.send(&mut request)?;
                    let wait = if sent.off == 0 {
                        chunk_timeouts.first
                    } else if sent.end() == plan.len() {
                        chunk_timeouts.last
                    } else {
                        chunk_timeouts.middle
                    };
                    let job = self.upload_job(Job::Chunk(request), wait, (sent.id, &timed_out));
                    pending.start(sent.id, job);
                }
                if plan.wants_query() {
                    let query = chunk(plan.next_off()).offset_query().ok_or_else(|| {
                        ClientError::Transfer(
                            "the device refused a chunk without saying where it stands".into(),
                        )
                    })?;
                    let id = plan.query_sent();
                    let job =
                        self.upload_job(Job::Query(query), chunk_timeouts.middle, (id, &timed_out));
                    pending.start(id, job);
                }
            }
            if pending.is_empty() && pause.is_none() {
                // The plan always has something to send or to wait for until it is done.
                return Err(ClientError::Transfer(format!(
                    "upload stalled at offset {} of {}",
                    plan.acked(),
                    plan.len()
                )));
            }
            let (id, answer) = tokio::select! {
                biased;
                Some(id) = timeouts.recv() => {
                    plan.on_timeout(id);
                    tracing::debug!(window = plan.window(), "no reply to a chunk yet; sent again");
                    continue;
                }
                answered = pending.next_answer() => answered,
                () = sleep_until(pause) => continue,
            };
            let acked = plan.acked();
            match answer {
                Ok(Answer::Offset { off, matched }) => {
                    let step = plan.on_reply(id, off, matched)?;
                    if plan.acked() != acked {
                        progress(plan.progress());
                    }
                    if let Step::Done { matched } = step {
                        if plan.resumed_at() > 0 {
                            tracing::info!(
                                resumed_at = plan.resumed_at(),
                                "device resumed an interrupted upload"
                            );
                        }
                        return Ok(ChunksSent {
                            chunks: plan.chunks_sent(),
                            resumed_at: plan.resumed_at(),
                            matched,
                            max_in_flight: plan.peak(),
                        });
                    }
                }
                Ok(Answer::Rejected) => plan.on_rejected(id),
                Ok(Answer::Busy(err)) => match plan.on_busy(id) {
                    Ok(rounds) => {
                        let backoff = policy.backoff_after(rounds.saturating_sub(1));
                        tracing::debug!(%err, ?backoff, window = plan.window(), "device busy");
                        pause = Some(Instant::now() + backoff);
                    }
                    Err(Exhausted { attempts }) => {
                        return Err(ClientError::Busy {
                            last: err,
                            attempts,
                        });
                    }
                },
                // A chunk the device never answered, through every re-send.
                Err(err) => return Err(err),
            }
            // Requests the plan no longer waits for: their answers would change nothing.
            pending.retain(|id| plan.is_in_flight(id));
        }
    }

    /// Sends one request of an upload and sorts out its answer; reports each timeout
    /// (after which the same frame goes again) as `report.0` on `report.1`.
    async fn upload_job<'a, R: ChunkRequest<'a>>(
        &self,
        job: Job<R>,
        timeout: Duration,
        report: (u64, &UnboundedSender<u64>),
    ) -> Result<Answer, ClientError> {
        let (id, timed_out) = report;
        let on_timeout = || {
            let _ = timed_out.send(id);
        };
        let request = match job {
            Job::Query(query) => {
                let status = self.request_with_timeout(&query, timeout).await?;
                return Ok(Answer::Offset {
                    off: status.len,
                    matched: None,
                });
            }
            Job::Chunk(request) => request,
        };
        // The chunk's one allocation: its frame, of exactly its size.
        let capacity = header::SIZE + minicbor::len(&request);
        let mut frame = self.encode_frame(R::OP, R::GROUP, R::COMMAND, &request, capacity)?;
        // A damaged reply counts as lost: the chunk goes again (the device answers a
        // chunk it already has with its offset), within the retry policy.
        let mut malformed = 0;
        loop {
            let reply = self
                .request_unchecked(&mut frame, timeout, on_timeout)
                .await?;
            let reply = &reply[header::SIZE..];
            let problem = match smp_proto::reply_error(reply, R::GROUP, false) {
                Ok(None) => match minicbor::decode::<R::Response>(reply) {
                    Ok(response) => {
                        let (off, matched) = R::reply_offset(&response);
                        return Ok(Answer::Offset { off, matched });
                    }
                    Err(err) => err.to_string(),
                },
                Ok(Some(err)) if err.is_back_pressure() => return Ok(Answer::Busy(err)),
                Ok(Some(err)) => {
                    return match R::rejection(&err, reply) {
                        Some(Some(off)) => Ok(Answer::Offset { off, matched: None }),
                        Some(None) => Ok(Answer::Rejected),
                        None => Err(err.into()),
                    };
                }
                Err(err) => err.to_string(),
            };
            if malformed >= self.options().retry.retries {
                return Err(ClientError::Decode {
                    group: R::GROUP,
                    command: R::COMMAND,
                    message: problem,
                });
            }
            malformed += 1;
            tracing::debug!(%problem, "malformed reply to a chunk, taken as lost; sending again");
        }
    }
}

/// The requests of an upload in flight, each a future in a pinned slot of its own.
///
/// A slot is reused once its request has ended ([`Pin::set`] replaces the future in
/// place), so an upload of thousands of chunks allocates only as many slots as it ever
/// had requests in flight at once. Slots in use come first, oldest first.
struct JobSlots<F> {
    slots: Vec<(u64, Pin<Box<Option<F>>>)>,
    /// How many slots (at the front) hold a request.
    active: usize,
}

impl<F: Future> JobSlots<F> {
    fn new() -> Self {
        Self {
            slots: Vec::new(),
            active: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.active == 0
    }

    /// Starts tracking request `id`, answered by `job`.
    fn start(&mut self, id: u64, job: F) {
        if self.active == self.slots.len() {
            self.slots.push((id, Box::pin(Some(job))));
        } else {
            let (slot_id, slot) = &mut self.slots[self.active];
            *slot_id = id;
            slot.set(Some(job));
        }
        self.active += 1;
    }

    /// Drops the request in slot `index` and moves the free slot behind those in use.
    fn free(&mut self, index: usize) {
        self.slots[index].1.set(None);
        let slot = self.slots.remove(index);
        self.slots.push(slot);
        self.active -= 1;
    }

    /// Drops every request whose id `keep` refuses.
    fn retain(&mut self, mut keep: impl FnMut(u64) -> bool) {
        let mut index = 0;
        while index < self.active {
            if keep(self.slots[index].0) {
                index += 1;
            } else {
                self.free(index);
            }
        }
    }

    /// The first request (oldest first) to finish, and its answer; its slot is freed.
    async fn next_answer(&mut self) -> (u64, F::Output) {
        std::future::poll_fn(|cx| {
            for index in 0..self.active {
                let (id, slot) = &mut self.slots[index];
                let Some(job) = slot.as_mut().as_pin_mut() else {
                    continue;
                };
                if let Poll::Ready(output) = job.poll(cx) {
                    let id = *id;
                    self.free(index);
                    return Poll::Ready((id, output));
                }
            }
            Poll::Pending
        })
        .await
    }
}

/// Sleeps until `until`, or forever without it.
async fn sleep_until(until: Option<Instant>) {
    match until {
        Some(until) => tokio::time::sleep_until(until).await,
        None => std::future::pending().await,
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
    use proptest::prelude::*;

    const BUSY_RETRIES: u32 = 20;

    fn image(len: usize) -> Vec<u8> {
        let mut data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        data[..4].copy_from_slice(&[0x3d, 0xb8, 0xf3, 0x96]);
        data
    }

    fn plan(data: &[u8], frame_limit: usize, window: usize) -> UploadPlan<'_> {
        UploadPlan::new(data, frame_limit, window, BUSY_RETRIES)
    }

    /// The image request for the plan's next offset, filled but not recorded as sent.
    fn next<'a>(plan: &UploadPlan<'a>) -> UploadRequest<'a> {
        let mut request = image_chunk(
            plan.next_off(),
            plan.len(),
            &[0xab; 32],
            &ImageUploadOptions::default(),
        );
        plan.fill(&mut request).unwrap();
        request
    }

    /// Sends the next image chunk, which the window must allow.
    fn send<'a>(plan: &mut UploadPlan<'a>) -> (Chunk, UploadRequest<'a>) {
        let off = plan.next_chunk().expect("the window has room");
        let mut request = image_chunk(off, plan.len(), &[0xab; 32], &ImageUploadOptions::default());
        let chunk = plan.send(&mut request).unwrap();
        assert_eq!(
            (chunk.off, chunk.len),
            (request.off, request.data.len() as u64)
        );
        (chunk, request)
    }

    /// Sends chunks until the window is full.
    fn send_all(plan: &mut UploadPlan<'_>) -> Vec<Chunk> {
        let mut sent = Vec::new();
        while plan.next_chunk().is_some() {
            sent.push(send(plan).0);
        }
        sent
    }

    /// Sends the first chunk and has the device accept it.
    fn started<'a>(data: &'a [u8], window: usize) -> UploadPlan<'a> {
        let mut plan = plan(data, 512, window);
        let (first, _) = send(&mut plan);
        plan.on_reply(first.id, first.end(), None).unwrap();
        plan
    }

    #[test]
    fn chunk_sizes_match_the_reference_client() {
        // PROTOCOL.md 5.8: 1472-byte frames, 429,552-byte image.
        let data = image(429_552);
        let mut plan = plan(&data, 1472, 1);
        let (first, request) = send(&mut plan);
        assert_eq!(first.len, 1387);
        assert_eq!(
            (request.len, request.image, request.upgrade),
            (Some(429_552), Some(0), Some(false))
        );
        assert_eq!(header::SIZE + minicbor::len(&request), 1472);
        plan.on_reply(first.id, 1387, None).unwrap();
        let (second, request) = send(&mut plan);
        assert_eq!((second.off, second.len), (1387, 1448));
        assert_eq!((request.len, request.sha.as_ref()), (None, None));
        assert_eq!(header::SIZE + minicbor::len(&request), 1472);
        // At offset 200,000 (a device that resumes there): the offset's CBOR is longer.
        let mut resumed = self::plan(&data, 1472, 1);
        let (first, _) = send(&mut resumed);
        resumed.on_reply(first.id, 200_000, None).unwrap();
        assert_eq!(next(&resumed).data.len(), 1446);
    }

    #[test]
    fn file_chunks_fill_the_frame_too() {
        let data = vec![7u8; 5000];
        let plan = plan(&data, 512, 1);
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
        let mut plan = plan(&data, 512, 1);
        let (first, _) = send(&mut plan);
        // The device resumes an earlier upload at 6000.
        assert_eq!(plan.on_reply(first.id, 6000, None).unwrap(), Step::Continue);
        assert_eq!(plan.resumed_at(), 6000);
        let (chunk, _) = send(&mut plan);
        assert_eq!(chunk.off, 6000);
        // A lost chunk: the device is still at 6000; resend from there.
        plan.on_reply(chunk.id, 6000, None).unwrap();
        let (chunk, _) = send(&mut plan);
        assert_eq!(chunk.off, 6000);
        // The device went back (it restarted the upload).
        plan.on_reply(chunk.id, first.end(), None).unwrap();
        let (chunk, _) = send(&mut plan);
        assert_eq!(chunk.off, first.end());
        // An offset beyond everything sent is a damaged reply: ignored, and the stream
        // goes on from what the device surely holds.
        assert_eq!(
            plan.on_reply(chunk.id, 10_000, None).unwrap(),
            Step::Continue
        );
        assert_eq!(plan.acked(), first.end());
        let (mut chunk, _) = send(&mut plan);
        assert_eq!(chunk.off, first.end());
        let step = loop {
            let matched = (chunk.end() == 10_000).then_some(true);
            match plan.on_reply(chunk.id, chunk.end(), matched).unwrap() {
                Step::Continue => chunk = send(&mut plan).0,
                done => break done,
            }
        };
        assert_eq!(
            step,
            Step::Done {
                matched: Some(true)
            }
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
        // A device that insists on an offset beyond the image.
        let mut plan = plan(&data, 512, 1);
        let mut answer = Ok(Step::Continue);
        for _ in 0..=MAX_STALLS {
            let (first, _) = send(&mut plan);
            assert_eq!(first.off, 0, "ignored: the first chunk goes again");
            answer = plan.on_reply(first.id, 1001, None);
        }
        assert!(
            matches!(answer, Err(ClientError::Transfer(_))),
            "{answer:?}"
        );
        // The image does not match what the device received.
        let mut plan = self::plan(&data, 512, 1);
        let mut last = send(&mut plan).0;
        while last.end() < 1000 {
            plan.on_reply(last.id, last.end(), None).unwrap();
            last = send(&mut plan).0;
        }
        assert!(matches!(
            plan.on_reply(last.id, 1000, Some(false)),
            Err(ClientError::Transfer(_))
        ));
        // A device that answers every chunk with the same offset.
        let mut plan = self::plan(&data, 512, 1);
        let (first, _) = send(&mut plan);
        plan.on_reply(first.id, first.end(), None).unwrap();
        for _ in 0..MAX_STALLS {
            let (chunk, _) = send(&mut plan);
            plan.on_reply(chunk.id, first.end(), None).unwrap();
        }
        let (chunk, _) = send(&mut plan);
        assert!(matches!(
            plan.on_reply(chunk.id, first.end(), None),
            Err(ClientError::Transfer(_))
        ));
    }

    #[test]
    fn a_frame_too_small_for_any_data_is_refused() {
        let data = image(1000);
        let plan = plan(&data, 80, 1);
        let mut request = image_chunk(0, 1000, &[0; 32], &ImageUploadOptions::default());
        assert!(matches!(
            plan.fill(&mut request),
            Err(ClientError::FrameTooLarge { max: 80, .. })
        ));
    }

    #[test]
    fn the_last_chunk_is_exactly_the_rest() {
        let data = image(3000);
        let mut plan = plan(&data, 1472, 1);
        let (first, _) = send(&mut plan);
        plan.on_reply(first.id, 2900, None).unwrap();
        assert_eq!(next(&plan).data.as_ref(), &data[2900..]);
    }

    #[test]
    fn the_first_chunk_goes_alone_then_the_window_fills() {
        let data = image(20_000);
        let mut plan = plan(&data, 512, 3);
        let (first, _) = send(&mut plan);
        assert_eq!(first.off, 0);
        assert_eq!(plan.next_chunk(), None, "nothing goes with the first chunk");
        plan.on_reply(first.id, first.end(), None).unwrap();
        let sent = send_all(&mut plan);
        assert_eq!(sent.len(), 3);
        assert_eq!(sent[0].off, first.end());
        assert!(sent.windows(2).all(|w| w[0].end() == w[1].off));
        assert_eq!((plan.in_flight(), plan.peak()), (3, 3));
        // Each accepted chunk makes room for exactly one more.
        plan.on_reply(sent[0].id, sent[0].end(), None).unwrap();
        let more = send_all(&mut plan);
        assert_eq!(more.len(), 1);
        assert_eq!(more[0].off, sent[2].end());
        assert_eq!(plan.peak(), 3);
    }

    #[test]
    fn a_lost_chunk_is_sent_again_once() {
        let data = image(40_000);
        let mut plan = started(&data, 4);
        let sent = send_all(&mut plan);
        let [a, b, c, d] = sent[..] else {
            panic!("four chunks in flight, got {sent:?}")
        };
        // `a` is lost: the device answers `b`, `c` and `d` with the offset it expects.
        plan.on_reply(b.id, a.off, None).unwrap();
        assert_eq!((plan.next_off(), plan.window()), (a.off, 4));
        let resent = send_all(&mut plan);
        assert_eq!(resent.len(), 2, "c and d still hold two places");
        assert_eq!((resent[0].off, resent[1].off), (a.off, b.off));
        // The answers to `c` and `d` are stale: `a` is on its way again.
        let mut later = Vec::new();
        for stale in [c, d] {
            let next = plan.next_off();
            assert_eq!(
                plan.on_reply(stale.id, a.off, None).unwrap(),
                Step::Continue
            );
            assert_eq!(plan.next_off(), next, "a stale answer resends nothing");
            assert_eq!(plan.window(), 4, "a single loss keeps the window");
            let more = send_all(&mut plan);
            assert_eq!(more.len(), 1);
            assert_eq!(more[0].off, next);
            later.extend(more);
        }
        // The resent `a` is lost as well: the device answers the resent `b` with the
        // same offset. Now the window narrows, to the two chunks still in flight.
        plan.on_reply(resent[1].id, a.off, None).unwrap();
        assert_eq!((plan.next_off(), plan.window()), (a.off, 2));
        assert!(send_all(&mut plan).is_empty());
        plan.on_reply(later[0].id, a.off, None).unwrap();
        let again = send_all(&mut plan);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].off, a.off);
        // It arrives, and the stream goes on.
        plan.on_reply(again[0].id, again[0].end(), None).unwrap();
        assert_eq!(plan.acked(), again[0].end());
        assert_eq!(plan.window(), 3);
    }

    #[test]
    fn duplicate_and_reordered_replies_change_nothing() {
        let data = image(40_000);
        let mut plan = started(&data, 3);
        let sent = send_all(&mut plan);
        // The reply to the second overtakes the reply to the first.
        plan.on_reply(sent[1].id, sent[1].end(), None).unwrap();
        assert!(!plan.is_in_flight(sent[0].id));
        let (acked, next, window) = (plan.acked(), plan.next_off(), plan.window());
        for (id, off) in [
            (sent[0].id, sent[0].end()),
            (sent[1].id, sent[1].end()),
            (sent[0].id, sent[0].off),
        ] {
            assert_eq!(plan.on_reply(id, off, None).unwrap(), Step::Continue);
            assert_eq!(
                (plan.acked(), plan.next_off(), plan.window()),
                (acked, next, window)
            );
        }
        assert_eq!(plan.on_busy(sent[0].id), Ok(0));
        plan.on_timeout(sent[0].id);
        assert_eq!((plan.next_off(), plan.window()), (next, window));
    }

    #[test]
    fn busy_replies_and_timeouts_narrow_the_window_and_success_widens_it() {
        let data = image(100_000);
        let mut plan = started(&data, 4);
        assert_eq!(plan.window(), 4);
        let sent = send_all(&mut plan);
        // The first is refused: it goes again, after the others.
        assert_eq!(plan.on_busy(sent[0].id), Ok(0));
        assert_eq!((plan.window(), plan.next_off()), (2, sent[0].off));
        // The last one times out (and goes again); all are answered with the old offset.
        plan.on_timeout(sent[3].id);
        assert_eq!(plan.window(), 1);
        for chunk in &sent[1..] {
            plan.on_reply(chunk.id, sent[0].off, None).unwrap();
        }
        assert_eq!((plan.in_flight(), plan.next_off()), (0, sent[0].off));
        // Each accepted chunk widens the window by one, up to its maximum.
        for (before, after) in [(1, 2), (2, 4), (4, 4)] {
            let sent = send_all(&mut plan);
            assert_eq!(sent.len(), before);
            for chunk in sent {
                plan.on_reply(chunk.id, chunk.end(), None).unwrap();
            }
            assert_eq!(plan.window(), after);
        }
    }

    #[test]
    fn a_timeout_narrows_the_window_and_keeps_the_chunk() {
        let data = image(40_000);
        let mut plan = started(&data, 3);
        let sent = send_all(&mut plan);
        // The client sends the same frame again; the plan only eases off.
        plan.on_timeout(sent[0].id);
        assert_eq!(plan.window(), 1);
        assert!(plan.is_in_flight(sent[0].id));
        assert_eq!((plan.next_off(), plan.next_chunk()), (sent[2].end(), None));
        // A later answer overtakes it: it leaves the plan, its timeouts count no more.
        plan.on_reply(sent[1].id, sent[1].end(), None).unwrap();
        assert!(!plan.is_in_flight(sent[0].id));
        plan.on_timeout(sent[0].id);
        assert_eq!(plan.window(), 2);
    }

    #[test]
    fn rounds_of_busy_replies_give_up() {
        let data = image(40_000);
        let mut plan = started(&data, 2);
        for round in 1..=BUSY_RETRIES {
            let (chunk, _) = send(&mut plan);
            assert_eq!(plan.on_busy(chunk.id), Ok(round));
        }
        let (chunk, _) = send(&mut plan);
        assert_eq!(
            plan.on_busy(chunk.id),
            Err(Exhausted {
                attempts: BUSY_RETRIES + 1
            })
        );
        // A round counts once, however many chunks it refused; progress resets the count.
        let mut plan = started(&data, 4);
        for _ in 0..2 * BUSY_RETRIES {
            let sent = send_all(&mut plan);
            let (last, older) = sent.split_last().unwrap();
            for chunk in older {
                assert_eq!(plan.on_busy(chunk.id), Ok(0));
            }
            assert_eq!(plan.on_busy(last.id), Ok(1));
            let (chunk, _) = send(&mut plan);
            assert_eq!(chunk.off, sent[0].off);
            plan.on_reply(chunk.id, chunk.end(), None).unwrap();
        }
    }

    #[test]
    fn the_upload_ends_exactly_at_its_length() {
        let data = image(5000);
        let mut plan = started(&data, 16);
        let sent = send_all(&mut plan);
        assert_eq!(sent.last().unwrap().end(), 5000);
        assert!(sent.len() < 16, "the window had room for more");
        assert_eq!(plan.next_chunk(), None, "nothing past the end");
        let (last, rest) = sent.split_last().unwrap();
        for chunk in rest {
            assert_eq!(
                plan.on_reply(chunk.id, chunk.end(), None).unwrap(),
                Step::Continue
            );
        }
        assert_eq!(
            plan.on_reply(last.id, 5000, Some(true)).unwrap(),
            Step::Done {
                matched: Some(true)
            }
        );
    }

    #[test]
    fn an_empty_file_is_one_chunk() {
        let mut plan = plan(&[], 512, 4);
        let mut request = fs::UploadRequest {
            len: Some(0),
            name: "/lfs1/empty".into(),
            ..fs::UploadRequest::default()
        };
        assert_eq!(plan.next_chunk(), Some(0));
        let chunk = plan.send(&mut request).unwrap();
        assert_eq!((chunk.len, plan.next_chunk()), (0, None));
        assert_eq!(
            plan.on_reply(chunk.id, 0, None).unwrap(),
            Step::Done { matched: None }
        );
    }

    #[test]
    fn a_refusal_without_an_offset_asks_the_device() {
        let data = vec![5u8; 20_000];
        let mut plan = plan(&data, 512, 3);
        let file_chunk = |off: u64| fs::UploadRequest {
            len: (off == 0).then_some(20_000),
            off,
            name: "/lfs1/f".into(),
            ..fs::UploadRequest::default()
        };
        let mut sent = Vec::new();
        while let Some(off) = plan.next_chunk() {
            let mut request = file_chunk(off);
            sent.push(plan.send(&mut request).unwrap());
            if off == 0 {
                plan.on_reply(sent[0].id, sent[0].end(), None).unwrap();
            }
        }
        assert_eq!(sent.len(), 4);
        // The second is lost; the third is refused without an offset.
        plan.on_rejected(sent[2].id);
        assert_eq!(plan.next_chunk(), None);
        assert!(plan.wants_query());
        let query = plan.query_sent();
        assert!(!plan.wants_query());
        plan.on_rejected(sent[3].id);
        plan.on_reply(query, sent[1].off, None).unwrap();
        assert_eq!(plan.next_chunk(), Some(sent[1].off));
        // The refusal as Zephyr sends it: FS 11 with the file's length.
        let err = DeviceError {
            group: header::group::FS,
            rc: 11,
            scope: ErrorScope::Group,
            reason: None,
        };
        let payload = b"\xbf\x63err\xbf\x65group\x08\x62rc\x0b\xff\x63len\x19\x05\xdc\xff";
        assert_eq!(
            fs::UploadRequest::rejection(&err, payload),
            Some(Some(1500))
        );
        assert_eq!(fs::UploadRequest::rejection(&err, b"\xa0"), Some(None));
        let other = DeviceError {
            rc: 10,
            ..err.clone()
        };
        assert_eq!(fs::UploadRequest::rejection(&other, payload), None);
        assert_eq!(UploadRequest::rejection(&err, payload), None);
    }

    /// A device that follows Zephyr's image upload rules, for the model test.
    #[derive(Default)]
    struct ModelDevice {
        /// The upload in progress: its length and the bytes received.
        upload: Option<(u64, Vec<u8>)>,
        /// The last complete image.
        slot: Vec<u8>,
    }

    impl ModelDevice {
        fn handle(&mut self, chunk: &UploadRequest<'_>) -> (u64, Option<bool>) {
            if chunk.off == 0 {
                match &self.upload {
                    Some((_, held)) if !held.is_empty() => return (held.len() as u64, None),
                    _ => self.upload = Some((chunk.len.unwrap(), Vec::new())),
                }
            }
            let Some((len, held)) = self.upload.as_mut() else {
                // Forgotten (complete): the device expects a first chunk.
                return (0, None);
            };
            if chunk.off != held.len() as u64 {
                return (held.len() as u64, None);
            }
            held.extend_from_slice(&chunk.data);
            let off = held.len() as u64;
            if off < *len {
                return (off, None);
            }
            self.slot = std::mem::take(held);
            self.upload = None;
            (off, Some(true))
        }
    }

    /// A tiny xorshift generator: the faults of one model run.
    struct Faults(u64);

    impl Faults {
        fn chance(&mut self, percent: u32) -> bool {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % 100) < u64::from(percent)
        }
    }

    #[derive(Debug, Clone, Copy)]
    enum Reply {
        Offset(u64, Option<bool>),
        Busy,
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Whatever the network loses, duplicates or reorders, the device ends up with
        /// exactly the image, no chunk goes past its end or over the frame limit, and the
        /// window is respected.
        #[test]
        fn any_faults_give_the_exact_image(
            seed in 1u64..,
            len in 1usize..30_000,
            window in 1usize..8,
            loss in 0u32..15,
            duplicates in 0u32..10,
            reorder in 0u32..20,
            busy in 0u32..10,
        ) {
            let data = image(len.max(32));
            let frame_limit = 300;
            let mut plan = UploadPlan::new(&data, frame_limit, window, 1000);
            let mut device = ModelDevice::default();
            let mut faults = Faults(seed);
            let mut to_device = VecDeque::new();
            let mut to_client: VecDeque<(u64, Reply)> = VecDeque::new();
            // What the client would send again after a timeout: the same frame.
            let mut requests = std::collections::BTreeMap::new();
            let mut done = None;
            for _ in 0..200_000 {
                while let Some(off) = plan.next_chunk() {
                    let mut request =
                        image_chunk(off, plan.len(), &[1; 32], &ImageUploadOptions::default());
                    let chunk = plan.send(&mut request).unwrap();
                    prop_assert!(header::SIZE + minicbor::len(&request) <= frame_limit);
                    prop_assert!(chunk.end() <= plan.len());
                    prop_assert!(plan.in_flight() <= window);
                    requests.insert(chunk.id, request.clone());
                    if !faults.chance(loss) {
                        if faults.chance(duplicates) {
                            to_device.push_back((chunk.id, request.clone()));
                        }
                        to_device.push_back((chunk.id, request));
                    }
                }
                prop_assert!(!plan.wants_query());
                if !to_device.is_empty() && (to_client.is_empty() || faults.chance(50)) {
                    let (id, request) = to_device.pop_front().unwrap();
                    let reply = if faults.chance(busy) {
                        Reply::Busy
                    } else {
                        let (off, matched) = device.handle(&request);
                        Reply::Offset(off, matched)
                    };
                    if !faults.chance(loss) {
                        if faults.chance(duplicates) {
                            to_client.push_back((id, reply));
                        }
                        to_client.push_back((id, reply));
                        let n = to_client.len();
                        if n >= 2 && faults.chance(reorder) {
                            to_client.swap(n - 1, n - 2);
                        }
                    }
                } else if let Some((id, reply)) = to_client.pop_front() {
                    match reply {
                        Reply::Offset(off, matched) => {
                            if let Step::Done { matched } = plan.on_reply(id, off, matched).unwrap() {
                                done = Some(matched);
                                break;
                            }
                        }
                        Reply::Busy => {
                            plan.on_busy(id).unwrap();
                        }
                    }
                } else {
                    // Nothing on the way: the oldest request in flight times out, and the
                    // client sends it again.
                    requests.retain(|id, _| plan.is_in_flight(*id));
                    let (&oldest, request) = requests.iter().next().unwrap();
                    plan.on_timeout(oldest);
                    if !faults.chance(loss) {
                        to_device.push_back((oldest, request.clone()));
                    }
                }
            }
            prop_assert_eq!(done, Some(Some(true)), "the upload completes");
            prop_assert!(device.slot == data, "the device holds exactly the image");
            prop_assert!(plan.peak() <= window);
        }
    }

    #[tokio::test]
    async fn job_slots_answer_oldest_first_and_are_reused() {
        use tokio::sync::oneshot;
        let mut jobs = JobSlots::new();
        let mut senders = Vec::new();
        for id in 1..=3 {
            let (tx, rx) = oneshot::channel::<u64>();
            senders.push(tx);
            jobs.start(id, rx);
        }
        // Jobs 3 and 2 finish together: the older is answered first.
        let [first, second, third] = <[_; 3]>::try_from(senders).unwrap();
        third.send(30).unwrap();
        second.send(20).unwrap();
        assert_eq!(jobs.next_answer().await, (2, Ok(20)));
        assert_eq!(jobs.next_answer().await, (3, Ok(30)));
        assert!(!jobs.is_empty());
        // Dropping a job the plan no longer waits for ends it: its sender sees it gone.
        jobs.retain(|id| id != 1);
        assert!(jobs.is_empty());
        assert!(first.is_closed());
        // New jobs take the freed slots: no new box.
        for id in 4..=6 {
            let (tx, rx) = oneshot::channel::<u64>();
            tx.send(id * 10).unwrap();
            jobs.start(id, rx);
        }
        assert_eq!(jobs.slots.len(), 3);
        assert_eq!(jobs.next_answer().await, (4, Ok(40)));
    }

    #[test]
    fn crc32_is_ieee() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }
}
