//! A generic CBOR value, for replies whose shape depends on the device.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use minicbor::data::{Int, Type};
use minicbor::decode::{self, Decoder};
use minicbor::encode::{self, Encoder, Write};

use crate::map::{self, EncResult, FieldDecode, FieldEncode};

/// Nesting limit of [`Value`] decoding: deeper input is refused instead of recursing
/// without bound.
const MAX_DEPTH: usize = 32;

/// Any CBOR data item, for reply entries whose shape the protocol leaves open (for
/// example the answer to a bootloader-info query).
///
/// Text and byte strings of indefinite length decode to one joined string; floats of
/// every width decode to `f64` and encode as `f64`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `undefined`.
    Undefined,
    /// A boolean.
    Bool(bool),
    /// An integer (CBOR integers range from −2⁶⁴ to 2⁶⁴ − 1).
    Int(i128),
    /// A floating-point number.
    Float(f64),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A text string.
    Text(String),
    /// An array.
    Array(Vec<Value>),
    /// A map, entries in the order received.
    Map(Vec<(Value, Value)>),
    /// A tagged value.
    Tag(u64, Box<Value>),
    /// A simple value other than the booleans, `null` and `undefined`.
    Simple(u8),
}

impl Value {
    /// The integer, if this is one that fits an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Int(n) => i64::try_from(*n).ok(),
            _ => None,
        }
    }

    /// The text, if this is a text string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn decode_depth(d: &mut Decoder<'_>, depth: usize) -> Result<Self, decode::Error> {
        if depth > MAX_DEPTH {
            return Err(decode::Error::message("CBOR value nested too deeply").at(d.position()));
        }
        let p = d.position();
        Ok(match d.datatype()? {
            Type::Bool => Self::Bool(d.bool()?),
            Type::Null => {
                d.null()?;
                Self::Null
            }
            Type::Undefined => {
                d.undefined()?;
                Self::Undefined
            }
            t if map::is_int_type(t) => Self::Int(i128::from(d.int()?)),
            Type::F16 => {
                // minicbor decodes half floats only with its `half` feature: read the
                // two bytes after the initial byte ourselves.
                let raw = d
                    .input()
                    .get(p + 1..p + 3)
                    .ok_or_else(|| decode::Error::end_of_input().at(p))?;
                let h = u16::from_be_bytes([raw[0], raw[1]]);
                d.set_position(p + 3);
                Self::Float(f64::from(half_to_f32(h)))
            }
            Type::F32 => Self::Float(f64::from(d.f32()?)),
            Type::F64 => Self::Float(d.f64()?),
            Type::Simple => Self::Simple(d.simple()?),
            Type::Bytes | Type::BytesIndef => Self::Bytes(map::bytes(d)?.into_owned()),
            Type::String | Type::StringIndef => Self::Text(map::text(d)?.into_owned()),
            Type::Array | Type::ArrayIndef => {
                let mut items = Vec::new();
                map::decode_array(d, |d| {
                    items.push(Self::decode_depth(d, depth + 1)?);
                    Ok(())
                })?;
                Self::Array(items)
            }
            Type::Map | Type::MapIndef => {
                let len = d.map()?;
                let mut entries = Vec::new();
                let mut seen = 0u64;
                while map::has_next(d, len, seen)? {
                    seen += 1;
                    let k = Self::decode_depth(d, depth + 1)?;
                    let v = Self::decode_depth(d, depth + 1)?;
                    entries.push((k, v));
                }
                Self::Map(entries)
            }
            Type::Tag => {
                let tag = d.tag()?;
                Self::Tag(tag.as_u64(), Box::new(Self::decode_depth(d, depth + 1)?))
            }
            other => {
                return Err(decode::Error::type_mismatch(other)
                    .at(p)
                    .with_message("unexpected CBOR item"));
            }
        })
    }
}

/// IEEE 754 half precision to single precision.
fn half_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let mant = u32::from(h & 0x3ff);
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: value = m * 2^-24.
            let v = m as f32 * f32::from_bits(0x3380_0000);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, m) => sign | 0x7fc0_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

impl<C> minicbor::Encode<C> for Value {
    fn encode<W: Write>(
        &self,
        e: &mut Encoder<W>,
        _: &mut C,
    ) -> Result<(), encode::Error<W::Error>> {
        self.encode_field(e)
    }
}

impl<'b, C> minicbor::Decode<'b, C> for Value {
    fn decode(d: &mut Decoder<'b>, _: &mut C) -> Result<Self, decode::Error> {
        Self::decode_depth(d, 0)
    }
}

impl<C> minicbor::CborLen<C> for Value {
    fn cbor_len(&self, _: &mut C) -> usize {
        self.field_len()
    }
}

impl FieldEncode for Value {
    fn encode_field<W: Write>(&self, e: &mut Encoder<W>) -> EncResult<W> {
        match self {
            Self::Null => {
                e.null()?;
            }
            Self::Undefined => {
                e.undefined()?;
            }
            Self::Bool(b) => {
                e.bool(*b)?;
            }
            Self::Int(n) => {
                let n = Int::try_from(*n)
                    .map_err(|_| encode::Error::message("integer out of the CBOR range"))?;
                e.int(n)?;
            }
            Self::Float(x) => {
                e.f64(*x)?;
            }
            Self::Bytes(b) => {
                e.bytes(b)?;
            }
            Self::Text(s) => {
                e.str(s)?;
            }
            Self::Array(items) => {
                e.array(items.len() as u64)?;
                for item in items {
                    item.encode_field(e)?;
                }
            }
            Self::Map(entries) => {
                e.map(entries.len() as u64)?;
                for (k, v) in entries {
                    k.encode_field(e)?;
                    v.encode_field(e)?;
                }
            }
            Self::Tag(tag, v) => {
                e.tag(minicbor::data::Tag::new(*tag))?;
                v.encode_field(e)?;
            }
            Self::Simple(s) => {
                e.simple(*s)?;
            }
        }
        Ok(())
    }

    fn field_len(&self) -> usize {
        match self {
            Self::Null | Self::Undefined | Self::Bool(_) => 1,
            // minicbor writes simple values below 20 in the initial byte and every other
            // one (20..=23 included, which a decoder may meet as `f8 14`..`f8 17`) with a
            // one-byte argument.
            Self::Simple(s) => {
                if *s < 20 {
                    1
                } else {
                    2
                }
            }
            Self::Int(n) => {
                let arg = if *n < 0 { -1 - *n } else { *n };
                u64::try_from(arg).map_or(9, map::head_len)
            }
            Self::Float(_) => 9,
            Self::Bytes(b) => map::bytes_len(b),
            Self::Text(s) => map::str_len(s),
            Self::Array(items) => {
                map::head_len(items.len() as u64)
                    + items.iter().map(FieldEncode::field_len).sum::<usize>()
            }
            Self::Map(entries) => {
                map::head_len(entries.len() as u64)
                    + entries
                        .iter()
                        .map(|(k, v)| k.field_len() + v.field_len())
                        .sum::<usize>()
            }
            Self::Tag(tag, v) => map::head_len(*tag) + v.field_len(),
        }
    }
}

impl<'b> FieldDecode<'b> for Value {
    fn decode_field(d: &mut Decoder<'b>) -> Result<Self, decode::Error> {
        Self::decode_depth(d, 0)
    }
}

impl map::ArrayElem for Value {}

#[cfg(test)]
mod tests {

    use std::boxed::Box;

    use std::vec;

    #[test]
    fn every_simple_value_has_the_length_it_encodes_to() {
        // Found by the reply_decode fuzz target: `f8 17` decodes as simple value 23,
        // which minicbor writes with a one-byte argument.
        for s in 0..=u8::MAX {
            let v = Value::Simple(s);
            let bytes = minicbor::to_vec(&v).expect("encodes");
            assert_eq!(minicbor::len(&v), bytes.len(), "simple value {s}");
        }
    }

    use super::*;
    use crate::messages::test_util::hex;

    #[test]
    fn decodes_and_reencodes_everything() {
        // [_ null, undefined, true, -1000, 2^64-1, -2^64, 1.5 (f16), h'01', (_ "a" "b"),
        //   {1: [2]}, 1(5), simple(32), 1.0 (f32), 0.5 (f64)]
        let b = hex(
            "9f f6 f7 f5 3903e7 1bffffffffffffffff 3bffffffffffffffff f93e00 4101 7f6161 6162 ff
             a1 01 81 02 c1 05 f820 fa3f800000 fb3fe0000000000000 ff",
        );
        let v: Value = minicbor::decode(&b).expect("decodes");
        let Value::Array(items) = &v else {
            panic!("array expected: {v:?}")
        };
        assert_eq!(
            items,
            &[
                Value::Null,
                Value::Undefined,
                Value::Bool(true),
                Value::Int(-1000),
                Value::Int(u64::MAX.into()),
                Value::Int(-(1i128 << 64)),
                Value::Float(1.5),
                Value::Bytes(vec![1]),
                Value::Text("ab".into()),
                Value::Map(vec![(Value::Int(1), Value::Array(vec![Value::Int(2)]))]),
                Value::Tag(1, Box::new(Value::Int(5))),
                Value::Simple(32),
                Value::Float(1.0),
                Value::Float(0.5),
            ]
        );
        let again = minicbor::to_vec(&v).expect("encodes");
        assert_eq!(minicbor::len(&v), again.len());
        let v2: Value = minicbor::decode(&again).expect("decodes again");
        assert_eq!(v, v2);
    }

    #[test]
    fn half_floats() {
        assert_eq!(half_to_f32(0x3c00), 1.0);
        assert_eq!(half_to_f32(0xc000), -2.0);
        assert_eq!(half_to_f32(0x0001), 5.960_464_5e-8);
        assert_eq!(half_to_f32(0x7c00), f32::INFINITY);
        assert!(half_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn refuses_deep_nesting_without_overflowing() {
        let mut b = vec![0x81; 10_000];
        b.push(0x00);
        assert!(minicbor::decode::<Value>(&b).is_err());
        let mut b = vec![0x81; 20];
        b.push(0x00);
        assert!(minicbor::decode::<Value>(&b).is_ok());
    }

    #[test]
    fn truncated_input_is_an_error() {
        for b in [hex("f9 3e"), hex("9f 01"), hex("a1 01"), hex("62 61")] {
            assert!(minicbor::decode::<Value>(&b).is_err(), "{b:02x?}");
        }
    }
}
