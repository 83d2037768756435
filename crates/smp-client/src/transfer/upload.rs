//! The async driver of uploads: image and file uploads on [`Client`].

use std::borrow::Cow;
use std::num::NonZeroUsize;
use std::time::Duration;

use sha2::{Digest, Sha256};
use smp_transport::Transport;
use smp_transport::header;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

use super::chunk::{ChunkRequest, image_chunk};
use super::persistence::Persistence;
use super::slots::JobSlots;
use super::upload_plan::{Exhausted, Step, UploadPlan};
use crate::messages::fs;
use crate::rto::Phase;
use crate::{
    Client, ClientError, DeviceError, FileTransferOptions, FileTransferSummary, ImageUploadOptions,
    Progress, RetryPolicy, TransferError, UploadSummary,
};

/// Per-attempt timeouts of the first, middle and last chunks (each phase also learns its
/// own retransmission timer).
#[derive(Debug, Clone, Copy)]
struct ChunkTimeouts {
    first: Duration,
    middle: Duration,
    last: Duration,
}

/// A request's per-attempt timeout, and the phase its timer learns in.
type Wait = (Duration, Phase);

/// How to tell that the device holds a whole image although it answered the last chunk
/// with offset 0 (see [`Step::Check`]): the image hash it lists for the secondary slot
/// of image `image`.
#[derive(Debug, Clone, Copy)]
struct ImageCheck {
    hash: [u8; 32],
    image: u32,
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
        let check = mcuboot_hash(image).map(|hash| ImageCheck {
            hash,
            image: options.image.unwrap_or(0),
        });
        let sent = self
            .upload_chunks(
                image,
                |off| image_chunk(off, len, &sha256, options),
                timeouts,
                options.window,
                check,
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
    ///
    /// Once the device holds all of it, the file is closed with the close command: a
    /// refusal makes Zephyr forget the file's length, so after one the device would
    /// leave the file open, and its hash, status and downloads would show the file as it
    /// was before (see the file upload notes in `docs/protocol.md`). A device without
    /// the command (`ENOTSUP`) is left as it is.
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
            .upload_chunks(data, chunk, timeouts, options.window, None, progress)
            .await?;
        self.close_file().await?;
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

    /// Asks the device to close the file an upload left open; a device that has no
    /// such command needs none.
    async fn close_file(&self) -> Result<(), ClientError> {
        match self.request(&fs::CloseRequest).await {
            Ok(_) => Ok(()),
            Err(ClientError::Device(err)) if err.is_not_supported() => {
                tracing::debug!(%err, "the device cannot close files: left as it is");
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    /// Sends the chunks of `data`, each request built by `chunk` for its offset and
    /// filled to the frame limit, until the device has all of it: drives an
    /// [`UploadPlan`] with up to `window` (bounded by [`max_in_flight`](Self::max_in_flight))
    /// chunks in flight.
    ///
    /// Each chunk is one request with the client's timeouts and same-frame re-sends (a
    /// late reply to an earlier attempt still counts). A chunk that exhausts its retries
    /// goes again as a new request if the device took data since the last one did
    /// ([`Persistence`]), and fails the upload otherwise. What pipelining adds: a chunk's
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
        check: Option<ImageCheck>,
        mut progress: impl FnMut(Progress),
    ) -> Result<ChunksSent, ClientError> {
        let policy = &self.options().retry;
        let max_window = window
            .map_or(usize::MAX, NonZeroUsize::get)
            .min(self.max_in_flight());
        let mut plan = UploadPlan::new(data, self.frame_limit(), max_window, policy.busy_retries)
            .resuming(R::RESUMES);
        tracing::debug!(len = plan.len(), window = plan.window(), "upload starts");
        // Requests report their timeouts here as they happen.
        let (timed_out, mut timeouts) = tokio::sync::mpsc::unbounded_channel();
        let mut pending = JobSlots::new();
        let mut pause: Option<Instant> = None;
        let mut persistence = Persistence::default();
        loop {
            if pause.is_some_and(|until| Instant::now() >= until) {
                pause = None;
            }
            if pause.is_none() {
                while let Some((id, job, wait)) = next_job(&mut plan, &chunk, chunk_timeouts)? {
                    pending.start(id, self.upload_job(job, wait, (id, &timed_out)));
                }
            }
            if pending.is_empty() && pause.is_none() {
                // The plan always has something to send or to wait for until it is done.
                return Err(TransferError::Stalled {
                    off: plan.acked(),
                    len: plan.len(),
                }
                .into());
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
            let answer = match answer {
                Err(err @ ClientError::Timeout { .. }) => {
                    if !persistence.ask_again(plan.acked()) {
                        return Err(err);
                    }
                    tracing::info!(%err, "a request of the upload ran out of attempts; as the device took data since, it goes again");
                    plan.on_exhausted();
                    pending.retain(|id| plan.is_in_flight(id));
                    continue;
                }
                answer => answer?,
            };
            match take_answer(&mut plan, id, answer, policy, &mut progress)? {
                Flow::Go => {}
                Flow::Pause(backoff) => pause = Some(Instant::now() + backoff),
                Flow::Done(sent) => return Ok(sent),
                Flow::Check => {
                    let held = match &check {
                        Some(check) => self.holds_image(check).await?,
                        None => false,
                    };
                    tracing::info!(
                        held,
                        "the device answered the last chunk with offset 0: it {}",
                        if held {
                            "holds the image (it forgot the upload once complete)"
                        } else {
                            "lost the upload; starting again"
                        }
                    );
                    if let Step::Done { matched } = plan.on_check(held)? {
                        progress(plan.progress());
                        return Ok(finished(&plan, matched));
                    }
                }
            }
            // Requests the plan no longer waits for: their answers would change nothing.
            pending.retain(|id| plan.is_in_flight(id));
        }
    }

    /// Whether the device's image state lists `check`'s hash for the secondary slot of
    /// its image. A device that cannot say (an error) does not hold it, as far as the
    /// upload knows.
    async fn holds_image(&self, check: &ImageCheck) -> Result<bool, ClientError> {
        let images = match self.image_state().await {
            Ok(images) => images,
            Err(ClientError::Device(err)) => {
                tracing::debug!(%err, "no image state to check the upload against");
                return Ok(false);
            }
            Err(err) => return Err(err),
        };
        Ok(images.iter().any(|state| {
            state.slot == 1
                && state.image.unwrap_or(0) == check.image
                && state
                    .hash
                    .as_ref()
                    .is_some_and(|hash| hash.as_bytes() == check.hash)
        }))
    }

    /// Sends one request of an upload and sorts out its answer; reports each timeout
    /// (after which the same frame goes again) as `report.0` on `report.1`.
    async fn upload_job<'a, R: ChunkRequest<'a>>(
        &self,
        job: Job<R>,
        (timeout, phase): Wait,
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
            let (reply, sample) = self
                .request_unchecked(&mut frame, timeout, phase, on_timeout)
                .await?;
            let reply = &reply[header::SIZE..];
            let verdict = smp_proto::reply_error(reply, R::GROUP, false);
            if !matches!(&verdict, Ok(Some(err)) if err.is_back_pressure()) {
                self.learn(sample);
            }
            let problem = match verdict {
                Ok(None) => match minicbor::decode::<R::Response>(reply) {
                    Ok(response) => {
                        let (off, matched) = R::reply_offset(&response);
                        return Ok(Answer::Offset { off, matched });
                    }
                    Err(err) => err,
                },
                Ok(Some(err)) if err.is_back_pressure() => return Ok(Answer::Busy(err)),
                Ok(Some(err)) => {
                    return match R::rejection(&err, reply) {
                        Some(Some(off)) => Ok(Answer::Offset { off, matched: None }),
                        Some(None) => Ok(Answer::Rejected),
                        None => Err(err.into()),
                    };
                }
                Err(err) => err,
            };
            if malformed >= self.options().retry.retries {
                return Err(ClientError::Decode {
                    group: R::GROUP,
                    command: R::COMMAND,
                    source: problem.into(),
                });
            }
            malformed += 1;
            tracing::debug!(%problem, "malformed reply to a chunk, taken as lost; sending again");
        }
    }
}

/// What the upload does after an answer.
enum Flow {
    /// Ask the device whether it holds the whole image ([`Step::Check`]).
    Check,
    /// Send what the plan allows, wait for the next answer.
    Go,
    /// The device is busy: send nothing more for this long.
    Pause(Duration),
    /// The device has all the data.
    Done(ChunksSent),
}

/// The next request the plan allows now (a chunk, or a question for the device's
/// offset) with its id, per-attempt timeout and phase, recorded as sent.
fn next_job<'a, R: ChunkRequest<'a>>(
    plan: &mut UploadPlan<'a>,
    chunk: &impl Fn(u64) -> R,
    timeouts: ChunkTimeouts,
) -> Result<Option<(u64, Job<R>, Wait)>, ClientError> {
    if let Some(off) = plan.next_chunk() {
        let mut request = chunk(off);
        let sent = plan.send(&mut request)?;
        let wait = if sent.off == 0 {
            (timeouts.first, Phase::First)
        } else if sent.end() == plan.len() {
            (timeouts.last, Phase::Last)
        } else {
            (timeouts.middle, Phase::Other)
        };
        return Ok(Some((sent.id, Job::Chunk(request), wait)));
    }
    if plan.wants_query() {
        let query = chunk(plan.next_off())
            .offset_query()
            .ok_or(TransferError::NoOffset)?;
        let id = plan.query_sent();
        return Ok(Some((
            id,
            Job::Query(query),
            (timeouts.middle, Phase::Other),
        )));
    }
    Ok(None)
}

/// Hands the device's answer to request `id` to the plan, and reports progress.
fn take_answer(
    plan: &mut UploadPlan<'_>,
    id: u64,
    answer: Answer,
    policy: &RetryPolicy,
    progress: &mut impl FnMut(Progress),
) -> Result<Flow, ClientError> {
    match answer {
        Answer::Offset { off, matched } => {
            let acked = plan.acked();
            let step = plan.on_reply(id, off, matched)?;
            if plan.acked() != acked {
                progress(plan.progress());
            }
            match step {
                Step::Continue => Ok(Flow::Go),
                Step::Check => Ok(Flow::Check),
                Step::Done { matched } => Ok(Flow::Done(finished(plan, matched))),
            }
        }
        Answer::Rejected => {
            plan.on_rejected(id);
            Ok(Flow::Go)
        }
        Answer::Busy(err) => match plan.on_busy(id) {
            Ok(rounds) => {
                let backoff = policy.backoff_after(rounds.saturating_sub(1));
                tracing::debug!(%err, ?backoff, window = plan.window(), "device busy");
                Ok(Flow::Pause(backoff))
            }
            Err(Exhausted { attempts }) => Err(ClientError::Busy {
                last: err,
                attempts,
            }),
        },
    }
}

/// What a finished upload did.
fn finished(plan: &UploadPlan<'_>, matched: Option<bool>) -> ChunksSent {
    if plan.resumed_at() > 0 {
        tracing::info!(
            resumed_at = plan.resumed_at(),
            "device resumed an interrupted upload"
        );
    }
    ChunksSent {
        chunks: plan.chunks_sent(),
        resumed_at: plan.resumed_at(),
        matched,
        max_in_flight: plan.peak(),
    }
}

/// The image hash the device lists for a slot that holds `image`: the SHA-256 MCUboot
/// computes over the header area, the body and the protected TLV area (what a valid
/// image's SHA256 TLV carries). `None` for data that is not a whole MCUboot image.
fn mcuboot_hash(image: &[u8]) -> Option<[u8; 32]> {
    smp_mcuboot::Image::parse(image)
        .ok()
        .map(|image| image.computed_hash())
}

/// Sleeps until `until`, or forever without it.
async fn sleep_until(until: Option<Instant>) {
    match until {
        Some(until) => tokio::time::sleep_until(until).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use smp_mcuboot::{Image, ImageBuilder, sample_body};

    use super::mcuboot_hash;

    #[test]
    fn the_mcuboot_hash_is_the_one_the_image_carries() {
        let version = "1.2.3".parse().unwrap();
        // Without and with a protected TLV area (a security counter), and a larger
        // header area.
        for builder in [
            ImageBuilder::new(version),
            ImageBuilder::new(version).security_counter(7),
            ImageBuilder::new(version).header_size(0x400),
        ] {
            let image = builder.build(&sample_body(5000, 3));
            let carried = Image::parse(&image).unwrap().hash().unwrap();
            assert_eq!(mcuboot_hash(&image), Some(carried));
            // Without its TLV area (4 bytes of info, the SHA256 TLV's 4 + 32) the image
            // is not whole.
            assert_eq!(mcuboot_hash(&image[..image.len() - 40]), None);
        }
        assert_eq!(mcuboot_hash(b"not an image at all"), None);
        assert_eq!(mcuboot_hash(&[]), None);
    }
}
