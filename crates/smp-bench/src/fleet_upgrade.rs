//! The fleet-upgrade benchmark's two halves, in two processes so that the client's
//! memory is measured apart from the devices':
//!
//! - `sims`: N simulated devices in this process, each on its own UDP port, listed one
//!   address a line (then a name) in a file that `smp upgrade --devices` reads too;
//!   they serve until this process's stdin closes, then say how many run a given image,
//!   confirmed, and how much memory the devices took;
//! - `fleet-upgrade`: `Client::upgrade` on every device of such a list, up to
//!   `--parallel` at once, on one thread as `smp upgrade` runs (a task per device, as
//!   `smp upgrade --parallel` does), timed from the first connect to the last device's
//!   end, with the peak memory of this process.

use std::io::Read as _;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use smp_client::proto::ImageHash;
use smp_client::upgrade::UpgradeStep;
use smp_client::{Client, ClientOptions, UpgradeOptions, UpgradeOutcome, UpgradeReport};
use smp_sim::{Delays, Sim, SimConfig};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::{proc_status_kib, stats};

/// Arguments of `smp-bench sims`.
#[derive(Debug, clap::Args)]
pub(crate) struct SimsArgs {
    /// Simulated devices, each on its own port of 127.0.0.1.
    #[arg(long)]
    devices: usize,
    /// Simulated round-trip time of each device, in milliseconds.
    #[arg(long, default_value_t = 20.0)]
    rtt_ms: f64,
    /// Boot time after a reset, in milliseconds: the device receives nothing meanwhile.
    #[arg(long, default_value_t = 0.0)]
    boot_ms: f64,
    /// SMP buffers of each device.
    #[arg(long, default_value_t = 4)]
    buf_count: usize,
    /// Size of each image slot in KiB.
    #[arg(long, default_value_t = 1024)]
    slot_kib: usize,
    /// Where to write the device list (one `ADDRESS NAME` a line).
    #[arg(long)]
    list: PathBuf,
    /// The image the devices should run, confirmed, when stdin closes: the report
    /// counts those that do.
    #[arg(long)]
    expect: PathBuf,
}

/// Arguments of `smp-bench fleet-upgrade`.
#[derive(Debug, clap::Args)]
pub(crate) struct FleetUpgradeArgs {
    /// The device list (one address a line, then an optional name; `#` comments).
    #[arg(long)]
    devices: PathBuf,
    /// The MCUboot image.
    #[arg(long)]
    image: PathBuf,
    /// Devices upgraded at once; all of them by default.
    #[arg(long)]
    parallel: Option<NonZeroUsize>,
}

/// `smp-bench sims`: prints `{"ready": N, ...}` once every device serves, then serves
/// until stdin closes, and returns the devices' report.
pub(crate) fn sims(args: &SimsArgs) -> Result<Value, String> {
    if args.devices == 0 {
        return Err("--devices must be at least 1".into());
    }
    let expected = expected_hash(&args.expect)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let config = SimConfig {
            buf_count: args.buf_count,
            slot_size: (args.slot_kib * 1024).next_multiple_of(4096),
            delays: Delays {
                one_way_latency: Duration::from_secs_f64(args.rtt_ms.max(0.0) / 2000.0),
                boot: Duration::from_secs_f64(args.boot_ms.max(0.0) / 1000.0),
                ..Delays::default()
            },
            ..SimConfig::default()
        };
        let mut devices = Vec::with_capacity(args.devices);
        let mut list = String::new();
        for i in 0..args.devices {
            let sim = Sim::start(config.clone())
                .await
                .map_err(|e| format!("start simulated device {i}: {e}"))?;
            list.push_str(&format!("{} sim-{i}\n", sim.addr()));
            devices.push(sim);
        }
        std::fs::write(&args.list, list)
            .map_err(|e| format!("cannot write {}: {e}", args.list.display()))?;
        let rss_kib = proc_status_kib("VmRSS");
        println!(
            "{}",
            json!({"ready": args.devices, "list": args.list, "rss_kib": rss_kib})
        );

        // Serve until stdin closes (the bench closes it once the clients are done).
        let (closed, stdin_closed) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let _ = std::io::stdin().lock().read_to_end(&mut Vec::new());
            let _ = closed.send(());
        });
        let _ = stdin_closed.await;

        let running = devices
            .iter()
            .filter(|sim| {
                sim.image_state().images.iter().any(|image| {
                    image.slot == 0
                        && image.active == Some(true)
                        && image.confirmed == Some(true)
                        && image.hash.as_ref() == Some(&expected)
                })
            })
            .count();
        let received: u64 = devices.iter().map(|sim| sim.counters().received).sum();
        Ok(json!({
            "devices": args.devices,
            "running_confirmed": running,
            "datagrams_received": received,
            "sims_peak_rss_kib": proc_status_kib("VmHWM"),
            "sims_cpu_s": cpu_seconds(),
        }))
    })
}

/// The hash TLV of the image at `path`, as the device reports it.
fn expected_hash(path: &Path) -> Result<ImageHash, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let image = smp_mcuboot::Image::parse(&data)
        .map_err(|e| format!("{}: not an MCUboot image: {e}", path.display()))?;
    image
        .hash()
        .map(ImageHash::from)
        .ok_or_else(|| format!("{}: no hash TLV", path.display()))
}

/// The addresses of a device list: the first word of every line, `#` starting a
/// comment.
fn read_list(text: &str) -> Result<Vec<SocketAddr>, String> {
    text.lines()
        .enumerate()
        .filter_map(|(number, line)| {
            let word = line.split('#').next()?.split_whitespace().next()?;
            Some(
                word.parse()
                    .map_err(|e| format!("line {}: `{word}`: {e}", number + 1)),
            )
        })
        .collect()
}

/// How one device's upgrade ended, and when (from the fleet's start).
struct Ended {
    result: Result<Upgraded, String>,
    at: Duration,
}

/// What an upgrade that did not fail reported.
struct Upgraded {
    /// The image was uploaded and runs confirmed: what the bench asks of every device.
    new_image_confirmed: bool,
    steps: Vec<(UpgradeStep, Duration)>,
}

impl From<UpgradeReport> for Upgraded {
    fn from(report: UpgradeReport) -> Self {
        Self {
            new_image_confirmed: report.upload.is_some()
                && matches!(
                    report.outcome,
                    UpgradeOutcome::Running {
                        confirmed: true,
                        ..
                    }
                ),
            steps: report.steps,
        }
    }
}

/// `smp-bench fleet-upgrade`: every device of the list upgraded, `--parallel` at once.
pub(crate) fn fleet_upgrade(args: &FleetUpgradeArgs) -> Result<Value, String> {
    let list = std::fs::read_to_string(&args.devices)
        .map_err(|e| format!("cannot read {}: {e}", args.devices.display()))?;
    let addrs =
        read_list(&list).map_err(|message| format!("{}: {message}", args.devices.display()))?;
    if addrs.is_empty() {
        return Err(format!("{}: no device", args.devices.display()));
    }
    let image = Arc::new(
        std::fs::read(&args.image)
            .map_err(|e| format!("cannot read {}: {e}", args.image.display()))?,
    );
    let parallel = args
        .parallel
        .map_or(addrs.len(), NonZeroUsize::get)
        .min(addrs.len());
    // The runtime `smp` runs on: one thread.
    let runtime = crate::current_thread()?;
    let rss_before_kib = proc_status_kib("VmRSS");
    let (seconds, ended) = runtime.block_on(async {
        let permits = Arc::new(Semaphore::new(parallel));
        let started = Instant::now();
        let mut tasks = JoinSet::new();
        for addr in addrs.iter().copied() {
            let (image, permits) = (Arc::clone(&image), Arc::clone(&permits));
            tasks.spawn(async move {
                let result = async {
                    let _permit = permits.acquire_owned().await.ok();
                    let client = Client::connect_udp(addr.into(), ClientOptions::default())
                        .await
                        .map_err(|e| format!("connect to {addr}: {e}"))?;
                    client
                        .upgrade(&image, &UpgradeOptions::default(), |_| {})
                        .await
                        .map(Upgraded::from)
                        .map_err(|e| format!("upgrade {addr}: {}", smp_client::ErrorChain(&e)))
                }
                .await;
                Ended {
                    result,
                    at: started.elapsed(),
                }
            });
        }
        let mut ended = Vec::with_capacity(addrs.len());
        while let Some(done) = tasks.join_next().await {
            ended.push(done.map_err(|e| format!("an upgrade task failed: {e}"))?);
        }
        Ok::<_, String>((started.elapsed().as_secs_f64(), ended))
    })?;
    let mut report = report(
        &ended,
        image.len(),
        parallel,
        seconds,
        rss_before_kib,
        proc_status_kib("VmHWM"),
    );
    report["cpu_s"] = json!(cpu_seconds());
    Ok(report)
}

/// CPU time this process has used, user and system, every thread: `utime` and `stime`
/// of `/proc/self/stat`, in clock ticks of 1/100 s (`USER_HZ` on Linux); `None` off
/// Linux.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    cpu_seconds_of(&stat)
}

fn cpu_seconds_of(stat: &str) -> Option<f64> {
    // The command name, in parentheses, may hold spaces: count fields after it.
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    // Fields 14 and 15 of the line; the state (field 3) comes first after the name.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// The JSON line of a fleet upgrade: every key appears once, so that the bench can read
/// it without a JSON parser.
fn report(
    ended: &[Ended],
    image_bytes: usize,
    parallel: usize,
    seconds: f64,
    rss_before_kib: Option<u64>,
    peak_rss_kib: Option<u64>,
) -> Value {
    let upgraded = ended
        .iter()
        .filter(|e| e.result.as_ref().is_ok_and(|u| u.new_image_confirmed))
        .count();
    let first_error = ended.iter().find_map(|e| e.result.as_ref().err());
    let mut finished: Vec<Duration> = ended.iter().map(|e| e.at).collect();
    let step_median = |step: UpgradeStep| {
        let mut times: Vec<Duration> = ended
            .iter()
            .filter_map(|e| e.result.as_ref().ok())
            .filter(|u| u.steps.iter().any(|(s, _)| *s == step))
            .map(|u| {
                u.steps
                    .iter()
                    .filter(|(s, _)| *s == step)
                    .map(|(_, elapsed)| *elapsed)
                    .sum()
            })
            .collect();
        stats(&mut times)["median_us"].as_f64().map(|us| us / 1e6)
    };
    let devices = ended.len();
    json!({
        "devices": devices,
        "parallel": parallel,
        "image_bytes": image_bytes,
        "seconds": seconds,
        "bytes_per_second": (devices * image_bytes) as f64 / seconds,
        "upgraded": upgraded,
        "not_upgraded": devices - upgraded,
        "first_error": first_error,
        "inspect_median_s": step_median(UpgradeStep::Inspect),
        "upload_median_s": step_median(UpgradeStep::Upload),
        "mark_median_s": step_median(UpgradeStep::Mark),
        "reset_median_s": step_median(UpgradeStep::Reset),
        "wait_median_s": step_median(UpgradeStep::Wait),
        "confirm_median_s": step_median(UpgradeStep::Confirm),
        "per_device_seconds": stats(&mut finished),
        "rss_before_kib": rss_before_kib,
        "peak_rss_kib": peak_rss_kib,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_lists_are_read_as_smp_upgrade_reads_them() {
        let list = "# the fleet\n127.0.0.1:1337 sim-0\n\n127.0.0.1:1338  # no name\n";
        assert_eq!(
            read_list(list),
            Ok(vec![
                SocketAddr::from(([127, 0, 0, 1], 1337)),
                SocketAddr::from(([127, 0, 0, 1], 1338)),
            ])
        );
        assert!(read_list("127.0.0.1:1\nnot-an-address\n").is_err_and(|e| e.contains("line 2")));
    }

    #[test]
    fn the_report_counts_failures_and_takes_step_medians() {
        let ok = |upload: f64| Ended {
            result: Ok(Upgraded {
                new_image_confirmed: true,
                steps: vec![
                    (UpgradeStep::Inspect, Duration::from_millis(20)),
                    (UpgradeStep::Upload, Duration::from_secs_f64(upload)),
                    (UpgradeStep::Wait, Duration::from_secs(5)),
                ],
            }),
            at: Duration::from_secs(7),
        };
        let already_running = Ended {
            result: Ok(Upgraded {
                new_image_confirmed: false,
                steps: vec![(UpgradeStep::Inspect, Duration::from_millis(20))],
            }),
            at: Duration::from_secs(1),
        };
        let ended = [
            ok(1.0),
            ok(3.0),
            already_running,
            Ended {
                result: Err("upgrade 127.0.0.1:1: timeout".into()),
                at: Duration::from_secs(9),
            },
        ];
        let report = report(&ended, 4096, 4, 10.0, Some(1000), Some(2000));
        assert_eq!(report["upgraded"], 2);
        assert_eq!(report["not_upgraded"], 2);
        assert_eq!(report["first_error"], "upgrade 127.0.0.1:1: timeout");
        // Devices without the step do not count in its median.
        assert_eq!(report["upload_median_s"], 1.0);
        assert_eq!(report["wait_median_s"], 5.0);
        assert_eq!(report["confirm_median_s"], Value::Null);
        assert_eq!(report["bytes_per_second"], 4.0 * 4096.0 / 10.0);
        assert_eq!(report["per_device_seconds"]["median_us"], 7e6);
    }

    #[test]
    fn cpu_time_comes_from_proc_stat() {
        let stat = "4242 (smp bench) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 31 0 0 20 0 1 0 1234 5000 300";
        assert_eq!(cpu_seconds_of(stat), Some(2.81));
        assert_eq!(cpu_seconds_of("4242 (smp"), None);
        if cfg!(target_os = "linux") {
            assert!(cpu_seconds().is_some());
        }
    }
}
