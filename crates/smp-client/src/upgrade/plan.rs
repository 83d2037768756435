//! The plan of one firmware upgrade, without IO: what to do next, decided from the image
//! state the device reports.
//!
//! Every decision is taken from the device's own state, never from what this process
//! did before: an upgrade interrupted at any step (the future dropped, the process
//! killed, the device reset) is continued by the next one from wherever the device is.

use smp_proto::ImageHash;
use smp_proto::messages::image::ImageState;

use super::{UpgradeError, UpgradeOutcome};

/// How many resets the plan sends before it decides the device ignores them.
pub(crate) const MAX_RESETS: u32 = 3;

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
        }
    }

    /// The hash of the image that was running when the upgrade started (if the device
    /// reported one and it was not ours).
    #[cfg(test)]
    pub(crate) fn previous(&self) -> Option<&ImageHash> {
        self.previous.as_ref()
    }

    /// The first decision, from the image state before anything is done.
    pub(crate) fn start(&mut self, images: &[ImageState]) -> Result<Next, UpgradeError> {
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
                if running.confirmed == Some(false) {
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

    /// After the upload: mark the image.
    pub(crate) fn uploaded(&self) -> Next {
        Next::Mark
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

    /// Whether the device still has to reboot: ours is pending and something else runs.
    /// After a reset the device acknowledged, the driver waits while this holds.
    pub(crate) fn awaiting_reboot(&self, images: &[ImageState]) -> bool {
        let slots = Slots::read(images, &self.hash);
        !slots.running_is_ours(&self.hash) && slots.ours.is_some_and(|i| i.pending == Some(true))
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
        if self.awaiting_reboot(images) {
            if acknowledged || self.resets >= MAX_RESETS {
                return Err(UpgradeError::NotRebooted {
                    resets: self.resets,
                });
            }
            return Ok(Next::Reset);
        }
        // The device booted, and not into ours: MCUboot refused it, or it ran and was
        // reverted before it was confirmed.
        Ok(Next::Done(UpgradeOutcome::RolledBack {
            running: slots.running.and_then(|image| image.hash.clone()),
        }))
    }

    /// Ours runs: confirm it, or stop as asked.
    fn after_boot(&self, slots: Slots<'_>) -> Next {
        let confirmed = slots.running.is_some_and(|i| i.confirmed == Some(true));
        if confirmed {
            Next::Done(UpgradeOutcome::Running {
                confirmed: true,
                previous: self.previous.clone(),
            })
        } else if self.confirm && !self.permanent {
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
}
