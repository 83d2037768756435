//! `cargo xtask ci`: every check CI makes, in order, stopping at the first failure.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::{self, Result};

/// The bare-metal target that proves `smp-header` is `no_std`.
const NO_STD_TARGET: &str = "thumbv7em-none-eabihf";
/// Seconds of fuzzing per target in CI: enough to catch a shallow regression.
const FUZZ_SECONDS: u64 = 20;

/// What to leave out of a local run. CI passes no options and runs everything.
#[derive(Debug, Default)]
pub(crate) struct Options {
    no_interop: bool,
    skip_deny: bool,
    no_fuzz: bool,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Self> {
        let mut options = Self::default();
        for arg in args {
            match arg.as_str() {
                "--no-interop" => options.no_interop = true,
                "--skip-deny" => options.skip_deny = true,
                "--no-fuzz" => options.no_fuzz = true,
                other => {
                    return Err(format!(
                        "ci: unknown option `{other}` (known: --no-interop, --skip-deny, --no-fuzz)"
                    ));
                }
            }
        }
        Ok(options)
    }
}

/// One step: a name for the heading and summary, and what it runs.
struct Step {
    name: String,
    action: Action,
}

enum Action {
    Cargo(Vec<&'static str>, Vec<(&'static str, &'static str)>),
    Fuzz,
    Interop,
}

impl Step {
    fn cargo(args: &[&'static str]) -> Self {
        Self::cargo_env(args, &[])
    }

    fn cargo_env(args: &[&'static str], env: &[(&'static str, &'static str)]) -> Self {
        let mut name = String::new();
        for (key, value) in env {
            name.push_str(&format!("{key}={value} "));
        }
        name.push_str("cargo ");
        name.push_str(&args.join(" "));
        Self {
            name,
            action: Action::Cargo(args.to_vec(), env.to_vec()),
        }
    }

    fn run(&self) -> Result {
        match &self.action {
            Action::Cargo(args, env) => {
                let mut command: Command = util::cargo();
                command.args(args).envs(env.iter().copied());
                util::run(&mut command)
            }
            Action::Fuzz => crate::fuzz::run(crate::fuzz::Options {
                seconds: FUZZ_SECONDS,
                targets: crate::fuzz::TARGETS.map(str::to_owned).to_vec(),
            }),
            Action::Interop => crate::interop::run(None),
        }
    }
}

pub(crate) fn run(options: Options) -> Result {
    let mut steps = vec![
        Step::cargo(&["fmt", "--all", "--", "--check"]),
        Step::cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
        Step::cargo_env(
            &["doc", "--workspace", "--no-deps"],
            &[("RUSTDOCFLAGS", "-Dwarnings")],
        ),
        Step::cargo(&["test", "--workspace"]),
        Step::cargo(&["build", "-p", "smp-header", "--target", NO_STD_TARGET]),
    ];
    if !options.skip_deny {
        steps.push(Step::cargo(&[
            "deny", "check", "licenses", "bans", "sources",
        ]));
    }
    if !options.no_fuzz {
        steps.push(Step {
            name: format!("cargo xtask fuzz --seconds {FUZZ_SECONDS}"),
            action: Action::Fuzz,
        });
    }
    if !options.no_interop {
        steps.push(Step {
            name: "cargo xtask interop".to_owned(),
            action: Action::Interop,
        });
    }

    let total = steps.len();
    let mut done: Vec<(&str, Duration)> = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        util::heading(&format!("ci [{}/{total}] {}", index + 1, step.name));
        let started = Instant::now();
        let result = step.run();
        done.push((&step.name, started.elapsed()));
        if let Err(message) = result {
            summary(&done, true);
            return Err(format!("ci step {}/{total} failed: {message}", index + 1));
        }
    }
    summary(&done, false);
    let skipped: Vec<&str> = [
        (options.skip_deny, "cargo deny"),
        (options.no_fuzz, "fuzz"),
        (options.no_interop, "interop"),
    ]
    .into_iter()
    .filter_map(|(skip, name)| skip.then_some(name))
    .collect();
    if skipped.is_empty() {
        println!("\nci: all {total} steps passed");
    } else {
        println!(
            "\nci: all {total} steps passed; SKIPPED on request: {}",
            skipped.join(", ")
        );
    }
    Ok(())
}

/// Elapsed time of each step run so far; the last one is marked if it failed.
fn summary(done: &[(&str, Duration)], last_failed: bool) {
    println!("\nci summary:");
    for (index, (name, elapsed)) in done.iter().enumerate() {
        let status = if last_failed && index + 1 == done.len() {
            "FAILED"
        } else {
            "ok"
        };
        println!("  {status:<6} {:>7}  {name}", util::seconds(*elapsed));
    }
}
