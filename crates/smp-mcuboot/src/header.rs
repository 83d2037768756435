//! The 32-byte image header (`struct image_header`).

use core::ops::Range;

use crate::{HEADER_SIZE, IMAGE_MAGIC, ImageError, ImageVersion, field};

/// The fixed header at the start of every image.
///
/// ```text
///  offset  size  field                 (little-endian)
///  0x00    4     magic                 0x96f3b83d, on disk 3d b8 f3 96
///  0x04    4     load_addr
///  0x08    2     header_size           the body starts here
///  0x0a    2     protected_tlv_size    0, or the protected area's size with its info
///  0x0c    4     image_size            the body's size
///  0x10    4     flags
///  0x14    1     version.major
///  0x15    1     version.minor
///  0x16    2     version.revision
///  0x18    4     version.build
///  0x1c    4     padding               ignored on decode, written as zero
/// ```
///
/// [`decode`](Self::decode) needs only these 32 bytes, so a version can be read from
/// the first chunk of an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageHeader {
    /// RAM load address (with [`flags::RAM_LOAD`](crate::flags::RAM_LOAD)) or fixed ROM
    /// address (with [`flags::ROM_FIXED`](crate::flags::ROM_FIXED)); otherwise 0.
    pub load_addr: u32,
    /// Size of the header area: the 32-byte header and its padding. At least [`HEADER_SIZE`].
    pub header_size: u16,
    /// Size of the protected TLV area including its info, or 0 when there is none.
    pub protected_tlv_size: u16,
    /// Size of the body (the firmware), without header and TLVs.
    pub image_size: u32,
    /// Flags, see [`flags`](crate::flags).
    pub flags: u32,
    /// Image version.
    pub version: ImageVersion,
}

impl ImageHeader {
    /// Decodes the header at the start of `bytes`; bytes after the first [`HEADER_SIZE`]
    /// are ignored. Checks the magic and that `header_size` covers the header.
    pub fn decode(bytes: &[u8]) -> Result<Self, ImageError> {
        let Some(raw) = bytes.first_chunk::<HEADER_SIZE>() else {
            return Err(ImageError::TooShort {
                needed: HEADER_SIZE,
                len: bytes.len(),
            });
        };
        let magic = u32_at(raw, field::MAGIC);
        if magic != IMAGE_MAGIC {
            return Err(ImageError::BadMagic { found: magic });
        }
        let header_size = u16_at(raw, field::HEADER_SIZE);
        if usize::from(header_size) < HEADER_SIZE {
            return Err(ImageError::HeaderSizeTooSmall { header_size });
        }
        Ok(Self {
            load_addr: u32_at(raw, field::LOAD_ADDR),
            header_size,
            protected_tlv_size: u16_at(raw, field::PROTECTED_TLV_SIZE),
            image_size: u32_at(raw, field::IMAGE_SIZE),
            flags: u32_at(raw, field::FLAGS),
            version: ImageVersion {
                major: raw[field::VERSION_MAJOR],
                minor: raw[field::VERSION_MINOR],
                revision: u16_at(raw, field::VERSION_REVISION),
                build: u32_at(raw, field::VERSION_BUILD),
            },
        })
    }

    /// Encodes the header, magic included and padding zero.
    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut out = [0; HEADER_SIZE];
        out[field::MAGIC].copy_from_slice(&IMAGE_MAGIC.to_le_bytes());
        out[field::LOAD_ADDR].copy_from_slice(&self.load_addr.to_le_bytes());
        out[field::HEADER_SIZE].copy_from_slice(&self.header_size.to_le_bytes());
        out[field::PROTECTED_TLV_SIZE].copy_from_slice(&self.protected_tlv_size.to_le_bytes());
        out[field::IMAGE_SIZE].copy_from_slice(&self.image_size.to_le_bytes());
        out[field::FLAGS].copy_from_slice(&self.flags.to_le_bytes());
        out[field::VERSION_MAJOR] = self.version.major;
        out[field::VERSION_MINOR] = self.version.minor;
        out[field::VERSION_REVISION].copy_from_slice(&self.version.revision.to_le_bytes());
        out[field::VERSION_BUILD].copy_from_slice(&self.version.build.to_le_bytes());
        out
    }
}

// The field ranges are constants inside the 32-byte array (a test in lib.rs checks
// that they tile it), so the indexing below cannot fail whatever the input.

fn u16_at(raw: &[u8; HEADER_SIZE], at: Range<usize>) -> u16 {
    u16::from_le_bytes([raw[at.start], raw[at.start + 1]])
}

fn u32_at(raw: &[u8; HEADER_SIZE], at: Range<usize>) -> u32 {
    let s = at.start;
    u32::from_le_bytes([raw[s], raw[s + 1], raw[s + 2], raw[s + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags;

    /// The header `imgtool create --version 1.2.3+4 --header-size 0x200 --pad-header`
    /// writes for a 1000-byte body.
    const IMGTOOL_1_2_3_4: [u8; HEADER_SIZE] = [
        0x3d, 0xb8, 0xf3, 0x96, // magic 0x96f3b83d
        0x00, 0x00, 0x00, 0x00, // load_addr 0
        0x00, 0x02, // header_size 0x200
        0x00, 0x00, // protected_tlv_size 0: no protected TLVs
        0xe8, 0x03, 0x00, 0x00, // image_size 1000
        0x00, 0x00, 0x00, 0x00, // flags: none
        0x01, // major 1
        0x02, // minor 2
        0x03, 0x00, // revision 3
        0x04, 0x00, 0x00, 0x00, // build 4
        0x00, 0x00, 0x00, 0x00, // padding
    ];

    #[test]
    fn imgtool_vector() {
        let header = ImageHeader {
            load_addr: 0,
            header_size: 0x200,
            protected_tlv_size: 0,
            image_size: 1000,
            flags: 0,
            version: ImageVersion::new(1, 2, 3, 4),
        };
        assert_eq!(header.encode(), IMGTOOL_1_2_3_4);
        assert_eq!(ImageHeader::decode(&IMGTOOL_1_2_3_4), Ok(header));
    }

    #[test]
    fn imgtool_load_addr_vector() {
        // imgtool create --version 1.2.3+4 --header-size 0x200 --pad-header
        //   --security-counter 7 --load-addr 0x20000000 (1000-byte body)
        let bytes = [
            0x3d, 0xb8, 0xf3, 0x96, // magic
            0x00, 0x00, 0x00, 0x20, // load_addr 0x20000000
            0x00, 0x02, // header_size 0x200
            0x0c, 0x00, // protected_tlv_size 12: info (4) + SEC_CNT TLV (4 + 4)
            0xe8, 0x03, 0x00, 0x00, // image_size 1000
            0x20, 0x00, 0x00, 0x00, // flags 0x20: RAM_LOAD, set by imgtool for --load-addr
            0x01, 0x02, 0x03, 0x00, 0x04, 0x00, 0x00, 0x00, // version 1.2.3+4
            0x00, 0x00, 0x00, 0x00, // padding
        ];
        let header = ImageHeader::decode(&bytes).unwrap();
        assert_eq!(header.load_addr, 0x2000_0000);
        assert_eq!(header.protected_tlv_size, 12);
        assert_eq!(header.flags, flags::RAM_LOAD);
        assert_eq!(header.encode(), bytes);
    }

    #[test]
    fn imgtool_rom_fixed_max_version_vector() {
        // imgtool create --version 255.255.65535+4294967295 --header-size 0x200
        //   --pad-header --rom-fixed 0x8000 (1000-byte body)
        let bytes = [
            0x3d, 0xb8, 0xf3, 0x96, // magic
            0x00, 0x80, 0x00, 0x00, // load_addr 0x8000: the fixed ROM address
            0x00, 0x02, // header_size 0x200
            0x00, 0x00, // protected_tlv_size 0
            0xe8, 0x03, 0x00, 0x00, // image_size 1000
            0x00, 0x01, 0x00, 0x00, // flags 0x100: ROM_FIXED
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, // version 255.255.65535+4294967295
            0x00, 0x00, 0x00, 0x00, // padding
        ];
        let header = ImageHeader::decode(&bytes).unwrap();
        assert_eq!(header.flags, flags::ROM_FIXED);
        assert_eq!(header.version, ImageVersion::new(255, 255, 65535, u32::MAX));
        assert_eq!(header.encode(), bytes);
    }

    #[test]
    fn decode_ignores_padding_and_what_follows() {
        let mut bytes = IMGTOOL_1_2_3_4.to_vec();
        bytes[field::PAD].fill(0xee);
        bytes.extend_from_slice(&[0xff; 100]);
        let header = ImageHeader::decode(&bytes).unwrap();
        assert_eq!(header.encode(), IMGTOOL_1_2_3_4);
    }

    #[test]
    fn rejects_what_is_not_a_header() {
        assert_eq!(
            ImageHeader::decode(&IMGTOOL_1_2_3_4[..31]),
            Err(ImageError::TooShort {
                needed: 32,
                len: 31
            })
        );
        assert_eq!(
            ImageHeader::decode(&[]),
            Err(ImageError::TooShort { needed: 32, len: 0 })
        );
        // Big-endian magic, as a wrong-endian tool would write it.
        let mut bytes = IMGTOOL_1_2_3_4;
        bytes[field::MAGIC].copy_from_slice(&[0x96, 0xf3, 0xb8, 0x3d]);
        assert_eq!(
            ImageHeader::decode(&bytes),
            Err(ImageError::BadMagic { found: 0x3db8_f396 })
        );
        // header_size 0x1f: one byte short of the header itself.
        let mut bytes = IMGTOOL_1_2_3_4;
        bytes[field::HEADER_SIZE].copy_from_slice(&[0x1f, 0x00]);
        assert_eq!(
            ImageHeader::decode(&bytes),
            Err(ImageError::HeaderSizeTooSmall { header_size: 31 })
        );
        // header_size 0x20: no padding at all is fine.
        bytes[field::HEADER_SIZE].copy_from_slice(&[0x20, 0x00]);
        assert_eq!(ImageHeader::decode(&bytes).map(|h| h.header_size), Ok(32));
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn decode_inverts_encode(
                load_addr: u32,
                header_size in 32u16..,
                protected_tlv_size: u16,
                image_size: u32,
                flags: u32,
                (major, minor, revision, build) in any::<(u8, u8, u16, u32)>(),
            ) {
                let header = ImageHeader {
                    load_addr,
                    header_size,
                    protected_tlv_size,
                    image_size,
                    flags,
                    version: ImageVersion::new(major, minor, revision, build),
                };
                prop_assert_eq!(ImageHeader::decode(&header.encode()), Ok(header));
            }

            #[test]
            fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
                if let Ok(header) = ImageHeader::decode(&bytes) {
                    // What decodes re-encodes to the same bytes, padding aside.
                    let mut expected = [0u8; HEADER_SIZE];
                    expected.copy_from_slice(&bytes[..HEADER_SIZE]);
                    expected[field::PAD].fill(0);
                    prop_assert_eq!(header.encode(), expected);
                }
            }
        }
    }
}
