#![doc = include_str!("reference.md")]
#![forbid(unsafe_code)]

mod cli;
mod commands;
mod error;
mod output;
mod progress;
mod reference;

use std::cell::Cell;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

use crate::cli::{Cli, Command};
use crate::commands::Ctx;
use crate::error::{ErrorReport, exit};
use crate::output::Output;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let mut cli = match Cli::command()
        .try_get_matches_from(&args)
        .and_then(|matches| {
            let mut cli = Cli::from_arg_matches(&matches)?;
            prefer_the_command_line(&mut cli, &matches);
            Ok(cli)
        }) {
        Ok(cli) => cli,
        Err(err) => return parse_failed(&err, wants_json(&args)),
    };
    let targets = cli.global.targets().and_then(|targets| {
        if targets.len() > 1 && !cli.command.takes_a_fleet() {
            return Err(format!(
                "{} devices given (--udp, --serial, SMP_UDP, SMP_SERIAL): this command talks \
                 to one; `smp upgrade` takes several",
                targets.len()
            ));
        }
        Ok(targets)
    });
    match targets {
        Ok(targets) => cli.global.resolved = targets,
        Err(message) => {
            let report = ErrorReport::usage(message, Some(cli.command.name()));
            Output::new(cli.global.json).error(&report);
            return ExitCode::from(exit::USAGE);
        }
    }
    init_tracing(cli.global.verbose);
    let out = Output::new(cli.global.json).answers_to_stderr(cli.command.stdout_carries_data());

    if let Command::Completions { shell } = &cli.command {
        // Into a buffer first: `generate` panics when it cannot write, and a reader that
        // stops early (`smp completions bash | head -1`) is no error.
        let mut script = Vec::new();
        clap_complete::generate(*shell, &mut Cli::command(), "smp", &mut script);
        output::write_stdout(&script);
        return ExitCode::SUCCESS;
    }

    let name = cli.command.name();
    let started = Instant::now();
    let result = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => {
            let ctx = Ctx {
                global: &cli.global,
                out,
                progress: Cell::new(None),
            };
            runtime.block_on(async {
                tokio::select! {
                    // First, so that the handler is in place before any request goes out.
                    biased;
                    Ok(()) = tokio::signal::ctrl_c() => {
                        // The command's future is dropped here: its progress bar is
                        // cleared before the message is printed.
                        Err(error::CliError::Interrupted {
                            progress: ctx.progress.get(),
                            resumable: cli.command.resumes_on_rerun(),
                        })
                    }
                    result = commands::run(&cli.command, &ctx) => result,
                }
            })
        }
        Err(err) => Err(error::CliError::Internal(format!(
            "cannot start the async runtime: {err}"
        ))),
    };
    let elapsed = Millis(started.elapsed());
    match result {
        Ok(outcome) => {
            // `-v`: one line per command.
            tracing::info!(target: COMMAND_TARGET, "{name}: ok in {elapsed}");
            out.answer(&outcome);
            ExitCode::from(outcome.exit_code)
        }
        Err(err) => {
            let report = ErrorReport::new(&err, name, cli.global.single_target());
            tracing::info!(
                target: COMMAND_TARGET,
                "{name}: failed in {elapsed} ({}, exit status {})",
                report.kind,
                report.exit_code
            );
            out.error(&report);
            ExitCode::from(report.exit_code)
        }
    }
}

/// When one of --udp and --serial is on the command line and the other comes from its
/// environment variable, the command line wins: `SMP_UDP` in a shell's environment does
/// not stop `smp --serial /dev/ttyACM0`.
fn prefer_the_command_line(cli: &mut Cli, matches: &ArgMatches) {
    let (udp, serial) = (source(matches, "udp"), source(matches, "serial"));
    match (udp, serial) {
        (Some(ValueSource::CommandLine), Some(ValueSource::EnvVariable)) => {
            cli.global.serial.clear();
        }
        (Some(ValueSource::EnvVariable), Some(ValueSource::CommandLine)) => cli.global.udp.clear(),
        _ => {}
    }
}

/// Where the global argument `id` got its value, in the matches of whichever
/// subcommand holds it.
fn source(matches: &ArgMatches, id: &str) -> Option<ValueSource> {
    let here = matches.value_source(id);
    let below = matches.subcommand().and_then(|(_, sub)| source(sub, id));
    match (here, below) {
        (Some(ValueSource::CommandLine), _) | (_, Some(ValueSource::CommandLine)) => {
            Some(ValueSource::CommandLine)
        }
        (here, below) => here.or(below),
    }
}

/// A duration in milliseconds, to a hundredth: `3.21 ms`.
struct Millis(Duration);

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.2} ms", self.0.as_secs_f64() * 1000.0)
    }
}

/// True when `--json` comes before any `--` on the command line, so that a command line
/// clap refused still gets its error as JSON.
fn wants_json(args: &[OsString]) -> bool {
    args.iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json")
}

/// Reports a command line clap refused, or prints the help or version it asked for.
fn parse_failed(err: &clap::Error, json: bool) -> ExitCode {
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            // Help and version go to stdout, with status 0.
            let _ = err.print();
            ExitCode::SUCCESS
        }
        _ if json => {
            let message = err.render().to_string();
            let report = ErrorReport::usage(message.trim_end(), None);
            Output::new(true).error(&report);
            ExitCode::from(exit::USAGE)
        }
        _ => {
            let _ = err.print();
            ExitCode::from(exit::USAGE)
        }
    }
}

/// The target of the one line `-v` prints per command.
const COMMAND_TARGET: &str = "smp::command";

/// What each `-v` logs, as an `EnvFilter` (whose targets match as prefixes: `smp` covers
/// `smp_client`, `smp_udp` and the rest): `-v` one line per command (its name, result and
/// time), `-vv` one line per request and reply (the client's debug events: command name,
/// sequence, length, round-trip time; connecting, retries and dropped datagrams too),
/// `-vvv` the same lines with the CBOR in diagnostic notation and the frame in hex (the
/// client's trace events).
fn verbosity_filter(verbose: u8) -> &'static str {
    match verbose {
        0 => "off",
        1 => "smp::command=info",
        2 => "smp=debug",
        _ => "smp=debug,smp_client=trace",
    }
}

/// Logs to stderr: nothing by default (unless `RUST_LOG` says otherwise), more with each
/// `-v` ([`verbosity_filter`]). Lines start with the time since `smp` started.
fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;

    let filter = match verbose {
        0 => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("off")),
        _ => EnvFilter::new(verbosity_filter(verbose)),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_timer(tracing_subscriber::fmt::time::uptime())
        .with_target(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn json_is_detected_before_double_dash_only() {
        assert!(wants_json(&args(&["smp", "--json", "os"])));
        assert!(wants_json(&args(&["smp", "os", "echo", "--json"])));
        assert!(!wants_json(&args(&[
            "smp", "shell", "exec", "--", "--json"
        ])));
        assert!(
            !wants_json(&args(&["--json"])),
            "the program name is skipped"
        );
    }
}
