//! Test helpers shared by the message modules: hex, test data and the round-trip checks.

use std::string::String;
use std::vec::Vec;

use std::fmt::Debug;

use minicbor::{CborLen, Decode, Encode};

use super::Value;

/// Bytes from hex, whitespace ignored.
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// Deterministic test bytes; `scripts/gen_vectors.py` has the same function.
pub(crate) fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

/// An unknown entry whose value nests indefinite containers:
/// `"zz": {_ "a": [_ 1, (_ h'00')], "b": {}}`.
const UNKNOWN_ENTRY: &str = "627a7a bf 6161 9f 01 5f 4100 ff ff 6162 a0 ff";
/// `"rc": 0`.
const RC_ZERO: &str = "627263 00";

/// Encodes `v` the way Zephyr's zcbor may: every map and array of indefinite length
/// (map entries in reverse order), every string split into indefinite chunks and every
/// integer in its widest (8-byte) form.
fn zephyrize(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Int(n) => {
            let (major, arg) = if *n < 0 { (0x3b, -1 - *n) } else { (0x1b, *n) };
            out.push(major);
            out.extend_from_slice(&u64::try_from(arg).expect("CBOR int").to_be_bytes());
        }
        Value::Text(s) => {
            out.push(0x7f);
            let mut mid = s.len() / 2;
            while !s.is_char_boundary(mid) {
                mid += 1;
            }
            for part in [&s[..mid], &s[mid..]] {
                out.extend(minicbor::to_vec(part).expect("encodes"));
            }
            out.push(0xff);
        }
        Value::Bytes(b) => {
            out.push(0x5f);
            let (a, z) = b.split_at(b.len() / 2);
            for part in [a, z] {
                let mut e = minicbor::Encoder::new(Vec::new());
                e.bytes(part).expect("encodes");
                out.extend(e.into_writer());
            }
            out.push(0xff);
        }
        Value::Array(items) => {
            out.push(0x9f);
            for item in items {
                zephyrize(item, out);
            }
            out.push(0xff);
        }
        Value::Map(entries) => {
            out.push(0xbf);
            for (k, v) in entries.iter().rev() {
                zephyrize(k, out);
                zephyrize(v, out);
            }
            out.push(0xff);
        }
        other => out.extend(minicbor::to_vec(other).expect("encodes")),
    }
}

fn decode<T>(bytes: &[u8], what: &str) -> T
where
    T: for<'b> Decode<'b, ()>,
{
    let mut d = minicbor::Decoder::new(bytes);
    let v = d
        .decode()
        .unwrap_or_else(|e| panic!("{what}: {e} in {bytes:02x?}"));
    assert_eq!(d.position(), bytes.len(), "{what}: trailing bytes");
    v
}

/// Round trip of one message: encode, `CborLen`, decode; then decoding of the same
/// content from an indefinite, reordered, widened, chunked encoding; with `"rc": 0`
/// and unknown keys (definite and indefinite outer map) when `extra_keys`; and with each
/// top-level entry removed (either a decode error, or the field was optional).
pub(crate) fn check_with<T>(v: &T, extra_keys: bool) -> Vec<u8>
where
    T: Encode<()> + CborLen<()> + for<'b> Decode<'b, ()> + PartialEq + Debug,
{
    let bytes = minicbor::to_vec(v).expect("encodes");
    assert_eq!(minicbor::len(v), bytes.len(), "CborLen of {v:?}");
    assert_eq!(&decode::<T>(&bytes, "round trip"), v);

    let value: Value = decode(&bytes, "as a value");
    let mut z = Vec::new();
    zephyrize(&value, &mut z);
    assert_eq!(&decode::<T>(&z, "zephyrized"), v, "from {z:02x?}");

    let Value::Map(entries) = &value else {
        panic!("not a map: {value:?}")
    };
    if extra_keys {
        // Definite outer map: "rc": 0 first, the unknown entry in the middle.
        let mut e = minicbor::Encoder::new(Vec::new());
        e.map(entries.len() as u64 + 2).expect("encodes");
        let mut b = e.into_writer();
        b.extend(hex(RC_ZERO));
        for (i, (k, val)) in entries.iter().enumerate() {
            if i == entries.len() / 2 {
                b.extend(hex(UNKNOWN_ENTRY));
            }
            b.extend(minicbor::to_vec(k).expect("encodes"));
            b.extend(minicbor::to_vec(val).expect("encodes"));
        }
        if entries.is_empty() {
            b.extend(hex(UNKNOWN_ENTRY));
        }
        assert_eq!(&decode::<T>(&b, "with extra keys"), v);
        // Indefinite everywhere, extra keys last.
        let mut z = z.clone();
        z.pop();
        z.extend(hex(UNKNOWN_ENTRY));
        z.extend(hex(RC_ZERO));
        z.push(0xff);
        assert_eq!(&decode::<T>(&z, "zephyrized with extra keys"), v);
    }

    // Each entry removed: a required field makes it an error, an optional one decodes
    // to the same message without it. Never a panic.
    for skip in 0..entries.len() {
        let fewer = Value::Map(
            entries
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, e)| e.clone())
                .collect(),
        );
        let fewer_bytes = minicbor::to_vec(&fewer).expect("encodes");
        if let Ok(decoded) = minicbor::decode::<T>(&fewer_bytes) {
            assert_eq!(
                minicbor::to_vec(&decoded).expect("encodes"),
                fewer_bytes,
                "entry {:?} was dropped and yet decoded to {decoded:?}",
                entries[skip].0
            );
        }
    }

    // Every truncation fails cleanly.
    for cut in 0..bytes.len() {
        assert!(
            minicbor::decode::<T>(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    bytes
}

/// [`check_with`] with extra keys.
pub(crate) fn check<T>(v: &T) -> Vec<u8>
where
    T: Encode<()> + CborLen<()> + for<'b> Decode<'b, ()> + PartialEq + Debug,
{
    check_with(v, true)
}

/// Asserts that decoding `hex` as `T` fails.
pub(crate) fn check_rejects<T>(hex_str: &str)
where
    T: for<'b> Decode<'b, ()> + Debug,
{
    let b = hex(hex_str);
    let r = minicbor::decode::<T>(&b);
    assert!(r.is_err(), "{hex_str} decoded to {r:?}");
}
