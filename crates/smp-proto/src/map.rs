//! The CBOR layer under [`crate::messages`]: text-keyed maps with minicbor.
//!
//! minicbor's derive only knows integer map keys; SMP maps are keyed by text. This
//! module provides the pieces the [`smp_map!`](crate::smp_map) macro builds on, public
//! so that an application's own messages (and field types) get the same support:
//!
//! - [`FieldEncode`] / [`FieldDecode`]: how one field value is written, measured and
//!   read. `Option<T>` fields are left out of the map when `None` and may be missing
//!   on decode; every other field is required.
//! - [`decode_map`]: walks a definite or indefinite map, hands text keys to a callback
//!   and skips whatever the callback does not consume (unknown keys, `"rc": 0`, nested
//!   indefinite values, non-text keys).
//! - [`is_canonical`] / [`canonical_cmp`]: the reference's (cbor2 `canonical=True`)
//!   key order: shorter keys first, then bytewise. The macro checks at compile time that
//!   fields are declared in that order, so encoding is a straight walk over the fields.
//!
//! Text and byte strings are accepted in definite and indefinite form; integers in any
//! width. Nothing here panics on input: a missing field or a wrong type is a
//! [`minicbor::decode::Error`].

use alloc::borrow::{Cow, ToOwned};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::cmp::Ordering;

use minicbor::data::Type;
use minicbor::decode::{self, Decoder};
use minicbor::encode::{self, Encoder, Write};

/// Encoder result with the writer's error.
pub type EncResult<W> = Result<(), encode::Error<<W as Write>::Error>>;

/// How a field value is written into a map, and how long that is.
pub trait FieldEncode {
    /// Writes the value (not the key).
    fn encode_field<W: Write>(&self, e: &mut Encoder<W>) -> EncResult<W>;
    /// Encoded length of the value in bytes.
    fn field_len(&self) -> usize;
    /// False when the field is left out of the map (`None`).
    fn is_present(&self) -> bool {
        true
    }
}

/// How a field value is read from a map.
pub trait FieldDecode<'b>: Sized {
    /// Reads the value (the key is already consumed).
    fn decode_field(d: &mut Decoder<'b>) -> Result<Self, decode::Error>;
    /// The value of a field whose key is missing: `None` means "required".
    fn absent() -> Option<Self> {
        None
    }
}

/// Types that may be the elements of an encoded array field (`Vec<T>`).
///
/// `u8` is deliberately not one: `Vec<u8>` is a CBOR byte string.
pub trait ArrayElem {}

// ---------------------------------------------------------------------------------------
// Lengths and canonical order

/// Length of a CBOR head (major type + argument) for argument `n`.
pub const fn head_len(n: u64) -> usize {
    if n < 24 {
        1
    } else if n <= 0xff {
        2
    } else if n <= 0xffff {
        3
    } else if n <= 0xffff_ffff {
        5
    } else {
        9
    }
}

/// Encoded length of an integer.
pub const fn int_len(n: i64) -> usize {
    if n < 0 {
        // -1 - n cannot overflow for negative n.
        head_len((-1 - n) as u64)
    } else {
        head_len(n as u64)
    }
}

/// Encoded length of a definite text string.
pub const fn str_len(s: &str) -> usize {
    head_len(s.len() as u64) + s.len()
}

/// Encoded length of a definite byte string.
pub const fn bytes_len(b: &[u8]) -> usize {
    head_len(b.len() as u64) + b.len()
}

/// The canonical order of two text keys: shorter first, then bytewise.
///
/// For text keys this equals cbor2's `canonical=True` order (sorting by encoded key),
/// because a longer string never has a shorter encoding.
pub fn canonical_cmp(a: &str, b: &str) -> Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// True when `keys` are strictly increasing in canonical order (checked at compile time
/// by [`smp_map!`](crate::smp_map)).
pub const fn is_canonical(keys: &[&str]) -> bool {
    let mut i = 1;
    while i < keys.len() {
        if !const_less(keys[i - 1].as_bytes(), keys[i].as_bytes()) {
            return false;
        }
        i += 1;
    }
    true
}

const fn const_less(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return a.len() < b.len();
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
        i += 1;
    }
    false
}

// ---------------------------------------------------------------------------------------
// Decoding helpers

/// Reads a text string, definite or indefinite.
pub fn text<'b>(d: &mut Decoder<'b>) -> Result<Cow<'b, str>, decode::Error> {
    if d.datatype()? == Type::String {
        return Ok(Cow::Borrowed(d.str()?));
    }
    let mut s = String::new();
    for part in d.str_iter()? {
        s.push_str(part?);
    }
    Ok(Cow::Owned(s))
}

/// Reads a byte string, definite or indefinite.
pub fn bytes<'b>(d: &mut Decoder<'b>) -> Result<Cow<'b, [u8]>, decode::Error> {
    if d.datatype()? == Type::Bytes {
        return Ok(Cow::Borrowed(d.bytes()?));
    }
    let mut v = Vec::new();
    for part in d.bytes_iter()? {
        v.extend_from_slice(part?);
    }
    Ok(Cow::Owned(v))
}

/// Reads any CBOR integer as an `i64`; values beyond its range are an error.
pub fn int(d: &mut Decoder<'_>) -> Result<i64, decode::Error> {
    let p = d.position();
    let n = d.int()?;
    i64::try_from(n).map_err(|_| decode::Error::message("integer out of range").at(p))
}

/// True while a map or array of `len` items (`None`: indefinite) has another item after
/// the `seen` already read; consumes the break that ends an indefinite one.
pub fn has_next(d: &mut Decoder<'_>, len: Option<u64>, seen: u64) -> Result<bool, decode::Error> {
    match len {
        Some(n) => Ok(seen < n),
        None if d.datatype()? == Type::Break => {
            d.set_position(d.position() + 1);
            Ok(false)
        }
        None => Ok(true),
    }
}

/// Walks one map (definite or indefinite), calling `on_entry(key, decoder)` for every
/// entry with a text key, with the decoder at the value.
///
/// `on_entry` returns `Ok(true)` when it consumed the value and `Ok(false)` to have it
/// skipped (unknown keys). Entries with non-text keys are skipped.
pub fn decode_map<'b, F>(d: &mut Decoder<'b>, mut on_entry: F) -> Result<(), decode::Error>
where
    F: FnMut(&str, &mut Decoder<'b>) -> Result<bool, decode::Error>,
{
    let len = d.map()?;
    let mut seen = 0u64;
    while has_next(d, len, seen)? {
        seen += 1;
        if matches!(d.datatype()?, Type::String | Type::StringIndef) {
            let key = text(d)?;
            if !on_entry(&key, d)? {
                d.skip()?;
            }
        } else {
            d.skip()?;
            d.skip()?;
        }
    }
    Ok(())
}

/// Walks one array (definite or indefinite), calling `on_item` with the decoder at each
/// element; `on_item` must consume it.
pub fn decode_array<'b, F>(d: &mut Decoder<'b>, mut on_item: F) -> Result<(), decode::Error>
where
    F: FnMut(&mut Decoder<'b>) -> Result<(), decode::Error>,
{
    let len = d.array()?;
    let mut seen = 0u64;
    while has_next(d, len, seen)? {
        seen += 1;
        on_item(d)?;
    }
    Ok(())
}

/// True for every CBOR integer type minicbor distinguishes.
pub fn is_int_type(t: Type) -> bool {
    matches!(
        t,
        Type::U8
            | Type::U16
            | Type::U32
            | Type::U64
            | Type::I8
            | Type::I16
            | Type::I32
            | Type::I64
            | Type::Int
    )
}

/// The error for a required field that is missing.
pub fn missing(what: &'static str) -> decode::Error {
    decode::Error::message(what)
}

// ---------------------------------------------------------------------------------------
// Field impls: scalars

impl FieldEncode for bool {
    fn encode_field<W: Write>(&self, e: &mut Encoder<W>) -> EncResult<W> {
        e.bool(*self)?;
        Ok(())
    }
    fn field_len(&self) -> usize {
        1
    }
}

impl FieldDecode<'_> for bool {
    fn decode_field(d: &mut Decoder<'_>) -> Result<Self, decode::Error> {
        d.bool()
    }
}

macro_rules! unsigned_field {
    ($($t:ty => $dec:ident),*) => {$(
        impl FieldEncode for $t {
            fn encode_field<W: Write>(&self, e: &mut Encoder<W>) -> EncResult<W> {
                e.u64(u64::from(*self))?;
                Ok(())
            }
            fn field_len(&self) -> usize {
                head_len(u64::from(*self))
            }
        }
        impl FieldDecode<'_> for $t {
            fn decode_field(d: &mut Decoder<'_>) -> Result<Self, decode::Error> {
                d.$dec()
            }
        }
    )*};
}
unsigned_field!(u8 => u8, u16 => u16, u32 => u32, u64 => u64);

impl FieldEncode for i64 {
    fn encode_field<W: Write>(&self, e: &mut Encoder<W>) -> EncResult<W> {
        e.i64(*self)?;
        Ok(())
    }
    fn field_len(&self) -> usize {
        int_len(*self)
    }
}

impl FieldDecode<'_> for i64 {
    fn decode_field(d: &mut Decoder<'_>) -> Result<Self, decode::Error> {
        int(d)
    }
}

impl ArrayElem for u16 {}
impl ArrayElem for u32 {}
impl ArrayElem for u64 {}
impl ArrayElem for i64 {}

// ---------------------------------------------------------------------------------------
// Field impls: strings

impl FieldEncode for String {
    fn encode_field<W: Write>(&self, e: &mut Encoder<W>) -> EncResult<W> {
        e.str(self)?;
        Ok(())
    }
    fn field_len(&self) -> usize {
        str_len(self)
    }
}

impl FieldDecode<'_> for String {
    fn decode_field(d: &mut Decoder<'_>) -> Result<Self, decode::Error> {
        Ok(text(d)?.into_owned())
    }
}

impl ArrayElem for String {}

impl FieldEncode for Vec<u8> {
    fn encode_field<W: Write>(&self, e: &mut Encoder<W>) -> EncResult<W> {
        e.bytes(self)?;
        Ok(())
    }
    fn field_len(&self) -> usize {
        bytes_len(self)
    }
}

impl FieldDecode<'_> for Vec<u8> {
    fn decode_field(d: &mut Decoder<'_>) -> Result<Self, decode::Error> {
        Ok(bytes(d)?.into_owned())
    }
}

impl FieldEncode for Cow<'_, [u8]> {
    fn encode_field<W: Write>(&self, e: &mut Encoder<W>) -> EncResult<W> {
        e.bytes(self)?;
        Ok(())
    }
    fn field_len(&self) -> usize {
        bytes_len(self)
    }
}

impl<'a> FieldDecode<'_> for Cow<'a, [u8]> {
    fn decode_field(d: &mut Decoder<'_>) -> Result<Self, decode::Error> {
        // Owned: the message may outlive the reply buffer.
        Ok(Cow::Owned(bytes(d)?.into_owned()))
    }
}

// ---------------------------------------------------------------------------------------
// Field impls: containers

impl<T: FieldEncode> FieldEncode for Option<T> {
    fn encode_field<W: Write>(&self, e: &mut Encoder<W>) -> EncResult<W> {
        match self {
            Some(v) => v.encode_field(e),
            None => {
                e.null()?;
                Ok(())
            }
        }
    }
    fn field_len(&self) -> usize {
        self.as_ref().map_or(1, FieldEncode::field_len)
    }
    fn is_present(&self) -> bool {
        self.is_some()
    }
}

impl<'b, T: FieldDecode<'b>> FieldDecode<'b> for Option<T> {
    fn decode_field(d: &mut Decoder<'b>) -> Result<Self, decode::Error> {
        // A device may write `null` for "not there".
        if d.datatype()? == Type::Null {
            d.null()?;
            return Ok(None);
        }
        T::decode_field(d).map(Some)
    }
    fn absent() -> Option<Self> {
        Some(None)
    }
}

impl<T: FieldEncode + ArrayElem> FieldEncode for Vec<T> {
    fn encode_field<W: Write>(&self, e: &mut Encoder<W>) -> EncResult<W> {
        e.array(self.len() as u64)?;
        for v in self {
            v.encode_field(e)?;
        }
        Ok(())
    }
    fn field_len(&self) -> usize {
        head_len(self.len() as u64) + self.iter().map(FieldEncode::field_len).sum::<usize>()
    }
}

impl<'b, T: FieldDecode<'b> + ArrayElem> FieldDecode<'b> for Vec<T> {
    fn decode_field(d: &mut Decoder<'b>) -> Result<Self, decode::Error> {
        let mut out = Vec::new();
        decode_array(d, |d| {
            out.push(T::decode_field(d)?);
            Ok(())
        })?;
        Ok(out)
    }
}

/// A text-keyed map, written in canonical key order.
impl<V: FieldEncode> FieldEncode for BTreeMap<String, V> {
    fn encode_field<W: Write>(&self, e: &mut Encoder<W>) -> EncResult<W> {
        let mut entries: Vec<(&String, &V)> = self.iter().collect();
        entries.sort_by(|a, b| canonical_cmp(a.0, b.0));
        e.map(entries.len() as u64)?;
        for (k, v) in entries {
            e.str(k)?;
            v.encode_field(e)?;
        }
        Ok(())
    }
    fn field_len(&self) -> usize {
        head_len(self.len() as u64)
            + self
                .iter()
                .map(|(k, v)| str_len(k) + v.field_len())
                .sum::<usize>()
    }
}

impl<'b, V: FieldDecode<'b>> FieldDecode<'b> for BTreeMap<String, V> {
    fn decode_field(d: &mut Decoder<'b>) -> Result<Self, decode::Error> {
        let mut out = BTreeMap::new();
        decode_map(d, |k, d| {
            out.insert(k.to_owned(), V::decode_field(d)?);
            Ok(true)
        })?;
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------
// The struct macro

/// Defines a struct whose fields are a text-keyed CBOR map, with its minicbor `Encode`,
/// `Decode` and `CborLen` impls (for any context type) and the [`FieldEncode`] /
/// [`FieldDecode`] impls that let it nest inside other maps and arrays.
///
/// This is how every message in [`messages`](crate::messages) is written, and how an
/// application writes the messages of its own groups (ids 64 and up):
///
/// ```
/// use smp_proto::{Request, smp_map};
/// use smp_proto::header::Op;
///
/// smp_map! {
///     /// Blink the LED `n` times (user group 64, command 0).
///     #[derive(Debug, Clone, PartialEq, Eq)]
///     pub struct BlinkRequest {
///         /// How often.
///         "n" => pub n: u32,
///         /// Milliseconds per blink; the device's default when absent.
///         "period" => pub period: Option<u32>,
///     }
/// }
///
/// smp_map! {
///     /// The device's answer: how many blinks are queued.
///     #[derive(Debug, Clone, Default, PartialEq, Eq)]
///     pub struct BlinkResponse {
///         /// Blinks queued.
///         "queued" => pub queued: u64,
///     }
/// }
///
/// impl Request for BlinkRequest {
///     const GROUP: u16 = 64;
///     const COMMAND: u8 = 0;
///     const OP: Op = Op::Write;
///     type Response = BlinkResponse;
/// }
///
/// let request = BlinkRequest { n: 3, period: None };
/// let payload = smp_proto::minicbor::to_vec(&request).unwrap();
/// assert_eq!(payload, b"\xa1\x61n\x03");
/// assert_eq!(smp_proto::minicbor::len(&request), payload.len());
/// // Zephyr answers with indefinite-length maps, keys in any order, extra keys allowed.
/// let reply: BlinkResponse =
///     smp_proto::minicbor::decode(b"\xbf\x62rc\x00\x66queued\x03\xff").unwrap();
/// assert_eq!(reply.queued, 3);
/// ```
///
/// Each field names its wire key; fields must be declared in canonical key order
/// (shorter first, then bytewise, as the Python reference encodes maps), which a
/// compile-time assertion checks, so `encode` writes them in declaration order.
/// `Option` fields are omitted when `None` and may be missing on decode; any other
/// missing field is a decode error. Decoding accepts definite and indefinite maps, any
/// key order and unknown keys. A unit struct (`pub struct X;`) is the empty map and
/// decodes from any map. Field types are those with [`FieldEncode`] and [`FieldDecode`]
/// impls: integers, `bool`, `String`, `Vec<u8>` (a byte string), `Cow<[u8]>`, `Option`,
/// `Vec` of those, `BTreeMap<String, _>`, [`Value`](crate::messages::Value) and other
/// `smp_map!` structs.
#[macro_export]
macro_rules! smp_map {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident;
    ) => {
        $(#[$meta])*
        $vis struct $name;

        impl<C> $crate::minicbor::Encode<C> for $name {
            fn encode<W: $crate::minicbor::encode::Write>(
                &self,
                e: &mut $crate::minicbor::Encoder<W>,
                _: &mut C,
            ) -> ::core::result::Result<(), $crate::minicbor::encode::Error<W::Error>> {
                e.map(0)?;
                Ok(())
            }
        }

        impl<'b, C> $crate::minicbor::Decode<'b, C> for $name {
            fn decode(
                d: &mut $crate::minicbor::Decoder<'b>,
                _: &mut C,
            ) -> ::core::result::Result<Self, $crate::minicbor::decode::Error> {
                $crate::map::decode_map(d, |_, _| Ok(false))?;
                Ok(Self)
            }
        }

        impl<C> $crate::minicbor::CborLen<C> for $name {
            fn cbor_len(&self, _: &mut C) -> usize {
                1
            }
        }

        $crate::smp_map!(@field $name);
    };

    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident $(<$lt:lifetime>)? {
            $(
                $(#[$fmeta:meta])*
                $wire:literal => $fvis:vis $field:ident : $ty:ty
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name $(<$lt>)? {
            $(
                $(#[$fmeta])*
                $fvis $field: $ty,
            )*
        }

        const _: () = {
            const KEYS: &[&str] = &[$($wire),*];
            assert!(
                $crate::map::is_canonical(KEYS),
                concat!(
                    "fields of `", stringify!($name),
                    "` must be declared in canonical key order (shorter first, then bytewise)"
                )
            );
        };

        impl<$($lt,)? C> $crate::minicbor::Encode<C> for $name $(<$lt>)? {
            fn encode<W: $crate::minicbor::encode::Write>(
                &self,
                e: &mut $crate::minicbor::Encoder<W>,
                _: &mut C,
            ) -> ::core::result::Result<(), $crate::minicbor::encode::Error<W::Error>> {
                use $crate::map::FieldEncode as _;
                let present = 0u64 $(+ u64::from(self.$field.is_present()))*;
                e.map(present)?;
                $(
                    if self.$field.is_present() {
                        e.str($wire)?;
                        self.$field.encode_field(e)?;
                    }
                )*
                Ok(())
            }
        }

        impl<'b, $($lt,)? C> $crate::minicbor::Decode<'b, C> for $name $(<$lt>)? {
            fn decode(
                d: &mut $crate::minicbor::Decoder<'b>,
                _: &mut C,
            ) -> ::core::result::Result<Self, $crate::minicbor::decode::Error> {
                $(let mut $field: ::core::option::Option<$ty> = None;)*
                $crate::map::decode_map(d, |key, d| {
                    match key {
                        $(
                            $wire => {
                                $field = Some(
                                    <$ty as $crate::map::FieldDecode<'b>>::decode_field(d)?,
                                );
                                Ok(true)
                            }
                        )*
                        _ => Ok(false),
                    }
                })?;
                Ok(Self {
                    $(
                        $field: match $field
                            .or_else(<$ty as $crate::map::FieldDecode<'b>>::absent)
                        {
                            Some(v) => v,
                            None => {
                                return Err($crate::map::missing(concat!(
                                    stringify!($name), ": missing required field `", $wire, "`"
                                )))
                            }
                        },
                    )*
                })
            }
        }

        impl<$($lt,)? C> $crate::minicbor::CborLen<C> for $name $(<$lt>)? {
            fn cbor_len(&self, _: &mut C) -> usize {
                use $crate::map::FieldEncode as _;
                let mut present = 0u64;
                let mut len = 0usize;
                $(
                    if self.$field.is_present() {
                        present += 1;
                        len += $crate::map::str_len($wire) + self.$field.field_len();
                    }
                )*
                $crate::map::head_len(present) + len
            }
        }

        $crate::smp_map!(@field $name $(<$lt>)?);
    };

    // Lets the type nest as a field value or array element of another map.
    (@field $name:ident $(<$lt:lifetime>)?) => {
        impl$(<$lt>)? $crate::map::FieldEncode for $name $(<$lt>)? {
            fn encode_field<W: $crate::minicbor::encode::Write>(
                &self,
                e: &mut $crate::minicbor::Encoder<W>,
            ) -> $crate::map::EncResult<W> {
                $crate::minicbor::Encode::<()>::encode(self, e, &mut ())
            }
            fn field_len(&self) -> usize {
                $crate::minicbor::CborLen::<()>::cbor_len(self, &mut ())
            }
        }

        impl<'b, $($lt)?> $crate::map::FieldDecode<'b> for $name $(<$lt>)? {
            fn decode_field(
                d: &mut $crate::minicbor::Decoder<'b>,
            ) -> ::core::result::Result<Self, $crate::minicbor::decode::Error> {
                $crate::minicbor::Decode::<'b, ()>::decode(d, &mut ())
            }
        }

        impl$(<$lt>)? $crate::map::ArrayElem for $name $(<$lt>)? {}
    };
}

#[cfg(test)]
mod tests {
    use crate::messages::test_util::hex;

    use super::*;

    #[test]
    fn canonical_order_is_length_then_bytes() {
        assert!(is_canonical(&["b", "aa", "ab", "len", "off", "data"]));
        assert!(!is_canonical(&["aa", "b"]));
        assert!(!is_canonical(&["off", "len"]));
        assert!(!is_canonical(&["off", "off"]));
        assert!(is_canonical(&[]));
        assert_eq!(canonical_cmp("z", "aa"), Ordering::Less);
        assert_eq!(canonical_cmp("sha", "off"), Ordering::Greater);
    }

    #[test]
    fn head_lengths() {
        assert_eq!(head_len(23), 1);
        assert_eq!(head_len(24), 2);
        assert_eq!(head_len(0x100), 3);
        assert_eq!(head_len(0x1_0000), 5);
        assert_eq!(head_len(0x1_0000_0000), 9);
        assert_eq!(int_len(-24), 1);
        assert_eq!(int_len(-25), 2);
        assert_eq!(int_len(i64::MIN), 9);
    }

    #[test]
    fn strings_definite_and_indefinite() {
        // "hello" definite, then (_ "he" "llo") indefinite.
        let b = hex("6568656c6c6f 7f 626865 636c6c6f ff");
        let mut d = Decoder::new(&b);
        assert_eq!(text(&mut d).expect("definite"), "hello");
        assert_eq!(text(&mut d).expect("indefinite"), "hello");
        let b = hex("43010203 5f 4101 420203 ff");
        let mut d = Decoder::new(&b);
        assert_eq!(&*bytes(&mut d).expect("definite"), &[1, 2, 3]);
        assert_eq!(&*bytes(&mut d).expect("indefinite"), &[1, 2, 3]);
    }

    #[test]
    fn map_walk_skips_what_it_does_not_know() {
        // {_ 1: 2, "x": {_ "y": [_ 1]}, "k": 7}
        let b = hex("bf 01 02 6178 bf 6179 9f 01 ff ff 616b 07 ff");
        let mut d = Decoder::new(&b);
        let mut k = None;
        decode_map(&mut d, |key, d| {
            if key == "k" {
                k = Some(d.u8()?);
                return Ok(true);
            }
            Ok(false)
        })
        .expect("walk");
        assert_eq!(k, Some(7));
        assert_eq!(d.position(), b.len());
    }

    #[test]
    fn map_walk_fails_on_truncated_input() {
        for b in [
            hex("a2 6161 01"),
            hex("bf 6161 01"),
            hex("a1 6161"),
            hex("bf"),
        ] {
            let mut d = Decoder::new(&b);
            assert!(decode_map(&mut d, |_, _| Ok(false)).is_err());
        }
    }
}
