//! The MCUboot image format: parse and verify images, build test images, give an
//! image another version ([`with_version`]).
//!
//! This is a pure data-format crate beside the SMP stack: it knows the bytes of the
//! images that MCUboot boots and `imgtool` writes, and nothing else. It does no file
//! or network IO and knows nothing of SMP; callers pass byte slices in and get
//! values or bytes out. It checks the SHA-256 image hash but not signatures (it has
//! no keys and no crypto besides SHA-256).
//!
//! An image file as `imgtool create` writes it (all integers little-endian):
//!
//! ```text
//! 0                hdr_size           + img_size        + protect_tlv_size
//! +----------------+------------------+-----------------+--------------------------+
//! | header area    | body             | protected TLVs  | TLVs                     |
//! | 32-byte struct | (the firmware)   | (optional)      | info 0x6907, SHA256, ... |
//! | + padding      |                  | info 0x6908 ... |                          |
//! +----------------+------------------+-----------------+--------------------------+
//! |<------------ hashed into the SHA256 TLV ---------->|
//! ```
//!
//! The header is described at [`ImageHeader`]. Each TLV area starts with a 4-byte info
//! (magic, then the area's total size including the info) followed by TLVs of a 4-byte
//! header (kind, length) and `length` bytes of value. Bytes after the last area (such
//! as the trailer `imgtool --pad` adds) are ignored.
//!
//! ```
//! use smp_mcuboot::{Image, ImageBuilder, ImageVersion};
//!
//! let version: ImageVersion = "1.2.3+4".parse()?;
//! let bytes = ImageBuilder::new(version).build(&[0xaa; 1000]);
//! let image = Image::parse(&bytes)?;
//! assert_eq!(image.header.version.to_string(), "1.2.3.4");
//! assert_eq!(image.total_size(), bytes.len());
//! image.verify()?;
//! # Ok::<(), smp_mcuboot::ImageError>(())
//! ```
#![forbid(unsafe_code)]

mod builder;
mod header;
mod image;
mod rewrite;
mod version;

pub use builder::{ImageBuilder, sample_body};
pub use header::ImageHeader;
pub use image::{Image, Tlv};
pub use rewrite::with_version;
pub use version::ImageVersion;

/// The first field of every image header (`3d b8 f3 96` on disk).
pub const IMAGE_MAGIC: u32 = 0x96f3_b83d;

/// Size of the fixed header struct (`struct image_header`) at the start of an image.
/// The header area (`header_size`) may be larger; the rest of it is padding.
pub const HEADER_SIZE: usize = 32;

/// Byte ranges of the fields of the 32-byte header; every field is little-endian.
pub mod field {
    use core::ops::Range;

    /// `ih_magic`: [`IMAGE_MAGIC`](crate::IMAGE_MAGIC).
    pub const MAGIC: Range<usize> = 0..4;
    /// `ih_load_addr`: RAM load address (with `RAM_LOAD`) or fixed ROM address (with `ROM_FIXED`).
    pub const LOAD_ADDR: Range<usize> = 4..8;
    /// `ih_hdr_size`: size of the header area; the body starts here.
    pub const HEADER_SIZE: Range<usize> = 8..10;
    /// `ih_protect_tlv_size`: size of the protected TLV area including its info, or 0.
    pub const PROTECTED_TLV_SIZE: Range<usize> = 10..12;
    /// `ih_img_size`: size of the body, without header and TLVs.
    pub const IMAGE_SIZE: Range<usize> = 12..16;
    /// `ih_flags`: see [`flags`](crate::flags).
    pub const FLAGS: Range<usize> = 16..20;
    /// `iv_major`.
    pub const VERSION_MAJOR: usize = 20;
    /// `iv_minor`.
    pub const VERSION_MINOR: usize = 21;
    /// `iv_revision`.
    pub const VERSION_REVISION: Range<usize> = 22..24;
    /// `iv_build_num`.
    pub const VERSION_BUILD: Range<usize> = 24..28;
    /// `_pad1`: ignored on decode, written as zero.
    pub const PAD: Range<usize> = 28..32;
}

/// TLV kinds and the layout of TLV areas.
///
/// Kinds 0xXXA0-0xXXFE are left to vendors; [`name`](tlv::name) does not know them.
pub mod tlv {
    /// Magic of the info that starts the (unprotected) TLV area.
    pub const INFO_MAGIC: u16 = 0x6907;
    /// Magic of the info that starts the protected TLV area.
    pub const PROT_INFO_MAGIC: u16 = 0x6908;
    /// Size of an area's info: magic (u16), then the area's total size (u16) counting the info.
    pub const INFO_SIZE: usize = 4;
    /// Size of a TLV's own header: kind (u16), then the value's length (u16).
    pub const HEADER_SIZE: usize = 4;

    /// Hash of the public key that signed the image.
    pub const KEYHASH: u16 = 0x01;
    /// The public key that signed the image.
    pub const PUBKEY: u16 = 0x02;
    /// SHA-256 of header area, body and protected TLV area: the image hash.
    pub const SHA256: u16 = 0x10;
    /// SHA-384 image hash.
    pub const SHA384: u16 = 0x11;
    /// SHA-512 image hash.
    pub const SHA512: u16 = 0x12;
    /// RSA-2048 PSS signature.
    pub const RSA2048_PSS: u16 = 0x20;
    /// ECDSA P-224 signature (obsolete).
    pub const ECDSA224: u16 = 0x21;
    /// ECDSA signature (P-256 or P-384).
    pub const ECDSA_SIG: u16 = 0x22;
    /// RSA-3072 PSS signature.
    pub const RSA3072_PSS: u16 = 0x23;
    /// Ed25519 signature.
    pub const ED25519: u16 = 0x24;
    /// Marks a signature over the whole image instead of its hash.
    pub const SIG_PURE: u16 = 0x25;
    /// Image key encrypted with RSA-OAEP-2048.
    pub const ENC_RSA2048: u16 = 0x30;
    /// Image key encrypted with AES key wrap.
    pub const ENC_KW: u16 = 0x31;
    /// Image key encrypted with ECIES-P256.
    pub const ENC_EC256: u16 = 0x32;
    /// Image key encrypted with ECIES-X25519.
    pub const ENC_X25519: u16 = 0x33;
    /// Image key encrypted with ECIES-X25519 using SHA-512.
    pub const ENC_X25519_SHA512: u16 = 0x34;
    /// Dependency on another image's version (protected).
    pub const DEPENDENCY: u16 = 0x40;
    /// Security counter, 4 bytes little-endian (protected).
    pub const SEC_CNT: u16 = 0x50;
    /// Measured-boot record, CBOR (protected).
    pub const BOOT_RECORD: u16 = 0x60;
    /// Size of the decompressed image (protected).
    pub const DECOMP_SIZE: u16 = 0x70;
    /// Hash of the decompressed image (protected).
    pub const DECOMP_SHA: u16 = 0x71;
    /// Signature of the decompressed image (protected).
    pub const DECOMP_SIGNATURE: u16 = 0x72;
    /// Size of the compressed image before encryption (protected).
    pub const COMP_DEC_SIZE: u16 = 0x73;
    /// Vendor UUID (protected).
    pub const UUID_VID: u16 = 0x74;
    /// Image class UUID (protected).
    pub const UUID_CID: u16 = 0x75;

    /// The name of a TLV kind defined by MCUboot, or `None` for vendor and unknown kinds.
    pub const fn name(kind: u16) -> Option<&'static str> {
        Some(match kind {
            KEYHASH => "KEYHASH",
            PUBKEY => "PUBKEY",
            SHA256 => "SHA256",
            SHA384 => "SHA384",
            SHA512 => "SHA512",
            RSA2048_PSS => "RSA2048_PSS",
            ECDSA224 => "ECDSA224",
            ECDSA_SIG => "ECDSA_SIG",
            RSA3072_PSS => "RSA3072_PSS",
            ED25519 => "ED25519",
            SIG_PURE => "SIG_PURE",
            ENC_RSA2048 => "ENC_RSA2048",
            ENC_KW => "ENC_KW",
            ENC_EC256 => "ENC_EC256",
            ENC_X25519 => "ENC_X25519",
            ENC_X25519_SHA512 => "ENC_X25519_SHA512",
            DEPENDENCY => "DEPENDENCY",
            SEC_CNT => "SEC_CNT",
            BOOT_RECORD => "BOOT_RECORD",
            DECOMP_SIZE => "DECOMP_SIZE",
            DECOMP_SHA => "DECOMP_SHA",
            DECOMP_SIGNATURE => "DECOMP_SIGNATURE",
            COMP_DEC_SIZE => "COMP_DEC_SIZE",
            UUID_VID => "UUID_VID",
            UUID_CID => "UUID_CID",
            _ => return None,
        })
    }
}

/// Bits of the header's `flags` field.
pub mod flags {
    /// Position-independent code (not supported by MCUboot).
    pub const PIC: u32 = 0x1;
    /// Body encrypted with AES-128.
    pub const ENCRYPTED_AES128: u32 = 0x4;
    /// Body encrypted with AES-256.
    pub const ENCRYPTED_AES256: u32 = 0x8;
    /// Not bootable on its own (split image application).
    pub const NON_BOOTABLE: u32 = 0x10;
    /// Copied to RAM at the header's load address before it runs.
    pub const RAM_LOAD: u32 = 0x20;
    /// Linked for a fixed flash address, given in the header's load address.
    pub const ROM_FIXED: u32 = 0x100;
    /// Body compressed with LZMA1.
    pub const COMPRESSED_LZMA1: u32 = 0x200;
    /// Body compressed with LZMA2.
    pub const COMPRESSED_LZMA2: u32 = 0x400;
    /// Body compressed with the ARM Thumb filter before LZMA2.
    pub const COMPRESSED_ARM_THUMB: u32 = 0x800;

    const ALL: [(u32, &str); 9] = [
        (PIC, "PIC"),
        (ENCRYPTED_AES128, "ENCRYPTED_AES128"),
        (ENCRYPTED_AES256, "ENCRYPTED_AES256"),
        (NON_BOOTABLE, "NON_BOOTABLE"),
        (RAM_LOAD, "RAM_LOAD"),
        (ROM_FIXED, "ROM_FIXED"),
        (COMPRESSED_LZMA1, "COMPRESSED_LZMA1"),
        (COMPRESSED_LZMA2, "COMPRESSED_LZMA2"),
        (COMPRESSED_ARM_THUMB, "COMPRESSED_ARM_THUMB"),
    ];

    /// The names of the known bits set in `flags`, lowest bit first; unknown bits are left out.
    pub fn names(flags: u32) -> Vec<&'static str> {
        ALL.iter()
            .filter(|(bit, _)| flags & bit != 0)
            .map(|&(_, name)| name)
            .collect()
    }
}

/// Why bytes are not a valid MCUboot image, or a string not a version.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum ImageError {
    /// Fewer bytes than the 32-byte header.
    #[error("{len} bytes are too few for an MCUboot image header ({needed} bytes)")]
    TooShort {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        len: usize,
    },
    /// The first four bytes are not [`IMAGE_MAGIC`].
    #[error(
        "not an MCUboot image: magic {found:#010x} instead of {IMAGE_MAGIC:#010x} \
         (was the file signed with imgtool, e.g. zephyr.signed.bin rather than zephyr.bin?)"
    )]
    BadMagic {
        /// The magic found, read little-endian.
        found: u32,
    },
    /// The header area is smaller than the header struct, so the body would overlap it.
    #[error("image header size {header_size} is smaller than the {HEADER_SIZE}-byte header")]
    HeaderSizeTooSmall {
        /// The header's `header_size`.
        header_size: u16,
    },
    /// The file ends before the areas its header and TLV infos announce.
    #[error("image truncated: its header and TLV infos announce {needed} bytes, only {len} given")]
    Truncated {
        /// Bytes needed (saturated at `usize::MAX`).
        needed: usize,
        /// Bytes available.
        len: usize,
    },
    /// A TLV area does not start with the expected magic.
    #[error("no TLV area at offset {offset:#x}: magic {found:#06x} instead of {expected:#06x}")]
    BadTlvMagic {
        /// Offset of the area's info in the image.
        offset: usize,
        /// Magic found.
        found: u16,
        /// Magic expected ([`tlv::INFO_MAGIC`] or [`tlv::PROT_INFO_MAGIC`]).
        expected: u16,
    },
    /// The header's protected TLV size disagrees with the protected area's own info.
    #[error(
        "protected TLV area size mismatch: the header says {header} bytes, the area's info {info}"
    )]
    ProtectedSizeMismatch {
        /// `protected_tlv_size` of the header.
        header: u16,
        /// Total size in the protected area's info.
        info: u16,
    },
    /// A TLV area's total size is smaller than its own info.
    #[error("TLV area at offset {offset:#x} claims {total} bytes, less than its 4-byte info")]
    BadTlvTotal {
        /// Offset of the area's info in the image.
        offset: usize,
        /// Total size found in the info.
        total: u16,
    },
    /// A TLV runs past the end of its area.
    #[error("TLV at offset {offset:#x} runs past the end of its area at {area_end:#x}")]
    TlvOverrun {
        /// Offset of the TLV's header in the image.
        offset: usize,
        /// Offset where its area ends.
        area_end: usize,
    },
    /// The SHA256 TLV does not hold 32 bytes.
    #[error("SHA256 TLV holds {len} bytes instead of 32")]
    BadHashLength {
        /// Length of the TLV's value.
        len: u16,
    },
    /// The image carries no SHA256 TLV to verify against.
    #[error("image has no SHA256 TLV to verify (not made by imgtool, or hashed with SHA-384/512)")]
    NoHash,
    /// The SHA256 TLV does not match the hashed bytes.
    #[error(
        "image hash mismatch: the SHA256 TLV does not match the contents (corrupted or modified)"
    )]
    HashMismatch,
    /// A version string that is not `major.minor.revision+build` or `major.minor.revision.build`.
    #[error(
        "invalid image version {0:?}: expected major[.minor[.revision[+build]]] or \
         major.minor.revision.build, with major and minor up to 255, revision up to 65535, \
         build up to 4294967295"
    )]
    BadVersion(String),
    /// The image cannot be given another version here ([`with_version`]): it is signed,
    /// or otherwise carries something only its maker can compute again.
    #[error("the image cannot be given another version: {0}")]
    NotRewritable(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_ranges_tile_the_header() {
        let ranges = [
            field::MAGIC,
            field::LOAD_ADDR,
            field::HEADER_SIZE,
            field::PROTECTED_TLV_SIZE,
            field::IMAGE_SIZE,
            field::FLAGS,
            field::VERSION_MAJOR..field::VERSION_MAJOR + 1,
            field::VERSION_MINOR..field::VERSION_MINOR + 1,
            field::VERSION_REVISION,
            field::VERSION_BUILD,
            field::PAD,
        ];
        let mut next = 0;
        for range in ranges {
            assert_eq!(range.start, next);
            next = range.end;
        }
        assert_eq!(next, HEADER_SIZE);
    }

    #[test]
    fn names() {
        assert_eq!(tlv::name(tlv::SHA256), Some("SHA256"));
        assert_eq!(tlv::name(0x50), Some("SEC_CNT"));
        assert_eq!(tlv::name(0x48a0), None);
        assert_eq!(flags::names(0), Vec::<&str>::new());
        // 0x0000_0124 = RAM_LOAD | ROM_FIXED | ENCRYPTED_AES128; 0x8000_0000 is unknown.
        assert_eq!(
            flags::names(0x8000_0124),
            ["ENCRYPTED_AES128", "RAM_LOAD", "ROM_FIXED"]
        );
    }

    #[test]
    fn messages_say_what_is_wrong() {
        assert_eq!(
            ImageError::BadMagic { found: 0x1234_5678 }
                .to_string()
                .split(" (")
                .next(),
            Some("not an MCUboot image: magic 0x12345678 instead of 0x96f3b83d")
        );
        assert_eq!(
            ImageError::BadTlvMagic {
                offset: 0x5e8,
                found: 0xffff,
                expected: tlv::INFO_MAGIC
            }
            .to_string(),
            "no TLV area at offset 0x5e8: magic 0xffff instead of 0x6907"
        );
    }
}
