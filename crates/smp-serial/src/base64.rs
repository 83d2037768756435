//! Standard base64 (RFC 4648 section 4, `+/` and `=` padding), as console lines carry it.

/// The 64 characters, in value order.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/// Padding character.
const PAD: u8 = b'=';
/// Marks a byte that is not a base64 character in [`VALUES`].
const INVALID: u8 = 0xff;

/// Each byte's 6-bit value, or [`INVALID`].
const VALUES: [u8; 256] = {
    let mut values = [INVALID; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        values[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    values
};

/// Characters needed for `len` bytes, padding included.
pub(crate) const fn encoded_len(len: usize) -> usize {
    len.div_ceil(3) * 4
}

/// Appends the base64 of `data` to `out`.
pub(crate) fn encode_into(data: &[u8], out: &mut Vec<u8>) {
    out.reserve(encoded_len(data.len()));
    let sextet = |bits: u32, shift: u32| ALPHABET[((bits >> shift) & 0x3f) as usize];
    let mut chunks = data.chunks_exact(3);
    for chunk in &mut chunks {
        let bits = u32::from(chunk[0]) << 16 | u32::from(chunk[1]) << 8 | u32::from(chunk[2]);
        out.extend([
            sextet(bits, 18),
            sextet(bits, 12),
            sextet(bits, 6),
            sextet(bits, 0),
        ]);
    }
    match *chunks.remainder() {
        [a] => {
            let bits = u32::from(a) << 16;
            out.extend([sextet(bits, 18), sextet(bits, 12), PAD, PAD]);
        }
        [a, b] => {
            let bits = u32::from(a) << 16 | u32::from(b) << 8;
            out.extend([sextet(bits, 18), sextet(bits, 12), sextet(bits, 6), PAD]);
        }
        _ => {}
    }
}

/// The text is not base64: a length that is not a multiple of 4, a character outside the
/// alphabet, or padding anywhere but at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidBase64;

/// Appends the bytes `text` encodes to `out`. On error `out` is left as it was.
///
/// Strict on structure (whole 4-character groups, padding only in the last group), lenient
/// on the unused low bits of a padded group, like Zephyr's and Python's decoders.
pub(crate) fn decode_into(text: &[u8], out: &mut Vec<u8>) -> Result<(), InvalidBase64> {
    if text.len() % 4 != 0 {
        return Err(InvalidBase64);
    }
    let start = out.len();
    out.reserve(text.len() / 4 * 3);
    let groups = text.len() / 4;
    for (index, group) in text.chunks_exact(4).enumerate() {
        let last = index + 1 == groups;
        let padding = match group {
            [_, _, PAD, PAD] if last => 2,
            [_, _, _, PAD] if last => 1,
            _ => 0,
        };
        let mut bits = 0u32;
        for &c in &group[..4 - padding] {
            let value = VALUES[usize::from(c)];
            if value == INVALID {
                out.truncate(start);
                return Err(InvalidBase64);
            }
            bits = bits << 6 | u32::from(value);
        }
        bits <<= 6 * padding as u32;
        let bytes = [(bits >> 16) as u8, (bits >> 8) as u8, bits as u8];
        out.extend_from_slice(&bytes[..3 - padding]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(data: &[u8]) -> String {
        let mut out = Vec::new();
        encode_into(data, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn decode(text: &str) -> Result<Vec<u8>, InvalidBase64> {
        let mut out = vec![0xee];
        decode_into(text.as_bytes(), &mut out)?;
        assert_eq!(out[0], 0xee, "decoding appends");
        Ok(out[1..].to_vec())
    }

    #[test]
    fn rfc4648_vectors() {
        for (plain, text) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode(plain.as_bytes()), text);
            assert_eq!(decode(text).unwrap(), plain.as_bytes());
            assert_eq!(encoded_len(plain.len()), text.len());
        }
        assert_eq!(encode(&[0xfb, 0xff]), "+/8=");
        assert_eq!(decode("+/8=").unwrap(), [0xfb, 0xff]);
    }

    #[test]
    fn malformed_text_is_refused_and_leaves_the_output_alone() {
        for bad in [
            "Zg=",
            "Zm9",
            "Z===",
            "=AAA",
            "Zg==Zg==",
            "Zm9v\n",
            "Zm9v\r",
            "Zm-v",
            "Zm_v",
            "Zm9v Zm9v",
            "AA=A",
        ] {
            let mut out = vec![1, 2];
            assert_eq!(
                decode_into(bad.as_bytes(), &mut out),
                Err(InvalidBase64),
                "{bad:?}"
            );
            assert_eq!(out, [1, 2], "{bad:?}");
        }
    }

    #[test]
    fn unused_bits_of_a_padded_group_are_ignored() {
        // "Zh==" has low bits set that "Zg==" has clear; both are 'f'.
        assert_eq!(decode("Zh==").unwrap(), b"f");
    }

    proptest! {
        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let text = encode(&data);
            prop_assert_eq!(text.len(), encoded_len(data.len()));
            prop_assert_eq!(decode(&text).unwrap(), data);
        }
    }
}
