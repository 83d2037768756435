//! The private CBOR layer under [`crate::messages`]: text-keyed maps with minicbor.
//!
//! minicbor's derive only knows integer map keys; SMP maps are keyed by text. This
//! module provides the pieces the [`smp_map!`] macro builds on:
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

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;

use minicbor::data::Type;
use minicbor::decode::{self, Decoder};
use minicbor::encode::{self, Encoder, Write};

use crate::{DeviceError, ErrorScope};

/// Encoder result with the writer's error.
pub(crate) type EncResult<W> = Result<(), encode::Error<<W as Write>::Error>>;

/// How a field value is written into a map, and how long that is.
pub(crate) trait FieldEncode {
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
pub(crate) trait FieldDecode<'b>: Sized {
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
pub(crate) trait ArrayElem {}

// ---------------------------------------------------------------------------------------
// Lengths and canonical order

/// Length of a CBOR head (major type + argument) for argument `n`.
pub(crate) const fn head_len(n: u64) -> usize {
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
pub(crate) const fn int_len(n: i64) -> usize {
    if n < 0 {
        // -1 - n cannot overflow for negative n.
        head_len((-1 - n) as u64)
    } else {
        head_len(n as u64)
    }
}

/// Encoded length of a definite text string.
pub(crate) const fn str_len(s: &str) -> usize {
    head_len(s.len() as u64) + s.len()
}

/// Encoded length of a definite byte string.
pub(crate) const fn bytes_len(b: &[u8]) -> usize {
    head_len(b.len() as u64) + b.len()
}

/// The canonical order of two text keys: shorter first, then bytewise.
///
/// For text keys this equals cbor2's `canonical=True` order (sorting by encoded key),
/// because a longer string never has a shorter encoding.
pub(crate) fn canonical_cmp(a: &str, b: &str) -> Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// True when `keys` are strictly increasing in canonical order (checked at compile time
/// by [`smp_map!`]).
pub(crate) const fn is_canonical(keys: &[&str]) -> bool {
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
pub(crate) fn text<'b>(d: &mut Decoder<'b>) -> Result<Cow<'b, str>, decode::Error> {
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
pub(crate) fn bytes<'b>(d: &mut Decoder<'b>) -> Result<Cow<'b, [u8]>, decode::Error> {
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
pub(crate) fn int(d: &mut Decoder<'_>) -> Result<i64, decode::Error> {
    let p = d.position();
    let n = d.int()?;
    i64::try_from(n).map_err(|_| decode::Error::message("integer out of range").at(p))
}

/// True while a map or array of `len` items (`None`: indefinite) has another item after
/// the `seen` already read; consumes the break that ends an indefinite one.
pub(crate) fn has_next(
    d: &mut Decoder<'_>,
    len: Option<u64>,
    seen: u64,
) -> Result<bool, decode::Error> {
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
pub(crate) fn decode_map<'b, F>(d: &mut Decoder<'b>, mut on_entry: F) -> Result<(), decode::Error>
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
pub(crate) fn decode_array<'b, F>(d: &mut Decoder<'b>, mut on_item: F) -> Result<(), decode::Error>
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

/// The error for a required field that is missing.
pub(crate) fn missing(what: &'static str) -> decode::Error {
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
/// `Decode` and `CborLen` impls (for any context type) and the private field traits
/// that let it nest inside other maps and arrays.
///
/// ```text
/// smp_map! {
///     /// Doc of the struct.
///     #[derive(Debug, Clone, PartialEq, Eq)]
///     pub struct UploadRequest<'a> {
///         /// Doc of the field.
///         "off" => pub off: u64,
///         "data" => pub data: Cow<'a, [u8]>,
///         "image" => pub image: Option<u32>,
///     }
/// }
/// ```
///
/// Each field names its wire key; fields must be declared in canonical key order
/// (shorter first, then bytewise), which a compile-time assertion checks, so `encode`
/// writes them in declaration order. `Option` fields are omitted when `None` and may be
/// missing on decode; any other missing field is a decode error. Decoding accepts
/// definite and indefinite maps, any key order and unknown keys. A unit struct
/// (`pub struct X;`) is the empty map and decodes from any map.
macro_rules! smp_map {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident;
    ) => {
        $(#[$meta])*
        $vis struct $name;

        impl<C> ::minicbor::Encode<C> for $name {
            fn encode<W: ::minicbor::encode::Write>(
                &self,
                e: &mut ::minicbor::Encoder<W>,
                _: &mut C,
            ) -> ::core::result::Result<(), ::minicbor::encode::Error<W::Error>> {
                e.map(0)?;
                Ok(())
            }
        }

        impl<'b, C> ::minicbor::Decode<'b, C> for $name {
            fn decode(
                d: &mut ::minicbor::Decoder<'b>,
                _: &mut C,
            ) -> ::core::result::Result<Self, ::minicbor::decode::Error> {
                $crate::cbor::decode_map(d, |_, _| Ok(false))?;
                Ok(Self)
            }
        }

        impl<C> ::minicbor::CborLen<C> for $name {
            fn cbor_len(&self, _: &mut C) -> usize {
                1
            }
        }

        $crate::cbor::smp_map!(@field $name);
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
                $crate::cbor::is_canonical(KEYS),
                concat!(
                    "fields of `", stringify!($name),
                    "` must be declared in canonical key order (shorter first, then bytewise)"
                )
            );
        };

        impl<$($lt,)? C> ::minicbor::Encode<C> for $name $(<$lt>)? {
            fn encode<W: ::minicbor::encode::Write>(
                &self,
                e: &mut ::minicbor::Encoder<W>,
                _: &mut C,
            ) -> ::core::result::Result<(), ::minicbor::encode::Error<W::Error>> {
                use $crate::cbor::FieldEncode as _;
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

        impl<'b, $($lt,)? C> ::minicbor::Decode<'b, C> for $name $(<$lt>)? {
            fn decode(
                d: &mut ::minicbor::Decoder<'b>,
                _: &mut C,
            ) -> ::core::result::Result<Self, ::minicbor::decode::Error> {
                $(let mut $field: ::core::option::Option<$ty> = None;)*
                $crate::cbor::decode_map(d, |key, d| {
                    match key {
                        $(
                            $wire => {
                                $field = Some(
                                    <$ty as $crate::cbor::FieldDecode<'b>>::decode_field(d)?,
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
                            .or_else(<$ty as $crate::cbor::FieldDecode<'b>>::absent)
                        {
                            Some(v) => v,
                            None => {
                                return Err($crate::cbor::missing(concat!(
                                    stringify!($name), ": missing required field `", $wire, "`"
                                )))
                            }
                        },
                    )*
                })
            }
        }

        impl<$($lt,)? C> ::minicbor::CborLen<C> for $name $(<$lt>)? {
            fn cbor_len(&self, _: &mut C) -> usize {
                use $crate::cbor::FieldEncode as _;
                let mut present = 0u64;
                let mut len = 0usize;
                $(
                    if self.$field.is_present() {
                        present += 1;
                        len += $crate::cbor::str_len($wire) + self.$field.field_len();
                    }
                )*
                $crate::cbor::head_len(present) + len
            }
        }

        $crate::cbor::smp_map!(@field $name $(<$lt>)?);
    };

    // Lets the type nest as a field value or array element of another map.
    (@field $name:ident $(<$lt:lifetime>)?) => {
        impl$(<$lt>)? $crate::cbor::FieldEncode for $name $(<$lt>)? {
            fn encode_field<W: ::minicbor::encode::Write>(
                &self,
                e: &mut ::minicbor::Encoder<W>,
            ) -> $crate::cbor::EncResult<W> {
                ::minicbor::Encode::<()>::encode(self, e, &mut ())
            }
            fn field_len(&self) -> usize {
                ::minicbor::CborLen::<()>::cbor_len(self, &mut ())
            }
        }

        impl<'b, $($lt)?> $crate::cbor::FieldDecode<'b> for $name $(<$lt>)? {
            fn decode_field(
                d: &mut ::minicbor::Decoder<'b>,
            ) -> ::core::result::Result<Self, ::minicbor::decode::Error> {
                ::minicbor::Decode::<'b, ()>::decode(d, &mut ())
            }
        }

        impl$(<$lt>)? $crate::cbor::ArrayElem for $name $(<$lt>)? {}
    };
}
pub(crate) use smp_map;

// ---------------------------------------------------------------------------------------
// Error detection

/// Looks for a device error in a reply payload.
///
/// Reads the top-level map (definite or indefinite) for `rc` (a v1 / management code),
/// `rsn` (a reason string) and `err: {group, rc}` (a v2 group code) and ignores every
/// other entry. A code of 0 is success; `Ok(None)` means the reply is not an error.
/// When both are present and non-zero, `err` (the more specific) wins. A management
/// code is attributed to `request_group`. Codes are kept as numbers, known or not.
/// With `rc_may_be_result` (see [`Request::RC_MAY_BE_RESULT`](crate::Request)), an `rc`
/// beside other fields belongs to the response.
pub(crate) fn reply_error(
    payload: &[u8],
    request_group: u16,
    rc_may_be_result: bool,
) -> Result<Option<DeviceError>, decode::Error> {
    let mut d = Decoder::new(payload);
    let mut rc: Option<i64> = None;
    let mut rsn: Option<String> = None;
    let mut err: Option<(Option<u16>, Option<i64>)> = None;
    let mut other_fields = false;
    decode_map(&mut d, |key, d| match key {
        "rc" if is_int(d)? => {
            rc = Some(saturating_int(d)?);
            Ok(true)
        }
        "rsn" if is_text(d)? => {
            rsn = Some(text(d)?.into_owned());
            Ok(true)
        }
        "err" if matches!(d.datatype()?, Type::Map | Type::MapIndef) => {
            let mut group = None;
            let mut code = None;
            decode_map(d, |key, d| match key {
                "group" if is_int(d)? => {
                    group = u16::try_from(saturating_int(d)?).ok();
                    Ok(true)
                }
                "rc" if is_int(d)? => {
                    code = Some(saturating_int(d)?);
                    Ok(true)
                }
                _ => Ok(false),
            })?;
            err = Some((group, code));
            Ok(true)
        }
        _ => {
            other_fields = true;
            Ok(false)
        }
    })?;
    if let Some((group, Some(code))) = err {
        if code != 0 {
            return Ok(Some(DeviceError {
                group: group.unwrap_or(request_group),
                rc: code,
                scope: ErrorScope::Group,
                reason: rsn,
            }));
        }
    }
    Ok(match rc {
        Some(code) if code != 0 && !(rc_may_be_result && other_fields) => Some(DeviceError {
            group: request_group,
            rc: code,
            scope: ErrorScope::Management,
            reason: rsn,
        }),
        _ => None,
    })
}

fn is_int(d: &Decoder<'_>) -> Result<bool, decode::Error> {
    Ok(is_int_type(d.datatype()?))
}

/// True for every CBOR integer type minicbor distinguishes.
pub(crate) fn is_int_type(t: Type) -> bool {
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

fn is_text(d: &Decoder<'_>) -> Result<bool, decode::Error> {
    Ok(matches!(d.datatype()?, Type::String | Type::StringIndef))
}

/// Any CBOR integer, clamped to the `i64` range (an error code is never that large).
fn saturating_int(d: &mut Decoder<'_>) -> Result<i64, decode::Error> {
    let n = i128::from(d.int()?);
    Ok(n.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

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

    #[test]
    fn reply_error_management_code_from_indefinite_map() {
        let e = reply_error(&hex("bf 627263 08 ff"), 0, false)
            .expect("decodes")
            .expect("is an error");
        assert_eq!(e.scope, ErrorScope::Management);
        assert_eq!((e.group, e.rc, e.reason.as_deref()), (0, 8, None));
        assert!(e.is_not_supported());
    }

    #[test]
    fn reply_error_group_code() {
        // {"err": {"group": 1, "rc": 30}}
        let e = reply_error(&hex("a1 63657272 a2 6567726f7570 01 627263 181e"), 1, false)
            .expect("decodes")
            .expect("is an error");
        assert_eq!(e.scope, ErrorScope::Group);
        assert_eq!((e.group, e.rc), (1, 30));
        assert_eq!(e.name(), Some("INVALID_IMAGE_TOO_LARGE"));
    }

    #[test]
    fn reply_error_success_cases() {
        // {"rc": 0, "r": "hi"}
        assert_eq!(
            reply_error(&hex("a2 627263 00 6172 626869"), 0, false).expect("decodes"),
            None
        );
        // {"r": "hi"} indefinite
        assert_eq!(
            reply_error(&hex("bf6172626869ff"), 0, false).expect("decodes"),
            None
        );
        // {"err": {"group": 8, "rc": 0}}
        assert_eq!(
            reply_error(&hex("a1 63657272 a2 6567726f7570 08 627263 00"), 8, false)
                .expect("decodes"),
            None
        );
        // {} and a non-integer rc (ignored, not a failure)
        assert_eq!(reply_error(&hex("a0"), 0, false).expect("decodes"), None);
        assert_eq!(
            reply_error(&hex("a1 627263 6178"), 0, false).expect("decodes"),
            None
        );
    }

    #[test]
    fn legacy_shell_exit_codes_are_not_device_errors() {
        // {"o": "x", "rc": 1} from an older Zephyr shell: the command's exit code.
        let legacy = hex("a2 616f 6178 627263 01");
        assert_eq!(reply_error(&legacy, 9, true).expect("decodes"), None);
        // For a request without the flag it is an error, and so is an `rc` alone.
        assert!(reply_error(&legacy, 9, false).expect("decodes").is_some());
        assert!(
            reply_error(&hex("a1 627263 08"), 9, true)
                .expect("decodes")
                .is_some()
        );
    }

    #[test]
    fn reply_error_keeps_reason_and_unknown_codes() {
        // {"rsn": "busy", "rc": 300}
        let e = reply_error(&hex("a2 6372736e 6462757379 627263 19012c"), 70, false)
            .expect("decodes")
            .expect("is an error");
        assert_eq!(e.group, 70);
        assert_eq!(e.rc, 300);
        assert_eq!(e.reason.as_deref(), Some("busy"));
        assert_eq!(e.name(), None);
        // {"err": {"rc": -5}} without a group: attributed to the request's group.
        let e = reply_error(&hex("a1 63657272 a1 627263 24"), 9, false)
            .expect("decodes")
            .expect("is an error");
        assert_eq!((e.group, e.rc, e.scope), (9, -5, ErrorScope::Group));
    }

    #[test]
    fn reply_error_rejects_non_maps() {
        assert!(reply_error(&hex("80"), 0, false).is_err());
        assert!(reply_error(&[], 0, false).is_err());
    }
}
