//! Replies as Zephyr builds them: header echoed with op + 1, indefinite-length maps,
//! `{"rc": N}` for protocol errors and `{"err": {"group", "rc"}}` for group errors.

use minicbor::Encoder;
use smp_proto::header::{self, Header, Op, Version};

/// What a command handler answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Success: the reply body, encoded by a typed message (a definite-length map,
    /// rewritten as Zephyr's indefinite-length form on the way out).
    Ok(Vec<u8>),
    /// A management (protocol-level) error: `{"rc": N}` in every version.
    Mgmt(u16),
    /// An error of the request's group: `{"err": {"group": G, "rc": N}}` for version 2
    /// requests, `{"rc": <the MGMT code it translates to>}` for version 1.
    Group(u16),
    /// A group error and, beside it, `"len": N` (the file system group's refusal of a
    /// chunk at the wrong offset carries the offset it expects so); version 1 requests
    /// get the translated `{"rc": N}` alone, as for [`Outcome::Group`].
    GroupLen(u16, u64),
}

/// MGMT_ERR codes the simulator answers with.
pub(crate) mod mgmt {
    pub(crate) const ENOMEM: u16 = 2;
    pub(crate) const EINVAL: u16 = 3;
    pub(crate) const ENOENT: u16 = 5;
    pub(crate) const EBADSTATE: u16 = 6;
    pub(crate) const EMSGSIZE: u16 = 7;
    pub(crate) const ENOTSUP: u16 = 8;
    pub(crate) const ECORRUPT: u16 = 9;
    pub(crate) const EBUSY: u16 = 10;
    pub(crate) const UNSUPPORTED_TOO_NEW: u16 = 13;
    pub(crate) const EUNKNOWN: u16 = 1;
}

/// Encodes a typed response as an [`Outcome::Ok`] body.
pub(crate) fn ok<T: minicbor::Encode<()>>(response: &T) -> Outcome {
    match minicbor::to_vec(response) {
        Ok(body) => Outcome::Ok(body),
        // Writing to a Vec cannot fail; answer like a device that ran out of room.
        Err(_) => Outcome::Mgmt(mgmt::ENOMEM),
    }
}

/// Builds the reply frame to `request` (header and body).
///
/// `translate` maps a group error to the MGMT code a version 1 client gets, as each
/// Zephyr group's translation function does.
pub(crate) fn frame(
    request: &Header,
    outcome: &Outcome,
    legacy_rc: bool,
    translate: impl Fn(u16, u16) -> u16,
) -> Vec<u8> {
    let mut body = Vec::with_capacity(64);
    match outcome {
        Outcome::Ok(definite) => {
            if indefinite(definite, &mut body, legacy_rc).is_err() {
                // Our own encoder produced it: unreachable in practice, but a device
                // answers something rather than nothing.
                body.clear();
                rc_map(&mut body, mgmt::EUNKNOWN);
            }
        }
        Outcome::Mgmt(rc) => rc_map(&mut body, *rc),
        Outcome::Group(rc) if request.version == Version::V2 => {
            group_error(&mut body, request.group, *rc, None);
        }
        Outcome::GroupLen(rc, len) if request.version == Version::V2 => {
            group_error(&mut body, request.group, *rc, Some(*len));
        }
        Outcome::Group(rc) | Outcome::GroupLen(rc, _) => {
            rc_map(&mut body, translate(request.group, *rc));
        }
    }
    reply_frame(request, &body)
}

/// A reply header for `request` carrying `body`, followed by the body.
pub(crate) fn reply_frame(request: &Header, body: &[u8]) -> Vec<u8> {
    let length = u16::try_from(body.len()).unwrap_or(u16::MAX);
    let header = Header {
        // Zephyr answers anything but a read with a write response.
        op: if request.op == Op::Read {
            Op::ReadRsp
        } else {
            Op::WriteRsp
        },
        // Zephyr answers with its own version when the request's is newer.
        version: request.version,
        flags: 0,
        length,
        ..*request
    };
    let mut out = Vec::with_capacity(header::SIZE + body.len());
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(body);
    out
}

/// `{"err": {"group": G, "rc": N}}`, with `"len": L` after it when given.
fn group_error(out: &mut Vec<u8>, group: u16, rc: u16, len: Option<u64>) {
    let mut e = Encoder::new(out);
    let mut written = e
        .begin_map()
        .and_then(|e| e.str("err"))
        .and_then(|e| e.begin_map())
        .and_then(|e| e.str("group"))
        .and_then(|e| e.u16(group))
        .and_then(|e| e.str("rc"))
        .and_then(|e| e.u16(rc))
        .and_then(|e| e.end());
    if let Some(len) = len {
        written = written.and_then(|e| e.str("len")).and_then(|e| e.u64(len));
    }
    let _ = written.and_then(|e| e.end());
}

fn rc_map(out: &mut Vec<u8>, rc: u16) {
    let mut e = Encoder::new(out);
    let _ = e
        .begin_map()
        .and_then(|e| e.str("rc"))
        .and_then(|e| e.u16(rc))
        .and_then(|e| e.end());
}

/// The CBOR item could not be rewritten (truncated or not well-formed).
#[derive(Debug)]
pub(crate) struct Malformed;

/// Rewrites one CBOR data item with every definite-length map and array made
/// indefinite-length (`bf ... ff`, `9f ... ff`), as Zephyr's zcbor encoder writes them.
/// With `legacy_rc`, `"rc": 0` is added at the end of the top-level map.
pub(crate) fn indefinite(
    input: &[u8],
    out: &mut Vec<u8>,
    legacy_rc: bool,
) -> Result<(), Malformed> {
    let mut pos = 0;
    rewrite(input, &mut pos, out, 0, legacy_rc)?;
    if pos == input.len() {
        Ok(())
    } else {
        Err(Malformed)
    }
}

const MAX_DEPTH: usize = 16;

fn rewrite(
    input: &[u8],
    pos: &mut usize,
    out: &mut Vec<u8>,
    depth: usize,
    legacy_rc: bool,
) -> Result<(), Malformed> {
    if depth > MAX_DEPTH {
        return Err(Malformed);
    }
    let start = *pos;
    let initial = *input.get(start).ok_or(Malformed)?;
    let (major, info) = (initial >> 5, initial & 0x1f);
    let (arg, head_len) = match info {
        0..=23 => (u64::from(info), 1),
        24..=27 => {
            let n = 1usize << (info - 24);
            let bytes = input.get(start + 1..start + 1 + n).ok_or(Malformed)?;
            (
                bytes.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b)),
                1 + n,
            )
        }
        // Indefinite lengths never come out of our encoder; nothing else is valid.
        _ => return Err(Malformed),
    };
    *pos = start + head_len;
    match major {
        // Integers, simple values and floats: the head is the whole item.
        0 | 1 | 7 => out.extend_from_slice(&input[start..*pos]),
        // Byte and text strings: head and content, unchanged.
        2 | 3 => {
            let end = usize::try_from(arg)
                .ok()
                .and_then(|n| pos.checked_add(n))
                .filter(|end| *end <= input.len())
                .ok_or(Malformed)?;
            out.extend_from_slice(&input[start..end]);
            *pos = end;
        }
        4 => {
            out.push(0x9f);
            for _ in 0..arg {
                rewrite(input, pos, out, depth + 1, false)?;
            }
            out.push(0xff);
        }
        5 => {
            out.push(0xbf);
            for _ in 0..arg.saturating_mul(2) {
                rewrite(input, pos, out, depth + 1, false)?;
            }
            if legacy_rc && depth == 0 {
                out.extend_from_slice(b"\x62rc\x00");
            }
            out.push(0xff);
        }
        // Tags: the head, then the tagged item.
        _ => {
            out.extend_from_slice(&input[start..*pos]);
            rewrite(input, pos, out, depth + 1, false)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(input: &[u8], legacy_rc: bool) -> Vec<u8> {
        let mut out = Vec::new();
        indefinite(input, &mut out, legacy_rc).expect("well-formed");
        out
    }

    #[test]
    fn maps_and_arrays_become_indefinite() {
        // {"r": "hi"} → Zephyr's echo reply body.
        assert_eq!(rewritten(b"\xa1\x61r\x62hi", false), b"\xbf\x61r\x62hi\xff");
        // {"a": [1, {"b": h'00'}]}
        assert_eq!(
            rewritten(b"\xa1\x61a\x82\x01\xa1\x61b\x41\x00", false),
            b"\xbf\x61a\x9f\x01\xbf\x61b\x41\x00\xff\xff\xff"
        );
        // 1000 (two-byte argument) and a 24-byte string keep their heads.
        let long = [&b"\xa1\x61n\x19\x03\xe8\x61s\x78\x18"[..], &[b'x'; 24]].concat();
        let mut long = long;
        long[0] = 0xa2;
        let out = rewritten(&long, false);
        assert_eq!(out[0], 0xbf);
        assert_eq!(&out[1..out.len() - 1], &long[1..]);
    }

    #[test]
    fn legacy_rc_goes_into_the_top_level_map_only() {
        assert_eq!(
            rewritten(b"\xa1\x61a\xa0", true),
            b"\xbf\x61a\xbf\xff\x62rc\x00\xff"
        );
    }

    #[test]
    fn malformed_input_is_refused() {
        for bad in [
            &b""[..],
            b"\xa1\x61r",
            b"\x62h",
            b"\x19\x01",
            b"\xbf\xff",
            b"\xa0\x00",
        ] {
            let mut out = Vec::new();
            assert!(indefinite(bad, &mut out, false).is_err(), "{bad:02x?}");
        }
    }

    #[test]
    fn errors_by_version() {
        let v2 = Header::new(Op::Write, 3, 0, 0).with_sequence(9);
        let v1 = v2.with_version(Version::V1);
        let translate = |_group, _rc| 5;
        let body = |f: Vec<u8>| f[header::SIZE..].to_vec();
        assert_eq!(
            body(frame(&v2, &Outcome::Group(3), false, translate)),
            b"\xbf\x63err\xbf\x65group\x03\x62rc\x03\xff\xff"
        );
        assert_eq!(
            body(frame(&v1, &Outcome::Group(3), false, translate)),
            b"\xbf\x62rc\x05\xff"
        );
        assert_eq!(
            body(frame(&v2, &Outcome::Mgmt(8), false, translate)),
            b"\xbf\x62rc\x08\xff"
        );
        let reply = frame(&v2, &Outcome::Ok(b"\xa0".to_vec()), false, translate);
        // WRITE_RSP, v2, length 2, group 3, seq 9, command 0.
        assert_eq!(reply, b"\x0b\x00\x00\x02\x00\x03\x09\x00\xbf\xff");
    }
}
