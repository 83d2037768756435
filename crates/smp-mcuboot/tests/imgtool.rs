//! smp-mcuboot against images written by the real `imgtool` (2.5.0), and properties of
//! parse and build on arbitrary input. `scripts/make_test_image.sh` regenerates the
//! fixtures in `tests/data/`.

use proptest::prelude::*;
use smp_mcuboot::{
    HEADER_SIZE, Image, ImageBuilder, ImageError, ImageHeader, ImageVersion, Tlv, field, tlv,
};

/// `imgtool create --version 1.2.3+4 --header-size 0x200 --slot-size 0x40000 --pad-header`.
const UNSIGNED: &[u8] = include_bytes!("data/unsigned.bin");
/// The same with `--security-counter 7`.
const SECCNT7: &[u8] = include_bytes!("data/seccnt7.bin");

/// The fixtures' body: byte i is (7 * i + 3) mod 256, as in the script.
fn fixture_body() -> Vec<u8> {
    (0..1000u32).map(|i| ((7 * i + 3) % 256) as u8).collect()
}

fn fixture_builder() -> ImageBuilder {
    ImageBuilder::new(ImageVersion::new(1, 2, 3, 4)).header_size(0x200)
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digits"))
        .collect()
}

#[test]
fn builder_matches_imgtool() {
    assert_eq!(fixture_builder().build(&fixture_body()), UNSIGNED);
}

#[test]
fn builder_with_security_counter_matches_imgtool() {
    assert_eq!(
        fixture_builder().security_counter(7).build(&fixture_body()),
        SECCNT7
    );
}

#[test]
fn parses_imgtool_image() {
    let image = Image::parse(UNSIGNED).unwrap();
    assert_eq!(
        image.header,
        ImageHeader {
            load_addr: 0,
            header_size: 0x200,
            protected_tlv_size: 0,
            image_size: 1000,
            flags: 0,
            version: ImageVersion::new(1, 2, 3, 4),
        }
    );
    assert_eq!(image.header.version.to_string(), "1.2.3.4");
    // SHA-256 of the first 0x5e8 bytes, as `imgtool dumpinfo` shows it.
    let hash = hex("c6c3ac9b529c7ad4f180093e982ec6e3f692c31cf42c1f9b83a6c1f3548fc1a4");
    assert_eq!(
        image.tlvs,
        [Tlv {
            kind: tlv::SHA256,
            data: hash.clone(),
            protected: false
        }]
    );
    assert_eq!(image.hash().map(Vec::from), Some(hash.clone()));
    assert_eq!(Vec::from(image.computed_hash()), hash);
    assert_eq!(image.verify(), Ok(()));
    assert_eq!(image.total_size(), UNSIGNED.len());

    // The header padding is 0xff, then the body.
    assert!(UNSIGNED[HEADER_SIZE..0x200].iter().all(|&b| b == 0xff));
    assert_eq!(&UNSIGNED[0x200..0x200 + 1000], fixture_body());
    assert_eq!(
        &UNSIGNED[0x5e8..0x5f0],
        [
            0x07, 0x69, // info magic 0x6907
            0x28, 0x00, // total 40
            0x10, 0x00, // kind SHA256
            0x20, 0x00, // length 32
        ]
    );
}

#[test]
fn parses_imgtool_image_with_security_counter() {
    let image = Image::parse(SECCNT7).unwrap();
    assert_eq!(image.header.protected_tlv_size, 12);
    assert_eq!(image.header.image_size, 1000);
    assert_eq!(
        &SECCNT7[0x5e8..0x5f4],
        [
            0x08, 0x69, // protected info magic 0x6908
            0x0c, 0x00, // total 12 = header's protected_tlv_size
            0x50, 0x00, // kind SEC_CNT
            0x04, 0x00, // length 4
            0x07, 0x00, 0x00, 0x00, // counter 7, little-endian
        ]
    );
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
    assert_eq!(image.tlvs.len(), 2);
    assert_eq!(
        image.hash().map(Vec::from),
        Some(hex(
            "3382f8aa5da75702f9728931fdb0db7f691f9b4f247b43cf5766b751b25c4f29"
        ))
    );
    assert_eq!(image.verify(), Ok(()));
    assert_eq!(image.total_size(), SECCNT7.len());
}

#[test]
fn header_decodes_from_first_chunk() {
    // What a device sees in the first upload chunk is enough for the version.
    let header = ImageHeader::decode(&SECCNT7[..64]).unwrap();
    assert_eq!(header.version, "1.2.3+4".parse().unwrap());
}

#[test]
fn corrupted_imgtool_images() {
    let mut bytes = UNSIGNED.to_vec();
    bytes[0] = 0x3e;
    assert_eq!(
        Image::parse(&bytes),
        Err(ImageError::BadMagic { found: 0x96f3_b83e })
    );

    // Cut inside the body, inside the TLV area, and by one byte.
    for len in [0x300, 0x5ea, UNSIGNED.len() - 1] {
        assert!(matches!(
            Image::parse(&UNSIGNED[..len]),
            Err(ImageError::Truncated { len: l, .. }) if l == len
        ));
    }

    // SHA256 TLV length 32 -> 33: one byte past the area's end.
    let mut bytes = UNSIGNED.to_vec();
    bytes[0x5ee] = 33;
    assert_eq!(
        Image::parse(&bytes),
        Err(ImageError::TlvOverrun {
            offset: 0x5ec,
            area_end: 0x610
        })
    );

    // One bit of the body.
    let mut bytes = UNSIGNED.to_vec();
    bytes[0x400] ^= 0x04;
    assert_eq!(
        Image::parse(&bytes).unwrap().verify(),
        Err(ImageError::HashMismatch)
    );

    // The header padding is hashed too.
    let mut bytes = UNSIGNED.to_vec();
    bytes[0x100] = 0;
    assert_eq!(
        Image::parse(&bytes).unwrap().verify(),
        Err(ImageError::HashMismatch)
    );

    // The security counter, which is protected.
    let mut bytes = SECCNT7.to_vec();
    bytes[0x5f0] = 8;
    assert_eq!(
        Image::parse(&bytes).unwrap().verify(),
        Err(ImageError::HashMismatch)
    );
}

fn any_version() -> impl Strategy<Value = ImageVersion> {
    any::<(u8, u8, u16, u32)>()
        .prop_map(|(ma, mi, rev, build)| ImageVersion::new(ma, mi, rev, build))
}

proptest! {
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Image::parse(&bytes);
    }

    #[test]
    fn parse_never_panics_on_a_valid_header(
        header_size in 0u16..80,
        image_size in 0u32..200,
        protected_tlv_size in 0u16..40,
        rest in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        // Random bytes behind a header that gets past the magic check.
        let mut bytes = UNSIGNED[..HEADER_SIZE].to_vec();
        bytes[field::HEADER_SIZE].copy_from_slice(&header_size.to_le_bytes());
        bytes[field::IMAGE_SIZE].copy_from_slice(&image_size.to_le_bytes());
        bytes[field::PROTECTED_TLV_SIZE].copy_from_slice(&protected_tlv_size.to_le_bytes());
        bytes.extend_from_slice(&rest);
        if let Ok(image) = Image::parse(&bytes) {
            prop_assert!(image.total_size() <= bytes.len());
        }
    }

    #[test]
    fn parse_never_panics_on_mutations(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate: bool,
    ) {
        let mut bytes = SECCNT7.to_vec();
        for (at, value) in edits {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        if let Ok(image) = Image::parse(&bytes) {
            prop_assert!(image.total_size() <= bytes.len());
            let _ = image.verify();
        }
    }

    #[test]
    fn any_flipped_hashed_byte_fails_verify(at in 0usize..0x5f4, bit in 0u8..8) {
        let mut bytes = SECCNT7.to_vec();
        bytes[at] ^= 1 << bit;
        // Either the structure no longer parses or the hash no longer matches.
        if let Ok(image) = Image::parse(&bytes) {
            prop_assert_eq!(image.verify(), Err(ImageError::HashMismatch));
        }
    }

    #[test]
    fn build_then_parse(
        version in any_version(),
        header_size in 32u16..0x400,
        load_addr: u32,
        flags: u32,
        counter in proptest::option::of(any::<u32>()),
        body in proptest::collection::vec(any::<u8>(), 0..3000),
    ) {
        let mut builder = ImageBuilder::new(version)
            .header_size(header_size)
            .load_addr(load_addr)
            .flags(flags);
        if let Some(counter) = counter {
            builder = builder.security_counter(counter);
        }
        let bytes = builder.build(&body);
        let image = Image::parse(&bytes).unwrap();
        prop_assert_eq!(
            image.header,
            ImageHeader {
                load_addr,
                header_size,
                protected_tlv_size: if counter.is_some() { 12 } else { 0 },
                image_size: body.len() as u32,
                flags,
                version,
            }
        );
        let start = usize::from(header_size);
        prop_assert_eq!(&bytes[start..start + body.len()], &body[..]);
        let mut kinds: Vec<u16> = image.tlvs.iter().map(|t| t.kind).collect();
        if let Some(counter) = counter {
            prop_assert_eq!(&image.tlvs[0].data, &counter.to_le_bytes());
            prop_assert_eq!(kinds.remove(0), tlv::SEC_CNT);
        }
        prop_assert_eq!(kinds, [tlv::SHA256]);
        prop_assert_eq!(image.verify(), Ok(()));
        prop_assert_eq!(image.total_size(), bytes.len());
    }
}
