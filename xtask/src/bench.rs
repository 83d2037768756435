//! `cargo xtask bench [--quick]`: measure our client against the Python reference client
//! on the simulated device, and write `BENCHMARKS.md`.
//!
//! 1. builds `smp-bench` and `smp-sim` in release, the codec benchmarks and the allocation
//!    test (so that a build error shows before the long runs), writes a 1 MiB MCUboot image
//!    with the `sample_image` example of `smp-mcuboot`, and makes sure the interop venv
//!    (the Python reference client `smpclient`) exists;
//! 2. the allocation count per upload chunk and the codec micro-benchmarks (criterion);
//! 3. upload throughput: for every simulated round-trip time and `buf_count`, a fresh
//!    `smp-sim` per upload, our client (`smp-bench upload`) and the reference
//!    (`scripts/smpclient_upload.py`) alternating, [`Plan::runs`] runs each; the
//!    round trip the device really has is measured with echoes first;
//! 4. download throughput: the same matrix for a 256 KiB file from `smp-sim --fs-root`,
//!    `smp-bench download` against `scripts/smpclient_download.py`;
//! 5. echo round trip: the raw UDP floor, bare SMP frames to `smp-sim`, our client and the
//!    reference, alternating;
//! 6. fleet: N simulated devices in one process, one image uploaded to all at once;
//! 7. loss: an image upload and a file download at 20 ms round trip with 1, 5 and 10%
//!    of the datagrams lost each way, against the lossless transfer ([`loss`]);
//! 8. serial: an image upload over serial on `smp-sim` over a pseudo-terminal and on two
//!    emulated fixtures of the `smpclient` sdist, ours against the reference ([`serial`]);
//! 9. fleet upgrade: `Client::upgrade` on 1 to 256 simulated devices at once, the
//!    library and the `smp` binary ([`fleet_upgrade`]);
//! 10. `BENCHMARKS.md` at the workspace root, with a description of the machine.
//!
//! `--only loss` (or `serial`, or `fleet-upgrade`) runs that section alone (after the
//! builds it needs) and writes its table to `target/bench/loss.md` (`serial.md`,
//! `fleet-upgrade.md`), leaving `BENCHMARKS.md` as it is.
//!
//! Timing is never a pass/fail criterion here: the task fails only when a tool fails.
//! Every `smp-sim` is stopped by its process id however the task ends.

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{self, Result};

mod fleet_upgrade;
mod loss;
mod serial;

/// Simulated round-trip times, in milliseconds.
const RTTS_MS: [u32; 3] = [0, 5, 20];
/// Simulated `buf_count`s; our client keeps up to `buf_count - 1` requests in flight.
const BUF_COUNTS: [u32; 3] = [2, 4, 8];
/// The uploaded image: exactly 1 MiB, header and TLVs included.
const IMAGE_LEN: u64 = 1 << 20;
/// What `sample_image` adds around the body: the 512-byte header area, the TLV info
/// (4 bytes) and the SHA-256 TLV (4 + 32 bytes).
const IMAGE_OVERHEAD: u64 = 512 + 4 + 36;
/// Image data one chunk carries in a 1472-byte frame (a 1500-byte MTU less IP and UDP
/// headers) once the offset needs 4 bytes: the size of almost every chunk of the upload.
const CHUNK: f64 = 1446.0;
/// The downloaded file: the first 256 KiB of the image, served by `smp-sim --fs-root`.
const DOWNLOAD_LEN: u64 = 256 << 10;
/// Where the file is on the simulated device.
const DOWNLOAD_NAME: &str = "/lfs1/bench.bin";
/// Characters per echo request.
const ECHO_SIZE: u32 = 32;
/// Devices of the fleet runs.
const FLEET: [u32; 3] = [1, 16, 64];
/// Round trip and `buf_count` of every fleet device: latency-bound, so that total
/// throughput can grow with the number of devices until the CPU is the limit.
const FLEET_RTT_MS: u32 = 20;
const FLEET_BUF_COUNT: u32 = 4;
/// What `smp-sim` prints on stdout, followed by its address, once it serves.
/// The regeneration command written into `BENCHMARKS.md`.
const REGENERATE: &str = "cargo xtask bench";

/// Options of the task.
#[derive(Debug, Default)]
pub(crate) struct Options {
    quick: bool,
    /// Run the loss section alone (`--only loss`).
    only_loss: bool,
    /// Run the serial section alone (`--only serial`).
    only_serial: bool,
    /// Run the fleet-upgrade section alone (`--only fleet-upgrade`).
    only_fleet_upgrade: bool,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Self> {
        let mut options = Self::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => options.quick = true,
                "--only" => match args.next().map(String::as_str) {
                    Some("loss") => options.only_loss = true,
                    Some("serial") => options.only_serial = true,
                    Some("fleet-upgrade") => options.only_fleet_upgrade = true,
                    other => {
                        return Err(format!(
                            "bench: --only takes a section (known: loss, serial, fleet-upgrade), got {other:?}"
                        ));
                    }
                },
                other => {
                    return Err(format!(
                        "bench: unknown option `{other}` (known: --quick, --only loss|serial|fleet-upgrade)"
                    ));
                }
            }
        }
        Ok(options)
    }
}

/// How much to measure.
#[derive(Debug, Clone, Copy)]
struct Plan {
    quick: bool,
    /// Uploads per client and configuration, and echo runs per client.
    runs: usize,
    /// Timed echoes per run of our client, the raw frames and the floor.
    echoes: u32,
    /// Timed echoes per run of the reference (hundreds of microseconds each).
    reference_echoes: u32,
    /// Echoes that measure a simulated device's real round trip.
    rtt_probes: u32,
    /// Image size of the fleet runs.
    fleet_kib: u32,
    /// Criterion's warm-up and measurement time per benchmark, in seconds.
    criterion_secs: (&'static str, &'static str),
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                quick,
                runs: 1,
                echoes: 1000,
                reference_echoes: 300,
                rtt_probes: 20,
                fleet_kib: 256,
                criterion_secs: ("0.5", "1"),
            }
        } else {
            Self {
                quick,
                runs: 3,
                echoes: 5000,
                reference_echoes: 2000,
                rtt_probes: 50,
                fleet_kib: 1024,
                criterion_secs: ("2", "4"),
            }
        }
    }
}

/// Programs and files every measurement uses.
struct Tools {
    bench: PathBuf,
    sim: PathBuf,
    python: PathBuf,
    scripts: PathBuf,
    image: PathBuf,
    dir: PathBuf,
}

pub(crate) fn run(options: Options) -> Result {
    let started = Instant::now();
    let plan = Plan::new(options.quick);
    let root = util::root();
    let target = util::target_dir();
    let dir = target.join("bench");
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let load_before = load_average();
    // The commit (and whether the tree has changes) as it is built now: the tree may
    // move on during the half hour the measurements take.
    let mut machine = Machine::describe(load_before.clone());

    // Everything is compiled before anything is measured, so that a build error shows
    // in a minute rather than after the long runs.
    util::heading("bench: build smp-bench, smp-sim, the codec benchmarks and the allocation test");
    let mut build = util::cargo();
    build.args([
        "build",
        "--release",
        "-p",
        "smp-bench",
        "--bin",
        "smp-bench",
    ]);
    build.args(["-p", "smp-sim", "--bin", "smp-sim"]);
    build.args(["-p", "smp-cli", "--bin", "smp"]);
    let mut build_codec = util::cargo();
    build_codec.args(["bench", "--no-run", "-p", "smp-client", "--bench", "codec"]);
    let mut build_allocations = util::cargo();
    build_allocations.args([
        "test",
        "--no-run",
        "-p",
        "smp-client",
        "--test",
        "allocations",
    ]);
    let builds = if options.only_loss || options.only_serial || options.only_fleet_upgrade {
        vec![&mut build]
    } else {
        vec![&mut build, &mut build_codec, &mut build_allocations]
    };
    for command in builds {
        println!("$ {}", util::show(command));
        util::run(command)?;
    }

    util::heading("bench: write MCUboot images of 1 MiB and 256 KiB");
    let image = write_image(&dir.join("app-1MiB.bin"), IMAGE_LEN)?;
    let loss_image = write_image(&dir.join("app-256KiB.bin"), loss::IMAGE_LEN)?;

    if options.only_fleet_upgrade {
        return fleet_upgrade_alone(plan, started, &load_before);
    }

    util::heading("bench: the Python reference client (interop venv)");
    let interop = target.join("interop");
    fs::create_dir_all(&interop)
        .map_err(|e| format!("cannot create {}: {e}", interop.display()))?;
    crate::interop::ensure_venv(&interop)?;

    let tools = Tools {
        bench: target.join("release/smp-bench"),
        sim: target.join("release/smp-sim"),
        python: interop.join("venv/bin/python"),
        scripts: root.join("scripts"),
        image,
        dir,
    };
    if options.only_loss {
        let loss = loss::loss_matrix(&tools, plan, &loss_image)?;
        let header = format!(
            "# Loss section of `cargo xtask bench --only loss{}`\n\nCommit {}, {}; load average \
             (1, 5, 15 min) {load_before} before, {} after; {}.",
            if plan.quick { " --quick" } else { "" },
            output(Command::new("git").args(["rev-parse", "--short", "HEAD"])),
            output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])),
            load_average(),
            util::seconds(started.elapsed()),
        );
        let path = loss::write_alone(&tools, &loss, &header)?;
        println!("\n{}", loss.table());
        println!("bench: wrote {path} (BENCHMARKS.md left as it is)");
        return Ok(());
    }
    if options.only_serial {
        let serial = serial::serial_uploads(&tools, plan.quick, &loss_image)?;
        let header = format!(
            "# Serial section of `cargo xtask bench --only serial{}`\n\nCommit {}, {}; load \
             average (1, 5, 15 min) {load_before} before, {} after; {}.",
            if plan.quick { " --quick" } else { "" },
            output(Command::new("git").args(["rev-parse", "--short", "HEAD"])),
            output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])),
            load_average(),
            util::seconds(started.elapsed()),
        );
        let path = serial::write_alone(&tools.dir, &serial, &header)?;
        println!("\n{}", serial.tables());
        println!(
            "bench: wrote {} (BENCHMARKS.md left as it is)",
            path.display()
        );
        return Ok(());
    }
    let reliability = fault_matrix()?;
    let allocations = allocations_per_chunk()?;
    let codec = codec_benchmarks(plan)?;
    let uploads = upload_matrix(&tools, plan)?;
    let downloads = download_matrix(&tools, plan)?;
    let echo = echo_round_trips(&tools, plan)?;
    let fleet = fleet_runs(&tools, plan)?;
    let loss = loss::loss_matrix(&tools, plan, &loss_image)?;
    let serial = serial::serial_uploads(&tools, plan.quick, &loss_image)?;
    let fleet_upgrade = fleet_upgrade::measure(plan)?;

    let report = Report {
        plan,
        machine: {
            machine.load_after = load_average();
            machine
        },
        uploads,
        downloads,
        echo,
        fleet,
        loss,
        serial,
        fleet_upgrade,
        codec,
        allocations,
        reliability,
        elapsed: started.elapsed(),
    };
    let path = root.join("BENCHMARKS.md");
    fs::write(&path, report.markdown())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("\n{}", report.summary());
    println!(
        "bench: wrote {} in {}",
        path.display(),
        util::seconds(started.elapsed())
    );
    Ok(())
}

/// `--only fleet-upgrade`: the section alone, into `target/bench/fleet-upgrade.md`.
fn fleet_upgrade_alone(plan: Plan, started: Instant, load_before: &str) -> Result {
    let results = fleet_upgrade::measure(plan)?;
    let header = format!(
        "# Fleet-upgrade section of `cargo xtask bench --only fleet-upgrade{}`\n\nCommit {}, {}; \
         load average (1, 5, 15 min) {load_before} before, {} after; {}.",
        if plan.quick { " --quick" } else { "" },
        output(Command::new("git").args(["rev-parse", "--short", "HEAD"])),
        output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])),
        load_average(),
        util::seconds(started.elapsed()),
    );
    let path = fleet_upgrade::write_alone(&results, &header)?;
    println!("\n{}", results.table());
    println!("bench: wrote {path} (BENCHMARKS.md left as it is)");
    Ok(())
}

/// One cell of a transfer table: a simulated device's settings, every run's seconds,
/// and what our client saw of the device.
#[derive(Debug)]
struct TransferCell {
    rtt_ms: u32,
    buf_count: u32,
    /// Median echo round trip of this device, in milliseconds (`None` at RTT 0).
    measured_rtt_ms: Option<f64>,
    ours: Vec<f64>,
    reference: Vec<f64>,
    /// Bytes moved per run.
    bytes: u64,
    /// Requests our client sent, and the most it had in flight (its last run's).
    requests: u64,
    peak: u64,
}

impl TransferCell {
    /// Median throughput of ours and of the reference, in KB/s.
    fn median_kb_per_s(&self) -> (f64, f64) {
        let rate = |seconds: &f64| self.bytes as f64 / seconds / 1000.0;
        let rates = |seconds: &[f64]| median(&seconds.iter().map(rate).collect::<Vec<_>>());
        (rates(&self.ours), rates(&self.reference))
    }

    /// The table row: the device bound is window × `per_request` bytes / round trip.
    fn row(&self, per_request: f64) -> String {
        let (ours, reference) = self.median_kb_per_s();
        let ratios: Vec<f64> = self
            .ours
            .iter()
            .zip(&self.reference)
            .map(|(ours, reference)| reference / ours)
            .collect();
        let window = self.buf_count - 1;
        let (measured, bound, of_bound) = match self.measured_rtt_ms {
            Some(rtt) => {
                let bound = f64::from(window) * per_request / (rtt / 1000.0) / 1000.0;
                (
                    format!("{rtt:.2}"),
                    format!("{bound:.0}"),
                    format!("{:.0}%", ours / bound * 100.0),
                )
            }
            None => ("–".to_owned(), "CPU-bound / n/a".to_owned(), "–".to_owned()),
        };
        format!(
            "| {} | {measured} | {} | {window} ({}) | {} | {ours:.0} | {reference:.0} | {}× | {bound} | {of_bound} |",
            self.rtt_ms,
            self.buf_count,
            self.peak,
            self.requests,
            spread(&ratios, 2),
        )
    }

    /// One line of the terminal summary.
    fn summary(&self, kind: &str) -> String {
        let (ours, reference) = self.median_kb_per_s();
        format!(
            "  {kind} RTT {:>2} ms, buf_count {}: ours {ours:>7.0} KB/s, reference {reference:>6.0} KB/s ({:.2}×)",
            self.rtt_ms,
            self.buf_count,
            ours / reference
        )
    }
}

/// The head of a transfer table, whose rows [`TransferCell::row`] writes.
const TRANSFER_TABLE_HEAD: &str = "\
| RTT (ms) | measured RTT (ms) | buf_count | window (peak) | requests | ours KB/s | reference KB/s | ours/reference | device bound KB/s | ours/bound |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
";

/// One transfer, for every simulated round trip and `buf_count`.
struct Transfer<'a> {
    /// `upload` or `download`, for headings.
    kind: &'static str,
    /// Bytes moved per run.
    bytes: u64,
    /// `smp-sim` arguments besides the round trip and the buffers.
    sim_args: &'a [String],
    /// Our client's command (`smp-bench`) for a device at an address.
    ours: &'a dyn Fn(SocketAddr) -> Command,
    /// The reference client's command for a device at a port of 127.0.0.1.
    reference: &'a dyn Fn(u16) -> Command,
}

/// Runs `transfer` against a fresh `smp-sim` per run, ours and the reference
/// alternating, [`Plan::runs`] runs each per configuration.
fn transfer_matrix(
    tools: &Tools,
    plan: Plan,
    transfer: &Transfer<'_>,
) -> Result<Vec<TransferCell>> {
    let mut cells = Vec::new();
    let total = RTTS_MS.len() * BUF_COUNTS.len();
    for rtt_ms in RTTS_MS {
        for buf_count in BUF_COUNTS {
            util::heading(&format!(
                "bench: {} [{}/{total}] RTT {rtt_ms} ms, buf_count {buf_count}",
                transfer.kind,
                cells.len() + 1
            ));
            let mut sim_args = vec![
                "--rtt-ms".to_owned(),
                rtt_ms.to_string(),
                "--buf-count".to_owned(),
                buf_count.to_string(),
            ];
            sim_args.extend_from_slice(transfer.sim_args);
            let mut cell = TransferCell {
                rtt_ms,
                buf_count,
                measured_rtt_ms: measured_rtt_ms(tools, plan, rtt_ms, &sim_args)?,
                ours: Vec::new(),
                reference: Vec::new(),
                bytes: transfer.bytes,
                requests: 0,
                peak: 0,
            };
            for run in 1..=plan.runs {
                let sim = Sim::start(tools, &sim_args)?;
                let ours = util::capture(&mut (transfer.ours)(sim.addr))?;
                drop(sim);
                let number = |key| json_number(&ours, key).ok_or_else(|| no_key(&ours));
                let seconds = number("seconds")?;
                // Counts, which smp-bench prints as integers.
                (cell.requests, cell.peak) =
                    (number("chunks")? as u64, number("max_in_flight")? as u64);
                let sim = Sim::start(tools, &sim_args)?;
                let reference = util::capture(&mut (transfer.reference)(sim.addr.port()))?;
                drop(sim);
                // (Not a let chain: those need Rust 1.88, the workspace declares 1.85.)
                let moved = json_number(&reference, "bytes");
                if let Some(bytes) = moved.filter(|&bytes| bytes != transfer.bytes as f64) {
                    return Err(format!(
                        "the reference client moved {bytes} bytes, not {}",
                        transfer.bytes
                    ));
                }
                let reference =
                    json_number(&reference, "seconds").ok_or_else(|| no_key(&reference))?;
                println!(
                    "  run {run}/{}: ours {:.0} KB/s, reference {:.0} KB/s",
                    plan.runs,
                    transfer.bytes as f64 / seconds / 1000.0,
                    transfer.bytes as f64 / reference / 1000.0
                );
                cell.ours.push(seconds);
                cell.reference.push(reference);
            }
            cells.push(cell);
        }
    }
    Ok(cells)
}

fn upload_matrix(tools: &Tools, plan: Plan) -> Result<Vec<TransferCell>> {
    let ours = |addr: SocketAddr| {
        let mut command = Command::new(&tools.bench);
        command
            .args(["upload", "--addr", &addr.to_string(), "--image"])
            .arg(&tools.image);
        command
    };
    let reference = |port: u16| {
        let mut command = Command::new(&tools.python);
        command
            .arg(tools.scripts.join("smpclient_upload.py"))
            .args(["127.0.0.1", &port.to_string()])
            .arg(&tools.image);
        command
    };
    let transfer = Transfer {
        kind: "upload",
        bytes: IMAGE_LEN,
        sim_args: &[],
        ours: &ours,
        reference: &reference,
    };
    transfer_matrix(tools, plan, &transfer)
}

/// Writes the downloaded file (the start of the 1 MiB image) into the folder smp-sim
/// serves as /lfs1; returns that folder and the file.
fn download_file(tools: &Tools) -> Result<(PathBuf, PathBuf)> {
    let root = tools.dir.join("fs");
    fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    let local = root.join("bench.bin");
    let image = fs::read(&tools.image)
        .map_err(|e| format!("cannot read {}: {e}", tools.image.display()))?;
    let len = usize::try_from(DOWNLOAD_LEN).map_err(|e| e.to_string())?;
    fs::write(&local, &image[..len])
        .map_err(|e| format!("cannot write {}: {e}", local.display()))?;
    Ok((root, local))
}

/// Writes a sample MCUboot image of exactly `len` bytes to `path`.
fn write_image(path: &std::path::Path, len: u64) -> Result<PathBuf> {
    let mut sample = util::sample_image(path, "1.2.3", &(len - IMAGE_OVERHEAD).to_string());
    println!("$ {}", util::show(&sample));
    util::run(&mut sample)?;
    let written = fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .len();
    if written != len {
        return Err(format!(
            "{} has {written} bytes, not {len}: update IMAGE_OVERHEAD in xtask/src/bench.rs",
            path.display()
        ));
    }
    Ok(path.to_path_buf())
}

fn download_matrix(tools: &Tools, plan: Plan) -> Result<Vec<TransferCell>> {
    let (root, local) = download_file(tools)?;
    let ours = |addr: SocketAddr| {
        let mut command = Command::new(&tools.bench);
        command
            .args(["download", "--addr", &addr.to_string()])
            .args(["--name", DOWNLOAD_NAME, "--expect"])
            .arg(&local);
        command
    };
    let reference = |port: u16| {
        let mut command = Command::new(&tools.python);
        command
            .arg(tools.scripts.join("smpclient_download.py"))
            .args(["127.0.0.1", &port.to_string(), DOWNLOAD_NAME]);
        command
    };
    let transfer = Transfer {
        kind: "download",
        bytes: DOWNLOAD_LEN,
        sim_args: &["--fs-root".to_owned(), root.display().to_string()],
        ours: &ours,
        reference: &reference,
    };
    transfer_matrix(tools, plan, &transfer)
}

/// The round trip a simulated device started with `sim_args` really has, in
/// milliseconds, measured with echoes; `None` when no delay is simulated.
fn measured_rtt_ms(
    tools: &Tools,
    plan: Plan,
    rtt_ms: u32,
    sim_args: &[String],
) -> Result<Option<f64>> {
    if rtt_ms == 0 {
        return Ok(None);
    }
    let sim = Sim::start(tools, sim_args)?;
    let out = util::capture(Command::new(&tools.bench).args([
        "echo",
        "--addr",
        &sim.addr.to_string(),
        "--count",
        &plan.rtt_probes.to_string(),
    ]))?;
    let median = json_number(&out, "median_us").ok_or_else(|| no_key(&out))?;
    println!(
        "  echo round trip of this device: {:.2} ms",
        median / 1000.0
    );
    Ok(Some(median / 1000.0))
}

/// Median echo round trips, in microseconds, of every run.
#[derive(Debug, Default)]
struct EchoResults {
    floor: Vec<f64>,
    raw: Vec<f64>,
    ours: Vec<f64>,
    reference: Vec<f64>,
    /// 90th percentiles of the same runs.
    floor_p90: Vec<f64>,
    raw_p90: Vec<f64>,
    ours_p90: Vec<f64>,
    reference_p90: Vec<f64>,
}

fn echo_round_trips(tools: &Tools, plan: Plan) -> Result<EchoResults> {
    util::heading("bench: echo round trip on loopback");
    let sim = Sim::start(tools, &[])?;
    let addr = sim.addr.to_string();
    let (count, size) = (plan.echoes.to_string(), ECHO_SIZE.to_string());
    let mut results = EchoResults::default();
    let median_p90 = |out: &str| -> Result<(f64, f64)> {
        Ok((
            json_number(out, "median_us").ok_or_else(|| no_key(out))?,
            json_number(out, "p90_us").ok_or_else(|| no_key(out))?,
        ))
    };
    for run in 1..=plan.runs {
        let floor = util::capture(Command::new(&tools.bench).args([
            "udp-floor",
            "--count",
            &count,
            "--size",
            &size,
        ]))?;
        let raw = util::capture(Command::new(&tools.bench).args([
            "echo", "--addr", &addr, "--count", &count, "--size", &size, "--raw",
        ]))?;
        let ours = util::capture(
            Command::new(&tools.bench)
                .args(["echo", "--addr", &addr, "--count", &count, "--size", &size]),
        )?;
        let reference = util::capture(
            Command::new(&tools.python)
                .arg(tools.scripts.join("smpclient_echo.py"))
                .arg("127.0.0.1")
                .arg(sim.addr.port().to_string())
                .arg(plan.reference_echoes.to_string())
                .arg(&size),
        )?;
        for (out, median, p90) in [
            (&floor, &mut results.floor, &mut results.floor_p90),
            (&raw, &mut results.raw, &mut results.raw_p90),
            (&ours, &mut results.ours, &mut results.ours_p90),
            (
                &reference,
                &mut results.reference,
                &mut results.reference_p90,
            ),
        ] {
            let (m, p) = median_p90(out)?;
            median.push(m);
            p90.push(p);
        }
        println!(
            "  run {run}/{}: floor {:.1} us, raw SMP frames {:.1} us, ours {:.1} us, reference {:.1} us",
            plan.runs,
            results.floor[run - 1],
            results.raw[run - 1],
            results.ours[run - 1],
            results.reference[run - 1],
        );
    }
    Ok(results)
}

/// One fleet run, as `smp-bench fleet` reports it.
#[derive(Debug)]
struct FleetRun {
    devices: u32,
    seconds: f64,
    bytes_per_second: f64,
    median_device_seconds: f64,
    peak_rss_kib: f64,
    rss_before_kib: f64,
}

fn fleet_runs(tools: &Tools, plan: Plan) -> Result<Vec<FleetRun>> {
    let mut runs = Vec::new();
    for devices in FLEET {
        util::heading(&format!(
            "bench: fleet of {devices} simulated devices, {} KiB image each",
            plan.fleet_kib
        ));
        let out = util::capture(Command::new(&tools.bench).args([
            "fleet".to_owned(),
            "--devices".to_owned(),
            devices.to_string(),
            "--image-kib".to_owned(),
            plan.fleet_kib.to_string(),
            "--rtt-ms".to_owned(),
            FLEET_RTT_MS.to_string(),
            "--buf-count".to_owned(),
            FLEET_BUF_COUNT.to_string(),
        ]))?;
        let get = |key: &str| json_number(&out, key).ok_or_else(|| no_key(&out));
        let run = FleetRun {
            devices,
            seconds: get("seconds")?,
            bytes_per_second: get("bytes_per_second")?,
            median_device_seconds: get("median_us")? / 1e6,
            peak_rss_kib: get("peak_rss_kib")?,
            rss_before_kib: get("rss_before_uploads_kib")?,
        };
        println!(
            "  {:.2} s, {:.0} KB/s in total, peak RSS {:.1} MiB",
            run.seconds,
            run.bytes_per_second / 1000.0,
            run.peak_rss_kib / 1024.0
        );
        runs.push(run);
    }
    Ok(runs)
}

/// `(benchmark, median ns)` of the criterion benchmarks of `smp-client`'s `codec`.
fn codec_benchmarks(plan: Plan) -> Result<Vec<(String, f64)>> {
    util::heading("bench: codec micro-benchmarks (criterion)");
    let mut bench = util::cargo();
    bench
        .args(["bench", "-p", "smp-client", "--bench", "codec", "--"])
        .args(["--warm-up-time", plan.criterion_secs.0])
        .args(["--measurement-time", plan.criterion_secs.1]);
    println!("$ {}", util::show(&bench));
    let started = std::time::SystemTime::now();
    util::run(&mut bench)?;
    let dir = util::target_dir().join("criterion");
    let mut results = Vec::new();
    let groups = fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for group in groups.flatten() {
        let Ok(benches) = fs::read_dir(group.path()) else {
            continue;
        };
        for bench in benches.flatten() {
            let estimates = bench.path().join("new/estimates.json");
            // Benchmarks this run did not write (renamed or removed ones) are left out.
            let fresh = fs::metadata(&estimates)
                .and_then(|m| m.modified())
                .is_ok_and(|modified| modified >= started);
            let Ok(json) = fs::read_to_string(&estimates) else {
                continue;
            };
            if !fresh {
                continue;
            }
            // {"mean": {..., "point_estimate": x, ...}, "median": {..., "point_estimate": y}}
            let median = json
                .find("\"median\"")
                .and_then(|at| json_number(&json[at..], "point_estimate"))
                .ok_or_else(|| format!("no median in {}", estimates.display()))?;
            results.push((
                format!(
                    "{}/{}",
                    group.file_name().to_string_lossy(),
                    bench.file_name().to_string_lossy()
                ),
                median,
            ));
        }
    }
    results.sort_by(|a, b| a.0.cmp(&b.0));
    if results.is_empty() {
        return Err(format!(
            "criterion left no estimates under {}",
            dir.display()
        ));
    }
    Ok(results)
}

/// The fault matrix of `tests/faults.rs`: the table it prints, line by line.
fn fault_matrix() -> Result<Vec<String>> {
    util::heading("bench: the fault matrix (reliability)");
    let mut test = util::cargo();
    test.args([
        "test",
        "-q",
        "-p",
        "smp-integration-tests",
        "--test",
        "faults",
    ])
    .args(["fault_matrix", "--", "--exact", "--nocapture"]);
    println!("$ {}", util::show(&test));
    let out = util::capture(&mut test)?;
    print!("{out}");
    let table: Vec<String> = out
        .lines()
        .filter(|line| line.starts_with('|'))
        .map(str::to_owned)
        .collect();
    if table.len() < 3 {
        return Err(format!("the fault matrix printed no table:\n{out}"));
    }
    Ok(table)
}

/// What the allocation test printed: allocations per upload chunk, client only.
fn allocations_per_chunk() -> Result<String> {
    util::heading("bench: allocations per upload chunk");
    let mut test = util::cargo();
    test.args(["test", "-q", "-p", "smp-client", "--test", "allocations"])
        .args(["--", "--nocapture"]);
    println!("$ {}", util::show(&test));
    let out = util::capture(&mut test)?;
    print!("{out}");
    out.lines()
        .find_map(|line| line.strip_prefix("allocations: "))
        .map(str::to_owned)
        .ok_or_else(|| format!("the allocation test printed no `allocations: ` line:\n{out}"))
}

/// A running `smp-sim` (stopped when dropped) and its address.
struct Sim {
    _process: crate::sim::SimGuard,
    addr: SocketAddr,
}

impl Sim {
    /// Starts `smp-sim` on a free port of 127.0.0.1 with `args`, its log in the bench
    /// folder, and waits until it serves.
    fn start(tools: &Tools, args: &[String]) -> Result<Self> {
        let mut command = Command::new(&tools.sim);
        command.args(["--addr", "127.0.0.1:0"]).args(args);
        let (process, addr) =
            crate::sim::start_sim(command, &tools.dir.join("smp-sim.log"), "bench")?;
        Ok(Self {
            _process: process,
            addr,
        })
    }
}

fn no_key(out: &str) -> String {
    format!("unexpected output: {}", out.trim())
}

/// The number after the first `"key":` in `json`.
///
/// Not a JSON parser (xtask has no dependencies): it relies on the tools printing each
/// key once, or the wanted one first, as `"key": number` (spaces allowed).
fn json_number(json: &str, key: &str) -> Option<f64> {
    let quoted = format!("\"{key}\"");
    json.match_indices(&quoted).find_map(|(at, _)| {
        let rest = json[at + quoted.len()..].trim_start().strip_prefix(':')?;
        let rest = rest.trim_start();
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
            .unwrap_or(rest.len());
        rest[..end].parse().ok()
    })
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// `min–median–max` of `values` with `decimals`.
fn spread(values: &[f64], decimals: usize) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if values.len() == 1 {
        return format!("{:.decimals$}", values[0]);
    }
    format!(
        "{min:.decimals$}–{:.decimals$}–{max:.decimals$}",
        median(values)
    )
}

/// The machine the numbers come from.
#[derive(Debug)]
struct Machine {
    cpu: String,
    cores: String,
    memory: String,
    os: String,
    rustc: String,
    python: String,
    commit: String,
    date: String,
    load_before: String,
    load_after: String,
}

impl Machine {
    fn describe(load_before: String) -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name")?.split_once(':'))
            .map_or("unknown".to_owned(), |(_, model)| model.trim().to_owned());
        let logical = cpuinfo
            .lines()
            .filter(|line| line.starts_with("processor"))
            .count();
        let usable = std::thread::available_parallelism().map_or(0, usize::from);
        let memory = fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|info| {
                let kib = json_number(&info.replace("MemTotal:", "\"MemTotal\":"), "MemTotal")?;
                Some(format!("{:.1} GiB", kib / 1024.0 / 1024.0))
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let os_release = fs::read_to_string("/etc/os-release").unwrap_or_default();
        let distro = os_release
            .lines()
            .find_map(|line| line.strip_prefix("PRETTY_NAME="))
            .map_or("unknown", |name| name.trim_matches('"'));
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let python = util::target_dir().join("interop/venv/bin/python");
        let commit = output(Command::new("git").args(["rev-parse", "--short", "HEAD"]));
        // The report itself does not count: it is what this run rewrites. (Not `output`,
        // which answers "unknown" for no output.)
        let changed = Command::new("git")
            .args(["status", "--porcelain", "--", ".", ":!BENCHMARKS.md"])
            .current_dir(util::root())
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map_or_else(
                || "git status failed".to_owned(),
                |out| String::from_utf8_lossy(&out.stdout).trim_end().to_owned(),
            );
        if !changed.is_empty() {
            println!("bench: uncommitted changes in the measured tree:\n{changed}");
        }
        let dirty = !changed.is_empty();
        Self {
            cpu,
            cores: format!("{usable} usable ({logical} logical CPUs in /proc/cpuinfo)"),
            memory,
            os: format!("{distro}, Linux {}", kernel.trim()),
            rustc: output(Command::new(rustc).arg("--version")),
            python: output(Command::new(python).arg("--version")),
            commit: if dirty {
                format!("{commit} with uncommitted changes")
            } else {
                commit
            },
            date: output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])),
            load_before,
            load_after: load_average(),
        }
    }
}

/// The first line a command prints, or `unknown`.
fn output(command: &mut Command) -> String {
    command
        .current_dir(util::root())
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .map(|line| line.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|load| {
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Everything measured, ready to print.
struct Report {
    plan: Plan,
    machine: Machine,
    uploads: Vec<TransferCell>,
    downloads: Vec<TransferCell>,
    echo: EchoResults,
    fleet: Vec<FleetRun>,
    loss: loss::LossResults,
    serial: serial::SerialResults,
    fleet_upgrade: fleet_upgrade::FleetUpgradeResults,
    codec: Vec<(String, f64)>,
    allocations: String,
    /// The fault matrix's table, as `tests/faults.rs` prints it.
    reliability: Vec<String>,
    elapsed: Duration,
}

impl Report {
    fn markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let plan = &self.plan;
        let _ = write!(
            md,
            "# Benchmarks\n\n\
             <!-- Generated by `{REGENERATE}` (xtask/src/bench.rs): edit the generator, not this file. -->\n\n\
             How fast this workspace's SMP client is against the Python reference client\n\
             (`smpclient` 7.3.0) on the same simulated Zephyr device (`smp-sim`) over loopback UDP,\n\
             measured in the same run, alternating between the two clients. The simulated device\n\
             adds a configurable network round trip and models Zephyr's `buf_count` buffers; it\n\
             has no flash delays here, so at RTT 0 both clients are CPU-bound. Our client runs\n\
             with its default settings (upload window automatic: up to `buf_count - 1` chunks in\n\
             flight when the client pipelines uploads). Timing is never a test: these are numbers\n\
             from one run on one machine, which may be shared with other work and so noisy.\n\n\
             Regenerate with:\n\n\
             ```sh\n\
             {REGENERATE}            # about 30 minutes; --quick: 1 run each, smaller samples\n\
             {REGENERATE} --only loss  # the loss section alone, into target/bench/loss.md\n\
             {REGENERATE} --only serial  # the serial section alone, into target/bench/serial.md\n\
             {REGENERATE} --only fleet-upgrade  # likewise, into target/bench/fleet-upgrade.md\n\
             ```\n\n",
        );
        if plan.quick {
            md.push_str(
                "**This file comes from a `--quick` run**: one run per configuration and smaller \
                 samples; the spreads below are not meaningful.\n\n",
            );
        }
        let _ = write!(
            md,
            "## Machine\n\n\
             | | |\n|---|---|\n\
             | CPU | {} |\n| cores | {} |\n| memory | {} |\n| OS | {} |\n| Rust | {} |\n\
             | Python (reference) | {} |\n| commit | {} |\n| date | {} |\n\
             | load average (1, 5, 15 min) | {} before, {} after |\n| duration | {} |\n\n",
            m.cpu,
            m.cores,
            m.memory,
            m.os,
            m.rustc,
            m.python,
            m.commit,
            m.date,
            m.load_before,
            m.load_after,
            util::seconds(self.elapsed),
        );
        self.upload_section(&mut md);
        self.download_section(&mut md);
        self.echo_section(&mut md);
        self.fleet_section(&mut md);
        md.push_str(&self.fleet_upgrade.markdown());
        md.push_str(&self.loss.markdown());
        md.push('\n');
        md.push_str(&self.serial.markdown());
        md.push('\n');
        self.micro_section(&mut md);
        self.reliability_section(&mut md);
        md
    }

    fn reliability_section(&self, md: &mut String) {
        md.push_str(
            "\n## Reliability\n\n\
             The fault matrix of `tests/faults.rs` (`cargo test -p smp-integration-tests --test \
             faults fault_matrix -- --nocapture`): a 64 KiB image upload, a 64 KiB file upload, \
             a 64 KiB file download and 30 checked echoes against `smp-sim` over loopback UDP under each seeded fault. \
             Each cell must end with the data byte-identical, or, for the permanent faults, in \
             the typed error after exactly the attempts the retry policy allows; the test fails \
             otherwise. Each cell's time is this run's, and \"× no fault\" divides it by the \
             same operation's time in the first row: what recovering from the fault costs \
             (measured, never asserted; the no-fault row runs alone first, the others \
             four at a time, so their times are noisy).\n\n",
        );
        for line in &self.reliability {
            md.push_str(line);
            md.push('\n');
        }
    }

    fn upload_section(&self, md: &mut String) {
        let runs = self.plan.runs;
        let _ = write!(
            md,
            "## Upload throughput\n\n\
             A 1 MiB MCUboot image (1,048,576 bytes, header and TLVs included) uploaded to a fresh\n\
             `smp-sim --rtt-ms R --buf-count B` per upload; {runs} run(s) per client, ours\n\
             (`smp-bench upload`, default options) and the reference\n\
             (`scripts/smpclient_upload.py`, `SMPClient.upload()`) alternating. Each client's\n\
             upload alone is timed (not connecting). KB/s = 1000 bytes per second, median of the\n\
             runs; ours/reference is per pair of alternating runs, min–median–max.\n\n\
             The device bound is what a client can get from the simulated device:\n\
             window × chunk / round trip, with window = `buf_count - 1` (the requests a Zephyr\n\
             UDP server can hold besides the one it is answering), chunk = {CHUNK:.0} bytes (the\n\
             image data in a 1472-byte frame) and the round trip the device really has, measured\n\
             with echoes just before (the simulator's timers round each one-way delay up to the\n\
             next millisecond, so it exceeds the nominal RTT). The device's processing rate is\n\
             not a limit here: no flash delays are simulated, so at RTT 0 the bound is the CPU\n\
             (n/a). The window's peak in parentheses is the most requests our client had in\n\
             flight, and requests are those it sent, in its last run.\n\n\
             {TRANSFER_TABLE_HEAD}",
        );
        for cell in &self.uploads {
            let _ = writeln!(md, "{}", cell.row(CHUNK));
        }
        md.push('\n');
    }

    fn download_section(&self, md: &mut String) {
        let runs = self.plan.runs;
        let _ = write!(
            md,
            "## Download throughput\n\n\
             A file of {DOWNLOAD_LEN} bytes (the start of the image) downloaded from a fresh\n\
             `smp-sim --rtt-ms R --buf-count B --fs-root DIR` per download, as `{DOWNLOAD_NAME}`;\n\
             {runs} run(s) per client, ours (`smp-bench download`, default options, which\n\
             afterwards compares the file with the local copy, untimed) and the reference\n\
             (`scripts/smpclient_download.py`, `SMPClient.download_file()`) alternating. The\n\
             download alone is timed; ours skips its usual hash check with the device, which\n\
             the reference does not make. The device bound is window × bytes per answer / round\n\
             trip, the bytes per answer being the file size over our client's requests (the\n\
             simulated device answers with as much as fits its 2048-byte buffer); the other\n\
             columns are as for uploads.\n\n\
             {TRANSFER_TABLE_HEAD}",
        );
        for cell in &self.downloads {
            let per_answer = DOWNLOAD_LEN as f64 / cell.requests.max(1) as f64;
            let _ = writeln!(md, "{}", cell.row(per_answer));
        }
        md.push('\n');
    }

    fn echo_section(&self, md: &mut String) {
        let e = &self.echo;
        let (floor, raw, ours, reference) = (
            median(&e.floor),
            median(&e.raw),
            median(&e.ours),
            median(&e.reference),
        );
        let _ = write!(
            md,
            "## Echo round trip\n\n\
             Sequential echo requests of {ECHO_SIZE} characters on loopback, against one `smp-sim`\n\
             (no simulated delay, `buf_count` 2), each timed from send to reply after 50 untimed\n\
             ones: {} per run for ours and the floor, {} for the reference; {} run(s), the\n\
             median of the runs' medians (and of their 90th percentiles). The floor is\n\
             `smp-bench udp-floor`: datagrams as long as the SMP echo frame bounced off a minimal\n\
             tokio echo socket on another thread. \"Raw SMP frames\" sends the pre-encoded echo\n\
             frame to `smp-sim` on a bare socket: the floor plus the simulated device's own work,\n\
             so ours minus it is what our client costs.\n\n\
             | | median (µs) | p90 (µs) |\n|---|---:|---:|\n\
             | UDP floor (`smp-bench udp-floor`) | {floor:.1} | {:.1} |\n\
             | raw SMP frames to smp-sim (`smp-bench echo --raw`) | {raw:.1} | {:.1} |\n\
             | ours (`smp-bench echo`) | {ours:.1} | {:.1} |\n\
             | reference (`scripts/smpclient_echo.py`) | {reference:.1} | {:.1} |\n\n\
             - ours / floor: **{:.2}×** (ours / raw SMP frames: {:.2}×)\n\
             - reference / ours: **{:.1}×**\n\n",
            self.plan.echoes,
            self.plan.reference_echoes,
            self.plan.runs,
            median(&e.floor_p90),
            median(&e.raw_p90),
            median(&e.ours_p90),
            median(&e.reference_p90),
            ours / floor,
            ours / raw,
            reference / ours,
        );
    }

    fn fleet_section(&self, md: &mut String) {
        let kib = self.plan.fleet_kib;
        let _ = write!(
            md,
            "## Fleet\n\n\
             `smp-bench fleet --devices N --image-kib {kib} --rtt-ms {FLEET_RTT_MS} --buf-count {FLEET_BUF_COUNT}`:\n\
             N simulated devices in one process, each on its own UDP port, and one client per\n\
             device uploading the same {kib} KiB image to all of them at once, on one\n\
             multi-threaded tokio runtime (one worker per core). Total time from the first\n\
             connect to the last upload's end; aggregate throughput = N × image / total time;\n\
             peak memory is the process's peak resident set (`VmHWM`), devices' flash included\n\
             (two slots of {kib} KiB each per device), so the resident set before the uploads is\n\
             shown too.\n\n\
             | devices | total (s) | aggregate KB/s | median device (s) | peak RSS (MiB) | RSS before uploads (MiB) |\n\
             |---:|---:|---:|---:|---:|---:|\n",
        );
        for run in &self.fleet {
            let _ = writeln!(
                md,
                "| {} | {:.2} | {:.0} | {:.2} | {:.1} | {:.1} |",
                run.devices,
                run.seconds,
                run.bytes_per_second / 1000.0,
                run.median_device_seconds,
                run.peak_rss_kib / 1024.0,
                run.rss_before_kib / 1024.0,
            );
        }
        let first = self.fleet.first();
        let last = self.fleet.last();
        if let (Some(first), Some(last)) = (first, last) {
            let _ = write!(
                md,
                "\nAggregate throughput at N = {} is **{:.1}×** that of N = {} (ideal: {}×).\n\n",
                last.devices,
                last.bytes_per_second / first.bytes_per_second,
                first.devices,
                last.devices / first.devices.max(1),
            );
        }
    }

    fn micro_section(&self, md: &mut String) {
        md.push_str(
            "## Codec micro-benchmarks\n\n\
             `cargo bench -p smp-client --bench codec` (criterion; `crates/smp-client/benches/codec.rs`),\n\
             median time per operation. The upload chunk is a full 1472-byte frame.\n\n\
             | benchmark | median |\n|---|---:|\n",
        );
        for (name, ns) in &self.codec {
            let time = if *ns >= 1000.0 {
                format!("{:.2} µs", ns / 1000.0)
            } else {
                format!("{ns:.1} ns")
            };
            let _ = writeln!(md, "| `{name}` | {time} |");
        }
        let _ = write!(
            md,
            "\n## Allocations per upload chunk\n\n\
             `cargo test -p smp-client --test allocations -- --nocapture` uploads an image over\n\
             the UDP transport on 127.0.0.1 to a small device on a thread of the same process\n\
             and counts every heap allocation of the process in the steady state with a\n\
             counting global allocator (`dhat` in testing mode): client, transport, tokio and\n\
             device, which answers from fixed buffers and so allocates nothing per chunk.\n\
             The test fails if the process allocates more than the outgoing frame per chunk\n\
             (one allocation, at most one frame of bytes; 4 allocations and 4 KiB of slack\n\
             over the whole steady state). Reply frames go back to the transport\n\
             (`Transport::recycle`), which receives later replies into them.\n\
             This run measured:\n\n\
             - {}\n",
            self.allocations
        );
    }

    /// A few lines for the terminal.
    fn summary(&self) -> String {
        let mut out = String::from("bench summary (details in BENCHMARKS.md):\n");
        for (kind, cells) in [("upload", &self.uploads), ("download", &self.downloads)] {
            for cell in cells {
                let _ = writeln!(out, "{}", cell.summary(kind));
            }
        }
        let _ = writeln!(
            out,
            "  echo: ours {:.1} µs, floor {:.1} µs, reference {:.1} µs",
            median(&self.echo.ours),
            median(&self.echo.floor),
            median(&self.echo.reference)
        );
        if let (Some(first), Some(last)) = (self.fleet.first(), self.fleet.last()) {
            let _ = writeln!(
                out,
                "  fleet: N = {} gives {:.1}× the throughput of N = {}",
                last.devices,
                last.bytes_per_second / first.bytes_per_second,
                first.devices
            );
        }
        let _ = write!(out, "  loss:\n{}", self.loss.table());
        let _ = write!(out, "  serial:\n{}", self.serial.tables());
        let _ = write!(out, "  fleet upgrade:\n{}", self.fleet_upgrade.table());
        let _ = write!(out, "  allocations: {}", self.allocations);
        out
    }
}

/// Runs `command`: its stdout when it succeeds, else the last line of its stderr (the
/// error), as data. Only failing to start it at all is an error of the task.
pub(super) fn attempt(command: &mut Command) -> Result<std::result::Result<String, String>> {
    let shown = util::show(command);
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("could not start `{shown}`: {e}"))?;
    if output.status.success() {
        return Ok(Ok(String::from_utf8_lossy(&output.stdout).into_owned()));
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("no message")
        .trim();
    // Python's traceback ends with `Exception: message`; keep it short.
    let short: String = last.chars().take(120).collect();
    Ok(Err(short))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_numbers_from_the_tools_json() {
        let ours = r#"{"bytes":1048576,"seconds":0.5,"bytes_per_second":2.1e6,"matched":true}"#;
        assert_eq!(json_number(ours, "seconds"), Some(0.5));
        assert_eq!(json_number(ours, "bytes_per_second"), Some(2.1e6));
        let python = r#"{"offsets": [1, 2], "seconds": 6.007161620000261, "images": []}"#;
        assert_eq!(json_number(python, "seconds"), Some(6.007161620000261));
        let nested = r#"{"round_trip": {"count": 10, "median_us": 24.7, "p90_us": null}}"#;
        assert_eq!(json_number(nested, "median_us"), Some(24.7));
        assert_eq!(json_number(nested, "p90_us"), None);
        assert_eq!(json_number(nested, "missing"), None);
    }

    #[test]
    fn medians_and_spreads() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(spread(&[1.234], 2), "1.23");
        assert_eq!(spread(&[3.0, 1.0, 2.0], 1), "1.0–2.0–3.0");
    }

    #[test]
    fn options() {
        assert!(Options::parse(&["--quick".to_owned()]).is_ok_and(|o| o.quick));
        assert!(Options::parse(&[]).is_ok_and(|o| !o.quick));
        assert!(Options::parse(&["--slow".to_owned()]).is_err());
        let only = ["--only".to_owned(), "loss".to_owned()];
        assert!(Options::parse(&only).is_ok_and(|o| o.only_loss && !o.quick));
        assert!(Options::parse(&only[..1]).is_err());
        let serial = ["--only".to_owned(), "serial".to_owned()];
        assert!(Options::parse(&serial).is_ok_and(|o| o.only_serial && !o.only_loss));
        assert!(Options::parse(&["--only".to_owned(), "echo".to_owned()]).is_err());
        let only = ["--only".to_owned(), "fleet-upgrade".to_owned()];
        assert!(Options::parse(&only).is_ok_and(|o| o.only_fleet_upgrade && !o.only_loss));
    }
}
