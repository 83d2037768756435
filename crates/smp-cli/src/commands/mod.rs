//! The commands, one module per management group; each returns its answer as an
//! [`Outcome`] for `main` to print.

mod enumeration;
mod fs;
mod image;
mod os;
mod raw;
mod settings;
mod shell;
mod stat;
mod zephyr;

use std::cell::Cell;
use std::path::Path;

use smp_client::udp::UdpTransport;
use smp_client::{Client, ClientOptions, Progress, RetryPolicy};

use crate::cli::{Command, GlobalOptions};
use crate::error::CliError;
use crate::output::{Outcome, Output};

/// The client type every command uses.
pub(crate) type UdpClient = Client<UdpTransport>;

/// What every command has at hand: the global options and the output.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    /// The global options.
    pub(crate) global: &'a GlobalOptions,
    /// Where answers and notes go.
    pub(crate) out: Output,
    /// How far the command's transfer has come, for the message of an interruption.
    pub(crate) progress: Cell<Option<Progress>>,
}

impl Ctx<'_> {
    /// The client's options from the global options.
    pub(crate) fn client_options(&self) -> ClientOptions {
        ClientOptions::default().with_retry(
            RetryPolicy::default()
                .with_timeout(self.global.timeout)
                .with_retries(self.global.retries),
        )
    }

    /// Connects to the device given by `--udp` (or `SMP_UDP`) and reads its MCUmgr
    /// parameters, which size every request to its buffers (and bound how many may be
    /// in flight: an upload's `--window` only lowers that).
    pub(crate) async fn client(&self) -> Result<UdpClient, CliError> {
        let target = self.global.udp.clone().ok_or_else(|| {
            CliError::Usage("no device given: use --udp HOST[:PORT] or set SMP_UDP".to_owned())
        })?;
        let target = target.with_mtu(usize::from(self.global.mtu));
        tracing::debug!(%target, "connecting");
        Client::connect_udp(target, self.client_options())
            .await
            .map_err(CliError::Connect)
    }
}

/// Runs `command` (anything but `completions`, which `main` handles).
pub(crate) async fn run(command: &Command, ctx: &Ctx<'_>) -> Result<Outcome, CliError> {
    match command {
        Command::Os(c) => os::run(c, ctx).await,
        Command::Image(c) => image::run(c, ctx).await,
        Command::Fs(c) => fs::run(c, ctx).await,
        Command::Stat(c) => stat::run(c, ctx).await,
        Command::Settings(c) => settings::run(c, ctx).await,
        Command::Shell(c) => shell::run(c, ctx).await,
        Command::Enum(c) => enumeration::run(c, ctx).await,
        Command::Zephyr(c) => zephyr::run(c, ctx).await,
        Command::Raw(args) => raw::run(args, ctx).await,
        Command::Completions { .. } => Err(CliError::Usage(
            "completions are printed without a device".to_owned(),
        )),
    }
}

/// Reads a local file.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| CliError::read(path, e))
}

/// A path as JSON shows it.
pub(crate) fn path_text(path: &Path) -> String {
    path.display().to_string()
}
