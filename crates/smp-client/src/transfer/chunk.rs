//! What an upload request carries: how much data fits a frame, and the chunk requests of
//! the image and file system groups.

use std::borrow::Cow;

use smp_transport::header;

use crate::messages::fs;
use crate::messages::image::{UploadRequest, UploadResponse};
use crate::{DeviceError, ErrorScope, ImageUploadOptions, Request};

/// Bytes CBOR needs, beyond the initial byte, to write a length `n` (RFC 8949 §3).
///
/// The reference client sizes data with the length of the room left (`avail`) rather
/// than of the data itself; [`fit_data`] does the same so chunk sizes match it.
pub(crate) const fn cbor_len_extra(n: usize) -> usize {
    smp_proto::map::head_len(n as u64) - 1
}

/// Data bytes that fit a frame of `frame_limit` bytes when the same request with empty
/// data takes `empty_frame_len` bytes (header included).
pub(crate) const fn fit_data(frame_limit: usize, empty_frame_len: usize) -> usize {
    let avail = frame_limit.saturating_sub(empty_frame_len);
    avail - cbor_len_extra(avail)
}

/// `FS_MGMT_ERR_FILE_OFFSET_NOT_VALID`: a file chunk is not at the offset the device
/// expects.
const FS_FILE_OFFSET_NOT_VALID: i64 = 11;

/// A request that carries one chunk of an upload.
pub(crate) trait ChunkRequest<'a>: Request + minicbor::CborLen<()> {
    /// Whether the device may answer the first chunk with an offset beyond it, resuming
    /// an earlier upload of the same data there. Zephyr's image group does; its file
    /// system group starts the file anew at offset 0, every time.
    const RESUMES: bool;
    /// Puts the chunk's data in.
    fn set_data(&mut self, data: &'a [u8]);
    /// The device's offset (and, for images, `match`) from the reply.
    fn reply_offset(reply: &Self::Response) -> (u64, Option<bool>);
    /// Whether a device error answering a chunk means "not at this offset": `None` when
    /// it does not (the upload fails with it), `Some(offset)` when it does, with the
    /// device's expected offset if the reply (its raw `payload`) carries one.
    fn rejection(err: &DeviceError, payload: &[u8]) -> Option<Option<u64>> {
        let _ = (err, payload);
        None
    }
    /// The request that asks the device where it stands, after a rejection that did not
    /// say; `None` when there is none.
    fn offset_query(&self) -> Option<fs::StatusRequest> {
        None
    }
}

impl<'a> ChunkRequest<'a> for UploadRequest<'a> {
    const RESUMES: bool = true;
    fn set_data(&mut self, data: &'a [u8]) {
        self.data = Cow::Borrowed(data);
    }
    fn reply_offset(reply: &UploadResponse) -> (u64, Option<bool>) {
        (reply.off, reply.r#match)
    }
}

impl<'a> ChunkRequest<'a> for fs::UploadRequest<'a> {
    const RESUMES: bool = false;
    fn set_data(&mut self, data: &'a [u8]) {
        self.data = Cow::Borrowed(data);
    }
    fn reply_offset(reply: &fs::UploadResponse) -> (u64, Option<bool>) {
        (reply.off, None)
    }
    /// Zephyr's file system group refuses a chunk at the wrong offset with
    /// `FILE_OFFSET_NOT_VALID` and (since Zephyr 3.3) the file's length as `len`.
    fn rejection(err: &DeviceError, payload: &[u8]) -> Option<Option<u64>> {
        let wrong_offset = err.scope == ErrorScope::Group
            && err.group == header::group::FS
            && err.rc == FS_FILE_OFFSET_NOT_VALID;
        wrong_offset.then(|| {
            minicbor::decode::<fs::StatusResponse>(payload)
                .ok()
                .map(|status| status.len)
        })
    }
    fn offset_query(&self) -> Option<fs::StatusRequest> {
        Some(fs::StatusRequest {
            name: self.name.clone(),
        })
    }
}

/// The image upload's first chunk, or a later one, for the plan's offset.
pub(crate) fn image_chunk<'a>(
    off: u64,
    len: u64,
    sha256: &[u8; 32],
    options: &ImageUploadOptions,
) -> UploadRequest<'a> {
    if off == 0 {
        UploadRequest {
            len: Some(len),
            sha: Some(sha256.to_vec()),
            image: options.image,
            upgrade: Some(options.upgrade),
            ..UploadRequest::chunk(0, &[])
        }
    } else {
        UploadRequest::chunk(off, &[])
    }
}
