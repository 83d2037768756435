//! Image group (1): image state, uploads with every rule of Zephyr's `img_mgmt`, erase
//! and slot information, on the device's two slots (`device::image`).

use std::borrow::Cow;

use sha2::{Digest, Sha256};
use smp_mcuboot::{HEADER_SIZE, ImageHeader};
use smp_proto::header::command::image as cmd;
use smp_proto::messages::Empty;
use smp_proto::messages::build;
use smp_proto::messages::image::{
    EraseRequest, SetStateRequest, SlotInfo, SlotInfoImage, SlotInfoResponse, UploadRequest,
    UploadResponse,
};
use tracing::info;

use crate::device::Device;
use crate::device::image::{Images, Upload};
use crate::reply::{Outcome, mgmt, ok};
use crate::request::{Ctx, Incoming};

/// Image group error codes (`IMG_MGMT_ERR_*`).
pub(crate) mod err {
    pub(crate) const HASH_NOT_FOUND: u16 = 8;
    pub(crate) const NO_FREE_SLOT: u16 = 9;
    pub(crate) const FLASH_READ_FAILED: u16 = 11;
    pub(crate) const FLASH_WRITE_FAILED: u16 = 12;
    pub(crate) const FLASH_ERASE_FAILED: u16 = 13;
    pub(crate) const INVALID_SLOT: u16 = 14;
    pub(crate) const INVALID_LENGTH: u16 = 21;
    pub(crate) const INVALID_IMAGE_HEADER: u16 = 22;
    pub(crate) const INVALID_IMAGE_HEADER_MAGIC: u16 = 23;
    pub(crate) const INVALID_HASH: u16 = 24;
    pub(crate) const CURRENT_VERSION_IS_NEWER: u16 = 27;
    pub(crate) const INVALID_IMAGE_TOO_LARGE: u16 = 30;
    pub(crate) const INVALID_IMAGE_DATA_OVERRUN: u16 = 31;
    pub(crate) const IMAGE_SETTING_TEST_TO_ACTIVE_DENIED: u16 = 33;
}

pub(crate) fn handle(dev: &mut Device, req: &Incoming<'_>, ctx: &mut Ctx) -> Outcome {
    match (req.command, req.is_read()) {
        (cmd::STATE, true) => ok(&dev.images.state()),
        (cmd::STATE, false) => match req.decode::<SetStateRequest>() {
            Ok(write) => state_write(&mut dev.images, write),
            Err(e) => e,
        },
        (cmd::UPLOAD, false) => match req.decode::<UploadRequest<'_>>() {
            Ok(chunk) => upload(dev, chunk, ctx),
            Err(e) => e,
        },
        (cmd::ERASE, false) => match req.decode::<EraseRequest>() {
            Ok(erase) => {
                let images = &mut dev.images;
                match erase.slot.unwrap_or(1) {
                    1 if images.secondary_in_use() => Outcome::Group(err::NO_FREE_SLOT),
                    1 => {
                        images.upload = None;
                        ctx.busy += dev.config.delays.erase;
                        match images.slots[1].erase() {
                            Ok(()) => ok(&Empty),
                            Err(_) => Outcome::Group(err::FLASH_ERASE_FAILED),
                        }
                    }
                    // Slot 0 runs the application.
                    0 => Outcome::Group(err::NO_FREE_SLOT),
                    _ => Outcome::Group(err::INVALID_SLOT),
                }
            }
            Err(e) => e,
        },
        (cmd::SLOT_INFO, true) => {
            let size = dev.config.slot_size as u64;
            ok(&build(|v: &mut SlotInfoResponse| {
                v.images = vec![build(|v: &mut SlotInfoImage| {
                    v.image = 0;
                    v.slots = vec![
                        build(|v: &mut SlotInfo| {
                            v.slot = 0;
                            v.size = size;
                        }),
                        build(|v: &mut SlotInfo| {
                            v.slot = 1;
                            v.size = size;
                        }),
                    ];
                    v.max_image_size = Some(size);
                })];
            }))
        }
        _ => Outcome::Mgmt(mgmt::ENOTSUP),
    }
}

fn state_write(images: &mut Images, write: SetStateRequest) -> Outcome {
    let slot = match &write.hash {
        None if write.confirm => 0,
        None => return Outcome::Mgmt(mgmt::EINVAL),
        Some(hash) => match images.slot_with_hash(hash) {
            Some(slot) => slot,
            None => return Outcome::Group(err::HASH_NOT_FOUND),
        },
    };
    match (slot, write.confirm) {
        (0, true) => images.confirmed = true,
        (0, false) => return Outcome::Group(err::IMAGE_SETTING_TEST_TO_ACTIVE_DENIED),
        // The fallback image of a test boot cannot be marked again.
        _ if !images.confirmed => return Outcome::Mgmt(mgmt::EBADSTATE),
        (_, permanent) => images.pending = Some(permanent),
    }
    ok(&images.state())
}

/// One upload chunk. As Zephyr's `img_mgmt` does, the upload state is forgotten once
/// the image is complete and after any error: a re-sent last chunk then learns that the
/// device expects offset 0.
fn upload(dev: &mut Device, chunk: UploadRequest<'_>, ctx: &mut Ctx) -> Outcome {
    let outcome = upload_chunk(dev, chunk, ctx);
    let complete = dev.images.upload.as_ref().is_some_and(|u| u.off == u.len);
    if complete || matches!(outcome, Outcome::Group(_)) {
        dev.images.upload = None;
    }
    outcome
}

fn upload_chunk(dev: &mut Device, chunk: UploadRequest<'_>, ctx: &mut Ctx) -> Outcome {
    if chunk.image.unwrap_or(0) != 0 {
        return Outcome::Group(err::NO_FREE_SLOT);
    }
    let data: &[u8] = match &chunk.data {
        Cow::Borrowed(d) => d,
        Cow::Owned(d) => d,
    };
    if chunk.off == 0 {
        if let Some(outcome) = start_upload(dev, &chunk, data, ctx) {
            return outcome;
        }
    } else {
        let Some(upload) = &dev.images.upload else {
            // Nothing in progress: the device expects a first chunk.
            return ok(&build(|v: &mut UploadResponse| {
                v.off = 0;
            }));
        };
        if chunk.off != upload.off {
            return ok(&build(|v: &mut UploadResponse| {
                v.off = upload.off;
            }));
        }
        if chunk.off + data.len() as u64 > upload.len {
            return Outcome::Group(err::INVALID_IMAGE_DATA_OVERRUN);
        }
    }
    let Some(upload) = dev.images.upload.as_mut() else {
        return Outcome::Mgmt(mgmt::EUNKNOWN);
    };
    let Ok(off) = usize::try_from(upload.off) else {
        return Outcome::Group(err::INVALID_IMAGE_DATA_OVERRUN);
    };
    if dev.images.slots[1].write(off, data).is_err() {
        return Outcome::Group(err::FLASH_WRITE_FAILED);
    }
    ctx.wrote(data.len(), dev.config.delays.per_kib_written);
    upload.off += data.len() as u64;
    let (off, len) = (upload.off, upload.len);
    if off < len {
        return ok(&build(|v: &mut UploadResponse| {
            v.off = off;
        }));
    }
    let sha = upload.sha.clone();
    let Some(content) = usize::try_from(len)
        .ok()
        .and_then(|len| dev.images.slots[1].read(0, len).ok())
    else {
        return Outcome::Group(err::FLASH_READ_FAILED);
    };
    let actual = Sha256::digest(&content);
    let matches = sha.is_empty() || actual.as_slice() == sha.as_slice();
    info!(len, matches, "upload complete");
    ok(&build(|v: &mut UploadResponse| {
        v.off = off;
        v.r#match = (!sha.is_empty()).then_some(matches);
    }))
}

/// Checks a first chunk and starts (or resumes) the upload. Returns the reply when the
/// chunk is not to be written.
fn start_upload(
    dev: &mut Device,
    chunk: &UploadRequest<'_>,
    data: &[u8],
    ctx: &mut Ctx,
) -> Option<Outcome> {
    let Some(len) = chunk.len else {
        return Some(Outcome::Group(err::INVALID_LENGTH));
    };
    if data.len() < HEADER_SIZE {
        return Some(Outcome::Group(err::INVALID_IMAGE_HEADER));
    }
    let header = match ImageHeader::decode(data) {
        Ok(header) => header,
        Err(_) => return Some(Outcome::Group(err::INVALID_IMAGE_HEADER_MAGIC)),
    };
    let sha = chunk.sha.clone().unwrap_or_default();
    if sha.len() > 32 {
        return Some(Outcome::Group(err::INVALID_HASH));
    }
    let images = &mut dev.images;
    if images.secondary_in_use() {
        return Some(Outcome::Group(err::NO_FREE_SLOT));
    }
    if chunk.upgrade == Some(true)
        && images
            .running_version()
            .is_some_and(|running| header.version <= running)
    {
        return Some(Outcome::Group(err::CURRENT_VERSION_IS_NEWER));
    }
    if len > dev.config.slot_size as u64 {
        return Some(Outcome::Group(err::INVALID_IMAGE_TOO_LARGE));
    }
    if data.len() as u64 > len {
        return Some(Outcome::Group(err::INVALID_IMAGE_DATA_OVERRUN));
    }
    if let Some(upload) = &images.upload {
        if !sha.is_empty() && upload.sha == sha && upload.len == len {
            info!(off = upload.off, "upload resumed");
            return Some(ok(&build(|v: &mut UploadResponse| {
                v.off = upload.off;
            })));
        }
    }
    info!(len, version = %header.version, "upload starts: erasing slot 1");
    ctx.busy += dev.config.delays.erase;
    if images.slots[1].erase().is_err() {
        return Some(Outcome::Group(err::FLASH_ERASE_FAILED));
    }
    images.upload = Some(Upload { len, off: 0, sha });
    None
}
