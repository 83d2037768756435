//! A whole image: header, body and TLV areas.

use sha2::{Digest, Sha256};

use crate::{ImageError, ImageHeader, tlv};

/// Size of a SHA-256 digest.
const SHA256_LEN: usize = 32;

/// One TLV (type-length-value entry) from an image's TLV areas.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tlv {
    /// Kind (type), see [`tlv`](crate::tlv).
    pub kind: u16,
    /// Value.
    pub data: Vec<u8>,
    /// True when it came from the protected area, which the image hash covers.
    pub protected: bool,
}

/// A parsed image: its header and TLVs, and the hash its contents should carry.
///
/// Parsing checks the structure (magic, sizes, TLV area magics and bounds) but not the
/// hash; [`verify`](Self::verify) does that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The header.
    pub header: ImageHeader,
    /// The TLVs in file order: the protected ones first.
    pub tlvs: Vec<Tlv>,
    /// SHA-256 of the header area, body and protected TLV area, computed by `parse`.
    computed_hash: [u8; SHA256_LEN],
    /// Size of the unprotected TLV area including its info.
    tlv_size: u16,
}

impl Image {
    /// Parses a whole image as `imgtool` writes it. Bytes after the TLV area (a slot
    /// trailer, flash padding) are ignored; [`total_size`](Self::total_size) tells where
    /// the image ends.
    pub fn parse(bytes: &[u8]) -> Result<Self, ImageError> {
        let header = ImageHeader::decode(bytes)?;
        let protected_start = usize::from(header.header_size)
            .saturating_add(usize::try_from(header.image_size).unwrap_or(usize::MAX));
        let protected_size = usize::from(header.protected_tlv_size);
        let tlv_start = protected_start.saturating_add(protected_size);
        // Header, body, protected area and at least the unprotected area's info.
        check_len(bytes, tlv_start.saturating_add(tlv::INFO_SIZE))?;

        let mut tlvs = Vec::new();
        if protected_size > 0 {
            let (magic, total) = info(bytes, protected_start)?;
            if magic != tlv::PROT_INFO_MAGIC {
                return Err(ImageError::BadTlvMagic {
                    offset: protected_start,
                    found: magic,
                    expected: tlv::PROT_INFO_MAGIC,
                });
            }
            if total != header.protected_tlv_size {
                return Err(ImageError::ProtectedSizeMismatch {
                    header: header.protected_tlv_size,
                    info: total,
                });
            }
            read_tlvs(bytes, protected_start, total, true, &mut tlvs)?;
        }

        let (magic, tlv_size) = info(bytes, tlv_start)?;
        if magic == tlv::PROT_INFO_MAGIC {
            // A protected area the header does not announce.
            return Err(ImageError::ProtectedSizeMismatch {
                header: header.protected_tlv_size,
                info: tlv_size,
            });
        }
        if magic != tlv::INFO_MAGIC {
            return Err(ImageError::BadTlvMagic {
                offset: tlv_start,
                found: magic,
                expected: tlv::INFO_MAGIC,
            });
        }
        check_len(bytes, tlv_start.saturating_add(usize::from(tlv_size)))?;
        read_tlvs(bytes, tlv_start, tlv_size, false, &mut tlvs)?;

        if let Some(hash) = find_hash(&tlvs) {
            if hash.data.len() != SHA256_LEN {
                return Err(ImageError::BadHashLength {
                    len: u16::try_from(hash.data.len()).unwrap_or(u16::MAX),
                });
            }
        }

        // check_len has shown that the hashed range lies inside `bytes`.
        let hashed = bytes.get(..tlv_start).unwrap_or(bytes);
        Ok(Self {
            header,
            tlvs,
            computed_hash: Sha256::digest(hashed).into(),
            tlv_size,
        })
    }

    /// The image hash the image carries: the value of its (first unprotected) SHA256 TLV.
    pub fn hash(&self) -> Option<[u8; 32]> {
        find_hash(&self.tlvs).and_then(|tlv| tlv.data.as_slice().try_into().ok())
    }

    /// The image hash the contents should carry: SHA-256 of the header area, body and
    /// protected TLV area, as computed when the image was parsed.
    pub fn computed_hash(&self) -> [u8; 32] {
        self.computed_hash
    }

    /// Checks that the image carries a SHA256 TLV equal to [`computed_hash`](Self::computed_hash).
    /// This is the integrity check MCUboot does before any signature check.
    pub fn verify(&self) -> Result<(), ImageError> {
        match self.hash() {
            None => Err(ImageError::NoHash),
            Some(hash) if hash == self.computed_hash => Ok(()),
            Some(_) => Err(ImageError::HashMismatch),
        }
    }

    /// Size of the image in bytes: header area, body and both TLV areas.
    pub fn total_size(&self) -> usize {
        usize::from(self.header.header_size)
            .saturating_add(usize::try_from(self.header.image_size).unwrap_or(usize::MAX))
            .saturating_add(usize::from(self.header.protected_tlv_size))
            .saturating_add(usize::from(self.tlv_size))
    }
}

fn find_hash(tlvs: &[Tlv]) -> Option<&Tlv> {
    tlvs.iter().find(|t| t.kind == tlv::SHA256 && !t.protected)
}

fn check_len(bytes: &[u8], needed: usize) -> Result<(), ImageError> {
    if bytes.len() < needed {
        return Err(ImageError::Truncated {
            needed,
            len: bytes.len(),
        });
    }
    Ok(())
}

/// Reads a little-endian u16 at `offset`, or `None` past the end.
fn u16_at(bytes: &[u8], offset: usize) -> Option<u16> {
    let rest = bytes.get(offset..)?;
    rest.first_chunk::<2>().map(|raw| u16::from_le_bytes(*raw))
}

/// The magic and total size of the TLV area info at `offset`.
fn info(bytes: &[u8], offset: usize) -> Result<(u16, u16), ImageError> {
    let field = |at: usize| {
        u16_at(bytes, at).ok_or(ImageError::Truncated {
            needed: offset.saturating_add(tlv::INFO_SIZE),
            len: bytes.len(),
        })
    };
    Ok((field(offset)?, field(offset.saturating_add(2))?))
}

/// Appends the TLVs of the area that starts (with its info) at `start` and spans `total`
/// bytes; the caller has checked that the area lies inside `bytes`.
fn read_tlvs(
    bytes: &[u8],
    start: usize,
    total: u16,
    protected: bool,
    out: &mut Vec<Tlv>,
) -> Result<(), ImageError> {
    let end = start.saturating_add(usize::from(total));
    if usize::from(total) < tlv::INFO_SIZE {
        return Err(ImageError::BadTlvTotal {
            offset: start,
            total,
        });
    }
    let mut offset = start.saturating_add(tlv::INFO_SIZE);
    while offset < end {
        let overrun = ImageError::TlvOverrun {
            offset,
            area_end: end,
        };
        let value_start = offset.saturating_add(tlv::HEADER_SIZE);
        if value_start > end {
            return Err(overrun);
        }
        let (Some(kind), Some(len)) = (
            u16_at(bytes, offset),
            u16_at(bytes, offset.saturating_add(2)),
        ) else {
            return Err(overrun);
        };
        let value_end = value_start.saturating_add(usize::from(len));
        let Some(data) = bytes
            .get(value_start..value_end)
            .filter(|_| value_end <= end)
        else {
            return Err(overrun);
        };
        out.push(Tlv {
            kind,
            data: data.to_vec(),
            protected,
        });
        offset = value_end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ImageBuilder, ImageVersion, field};

    fn body() -> Vec<u8> {
        (0..100u8).collect()
    }

    fn image() -> Vec<u8> {
        ImageBuilder::new(ImageVersion::new(1, 2, 3, 4))
            .header_size(0x20)
            .build(&body())
    }

    fn with_counter() -> Vec<u8> {
        ImageBuilder::new(ImageVersion::new(1, 2, 3, 4))
            .header_size(0x20)
            .security_counter(7)
            .build(&body())
    }

    #[test]
    fn layout_of_a_small_image() {
        let bytes = with_counter();
        // 0x20 header, 100 body, 12 protected area, 40 TLV area.
        assert_eq!(bytes.len(), 0x20 + 100 + 12 + 40);
        assert_eq!(
            &bytes[0x84..0x90],
            [
                0x08, 0x69, // protected info magic 0x6908
                0x0c, 0x00, // total 12, info included
                0x50, 0x00, // kind SEC_CNT
                0x04, 0x00, // length 4
                0x07, 0x00, 0x00, 0x00, // counter 7
            ]
        );
        assert_eq!(
            &bytes[0x90..0x98],
            [
                0x07, 0x69, // info magic 0x6907
                0x28, 0x00, // total 40: info + TLV header + 32-byte hash
                0x10, 0x00, // kind SHA256
                0x20, 0x00, // length 32
            ]
        );
        let image = Image::parse(&bytes).unwrap();
        assert_eq!(image.header.protected_tlv_size, 12);
        assert_eq!(
            image.tlvs[0],
            Tlv {
                kind: tlv::SEC_CNT,
                data: vec![7, 0, 0, 0],
                protected: true
            }
        );
        assert_eq!(image.tlvs[1].kind, tlv::SHA256);
        assert!(!image.tlvs[1].protected);
        assert_eq!(image.hash().as_ref().map(|h| &h[..]), Some(&bytes[0x98..]));
        // The hash covers the protected area too.
        assert_eq!(
            image.computed_hash(),
            <[u8; 32]>::from(Sha256::digest(&bytes[..0x90]))
        );
        assert_eq!(image.verify(), Ok(()));
        assert_eq!(image.total_size(), bytes.len());
    }

    #[test]
    fn ignores_what_follows_the_image() {
        let mut bytes = image();
        let len = bytes.len();
        bytes.resize(len + 0x1000, 0xff);
        let image = Image::parse(&bytes).unwrap();
        assert_eq!(image.total_size(), len);
        assert_eq!(image.verify(), Ok(()));
    }

    #[test]
    fn truncated_anywhere() {
        let bytes = with_counter();
        for len in 32..bytes.len() {
            let err = Image::parse(&bytes[..len]).unwrap_err();
            assert!(
                matches!(err, ImageError::Truncated { len: l, .. } if l == len),
                "{len}: {err}"
            );
        }
        assert_eq!(
            Image::parse(&bytes[..0x20 + 100]),
            Err(ImageError::Truncated {
                needed: 0x20 + 100 + 12 + 4,
                len: 0x20 + 100
            })
        );
        assert_eq!(
            Image::parse(&bytes[..bytes.len() - 1]),
            Err(ImageError::Truncated {
                needed: bytes.len(),
                len: bytes.len() - 1
            })
        );
    }

    #[test]
    fn flipped_bytes_fail_the_hash() {
        let original = with_counter();
        // First, middle and last body byte; the SEC_CNT value in the protected area.
        for at in [0x20, 0x20 + 50, 0x20 + 99, 0x8c] {
            let mut bytes = original.clone();
            bytes[at] ^= 0x01;
            assert_eq!(
                Image::parse(&bytes).unwrap().verify(),
                Err(ImageError::HashMismatch)
            );
        }
        // The hash itself.
        let mut bytes = original.clone();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x80;
        assert_eq!(
            Image::parse(&bytes).unwrap().verify(),
            Err(ImageError::HashMismatch)
        );
        // A version change in the header.
        let mut bytes = original;
        bytes[field::VERSION_MAJOR] = 2;
        assert_eq!(
            Image::parse(&bytes).unwrap().verify(),
            Err(ImageError::HashMismatch)
        );
    }

    #[test]
    fn bad_tlv_areas() {
        // Unprotected info magic 0x6907 -> 0x6906.
        let mut bytes = image();
        bytes[0x84] = 0x06;
        assert_eq!(
            Image::parse(&bytes),
            Err(ImageError::BadTlvMagic {
                offset: 0x84,
                found: 0x6906,
                expected: tlv::INFO_MAGIC
            })
        );

        // Protected info magic 0x6908 -> 0x6907.
        let mut bytes = with_counter();
        bytes[0x84] = 0x07;
        assert_eq!(
            Image::parse(&bytes),
            Err(ImageError::BadTlvMagic {
                offset: 0x84,
                found: 0x6907,
                expected: tlv::PROT_INFO_MAGIC
            })
        );

        // Protected info total 12 -> 16 while the header says 12.
        let mut bytes = with_counter();
        bytes[0x86] = 16;
        assert_eq!(
            Image::parse(&bytes),
            Err(ImageError::ProtectedSizeMismatch {
                header: 12,
                info: 16
            })
        );

        // Header protected size 12 -> 0: the protected area is where the TLV area should be.
        let mut bytes = with_counter();
        bytes[field::PROTECTED_TLV_SIZE].fill(0);
        assert_eq!(
            Image::parse(&bytes),
            Err(ImageError::ProtectedSizeMismatch {
                header: 0,
                info: 12
            })
        );

        // SEC_CNT length 4 -> 5: runs one byte past the protected area's end at 0x90.
        let mut bytes = with_counter();
        bytes[0x8a] = 5;
        assert_eq!(
            Image::parse(&bytes),
            Err(ImageError::TlvOverrun {
                offset: 0x88,
                area_end: 0x90
            })
        );

        // TLV area total 40 -> 38: the SHA256 TLV overruns it.
        let mut bytes = image();
        bytes[0x86] = 38;
        assert_eq!(
            Image::parse(&bytes),
            Err(ImageError::TlvOverrun {
                offset: 0x88,
                area_end: 0x84 + 38
            })
        );

        // TLV area total 40 -> 42: two bytes are left, too few for a TLV header.
        let mut bytes = image();
        bytes[0x86] = 42;
        bytes.extend_from_slice(&[0, 0]);
        assert_eq!(
            Image::parse(&bytes),
            Err(ImageError::TlvOverrun {
                offset: 0x84 + 40,
                area_end: 0x84 + 42
            })
        );

        // TLV area total 40 -> 3: smaller than its info.
        let mut bytes = image();
        bytes[0x86] = 3;
        assert_eq!(
            Image::parse(&bytes),
            Err(ImageError::BadTlvTotal {
                offset: 0x84,
                total: 3
            })
        );
    }

    #[test]
    fn hash_tlv_problems() {
        // SHA256 TLV length 32 -> 16, area total 40 -> 24.
        let mut bytes = image();
        bytes[0x86] = 24;
        bytes[0x8a] = 16;
        bytes.truncate(0x84 + 24);
        assert_eq!(
            Image::parse(&bytes),
            Err(ImageError::BadHashLength { len: 16 })
        );

        // SHA256 TLV kind 0x10 -> 0x11 (SHA384 tag on a 32-byte value): no SHA256 TLV.
        let mut bytes = image();
        bytes[0x88] = 0x11;
        let image = Image::parse(&bytes).unwrap();
        assert_eq!(image.hash(), None);
        assert_eq!(image.verify(), Err(ImageError::NoHash));
    }

    #[test]
    fn an_empty_tlv_area_parses() {
        // 32-byte header with an empty body, then a TLV area holding just its info.
        let mut bytes = crate::ImageHeader {
            load_addr: 0,
            header_size: 32,
            protected_tlv_size: 0,
            image_size: 0,
            flags: 0,
            version: ImageVersion::default(),
        }
        .encode()
        .to_vec();
        bytes.extend_from_slice(&[0x07, 0x69, 0x04, 0x00]);
        let image = Image::parse(&bytes).unwrap();
        assert!(image.tlvs.is_empty());
        assert_eq!(image.total_size(), 36);
        assert_eq!(image.verify(), Err(ImageError::NoHash));
    }

    #[test]
    fn huge_sizes_do_not_overflow() {
        let mut bytes = image();
        bytes[field::IMAGE_SIZE].fill(0xff);
        bytes[field::PROTECTED_TLV_SIZE].fill(0xff);
        let expected = 0x20 + 0xffff_ffff_usize + 0xffff + 4;
        assert_eq!(
            Image::parse(&bytes),
            Err(ImageError::Truncated {
                needed: expected,
                len: bytes.len()
            })
        );
    }
}
