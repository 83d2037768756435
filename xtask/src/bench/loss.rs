//! The loss section of `cargo xtask bench`: an image upload and a file download at
//! 20 ms round trip while the simulated device loses 1, 5 and 10% of the datagrams in
//! each direction (`smp-sim --drop-requests P --drop-replies P`), against the same
//! transfer without loss, for our client and the Python reference (which has no retries:
//! a lost datagram ends its transfer after its timeout, and the table says how often).
//!
//! Every run gets a fresh `smp-sim` with a seed of its own, the same for our client and
//! the reference in that run and the same in every bench run, so that two bench runs
//! (before and after a change) draw their faults from the same generator. A transfer
//! that fails is counted, not fatal: failing is what the section measures too.

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use super::{Plan, Sim, Tools, json_number, median, no_key};
use crate::util::{self, Result};

/// Loss in each direction, in percent; 0 is the lossless baseline.
pub(super) const LOSS_PERCENT: [u32; 4] = [0, 1, 5, 10];
/// The device's `buf_count`s: one chunk in flight, and seven.
const BUF_COUNTS: [u32; 2] = [2, 8];
/// Simulated round trip.
const RTT_MS: u32 = 20;
/// The uploaded image: 256 KiB, header and TLVs included.
pub(super) const IMAGE_LEN: u64 = 256 << 10;
/// The target of issue 16: at 10% loss each way an upload takes at most this many
/// times its lossless time.
const TARGET: f64 = 3.0;

/// Runs per configuration and client.
fn runs(plan: Plan) -> usize {
    if plan.quick { 1 } else { 3 }
}

/// One configuration: every run's seconds, or why it failed.
#[derive(Debug)]
pub(super) struct LossCell {
    kind: &'static str,
    buf_count: u32,
    loss_percent: u32,
    ours: Vec<std::result::Result<f64, String>>,
    reference: Vec<std::result::Result<f64, String>>,
    /// Requests our client sent in its last successful run (chunks for an upload,
    /// re-sends from the device's offset included; requests for a download).
    requests: Option<u64>,
}

impl LossCell {
    fn successes(runs: &[std::result::Result<f64, String>]) -> Vec<f64> {
        runs.iter()
            .filter_map(|run| run.as_ref().ok().copied())
            .collect()
    }

    fn failures(runs: &[std::result::Result<f64, String>]) -> usize {
        runs.iter().filter(|run| run.is_err()).count()
    }

    /// Our slowest successful run, in seconds.
    fn slowest(&self) -> Option<f64> {
        Self::successes(&self.ours).into_iter().reduce(f64::max)
    }

    /// Median seconds of the successful runs of ours and of the reference.
    fn medians(&self) -> (Option<f64>, Option<f64>) {
        let of = |runs: &[std::result::Result<f64, String>]| {
            let ok = Self::successes(runs);
            (!ok.is_empty()).then(|| median(&ok))
        };
        (of(&self.ours), of(&self.reference))
    }
}

/// The loss section's results, and how to print them.
#[derive(Debug)]
pub(super) struct LossResults {
    pub(super) cells: Vec<LossCell>,
    runs: usize,
}

impl LossResults {
    /// The median seconds of the lossless cell of `kind` at `buf_count`.
    fn lossless(&self, kind: &str, buf_count: u32) -> (Option<f64>, Option<f64>) {
        self.cells
            .iter()
            .find(|c| c.kind == kind && c.buf_count == buf_count && c.loss_percent == 0)
            .map_or((None, None), LossCell::medians)
    }

    /// The table, and a line per upload on the target.
    pub(super) fn table(&self) -> String {
        let mut md = String::from(
            "| transfer | buf_count | loss each way | ours (s) | ours / lossless | ours slowest (s) | ours failed | ours requests | reference (s) | reference / lossless | reference failed | reference / ours |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        let secs = |s: Option<f64>| s.map_or("–".to_owned(), |s| format!("{s:.2}"));
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
            _ => "–".to_owned(),
        };
        for cell in &self.cells {
            let (ours, reference) = cell.medians();
            let (ours_lossless, reference_lossless) = self.lossless(cell.kind, cell.buf_count);
            let _ = writeln!(
                md,
                "| {} | {} | {}% | {} | {} | {} | {} of {} | {} | {} | {} | {} of {} | {} |",
                cell.kind,
                cell.buf_count,
                cell.loss_percent,
                secs(ours),
                ratio(ours, ours_lossless),
                secs(cell.slowest()),
                LossCell::failures(&cell.ours),
                cell.ours.len(),
                cell.requests.map_or("–".to_owned(), |n| n.to_string()),
                secs(reference),
                ratio(reference, reference_lossless),
                LossCell::failures(&cell.reference),
                cell.reference.len(),
                ratio(reference, ours),
            );
        }
        md.push('\n');
        let worst = LOSS_PERCENT[LOSS_PERCENT.len() - 1];
        for buf_count in BUF_COUNTS {
            let cell = self.cells.iter().find(|c| {
                c.kind == "upload" && c.buf_count == buf_count && c.loss_percent == worst
            });
            let (lossless, _) = self.lossless("upload", buf_count);
            let verdict = match (cell.map(LossCell::medians), lossless) {
                (Some((Some(lossy), _)), Some(lossless)) => {
                    let times = lossy / lossless;
                    let met = if times <= TARGET { "met" } else { "missed" };
                    format!("{times:.2}× its lossless time: target ({TARGET:.0}×) {met}")
                }
                _ => "no successful run: target missed".to_owned(),
            };
            let _ = writeln!(
                md,
                "- upload at {worst}% loss each way, buf_count {buf_count}: {verdict}"
            );
        }
        md
    }

    /// The section of BENCHMARKS.md (and of `target/bench/loss.md`).
    pub(super) fn markdown(&self) -> String {
        let runs = self.runs;
        format!(
            "## Loss\n\n\
             A {image} KiB MCUboot image uploaded and a {file} KiB file downloaded at {RTT_MS} ms\n\
             round trip while the simulated device drops the given share of the datagrams it\n\
             receives and of the replies it sends (`smp-sim --rtt-ms {RTT_MS} --buf-count B\n\
             --drop-requests P --drop-replies P --seed S`), {runs} run(s) per configuration and\n\
             client, ours (`smp-bench upload` / `download`, default options: the client's\n\
             retry policy, 2.5 s timeout and 3 retries) and the reference (`smpclient` 7.3.0,\n\
             which has no retries: a lost datagram ends its transfer after its timeout, 2.5 s,\n\
             40 s for the first upload chunk) alternating on a fresh device each, with the\n\
             same seed for both clients in a run. Times are medians of the successful runs;\n\
             \"/ lossless\" compares with the same client's lossless median at that `buf_count`,\n\
             \"slowest\" is our slowest successful run (the median hides a rare long one);\n\
             a failed run counts in \"failed\" and not in the times; \"ours requests\" are\n\
             those of our last successful run (upload chunks count again when sent again\n\
             from the device's offset, not when the same frame is re-sent). A request\n\
             loses every attempt the retry policy allows (four) now and then: at 10% loss\n\
             each way an attempt fails 19% of the time, four in a row 0.13%, about once in\n\
             five transfers of this size. The transfer then starts again from the device's\n\
             offset, as the device took data since (it fails only when a request runs out\n\
             twice with nothing taken in between, or before anything was taken), after that\n\
             request's last attempt waited the full timeout: what a slow run costs.\n\n\
             {}",
            self.table(),
            image = IMAGE_LEN >> 10,
            file = super::DOWNLOAD_LEN >> 10,
        )
    }
}

/// Runs the loss section.
pub(super) fn loss_matrix(tools: &Tools, plan: Plan, image: &Path) -> Result<LossResults> {
    let (root, local) = super::download_file(tools)?;
    let runs = runs(plan);
    let total = 2 * BUF_COUNTS.len() * LOSS_PERCENT.len();
    let mut cells = Vec::new();
    for kind in ["upload", "download"] {
        for buf_count in BUF_COUNTS {
            for loss_percent in LOSS_PERCENT {
                util::heading(&format!(
                    "bench: loss [{}/{total}] {kind}, buf_count {buf_count}, {loss_percent}% each way",
                    cells.len() + 1
                ));
                let mut cell = LossCell {
                    kind,
                    buf_count,
                    loss_percent,
                    ours: Vec::new(),
                    reference: Vec::new(),
                    requests: None,
                };
                for run in 1..=runs {
                    let seed = 16_000 + 100 * run as u32 + loss_percent;
                    let p = format!("{:.2}", f64::from(loss_percent) / 100.0);
                    let mut sim_args: Vec<String> = [
                        "--rtt-ms",
                        &RTT_MS.to_string(),
                        "--buf-count",
                        &buf_count.to_string(),
                        "--drop-requests",
                        &p,
                        "--drop-replies",
                        &p,
                        "--seed",
                        &seed.to_string(),
                    ]
                    .map(str::to_owned)
                    .to_vec();
                    if kind == "download" {
                        sim_args.extend(["--fs-root".to_owned(), root.display().to_string()]);
                    }
                    let sim = Sim::start(tools, &sim_args)?;
                    let ours =
                        super::attempt(&mut ours_command(tools, kind, sim.addr, image, &local))?;
                    drop(sim);
                    let ours = match ours {
                        Ok(out) => {
                            let seconds =
                                json_number(&out, "seconds").ok_or_else(|| no_key(&out))?;
                            cell.requests = json_number(&out, "chunks").map(|n| n as u64);
                            Ok(seconds)
                        }
                        Err(why) => Err(why),
                    };
                    let sim = Sim::start(tools, &sim_args)?;
                    let reference = super::attempt(&mut reference_command(
                        tools,
                        kind,
                        sim.addr.port(),
                        image,
                    ))?;
                    drop(sim);
                    let reference = match reference {
                        Ok(out) => Ok(json_number(&out, "seconds").ok_or_else(|| no_key(&out))?),
                        Err(why) => Err(why),
                    };
                    let show = |r: &std::result::Result<f64, String>| match r {
                        Ok(s) => format!("{s:.2} s"),
                        Err(why) => format!("FAILED ({why})"),
                    };
                    println!(
                        "  run {run}/{runs} (seed {seed}): ours {}, reference {}",
                        show(&ours),
                        show(&reference)
                    );
                    cell.ours.push(ours);
                    cell.reference.push(reference);
                }
                cells.push(cell);
            }
        }
    }
    Ok(LossResults { cells, runs })
}

/// Our client's command: `smp-bench upload` of `image`, or `smp-bench download` of the
/// bench file, checked against `local`.
fn ours_command(
    tools: &Tools,
    kind: &str,
    addr: SocketAddr,
    image: &Path,
    local: &Path,
) -> Command {
    let mut command = Command::new(&tools.bench);
    if kind == "upload" {
        command
            .args(["upload", "--addr", &addr.to_string(), "--image"])
            .arg(image);
    } else {
        command
            .args(["download", "--addr", &addr.to_string()])
            .args(["--name", super::DOWNLOAD_NAME, "--expect"])
            .arg(local);
    }
    command
}

/// The reference client's command for the same transfer, on a port of 127.0.0.1.
fn reference_command(tools: &Tools, kind: &str, port: u16, image: &Path) -> Command {
    let mut command = Command::new(&tools.python);
    if kind == "upload" {
        command
            .arg(tools.scripts.join("smpclient_upload.py"))
            .args(["127.0.0.1", &port.to_string()])
            .arg(image)
            .arg("--upload-only");
    } else {
        command
            .arg(tools.scripts.join("smpclient_download.py"))
            .args(["127.0.0.1", &port.to_string(), super::DOWNLOAD_NAME]);
    }
    command
}

/// Writes the loss table to `target/bench/loss.md` (for `--only loss`, which leaves
/// BENCHMARKS.md alone) and returns its path.
pub(super) fn write_alone(tools: &Tools, results: &LossResults, header: &str) -> Result<String> {
    let path = tools.dir.join("loss.md");
    let text = format!("{header}\n\n{}", results.markdown());
    fs::write(&path, &text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(kind: &'static str, buf_count: u32, loss: u32, ours: &[f64]) -> LossCell {
        LossCell {
            kind,
            buf_count,
            loss_percent: loss,
            ours: ours.iter().map(|s| Ok(*s)).collect(),
            reference: vec![Ok(1.0), Err("TimeoutError".into())],
            requests: None,
        }
    }

    #[test]
    fn the_table_compares_with_the_lossless_time_and_counts_failures() {
        let results = LossResults {
            cells: vec![
                cell("upload", 2, 0, &[2.0, 2.2, 1.8]),
                cell("upload", 2, 10, &[5.0, 7.0, 6.0]),
                cell("upload", 8, 0, &[1.0]),
                cell("upload", 8, 10, &[4.0]),
            ],
            runs: 3,
        };
        let table = results.table();
        assert!(
            table.contains(
                "| upload | 2 | 10% | 6.00 | 3.00× | 7.00 | 0 of 3 | – | 1.00 | 1.00× | 1 of 2 | 0.17× |"
            ),
            "{table}"
        );
        assert!(
            table.contains("buf_count 2: 3.00× its lossless time: target (3×) met"),
            "{table}"
        );
        assert!(
            table.contains("buf_count 8: 4.00× its lossless time: target (3×) missed"),
            "{table}"
        );
    }
}
