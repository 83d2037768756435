//! What `smp` prints: a command's answer as text or JSON, errors, and the helpers that
//! format values (hex, sizes, rates, tables) the same way everywhere.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

use serde_json::{Value, json};
use smp_client::messages::Value as Cbor;

use crate::error::ErrorReport;

/// The answer of a command that succeeded, in both renderings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outcome {
    /// The document `--json` prints.
    pub(crate) json: Value,
    /// The text printed otherwise (a trailing newline is added when missing).
    pub(crate) human: String,
    /// The exit status: 0, or what a command that answers in full but did not wholly
    /// succeed exits with (an upgrade of a fleet in which a device failed).
    pub(crate) exit_code: u8,
}

impl Outcome {
    /// An answer with both renderings.
    pub(crate) fn new(json: Value, human: impl Into<String>) -> Self {
        Self {
            json,
            human: human.into(),
            exit_code: 0,
        }
    }

    /// The same answer, exiting with `exit_code`.
    pub(crate) fn with_exit_code(mut self, exit_code: u8) -> Self {
        self.exit_code = exit_code;
        self
    }
}

/// Where and how answers are printed: stdout, as text or as one JSON document.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    json: bool,
    /// Stdout carries data (`fs download REMOTE -`): answers go to stderr.
    to_stderr: bool,
}

impl Output {
    /// Prints JSON when `json` is set, text otherwise.
    pub(crate) fn new(json: bool) -> Self {
        Self {
            json,
            to_stderr: false,
        }
    }

    /// Prints answers, notes and JSON documents on stderr instead of stdout, which
    /// carries the command's data.
    pub(crate) fn answers_to_stderr(mut self, to_stderr: bool) -> Self {
        self.to_stderr = to_stderr;
        self
    }

    /// Prints `text` where answers go.
    fn print(&self, text: &str) {
        if self.to_stderr {
            // Nothing better to do if stderr is gone.
            let _ = std::io::stderr().write_all(text.as_bytes());
        } else {
            print_stdout(text);
        }
    }

    /// Prints a line of text right away, before the command's answer; nothing in JSON
    /// mode, where stdout holds the one document only.
    pub(crate) fn note(&self, line: &str) {
        if !self.json {
            self.print(&format!("{line}\n"));
        }
    }

    /// Prints a line of progress on stderr, in text mode only.
    pub(crate) fn note_stderr(&self, line: &str) {
        if !self.json {
            let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
        }
    }

    /// Prints a command's answer on stdout.
    pub(crate) fn answer(&self, outcome: &Outcome) {
        if self.json {
            self.print(&format!("{}\n", outcome.json));
        } else if !outcome.human.is_empty() {
            let mut text = outcome.human.clone();
            if !text.ends_with('\n') {
                text.push('\n');
            }
            self.print(&text);
        }
    }

    /// Prints an error: a JSON document on stdout in JSON mode, a line on stderr otherwise.
    pub(crate) fn error(&self, report: &ErrorReport) {
        if self.json {
            self.print(&format!("{}\n", report.to_json()));
        } else {
            let mut line = match &report.command {
                Some(command) => format!("{command}: {}\n", report.message),
                None => format!("{}\n", report.message),
            };
            if let Some(hint) = &report.hint {
                line.push_str(&format!("hint: {hint}\n"));
            }
            // Nothing better to do if stderr is gone.
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }
}

/// Writes to stdout, ignoring a closed pipe (`smp ... | head`) rather than panicking.
fn print_stdout(text: &str) {
    write_stdout(text.as_bytes());
}

/// Writes `bytes` to stdout and flushes. A reader that went away (`smp ... | head -1`)
/// is not an error: the rest is dropped quietly, as Unix tools do, and the command ends
/// with its own exit status.
pub(crate) fn write_stdout(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    // Any other error (a full disk behind a redirection) has nowhere better to go either.
    let _ = out.write_all(bytes).and_then(|()| out.flush());
}

/// Writes a command's data (`fs download REMOTE -`) to stdout. A reader that went away
/// is not an error, as for answers; any other failure is.
pub(crate) fn write_data(bytes: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Bytes from hex digits (either case; an optional `0x` prefix; `:`, `-`, `_` and spaces
/// between bytes are ignored), for hashes and `settings set --hex`.
pub(crate) fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let trimmed = s.trim();
    let digits = trimmed
        .strip_prefix("0x")
        .or_else(|| trimmed.strip_prefix("0X"))
        .unwrap_or(trimmed);
    let digits: Vec<u8> = digits
        .bytes()
        .filter(|c| !matches!(c, b':' | b'-' | b'_' | b' '))
        .collect();
    if digits.is_empty() {
        return Err("expected hex digits".to_owned());
    }
    if digits.len() % 2 != 0 {
        return Err(format!(
            "expected an even number of hex digits, got {}",
            digits.len()
        ));
    }
    digits
        .chunks(2)
        .map(|pair| {
            let nibble = |c: u8| match c {
                b'0'..=b'9' => Ok(c - b'0'),
                b'a'..=b'f' => Ok(c - b'a' + 10),
                b'A'..=b'F' => Ok(c - b'A' + 10),
                _ => Err(format!("`{}` is not a hex digit", char::from(c))),
            };
            Ok((nibble(pair[0])? << 4) | nibble(pair[1])?)
        })
        .collect()
}

/// `hex` of at most `max` bytes, with the total when cut: for long TLVs in text output.
pub(crate) fn hex_abbrev(bytes: &[u8], max: usize) -> String {
    if bytes.len() <= max {
        hex(bytes)
    } else {
        format!("{}... ({} bytes)", hex(&bytes[..max]), bytes.len())
    }
}

/// A byte count for people: `512 B`, `1.5 KiB (1536 B)`.
pub(crate) fn size(bytes: u64) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else {
        format!("{} ({bytes} B)", indicatif::HumanBytes(bytes))
    }
}

/// Bytes per second, rounded down; 0 for an instant transfer of nothing.
pub(crate) fn bytes_per_second(bytes: u64, elapsed: Duration) -> u64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        // Saturating: f64 to u64 conversion clamps.
        (bytes as f64 / secs) as u64
    } else {
        0
    }
}

/// Seconds with millisecond precision, for JSON.
pub(crate) fn seconds(elapsed: Duration) -> f64 {
    (elapsed.as_secs_f64() * 1000.0).round() / 1000.0
}

/// The summary line of a transfer: `uploaded 419.5 KiB (429552 B) in 5.96 s, 70.4 KiB/s`.
pub(crate) fn transfer_summary(verb: &str, bytes: u64, elapsed: Duration) -> String {
    format!(
        "{verb} {} in {:.2} s, {}/s",
        size(bytes),
        elapsed.as_secs_f64(),
        indicatif::HumanBytes(bytes_per_second(bytes, elapsed))
    )
}

/// A text table: a header row and left-aligned columns two spaces apart, no trailing
/// spaces.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let columns = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().take(columns).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let _ = write!(line, "{cell:<width$}", width = widths[i]);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// An optional number for a table cell: `-` when absent.
pub(crate) fn cell<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// `yes` or `no`.
pub(crate) fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

/// A CBOR value from the device as JSON: byte strings as hex, integers beyond JSON's
/// 64-bit range as decimal strings, map keys as text.
pub(crate) fn cbor_to_json(value: &Cbor) -> Value {
    match value {
        Cbor::Null | Cbor::Undefined => Value::Null,
        Cbor::Bool(b) => json!(b),
        Cbor::Int(n) => {
            if let Ok(n) = i64::try_from(*n) {
                json!(n)
            } else if let Ok(n) = u64::try_from(*n) {
                json!(n)
            } else {
                json!(n.to_string())
            }
        }
        Cbor::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Cbor::Bytes(b) => json!(hex(b)),
        Cbor::Text(t) => json!(t),
        Cbor::Array(items) => Value::Array(items.iter().map(cbor_to_json).collect()),
        Cbor::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (cbor_key(k), cbor_to_json(v)))
                .collect(),
        ),
        Cbor::Tag(_, inner) => cbor_to_json(inner),
        Cbor::Simple(n) => json!(n),
    }
}

/// A CBOR map key as a JSON object key.
fn cbor_key(key: &Cbor) -> String {
    match key {
        Cbor::Text(t) => t.clone(),
        other => match cbor_to_json(other) {
            Value::String(s) => s,
            v => v.to_string(),
        },
    }
}

/// A CBOR value from the device as text: JSON for structures, plain for scalars.
pub(crate) fn cbor_text(value: &Cbor) -> String {
    match cbor_to_json(value) {
        Value::String(s) => s,
        v => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
        assert_eq!(hex(&[]), "");
        assert_eq!(parse_hex("00ABff"), Ok(vec![0, 0xab, 0xff]));
        assert_eq!(parse_hex("0x0102"), Ok(vec![1, 2]));
        assert_eq!(parse_hex(" 01:02-03 04_05 "), Ok(vec![1, 2, 3, 4, 5]));
        assert!(parse_hex("").is_err());
        assert!(parse_hex("0x").is_err());
        assert!(parse_hex("abc").is_err());
        assert!(parse_hex("zz").is_err());
        assert!(parse_hex("é1").is_err());
    }

    #[test]
    fn abbreviated_hex() {
        assert_eq!(hex_abbrev(&[1, 2], 4), "0102");
        assert_eq!(hex_abbrev(&[1, 2, 3], 2), "0102... (3 bytes)");
    }

    #[test]
    fn sizes_and_rates() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.50 KiB (1536 B)");
        assert_eq!(bytes_per_second(1000, Duration::from_millis(500)), 2000);
        assert_eq!(bytes_per_second(1000, Duration::ZERO), 0);
        assert_eq!(seconds(Duration::from_micros(1_234_567)), 1.235);
        assert_eq!(
            transfer_summary("uploaded", 2048, Duration::from_secs(2)),
            "uploaded 2.00 KiB (2048 B) in 2.00 s, 1.00 KiB/s"
        );
    }

    #[test]
    fn tables_align() {
        let t = table(
            &["NAME", "N"],
            &[
                vec!["main".into(), "1".into()],
                vec!["logging".into(), "12345".into()],
            ],
        );
        assert_eq!(t, "NAME     N\nmain     1\nlogging  12345\n");
        assert_eq!(table(&["A", "B"], &[]), "A  B\n");
        assert_eq!(cell(Some(3)), "3");
        assert_eq!(cell(None::<u8>), "-");
    }

    #[test]
    fn cbor_values_as_json() {
        let v = Cbor::Map(vec![
            (Cbor::Text("a".into()), Cbor::Bytes(vec![1, 0xfe])),
            (
                Cbor::Int(5),
                Cbor::Array(vec![Cbor::Bool(true), Cbor::Null]),
            ),
            (
                Cbor::Text("big".into()),
                Cbor::Int(i128::from(u64::MAX) + 1),
            ),
            (Cbor::Text("neg".into()), Cbor::Int(-3)),
            (Cbor::Text("f".into()), Cbor::Float(1.5)),
            (Cbor::Text("nan".into()), Cbor::Float(f64::NAN)),
            (Cbor::Text("t".into()), Cbor::Tag(1, Box::new(Cbor::Int(7)))),
        ]);
        assert_eq!(
            cbor_to_json(&v),
            json!({"a": "01fe", "5": [true, null], "big": "18446744073709551616",
                   "neg": -3, "f": 1.5, "nan": null, "t": 7})
        );
        assert_eq!(cbor_text(&Cbor::Text("x".into())), "x");
        assert_eq!(cbor_text(&Cbor::Int(4)), "4");
    }
}
