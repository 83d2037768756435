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

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};

use crate::cli::{Cli, Command};
use crate::commands::Ctx;
use crate::error::{ErrorReport, exit};
use crate::output::Output;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(err) => return parse_failed(&err, wants_json(&args)),
    };
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
                            // The device keeps an interrupted image upload; a file
                            // transfer starts over.
                            resumable: name == "image upload",
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
    match result {
        Ok(outcome) => {
            out.answer(&outcome);
            ExitCode::SUCCESS
        }
        Err(err) => {
            let report = ErrorReport::new(&err, name, cli.global.udp.as_ref());
            out.error(&report);
            ExitCode::from(report.exit_code)
        }
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

/// Logs to stderr: nothing by default (unless `RUST_LOG` says otherwise), more with each
/// `-v`.
fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;

    let filter = match verbose {
        0 => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("off")),
        1 => EnvFilter::new("info"),
        2 => EnvFilter::new("debug"),
        _ => EnvFilter::new("trace"),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
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
