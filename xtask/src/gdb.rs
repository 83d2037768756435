//! Writes firmware into an emulated board's memory once, through QEMU's GDB stub: a tiny
//! client of the GDB remote serial protocol, and an Intel HEX reader.
//!
//! QEMU's `-device loader` writes its data again at every system reset (its ROM blobs
//! are written back by each reset unless they land in a region QEMU calls ROM, and the
//! nRF51's flash is a ROM *device*, which it does not), so on a board started with one
//! the flash never keeps what the guest wrote across a reset: an image MCUboot swapped
//! in, a confirm flag in the slot trailer. Started instead with `-S -gdb tcp:...` and no
//! loader, the board waits, frozen, with its flash erased; [`load_once`] writes the
//! loaders' data through the stub's memory writes (which go into the flash's storage
//! like any debugger's), resets the machine so that the CPU reads its vector table from
//! the flash now written (`monitor system_reset`), and detaches, which lets it run.
//! Guest resets after that leave the flash as the guest wrote it.
//!
//! The protocol, as far as used here (GDB's manual, "Remote Protocol"): packets
//! `$DATA#CS` with `CS` the sum of `DATA`'s bytes mod 256 in two hex digits, each
//! acknowledged by `+`; `qSupported`; `M ADDR,LEN:HEX` writes memory (`OK`); `m ADDR,LEN`
//! reads it (hex); `qRcmd,HEX` runs a monitor command (`O` output packets, then `OK`);
//! `D` detaches (`OK`), and QEMU resumes the machine when no debugger is left.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::util::Result;

/// Bytes of memory per write or read packet: 2 KiB of hex, well inside the stub's
/// `PacketSize` (QEMU: 4096).
const CHUNK: usize = 1024;
/// How long the stub may take to listen, and to answer a packet.
const TIMEOUT: Duration = Duration::from_secs(15);

/// A contiguous run of bytes to write at `addr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    pub(crate) addr: u64,
    pub(crate) data: Vec<u8>,
}

/// What a `-device loader,...` option of the command line loads: `file=` (relative to
/// the fixtures directory) and, for a raw binary, `addr=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Loader {
    pub(crate) file: String,
    pub(crate) addr: Option<u64>,
}

impl Loader {
    /// The loader that `-device` option `value` (`loader,file=X[,addr=A]`) describes.
    pub(crate) fn parse(value: &str) -> Result<Self> {
        let mut parts = value.split(',');
        if parts.next() != Some("loader") {
            return Err(format!("not a loader: -device {value}"));
        }
        let (mut file, mut addr) = (None, None);
        for part in parts {
            match part.split_once('=') {
                Some(("file", name)) => file = Some(name.to_owned()),
                Some(("addr", number)) => addr = Some(parse_number(number)?),
                _ => return Err(format!("-device {value}: {part:?} is not understood here")),
            }
        }
        Ok(Self {
            file: file.ok_or_else(|| format!("-device {value}: no file="))?,
            addr,
        })
    }

    /// The bytes it loads, as QEMU's generic loader reads the file: Intel HEX for
    /// `*.hex`, else the raw file at `addr`.
    pub(crate) fn segments(&self, dir: &Path) -> Result<Vec<Segment>> {
        let path = dir.join(&self.file);
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        match (self.file.ends_with(".hex"), self.addr) {
            (true, None) => {
                let text = String::from_utf8(bytes)
                    .map_err(|_| format!("{}: not text", path.display()))?;
                parse_hex(&text).map_err(|e| format!("{}: {e}", path.display()))
            }
            (false, Some(addr)) => Ok(vec![Segment { addr, data: bytes }]),
            _ => Err(format!(
                "{}: a loader of a .hex file without addr=, or of a raw file with it, is what \
                 this runner knows",
                self.file
            )),
        }
    }
}

/// `0x20050000` or `1234`.
fn parse_number(text: &str) -> Result<u64> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    }
    .map_err(|_| format!("{text:?} is not a number"))
}

/// The data of an Intel HEX file, merged into contiguous segments in address order:
/// data records (00), extended segment (02) and linear (04) addresses; the end record
/// (01) ends it; start addresses (03, 05) are ignored, as the CPU's reset reads the
/// vector table. Every record's checksum is checked.
pub(crate) fn parse_hex(text: &str) -> Result<Vec<Segment>> {
    let mut base = 0u64;
    let mut segments: Vec<Segment> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fail = |what: &str| format!("line {}: {what}", number + 1);
        let hex = line
            .strip_prefix(':')
            .ok_or_else(|| fail("no ':' at the start"))?;
        let record = decode_hex(hex).ok_or_else(|| fail("not hex"))?;
        if record.len() < 5 || record.len() != usize::from(record[0]) + 5 {
            return Err(fail("wrong length"));
        }
        if record.iter().fold(0u8, |sum, b| sum.wrapping_add(*b)) != 0 {
            return Err(fail("bad checksum"));
        }
        let offset = u64::from(u16::from_be_bytes([record[1], record[2]]));
        let data = &record[4..record.len() - 1];
        match record[3] {
            0x00 => {
                let addr = base + offset;
                match segments.last_mut() {
                    Some(last) if last.addr + last.data.len() as u64 == addr => {
                        last.data.extend_from_slice(data);
                    }
                    _ => segments.push(Segment {
                        addr,
                        data: data.to_vec(),
                    }),
                }
            }
            0x01 => break,
            0x02 if data.len() == 2 => {
                base = u64::from(u16::from_be_bytes([data[0], data[1]])) << 4;
            }
            0x04 if data.len() == 2 => {
                base = u64::from(u16::from_be_bytes([data[0], data[1]])) << 16;
            }
            0x03 | 0x05 => {}
            kind => return Err(fail(&format!("record type {kind:#04x} not understood"))),
        }
    }
    segments.sort_by_key(|segment| segment.addr);
    Ok(segments)
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A connection to a GDB stub.
struct Stub {
    stream: TcpStream,
    /// Bytes received and not consumed yet.
    pending: Vec<u8>,
}

impl Stub {
    /// Connects to the stub on 127.0.0.1:`port`, waiting until it listens.
    fn connect(port: u16) -> Result<Self> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let started = Instant::now();
        let stream = loop {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(stream) => break stream,
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                    if started.elapsed() > TIMEOUT {
                        return Err(format!("the GDB stub at {addr} does not listen: {e}"));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(format!("connecting to the GDB stub at {addr}: {e}")),
            }
        };
        stream
            .set_read_timeout(Some(TIMEOUT))
            .map_err(|e| format!("GDB stub: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("GDB stub: {e}"))?;
        Ok(Self {
            stream,
            pending: Vec::new(),
        })
    }

    fn fill(&mut self) -> Result {
        let mut buf = [0; 4096];
        match self.stream.read(&mut buf) {
            Ok(0) => Err("the GDB stub closed the connection".to_owned()),
            Ok(n) => {
                self.pending.extend_from_slice(&buf[..n]);
                Ok(())
            }
            Err(e) => Err(format!("reading from the GDB stub: {e}")),
        }
    }

    /// Sends `data` as a packet and returns the stub's reply packet, skipping the stop
    /// replies (`T..`, `S..`) the stub may send of its own accord and, for a monitor
    /// command, its output packets (`O..`).
    fn command(&mut self, data: &str) -> Result<String> {
        let sum = data.bytes().fold(0u8, u8::wrapping_add);
        let packet = format!("${data}#{sum:02x}");
        self.stream
            .write_all(packet.as_bytes())
            .map_err(|e| format!("writing to the GDB stub: {e}"))?;
        let mut acknowledged = false;
        loop {
            let Some(&first) = self.pending.first() else {
                self.fill()?;
                continue;
            };
            match first {
                b'+' if !acknowledged => {
                    self.pending.remove(0);
                    acknowledged = true;
                }
                b'-' if !acknowledged => {
                    self.pending.remove(0);
                    self.stream
                        .write_all(packet.as_bytes())
                        .map_err(|e| format!("writing to the GDB stub: {e}"))?;
                }
                b'$' => {
                    let reply = self.packet()?;
                    let unsolicited = reply.starts_with('T') || reply.starts_with('S');
                    let output =
                        reply.starts_with('O') && reply != "OK" && data.starts_with("qRcmd");
                    if acknowledged && !unsolicited && !output {
                        return Ok(reply);
                    }
                }
                _ => {
                    self.pending.remove(0);
                }
            }
        }
    }

    /// Reads one `$...#CS` packet from the front of the input, acknowledges it, and
    /// returns its data with run-length encoding expanded.
    fn packet(&mut self) -> Result<String> {
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'#') {
                if self.pending.len() >= end + 3 {
                    let body = self.pending[1..end].to_vec();
                    let sum = std::str::from_utf8(&self.pending[end + 1..end + 3])
                        .ok()
                        .and_then(|s| u8::from_str_radix(s, 16).ok());
                    self.pending.drain(..end + 3);
                    if sum != Some(body.iter().fold(0u8, |a, b| a.wrapping_add(*b))) {
                        return Err("the GDB stub sent a packet with a bad checksum".to_owned());
                    }
                    self.stream
                        .write_all(b"+")
                        .map_err(|e| format!("writing to the GDB stub: {e}"))?;
                    return Ok(expand_run_lengths(&body));
                }
            }
            self.fill()?;
        }
    }

    fn expect_ok(&mut self, data: &str, what: &str) -> Result {
        match self.command(data)? {
            reply if reply == "OK" => Ok(()),
            reply => Err(format!("GDB stub: {what}: {reply:?}")),
        }
    }
}

/// `X*N` in a reply stands for `X` and `N - 29` more of it.
fn expand_run_lengths(body: &[u8]) -> String {
    let mut out: Vec<u8> = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'*' && i + 1 < body.len() {
            if let Some(&last) = out.last() {
                let count = usize::from(body[i + 1]).saturating_sub(29);
                out.extend(std::iter::repeat_n(last, count));
            }
            i += 2;
        } else {
            out.push(body[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes `segments` into the memory of the machine frozen behind the GDB stub on
/// 127.0.0.1:`port` (QEMU started with `-S -gdb tcp:127.0.0.1:PORT`), reads every byte
/// back, resets the machine and lets it run. Returns the bytes written.
pub(crate) fn load_once(port: u16, segments: &[Segment]) -> Result<usize> {
    let mut stub = Stub::connect(port)?;
    stub.command("qSupported")?;
    let mut written = 0;
    for segment in segments {
        for (index, chunk) in segment.data.chunks(CHUNK).enumerate() {
            let addr = segment.addr + (index * CHUNK) as u64;
            stub.expect_ok(
                &format!("M{addr:x},{:x}:{}", chunk.len(), encode_hex(chunk)),
                &format!("writing {} bytes at {addr:#x}", chunk.len()),
            )?;
            let back = stub.command(&format!("m{addr:x},{:x}", chunk.len()))?;
            if decode_hex(&back).as_deref() != Some(chunk) {
                return Err(format!(
                    "GDB stub: the {} bytes written at {addr:#x} do not read back (got {back:?})",
                    chunk.len()
                ));
            }
            written += chunk.len();
        }
    }
    // The CPU took its stack pointer and reset vector from the empty flash when the
    // machine was created: reset it to read them from the flash now written.
    stub.expect_ok(
        &format!("qRcmd,{}", encode_hex(b"system_reset")),
        "monitor system_reset",
    )?;
    stub.expect_ok("D", "detach")?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intel_hex_records_become_segments() {
        // Two runs, the second above 64 KiB through an extended linear address, and a
        // start address record that is ignored.
        let text = ":0400000001020304F2\n\
                    :02000004000AF0\n\
                    :020010000506E3\n\
                    :020012000708DD\n\
                    :040000030000217167\n\
                    :00000001FF\n";
        let segments = parse_hex(text).unwrap();
        assert_eq!(
            segments,
            [
                Segment {
                    addr: 0,
                    data: vec![1, 2, 3, 4]
                },
                Segment {
                    addr: 0xa0010,
                    data: vec![5, 6, 7, 8]
                },
            ]
        );
        assert!(
            parse_hex(":0400000001020304F3\n")
                .unwrap_err()
                .contains("checksum")
        );
    }

    #[test]
    fn loader_options() {
        assert_eq!(
            Loader::parse("loader,file=a.signed.bin,addr=0x20050000").unwrap(),
            Loader {
                file: "a.signed.bin".into(),
                addr: Some(0x2005_0000)
            }
        );
        assert_eq!(
            Loader::parse("loader,file=a.hex").unwrap(),
            Loader {
                file: "a.hex".into(),
                addr: None
            }
        );
        assert!(Loader::parse("loader,file=a.hex,cpu-num=0").is_err());
    }

    #[test]
    fn run_lengths_expand() {
        // "0* " is "0" and three more ('  ' is 32, 32 - 29 = 3).
        assert_eq!(expand_run_lengths(b"ab0* c"), "ab0000c");
        assert_eq!(expand_run_lengths(b"OK"), "OK");
    }
}
