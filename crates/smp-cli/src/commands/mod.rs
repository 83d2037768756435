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
mod upgrade;
mod zephyr;

use std::cell::Cell;
use std::path::Path;

use smp_client::{AnyTransport, Client, ClientOptions, ImageUploadOptions, Progress, RetryPolicy};

use crate::cli::{Command, GlobalOptions, Target};
use crate::error::CliError;
use crate::output::{Outcome, Output};

/// The client type every command uses, over UDP or serial.
pub(crate) type DeviceClient = Client<AnyTransport>;

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
    /// Image upload options whose first and last chunks may wait at least as long as
    /// `--timeout` (their defaults are longer: a slot erase, an image check).
    pub(crate) fn upload_options(&self) -> ImageUploadOptions {
        let defaults = ImageUploadOptions::default();
        let (first, last) = (defaults.first_timeout, defaults.last_timeout);
        defaults
            .with_first_timeout(first.max(self.global.timeout))
            .with_last_timeout(last.max(self.global.timeout))
    }

    /// The client's options from the global options.
    pub(crate) fn client_options(&self) -> ClientOptions {
        ClientOptions::default().with_retry(
            RetryPolicy::default()
                .with_timeout(self.global.timeout)
                .with_retries(self.global.retries),
        )
    }

    /// Connects to the device given by `--udp` or `--serial` (or their variables) and
    /// reads its MCUmgr parameters, which size every request to its buffers (and bound
    /// how many may be in flight: an upload's `--window` only lowers that).
    pub(crate) async fn client(&self) -> Result<DeviceClient, CliError> {
        let target = self.global.single_target().cloned().ok_or_else(|| {
            CliError::Usage(
                "no device given: use --udp HOST[:PORT] or --serial DEVICE, or set SMP_UDP or SMP_SERIAL"
                    .to_owned(),
            )
        })?;
        connect(target, self.client_options()).await
    }
}

/// Connects to `target` and reads the device's MCUmgr parameters.
pub(crate) async fn connect(
    target: Target,
    options: ClientOptions,
) -> Result<DeviceClient, CliError> {
    tracing::debug!(%target, "connecting");
    let timeout = options.retry.timeout;
    let serial = match &target {
        Target::Serial(target) => Some(target.clone()),
        Target::Udp(_) => None,
    };
    let transport = match target {
        Target::Udp(target) => AnyTransport::connect_udp(target, timeout).await,
        Target::Serial(target) => AnyTransport::connect_serial(target, timeout).await,
    }
    .map_err(|err| CliError::Connect(err.into()))?;
    let mut client = Client::new(transport, options)
        .await
        .map_err(CliError::Connect)?;
    if let Some(target) = serial {
        // A port that vanishes while the device resets (USB re-enumerating) is opened
        // again by `smp upgrade` while it waits for the device.
        client.set_reopen(move || AnyTransport::connect_serial(target.clone(), timeout));
    }
    Ok(client)
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
        Command::Upgrade(args) => upgrade::run(args, ctx).await,
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
