//! Developer tasks of the smp workspace, run as `cargo xtask <task>`.
//!
//! - `ci`: everything CI checks, in order, stopping at the first failure.
//! - `interop [FILTER]`: sets up the real Zephyr SMP servers from the `smpclient` sdist and
//!   runs the interop tests against each of them, one server at a time.
//!
//! Standard library only: the tools it drives (cargo, apt-get, pip, tar, sha256sum) do the
//! heavy lifting, and xtask itself should build in seconds on a fresh machine.

mod ci;
mod interop;
mod util;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <task> [options]

tasks:
  ci [--no-interop] [--skip-deny]
      fmt --check, clippy -D warnings, doc -D warnings, tests, the no_std build of
      smp-header, cargo deny, then the interop suite; stops at the first failure.
      CI runs it without options; the options only shorten a local run.
  interop [FILTER]
      installs what the Zephyr servers need (32-bit libc, as root via apt-get), downloads
      the smpclient 7.3.0 sdist into target/interop/, then starts each UDP server in turn
      and runs the interop tests against it. FILTER keeps only test names containing it.
  help
      this text";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci::Options::parse(&args[1..]).and_then(ci::run),
        Some("interop") => match &args[1..] {
            [] => interop::run(None),
            [filter] if !filter.starts_with('-') => interop::run(Some(filter)),
            other => Err(format!("interop takes at most one FILTER, got {other:?}")),
        },
        Some("help" | "-h" | "--help") | None => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(format!("unknown task `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("\nxtask: error: {message}");
            ExitCode::FAILURE
        }
    }
}
