//! The async driver of file downloads, and the check of a transferred file against the
//! device's hash of it.

use std::num::NonZeroUsize;

use sha2::{Digest, Sha256};
use smp_transport::Transport;

use super::download_plan::DownloadPlan;
use super::persistence::Persistence;
use super::slots::JobSlots;
use crate::messages::fs;
use crate::{
    Client, ClientError, FileTransferOptions, FileTransferSummary, HashAlgorithm, Progress,
    TransferError,
};

impl<T: Transport + 'static> Client<T> {
    /// Downloads the file `name`; the device's `len` on the first reply says when it is
    /// complete. Checks the device's hash of the file when `options.verify` is set and the
    /// device can compute one.
    ///
    /// Pipelined as uploads are: the first chunk is asked for alone, its answer gives the
    /// chunk size the device sends, and then up to `options.window` requests (by default
    /// [`max_in_flight`](Self::max_in_flight)) ask for the next offsets at once, answers
    /// taken in any order. A short answer leaves a gap that is asked for first. Each
    /// request has the client's timeouts, re-sends and busy retries; one that exhausts
    /// them is asked again if the device sent data since the last one did, and fails the
    /// download otherwise (as uploads do).
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
        let mut persistence = Persistence::default();
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
                return Err(TransferError::Stalled {
                    off: plan.received(),
                    len: plan.len(),
                }
                .into());
            }
            let (asked, answer) = jobs.next_answer().await;
            let answer = match answer {
                Err(err @ ClientError::Timeout { .. }) => {
                    if !persistence.ask_again(plan.received()) {
                        return Err(err);
                    }
                    tracing::info!(%err, asked, "a request of the download ran out of attempts; as the device sent data since, it goes again");
                    plan.on_exhausted();
                    jobs.retain(|_| false);
                    continue;
                }
                answer => answer?,
            };
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
    pub(crate) async fn verify_file(
        &self,
        name: &str,
        data: &[u8],
    ) -> Result<Option<HashAlgorithm>, ClientError> {
        for algorithm in [HashAlgorithm::Sha256, HashAlgorithm::Crc32] {
            let request = fs::HashRequest {
                name: name.to_owned(),
                r#type: Some(algorithm.as_str().to_owned()),
                ..fs::HashRequest::default()
            };
            let reply = match self.request(&request).await {
                Ok(reply) => reply,
                Err(ClientError::Device(err)) if err.is_unsupported_hash() => {
                    tracing::debug!(%err, %algorithm, "device cannot hash the file this way");
                    continue;
                }
                Err(err) => return Err(err),
            };
            let expected = match algorithm {
                HashAlgorithm::Sha256 => fs::HashOutput::Bytes(Sha256::digest(data).to_vec()),
                HashAlgorithm::Crc32 => fs::HashOutput::Int(crc32fast::hash(data).into()),
            };
            if reply.output != expected || reply.len != data.len() as u64 {
                return Err(TransferError::HashMismatch {
                    name: name.to_owned(),
                    algorithm,
                    device_len: reply.len,
                    local_len: data.len() as u64,
                }
                .into());
            }
            return Ok(Some(algorithm));
        }
        Ok(None)
    }
}
