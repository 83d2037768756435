//! The serial section of `cargo xtask bench`: an image upload over serial, our client
//! against the Python reference (`smpclient` 7.3.0) alternating, on three links:
//!
//! - `smp-sim` over a pseudo-terminal (`--serial pty`), shaped like native_sim's
//!   `serial_bigrx` fixture: `buf_size` 384, `buf_count` 4, a UART that takes bursts;
//! - MCUboot serial recovery on the emulated `mps2_an385.serial_recovery` fixture,
//!   launched with MCUboot alone (slot 0 empty, so it stays in recovery:
//!   [`Launch::Bare`]); its own signed application goes into slot 0;
//! - the `qemu_cortex_m0.serial` application under MCUboot; its own signed image goes
//!   into slot 1.
//!
//! Both emulated boards are launched by `fixtures.rs` as `cargo xtask interop` launches
//! them (their serial port a TCP chardev). Every upload gets a fresh device, which
//! `smp-bench serial-wait` waits for (untimed); each client times its upload alone.
//! Our client runs with its default options and the pacing each variant names; the
//! reference with its `SMPSerialTransport` (`scripts/smpclient_serial_upload.py`).
//! A failed upload is counted, not fatal: the reference has no retries, and on one
//! link its default sizing fails.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Tools, json_number, median, no_key, spread};
use crate::fixtures::{self, Launch, Manifest, Role, SerialFixture};
use crate::interop::ServerGuard;
use crate::util::{self, Result};

/// The image uploaded to the simulated device: the loss section's, 256 KiB, header and
/// TLVs included.
pub(super) const SIM_IMAGE_LEN: u64 = super::loss::IMAGE_LEN;
/// The simulated device: as native_sim's `serial_bigrx` (buffers of 384 bytes, four of
/// them, no burst overrun), with 128-byte lines.
const SIM_ARGS: [&str; 7] = [
    "--serial",
    "pty",
    "--bigrx",
    "--buf-size",
    "384",
    "--buf-count",
    "4",
];
/// The baud rate a real UART would run at, for the wire-time estimate.
const BAUD: f64 = 115_200.0;
/// How long a device may take to answer after its launch.
const BOOT_WAIT_SECONDS: &str = "20";
/// How long an emulated board is left to boot before anything is sent to it.
const BOOT_SETTLE: std::time::Duration = std::time::Duration::from_secs(2);
/// Launches of a device that does not answer before the section gives up.
const LAUNCHES: u32 = 3;

/// Who uploads, and how.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Uploader {
    /// `smp-bench serial-upload --pacing PACING`.
    Ours { pacing: &'static str },
    /// The reference: `Auto` sizing, or `BufferParams` over `line_buffers` 128-byte
    /// lines; `tune`: its TCP socket set up as ours (`TCP_NODELAY`, `TCP_QUICKACK`).
    Reference {
        line_buffers: Option<u32>,
        tune: bool,
    },
}

impl Uploader {
    fn is_ours(self) -> bool {
        matches!(self, Self::Ours { .. })
    }

    fn label(self) -> String {
        match self {
            Self::Ours { pacing: "auto" } => {
                "ours, default pacing (`auto`: unpaced until a loss)".into()
            }
            Self::Ours { pacing: "2:20" } => "ours, fixed pacing (2 lines, 20 ms)".into(),
            Self::Ours { pacing: "none" } => "ours, no pacing".into(),
            Self::Ours { pacing } => format!("ours, pacing {pacing} (lines:ms)"),
            Self::Reference { line_buffers, tune } => {
                let sizing = match line_buffers {
                    None => "`Auto` sizing".to_owned(),
                    Some(n) => format!("`BufferParams(128, {n})`"),
                };
                let socket = if tune { ", socket as ours" } else { "" };
                format!("reference, {sizing}{socket}")
            }
        }
    }
}

/// Which device a link uploads to.
#[derive(Debug, Clone, Copy)]
enum Device {
    /// `smp-sim` with [`SIM_ARGS`].
    Sim,
    /// A fixture of the sdist's manifest, launched as said.
    Fixture { name: &'static str, launch: Launch },
}

/// One link: a device, and who uploads to it.
struct Link {
    title: &'static str,
    device: Device,
    uploaders: Vec<Uploader>,
    /// The reference's timeout per chunk after the first, in seconds: what its own
    /// integration suite gives the device.
    reference_timeout: &'static str,
}

fn links() -> Vec<Link> {
    let ours = |pacing| Uploader::Ours { pacing };
    let reference = |line_buffers, tune| Uploader::Reference { line_buffers, tune };
    vec![
        Link {
            title: "smp-sim, pty",
            device: Device::Sim,
            uploaders: vec![
                ours("auto"),
                reference(None, false),
                ours("none"),
                ours("2:20"),
            ],
            reference_timeout: "2.5",
        },
        Link {
            title: "MCUboot serial recovery (mps2_an385), TCP",
            device: Device::Fixture {
                name: "mps2_an385.serial_recovery",
                launch: Launch::Bare,
            },
            uploaders: vec![
                ours("auto"),
                reference(None, false),
                ours("none"),
                reference(None, true),
                ours("2:20"),
            ],
            reference_timeout: "15",
        },
        Link {
            title: "qemu_cortex_m0 application, TCP",
            device: Device::Fixture {
                name: "qemu_cortex_m0.serial",
                launch: Launch::Manifest,
            },
            uploaders: vec![
                ours("auto"),
                reference(None, false),
                ours("none"),
                reference(Some(2), false),
                reference(Some(2), true),
                ours("2:20"),
            ],
            reference_timeout: "5",
        },
    ]
}

/// What one upload measured (both clients report the same keys but `frames_sent`,
/// `pacing` and the window, which only ours knows).
#[derive(Debug, Clone, Default)]
struct Upload {
    seconds: f64,
    /// Chunk requests (ours) or offsets reported (the reference).
    requests: f64,
    /// Frames written, re-sends and probes included (ours).
    frames_sent: Option<f64>,
    bytes_written: f64,
    bytes_read: f64,
    cpu_seconds: f64,
    pacing_seconds: f64,
    /// Largest frame, and (ours) the most chunks in flight and the device's `buf_count`.
    frame_limit: f64,
    window: Option<(f64, f64)>,
}

impl Upload {
    fn from_json(out: &str, ours: bool) -> Result<Self> {
        let get = |key: &str| json_number(out, key).ok_or_else(|| no_key(out));
        let mut upload = Self {
            seconds: get("seconds")?,
            bytes_written: get("bytes_written")?,
            bytes_read: get("bytes_read")?,
            cpu_seconds: json_number(out, "cpu_seconds").unwrap_or(f64::NAN),
            ..Self::default()
        };
        if ours {
            upload.requests = get("chunks")?;
            upload.frames_sent = Some(get("frames_sent")?);
            upload.pacing_seconds = get("pacing_waited_seconds")?;
            upload.frame_limit = get("frame_limit")?;
            upload.window = Some((
                get("max_in_flight")?,
                json_number(out, "buf_count").unwrap_or(f64::NAN),
            ));
        } else {
            upload.requests = get("requests")?;
            upload.frame_limit = get("max_unencoded_size")?;
        }
        Ok(upload)
    }
}

/// Every run of one uploader on one link.
#[derive(Debug)]
struct Cell {
    uploader: Uploader,
    runs: Vec<std::result::Result<Upload, String>>,
}

impl Cell {
    fn ok(&self) -> Vec<&Upload> {
        self.runs.iter().filter_map(|r| r.as_ref().ok()).collect()
    }

    fn failed(&self) -> usize {
        self.runs.iter().filter(|r| r.is_err()).count()
    }

    /// The median of `f` over the successful runs, if any.
    fn median_of(&self, f: impl Fn(&Upload) -> f64) -> Option<f64> {
        let ok = self.ok();
        (!ok.is_empty()).then(|| median(&ok.iter().map(|u| f(u)).collect::<Vec<_>>()))
    }

    /// The successful run closest to the median time: its counts stand for the cell.
    fn typical(&self) -> Option<&Upload> {
        let seconds = self.median_of(|u| u.seconds)?;
        self.ok().into_iter().min_by(|a, b| {
            (a.seconds - seconds)
                .abs()
                .total_cmp(&(b.seconds - seconds).abs())
        })
    }
}

/// One link's results.
#[derive(Debug)]
struct LinkResult {
    title: &'static str,
    image_len: u64,
    cells: Vec<Cell>,
}

/// The serial section's results, and how to print them.
#[derive(Debug)]
pub(super) struct SerialResults {
    links: Vec<LinkResult>,
    runs: usize,
}

/// Runs per uploader and link.
fn runs(quick: bool) -> usize {
    if quick { 1 } else { 3 }
}

/// Runs the serial section: `sim_image` goes to the simulated device, each fixture's
/// own signed image to the fixture.
pub(super) fn serial_uploads(
    tools: &Tools,
    quick: bool,
    sim_image: &Path,
) -> Result<SerialResults> {
    util::heading("bench: serial: the emulated fixtures (smpclient sdist, qemu-system-arm)");
    crate::interop::ensure_packages()?;
    let sdist = crate::interop::ensure_sdist(&util::target_dir().join("interop"))?;
    let manifest = Manifest::load(&sdist.join("tests/fixtures/smp-server"))?;
    let runs = runs(quick);
    let mut results = Vec::new();
    for link in links() {
        let fixture = match link.device {
            Device::Sim => None,
            Device::Fixture { name, .. } => Some(find_fixture(&manifest, name)?),
        };
        let image = match &fixture {
            None => sim_image.to_path_buf(),
            Some(fixture) => fixture
                .image()
                .map(Path::to_path_buf)
                .ok_or_else(|| format!("{}: the sdist ships no signed image", fixture.name))?,
        };
        let image_len = fs::metadata(&image)
            .map_err(|e| format!("cannot read {}: {e}", image.display()))?
            .len();
        let mut cells: Vec<Cell> = link
            .uploaders
            .iter()
            .map(|&uploader| Cell {
                uploader,
                runs: Vec::new(),
            })
            .collect();
        for run in 1..=runs {
            for cell in &mut cells {
                util::heading(&format!(
                    "bench: serial: {} [{run}/{runs}] {}",
                    link.title,
                    cell.uploader.label()
                ));
                let (guard, port) = start_answering(tools, link.device, fixture.as_ref())?;
                let outcome = upload(tools, cell.uploader, &port, &image, link.reference_timeout)?;
                drop(guard);
                match &outcome {
                    Ok(u) => println!(
                        "  {:.2} s, {:.0} requests, {:.0} B out, {:.0} B in, pacing {:.2} s",
                        u.seconds, u.requests, u.bytes_written, u.bytes_read, u.pacing_seconds
                    ),
                    Err(why) => println!("  FAILED: {why}"),
                }
                cell.runs.push(outcome);
            }
        }
        results.push(LinkResult {
            title: link.title,
            image_len,
            cells,
        });
    }
    Ok(SerialResults {
        links: results,
        runs,
    })
}

fn find_fixture(manifest: &Manifest, name: &str) -> Result<SerialFixture> {
    let entry = manifest
        .entries
        .iter()
        .find(|e| e.name() == name)
        .ok_or_else(|| format!("the sdist's manifest has no fixture {name}"))?;
    match fixtures::classify(entry, manifest)? {
        Role::Serial(fixture) => Ok(*fixture),
        Role::Udp | Role::NotHere(_) => Err(format!("{name} is not a serial fixture to run here")),
    }
}

/// A device, stopped (by its process id) when dropped.
struct Guard {
    _sim: Option<crate::sim::SimGuard>,
    _fixture: Option<ServerGuard>,
}

/// Starts a fresh device for one upload: its guard and its serial port.
fn start(
    tools: &Tools,
    device: Device,
    fixture: Option<&SerialFixture>,
) -> Result<(Guard, String)> {
    match (device, fixture) {
        (Device::Fixture { launch, .. }, Some(fixture)) => {
            let run_dir = tools.dir.join("serial").join(&fixture.name);
            let (guard, port) = fixture.start(launch, &run_dir)?;
            let guard = Guard {
                _sim: None,
                _fixture: Some(guard),
            };
            Ok((guard, port))
        }
        _ => {
            let mut command = Command::new(&tools.sim);
            command.args(SIM_ARGS);
            let log = tools.dir.join("smp-sim-serial.log");
            let (guard, _, port) = crate::sim::start_serial_sim(command, &log, "bench")?;
            let guard = Guard {
                _sim: Some(guard),
                _fixture: None,
            };
            Ok((guard, port))
        }
    }
}

/// Starts a fresh device, leaves an emulated board [`BOOT_SETTLE`] to boot, and waits
/// until it answers; launches it again when it does not, up to [`LAUNCHES`] times.
fn start_answering(
    tools: &Tools,
    device: Device,
    fixture: Option<&SerialFixture>,
) -> Result<(Guard, String)> {
    let mut last = String::new();
    for launch in 1..=LAUNCHES {
        let (guard, port) = start(tools, device, fixture)?;
        if fixture.is_some() {
            // Bytes that reach the emulated qemu_cortex_m0 while it boots leave it
            // deaf for good (measured: a probe 20 ms after the launch, never an
            // answer; 300 ms after, answered at once).
            std::thread::sleep(BOOT_SETTLE);
        }
        match util::capture(Command::new(&tools.bench).args([
            "serial-wait",
            "--port",
            &port,
            "--seconds",
            BOOT_WAIT_SECONDS,
        ])) {
            Ok(_) => return Ok((guard, port)),
            Err(e) => {
                println!("  launch {launch}/{LAUNCHES}: the device did not answer; {e}");
                last = e;
            }
        }
    }
    Err(last)
}

/// One upload: what it measured, or why it failed (as data: a failure is a result).
fn upload(
    tools: &Tools,
    uploader: Uploader,
    port: &str,
    image: &Path,
    reference_timeout: &str,
) -> Result<std::result::Result<Upload, String>> {
    let mut command = match uploader {
        Uploader::Ours { pacing } => {
            let mut command = Command::new(&tools.bench);
            command
                .args([
                    "serial-upload",
                    "--port",
                    port,
                    "--pacing",
                    pacing,
                    "--image",
                ])
                .arg(image);
            command
        }
        Uploader::Reference { line_buffers, tune } => {
            let mut command = Command::new(&tools.python);
            command
                .arg(tools.scripts.join("smpclient_serial_upload.py"))
                .arg(port)
                .arg(image)
                .args(["--timeout", reference_timeout]);
            if let Some(n) = line_buffers {
                command.args(["--line-buffers", &n.to_string()]);
            }
            if tune {
                command.arg("--tune-socket");
            }
            command
        }
    };
    match super::attempt(&mut command)? {
        Ok(out) => Upload::from_json(&out, uploader.is_ours()).map(Ok),
        Err(last) => Ok(Err(last)),
    }
}

impl SerialResults {
    /// The tables, for the terminal and the report.
    pub(super) fn tables(&self) -> String {
        let mut md = String::from(
            "| link | client | frame (B) | window (peak) | requests (frames sent) | upload (s) | KB/s | reference time / this | wire out per image byte | wire in per image byte | failed |\n\
             |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for link in &self.links {
            // The reference's default, on every link: what a user of it gets.
            let baseline = link.cells.iter().find(|c| {
                c.uploader
                    == Uploader::Reference {
                        line_buffers: None,
                        tune: false,
                    }
            });
            // The reference that got through, when its default did not.
            let fallback = link
                .cells
                .iter()
                .filter(|c| !c.uploader.is_ours() && !c.ok().is_empty())
                .find(|c| c.failed() == 0);
            let baseline = match baseline {
                Some(b) if b.failed() == 0 => Some(b),
                _ => fallback,
            };
            for cell in &link.cells {
                let Some(typical) = cell.typical() else {
                    let _ = writeln!(
                        md,
                        "| {} | {} | – | – | – | – | – | – | – | – | {} of {} |",
                        link.title,
                        cell.uploader.label(),
                        cell.failed(),
                        cell.runs.len()
                    );
                    continue;
                };
                let seconds = cell.median_of(|u| u.seconds).unwrap_or(f64::NAN);
                let image = link.image_len as f64;
                let window = typical.window.map_or("1".to_owned(), |(peak, buf_count)| {
                    format!("{:.0} ({peak:.0})", (buf_count - 1.0).max(1.0))
                });
                let requests = match typical.frames_sent {
                    Some(frames) => format!("{:.0} ({frames:.0})", typical.requests),
                    None => format!("{:.0}", typical.requests),
                };
                let ratio = match baseline {
                    Some(b) if b.uploader == cell.uploader => "1".to_owned(),
                    Some(b) => {
                        let pairs: Vec<f64> = cell
                            .runs
                            .iter()
                            .zip(&b.runs)
                            .filter_map(|(ours, theirs)| match (ours, theirs) {
                                (Ok(ours), Ok(theirs)) => Some(theirs.seconds / ours.seconds),
                                _ => None,
                            })
                            .collect();
                        if pairs.is_empty() {
                            "–".to_owned()
                        } else {
                            format!("{}×", spread(&pairs, 2))
                        }
                    }
                    None => "–".to_owned(),
                };
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.0} | {window} | {requests} | {seconds:.2} | {:.1} | {ratio} | {:.2} | {:.3} | {} of {} |",
                    link.title,
                    cell.uploader.label(),
                    typical.frame_limit,
                    image / seconds / 1000.0,
                    typical.bytes_written / image,
                    typical.bytes_read / image,
                    cell.failed(),
                    cell.runs.len(),
                );
            }
        }
        md.push_str(
            "\n| link | client | upload (s) | client CPU (s) | pacing waits (s) | waiting for the device (s) | waiting per request (ms) | bytes out at 115,200 baud (s) |\n\
             |---|---|---:|---:|---:|---:|---:|---:|\n",
        );
        for link in &self.links {
            for cell in &link.cells {
                let Some(typical) = cell.typical() else {
                    continue;
                };
                let seconds = cell.median_of(|u| u.seconds).unwrap_or(f64::NAN);
                let cpu = cell.median_of(|u| u.cpu_seconds).unwrap_or(f64::NAN);
                let pacing = cell.median_of(|u| u.pacing_seconds).unwrap_or(0.0);
                let waiting = (seconds - cpu - pacing).max(0.0);
                let _ = writeln!(
                    md,
                    "| {} | {} | {seconds:.2} | {cpu:.2} | {pacing:.2} | {waiting:.2} | {:.1} | {:.1} |",
                    link.title,
                    cell.uploader.label(),
                    waiting / typical.requests.max(1.0) * 1000.0,
                    typical.bytes_written * 10.0 / BAUD,
                );
            }
        }
        md.push('\n');
        for link in &self.links {
            let find = |pacing| {
                link.cells
                    .iter()
                    .find(|c| c.uploader == Uploader::Ours { pacing })
            };
            let (Some(paced), Some(unpaced)) = (find("2:20"), find("none")) else {
                continue;
            };
            let (Some(paced_s), Some(unpaced_s)) = (
                paced.median_of(|u| u.seconds),
                unpaced.median_of(|u| u.seconds),
            ) else {
                continue;
            };
            let waited = paced.median_of(|u| u.pacing_seconds).unwrap_or(0.0);
            let _ = writeln!(
                md,
                "- {}: fixed pacing (2:20) {paced_s:.2} s against {unpaced_s:.2} s without: \
                 **{:.1}×** the time; it waited {waited:.2} s between lines ({:.0}% of the upload).",
                link.title,
                paced_s / unpaced_s,
                waited / paced_s * 100.0,
            );
        }
        for link in &self.links {
            for cell in &link.cells {
                let failures: Vec<&str> = cell
                    .runs
                    .iter()
                    .filter_map(|r| r.as_ref().err().map(String::as_str))
                    .collect();
                if let Some(first) = failures.first() {
                    let _ = writeln!(
                        md,
                        "- {}, {}: {} of {} uploads failed; the first: `{first}`",
                        link.title,
                        cell.uploader.label(),
                        failures.len(),
                        cell.runs.len(),
                    );
                }
            }
        }
        md
    }

    /// The section of BENCHMARKS.md (and of `target/bench/serial.md`).
    pub(super) fn markdown(&self) -> String {
        let runs = self.runs;
        let sim_kib = SIM_IMAGE_LEN >> 10;
        let sim_args = SIM_ARGS.join(" ");
        format!(
            "## Serial\n\n\
             An MCUboot image uploaded over a serial line (console framing: base64 lines of\n\
             128 bytes with a length and a CRC) by our client (`smp-bench serial-upload`,\n\
             default client options, the pacing said) and by the reference\n\
             (`scripts/smpclient_serial_upload.py`: `smpclient` 7.3.0's `SMPSerialTransport`,\n\
             which never paces lines), alternating, {runs} run(s) each, on a fresh device per\n\
             upload, which `smp-bench serial-wait` waits for (untimed). Each client times its\n\
             upload alone and counts the bytes it wrote and read meanwhile (ours: the serial\n\
             transport's counters, `SerialTransport::stats`; the reference: its port's\n\
             `write` and `read_all`) and the CPU time its process used. The links:\n\n\
             - **smp-sim, pty**: `smp-sim {sim_args}`, shaped like native_sim's\n\
             `serial_bigrx` fixture (a UART that takes bursts, so that the unpaced reference\n\
             gets through), a {sim_kib} KiB image; nothing limits the rate but the two processes.\n\
             - **MCUboot serial recovery (mps2_an385)**: the sdist's `serial_recovery` fixture\n\
             under `qemu-system-arm`, launched with MCUboot alone (the manifest's command\n\
             without the loader of slot 0, as `cargo xtask interop` does for its recovery\n\
             upload), so it stays in recovery (`buf_size` 1024, `buf_count` 1: one request at\n\
             a time); the fixture's own signed application goes into slot 0.\n\
             - **qemu_cortex_m0 application**: the sdist's `qemu_cortex_m0.serial` fixture\n\
             (MCUboot and the application, `buf_size` 384, `buf_count` 4: three chunks in\n\
             flight), the fixture's own signed image into slot 1.\n\n\
             The emulated boards' UART is a TCP chardev with flow control: QEMU reads the\n\
             socket only as fast as the guest empties its UART. `SMPSerialTransport` opens\n\
             device paths only, so for `socket://` the script backs it with pyserial's\n\
             `serial_for_url`, as the reference's own integration suite does for these\n\
             fixtures (only `connect` differs). That socket has Nagle's algorithm on and\n\
             delayed acknowledgements, which cost a reply from QEMU (written in pieces) tens of\n\
             milliseconds; \"socket as ours\" sets `TCP_NODELAY` and `TCP_QUICKACK` as our\n\
             transport does, to compare the clients rather than the sockets. On\n\
             `qemu_cortex_m0` the reference's default sizing (`Auto`: 380-byte frames, five\n\
             lines written at once) stalls the device, as its own suite notes (\"hangs on\n\
             transactions beyond ~three line packets\"); `BufferParams(128, 2)` (169-byte\n\
             frames in two lines) is its setting for a device with few line buffers.\n\n\
             Columns: the frame is the largest request; window is what the client allows\n\
             (`buf_count - 1`, ours) and in parentheses the most chunks it had in flight;\n\
             requests are chunk requests (ours, in parentheses: every frame it sent,\n\
             re-sends and probes included), of the run closest to the median; upload is the\n\
             median time; \"reference time / this\" divides the reference's time by this\n\
             client's in the same run (min–median–max), against the reference's default\n\
             (or, where that failed, the first reference setting that did not); wire bytes\n\
             are all bytes written (base64, line delimiters, length and CRC) and read, per\n\
             byte of the image. The second table splits each median upload: the client's\n\
             own CPU time, the pauses pacing made between lines (ours), and the rest, the\n\
             client idle waiting for the device (its processing, the emulated UART, and for\n\
             the reference its 5 ms polling); and what writing the same bytes would take on\n\
             a real UART at 115,200 baud (8N1), which none of these links has.\n\n\
             {}",
            self.tables()
        )
    }
}

/// Writes the serial section to `target/bench/serial.md` (for `--only serial`, which
/// leaves BENCHMARKS.md alone) and returns its path.
pub(super) fn write_alone(dir: &Path, results: &SerialResults, header: &str) -> Result<PathBuf> {
    let path = dir.join("serial.md");
    let text = format!("{header}\n\n{}", results.markdown());
    fs::write(&path, &text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(seconds: f64, pacing: f64) -> Upload {
        Upload {
            seconds,
            requests: 100.0,
            frames_sent: Some(100.0),
            bytes_written: 1370.0,
            bytes_read: 30.0,
            cpu_seconds: 0.1,
            pacing_seconds: pacing,
            frame_limit: 380.0,
            window: Some((3.0, 4.0)),
        }
    }

    #[test]
    fn tables_compare_with_the_reference_and_split_the_time() {
        let reference = Upload {
            frames_sent: None,
            window: None,
            ..upload(4.0, 0.0)
        };
        let results = SerialResults {
            links: vec![LinkResult {
                title: "link",
                image_len: 1000,
                cells: vec![
                    Cell {
                        uploader: Uploader::Ours { pacing: "2:20" },
                        runs: vec![Ok(upload(8.0, 7.0)), Ok(upload(10.0, 9.0))],
                    },
                    Cell {
                        uploader: Uploader::Reference {
                            line_buffers: None,
                            tune: false,
                        },
                        runs: vec![Ok(reference.clone()), Ok(reference)],
                    },
                    Cell {
                        uploader: Uploader::Ours { pacing: "none" },
                        runs: vec![Ok(upload(1.0, 0.0)), Err("Timeout".into())],
                    },
                ],
            }],
            runs: 2,
        };
        let tables = results.tables();
        assert!(
            tables.contains(
                "| link | ours, fixed pacing (2 lines, 20 ms) | 380 | 3 (3) | 100 (100) | 9.00 | 0.1 | 0.40–0.45–0.50× | 1.37 | 0.030 | 0 of 2 |"
            ),
            "{tables}"
        );
        assert!(tables.contains("| 1 | 100 | 4.00 |"), "{tables}");
        assert!(tables.contains("| 1 | 1.37 | 0.030 | 0 of 2 |"), "{tables}");
        assert!(tables.contains("| 1.00 | 1.0 | 4.00× |"), "{tables}");
        assert!(tables.contains("| 1 of 2 |"), "{tables}");
        // 9 s: 0.1 s of CPU, 8 s of pacing, the rest waiting: 9 ms per request.
        assert!(
            tables.contains("| 9.00 | 0.10 | 8.00 | 0.90 | 9.0 | 0.1 |"),
            "{tables}"
        );
        assert!(tables.contains("**9.0×** the time"), "{tables}");
        assert!(
            tables.contains("- link, ours, no pacing: 1 of 2 uploads failed; the first: `Timeout`"),
            "{tables}"
        );
    }
}
