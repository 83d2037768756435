//! `upgrade`: a safe firmware update on one device or a fleet, each device driven by
//! `Client::upgrade` in a task of its own, up to `--parallel` at once.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};
use smp_client::upgrade::{UpgradeEvent, UpgradeMode, UpgradeStep};
use smp_client::{UpgradeOptions, UpgradeOutcome, UpgradeReport};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::image::checked_image;
use super::{Ctx, connect, read_file};
use crate::cli::{Target, UpgradeArgs};
use crate::error::{CliError, ErrorReport, exit};
use crate::output::{self, Outcome};

/// One device of the fleet.
#[derive(Debug, Clone)]
struct Device {
    /// What the summary calls it: its name from `--devices`, or its address.
    name: String,
    target: Target,
}

/// What a device's task reports.
enum Report {
    Event(UpgradeEvent),
    Done(Result<UpgradeReport, CliError>),
}

/// How one device ended, for the summary.
struct Ended {
    result: Result<UpgradeReport, CliError>,
    elapsed: Duration,
}

pub(super) async fn run(args: &UpgradeArgs, ctx: &Ctx<'_>) -> Result<Outcome, CliError> {
    let mut devices: Vec<Device> = ctx
        .global
        .resolved
        .iter()
        .map(|target| Device {
            name: target.to_string(),
            target: target.clone(),
        })
        .collect();
    if let Some(list) = &args.devices {
        devices.extend(read_device_list(list, ctx)?);
    }
    if devices.is_empty() {
        return Err(CliError::Usage(
            "no device given: use --udp or --serial (several times for a fleet), or --devices LIST"
                .to_owned(),
        ));
    }
    let data = read_file(&args.file)?;
    let image = checked_image(&args.file, &data)?;
    let version = image.header.version.to_string();
    let hash = image.hash().map(|h| output::hex(&h)).unwrap_or_default();
    ctx.out.note(&format!(
        "{}: MCUboot image version {version}, {}; {} device{}",
        args.file.display(),
        output::size(data.len() as u64),
        devices.len(),
        if devices.len() == 1 { "" } else { "s" }
    ));

    let options = UpgradeOptions::default()
        .with_upload(ctx.upload_options())
        .with_confirm(!args.no_confirm)
        .with_permanent(args.permanent)
        .with_force(args.force)
        .with_reset_timeout(args.reset_timeout);
    let mut ended = upgrade_all(&devices, Arc::new(data), options, args.parallel.get(), ctx).await;

    // One device that failed is reported as any command's failure, hint included.
    if let [Ended { result: Err(_), .. }] = ended.as_slice() {
        if let Some(Ended {
            result: Err(err), ..
        }) = ended.pop()
        {
            return Err(err);
        }
    }
    Ok(summary(&devices, &ended, &version, &hash))
}

/// Runs the upgrade of every device, `parallel` at once, showing each one's steps as
/// they happen; returns how each ended, in the devices' order.
async fn upgrade_all(
    devices: &[Device],
    image: Arc<Vec<u8>>,
    options: UpgradeOptions,
    parallel: usize,
    ctx: &Ctx<'_>,
) -> Vec<Ended> {
    let client_options = ctx.client_options();
    let permits = Arc::new(Semaphore::new(parallel));
    let (tx, mut rx) = mpsc::unbounded_channel();
    // Dropped with the command (Ctrl-C): every device's upgrade stops at once, and the
    // same command continues each from where its device is.
    let mut tasks = JoinSet::new();
    for (index, device) in devices.iter().enumerate() {
        let (image, options, client_options) =
            (image.clone(), options.clone(), client_options.clone());
        let (permits, tx, target) = (permits.clone(), tx.clone(), device.target.clone());
        tasks.spawn(async move {
            let result = async {
                let _permit = permits.acquire_owned().await.ok();
                let client = connect(target, client_options).await?;
                let events = |event| {
                    let _ = tx.send((index, Report::Event(event)));
                };
                client
                    .upgrade(&image, &options, events)
                    .await
                    .map_err(CliError::from)
            }
            .await;
            let _ = tx.send((index, Report::Done(result)));
        });
    }
    drop(tx);

    let mut view = View::new(devices, ctx);
    let started = Instant::now();
    let mut ended: BTreeMap<usize, Ended> = BTreeMap::new();
    while let Some((index, report)) = rx.recv().await {
        match report {
            Report::Event(event) => view.event(index, &event),
            Report::Done(result) => {
                let done = Ended {
                    result,
                    elapsed: started.elapsed(),
                };
                view.done(index, &done);
                ended.insert(index, done);
            }
        }
    }
    view.finish();
    while tasks.join_next().await.is_some() {}
    ended.into_values().collect()
}

/// How the fleet's progress shows: a line per device on a terminal, a line per step on
/// stderr otherwise, or a JSON line per event on stdout.
struct View<'a> {
    names: Vec<String>,
    targets: Vec<Target>,
    json: bool,
    bars: Option<(MultiProgress, Vec<ProgressBar>)>,
    ctx: &'a Ctx<'a>,
}

impl<'a> View<'a> {
    fn new(devices: &[Device], ctx: &'a Ctx<'a>) -> Self {
        let json = ctx.global.json;
        let width = devices
            .iter()
            .map(|d| d.name.len())
            .max()
            .unwrap_or(0)
            .min(40);
        let bars = (!json && std::io::stderr().is_terminal()).then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let template =
                format!("{{prefix:<{width}}} {{msg:<12}} [{{bar:25}}] {{bytes}}/{{total_bytes}}");
            let style = ProgressStyle::with_template(&template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            let bars = devices
                .iter()
                .map(|device| {
                    let bar = multi.add(ProgressBar::new(0).with_style(style.clone()));
                    bar.set_prefix(device.name.clone());
                    bar.set_message("waiting");
                    bar
                })
                .collect();
            (multi, bars)
        });
        Self {
            names: devices.iter().map(|d| d.name.clone()).collect(),
            targets: devices.iter().map(|d| d.target.clone()).collect(),
            json,
            bars,
            ctx,
        }
    }

    fn event(&mut self, index: usize, event: &UpgradeEvent) {
        let name = &self.names[index];
        if self.json {
            let line = match event {
                UpgradeEvent::Started(step) => {
                    json!({"device": name, "event": "started", "step": step.as_str()})
                }
                UpgradeEvent::Finished { step, elapsed } => json!({
                    "device": name, "event": "finished", "step": step.as_str(),
                    "seconds": output::seconds(*elapsed)
                }),
                // Progress would be a line per chunk: the finished upload says enough.
                _ => return,
            };
            output::write_stdout(format!("{line}\n").as_bytes());
            return;
        }
        match (&self.bars, event) {
            (Some((_, bars)), UpgradeEvent::Started(step)) => {
                bars[index].set_message(step.as_str());
            }
            (Some((_, bars)), UpgradeEvent::Upload(p)) => {
                let bar = &bars[index];
                if bar.length() != Some(p.total) {
                    bar.set_length(p.total);
                }
                bar.set_position(p.done);
            }
            (None, UpgradeEvent::Finished { step, elapsed }) => self.ctx.out.note_stderr(&format!(
                "{name}: {step} done in {}",
                smp_client::transport::HumanDuration(*elapsed)
            )),
            _ => {}
        }
    }

    fn done(&mut self, index: usize, ended: &Ended) {
        let name = &self.names[index];
        let (word, detail) = describe(&ended.result, &self.targets[index]);
        if self.json {
            let line = json!({"device": name, "event": "done", "outcome": word, "detail": detail});
            output::write_stdout(format!("{line}\n").as_bytes());
        } else if let Some((_, bars)) = &self.bars {
            bars[index].finish_with_message(word);
        } else {
            self.ctx
                .out
                .note_stderr(&format!("{name}: {word} {detail}"));
        }
    }

    fn finish(&mut self) {
        if let Some((multi, _)) = &self.bars {
            let _ = multi.clear();
        }
    }
}

/// `upgraded`, `already running`, `rolled back`, `failed`, and the detail that goes with it.
fn describe(result: &Result<UpgradeReport, CliError>, target: &Target) -> (&'static str, String) {
    match result {
        Ok(report) if report.already_running() => ("already running", String::new()),
        Ok(report) => {
            let (word, detail) = match &report.outcome {
                UpgradeOutcome::Running {
                    confirmed,
                    previous,
                } => (
                    if *confirmed {
                        "upgraded"
                    } else {
                        "upgraded (on test)"
                    },
                    previous
                        .as_ref()
                        .map(|h| format!("was {}", short(&h.to_string())))
                        .unwrap_or_default(),
                ),
                UpgradeOutcome::RolledBack { running } => (
                    "rolled back",
                    running
                        .as_ref()
                        .map(|h| format!("runs {}", short(&h.to_string())))
                        .unwrap_or_default(),
                ),
                _ => ("unknown", String::new()),
            };
            // Through MCUboot's serial recovery: the detail says so.
            let detail = match (report.mode, detail.is_empty()) {
                (UpgradeMode::SerialRecovery, true) => "via serial recovery".to_owned(),
                (UpgradeMode::SerialRecovery, false) => format!("via serial recovery, {detail}"),
                _ => detail,
            };
            (word, detail)
        }
        Err(err) => (
            "failed",
            ErrorReport::new(err, "upgrade", Some(target)).message,
        ),
    }
}

fn short(hash: &str) -> String {
    hash.chars().take(12).collect()
}

/// The summary table (text) and document (JSON), with the exit status: 0 when every
/// device runs the image, 6 when every one that does not rolled back, else the status
/// of the first device that failed.
fn summary(devices: &[Device], ended: &[Ended], version: &str, hash: &str) -> Outcome {
    let mut rows = Vec::new();
    let mut docs = Vec::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut exit_code = 0;
    for (device, ended) in devices.iter().zip(ended) {
        let (word, detail) = describe(&ended.result, &device.target);
        *counts.entry(word).or_default() += 1;
        let mut doc = json!({
            "device": device.name, "target": device.target.to_string(), "outcome": word,
            "seconds": output::seconds(ended.elapsed),
        });
        match &ended.result {
            Ok(report) => {
                doc["steps"] = report
                    .steps
                    .iter()
                    .map(|(step, elapsed)| json!({"step": step.as_str(), "seconds": output::seconds(*elapsed)}))
                    .collect::<Value>();
                doc["resets"] = json!(report.resets);
                doc["mode"] = json!(report.mode.as_str());
                doc["uploaded"] = json!(report.upload.is_some());
                doc["detail"] = json!(detail);
                if let UpgradeOutcome::RolledBack { .. } = report.outcome {
                    if exit_code == 0 {
                        exit_code = exit::ROLLED_BACK;
                    }
                }
            }
            Err(err) => {
                let report = ErrorReport::new(err, "upgrade", Some(&device.target));
                doc["error"] = report.to_json()["error"].clone();
                if exit_code == 0 || exit_code == exit::ROLLED_BACK {
                    exit_code = report.exit_code;
                }
            }
        }
        let steps = match &ended.result {
            Ok(report) => report
                .steps
                .iter()
                .map(|(step, _)| step_letter(*step))
                .collect(),
            Err(_) => String::new(),
        };
        rows.push(vec![
            device.name.clone(),
            word.to_owned(),
            format!("{:.1} s", output::seconds(ended.elapsed)),
            steps,
            detail,
        ]);
        docs.push(doc);
    }
    let totals: Vec<String> = counts
        .iter()
        .map(|(word, n)| format!("{n} {word}"))
        .collect();
    let human = format!(
        "{}\n{} device{}: {}",
        output::table(&["DEVICE", "OUTCOME", "TIME", "STEPS", "DETAIL"], &rows),
        devices.len(),
        if devices.len() == 1 { "" } else { "s" },
        totals.join(", ")
    );
    let json = json!({
        "image": {"version": version, "hash": hash},
        "devices": docs,
        "summary": counts,
    });
    Outcome::new(json, human).with_exit_code(exit_code)
}

/// One letter a step, for the summary's STEPS column: `iumrwc`.
fn step_letter(step: UpgradeStep) -> char {
    step.as_str().chars().next().unwrap_or('?')
}

/// The devices of a `--devices` file: an address or serial port a line, then an optional
/// name; `#` starts a comment.
fn read_device_list(path: &Path, ctx: &Ctx<'_>) -> Result<Vec<Device>, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| CliError::read(path, e))?;
    parse_device_list(&text, |device| {
        if device.starts_with('/') || device.starts_with("socket://") {
            ctx.global.serial_target(device).map(Target::Serial)
        } else {
            device
                .parse()
                .map(|udp: smp_client::udp::UdpTarget| {
                    Target::Udp(udp.with_mtu(usize::from(ctx.global.mtu)))
                })
                .map_err(|_| format!("{device}: not an address (HOST[:PORT]) or a serial port"))
        }
    })
    .map_err(|message| CliError::Usage(format!("{}: {message}", path.display())))
}

fn parse_device_list(
    text: &str,
    target: impl Fn(&str) -> Result<Target, String>,
) -> Result<Vec<Device>, String> {
    let mut devices = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        let Some(address) = words.next() else {
            continue;
        };
        let target =
            target(address).map_err(|message| format!("line {}: {message}", number + 1))?;
        let name: Vec<&str> = words.collect();
        devices.push(Device {
            name: if name.is_empty() {
                address.to_owned()
            } else {
                name.join(" ")
            },
            target,
        });
    }
    Ok(devices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_lists_take_names_and_comments() {
        let text =
            "# the bench\n192.0.2.1 kitchen light\n\n192.0.2.2:1400  # no name\n/dev/ttyACM0 usb\n";
        let devices = parse_device_list(text, |a| {
            if a.starts_with('/') {
                Ok(Target::Serial(a.parse().map_err(|_| "bad".to_owned())?))
            } else {
                Ok(Target::Udp(a.parse().map_err(|_| "bad".to_owned())?))
            }
        })
        .unwrap();
        let names: Vec<&str> = devices.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["kitchen light", "192.0.2.2:1400", "usb"]);
        assert!(matches!(devices[2].target, Target::Serial(_)));
        let err = parse_device_list("192.0.2.1\n[::1\n", |a| {
            a.parse()
                .map(Target::Udp)
                .map_err(|_| format!("{a}: not an address"))
        })
        .unwrap_err();
        assert_eq!(err, "line 2: [::1: not an address");
    }
}
