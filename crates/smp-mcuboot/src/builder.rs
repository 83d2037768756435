//! Building unsigned images, and bodies to put in them.

use sha2::{Digest, Sha256};

use crate::{HEADER_SIZE, ImageHeader, ImageVersion, tlv};

/// Header area size Zephyr reserves by default (`CONFIG_ROM_START_OFFSET` with MCUboot).
const DEFAULT_HEADER_SIZE: u16 = 0x200;

/// What `imgtool` fills the header padding with: the erased value of flash.
const ERASED: u8 = 0xff;

/// Builds an unsigned image the way `imgtool create --pad-header` does (no key: just the
/// SHA256 TLV).
///
/// The output is byte-identical to `imgtool create --version V --header-size N
/// --pad-header [--security-counter C] body.bin out.bin` (tested against imgtool 2.5.0).
/// Header padding is `0xff`, imgtool's default erased value.
///
/// ```
/// use smp_mcuboot::{Image, ImageBuilder, ImageVersion, tlv};
///
/// let bytes = ImageBuilder::new(ImageVersion::new(1, 0, 0, 0))
///     .security_counter(3)
///     .build(b"firmware");
/// let image = Image::parse(&bytes)?;
/// assert_eq!(image.header.header_size, 0x200);
/// assert_eq!(image.tlvs[0].kind, tlv::SEC_CNT);
/// image.verify()?;
/// # Ok::<(), smp_mcuboot::ImageError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageBuilder {
    version: ImageVersion,
    header_size: u16,
    load_addr: u32,
    flags: u32,
    security_counter: Option<u32>,
}

impl ImageBuilder {
    /// A builder for images of `version`, with a header area of 0x200 bytes (Zephyr's
    /// default ROM start offset), load address 0, no flags and no security counter.
    pub fn new(version: ImageVersion) -> Self {
        Self {
            version,
            header_size: DEFAULT_HEADER_SIZE,
            load_addr: 0,
            flags: 0,
            security_counter: None,
        }
    }

    /// Sets the size of the header area (`--header-size`); values below [`HEADER_SIZE`]
    /// are raised to it.
    #[must_use]
    pub fn header_size(mut self, n: u16) -> Self {
        self.header_size = n.max(HEADER_SIZE as u16);
        self
    }

    /// Sets the header's load address. Only the field: `imgtool --load-addr` also sets
    /// [`flags::RAM_LOAD`](crate::flags::RAM_LOAD), and `--rom-fixed`
    /// [`flags::ROM_FIXED`](crate::flags::ROM_FIXED); pass those to [`flags`](Self::flags).
    #[must_use]
    pub fn load_addr(mut self, a: u32) -> Self {
        self.load_addr = a;
        self
    }

    /// Sets the header's flags, see [`flags`](crate::flags).
    #[must_use]
    pub fn flags(mut self, f: u32) -> Self {
        self.flags = f;
        self
    }

    /// Adds a protected SEC_CNT TLV holding `c` (`--security-counter`).
    #[must_use]
    pub fn security_counter(mut self, c: u32) -> Self {
        self.security_counter = Some(c);
        self
    }

    /// The image with `body` as its firmware: header padded to the header size, body,
    /// protected TLV area (only with a security counter), then the TLV area with the
    /// SHA256 TLV. A body can hold at most `u32::MAX` bytes; the rest is left out.
    pub fn build(&self, body: &[u8]) -> Vec<u8> {
        let body = body.get(..u32::MAX as usize).unwrap_or(body);
        let mut protected = Vec::new();
        if let Some(counter) = self.security_counter {
            push_tlv(&mut protected, tlv::SEC_CNT, &counter.to_le_bytes());
        }
        let protected = area(tlv::PROT_INFO_MAGIC, &protected);
        let header = ImageHeader {
            load_addr: self.load_addr,
            header_size: self.header_size,
            // One TLV of 8 bytes at most: the area's size fits.
            protected_tlv_size: u16::try_from(protected.len()).unwrap_or(u16::MAX),
            image_size: u32::try_from(body.len()).unwrap_or(u32::MAX),
            flags: self.flags,
            version: self.version,
        };

        let mut out =
            Vec::with_capacity(usize::from(self.header_size) + body.len() + protected.len() + 40);
        out.extend_from_slice(&header.encode());
        out.resize(usize::from(self.header_size), ERASED);
        out.extend_from_slice(body);
        out.extend_from_slice(&protected);
        let hash = Sha256::digest(&out);
        let mut tlvs = Vec::new();
        push_tlv(&mut tlvs, tlv::SHA256, &hash);
        out.extend_from_slice(&area(tlv::INFO_MAGIC, &tlvs));
        out
    }
}

fn push_tlv(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    // Only called with 4- and 32-byte values.
    let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(value);
}

/// A TLV area: its info, then `tlvs`. Empty without TLVs, as imgtool leaves it out.
fn area(magic: u16, tlvs: &[u8]) -> Vec<u8> {
    if tlvs.is_empty() {
        return Vec::new();
    }
    let total = u16::try_from(tlv::INFO_SIZE + tlvs.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(tlv::INFO_SIZE + tlvs.len());
    out.extend_from_slice(&magic.to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(tlvs);
    out
}

/// A deterministic pseudo-random body of `len` bytes from `seed`, for test images and
/// demos. Like compiled firmware it does not compress; every seed gives other bytes.
///
/// The bytes are the outputs of SplitMix64 (Steele, Lea and Flood 2014) seeded with
/// `seed`, each written little-endian, so other tools can reproduce them.
pub fn sample_body(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let missing = len - out.len();
        out.extend(z.to_le_bytes().into_iter().take(missing));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Image, flags};

    #[test]
    fn sample_body_is_splitmix64() {
        // SplitMix64 from seed 0 starts 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4.
        assert_eq!(
            sample_body(12, 0),
            [
                0xaf, 0xcd, 0x1d, 0x7b, 0x39, 0xa8, 0x20, 0xe2, // first output, little-endian
                0xf4, 0x65, 0xb9, 0xa1, // first half of the second
            ]
        );
        assert_eq!(sample_body(0, 1), Vec::<u8>::new());
        assert_eq!(sample_body(1000, 7), sample_body(1000, 7));
        assert_ne!(sample_body(1000, 7), sample_body(1000, 8));
        assert_eq!(sample_body(1000, 7)[..99], sample_body(99, 7)[..]);
    }

    #[test]
    fn defaults() {
        let bytes = ImageBuilder::new(ImageVersion::new(1, 2, 3, 4)).build(&[]);
        // 0x200 header area, empty body, TLV area of info + TLV header + hash.
        assert_eq!(bytes.len(), 0x200 + 40);
        assert!(bytes[HEADER_SIZE..0x200].iter().all(|&b| b == 0xff));
        let image = Image::parse(&bytes).unwrap();
        assert_eq!(
            image.header,
            ImageHeader {
                load_addr: 0,
                header_size: 0x200,
                protected_tlv_size: 0,
                image_size: 0,
                flags: 0,
                version: ImageVersion::new(1, 2, 3, 4),
            }
        );
        assert_eq!(image.tlvs.len(), 1);
        assert_eq!(image.verify(), Ok(()));
    }

    #[test]
    fn settings_reach_the_header() {
        let bytes = ImageBuilder::new(ImageVersion::default())
            .header_size(0x80)
            .load_addr(0x2000_0000)
            .flags(flags::RAM_LOAD)
            .security_counter(0x0102_0304)
            .build(&[1, 2, 3]);
        let image = Image::parse(&bytes).unwrap();
        assert_eq!(image.header.header_size, 0x80);
        assert_eq!(image.header.load_addr, 0x2000_0000);
        assert_eq!(image.header.flags, flags::RAM_LOAD);
        assert_eq!(image.tlvs[0].data, [0x04, 0x03, 0x02, 0x01]);
        assert_eq!(image.verify(), Ok(()));
    }

    #[test]
    fn header_size_is_at_least_the_header() {
        let bytes = ImageBuilder::new(ImageVersion::default())
            .header_size(4)
            .build(&[0xaa]);
        let image = Image::parse(&bytes).unwrap();
        assert_eq!(usize::from(image.header.header_size), HEADER_SIZE);
        assert_eq!(bytes[HEADER_SIZE], 0xaa);
    }
}
