//! One call for a safe firmware update: [`Client::upgrade`](crate::Client::upgrade).
//!
//! The steps, each decided from the image state the device reports (the plan, without
//! IO, is in `upgrade/plan.rs`; the async driver in `upgrade/driver.rs`):
//!
//! 1. **Inspect**: read the image state. The image already running and confirmed: done,
//!    nothing sent. Running but not confirmed (an earlier upgrade reset it): confirm.
//!    Already uploaded: skip the upload. Another image pending, or the running image
//!    unconfirmed (slot 1 then holds the image the device would fall back to): stop,
//!    unless [`force`](UpgradeOptions::force).
//! 2. **Upload** to the secondary slot, resuming an interrupted upload.
//! 3. **Mark** the image for test (for good with [`permanent`](UpgradeOptions::permanent)).
//! 4. **Reset**, sent once ([`Client::request_once`](crate::Client::request_once)): a
//!    second reset after the device booted the test image would make MCUboot revert it.
//!    A reset with no reply may never have arrived; it is sent again only if the device
//!    answers again still waiting to boot the image.
//! 5. **Wait** for the device to come back: polls its image state with backoff up to
//!    [`reset_timeout`](UpgradeOptions::reset_timeout). A link that closed meanwhile (a
//!    serial port that vanished while a USB device re-enumerates) is opened again at each
//!    poll, as [`Client::set_reopen`](crate::Client::set_reopen) says (clients from
//!    [`Client::connect_serial`](crate::Client::connect_serial) know how), and serves the
//!    rest of the upgrade. The new image running means success, then
//! 6. **Confirm** (unless
//!    [`confirm`](UpgradeOptions::confirm) is off); the old one running means the device
//!    rolled back: [`UpgradeOutcome::RolledBack`], an outcome, not an error.
//!
//! Dropping the future at any step leaves the device in a state the next upgrade
//! continues from, because every decision comes from the device's state.
//!
//! **MCUboot serial recovery.** When the device answering is the bootloader itself
//! (MCUboot's serial recovery, one slot), the first image state says so: its entries
//! carry no flags (an application flags the image it runs `active`), and there are
//! none when slot 0 is empty. The upgrade then uploads the image to slot 0 and resets;
//! there is nothing to mark, test or confirm. It waits for the application to answer
//! running the image ([`UpgradeReport::mode`] is [`UpgradeMode::SerialRecovery`]). Slot
//! 0 already holding the image needs only the reset; an application already running it
//! is upgraded to nothing.
//!
//! **After a reset** the device is left alone for
//! [`quiet_after_reset`](UpgradeOptions::quiet_after_reset) before it is polled: the old
//! application still answers for a moment (Zephyr restarts 250 ms after its reply), and
//! a bootloader busy swapping images does not read its serial port; bytes sent then are
//! lost at best, and on the nRF51 they leave the application's UART deaf for good
//! (measured on the `qemu_cortex_m0` fixture: see `docs/interop.md`). An answer that
//! still shows the old image waiting to boot never counts as the outcome: after a reset
//! the device acknowledged, the upgrade waits on; after one without a reply, it is sent
//! again only when that answer comes well after any restart delay.

mod driver;
pub(crate) mod plan;

use std::time::Duration;

use smp_proto::ImageHash;

use crate::{ImageUploadOptions, Progress, UploadSummary};

/// Settings of [`Client::upgrade`](crate::Client::upgrade): the defaults, changed with the
/// `with_*` methods.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UpgradeOptions {
    /// How the image is uploaded (image number, chunk timeouts, window).
    pub upload: ImageUploadOptions,
    /// Confirm the new image once it runs (default). Off: leave it running in test mode,
    /// so that the next reset reverts it unless something confirms it.
    pub confirm: bool,
    /// Mark the image for good instead of for test: MCUboot will not revert it.
    pub permanent: bool,
    /// Upgrade even when another image is pending or the running image is unconfirmed.
    pub force: bool,
    /// How long the device may take to come back after a reset.
    pub reset_timeout: Duration,
    /// How long each poll waits for the device's answer while it reboots.
    pub poll_timeout: Duration,
    /// How long the device is left alone after a reset before the first poll (see the
    /// [module docs](self)); counted from when the reset was sent.
    pub quiet_after_reset: Duration,
}

impl Default for UpgradeOptions {
    fn default() -> Self {
        Self {
            upload: ImageUploadOptions::default(),
            confirm: true,
            permanent: false,
            force: false,
            reset_timeout: Duration::from_secs(60),
            poll_timeout: Duration::from_secs(1),
            quiet_after_reset: Duration::from_secs(1),
        }
    }
}

crate::with_setters!(UpgradeOptions {
    /// Sets [`upload`](Self::upload).
    with_upload => upload: ImageUploadOptions,
    /// Sets [`confirm`](Self::confirm).
    with_confirm => confirm: bool,
    /// Sets [`permanent`](Self::permanent).
    with_permanent => permanent: bool,
    /// Sets [`force`](Self::force).
    with_force => force: bool,
    /// Sets [`reset_timeout`](Self::reset_timeout).
    with_reset_timeout => reset_timeout: Duration,
    /// Sets [`poll_timeout`](Self::poll_timeout).
    with_poll_timeout => poll_timeout: Duration,
    /// Sets [`quiet_after_reset`](Self::quiet_after_reset).
    with_quiet_after_reset => quiet_after_reset: Duration,
});

/// Who took the image: the application, or MCUboot's serial recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UpgradeMode {
    /// The application's image manager: upload to the secondary slot, mark, reset,
    /// confirm.
    Application,
    /// MCUboot's serial recovery (the device is the bootloader): upload to slot 0, reset.
    SerialRecovery,
}

impl UpgradeMode {
    /// `application` or `serial recovery`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Application => "application",
            Self::SerialRecovery => "serial recovery",
        }
    }
}

impl std::fmt::Display for UpgradeMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step of an upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UpgradeStep {
    /// Read the image state and decide what is left to do.
    Inspect,
    /// Upload the image.
    Upload,
    /// Mark it for test (or for good).
    Mark,
    /// Reset the device.
    Reset,
    /// Wait for the device to come back, and read which image runs.
    Wait,
    /// Confirm the new image.
    Confirm,
}

impl UpgradeStep {
    /// The step's name: `inspect`, `upload`, `mark`, `reset`, `wait`, `confirm`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inspect => "inspect",
            Self::Upload => "upload",
            Self::Mark => "mark",
            Self::Reset => "reset",
            Self::Wait => "wait",
            Self::Confirm => "confirm",
        }
    }
}

impl std::fmt::Display for UpgradeStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an upgrade reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpgradeEvent {
    /// A step begins.
    Started(UpgradeStep),
    /// A step ended after `elapsed`.
    Finished {
        /// The step.
        step: UpgradeStep,
        /// How long it took.
        elapsed: Duration,
    },
    /// The upload moved on.
    Upload(Progress),
}

/// How an upgrade ended, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpgradeOutcome {
    /// The new image runs. `confirmed` is false only when the options asked not to
    /// confirm it. `previous` is the image it replaced, when this upgrade saw it run
    /// (or, in serial recovery, saw it in slot 0).
    Running {
        /// The new image is confirmed: it stays after later resets.
        confirmed: bool,
        /// The image that ran before (in serial recovery: that slot 0 held).
        previous: Option<ImageHash>,
    },
    /// The device came back running another image than the new one: MCUboot refused it,
    /// or it ran and was reverted before it was confirmed.
    RolledBack {
        /// The image that runs now.
        running: Option<ImageHash>,
    },
}

/// What an upgrade did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpgradeReport {
    /// How it ended.
    pub outcome: UpgradeOutcome,
    /// The image's hash (MCUboot's hash TLV, as the device reports it).
    pub hash: ImageHash,
    /// The image's version.
    pub version: String,
    /// The steps taken, in order, with their times.
    pub steps: Vec<(UpgradeStep, Duration)>,
    /// The upload, when one was needed.
    pub upload: Option<UploadSummary>,
    /// Resets sent.
    pub resets: u32,
    /// Who took the image: the application, or MCUboot's serial recovery.
    pub mode: UpgradeMode,
}

impl UpgradeReport {
    /// True when nothing had to be done: the image already ran, confirmed.
    pub fn already_running(&self) -> bool {
        self.upload.is_none()
            && self.resets == 0
            && matches!(
                self.outcome,
                UpgradeOutcome::Running {
                    confirmed: true,
                    previous: None
                }
            )
            && !self
                .steps
                .iter()
                .any(|(step, _)| *step == UpgradeStep::Confirm)
    }
}

/// Why an upgrade stopped before its image ran.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpgradeError {
    /// The file is not an MCUboot image, or has no hash TLV to recognize it by.
    #[error("not an MCUboot image with a hash")]
    NotAnImage(#[source] smp_mcuboot::ImageError),

    /// The image has no SHA-256 hash TLV, so it cannot be recognized on the device.
    #[error("the image has no SHA-256 hash TLV to recognize it by on the device")]
    NoHash,

    /// Another image is set to boot next.
    #[error(
        "another image{} is pending: confirm or erase it, reset, or upgrade with force",
        hash_suffix(hash)
    )]
    OtherImagePending {
        /// Its hash.
        hash: Option<ImageHash>,
    },

    /// The running image is not confirmed: the other slot holds the image the device
    /// falls back to.
    #[error(
        "the running image{} is not confirmed: confirm it (or reset to revert it) first, or upgrade with force",
        hash_suffix(hash)
    )]
    RunningUnconfirmed {
        /// Its hash.
        hash: Option<ImageHash>,
    },

    /// The device did not answer within the reset timeout after a reset.
    #[error("the device did not come back within {} after the reset", smp_transport::HumanDuration(*waited))]
    NeverCameBack {
        /// How long it was given.
        waited: Duration,
    },

    /// The device answers but has not booted the new image, after the resets sent.
    #[error("the device did not reboot into the new image after {resets} reset(s)")]
    NotRebooted {
        /// Resets sent.
        resets: u32,
    },

    /// The device answers as MCUboot's serial recovery after the reset: the bootloader
    /// did not start the new image (it may have found it invalid, or it was told to stay,
    /// by a button or a boot mode), or, through the application, MCUboot went into
    /// recovery.
    #[error(
        "the device is still in MCUboot's serial recovery after {resets} reset(s): the bootloader did not start the new image"
    )]
    InBootloader {
        /// Resets sent.
        resets: u32,
    },

    /// The device answered the confirm, but the new image is not running confirmed.
    #[error("the device did not confirm the new image")]
    ConfirmNotTaken,
}

fn hash_suffix(hash: &Option<ImageHash>) -> String {
    hash.as_ref()
        .map(|hash| format!(" ({hash})"))
        .unwrap_or_default()
}
