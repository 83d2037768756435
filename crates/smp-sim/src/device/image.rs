//! The image group's state: two slots of one image, and MCUboot's swap on reboot.

use smp_mcuboot::{HEADER_SIZE, Image, ImageBuilder, ImageHeader, ImageVersion, sample_body};
use smp_proto::ImageHash;
use smp_proto::messages::build;
use smp_proto::messages::image::{ImageState, StateResponse};
use tracing::{info, warn};

use crate::config::{ImageBoot, SimConfig};
use crate::flash::Slot;

/// Size of the image running at start when the slots are new: a small firmware-like
/// body is enough for its header and hash to be real.
const FACTORY_IMAGE_BODY: usize = 24 * 1024;

/// An upload in progress (kept in RAM: a reboot loses it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Upload {
    pub(crate) len: u64,
    pub(crate) off: u64,
    pub(crate) sha: Vec<u8>,
}

/// The two slots of image 0 and the bootloader's view of them.
#[derive(Debug)]
pub(crate) struct Images {
    pub(crate) slots: [Slot; 2],
    pub(crate) upload: Option<Upload>,
    /// Slot 1 is set to be swapped in on the next boot: `Some(true)` for good
    /// (`confirm: true`), `Some(false)` for a test.
    pub(crate) pending: Option<bool>,
    /// The running image is confirmed; when false, the next boot reverts to slot 1.
    pub(crate) confirmed: bool,
    /// What the bootloader does with a pending image.
    pub(crate) image_boot: ImageBoot,
}

impl Images {
    pub(crate) fn new(config: &SimConfig) -> std::io::Result<Self> {
        let mut slots = match &config.slot_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                [
                    Slot::file(&dir.join("slot0.bin"), config.slot_size)?,
                    Slot::file(&dir.join("slot1.bin"), config.slot_size)?,
                ]
            }
            None => [
                Slot::memory(config.slot_size),
                Slot::memory(config.slot_size),
            ],
        };
        if read_image(&mut slots[0]).is_none() {
            let factory = ImageBuilder::new(config.running_version)
                .build(&sample_body(FACTORY_IMAGE_BODY, 0x5eed));
            if factory.len() <= config.slot_size {
                slots[0].write(0, &factory)?;
            } else {
                warn!(
                    slot_size = config.slot_size,
                    "slot too small for the factory image"
                );
            }
        }
        Ok(Self {
            slots,
            upload: None,
            pending: None,
            confirmed: true,
            image_boot: ImageBoot::Runs,
        })
    }

    /// A copy of a slot's content (for tests).
    pub(crate) fn slot(&mut self, slot: usize) -> Option<Vec<u8>> {
        let s = self.slots.get_mut(slot)?;
        let size = s.size();
        s.read(0, size).ok()
    }

    /// MCUboot at boot: a pending image is swapped in (to be tested, or for good); an
    /// unconfirmed test image is swapped back out. The upload in RAM is lost.
    pub(crate) fn reboot(&mut self) {
        self.upload = None;
        if self.pending.is_some() {
            match self.image_boot {
                ImageBoot::Runs => {}
                ImageBoot::Refused => {
                    info!("bootloader: refusing the image in slot 1");
                    self.pending = None;
                    return;
                }
                ImageBoot::Crashes => {
                    info!("bootloader: the new image crashes before it is confirmed");
                    self.boot();
                    self.boot();
                    return;
                }
            }
        }
        self.boot();
    }

    /// One boot of MCUboot: swaps a pending image in, or reverts an unconfirmed one.
    fn boot(&mut self) {
        let swap = if self.pending.is_some() {
            info!(
                permanent = self.pending == Some(true),
                "bootloader: swapping in slot 1"
            );
            true
        } else if !self.confirmed {
            info!("bootloader: test image not confirmed, reverting");
            true
        } else {
            false
        };
        if swap {
            let size = self.slots[0].size();
            let swapped = self.slots[0].read(0, size).and_then(|primary| {
                let secondary = self.slots[1].read(0, size)?;
                self.slots[0].replace(&secondary)?;
                self.slots[1].replace(&primary)
            });
            if let Err(e) = swapped {
                warn!(%e, "swap failed");
            }
            // A test swap leaves the new image unconfirmed; a revert or a permanent
            // swap leaves it confirmed.
            self.confirmed = self.pending != Some(false);
        }
        self.pending = None;
    }

    /// Image state as `img_mgmt` reports it (flags as in `img_mgmt_state_flags`).
    pub(crate) fn state(&mut self) -> StateResponse {
        let mut images = Vec::new();
        for slot in 0..2 {
            let Some(image) = read_image(&mut self.slots[slot]) else {
                continue;
            };
            let (active, confirmed, pending, permanent) = if slot == 0 {
                (true, self.confirmed, false, false)
            } else {
                (
                    false,
                    !self.confirmed,
                    self.pending.is_some(),
                    self.pending == Some(true),
                )
            };
            images.push(build(|v: &mut ImageState| {
                v.slot = slot as u32;
                v.version = image.header.version.to_string();
                v.hash = image.hash().map(ImageHash::from);
                v.bootable = Some(image.header.flags & smp_mcuboot::flags::NON_BOOTABLE == 0);
                v.pending = Some(pending);
                v.confirmed = Some(confirmed);
                v.active = Some(active);
                v.permanent = Some(permanent);
            }));
        }
        build(|v: &mut StateResponse| {
            v.images = images;
            v.split_status = Some(0);
        })
    }

    pub(crate) fn running_version(&mut self) -> Option<ImageVersion> {
        read_image(&mut self.slots[0]).map(|image| image.header.version)
    }

    /// Slot 1 holds an image the bootloader will use: it may not be overwritten.
    pub(crate) fn secondary_in_use(&self) -> bool {
        self.pending.is_some() || !self.confirmed
    }

    pub(crate) fn slot_with_hash(&mut self, hash: &[u8]) -> Option<usize> {
        (0..2).find(|slot| {
            read_image(&mut self.slots[*slot])
                .and_then(|image| image.hash())
                .as_ref()
                .is_some_and(|h| h.as_slice() == hash)
        })
    }
}

/// Reads and parses the image in a slot, if it holds one. The MCUboot layout is
/// smp-mcuboot's business: it parses the slot and ignores what follows the image.
fn read_image(slot: &mut Slot) -> Option<Image> {
    // An erased or foreign slot: no need to read all of it.
    ImageHeader::decode(&slot.read(0, HEADER_SIZE).ok()?).ok()?;
    let size = slot.size();
    Image::parse(&slot.read(0, size).ok()?).ok()
}
