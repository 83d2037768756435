//! The debug and trace lines of every request and reply (what `smp -vv` and `-vvv`
//! show): one line per frame sent or received, with the command's name, the sequence
//! number, the length and, for a reply, the round-trip time; at trace level also the
//! CBOR payload in diagnostic notation (RFC 8949, section 8) and the whole frame in hex.
//!
//! Nothing is formatted unless the event is enabled: the values are `Display` wrappers
//! that a subscriber formats only when it records the event.

use std::fmt::{self, Write as _};
use std::time::Duration;

use smp_proto::messages::Value;
use smp_transport::header::{self, Header};

use crate::error::CommandName;

/// Logs a request frame as it goes out (`attempt` counts from 0).
pub(crate) fn sent(request: &Header, frame: &[u8], attempt: u32) {
    let name = CommandName(request.group, request.command);
    let (seq, len) = (request.sequence, frame.len());
    if tracing::enabled!(tracing::Level::TRACE) {
        tracing::trace!(
            seq,
            len,
            attempt,
            cbor = %Diagnostic(payload(frame)),
            frame = %Hex(frame),
            "request {name}"
        );
    } else {
        tracing::debug!(seq, len, attempt, "request {name}");
    }
}

/// Logs the reply `frame` to `request`, `rtt` after the attempt it answers went out.
pub(crate) fn received(request: &Header, frame: &[u8], rtt: Duration) {
    let name = CommandName(request.group, request.command);
    let (seq, len, rtt) = (request.sequence, frame.len(), Millis(rtt));
    if tracing::enabled!(tracing::Level::TRACE) {
        tracing::trace!(
            seq,
            len,
            %rtt,
            cbor = %Diagnostic(payload(frame)),
            frame = %Hex(frame),
            "reply {name}"
        );
    } else {
        tracing::debug!(seq, len, %rtt, "reply {name}");
    }
}

fn payload(frame: &[u8]) -> &[u8] {
    frame.get(header::SIZE..).unwrap_or_default()
}

/// A duration in milliseconds, to a hundredth: `0.42 ms`.
struct Millis(Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2} ms", self.0.as_secs_f64() * 1000.0)
    }
}

/// Bytes as lower-case hex.
struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// A CBOR payload in diagnostic notation, as decoded: `{"d": "hi", "n": h'01ff'}`
/// (indefinite lengths are not marked); bytes that do not decode print as hex with the
/// decoder's complaint.
pub(crate) struct Diagnostic<'a>(pub(crate) &'a [u8]);

impl fmt::Display for Diagnostic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(empty)");
        }
        match minicbor::decode::<Value>(self.0) {
            Ok(value) => write_value(f, &value),
            Err(err) => write!(f, "h'{}' (not CBOR: {err})", Hex(self.0)),
        }
    }
}

fn write_value(f: &mut fmt::Formatter<'_>, value: &Value) -> fmt::Result {
    match value {
        Value::Null => f.write_str("null"),
        Value::Undefined => f.write_str("undefined"),
        Value::Bool(b) => write!(f, "{b}"),
        Value::Int(n) => write!(f, "{n}"),
        Value::Float(x) if x.is_nan() => f.write_str("NaN"),
        Value::Float(x) if x.is_infinite() => {
            f.write_str(if *x > 0.0 { "Infinity" } else { "-Infinity" })
        }
        // `{:?}` keeps the point of a whole number: 1.0, not 1.
        Value::Float(x) => write!(f, "{x:?}"),
        Value::Bytes(b) => write!(f, "h'{}'", Hex(b)),
        Value::Text(s) => write_text(f, s),
        Value::Array(items) => {
            f.write_char('[')?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write_value(f, item)?;
            }
            f.write_char(']')
        }
        Value::Map(entries) => {
            f.write_char('{')?;
            for (i, (key, value)) in entries.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write_value(f, key)?;
                f.write_str(": ")?;
                write_value(f, value)?;
            }
            f.write_char('}')
        }
        Value::Tag(tag, inner) => {
            write!(f, "{tag}(")?;
            write_value(f, inner)?;
            f.write_char(')')
        }
        Value::Simple(n) => write!(f, "simple({n})"),
    }
}

/// A text string as JSON writes it: quotes, backslashes and control characters escaped.
fn write_text(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c.is_control() => write!(f, "\\u{:04x}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostic_notation() {
        // {_ "r": "hi\n", "n": -3, "b": h'01ff', "a": [true, null, 1.5, 1.0], 1: 2(0),
        //  "u": undefined, "s": simple(32)}, as Zephyr writes maps: indefinite.
        let cbor = [
            0xbf, 0x61, b'r', 0x63, b'h', b'i', b'\n', 0x61, b'n', 0x22, 0x61, b'b', 0x42, 0x01,
            0xff, 0x61, b'a', 0x84, 0xf5, 0xf6, 0xf9, 0x3e, 0x00, 0xf9, 0x3c, 0x00, 0x01, 0xc2,
            0x00, 0x61, b'u', 0xf7, 0x61, b's', 0xf8, 0x20, 0xff,
        ];
        assert_eq!(
            Diagnostic(&cbor).to_string(),
            r#"{"r": "hi\n", "n": -3, "b": h'01ff', "a": [true, null, 1.5, 1.0], 1: 2(0), "u": undefined, "s": simple(32)}"#
        );
        assert_eq!(Diagnostic(&[]).to_string(), "(empty)");
        let bad = Diagnostic(&[0xa1, 0x61]).to_string();
        assert!(bad.starts_with("h'a161' (not CBOR: "), "{bad}");
        assert_eq!(Hex(&[0x0a, 0xff]).to_string(), "0aff");
        assert_eq!(Millis(Duration::from_micros(412)).to_string(), "0.41 ms");
    }
}
