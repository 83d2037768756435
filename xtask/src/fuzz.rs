//! `cargo xtask fuzz`: runs every fuzz target of `fuzz/` with cargo-fuzz on the nightly
//! toolchain, for a fixed time each, and reports the executions per target.
//!
//! Each target starts from the checked-in seed corpus (`fuzz/corpus/<target>/`, read
//! only) and writes what it discovers to `fuzz/target/corpus/<target>/` (kept between
//! runs, ignored by git). A crash stops the task with the failing input's path, found
//! under `fuzz/artifacts/<target>/`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{self, Result};

/// Every target in `fuzz/Cargo.toml`.
pub(crate) const TARGETS: [&str; 5] = [
    "header_decode",
    "reply_decode",
    "reassembler",
    "client_replies",
    "serial_deframer",
];

/// Seconds per target when none are given.
const DEFAULT_SECONDS: u64 = 60;

/// What to fuzz and for how long.
#[derive(Debug)]
pub(crate) struct Options {
    pub(crate) seconds: u64,
    pub(crate) targets: Vec<String>,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Self> {
        let mut seconds = DEFAULT_SECONDS;
        let mut targets = Vec::new();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--seconds" => {
                    let value = args
                        .next()
                        .ok_or("fuzz: --seconds needs a number of seconds")?;
                    seconds = value.parse().ok().filter(|&s| s > 0).ok_or(format!(
                        "fuzz: --seconds {value:?} is not a positive whole number"
                    ))?;
                }
                target if TARGETS.contains(&target) => targets.push(target.to_owned()),
                other => {
                    return Err(format!(
                        "fuzz: unknown argument `{other}` (options: --seconds N; targets: {})",
                        TARGETS.join(", ")
                    ));
                }
            }
        }
        if targets.is_empty() {
            targets = TARGETS.iter().map(|t| (*t).to_owned()).collect();
        }
        Ok(Self { seconds, targets })
    }
}

/// What one libFuzzer run reported.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Stats {
    runs: Option<u64>,
    exec_per_sec: Option<u64>,
    corpus: Option<String>,
}

/// Reads libFuzzer's final lines: `#654563\tDONE   cov: 75 ft: 90 corp: 5/33b ...
/// exec/s: 59505 rss: 193Mb` and `Done 654563 runs in 11 second(s)`.
fn parse_stats(log: &str) -> Stats {
    let mut stats = Stats::default();
    for line in log.lines() {
        if let Some(rest) = line.strip_prefix('#') {
            let mut words = rest.split_whitespace();
            let (Some(runs), Some("DONE")) = (words.next(), words.next()) else {
                continue;
            };
            stats.runs = runs.parse().ok();
            let words: Vec<&str> = words.collect();
            for pair in words.windows(2) {
                match pair[0] {
                    "exec/s:" => stats.exec_per_sec = pair[1].parse().ok(),
                    "corp:" => stats.corpus = Some(pair[1].to_owned()),
                    _ => {}
                }
            }
        } else if let Some(rest) = line.strip_prefix("Done ") {
            if stats.runs.is_none() {
                stats.runs = rest.split_whitespace().next().and_then(|n| n.parse().ok());
            }
        }
    }
    stats
}

/// The fuzz crate's folder.
fn fuzz_dir() -> PathBuf {
    util::root().join("fuzz")
}

/// `cargo +nightly ...` from the fuzz folder.
fn nightly_cargo() -> Command {
    let mut command = util::toolchain_cargo("nightly");
    command.current_dir(fuzz_dir());
    command
}

/// Installs the nightly toolchain with rustup unless it is there.
fn ensure_nightly() -> Result {
    let output = Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .map_err(|e| format!("fuzzing needs rustup (for a nightly toolchain): {e}"))?;
    let listed = String::from_utf8_lossy(&output.stdout);
    if listed.lines().any(|line| line.starts_with("nightly")) {
        return Ok(());
    }
    util::heading("fuzz: installing the nightly toolchain (cargo-fuzz needs it)");
    util::run(Command::new("rustup").args([
        "toolchain",
        "install",
        "nightly",
        "--profile",
        "minimal",
    ]))
}

/// Installs cargo-fuzz unless `cargo +nightly fuzz` already works.
fn ensure_cargo_fuzz() -> Result {
    if util::succeeds(nightly_cargo().args(["fuzz", "--version"])) {
        return Ok(());
    }
    util::heading("fuzz: installing cargo-fuzz (cargo install --locked cargo-fuzz)");
    let started = Instant::now();
    util::run(util::cargo().args(["install", "--locked", "cargo-fuzz"]))?;
    println!(
        "cargo-fuzz installed in {}",
        util::seconds(started.elapsed())
    );
    Ok(())
}

/// The outcome of one target.
struct Run {
    target: String,
    elapsed: Duration,
    stats: Stats,
    failure: Option<String>,
}

fn fuzz_target(target: &str, seconds: u64, logs: &Path) -> Result<Run> {
    let work = fuzz_dir().join("target/corpus").join(target);
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let log_path = logs.join(format!("{target}.log"));
    let log = File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let mut command = nightly_cargo();
    command
        .args(["fuzz", "run", target])
        // New inputs go to the first folder; the seed corpus is only read.
        .arg(&work)
        .arg(Path::new("corpus").join(target))
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        // One input taking this long is a hang, reported like a crash.
        .arg("-timeout=20")
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log);
    let shown = util::show(&command);
    println!("$ {shown}   (log: {})", log_path.display());
    let started = Instant::now();
    let status = command
        .status()
        .map_err(|e| format!("could not start `{shown}`: {e}"))?;
    let elapsed = started.elapsed();
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let stats = parse_stats(&text);
    let failure = if status.success() && stats.runs.is_some() {
        None
    } else {
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let artifact = text
            .lines()
            .find_map(|l| l.split_once("Test unit written to ").map(|(_, p)| p.trim()))
            .unwrap_or("none written");
        Some(format!(
            "`{shown}` failed ({status}); failing input: {artifact}\n--- last lines of {}:\n{}",
            log_path.display(),
            tail.join("\n")
        ))
    };
    Ok(Run {
        target: target.to_owned(),
        elapsed,
        stats,
        failure,
    })
}

pub(crate) fn run(options: Options) -> Result {
    ensure_nightly()?;
    ensure_cargo_fuzz()?;
    util::heading("fuzz: building the targets (cargo +nightly fuzz build)");
    util::run(nightly_cargo().args(["fuzz", "build"]))?;
    let logs = fuzz_dir().join("target/logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
    let mut runs = Vec::new();
    for target in &options.targets {
        util::heading(&format!("fuzz: {target} for {} s", options.seconds));
        runs.push(fuzz_target(target, options.seconds, &logs)?);
    }
    println!("\nfuzz summary ({} s per target):", options.seconds);
    println!(
        "  {:<16} {:>8} {:>12} {:>10}  {:<12}  status",
        "target", "time", "executions", "exec/s", "corpus"
    );
    let show = |n: Option<u64>| n.map_or_else(|| "?".to_owned(), |n| n.to_string());
    for run in &runs {
        println!(
            "  {:<16} {:>8} {:>12} {:>10}  {:<12}  {}",
            run.target,
            util::seconds(run.elapsed),
            show(run.stats.runs),
            show(run.stats.exec_per_sec),
            run.stats.corpus.as_deref().unwrap_or("?"),
            if run.failure.is_some() {
                "FAILED"
            } else {
                "ok"
            }
        );
    }
    let failures: Vec<&str> = runs.iter().filter_map(|r| r.failure.as_deref()).collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} fuzz target(s) failed:\n{}",
            failures.len(),
            failures.join("\n\n")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_final_lines() {
        let log = "#1024\tpulse  cov: 70 ft: 80 corp: 5/33b exec/s: 512 rss: 40Mb\n\
                   #654563\tDONE   cov: 75 ft: 90 corp: 5/33b lim: 4096 exec/s: 59505 rss: 193Mb\n\
                   Done 654563 runs in 11 second(s)\n";
        assert_eq!(
            parse_stats(log),
            Stats {
                runs: Some(654_563),
                exec_per_sec: Some(59_505),
                corpus: Some("5/33b".into()),
            }
        );
        assert_eq!(parse_stats("no stats at all"), Stats::default());
        assert_eq!(parse_stats("Done 12 runs in 1 second(s)").runs, Some(12));
    }

    #[test]
    fn options() {
        let args = |s: &[&str]| s.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
        let o = Options::parse(&args(&[])).unwrap();
        assert_eq!(
            (o.seconds, o.targets.len()),
            (DEFAULT_SECONDS, TARGETS.len())
        );
        let o = Options::parse(&args(&["--seconds", "5", "reassembler"])).unwrap();
        assert_eq!((o.seconds, o.targets), (5, vec!["reassembler".to_owned()]));
        assert!(Options::parse(&args(&["--seconds"])).is_err());
        assert!(Options::parse(&args(&["--seconds", "0"])).is_err());
        assert!(Options::parse(&args(&["nope"])).is_err());
    }

    #[test]
    fn every_target_is_declared_in_the_fuzz_crate() {
        let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
        for target in TARGETS {
            assert!(
                manifest.contains(&format!("name = \"{target}\"")),
                "{target} is not a [[bin]] of fuzz/Cargo.toml"
            );
        }
    }
}
