//! The async driver of an upgrade: [`Client::upgrade`].

use std::time::Duration;

use smp_proto::ImageHash;
use smp_proto::messages::image::{ImageState, SetStateRequest};
use smp_proto::messages::os::ResetRequest;
use smp_transport::{Transport, TransportError};
use tokio::time::Instant;

use super::plan::{Next, Poll, UpgradePlan};
use super::{UpgradeError, UpgradeEvent, UpgradeMode, UpgradeOptions, UpgradeReport, UpgradeStep};
use crate::{Client, ClientError};

/// The first pause between polls of a rebooting device; it doubles up to [`MAX_POLL_PAUSE`].
const FIRST_POLL_PAUSE: Duration = Duration::from_millis(100);
const MAX_POLL_PAUSE: Duration = Duration::from_secs(2);

impl<T: Transport + 'static> Client<T> {
    /// Upgrades the device to the MCUboot image `image`: upload, mark for test, reset,
    /// wait for the device, confirm (the [module docs](crate::upgrade) give every rule).
    ///
    /// `events` hears each step start and end, and the upload's progress. The result is
    /// the outcome (the new image running, or the device rolled back to the old one)
    /// with each step's time; an upgrade that cannot go on is an error
    /// ([`UpgradeError`] for the upgrade's own reasons). Dropping the future at any point
    /// leaves a device the next call continues from.
    pub async fn upgrade(
        &self,
        image: &[u8],
        options: &UpgradeOptions,
        mut events: impl FnMut(UpgradeEvent),
    ) -> Result<UpgradeReport, ClientError> {
        let parsed = smp_mcuboot::Image::parse(image).map_err(UpgradeError::NotAnImage)?;
        let hash = ImageHash::from(parsed.hash().ok_or(UpgradeError::NoHash)?);
        let mut report = UpgradeReport {
            outcome: super::UpgradeOutcome::RolledBack { running: None },
            hash: hash.clone(),
            version: parsed.header.version.to_string(),
            steps: Vec::new(),
            upload: None,
            resets: 0,
            mode: UpgradeMode::Application,
        };
        let mut plan = UpgradePlan::new(hash, options.confirm, options.permanent, options.force);

        let mut next = None;
        // When the last reset was sent.
        let mut reset_at = Instant::now();
        // The link opened again after it closed while the device restarted (a serial
        // port that vanished): used from then on instead of `self`.
        let mut reopened: Option<Client<T>> = None;
        loop {
            let link = reopened.as_ref().unwrap_or(self);
            let (this, acknowledged) = match &next {
                None => (UpgradeStep::Inspect, false),
                Some(Next::Done(outcome)) => {
                    report.outcome = outcome.clone();
                    report.resets = plan.resets();
                    report.mode = plan.mode();
                    tracing::info!(outcome = ?report.outcome, "upgrade: done");
                    return Ok(report);
                }
                Some(Next::Upload) => (UpgradeStep::Upload, false),
                Some(Next::Mark) => (UpgradeStep::Mark, false),
                Some(Next::Reset) => (UpgradeStep::Reset, false),
                Some(Next::Wait { acknowledged }) => (UpgradeStep::Wait, *acknowledged),
                Some(Next::Confirm) => (UpgradeStep::Confirm, false),
            };
            events(UpgradeEvent::Started(this));
            let started = Instant::now();
            let decided = match this {
                UpgradeStep::Inspect => {
                    let next = plan.start(&link.image_state().await?)?;
                    if plan.mode() == UpgradeMode::SerialRecovery {
                        tracing::info!("upgrade: the device answers as MCUboot's serial recovery");
                    }
                    next
                }
                UpgradeStep::Upload => {
                    let summary = link
                        .upload_image(image, &options.upload, |p| events(UpgradeEvent::Upload(p)))
                        .await?;
                    report.upload = Some(summary);
                    plan.uploaded()
                }
                UpgradeStep::Mark => {
                    let request = SetStateRequest {
                        hash: Some(plan.hash().clone()),
                        confirm: plan.permanent(),
                    };
                    link.request(&request).await?;
                    plan.marked()
                }
                UpgradeStep::Reset => {
                    if !plan.reset_sent() {
                        return Err(UpgradeError::NotRebooted {
                            resets: plan.resets(),
                        }
                        .into());
                    }
                    reset_at = Instant::now();
                    plan.reset_done(link.reset_once(options).await?)
                }
                UpgradeStep::Wait => {
                    let images = self
                        .wait_for_boot(&mut reopened, &plan, acknowledged, reset_at, options)
                        .await?;
                    plan.rebooted(&images, acknowledged)?
                }
                UpgradeStep::Confirm => {
                    let images = link.confirm_image(Some(plan.hash())).await?;
                    plan.confirmed(&images)?
                }
            };
            let elapsed = started.elapsed();
            report.steps.push((this, elapsed));
            events(UpgradeEvent::Finished {
                step: this,
                elapsed,
            });
            tracing::debug!(step = %this, ?elapsed, next = ?decided, "upgrade step done");
            next = Some(decided);
        }
    }

    /// Sends one reset, never twice: true when the device acknowledged it. No reply
    /// means it may or may not have arrived (the caller finds out from the state).
    async fn reset_once(&self, options: &UpgradeOptions) -> Result<bool, ClientError> {
        let wait = options.poll_timeout.max(self.options().retry.timeout);
        match self.request_once(&ResetRequest::default(), wait).await {
            Ok(_) => Ok(true),
            // A link that closes at once is a port that vanished as the device reset.
            Err(ClientError::Timeout { .. } | ClientError::Transport(_) | ClientError::Closed) => {
                tracing::debug!("upgrade: no reply to the reset; it may not have arrived");
                Ok(false)
            }
            Err(err) => Err(err),
        }
    }

    /// Leaves the device alone until [`quiet_after_reset`](UpgradeOptions::quiet_after_reset)
    /// after the reset (sent at `reset_at`), then polls the image state, pausing longer
    /// each time, until the device answers something the plan decides on (see
    /// [`UpgradePlan::poll`]). Gives up after the reset timeout: with the last state it
    /// answered, or with [`UpgradeError::NeverCameBack`] when it answered nothing.
    ///
    /// A link that closed (a serial port that vanished while a USB device re-enumerates)
    /// is opened again at each poll, if the client knows how ([`Client::set_reopen`]),
    /// and the new client, kept in `reopened`, serves the rest of the upgrade.
    async fn wait_for_boot(
        &self,
        reopened: &mut Option<Client<T>>,
        plan: &UpgradePlan,
        acknowledged: bool,
        reset_at: Instant,
        options: &UpgradeOptions,
    ) -> Result<Vec<ImageState>, ClientError> {
        let deadline = Instant::now() + options.reset_timeout;
        tokio::time::sleep_until((reset_at + options.quiet_after_reset).min(deadline)).await;
        let mut pause = FIRST_POLL_PAUSE;
        let mut last = None;
        loop {
            let link = reopened.as_ref().unwrap_or(self);
            let answer = tokio::time::timeout(options.poll_timeout, link.image_state()).await;
            match answer {
                Ok(Ok(images)) => match plan.poll(&images, acknowledged, reset_at.elapsed()) {
                    Poll::KeepWaiting => {
                        tracing::debug!("upgrade: the device answers, not rebooted yet");
                        last = Some(images);
                    }
                    Poll::Decide => return Ok(images),
                },
                Ok(Err(ClientError::Closed | ClientError::Transport(TransportError::Closed))) => {
                    match self.reopened().await {
                        Some(Ok(client)) => {
                            tracing::info!("upgrade: the link closed; opened it again");
                            *reopened = Some(client);
                        }
                        Some(Err(err)) => tracing::debug!(
                            err = %crate::ErrorChain(&err),
                            "upgrade: the link closed and cannot be opened yet"
                        ),
                        None => tracing::debug!("upgrade: the link closed"),
                    }
                }
                Ok(Err(err)) => {
                    tracing::debug!(err = %crate::ErrorChain(&err), "upgrade: poll failed")
                }
                Err(_) => tracing::debug!("upgrade: no answer yet"),
            }
            if Instant::now() + pause > deadline {
                return last.ok_or_else(|| {
                    UpgradeError::NeverCameBack {
                        waited: options.reset_timeout,
                    }
                    .into()
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_POLL_PAUSE);
        }
    }
}
