//! File management (group 8): download, upload, status, hash/checksum, close.

use alloc::string::String;
use alloc::vec::Vec;

use alloc::borrow::Cow;
use alloc::collections::BTreeMap;

use minicbor::data::Type;
use minicbor::decode::{self, Decoder};
use minicbor::encode::{Encoder, Write};
use smp_header::{command::fs as cmd, group};

use super::{Empty, request};
use crate::map::{self, EncResult, FieldDecode, FieldEncode};
use crate::smp_map;

smp_map! {
    /// Read a chunk of a file (command 0, read).
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    pub struct DownloadRequest {
        /// Offset to read from.
        "off" => pub off: u64,
        /// Absolute path of the file.
        "name" => pub name: String,
    }
}

smp_map! {
    /// Answer to [`DownloadRequest`].
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub struct DownloadResponse {
        /// Size of the whole file (sent with offset 0).
        "len" => pub len: Option<u64>,
        /// Offset of this chunk.
        "off" => pub off: u64,
        /// The chunk.
        "data" => pub data: Vec<u8>,
    }
}

smp_map! {
    /// Write a chunk of a file (command 0, write); the device creates or truncates the
    /// file at offset 0. `data` borrows, so building chunks copies nothing.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    pub struct UploadRequest<'a> {
        /// Size of the whole file (first chunk only).
        "len" => pub len: Option<u64>,
        /// Offset of this chunk.
        "off" => pub off: u64,
        /// The chunk.
        "data" => pub data: Cow<'a, [u8]>,
        /// Absolute path of the file.
        "name" => pub name: String,
    }
}

smp_map! {
    /// Answer to [`UploadRequest`].
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub struct UploadResponse {
        /// The offset written up to: where the next chunk goes.
        "off" => pub off: u64,
    }
}

smp_map! {
    /// The size of a file (command 1, read).
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    pub struct StatusRequest {
        /// Absolute path of the file.
        "name" => pub name: String,
    }
}

smp_map! {
    /// Answer to [`StatusRequest`].
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub struct StatusResponse {
        /// Size of the file.
        "len" => pub len: u64,
    }
}

smp_map! {
    /// Hash or checksum of (part of) a file (command 2, read).
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    pub struct HashRequest {
        /// Bytes to hash; to the end of the file when absent.
        "len" => pub len: Option<u64>,
        /// Where to start; 0 when absent.
        "off" => pub off: Option<u64>,
        /// Absolute path of the file.
        "name" => pub name: String,
        /// `"crc32"` or `"sha256"`; the device's default when absent.
        "type" => pub r#type: Option<String>,
    }
}

/// The result of a [`HashRequest`]: a byte string for hashes (`sha256`), a number for
/// checksums (`crc32`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HashOutput {
    /// A hash, such as SHA-256.
    Bytes(Vec<u8>),
    /// A checksum, such as IEEE CRC32.
    Int(u64),
}

impl Default for HashOutput {
    fn default() -> Self {
        Self::Bytes(Vec::new())
    }
}

impl FieldEncode for HashOutput {
    fn encode_field<W: Write>(&self, e: &mut Encoder<W>) -> EncResult<W> {
        match self {
            Self::Bytes(b) => b.encode_field(e),
            Self::Int(n) => n.encode_field(e),
        }
    }
    fn field_len(&self) -> usize {
        match self {
            Self::Bytes(b) => b.field_len(),
            Self::Int(n) => n.field_len(),
        }
    }
}

impl FieldDecode<'_> for HashOutput {
    fn decode_field(d: &mut Decoder<'_>) -> Result<Self, decode::Error> {
        match d.datatype()? {
            Type::Bytes | Type::BytesIndef => Ok(Self::Bytes(map::bytes(d)?.into_owned())),
            _ => Ok(Self::Int(d.u64()?)),
        }
    }
}

smp_map! {
    /// Answer to [`HashRequest`].
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub struct HashResponse {
        /// Bytes hashed.
        "len" => pub len: u64,
        /// Where hashing started (absent for 0).
        "off" => pub off: Option<u64>,
        /// `"crc32"` or `"sha256"`.
        "type" => pub r#type: String,
        /// The hash or checksum.
        "output" => pub output: HashOutput,
    }
}

smp_map! {
    /// The hash and checksum types the device supports (command 3, read).
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    pub struct SupportedHashTypesRequest;
}

smp_map! {
    /// One entry of [`SupportedHashTypesResponse`].
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub struct HashTypeInfo {
        /// Size of the output in bytes.
        "size" => pub size: u32,
        /// 0: a number (checksum), 1: a byte string (hash).
        "format" => pub format: u8,
    }
}

smp_map! {
    /// Answer to [`SupportedHashTypesRequest`].
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub struct SupportedHashTypesResponse {
        /// The types by name (`"crc32"`, `"sha256"`).
        "types" => pub types: BTreeMap<String, HashTypeInfo>,
    }
}

smp_map! {
    /// Close the files the file group keeps open between chunks (command 4, write);
    /// answered by [`Empty`].
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    pub struct CloseRequest;
}

request!(DownloadRequest => DownloadResponse, group::FS, cmd::FILE, Read);
request!(UploadRequest<'_> => UploadResponse, group::FS, cmd::FILE, Write);
request!(StatusRequest => StatusResponse, group::FS, cmd::STATUS, Read);
request!(HashRequest => HashResponse, group::FS, cmd::HASH_CHECKSUM, Read);
request!(
    SupportedHashTypesRequest => SupportedHashTypesResponse,
    group::FS,
    cmd::SUPPORTED_HASH_CHECKSUM,
    Read
);
request!(CloseRequest => Empty, group::FS, cmd::CLOSE, Write);

#[cfg(test)]
mod tests {
    use std::borrow::ToOwned;

    use super::*;
    use crate::messages::test_util::{check, check_rejects, pattern};
    use std::vec;

    const NAME: &str = "/lfs1/a.txt";

    #[test]
    fn requests_round_trip() {
        check(&DownloadRequest {
            off: 0,
            name: NAME.into(),
        });
        let data = pattern(40, 4);
        check(&UploadRequest {
            len: Some(1000),
            off: 0,
            data: Cow::Borrowed(&data),
            name: NAME.into(),
        });
        check(&UploadRequest {
            len: None,
            off: 40,
            data: Cow::Owned(pattern(30, 5)),
            name: NAME.into(),
        });
        check(&StatusRequest { name: NAME.into() });
        check(&HashRequest {
            name: NAME.into(),
            ..HashRequest::default()
        });
        check(&HashRequest {
            len: Some(100),
            off: Some(10),
            name: NAME.into(),
            r#type: Some("sha256".into()),
        });
        check(&SupportedHashTypesRequest);
        check(&CloseRequest);
    }

    #[test]
    fn responses_round_trip() {
        check(&DownloadResponse {
            len: Some(1000),
            off: 0,
            data: pattern(20, 6),
        });
        check(&DownloadResponse {
            len: None,
            off: 20,
            data: vec![],
        });
        check(&UploadResponse { off: 40 });
        check(&StatusResponse { len: 1000 });
        check(&HashResponse {
            len: 1000,
            off: None,
            r#type: "sha256".into(),
            output: HashOutput::Bytes(pattern(32, 0x55)),
        });
        check(&HashResponse {
            len: 100,
            off: Some(10),
            r#type: "crc32".into(),
            output: HashOutput::Int(0xdead_beef),
        });
        let types = [
            (
                "sha256",
                HashTypeInfo {
                    size: 32,
                    format: 1,
                },
            ),
            ("crc32", HashTypeInfo { size: 4, format: 0 }),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        check(&SupportedHashTypesResponse { types });
    }

    #[test]
    fn wrong_fields_are_errors() {
        // `output` that is neither bytes nor an unsigned integer.
        check_rejects::<HashResponse>("a3 636c656e 01 6474797065 656372633332 666f7574707574 6178");
        check_rejects::<DownloadResponse>("a1 636f6666 00");
        check_rejects::<StatusResponse>("a1 636c656e 20");
    }
}
