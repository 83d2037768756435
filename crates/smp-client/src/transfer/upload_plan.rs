//! The plan of one upload, without IO: [`UploadPlan`].

use std::collections::VecDeque;

use smp_transport::header;

use super::chunk::{ChunkRequest, fit_data};
use crate::{ClientError, Progress, TransferError};

/// Rewinds in a row, without the device's offset moving, before an upload gives up.
const MAX_STALLS: u32 = 8;

/// Why an upload plan gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlanError {
    /// The frame limit leaves no room for data beside the request's other fields.
    FrameTooSmall {
        /// The smallest frame with one data byte.
        needed: usize,
        /// The frame limit.
        limit: usize,
    },
    /// The device kept reporting an offset beyond everything sent.
    OffsetBeyondSent { off: u64, sent: u64 },
    /// Chunks sent again from the device's offset were not accepted, time after time.
    Stalled { off: u64, len: u64 },
    /// The device says the image does not match its announced SHA-256.
    ImageMismatch,
}

impl From<PlanError> for ClientError {
    fn from(err: PlanError) -> Self {
        match err {
            PlanError::FrameTooSmall { needed, limit } => Self::FrameTooLarge {
                len: needed,
                max: limit,
            },
            PlanError::OffsetBeyondSent { off, sent } => {
                TransferError::OffsetBeyondSent { off, sent }.into()
            }
            PlanError::Stalled { off, len } => TransferError::Stalled { off, len }.into(),
            PlanError::ImageMismatch => TransferError::ImageMismatch.into(),
        }
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
    /// The last chunk was answered with offset 0 although the device held everything
    /// before it: either the device completed the upload and forgot it (Zephyr does, so
    /// a re-sent last chunk after a lost reply is answered this way) or it lost the
    /// upload (a reboot). The client asks the device whether it holds the image and
    /// tells the plan ([`on_check`](UploadPlan::on_check)); nothing is sent meanwhile.
    Check,
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
/// What it relies on (Zephyr's `img_mgmt`, docs/protocol.md 5): the device handles requests
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
/// - On a timeout the client re-sends the same frame, as for any request (under a new
///   sequence number, a late reply to any attempt still counting: a slot erase that
///   outlasts the first chunk's timeout); the plan only narrows the window. An
///   overtaken chunk is never re-sent: it leaves the plan, and the client drops its
///   request, as soon as a later chunk is answered.
/// - A busy reply (ENOMEM, EBUSY) means the chunk was not written: it is sent again,
///   after the client's backoff. Busy replies count against the retry policy in rounds:
///   once when nothing sent later is still in flight.
/// - The window starts at its maximum after the first reply, halves (down to 1) on
///   every busy reply, on a timeout (once for the requests in flight then: a burst of
///   losses is one event), and on the loss of a chunk that was itself a resend, and
///   grows by one on every accepted chunk. With the client's learned retransmission
///   timers a timeout comes a few round trips after a loss, so this is how the window
///   narrows on loss.
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
    /// Waiting for the client to check whether the device holds the whole data.
    checking: bool,
    /// The first request sent after the window last narrowed on a timeout.
    narrowed_before: u64,
    /// Whether the device may resume an earlier upload at the first chunk.
    resumes: bool,
    /// The offset a device that handled the first chunk more than once counts but does
    /// not hold (see [`resuming`](Self::resuming)): the next answer may carry it.
    miscount: Option<u64>,
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
            checking: false,
            narrowed_before: 0,
            resumes: true,
            miscount: None,
            chunks: 0,
            peak: 0,
            resumed_at: 0,
        }
    }

    /// Whether the device may answer the first chunk with an offset beyond it, resuming
    /// an earlier upload there (images; the default). When it may not (files), such an
    /// answer means the device handled the first chunk more than once (a re-send or a
    /// duplicate): Zephyr's file system group starts the file anew on each copy, so it
    /// holds the chunk once, but counts every copy in the offset it answers and expects
    /// (docs/protocol.md 2.1). The plan then goes on after the chunk; the device refuses
    /// that with its count, which the plan does not take (the device still holds the
    /// first chunk alone), and forgets the count as it closes the file: the chunk sent
    /// again is taken.
    pub(crate) fn resuming(mut self, resumes: bool) -> Self {
        self.resumes = resumes;
        self
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
        let ready = !self.lost_offset && !self.checking && !alone;
        (ready && more && self.in_flight.len() < self.window).then_some(self.next)
    }

    /// Fills `request` (built for [`next_off`](Self::next_off), data empty) with as much
    /// data as the frame limit allows; returns how much.
    pub(crate) fn fill<R: ChunkRequest<'a>>(&self, request: &mut R) -> Result<usize, PlanError> {
        let empty = header::SIZE + minicbor::len(&*request);
        let start = usize::try_from(self.next)
            .unwrap_or(usize::MAX)
            .min(self.data.len());
        let room = fit_data(self.frame_limit, empty);
        if room == 0 && start < self.data.len() {
            return Err(PlanError::FrameTooSmall {
                needed: empty + 1,
                limit: self.frame_limit,
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
    ) -> Result<Chunk, PlanError> {
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
            && !self.checking
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
    ) -> Result<Step, PlanError> {
        let Some(kind) = self.answered(id) else {
            return Ok(Step::Continue);
        };
        let miscount = self.miscount.take();
        let off = match kind {
            Kind::Chunk { off: 0, end } if !self.resumes && off > end => {
                tracing::debug!(off, end, "first chunk handled more than once: held once");
                self.miscount = Some(off);
                end
            }
            _ if miscount == Some(off) => self.acked,
            _ => off,
        };
        let credible = self.credible_offset(kind);
        if off > credible {
            return self.ignore_damaged(off, credible);
        }
        if let Kind::Chunk { off: start, end } = kind {
            if off == 0 && start > 0 && end == self.len() && self.acked >= start {
                self.checking = true;
                return Ok(Step::Check);
            }
        }
        let progressed = self.take_offset(off);
        if off == self.len() {
            return match matched {
                Some(false) => Err(PlanError::ImageMismatch),
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
            self.resume_from(off, progressed)?;
        }
        Ok(Step::Continue)
    }

    /// The largest offset a reply to `kind` can carry: the device cannot hold more than
    /// it was ever sent, except when a first chunk resumes an earlier upload (or a query
    /// asks). A duplicated or re-sent earlier chunk may well be answered with a later
    /// offset: that is within what was sent.
    fn credible_offset(&self, kind: Kind) -> u64 {
        match kind {
            Kind::Chunk { off: 0, .. } | Kind::Query => self.len(),
            Kind::Chunk { .. } => self.sent_end,
        }
    }

    /// A reply whose offset is beyond what the device can hold is damaged (SMP has no
    /// checksum of its own): taking it could end the upload early, so it is ignored and
    /// the stream goes on from what the device surely holds; one that keeps coming ends
    /// the upload.
    fn ignore_damaged(&mut self, off: u64, credible: u64) -> Result<Step, PlanError> {
        self.stalls += 1;
        if self.stalls > MAX_STALLS {
            return Err(PlanError::OffsetBeyondSent {
                off,
                sent: credible,
            });
        }
        tracing::warn!(
            off,
            credible,
            "reply offset beyond the data sent: ignored as damaged"
        );
        if !self.resent_at(self.acked) {
            self.next = self.acked;
        }
        Ok(Step::Continue)
    }

    /// Records the device's offset as what it holds; returns whether it moved forward
    /// (which resets the stall and busy counts).
    fn take_offset(&mut self, off: u64) -> bool {
        self.started = true;
        self.lost_offset = false;
        let progressed = off > self.acked;
        self.acked = off;
        if progressed {
            (self.stalls, self.busy) = (0, 0);
        }
        progressed
    }

    /// The stream broke (no chunk in flight begins at the device's offset `off`): the
    /// next chunk goes there. Going back without progress counts as a stall.
    fn resume_from(&mut self, off: u64, progressed: bool) -> Result<(), PlanError> {
        if off < self.next && !progressed {
            self.stalls += 1;
            if self.stalls > MAX_STALLS {
                return Err(PlanError::Stalled {
                    off,
                    len: self.len(),
                });
            }
            // The chunk sent again after a loss was lost too: ease off, as for a busy
            // reply (the device may be dropping what its buffers cannot hold). A single
            // loss does not narrow the window: on a lossy link that would leave one
            // chunk in flight, whose loss only a timeout reveals.
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
        Ok(())
    }

    /// What the client found after [`Step::Check`]: whether the device holds the whole
    /// data. If it does, the upload is done (`matched`: the device's state showed the
    /// image); if not, the device lost the upload and it starts again from offset 0, as
    /// the device said.
    pub(crate) fn on_check(&mut self, held: bool) -> Result<Step, PlanError> {
        self.checking = false;
        if held {
            self.take_offset(self.len());
            return Ok(Step::Done {
                matched: Some(true),
            });
        }
        let progressed = self.take_offset(0);
        self.resume_from(0, progressed)?;
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

    /// A request ran out of attempts, and the upload goes on (see
    /// [`Persistence`](super::persistence::Persistence)). The requests in flight met the
    /// same silence: all of them are dropped, and the upload starts again from what the
    /// device holds, one request at a time (as TCP does after a retransmission timeout).
    /// A lost offset is asked for again.
    pub(crate) fn on_exhausted(&mut self) {
        self.in_flight.clear();
        self.window = 1;
        self.next = self.acked;
    }

    /// Request `id` got no answer in time (and goes again, the same frame): narrows the
    /// window, once per loss: not again for requests sent before it last narrowed on a
    /// timeout (their timers expire in the same burst; TCP too reduces its window once
    /// per window of data lost, RFC 6582).
    pub(crate) fn on_timeout(&mut self, id: u64) {
        if self.is_in_flight(id) && id >= self.narrowed_before {
            self.shrink();
            self.narrowed_before = self.next_id;
        }
    }

    pub(crate) fn progress(&self) -> Progress {
        Progress {
            done: self.acked,
            total: self.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::chunk::{cbor_len_extra, image_chunk};
    use super::*;
    use crate::messages::fs;
    use crate::messages::image::UploadRequest;
    use crate::{DeviceError, ErrorScope, ImageUploadOptions};

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
        // docs/protocol.md 5.8: 1472-byte frames, 429,552-byte image.
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
    fn after_a_request_runs_out_the_upload_starts_again_from_the_devices_offset() {
        let data = image(10_000);
        let mut plan = started(&data, 4);
        let acked = plan.acked();
        let sent = send_all(&mut plan);
        assert_eq!(sent.len(), 4);
        plan.on_exhausted();
        assert_eq!((plan.in_flight(), plan.window()), (0, 1));
        assert_eq!(plan.next_chunk(), Some(acked));
        for chunk in &sent {
            assert!(!plan.is_in_flight(chunk.id));
        }
        // The window grows again as the device takes chunks.
        let (chunk, _) = send(&mut plan);
        assert_eq!(plan.next_chunk(), None);
        plan.on_reply(chunk.id, chunk.end(), None).unwrap();
        assert_eq!(plan.window(), 2);
    }

    #[test]
    fn a_first_file_chunk_answered_beyond_its_end_is_held_once() {
        let data = image(10_000);
        // An image: the device resumes an earlier upload there.
        let mut plan = plan(&data, 512, 4);
        let (first, _) = send(&mut plan);
        plan.on_reply(first.id, 2 * first.end(), None).unwrap();
        assert_eq!(
            (plan.acked(), plan.resumed_at()),
            (2 * first.end(), 2 * first.end())
        );
        // A file: the device handled the first chunk twice (Zephyr counts both copies
        // but holds one). The next chunk goes right after it.
        let mut plan = self::plan(&data, 512, 4).resuming(false);
        let (first, _) = send(&mut plan);
        plan.on_reply(first.id, 2 * first.end(), None).unwrap();
        assert_eq!((plan.acked(), plan.resumed_at()), (first.end(), 0));
        let sent = send_all(&mut plan);
        assert_eq!(sent[0].off, first.end());
        // The device refuses it with its count and closes the file: the count is not
        // what it holds, and the chunk goes again.
        plan.on_reply(sent[0].id, 2 * first.end(), None).unwrap();
        assert_eq!(plan.acked(), first.end());
        assert_eq!(plan.next_chunk(), Some(first.end()));
        // Reopened, it refuses the chunks behind with the file's true length.
        plan.on_reply(sent[1].id, first.end(), None).unwrap();
        plan.on_reply(sent[2].id, first.end(), None).unwrap();
        assert_eq!(plan.acked(), first.end());
        assert_eq!(plan.next_chunk(), Some(first.end()));
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
        assert_eq!(
            answer,
            Err(PlanError::OffsetBeyondSent {
                off: 1001,
                sent: 1000
            })
        );
        // The image does not match what the device received.
        let mut plan = self::plan(&data, 512, 1);
        let mut last = send(&mut plan).0;
        while last.end() < 1000 {
            plan.on_reply(last.id, last.end(), None).unwrap();
            last = send(&mut plan).0;
        }
        assert_eq!(
            plan.on_reply(last.id, 1000, Some(false)),
            Err(PlanError::ImageMismatch)
        );
        // A device that answers every chunk with the same offset.
        let mut plan = self::plan(&data, 512, 1);
        let (first, _) = send(&mut plan);
        plan.on_reply(first.id, first.end(), None).unwrap();
        for _ in 0..MAX_STALLS {
            let (chunk, _) = send(&mut plan);
            plan.on_reply(chunk.id, first.end(), None).unwrap();
        }
        let (chunk, _) = send(&mut plan);
        assert_eq!(
            plan.on_reply(chunk.id, first.end(), None),
            Err(PlanError::Stalled {
                off: first.end(),
                len: 1000
            })
        );
    }

    #[test]
    fn a_frame_too_small_for_any_data_is_refused() {
        let data = image(1000);
        let plan = plan(&data, 80, 1);
        let mut request = image_chunk(0, 1000, &[0; 32], &ImageUploadOptions::default());
        assert!(matches!(
            plan.fill(&mut request),
            Err(PlanError::FrameTooSmall { limit: 80, .. })
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
        // The other chunks in flight then time out too: the same loss, no further
        // narrowing (the window is 1 already, so widen it first to see).
        plan.window = 3;
        plan.on_timeout(sent[1].id);
        plan.on_timeout(sent[2].id);
        assert_eq!(plan.window(), 3);
        plan.window = 1;
        // A later answer overtakes it: it leaves the plan, its timeouts count no more.
        plan.on_reply(sent[1].id, sent[1].end(), None).unwrap();
        assert!(!plan.is_in_flight(sent[0].id));
        plan.on_timeout(sent[0].id);
        assert_eq!(plan.window(), 2);
        // A chunk sent after the narrowing narrows it again when it times out.
        let (later, _) = send(&mut plan);
        plan.on_timeout(later.id);
        assert_eq!(plan.window(), 1);
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
    fn a_last_chunk_answered_with_offset_0_is_checked_before_starting_again() {
        let data = image(5000);
        for held in [true, false] {
            let mut plan = started(&data, 16);
            let sent = send_all(&mut plan);
            let (last, rest) = sent.split_last().unwrap();
            for chunk in rest {
                plan.on_reply(chunk.id, chunk.end(), None).unwrap();
            }
            // The reply to the last chunk was lost; the chunk went again, and the device,
            // which forgets a complete upload, answers offset 0.
            assert_eq!(plan.on_reply(last.id, 0, None).unwrap(), Step::Check);
            assert_eq!(plan.next_chunk(), None, "nothing goes during the check");
            assert!(!plan.wants_query());
            if held {
                assert_eq!(
                    plan.on_check(true).unwrap(),
                    Step::Done {
                        matched: Some(true)
                    }
                );
                assert_eq!(plan.acked(), 5000);
            } else {
                // The device lost the upload (a reboot): all over again.
                assert_eq!(plan.on_check(false).unwrap(), Step::Continue);
                assert_eq!(plan.next_chunk(), Some(0));
            }
        }
        // Offset 0 for a chunk before the last one, or while the device did not hold
        // everything before the last one, is a lost upload as before: no check.
        let mut plan = started(&data, 16);
        let sent = send_all(&mut plan);
        assert_eq!(plan.on_reply(sent[1].id, 0, None).unwrap(), Step::Continue);
        assert_eq!(plan.next_chunk(), Some(0));
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
                            let mut step = plan.on_reply(id, off, matched).unwrap();
                            if step == Step::Check {
                                // The client asks the device's image state.
                                step = plan.on_check(device.slot == data).unwrap();
                            }
                            if let Step::Done { matched } = step {
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
}
