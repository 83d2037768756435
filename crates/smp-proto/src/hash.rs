//! [`ImageHash`]: the hash that names an image, printed and parsed as hex.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use minicbor::decode::{self, Decoder};
use minicbor::encode::{Encoder, Write};

use crate::map::{self, EncResult, FieldDecode, FieldEncode};

/// The hash that identifies an image on a device: the hash TLV MCUboot keeps in the
/// image (SHA-256 of its header and body, so 32 bytes; 48 or 64 with SHA-384 or
/// SHA-512), not a hash of the file.
///
/// It prints as lower-case hex and parses from hex (either case), so it goes between
/// people, command lines and the device unchanged. On the wire it is a CBOR byte string;
/// any length a device sends is kept.
///
/// ```
/// use smp_proto::ImageHash;
///
/// let hash: ImageHash = "dd1758a0".parse().unwrap();
/// assert_eq!(hash.as_bytes(), [0xdd, 0x17, 0x58, 0xa0]);
/// assert_eq!(hash.to_string(), "dd1758a0");
/// assert!(hash.starts_with_hex("DD17"));
/// assert!("dd175".parse::<ImageHash>().is_err());
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageHash(Vec<u8>);

impl ImageHash {
    /// The hash with these bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// The hash's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The hash's bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// Number of bytes (32 for SHA-256).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for a hash of no bytes (a device that sent an empty one).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the hex form of this hash starts with `prefix` (either case), as a short
    /// hash a person typed: `false` for a prefix that is not hex at all.
    pub fn starts_with_hex(&self, prefix: &str) -> bool {
        if !prefix.bytes().all(|b| b.is_ascii_hexdigit()) || prefix.len() > 2 * self.0.len() {
            return false;
        }
        prefix.bytes().enumerate().all(|(i, digit)| {
            let byte = self.0[i / 2];
            let nibble = if i % 2 == 0 { byte >> 4 } else { byte & 0x0f };
            hex_value(digit) == Some(nibble)
        })
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for ImageHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for ImageHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageHash({self})")
    }
}

/// Why a text is not an [`ImageHash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseHashError {
    /// The text is empty.
    Empty,
    /// An odd number of hex digits: the last byte is incomplete.
    OddLength {
        /// Digits given.
        digits: usize,
    },
    /// A character that is not a hex digit.
    NotHex {
        /// Its position (in bytes) in the text.
        at: usize,
    },
}

impl fmt::Display for ParseHashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("an image hash needs at least one byte (two hex digits)"),
            Self::OddLength { digits } => {
                write!(f, "{digits} hex digits: an image hash needs two per byte")
            }
            Self::NotHex { at } => write!(f, "not a hex digit at position {at}"),
        }
    }
}

impl core::error::Error for ParseHashError {}

impl FromStr for ImageHash {
    type Err = ParseHashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(at) = s.bytes().position(|b| !b.is_ascii_hexdigit()) {
            return Err(ParseHashError::NotHex { at });
        }
        match s.len() {
            0 => return Err(ParseHashError::Empty),
            digits if digits % 2 == 1 => return Err(ParseHashError::OddLength { digits }),
            _ => {}
        }
        let bytes = s
            .as_bytes()
            .chunks_exact(2)
            .filter_map(|pair| Some(hex_value(pair[0])? << 4 | hex_value(pair[1])?))
            .collect();
        Ok(Self(bytes))
    }
}

impl From<Vec<u8>> for ImageHash {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl From<&[u8]> for ImageHash {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }
}

impl<const N: usize> From<[u8; N]> for ImageHash {
    fn from(bytes: [u8; N]) -> Self {
        Self(bytes.to_vec())
    }
}

impl core::ops::Deref for ImageHash {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for ImageHash {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq<[u8]> for ImageHash {
    fn eq(&self, other: &[u8]) -> bool {
        self.0 == other
    }
}

impl<const N: usize> PartialEq<[u8; N]> for ImageHash {
    fn eq(&self, other: &[u8; N]) -> bool {
        self.0 == other
    }
}

impl From<ImageHash> for String {
    fn from(hash: ImageHash) -> Self {
        alloc::format!("{hash}")
    }
}

impl FieldEncode for ImageHash {
    fn encode_field<W: Write>(&self, e: &mut Encoder<W>) -> EncResult<W> {
        self.0.encode_field(e)
    }
    fn field_len(&self) -> usize {
        self.0.field_len()
    }
}

impl FieldDecode<'_> for ImageHash {
    fn decode_field(d: &mut Decoder<'_>) -> Result<Self, decode::Error> {
        Ok(Self(map::bytes(d)?.into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use std::string::ToString;
    use std::vec;

    use super::*;

    #[test]
    fn prints_and_parses_as_hex() {
        let hash = ImageHash::new(vec![0x00, 0xab, 0xff, 0x10]);
        assert_eq!(hash.to_string(), "00abff10");
        assert_eq!("00ABff10".parse::<ImageHash>(), Ok(hash.clone()));
        assert_eq!(std::format!("{hash:?}"), "ImageHash(00abff10)");
        assert_eq!(String::from(hash), "00abff10");
    }

    #[test]
    fn bad_text_is_a_typed_error() {
        assert_eq!("".parse::<ImageHash>(), Err(ParseHashError::Empty));
        assert_eq!(
            "abc".parse::<ImageHash>(),
            Err(ParseHashError::OddLength { digits: 3 })
        );
        assert_eq!(
            "ab-c".parse::<ImageHash>(),
            Err(ParseHashError::NotHex { at: 2 })
        );
        assert_eq!(
            "éa".parse::<ImageHash>(),
            Err(ParseHashError::NotHex { at: 0 })
        );
        assert_eq!(
            ParseHashError::OddLength { digits: 3 }.to_string(),
            "3 hex digits: an image hash needs two per byte"
        );
    }

    #[test]
    fn prefixes_match_as_short_hashes_do() {
        let hash = ImageHash::from([0xdd, 0x17, 0x58]);
        for yes in ["", "d", "dd1", "DD1758", "dd1758"] {
            assert!(hash.starts_with_hex(yes), "{yes}");
        }
        for no in ["e", "dd18", "dd17580", "dd17g", "zz"] {
            assert!(!hash.starts_with_hex(no), "{no}");
        }
    }

    #[test]
    fn a_byte_string_on_the_wire() {
        let hash = ImageHash::from([1u8, 2, 3]);
        let mut out = Vec::new();
        hash.encode_field(&mut Encoder::new(&mut out)).unwrap();
        assert_eq!(out, [0x43, 1, 2, 3]);
        assert_eq!(hash.field_len(), out.len());
        // Indefinite-length byte strings decode too.
        let decoded =
            ImageHash::decode_field(&mut Decoder::new(&[0x5f, 0x41, 1, 0x42, 2, 3, 0xff]));
        assert_eq!(decoded.unwrap(), hash);
    }
}
