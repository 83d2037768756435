//! Image management (group 1): image state, upload, erase and slot information.

use alloc::string::String;
use alloc::vec::Vec;

use alloc::borrow::Cow;

use smp_header::{command::image as cmd, group};

use super::{Empty, request};
use crate::{ImageHash, smp_map};

smp_map! {
    /// Read the state of the images in every slot (command 0, read).
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    pub struct StateRequest;
}

smp_map! {
    /// Mark an image for test (`confirm: false` with its `hash`) or confirm one
    /// (`confirm: true`; without `hash`, the running image) (command 0, write).
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    pub struct SetStateRequest {
        /// The image's hash (the SHA-256 TLV of the image, as in [`ImageState::hash`]).
        "hash" => pub hash: Option<ImageHash>,
        /// True to make the image permanent, false to test it on the next boot.
        "confirm" => pub confirm: bool,
    }
}

smp_map! {
    /// The state of the image in one slot.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub struct ImageState {
        /// SHA-256 of the image header and body (MCUboot's hash TLV, not of the file).
        "hash" => pub hash: Option<ImageHash>,
        /// Slot within the image: 0 primary, 1 secondary.
        "slot" => pub slot: u32,
        /// Image number; absent when the device has one image.
        "image" => pub image: Option<u32>,
        /// The image is running.
        "active" => pub active: Option<bool>,
        /// The image is set to be swapped in on the next boot.
        "pending" => pub pending: Option<bool>,
        /// Version, `major.minor.revision[.build]`.
        "version" => pub version: String,
        /// The image may be booted.
        "bootable" => pub bootable: Option<bool>,
        /// The image is confirmed.
        "confirmed" => pub confirmed: Option<bool>,
        /// The image stays in the primary slot after the next boot.
        "permanent" => pub permanent: Option<bool>,
    }
}

smp_map! {
    /// Answer to [`StateRequest`] and [`SetStateRequest`].
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub struct StateResponse {
        /// One entry per image slot.
        "images" => pub images: Vec<ImageState>,
        /// `splitStatus` (unused by Zephyr).
        "splitStatus" => pub split_status: Option<i64>,
    }
}

smp_map! {
    /// One chunk of an image upload (command 1, write).
    ///
    /// The first chunk has `off` 0 and carries `len` (the image size) and usually `sha`
    /// (SHA-256 of the whole image, which lets an interrupted upload resume), `image` and
    /// `upgrade`; later chunks carry only `off` and `data`. `data` borrows the image, so
    /// building the thousands of chunks of an upload copies nothing.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    pub struct UploadRequest<'a> {
        /// Size of the whole image (first chunk only).
        "len" => pub len: Option<u64>,
        /// Offset of this chunk in the image.
        "off" => pub off: u64,
        /// SHA-256 of the whole image (first chunk only).
        "sha" => pub sha: Option<Vec<u8>>,
        /// The chunk.
        "data" => pub data: Cow<'a, [u8]>,
        /// Image number, 0 when absent (first chunk only).
        "image" => pub image: Option<u32>,
        /// Refuse an image not newer than the running one (first chunk only).
        "upgrade" => pub upgrade: Option<bool>,
    }
}

impl<'a> UploadRequest<'a> {
    /// A chunk after the first: `off` and `data` only.
    pub fn chunk(off: u64, data: &'a [u8]) -> Self {
        Self {
            off,
            data: Cow::Borrowed(data),
            ..Self::default()
        }
    }

    /// The first chunk (offset 0) of an image of `len` bytes with SHA-256 `sha`.
    pub fn first(data: &'a [u8], len: u64, sha: Option<Vec<u8>>) -> Self {
        Self {
            len: Some(len),
            sha,
            ..Self::chunk(0, data)
        }
    }
}

smp_map! {
    /// Answer to [`UploadRequest`].
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub struct UploadResponse {
        /// The offset the device expects next (equal to the image size when done).
        "off" => pub off: u64,
        /// With the last chunk, on devices that check it: the image matches `sha`.
        "match" => pub r#match: Option<bool>,
    }
}

smp_map! {
    /// Erase an image slot (command 5, write); answered by [`Empty`].
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    pub struct EraseRequest {
        /// Slot to erase; the device's default (slot 1) when absent.
        "slot" => pub slot: Option<u32>,
    }
}

smp_map! {
    /// Slot information (command 6, read).
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    pub struct SlotInfoRequest;
}

smp_map! {
    /// One slot in a [`SlotInfoImage`].
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub struct SlotInfo {
        /// Slot size in bytes.
        "size" => pub size: u64,
        /// Slot number within the image.
        "slot" => pub slot: u32,
        /// The image number to upload to for this slot, where it differs.
        "upload_image_id" => pub upload_image_id: Option<u32>,
    }
}

smp_map! {
    /// The slots of one image in a [`SlotInfoResponse`].
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub struct SlotInfoImage {
        /// Image number.
        "image" => pub image: u32,
        /// The image's slots.
        "slots" => pub slots: Vec<SlotInfo>,
        /// Largest image the slots can take, when it is less than the slot size.
        "max_image_size" => pub max_image_size: Option<u64>,
    }
}

smp_map! {
    /// Answer to [`SlotInfoRequest`].
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub struct SlotInfoResponse {
        /// One entry per image.
        "images" => pub images: Vec<SlotInfoImage>,
    }
}

request!(StateRequest => StateResponse, group::IMAGE, cmd::STATE, Read);
request!(SetStateRequest => StateResponse, group::IMAGE, cmd::STATE, Write);
request!(UploadRequest<'_> => UploadResponse, group::IMAGE, cmd::UPLOAD, Write);
request!(EraseRequest => Empty, group::IMAGE, cmd::ERASE, Write);
request!(SlotInfoRequest => SlotInfoResponse, group::IMAGE, cmd::SLOT_INFO, Read);

#[cfg(test)]
mod tests {

    use super::*;
    use crate::messages::test_util::{check, check_rejects, hex, pattern};
    use std::vec;

    #[test]
    fn requests_round_trip() {
        check(&StateRequest);
        check(&SetStateRequest {
            hash: None,
            confirm: true,
        });
        check(&SetStateRequest {
            hash: Some(pattern(32, 0x55).into()),
            confirm: false,
        });
        let image = pattern(2000, 1);
        check(&UploadRequest {
            image: Some(0),
            upgrade: Some(false),
            ..UploadRequest::first(&image[..1387], 429_552, Some(pattern(32, 0x55)))
        });
        check(&UploadRequest::chunk(1387, &image[1387..]));
        check(&UploadRequest::chunk(200_000, &[]));
        check(&EraseRequest::default());
        check(&EraseRequest { slot: Some(1) });
        check(&SlotInfoRequest);
    }

    #[test]
    fn responses_round_trip() {
        check(&StateResponse {
            images: vec![
                ImageState {
                    hash: Some(pattern(32, 0x55).into()),
                    slot: 0,
                    image: Some(0),
                    active: Some(true),
                    version: "1.2.3".into(),
                    bootable: Some(true),
                    confirmed: Some(true),
                    ..ImageState::default()
                },
                ImageState {
                    slot: 1,
                    pending: Some(true),
                    permanent: Some(false),
                    version: "1.3.0.7".into(),
                    ..ImageState::default()
                },
            ],
            split_status: Some(0),
        });
        check(&StateResponse::default());
        check(&UploadResponse {
            off: 1387,
            r#match: None,
        });
        check(&UploadResponse {
            off: 429_552,
            r#match: Some(true),
        });
        check(&SlotInfoResponse {
            images: vec![
                SlotInfoImage {
                    image: 0,
                    slots: vec![
                        SlotInfo {
                            size: 0x6_0000,
                            slot: 0,
                            upload_image_id: None,
                        },
                        SlotInfo {
                            size: 0x6_0000,
                            slot: 1,
                            upload_image_id: Some(0),
                        },
                    ],
                    max_image_size: Some(0x5_f000),
                },
                SlotInfoImage {
                    image: 1,
                    slots: vec![],
                    max_image_size: None,
                },
            ],
        });
    }

    #[test]
    fn borrowed_upload_chunks_copy_nothing() {
        let image = pattern(100, 0);
        let r = UploadRequest::chunk(10, &image[10..20]);
        assert!(matches!(r.data, Cow::Borrowed(_)));
        assert_eq!(
            minicbor::len(&r),
            minicbor::to_vec(&r).expect("encodes").len()
        );
    }

    #[test]
    fn decodes_a_zephyr_state_reply() {
        // {_ "images": [_ {_ "image": 0, "slot": 0, "version": "0.0.0", "hash": h'00..',
        //   "bootable": true, "pending": false, "confirmed": true, "active": true,
        //   "permanent": false}], "swap_type": "none"} -- Zephyr 4.x adds keys like this.
        let b = hex(
            "bf 66696d61676573 9f bf 65696d616765 00 64736c6f74 00 6776657273696f6e 65302e302e30
             6468617368 4401020304 68626f6f7461626c65 f5 6770656e64696e67 f4
             69636f6e6669726d6564 f5 66616374697665 f5 697065726d616e656e74 f4 ff ff
             69737761705f74797065 646e6f6e65 ff",
        );
        let r: StateResponse = minicbor::decode(&b).expect("decodes");
        assert_eq!(r.images.len(), 1);
        let s = &r.images[0];
        assert_eq!(s.hash.as_deref(), Some(&[1, 2, 3, 4][..]));
        assert_eq!(s.version, "0.0.0");
        assert_eq!(s.pending, Some(false));
        assert_eq!(s.active, Some(true));
    }

    #[test]
    fn missing_required_fields_are_errors() {
        check_rejects::<UploadResponse>("a1 656d61746368 f5");
        // An image state without `version`.
        check_rejects::<StateResponse>("a1 66696d61676573 81 a1 64736c6f74 00");
        check_rejects::<SetStateRequest>("a0");
        // `data` must be a byte string.
        check_rejects::<UploadRequest<'_>>("a2 636f6666 00 6464617461 80");
    }
}
