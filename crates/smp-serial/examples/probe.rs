//! Sends an echo and an MCUmgr parameters request to a serial SMP device and prints the
//! replies: a by-hand check against a real server.
//!
//! ```text
//! cargo run -p smp-serial --example probe -- PORT [OPTIONS]
//!   PORT               /dev/ttyACM0, /dev/pts/N, socket://127.0.0.1:PORT
//!   --framing F        console (default), raw, cobs
//!   --buf-size N       the device's buffer size, when known
//!   --line-length N    console line length (default 128)
//!   --pacing B,MS      B lines, then MS milliseconds (default 2,20); `none` for no pacing
//!   --echo N           characters in the echo (default 5: "hello")
//!   --repeat N         echoes to send (default 1); prints the mean round trip
//!   --timeout MS       how long to wait for each reply (default 2000)
//!   --send HEX         send this frame first and print the reply (repeatable), e.g.
//!                      0800000100010000a0 (image state read); the echo and parameters
//!                      follow unless --only-send
//!   --only-send        send the --send frames only
//! ```
#![allow(clippy::unwrap_used)]

use std::process::ExitCode;
use std::time::{Duration, Instant};

use smp_serial::{Framing, Pacing, SerialOptions, SerialTarget, SerialTransport, Transport};

/// An echo request frame (v2 WRITE, OS group, command 0) carrying `text`.
fn echo(sequence: u8, text: &str) -> Vec<u8> {
    let mut cbor = vec![0xa1, 0x61, b'd']; // {"d": ...}
    match text.len() {
        len @ 0..24 => cbor.push(0x60 | len as u8),
        len @ 24..256 => cbor.extend([0x78, len as u8]),
        len => cbor.extend([0x79, (len >> 8) as u8, len as u8]),
    }
    cbor.extend(text.as_bytes());
    let len = cbor.len() as u16;
    let mut frame = vec![
        0x0a,
        0x00,
        (len >> 8) as u8,
        len as u8,
        0x00,
        0x00,
        sequence,
        0x00,
    ];
    frame.extend(cbor);
    frame
}

/// MCUmgr parameters request: v2 READ, OS group, command 6, an empty map.
fn params(sequence: u8) -> Vec<u8> {
    vec![0x08, 0x00, 0x00, 0x01, 0x00, 0x00, sequence, 0x06, 0xa0]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Printable text in a reply, to read its CBOR keys and strings at a glance.
fn text(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '.' })
        .collect()
}

struct Args {
    target: SerialTarget,
    echo_len: usize,
    repeat: usize,
    timeout: Duration,
    frames: Vec<Vec<u8>>,
    only_send: bool,
}

fn unhex(text: &str) -> Result<Vec<u8>, String> {
    if text.len() % 2 != 0 || !text.is_ascii() {
        return Err(format!("--send {text}: not hex"));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|e| format!("--send: {e}")))
        .collect()
}

fn parse() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let port = args
        .next()
        .ok_or("usage: probe PORT [OPTIONS] (see the source)")?;
    // This tool drives the transport without a client, which would note losses for
    // `Pacing::auto`: it paces from the start.
    let mut options =
        SerialOptions::default().pacing(Pacing::new(Pacing::DEFAULT_BURST, Pacing::DEFAULT_PAUSE));
    let (mut echo_len, mut repeat, mut timeout) = (5, 1, Duration::from_secs(2));
    let (mut frames, mut only_send) = (Vec::new(), false);
    while let Some(flag) = args.next() {
        if flag == "--only-send" {
            only_send = true;
            continue;
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .map_err(|e| format!("{flag} {value}: {e}"))
        };
        match flag.as_str() {
            "--framing" => {
                options = options.framing(match value.as_str() {
                    "console" => Framing::Console,
                    "raw" => Framing::Raw,
                    "cobs" => Framing::RawCobs,
                    other => return Err(format!("unknown framing {other}")),
                });
            }
            "--buf-size" => options = options.buf_size(number()?),
            "--line-length" => options = options.line_length(number()?),
            "--pacing" if value == "none" => options = options.pacing(Pacing::none()),
            "--pacing" => {
                let (burst, ms) = value.split_once(',').ok_or("--pacing B,MS")?;
                let burst = burst.parse().map_err(|_| "--pacing B,MS")?;
                let ms = ms.parse().map_err(|_| "--pacing B,MS")?;
                options = options.pacing(Pacing::new(burst, Duration::from_millis(ms)));
            }
            "--echo" => echo_len = number()?,
            "--repeat" => repeat = number()?,
            "--timeout" => timeout = Duration::from_millis(number()? as u64),
            "--send" => frames.push(unhex(&value)?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    let target: SerialTarget = port.parse().map_err(|e| format!("{port}: {e}"))?;
    Ok(Args {
        target: target.with_options(options),
        echo_len,
        repeat,
        timeout,
        frames,
        only_send,
    })
}

async fn ask(
    serial: &SerialTransport,
    name: &str,
    frame: &[u8],
    timeout: Duration,
) -> Option<(Vec<u8>, Duration)> {
    println!("> {name} ({} B): {}", frame.len(), hex(frame));
    let started = Instant::now();
    if let Err(err) = serial.send(frame).await {
        println!("  send failed: {err}");
        return None;
    }
    loop {
        match tokio::time::timeout(timeout, serial.receive()).await {
            Err(_) => {
                println!("  no reply within {timeout:?}");
                return None;
            }
            Ok(Err(err)) => {
                let source = std::error::Error::source(&err)
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default();
                println!("  receive error: {err}{source}");
                if matches!(err, smp_serial::TransportError::Closed) {
                    return None;
                }
            }
            Ok(Ok(reply)) => {
                let elapsed = started.elapsed();
                println!("< {} B in {elapsed:.1?}: {}", reply.len(), hex(&reply));
                println!("  text: {}", text(&reply[8.min(reply.len())..]));
                return Some((reply, elapsed));
            }
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{} at {} baud: {:?}",
        args.target,
        args.target.baud_rate(),
        args.target.options()
    );
    let serial = match SerialTransport::connect(args.target, Duration::from_secs(5)).await {
        Ok(serial) => serial,
        Err(err) => {
            eprintln!("connect: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "max_unencoded_size {} B, mtu {} B",
        serial.max_unencoded_size(),
        serial.mtu()
    );
    let mut sent_ok = true;
    for frame in &args.frames {
        sent_ok &= ask(&serial, "frame", frame, args.timeout).await.is_some();
    }
    if args.only_send {
        serial.disconnect().await.unwrap();
        return if sent_ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let text: String = "hello".chars().cycle().take(args.echo_len).collect();
    let mut ok = 0;
    let mut total = Duration::ZERO;
    for i in 0..args.repeat {
        let frame = echo(i as u8, &text);
        if let Some((reply, elapsed)) = ask(&serial, "echo", &frame, args.timeout).await {
            if reply
                .windows(text.len().max(1))
                .any(|w| w == text.as_bytes())
            {
                ok += 1;
                total += elapsed;
            }
        }
    }
    let params_ok = ask(&serial, "mcumgr params", &params(200), args.timeout)
        .await
        .is_some();
    if args.repeat > 1 && ok > 0 {
        println!(
            "{ok}/{} echoes answered, mean {:.2?}",
            args.repeat,
            total / ok as u32
        );
    }
    serial.disconnect().await.unwrap();
    if ok == args.repeat && params_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
