//! The plan of one firmware upgrade, without IO: what to do next, decided from the image
//! state the device reports.
//!
//! Every decision is taken from the device's own state, never from what this process
//! did before: an upgrade interrupted at any step (the future dropped, the process
//! killed, the device reset) is continued by the next one from wherever the device is.
//!
//! Two kinds of device answer the image state. An application (Zephyr's image manager)
//! flags the image it runs `active`; the plan then uploads to the secondary slot, marks
//! the image, resets and confirms. MCUboot's serial recovery (the device is the
//! bootloader) lists its slots with only slot, version and hash, no flags at all, and
//! none when slot 0 holds no image; the plan then uploads to slot 0 and resets, and
//! the application that starts is the proof. The mode is read from the first answer.

use std::time::Duration;

use smp_proto::ImageHash;
use smp_proto::messages::image::ImageState;

use super::{UpgradeError, UpgradeMode, UpgradeOutcome};

/// How many resets the plan sends before it decides the device ignores them.
pub(crate) const MAX_RESETS: u32 = 3;

/// How long after a reset was sent a device that got it has surely restarted: Zephyr
/// (`os reset`) and MCUboot's serial recovery restart 250 ms after their reply, and
/// until then answer as before. An answer still waiting for the boot is proof that an
/// unacknowledged reset never arrived only when it comes later than this.
pub(crate) const RESTART_DELAY: Duration = Duration::from_secs(2);

/// What the driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Next {
    /// Upload the image to the secondary slot.
    Upload,
    /// Mark the uploaded image for test (or for good, when permanent).
    Mark,
    /// Reset the device.
    Reset,
    /// Wait for the device to answer after a reset (`acknowledged`: it answered the
    /// reset), then decide with [`UpgradePlan::rebooted`].
    Wait { acknowledged: bool },
    /// Confirm the running (new) image.
    Confirm,
    /// Nothing more to do.
    Done(UpgradeOutcome),
}

/// What an answer to a poll after a reset means for the wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Poll {
    /// The device has not rebooted yet (or may be the old application answering before
    /// it restarts): poll again.
    KeepWaiting,
    /// Decide from this answer with [`UpgradePlan::rebooted`].
    Decide,
}

/// Whether `images` is MCUboot's serial recovery answering: entries without any of the
/// flags an application reports (`active`, `confirmed`, `pending`, `bootable`,
/// `permanent`), or no entry at all (MCUboot lists none when slot 0 is empty). An
/// application always lists the image it runs, flagged `active` (a "frugal" list leaves
/// out only the flags that are false).
pub(crate) fn is_bootloader(images: &[ImageState]) -> bool {
    images.iter().all(|image| {
        image.active.is_none()
            && image.confirmed.is_none()
            && image.pending.is_none()
            && image.bootable.is_none()
            && image.permanent.is_none()
    })
}

/// The slots as the plan reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slots<'a> {
    /// The image running now.
    running: Option<&'a ImageState>,
    /// The image with the upgrade's hash, wherever it is.
    ours: Option<&'a ImageState>,
    /// Another image than the running one set to boot next.
    other_pending: Option<&'a ImageState>,
}

impl<'a> Slots<'a> {
    fn read(images: &'a [ImageState], hash: &ImageHash) -> Self {
        let is_ours = |image: &&ImageState| image.hash.as_ref() == Some(hash);
        let running = images.iter().find(|image| image.active == Some(true));
        Self {
            running,
            ours: images.iter().find(is_ours),
            other_pending: images
                .iter()
                .find(|image| image.pending == Some(true) && !is_ours(image)),
        }
    }

    fn running_is_ours(&self, hash: &ImageHash) -> bool {
        self.running
            .is_some_and(|image| image.hash.as_ref() == Some(hash))
    }
}

/// The state of one upgrade.
#[derive(Debug)]
pub(crate) struct UpgradePlan {
    hash: ImageHash,
    confirm: bool,
    permanent: bool,
    force: bool,
    resets: u32,
    /// The image ours replaces, as the device first reported it.
    previous: Option<ImageHash>,
    /// Who answered first: the application or the bootloader.
    mode: UpgradeMode,
}

impl UpgradePlan {
    /// A plan to make the image with `hash` run: confirmed at the end unless `confirm` is
    /// false, marked for good rather than for test when `permanent`; with `force`, an
    /// image pending or running unconfirmed does not stop it.
    pub(crate) fn new(hash: ImageHash, confirm: bool, permanent: bool, force: bool) -> Self {
        Self {
            hash,
            confirm,
            permanent,
            force,
            resets: 0,
            previous: None,
            mode: UpgradeMode::Application,
        }
    }

    /// Whether the upgrade goes through the application or MCUboot's serial recovery,
    /// as [`start`](Self::start) found out.
    pub(crate) fn mode(&self) -> UpgradeMode {
        self.mode
    }

    /// The hash of the image that was running when the upgrade started (if the device
    /// reported one and it was not ours).
    #[cfg(test)]
    pub(crate) fn previous(&self) -> Option<&ImageHash> {
        self.previous.as_ref()
    }

    /// The first decision, from the image state before anything is done.
    pub(crate) fn start(&mut self, images: &[ImageState]) -> Result<Next, UpgradeError> {
        if is_bootloader(images) {
            return Ok(self.start_in_recovery(images));
        }
        self.mode = UpgradeMode::Application;
        let slots = Slots::read(images, &self.hash);
        if !slots.running_is_ours(&self.hash) {
            self.previous = slots.running.and_then(|image| image.hash.clone());
        }
        if slots.running_is_ours(&self.hash) {
            // Ours runs: done already, or booted for test by an earlier upgrade.
            return Ok(self.after_boot(slots));
        }
        match slots.ours {
            // Uploaded and marked by an earlier upgrade: only the reset is missing.
            Some(ours) if ours.pending == Some(true) => return Ok(Next::Reset),
            // Uploaded, not marked (or refused at boot and offered again).
            Some(_) if slots.other_pending.is_none() => return Ok(Next::Mark),
            _ => {}
        }
        if !self.force {
            if let Some(pending) = slots.other_pending {
                return Err(UpgradeError::OtherImagePending {
                    hash: pending.hash.clone(),
                });
            }
            if let Some(running) = slots.running {
                // Not `Some(false)`: a "frugal" list leaves out the flags that are false.
                if running.confirmed != Some(true) {
                    // Slot 1 holds the image the device falls back to: uploading over it
                    // would leave nothing to fall back to.
                    return Err(UpgradeError::RunningUnconfirmed {
                        hash: running.hash.clone(),
                    });
                }
            }
        }
        Ok(Next::Upload)
    }

    /// MCUboot's serial recovery answers: the image goes straight into slot 0, and the
    /// reset boots it; nothing is tested or confirmed. Slot 0 holding ours already (an
    /// earlier upgrade uploaded it, and was stopped before the reset) needs the reset only.
    fn start_in_recovery(&mut self, images: &[ImageState]) -> Next {
        self.mode = UpgradeMode::SerialRecovery;
        let slot0 = images.iter().find(|image| image.slot == 0);
        let hash = slot0.and_then(|image| image.hash.as_ref());
        if hash == Some(&self.hash) {
            return Next::Reset;
        }
        self.previous = hash.cloned();
        Next::Upload
    }

    /// After the upload: mark the image (through the application), or reset (the
    /// bootloader took it into slot 0).
    pub(crate) fn uploaded(&self) -> Next {
        match self.mode {
            UpgradeMode::Application => Next::Mark,
            UpgradeMode::SerialRecovery => Next::Reset,
        }
    }

    /// After marking: reset.
    pub(crate) fn marked(&self) -> Next {
        Next::Reset
    }

    /// Counts a reset about to be sent; `false` once [`MAX_RESETS`] were sent.
    pub(crate) fn reset_sent(&mut self) -> bool {
        self.resets += 1;
        self.resets <= MAX_RESETS
    }

    /// Resets sent so far.
    pub(crate) fn resets(&self) -> u32 {
        self.resets.min(MAX_RESETS)
    }

    /// After the reset (`acknowledged` when the device answered it): wait for it.
    pub(crate) fn reset_done(&self, acknowledged: bool) -> Next {
        Next::Wait { acknowledged }
    }

    /// Whether the device still has to reboot: through the application, ours is pending
    /// and something else runs; in serial recovery, the bootloader still answers. After
    /// a reset the device acknowledged, the driver waits while this holds.
    pub(crate) fn awaiting_reboot(&self, images: &[ImageState]) -> bool {
        match self.mode {
            UpgradeMode::Application => {
                let slots = Slots::read(images, &self.hash);
                !slots.running_is_ours(&self.hash)
                    && slots.ours.is_some_and(|i| i.pending == Some(true))
            }
            UpgradeMode::SerialRecovery => is_bootloader(images),
        }
    }

    /// What an answer to a poll after a reset means, `since_reset` after the reset was
    /// sent. The device answering as it did before the reset means it has not rebooted
    /// yet: after a reset it acknowledged, the driver keeps waiting; after one without a
    /// reply, the answer is the old application's (or bootloader's) in the moment before
    /// it restarts as long as [`RESTART_DELAY`] has not passed, and only later is it
    /// the proof that the reset never arrived. Anything else is decided on.
    pub(crate) fn poll(
        &self,
        images: &[ImageState],
        acknowledged: bool,
        since_reset: Duration,
    ) -> Poll {
        if self.awaiting_reboot(images) && (acknowledged || since_reset < RESTART_DELAY) {
            Poll::KeepWaiting
        } else {
            Poll::Decide
        }
    }

    /// The decision once the device answers again after a reset. `acknowledged` says
    /// whether the reset got a reply: one that did not may never have arrived, and is
    /// sent again when the device still waits to boot ours.
    pub(crate) fn rebooted(
        &mut self,
        images: &[ImageState],
        acknowledged: bool,
    ) -> Result<Next, UpgradeError> {
        let slots = Slots::read(images, &self.hash);
        if slots.running_is_ours(&self.hash) {
            return Ok(self.after_boot(slots));
        }
        if is_bootloader(images) {
            // Through the application, this is MCUboot gone into serial recovery after
            // the reset; in recovery, the bootloader that did not (yet) start anything.
            if self.mode == UpgradeMode::Application || acknowledged || self.resets >= MAX_RESETS {
                return Err(UpgradeError::InBootloader {
                    resets: self.resets,
                });
            }
            return Ok(Next::Reset);
        }
        if self.awaiting_reboot(images) {
            if acknowledged || self.resets >= MAX_RESETS {
                return Err(UpgradeError::NotRebooted {
                    resets: self.resets,
                });
            }
            return Ok(Next::Reset);
        }
        // The device booted, and not into ours: MCUboot refused it, or it ran and was
        // reverted before it was confirmed (in serial recovery: slot 0 holds another
        // image than the one uploaded).
        Ok(Next::Done(UpgradeOutcome::RolledBack {
            running: slots.running.and_then(|image| image.hash.clone()),
        }))
    }

    /// Ours runs: confirm it, or stop as asked. After serial recovery the application
    /// normally reports it confirmed (MCUboot boots slot 0 as it is: nothing to test, nothing
    /// reverts it); one that reports it unconfirmed (a swapping MCUboot whose slot-0
    /// trailer the recovery erased) gets it confirmed, so that its next upgrade through
    /// the application is not refused as running an unconfirmed image.
    fn after_boot(&self, slots: Slots<'_>) -> Next {
        let confirmed = slots.running.is_some_and(|i| i.confirmed == Some(true));
        let marked_for_good = self.permanent && self.mode == UpgradeMode::Application;
        if confirmed {
            Next::Done(UpgradeOutcome::Running {
                confirmed: true,
                previous: self.previous.clone(),
            })
        } else if self.confirm && !marked_for_good {
            Next::Confirm
        } else {
            Next::Done(UpgradeOutcome::Running {
                confirmed: false,
                previous: self.previous.clone(),
            })
        }
    }

    /// After the confirm: the state the device reported with it.
    pub(crate) fn confirmed(&self, images: &[ImageState]) -> Result<Next, UpgradeError> {
        let slots = Slots::read(images, &self.hash);
        if slots.running_is_ours(&self.hash)
            && slots.running.is_some_and(|i| i.confirmed == Some(true))
        {
            return Ok(Next::Done(UpgradeOutcome::Running {
                confirmed: true,
                previous: self.previous.clone(),
            }));
        }
        Err(UpgradeError::ConfirmNotTaken)
    }

    /// Whether the image is marked for good rather than for test.
    pub(crate) fn permanent(&self) -> bool {
        self.permanent
    }

    /// The upgrade's image hash.
    pub(crate) fn hash(&self) -> &ImageHash {
        &self.hash
    }
}

#[cfg(test)]
mod tests {
    use smp_proto::messages::build;

    use super::*;

    fn hash(byte: u8) -> ImageHash {
        ImageHash::from([byte; 32])
    }

    /// A slot: its image's hash and the flags the device reports.
    fn slot(number: u32, byte: u8, flags: &str) -> ImageState {
        build(|s: &mut ImageState| {
            s.slot = number;
            s.version = "1.0.0".into();
            s.hash = Some(hash(byte));
            s.active = Some(flags.contains('a'));
            s.confirmed = Some(flags.contains('c'));
            s.pending = Some(flags.contains('p'));
            s.permanent = Some(flags.contains('P'));
        })
    }

    fn plan() -> UpgradePlan {
        UpgradePlan::new(hash(0xbb), true, false, false)
    }

    /// A slot as MCUboot's serial recovery lists it: slot, version and hash, no flags.
    fn boot_slot(number: u32, byte: u8) -> ImageState {
        build(|s: &mut ImageState| {
            s.slot = number;
            s.version = "1.0.0".into();
            s.hash = Some(hash(byte));
        })
    }

    /// A slot in a "frugal" list (`CONFIG_MCUMGR_GRP_IMG_FRUGAL_LIST`): only the flags
    /// that are true.
    fn frugal_slot(number: u32, byte: u8, flags: &str) -> ImageState {
        let true_or_none = |on: bool| on.then_some(true);
        build(|s: &mut ImageState| {
            s.slot = number;
            s.version = "1.0.0".into();
            s.hash = Some(hash(byte));
            s.active = true_or_none(flags.contains('a'));
            s.confirmed = true_or_none(flags.contains('c'));
            s.pending = true_or_none(flags.contains('p'));
            s.bootable = Some(true);
        })
    }

    const SOON: Duration = Duration::from_millis(100);
    const LATE: Duration = Duration::from_secs(5);

    #[test]
    fn a_fresh_device_gets_the_whole_sequence() {
        let mut plan = plan();
        let old = [slot(0, 0xaa, "ac")];
        assert_eq!(plan.start(&old), Ok(Next::Upload));
        assert_eq!(plan.previous(), Some(&hash(0xaa)));
        assert_eq!(plan.uploaded(), Next::Mark);
        assert_eq!(plan.marked(), Next::Reset);
        assert!(plan.reset_sent());
        assert_eq!(plan.reset_done(true), Next::Wait { acknowledged: true });
        let booted = [slot(0, 0xbb, "a"), slot(1, 0xaa, "c")];
        assert!(!plan.awaiting_reboot(&booted));
        assert_eq!(plan.rebooted(&booted, true), Ok(Next::Confirm));
        let confirmed = [slot(0, 0xbb, "ac"), slot(1, 0xaa, "")];
        assert_eq!(
            plan.confirmed(&confirmed),
            Ok(Next::Done(UpgradeOutcome::Running {
                confirmed: true,
                previous: Some(hash(0xaa))
            }))
        );
    }

    #[test]
    fn an_interrupted_upgrade_continues_from_the_devices_state() {
        // Already running and confirmed: nothing to do.
        let done = [slot(0, 0xbb, "ac"), slot(1, 0xaa, "")];
        assert_eq!(
            plan().start(&done),
            Ok(Next::Done(UpgradeOutcome::Running {
                confirmed: true,
                previous: None
            }))
        );
        // Booted for test, not confirmed yet.
        assert_eq!(
            plan().start(&[slot(0, 0xbb, "a"), slot(1, 0xaa, "c")]),
            Ok(Next::Confirm)
        );
        // Marked, the reset never came.
        assert_eq!(
            plan().start(&[slot(0, 0xaa, "ac"), slot(1, 0xbb, "p")]),
            Ok(Next::Reset)
        );
        // Uploaded, not marked.
        assert_eq!(
            plan().start(&[slot(0, 0xaa, "ac"), slot(1, 0xbb, "")]),
            Ok(Next::Mark)
        );
    }

    #[test]
    fn a_pending_or_unconfirmed_image_stops_it_unless_forced() {
        let pending = [slot(0, 0xaa, "ac"), slot(1, 0xcc, "p")];
        assert_eq!(
            plan().start(&pending),
            Err(UpgradeError::OtherImagePending {
                hash: Some(hash(0xcc))
            })
        );
        let unconfirmed = [slot(0, 0xcc, "a"), slot(1, 0xaa, "c")];
        assert_eq!(
            plan().start(&unconfirmed),
            Err(UpgradeError::RunningUnconfirmed {
                hash: Some(hash(0xcc))
            })
        );
        let mut forced = UpgradePlan::new(hash(0xbb), true, false, true);
        assert_eq!(forced.start(&pending), Ok(Next::Upload));
        assert_eq!(forced.start(&unconfirmed), Ok(Next::Upload));
    }

    #[test]
    fn the_old_image_after_the_reset_is_a_rollback() {
        let mut plan = plan();
        plan.start(&[slot(0, 0xaa, "ac")]).unwrap();
        plan.reset_sent();
        // Refused at boot, or reverted: the old image runs, ours is no longer pending.
        let back = [slot(0, 0xaa, "ac"), slot(1, 0xbb, "")];
        assert_eq!(
            plan.rebooted(&back, true),
            Ok(Next::Done(UpgradeOutcome::RolledBack {
                running: Some(hash(0xaa))
            }))
        );
    }

    #[test]
    fn a_reset_without_a_reply_is_sent_again_a_bounded_number_of_times() {
        let mut plan = plan();
        plan.start(&[slot(0, 0xaa, "ac")]).unwrap();
        let waiting = [slot(0, 0xaa, "ac"), slot(1, 0xbb, "p")];
        assert!(plan.awaiting_reboot(&waiting));
        for _ in 1..MAX_RESETS {
            assert!(plan.reset_sent());
            assert_eq!(plan.rebooted(&waiting, false), Ok(Next::Reset));
        }
        assert!(plan.reset_sent());
        assert_eq!(
            plan.rebooted(&waiting, false),
            Err(UpgradeError::NotRebooted { resets: MAX_RESETS })
        );
        assert!(!plan.reset_sent());
        // A reset the device acknowledged and did not act on is not sent again.
        let mut plan = self::plan();
        plan.reset_sent();
        assert_eq!(
            plan.rebooted(&waiting, true),
            Err(UpgradeError::NotRebooted { resets: 1 })
        );
    }

    #[test]
    fn without_confirm_or_when_permanent_it_ends_unconfirmed_or_confirmed() {
        let booted = [slot(0, 0xbb, "a"), slot(1, 0xaa, "c")];
        let mut no_confirm = UpgradePlan::new(hash(0xbb), false, false, false);
        assert_eq!(
            no_confirm.rebooted(&booted, true),
            Ok(Next::Done(UpgradeOutcome::Running {
                confirmed: false,
                previous: None
            }))
        );
        let permanent = [slot(0, 0xbb, "acP"), slot(1, 0xaa, "")];
        let mut plan = UpgradePlan::new(hash(0xbb), true, true, false);
        assert!(matches!(
            plan.rebooted(&permanent, true),
            Ok(Next::Done(UpgradeOutcome::Running {
                confirmed: true,
                ..
            }))
        ));
    }

    #[test]
    fn the_old_application_answering_before_it_restarts_is_not_the_outcome() {
        let mut plan = plan();
        assert_eq!(plan.start(&[slot(0, 0xaa, "ac")]), Ok(Next::Upload));
        plan.reset_sent();
        // The old application answers in the moment between its reply to the reset and
        // its restart: ours still pending, the old one running.
        let before_restart = [slot(0, 0xaa, "ac"), slot(1, 0xbb, "p")];
        // Reset acknowledged: the device restarts; that answer only means "not yet",
        // however late it comes.
        assert_eq!(plan.poll(&before_restart, true, SOON), Poll::KeepWaiting);
        assert_eq!(plan.poll(&before_restart, true, LATE), Poll::KeepWaiting);
        // No reply to the reset: it may have arrived (and the reply been lost); only an
        // answer later than any restart delay shows that it did not.
        assert_eq!(plan.poll(&before_restart, false, SOON), Poll::KeepWaiting);
        assert_eq!(
            plan.poll(&before_restart, false, RESTART_DELAY),
            Poll::Decide
        );
        assert_eq!(plan.rebooted(&before_restart, false), Ok(Next::Reset));
        // The new image booted, or the old one after a rollback: decided at once.
        let booted = [slot(0, 0xbb, "a"), slot(1, 0xaa, "c")];
        assert_eq!(plan.poll(&booted, true, SOON), Poll::Decide);
        assert_eq!(plan.poll(&booted, false, SOON), Poll::Decide);
        let back = [slot(0, 0xaa, "ac"), slot(1, 0xbb, "")];
        assert_eq!(plan.poll(&back, true, SOON), Poll::Decide);
    }

    #[test]
    fn serial_recovery_is_read_from_the_image_state() {
        // MCUboot's recovery: no flags, or nothing at all with an empty slot 0.
        assert!(is_bootloader(&[]));
        assert!(is_bootloader(&[boot_slot(0, 0xaa)]));
        // An application: the running image flagged, false flags present or left out.
        assert!(!is_bootloader(&[slot(0, 0xaa, "ac")]));
        assert!(!is_bootloader(&[frugal_slot(0, 0xaa, "a")]));
        assert!(!is_bootloader(&[
            frugal_slot(0, 0xaa, "ac"),
            frugal_slot(1, 0xbb, "")
        ]));
    }

    #[test]
    fn serial_recovery_uploads_to_slot_0_resets_and_waits_for_the_application() {
        let mut plan = plan();
        assert_eq!(plan.start(&[]), Ok(Next::Upload));
        assert_eq!(plan.mode(), UpgradeMode::SerialRecovery);
        assert_eq!(plan.previous(), None);
        // Nothing to mark: the reset boots slot 0.
        assert_eq!(plan.uploaded(), Next::Reset);
        assert!(plan.reset_sent());
        assert_eq!(plan.reset_done(true), Next::Wait { acknowledged: true });
        // The bootloader answering (before it restarts, or still) is not the outcome.
        let bootloader = [boot_slot(0, 0xbb)];
        assert!(plan.awaiting_reboot(&bootloader));
        assert_eq!(plan.poll(&bootloader, true, LATE), Poll::KeepWaiting);
        assert_eq!(plan.poll(&[], true, LATE), Poll::KeepWaiting);
        // The application answers, running ours: done, nothing to confirm.
        let running = [slot(0, 0xbb, "ac")];
        assert_eq!(plan.poll(&running, true, SOON), Poll::Decide);
        assert_eq!(
            plan.rebooted(&running, true),
            Ok(Next::Done(UpgradeOutcome::Running {
                confirmed: true,
                previous: None
            }))
        );
    }

    #[test]
    fn serial_recovery_continues_from_what_slot_0_holds() {
        // Another image in slot 0: it is the one replaced.
        let mut plan = plan();
        assert_eq!(plan.start(&[boot_slot(0, 0xaa)]), Ok(Next::Upload));
        assert_eq!(plan.previous(), Some(&hash(0xaa)));
        // Ours already there (an upgrade stopped before its reset): only the reset.
        let mut plan = self::plan();
        assert_eq!(plan.start(&[boot_slot(0, 0xbb)]), Ok(Next::Reset));
        assert_eq!(plan.mode(), UpgradeMode::SerialRecovery);
        // The application already running ours: nothing to do.
        let mut plan = self::plan();
        assert_eq!(
            plan.start(&[slot(0, 0xbb, "ac")]),
            Ok(Next::Done(UpgradeOutcome::Running {
                confirmed: true,
                previous: None
            }))
        );
        assert_eq!(plan.mode(), UpgradeMode::Application);
    }

    #[test]
    fn serial_recovery_that_does_not_start_the_image_is_reported() {
        let mut plan = plan();
        plan.start(&[boot_slot(0, 0xaa)]).unwrap();
        plan.reset_sent();
        // The bootloader still answers after a reset it acknowledged: it kept the image
        // from starting (or was told to stay).
        assert_eq!(
            plan.rebooted(&[boot_slot(0, 0xbb)], true),
            Err(UpgradeError::InBootloader { resets: 1 })
        );
        // After a reset without a reply: sent again, a bounded number of times.
        assert_eq!(plan.rebooted(&[], false), Ok(Next::Reset));
        plan.reset_sent();
        plan.reset_sent();
        assert_eq!(
            plan.rebooted(&[], false),
            Err(UpgradeError::InBootloader { resets: MAX_RESETS })
        );
        // An application running another image: slot 0 does not hold ours.
        let mut plan = self::plan();
        plan.start(&[]).unwrap();
        assert_eq!(
            plan.rebooted(&[slot(0, 0xaa, "ac")], true),
            Ok(Next::Done(UpgradeOutcome::RolledBack {
                running: Some(hash(0xaa))
            }))
        );
        // An application that reports ours unconfirmed gets it confirmed.
        let mut plan = self::plan();
        plan.start(&[]).unwrap();
        assert_eq!(
            plan.rebooted(&[slot(0, 0xbb, "a")], true),
            Ok(Next::Confirm)
        );
    }

    #[test]
    fn through_the_application_a_device_left_in_the_bootloader_is_an_error() {
        let mut plan = plan();
        plan.start(&[slot(0, 0xaa, "ac")]).unwrap();
        plan.reset_sent();
        assert_eq!(plan.poll(&[boot_slot(0, 0xaa)], true, SOON), Poll::Decide);
        assert_eq!(
            plan.rebooted(&[boot_slot(0, 0xaa)], true),
            Err(UpgradeError::InBootloader { resets: 1 })
        );
    }

    #[test]
    fn a_frugal_list_is_read_with_its_false_flags_left_out() {
        // The running image without `confirmed`: not confirmed, so slot 1 holds the
        // image it would fall back to.
        let unconfirmed = [frugal_slot(0, 0xcc, "a"), frugal_slot(1, 0xaa, "c")];
        assert_eq!(
            plan().start(&unconfirmed),
            Err(UpgradeError::RunningUnconfirmed {
                hash: Some(hash(0xcc))
            })
        );
        let mut plan = plan();
        assert_eq!(plan.start(&[frugal_slot(0, 0xaa, "ac")]), Ok(Next::Upload));
        assert_eq!(plan.mode(), UpgradeMode::Application);
        let booted = [frugal_slot(0, 0xbb, "a"), frugal_slot(1, 0xaa, "c")];
        assert_eq!(plan.rebooted(&booted, true), Ok(Next::Confirm));
    }
}
