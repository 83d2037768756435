//! File system group (8): upload, download, status, hash and checksum of the device's
//! files (`device::fs`).

use std::borrow::Cow;
use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use smp_proto::header::command::fs as cmd;
use smp_proto::messages::Empty;
use smp_proto::messages::build;
use smp_proto::messages::fs::{
    DownloadRequest, DownloadResponse, HashOutput, HashRequest, HashResponse, HashTypeInfo,
    StatusRequest, StatusResponse, SupportedHashTypesResponse, UploadRequest, UploadResponse,
};

use crate::device::Device;
use crate::device::fs::{FsResult, Upload, err};
use crate::reply::{Outcome, mgmt, ok};
use crate::request::{Ctx, Incoming};

/// Bytes of a reply that are not file data in a download reply (header and CBOR
/// keys): a download chunk is the buffer size less this.
const DOWNLOAD_OVERHEAD: usize = 44;

pub(crate) fn handle(dev: &mut Device, req: &Incoming<'_>, ctx: &mut Ctx) -> Outcome {
    dev.fs.close_if_idle();
    match (req.command, req.is_read()) {
        (cmd::FILE, true) => match req.decode::<DownloadRequest>() {
            Ok(download) => {
                // A download takes the group's one open file: an upload's is closed.
                dev.fs.close();
                reply(download_chunk(dev, &download))
            }
            Err(e) => e,
        },
        (cmd::FILE, false) => match req.decode::<UploadRequest<'_>>() {
            Ok(upload) => {
                let data: &[u8] = match &upload.data {
                    Cow::Borrowed(d) => d,
                    Cow::Owned(d) => d,
                };
                ctx.wrote(data.len(), dev.config.delays.per_kib_written);
                reply(upload_chunk(dev, &upload, data))
            }
            Err(e) => e,
        },
        (cmd::STATUS, true) => match req.decode::<StatusRequest>() {
            Ok(status) => reply(dev.fs.len(&status.name).map(|len| {
                ok(&build(|v: &mut StatusResponse| {
                    v.len = len;
                }))
            })),
            Err(e) => e,
        },
        (cmd::HASH_CHECKSUM, true) => match req.decode::<HashRequest>() {
            Ok(hash) if hash.len == Some(0) => Outcome::Mgmt(mgmt::EINVAL),
            Ok(hash) => reply(hash_file(dev, &hash)),
            Err(e) => e,
        },
        (cmd::SUPPORTED_HASH_CHECKSUM, true) => ok(&build(|v: &mut SupportedHashTypesResponse| {
            v.types = BTreeMap::from([
                (
                    "crc32".to_owned(),
                    build(|v: &mut HashTypeInfo| {
                        v.format = 0;
                        v.size = 4;
                    }),
                ),
                (
                    "sha256".to_owned(),
                    build(|v: &mut HashTypeInfo| {
                        v.format = 1;
                        v.size = 32;
                    }),
                ),
            ]);
        })),
        (cmd::CLOSE, false) => {
            dev.fs.close();
            ok(&Empty)
        }
        _ => Outcome::Mgmt(mgmt::ENOTSUP),
    }
}

fn reply(result: FsResult<Outcome>) -> Outcome {
    result.unwrap_or_else(Outcome::Group)
}

fn download_chunk(dev: &Device, req: &DownloadRequest) -> FsResult<Outcome> {
    let len = dev.fs.len(&req.name)?;
    // At or past the end, Zephyr answers an empty chunk rather than an error.
    let room = dev.config.buf_size.saturating_sub(DOWNLOAD_OVERHEAD).max(1);
    let data = dev.fs.read_at(&req.name, req.off, room)?;
    Ok(ok(&build(|v: &mut DownloadResponse| {
        v.off = req.off;
        v.data = data;
        v.len = (req.off == 0).then_some(len);
    })))
}

fn upload_chunk(dev: &mut Device, req: &UploadRequest<'_>, data: &[u8]) -> FsResult<Outcome> {
    Ok(match dev.fs.upload(&req.name, req.off, req.len, data)? {
        Upload::Accepted(off) => ok(&build(|v: &mut UploadResponse| v.off = off)),
        Upload::WrongOffset(expected) => Outcome::GroupLen(err::FILE_OFFSET_NOT_VALID, expected),
    })
}

fn hash_file(dev: &Device, req: &HashRequest) -> FsResult<Outcome> {
    // Zephyr's default is the checksum, not the hash.
    let kind = req.r#type.as_deref().unwrap_or("crc32");
    if kind != "sha256" && kind != "crc32" {
        return Err(err::CHECKSUM_HASH_NOT_FOUND);
    }
    let content = dev.fs.read_all(&req.name)?;
    if content.is_empty() {
        return Err(err::FILE_EMPTY);
    }
    let off = req.off.unwrap_or(0);
    let start = usize::try_from(off).unwrap_or(usize::MAX);
    if start >= content.len() {
        return Err(err::FILE_OFFSET_LARGER_THAN_FILE);
    }
    let wanted = req
        .len
        .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
    let part = &content[start..start.saturating_add(wanted).min(content.len())];
    let output = if kind == "sha256" {
        HashOutput::Bytes(Sha256::digest(part).to_vec())
    } else {
        HashOutput::Int(u64::from(crc32fast::hash(part)))
    };
    Ok(ok(&build(|v: &mut HashResponse| {
        v.r#type = kind.to_owned();
        v.off = (off != 0).then_some(off);
        v.len = part.len() as u64;
        v.output = output;
    })))
}
