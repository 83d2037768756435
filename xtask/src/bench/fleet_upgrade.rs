//! The fleet-upgrade section of `cargo xtask bench` (issue 14): a whole firmware
//! upgrade (`Client::upgrade`: inspect, upload, mark for test, reset, wait for the
//! device to boot, confirm) of 1, 16, 64 and 256 simulated devices at once, at 20 ms
//! round trip, with a boot time after the reset; total time, aggregate throughput,
//! the client's peak memory, and the ratio to N × one device's time.
//!
//! The devices run in one process (`smp-bench sims`), the client in another, so that
//! the peak memory measured is the client's: the library through
//! `smp-bench fleet-upgrade` (which reads its own `VmHWM`), and the `smp` binary
//! (`smp upgrade --devices LIST --parallel N`) for the smallest and largest fleet, to
//! show that the command line gets what the library gets (its `VmHWM` sampled from
//! `/proc/PID/status` while it runs). Every run gets fresh devices, which at the end
//! say how many of them run the new image confirmed.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use super::{Plan, json_number, median, no_key};
use crate::util::{self, Result};

/// Devices of the fleets.
const FLEETS: [u32; 4] = [1, 16, 64, 256];
/// Fleets also upgraded through the `smp` binary.
const CLI_FLEETS: [u32; 2] = [1, 256];
/// Round trip of every device (`one_way_latency` half of it).
const RTT_MS: u32 = 20;
/// `buf_count` of every device, as in the fleet upload section: 3 chunks in flight.
const BUF_COUNT: u32 = 4;
/// A device's boot time after its reset: it hears nothing meanwhile, as a real one
/// while MCUboot swaps the images and the application starts.
const BOOT_MS: u32 = 5000;
/// How long one fleet's upgrade may take before the bench gives up on it.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the devices' process may take to start them all, or to report at the end.
const SIMS_TIMEOUT: Duration = Duration::from_secs(60);
/// File descriptors a process needs besides one socket per device.
const FD_MARGIN: u64 = 64;
/// How often the `smp` binary's memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// Runs per fleet and client.
fn runs(plan: Plan) -> usize {
    if plan.quick { 1 } else { 3 }
}

/// Which client upgraded the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Driver {
    /// `Client::upgrade` in `smp-bench fleet-upgrade`.
    Library,
    /// `smp upgrade --devices LIST --parallel N`.
    Cli,
}

impl Driver {
    fn name(self) -> &'static str {
        match self {
            Self::Library => "library",
            Self::Cli => "`smp upgrade`",
        }
    }
}

/// One fleet upgrade.
#[derive(Debug, Clone, Default)]
struct UpgradeRun {
    seconds: f64,
    /// Median of the devices' end times, from the start (library only).
    device_median_s: Option<f64>,
    /// Median upload and wait step times (library only).
    upload_s: Option<f64>,
    wait_s: Option<f64>,
    /// The client process's peak resident set, and its resident set before the
    /// upgrades (library only).
    peak_rss_kib: Option<f64>,
    rss_before_kib: Option<f64>,
    /// CPU time of the client process, user and system.
    cpu_s: Option<f64>,
    /// Devices the client reports upgraded, and those the devices themselves say run
    /// the new image confirmed.
    upgraded: u32,
    confirmed_on_devices: u32,
    /// The devices' process's peak resident set and CPU time.
    sims_peak_rss_kib: Option<f64>,
    sims_cpu_s: Option<f64>,
}

/// Every run of one fleet with one client.
#[derive(Debug)]
struct Row {
    driver: Driver,
    devices: u32,
    runs: Vec<UpgradeRun>,
}

impl Row {
    fn median_of(&self, field: impl Fn(&UpgradeRun) -> Option<f64>) -> Option<f64> {
        let values: Vec<f64> = self.runs.iter().filter_map(field).collect();
        (!values.is_empty()).then(|| median(&values))
    }

    fn seconds(&self) -> f64 {
        median(&self.runs.iter().map(|r| r.seconds).collect::<Vec<_>>())
    }
}

/// The section's results, and how to print them.
#[derive(Debug)]
pub(super) struct FleetUpgradeResults {
    rows: Vec<Row>,
    image_bytes: u64,
    runs: usize,
    /// Commit, date, load and duration of the section's runs.
    measured: String,
}

impl FleetUpgradeResults {
    /// The median total of the same client's one-device fleet.
    fn one_device(&self, driver: Driver) -> Option<f64> {
        self.rows
            .iter()
            .find(|row| row.driver == driver && row.devices == 1)
            .map(Row::seconds)
    }

    /// The table.
    pub(super) fn table(&self) -> String {
        let mut md = String::from(
            "| client | devices | total (s) | aggregate KB/s | ratio to N × one device | median device (s) | upload (s) | wait (s) | client CPU (s) | client peak RSS (MiB) | client RSS before (MiB) | devices' CPU (s) | devices' peak RSS (MiB) | upgraded (client / devices) |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        let secs = |s: Option<f64>| s.map_or("–".to_owned(), |s| format!("{s:.2}"));
        let mib = |kib: Option<f64>| kib.map_or("–".to_owned(), |k| format!("{:.1}", k / 1024.0));
        for row in &self.rows {
            let seconds = row.seconds();
            let total = if row.runs.len() > 1 {
                let min = row
                    .runs
                    .iter()
                    .map(|r| r.seconds)
                    .fold(f64::INFINITY, f64::min);
                let max = row.runs.iter().map(|r| r.seconds).fold(0.0, f64::max);
                format!("{seconds:.2} ({min:.2}–{max:.2})")
            } else {
                format!("{seconds:.2}")
            };
            let aggregate = f64::from(row.devices) * self.image_bytes as f64 / seconds / 1000.0;
            let ratio = match self.one_device(row.driver) {
                Some(one) if seconds > 0.0 => {
                    let ratio = f64::from(row.devices) * one / seconds;
                    format!(
                        "{ratio:.1}× ({:.0}% of {})",
                        ratio / f64::from(row.devices) * 100.0,
                        row.devices
                    )
                }
                _ => "–".to_owned(),
            };
            // Of the worst run: a device missing in any run shows.
            let upgraded = row.runs.iter().map(|r| r.upgraded).min().unwrap_or(0);
            let confirmed = row
                .runs
                .iter()
                .map(|r| r.confirmed_on_devices)
                .min()
                .unwrap_or(0);
            let _ = writeln!(
                md,
                "| {} | {} | {total} | {aggregate:.0} | {ratio} | {} | {} | {} | {} | {} | {} | {} | {} | {upgraded} / {confirmed} of {} |",
                row.driver.name(),
                row.devices,
                secs(row.median_of(|r| r.device_median_s)),
                secs(row.median_of(|r| r.upload_s)),
                secs(row.median_of(|r| r.wait_s)),
                secs(row.median_of(|r| r.cpu_s)),
                mib(row.median_of(|r| r.peak_rss_kib)),
                mib(row.median_of(|r| r.rss_before_kib)),
                secs(row.median_of(|r| r.sims_cpu_s)),
                mib(row.median_of(|r| r.sims_peak_rss_kib)),
                row.devices,
            );
        }
        md
    }

    /// What the library client holds per device in the largest fleet, when measured.
    fn per_device(&self) -> String {
        let Some(row) = self
            .rows
            .iter()
            .filter(|row| row.driver == Driver::Library)
            .max_by_key(|row| row.devices)
        else {
            return String::new();
        };
        match (
            row.median_of(|r| r.peak_rss_kib),
            row.median_of(|r| r.rss_before_kib),
        ) {
            (Some(peak), Some(before)) => format!(
                "The library client's memory per device at N = {}: (peak − before) / N = \
                 {:.0} KiB.\n\n",
                row.devices,
                (peak - before) / f64::from(row.devices)
            ),
            _ => String::new(),
        }
    }

    /// The section of BENCHMARKS.md (and of `target/bench/fleet-upgrade.md`).
    pub(super) fn markdown(&self) -> String {
        let runs = self.runs;
        let kib = self.image_bytes >> 10;
        let largest = FLEETS[FLEETS.len() - 1];
        format!(
            "## Fleet upgrade\n\n\
             A whole firmware upgrade of N simulated devices at once: `Client::upgrade` on each\n\
             (read the image state, upload a {kib} KiB MCUboot image, mark it for test, reset,\n\
             wait for the device to come back, confirm), default options, a task per device and\n\
             all N at once (`--parallel N`; `smp upgrade`'s default, 16, would upgrade the\n\
             larger fleets in waves of 16). The devices (`smp-bench sims`) are N `smp-sim`\n\
             devices in one process, each on its own UDP port, with a {RTT_MS} ms round trip\n\
             (`one_way_latency` {half} ms), `buf_count` {BUF_COUNT} and a boot time of {boot} s after the\n\
             reset, during which a device hears nothing (MCUboot swapping the images and the\n\
             application starting; a large image on slow flash takes longer). The client runs\n\
             in another process, on one thread as `smp` does: `smp-bench fleet-upgrade` for\n\
             the library rows, and the `smp` binary itself (`smp --json upgrade IMAGE\n\
             --devices LIST --parallel N`) for the rows that compare the command line with the\n\
             library, their runs alternating with the library's. Fresh devices every run, {runs}\n\
             run(s) per row; medians of the runs, and the range of their totals.\n\n\
             Total is from the first connect to the last device's end (for `smp upgrade`, the\n\
             process's whole life, start and summary included); aggregate throughput is\n\
             N × image / total, the whole upgrade and not the upload alone; the ratio to\n\
             N × one device is N × (the same client's one-device total) / total, N for\n\
             perfect concurrency. Median device is when the median device was done; upload\n\
             and wait are the medians over the devices of those steps (the wait holds the\n\
             boot time and the backoff of the polls). CPU is user and system time of each\n\
             process (`/proc/PID/stat`); both share the machine's cores, so where the ratio\n\
             falls short of N they say whether the client or the devices took them. Peak\n\
             memory is the client process's `VmHWM`, the image it read included (read by\n\
             `smp-bench fleet-upgrade` itself at the end, with its resident set before the\n\
             first connect; sampled every {sample} ms from `/proc/PID/status` for `smp`); the\n\
             devices' memory, their flash (two slots each) included, is the other process's.\n\
             Upgraded counts, in the worst run, the devices the client reports running the\n\
             new image confirmed, and those that say so themselves at the end. {largest} devices\n\
             take {largest} sockets in each process and {ports} local UDP ports: the section checks\n\
             the open-file limit and the port range first.\n\n\
             {}\n{}\
             This section's runs: {}.\n\n",
            self.table(),
            self.per_device(),
            self.measured,
            half = RTT_MS / 2,
            boot = BOOT_MS / 1000,
            sample = SAMPLE_EVERY.as_millis(),
            ports = 2 * largest,
        )
    }
}

/// Runs the section: every fleet with the library, and with `smp` for [`CLI_FLEETS`].
pub(super) fn measure(plan: Plan) -> Result<FleetUpgradeResults> {
    let started = Instant::now();
    let load_before = super::load_average();
    let release = util::target_dir().join("release");
    let (bench, smp) = (release.join("smp-bench"), release.join("smp"));
    let dir = util::target_dir().join("bench/fleet-upgrade");
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let largest = FLEETS.iter().copied().max().unwrap_or(1);
    check_limits(largest)?;
    let image_bytes = u64::from(plan.fleet_kib) << 10;
    let image = super::write_image(
        &dir.join(format!("app-{}KiB.bin", plan.fleet_kib)),
        image_bytes,
    )?;
    let runs = runs(plan);
    // The table's rows, library first; a fleet's `smp` runs alternate with its library
    // runs, so that both see the same load on a shared machine.
    let mut rows: Vec<Row> = FLEETS
        .iter()
        .map(|&n| (Driver::Library, n))
        .chain(CLI_FLEETS.iter().map(|&n| (Driver::Cli, n)))
        .map(|(driver, devices)| Row {
            driver,
            devices,
            runs: Vec::new(),
        })
        .collect();
    for (index, devices) in FLEETS.into_iter().enumerate() {
        let drivers: &[Driver] = if CLI_FLEETS.contains(&devices) {
            &[Driver::Library, Driver::Cli]
        } else {
            &[Driver::Library]
        };
        util::heading(&format!(
            "bench: fleet upgrade [{}/{}] {devices} device(s), {}",
            index + 1,
            FLEETS.len(),
            drivers
                .iter()
                .map(|d| d.name())
                .collect::<Vec<_>>()
                .join(" and ")
        ));
        for run in 1..=runs {
            // Each client goes first in every other run.
            let order: Vec<Driver> = if run % 2 == 0 {
                drivers.iter().rev().copied().collect()
            } else {
                drivers.to_vec()
            };
            for driver in order {
                let sims = Devices::start(&bench, &dir, devices, plan.fleet_kib, &image)?;
                let mut result = match driver {
                    Driver::Library => library_run(&bench, &sims.list, &image, devices, &dir)?,
                    Driver::Cli => cli_run(&smp, &sims.list, &image, devices, &dir)?,
                };
                let report = sims.finish()?;
                let number = |key: &str| json_number(&report, key).ok_or_else(|| no_key(&report));
                result.confirmed_on_devices = number("running_confirmed")? as u32;
                result.sims_peak_rss_kib = json_number(&report, "sims_peak_rss_kib");
                result.sims_cpu_s = json_number(&report, "sims_cpu_s");
                println!(
                    "  run {run}/{runs}, {}: {:.2} s, {} upgraded ({} confirmed on the devices), client CPU {}, client peak RSS {}",
                    driver.name(),
                    result.seconds,
                    result.upgraded,
                    result.confirmed_on_devices,
                    result
                        .cpu_s
                        .map_or("unknown".to_owned(), |s| format!("{s:.2} s")),
                    result
                        .peak_rss_kib
                        .map_or("unknown".to_owned(), |k| format!("{:.1} MiB", k / 1024.0)),
                );
                if let Some(row) = rows
                    .iter_mut()
                    .find(|row| row.driver == driver && row.devices == devices)
                {
                    row.runs.push(result);
                }
            }
        }
    }
    let measured = format!(
        "commit {}, {}; load average (1, 5, 15 min) {load_before} before, {} after; {}",
        super::output(Command::new("git").args(["rev-parse", "--short", "HEAD"])),
        super::output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])),
        super::load_average(),
        util::seconds(started.elapsed()),
    );
    Ok(FleetUpgradeResults {
        rows,
        image_bytes,
        runs,
        measured,
    })
}

/// `smp-bench fleet-upgrade`: the library on every device at once.
fn library_run(
    bench: &Path,
    list: &Path,
    image: &Path,
    devices: u32,
    dir: &Path,
) -> Result<UpgradeRun> {
    let mut command = Command::new(bench);
    command
        .arg("fleet-upgrade")
        .arg("--devices")
        .arg(list)
        .arg("--image")
        .arg(image)
        .args(["--parallel", &devices.to_string()]);
    let out = util::capture(&mut command)?;
    fs::write(dir.join("library.json"), &out).map_err(|e| format!("cannot write: {e}"))?;
    let number = |key: &str| json_number(&out, key).ok_or_else(|| no_key(&out));
    let upgraded = number("upgraded")? as u32;
    if upgraded < devices {
        println!("  not every device upgraded: {}", out.trim());
    }
    Ok(UpgradeRun {
        seconds: number("seconds")?,
        device_median_s: json_number(&out, "median_us").map(|us| us / 1e6),
        upload_s: json_number(&out, "upload_median_s"),
        wait_s: json_number(&out, "wait_median_s"),
        peak_rss_kib: json_number(&out, "peak_rss_kib"),
        rss_before_kib: json_number(&out, "rss_before_kib"),
        cpu_s: json_number(&out, "cpu_s"),
        upgraded,
        ..UpgradeRun::default()
    })
}

/// `smp --json upgrade IMAGE --devices LIST --parallel N`, timed from its start to its
/// end, its `VmHWM` sampled while it runs.
fn cli_run(smp: &Path, list: &Path, image: &Path, devices: u32, dir: &Path) -> Result<UpgradeRun> {
    let (out_path, err_path) = (dir.join("smp.out"), dir.join("smp.err"));
    let create = |path: &Path| {
        File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
    };
    let mut command = Command::new(smp);
    command
        .args(["--json", "upgrade"])
        .arg(image)
        .arg("--devices")
        .arg(list)
        .args(["--parallel", &devices.to_string()])
        .stdin(Stdio::null())
        .stdout(create(&out_path)?)
        .stderr(create(&err_path)?);
    let shown = util::show(&command);
    let started = Instant::now();
    let child = command
        .spawn()
        .map_err(|e| format!("could not start `{shown}`: {e}"))?;
    let mut child = Guard(child);
    let proc_dir = PathBuf::from(format!("/proc/{}", child.0.id()));
    let (mut peak, mut cpu): (Option<f64>, Option<f64>) = (None, None);
    let status = loop {
        // Read before try_wait: a process that has exited has no memory lines left
        // (and its CPU time is that of its last sample, 10 ms before at most).
        if let Some(kib) = fs::read_to_string(proc_dir.join("status"))
            .ok()
            .and_then(|status| vm_hwm_kib(&status))
        {
            peak = Some(peak.map_or(kib, |p| p.max(kib)));
        }
        if let Some(seconds) = fs::read_to_string(proc_dir.join("stat"))
            .ok()
            .and_then(|stat| cpu_seconds(&stat))
        {
            cpu = Some(seconds);
        }
        match child.0.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > RUN_TIMEOUT => {
                return Err(format!("`{shown}` still ran after {RUN_TIMEOUT:?}"));
            }
            Ok(None) => std::thread::sleep(SAMPLE_EVERY),
            Err(e) => return Err(format!("`{shown}`: {e}")),
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let out = fs::read_to_string(&out_path).unwrap_or_default();
    // The summary document is the last line: {"image": .., "devices": [..], "summary": {"upgraded": N}}.
    let summary = out.lines().last().unwrap_or_default();
    let upgraded = json_number(summary, "upgraded").unwrap_or(0.0) as u32;
    if !status.success() || upgraded < devices {
        let err = fs::read_to_string(&err_path).unwrap_or_default();
        println!(
            "  `{shown}` ended with {status}, {upgraded} upgraded: {}",
            err.lines().last().unwrap_or(summary)
        );
    }
    Ok(UpgradeRun {
        seconds,
        peak_rss_kib: peak,
        cpu_s: cpu,
        upgraded,
        ..UpgradeRun::default()
    })
}

/// The `VmHWM` line of a `/proc/PID/status`, in KiB.
fn vm_hwm_kib(status: &str) -> Option<f64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix("VmHWM:")?;
        rest.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// CPU time, user and system, of a `/proc/PID/stat`: fields 14 and 15, in clock ticks
/// of 1/100 s (`USER_HZ` on Linux).
fn cpu_seconds(stat: &str) -> Option<f64> {
    // The command name, in parentheses, may hold spaces: count fields after it.
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// Fails early, with what to do, when a process cannot open a socket per device or the
/// system has too few local ports for two per device.
fn check_limits(devices: u32) -> Result {
    let need = u64::from(devices) + FD_MARGIN;
    if let Some(soft) = fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| open_files_limit(&limits))
    {
        if soft < need {
            return Err(format!(
                "bench: the fleet upgrade of {devices} devices needs {need} open files per \
                 process, the limit is {soft}: raise it (`ulimit -n {}`) and run again",
                need.next_power_of_two()
            ));
        }
        println!("  open files: limit {soft}, {need} needed per process");
    }
    if let Some((low, high)) = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| {
            let mut ends = range.split_whitespace().map(str::parse::<u64>);
            Some((ends.next()?.ok()?, ends.next()?.ok()?))
        })
    {
        let ports = high.saturating_sub(low) + 1;
        if ports < 2 * u64::from(devices) + FD_MARGIN {
            return Err(format!(
                "bench: the fleet upgrade of {devices} devices needs {} local UDP ports, \
                 net.ipv4.ip_local_port_range has {ports}",
                2 * devices
            ));
        }
    }
    Ok(())
}

/// The soft limit of `Max open files` in a `/proc/PID/limits` (`None` for unlimited).
fn open_files_limit(limits: &str) -> Option<u64> {
    limits.lines().find_map(|line| {
        line.strip_prefix("Max open files")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// A child process killed by its id and reaped when dropped, on every path out.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        // An error means it has already exited; wait() reaps it either way.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The devices of one run: `smp-bench sims`, serving until its stdin closes.
struct Devices {
    process: Guard,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    list: PathBuf,
    log: PathBuf,
}

impl Devices {
    /// Starts `devices` simulated devices and waits until they all serve.
    fn start(bench: &Path, dir: &Path, devices: u32, kib: u32, image: &Path) -> Result<Self> {
        let (list, log) = (dir.join("devices.txt"), dir.join("sims.log"));
        let log_file =
            File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let mut command = Command::new(bench);
        command
            .args(["sims", "--devices", &devices.to_string()])
            .args(["--rtt-ms", &RTT_MS.to_string()])
            .args(["--boot-ms", &BOOT_MS.to_string()])
            .args(["--buf-count", &BUF_COUNT.to_string()])
            .args(["--slot-kib", &kib.to_string()])
            .arg("--list")
            .arg(&list)
            .arg("--expect")
            .arg(image)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file);
        let shown = util::show(&command);
        let child = command
            .spawn()
            .map_err(|e| format!("could not start `{shown}`: {e}"))?;
        let mut process = Guard(child);
        let stdin = process.0.stdin.take();
        let stdout = process
            .0
            .stdout
            .take()
            .ok_or("smp-bench sims: stdout not captured")?;
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = send.send(line);
            }
        });
        let devices = Self {
            process,
            stdin,
            lines,
            list,
            log,
        };
        devices.line("\"ready\"", &shown)?;
        Ok(devices)
    }

    /// The next line of the process with `key` in it.
    fn line(&self, key: &str, shown: &str) -> Result<String> {
        let deadline = Instant::now() + SIMS_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(key) => return Ok(line),
                Ok(_) => {}
                Err(_) => {
                    return Err(format!(
                        "`{shown}` printed no line with `{key}` within {SIMS_TIMEOUT:?}; the end of its log {}:\n{}",
                        self.log.display(),
                        crate::sim::tail(&self.log)
                    ));
                }
            }
        }
    }

    /// Closes the devices' stdin and returns their report: how many run the expected
    /// image, confirmed, and their process's peak memory.
    fn finish(mut self) -> Result<String> {
        drop(self.stdin.take());
        let report = self.line("\"running_confirmed\"", "smp-bench sims")?;
        let _ = self.process.0.wait();
        Ok(report)
    }
}

/// Writes the section to `target/bench/fleet-upgrade.md` (for `--only fleet-upgrade`,
/// which leaves BENCHMARKS.md alone) and returns its path.
pub(super) fn write_alone(results: &FleetUpgradeResults, header: &str) -> Result<String> {
    let path = util::target_dir().join("bench/fleet-upgrade.md");
    let text = format!("{header}\n\n{}", results.markdown());
    fs::write(&path, &text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seconds: f64, upgraded: u32) -> UpgradeRun {
        UpgradeRun {
            seconds,
            upgraded,
            confirmed_on_devices: upgraded,
            peak_rss_kib: Some(2048.0),
            ..UpgradeRun::default()
        }
    }

    #[test]
    fn the_ratio_compares_with_n_times_the_same_clients_one_device() {
        let results = FleetUpgradeResults {
            rows: vec![
                Row {
                    driver: Driver::Library,
                    devices: 1,
                    runs: vec![run(10.0, 1), run(12.0, 1), run(11.0, 1)],
                },
                Row {
                    driver: Driver::Library,
                    devices: 16,
                    runs: vec![run(22.0, 16), run(22.0, 15), run(20.0, 16)],
                },
                Row {
                    driver: Driver::Cli,
                    devices: 1,
                    runs: vec![run(8.0, 1)],
                },
                Row {
                    driver: Driver::Cli,
                    devices: 16,
                    runs: vec![run(16.0, 16)],
                },
            ],
            image_bytes: 1000,
            runs: 3,
            measured: "now".into(),
        };
        let table = results.table();
        // 16 × 11 s / 22 s; the worst run's count.
        assert!(
            table.contains(
                "| library | 16 | 22.00 (20.00–22.00) | 1 | 8.0× (50% of 16) | – | – | – | – | 2.0 | – | – | – | 15 / 15 of 16 |"
            ),
            "{table}"
        );
        assert!(
            table.contains("| `smp upgrade` | 16 | 16.00 | 1 | 8.0× (50% of 16) |"),
            "{table}"
        );
        assert!(
            table.contains("| library | 1 | 11.00 (10.00–12.00) | 0 | 1.0× (100% of 1) |"),
            "{table}"
        );
        let markdown = results.markdown();
        assert!(markdown.contains("This section's runs: now."), "{markdown}");
        // Only the library reports its memory before the upgrades.
        assert!(!markdown.contains("per device at N"), "{markdown}");
        let mut results = results;
        for run in &mut results.rows[1].runs {
            run.rss_before_kib = Some(1024.0);
        }
        let markdown = results.markdown();
        assert!(
            markdown.contains("memory per device at N = 16: (peak − before) / N = 64 KiB."),
            "{markdown}"
        );
    }

    #[test]
    fn reads_proc_files() {
        let status = "Name:\tsmp\nVmPeak:\t  10000 kB\nVmHWM:\t    5224 kB\nVmRSS:\t 5000 kB\n";
        assert_eq!(vm_hwm_kib(status), Some(5224.0));
        assert_eq!(vm_hwm_kib("Name:\tsmp\n"), None);
        let stat = "4242 (smp) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 31 0 0 20 0 1 0 1234";
        assert_eq!(cpu_seconds(stat), Some(2.81));
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             94424                94424                processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(open_files_limit(limits), Some(1024));
        assert_eq!(
            open_files_limit(
                "Max open files            unlimited            unlimited            files"
            ),
            None
        );
    }
}
