//! Giving an image another version: the header's version and the SHA256 TLV rewritten.

use crate::{Image, ImageError, ImageVersion, field, flags, tlv};

/// The image `bytes` with version `version`: the header's version fields changed and the
/// SHA256 TLV recomputed over the new bytes, every other byte as it was (the header's
/// padding, the body, both TLV areas, anything after them).
///
/// This is what `imgtool create --version V` would have written from the same body with
/// the same options, for an image that MCUboot checks by its hash alone. An image whose
/// other TLVs cover the rewritten bytes is refused ([`ImageError::NotRewritable`]): a
/// signature (it needs the key to be made again), the hash or signature of a compressed
/// image's decompressed form; so is an encrypted one. So is an image whose hash does not
/// check (its bytes are not what was hashed): [`Image::verify`]'s error.
///
/// ```
/// use smp_mcuboot::{Image, ImageBuilder, ImageVersion, with_version};
///
/// let old = ImageBuilder::new(ImageVersion::new(1, 0, 0, 0)).build(b"firmware");
/// let new = with_version(&old, "2.0.0".parse()?)?;
/// let image = Image::parse(&new)?;
/// assert_eq!(image.header.version.to_string(), "2.0.0");
/// image.verify()?;
/// assert_eq!(new, ImageBuilder::new(ImageVersion::new(2, 0, 0, 0)).build(b"firmware"));
/// # Ok::<(), smp_mcuboot::ImageError>(())
/// ```
pub fn with_version(bytes: &[u8], version: ImageVersion) -> Result<Vec<u8>, ImageError> {
    let image = Image::parse(bytes)?;
    image.verify()?;
    if image.header.flags & (flags::ENCRYPTED_AES128 | flags::ENCRYPTED_AES256) != 0 {
        return Err(ImageError::NotRewritable(
            "its body is encrypted".to_owned(),
        ));
    }
    if let Some(covering) = image.tlvs.iter().find(|t| covers_the_header(t.kind)) {
        let name = tlv::name(covering.kind).unwrap_or("?");
        return Err(ImageError::NotRewritable(format!(
            "it carries a {name} TLV ({:#04x}), which covers the version and cannot be made again here",
            covering.kind
        )));
    }
    let mut out = bytes.to_vec();
    out[field::VERSION_MAJOR] = version.major;
    out[field::VERSION_MINOR] = version.minor;
    out[field::VERSION_REVISION].copy_from_slice(&version.revision.to_le_bytes());
    out[field::VERSION_BUILD].copy_from_slice(&version.build.to_le_bytes());
    let hash = Image::parse(&out)?.computed_hash();
    // The SHA256 TLV's value: the first unprotected one, after the area's info. Parsing
    // has checked that every TLV lies inside the bytes; find its offset again.
    let at = sha256_value_offset(&image).ok_or(ImageError::NoHash)?;
    out[at..at + hash.len()].copy_from_slice(&hash);
    let rewritten = Image::parse(&out)?;
    rewritten.verify()?;
    Ok(out)
}

/// TLV kinds whose value depends on the hashed bytes (so on the version) and that only
/// their maker can compute again: signatures, and the decompressed image's hash and
/// signature.
fn covers_the_header(kind: u16) -> bool {
    matches!(
        kind,
        tlv::RSA2048_PSS
            | tlv::ECDSA224
            | tlv::ECDSA_SIG
            | tlv::RSA3072_PSS
            | tlv::ED25519
            | tlv::SIG_PURE
            | tlv::DECOMP_SHA
            | tlv::DECOMP_SIGNATURE
    )
}

/// Where the value of `image`'s (first unprotected) SHA256 TLV starts in its bytes.
fn sha256_value_offset(image: &Image) -> Option<usize> {
    let mut offset = usize::from(image.header.header_size)
        + usize::try_from(image.header.image_size).ok()?
        + usize::from(image.header.protected_tlv_size)
        + tlv::INFO_SIZE;
    for t in image.tlvs.iter().filter(|t| !t.protected) {
        if t.kind == tlv::SHA256 {
            return Some(offset + tlv::HEADER_SIZE);
        }
        offset += tlv::HEADER_SIZE + t.data.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ImageBuilder;

    fn body() -> Vec<u8> {
        (0..3000u32).map(|i| (i * 13 % 251) as u8).collect()
    }

    #[test]
    fn rewriting_the_version_is_building_with_it() {
        for counter in [None, Some(9)] {
            let build = |version: ImageVersion| {
                let builder = ImageBuilder::new(version).header_size(0x80);
                match counter {
                    Some(c) => builder.security_counter(c),
                    None => builder,
                }
                .build(&body())
            };
            let old = build(ImageVersion::new(0, 0, 0, 0));
            let new = ImageVersion::new(1, 2, 3, 4);
            assert_eq!(with_version(&old, new).unwrap(), build(new));
        }
    }

    #[test]
    fn bytes_after_the_image_and_header_padding_are_kept() {
        let mut old = ImageBuilder::new(ImageVersion::new(1, 0, 0, 0)).build(&body());
        // Header padding of zeroes (as some builds have), and a trailer after the image.
        old[32..0x200].fill(0);
        let hashed = Image::parse(&old).unwrap().computed_hash();
        let at = old.len() - 32;
        old[at..].copy_from_slice(&hashed);
        old.extend_from_slice(&[0xee; 16]);
        let new = with_version(&old, ImageVersion::new(3, 0, 0, 0)).unwrap();
        assert_eq!(new.len(), old.len());
        assert!(new[32..0x200].iter().all(|&b| b == 0));
        assert_eq!(new[new.len() - 16..], [0xee; 16]);
        Image::parse(&new).unwrap().verify().unwrap();
    }

    #[test]
    fn a_signed_an_encrypted_or_a_broken_image_is_refused() {
        let plain = ImageBuilder::new(ImageVersion::new(1, 0, 0, 0)).build(&body());
        // An ED25519 signature TLV added to the unprotected area.
        let mut signed = plain.clone();
        let info = plain.len() - 40;
        signed[info + 2..info + 4].copy_from_slice(&(40u16 + 4 + 64).to_le_bytes());
        signed.extend_from_slice(&tlv::ED25519.to_le_bytes());
        signed.extend_from_slice(&64u16.to_le_bytes());
        signed.extend_from_slice(&[0x5a; 64]);
        Image::parse(&signed).unwrap().verify().unwrap();
        let err = with_version(&signed, ImageVersion::new(2, 0, 0, 0)).unwrap_err();
        assert!(
            matches!(&err, ImageError::NotRewritable(why) if why.contains("ED25519")),
            "{err}"
        );

        let encrypted = ImageBuilder::new(ImageVersion::new(1, 0, 0, 0))
            .flags(flags::ENCRYPTED_AES128)
            .build(&body());
        assert!(matches!(
            with_version(&encrypted, ImageVersion::new(2, 0, 0, 0)),
            Err(ImageError::NotRewritable(_))
        ));

        let mut broken = plain;
        broken[0x300] ^= 1;
        assert_eq!(
            with_version(&broken, ImageVersion::new(2, 0, 0, 0)),
            Err(ImageError::HashMismatch)
        );
    }
}
