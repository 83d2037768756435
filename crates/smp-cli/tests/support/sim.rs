//! Running the `smp` binary against a simulated device, and the image files to give it.
//!
//! Each test starts its own simulated device on the test's multi-thread runtime and runs
//! the binary on a blocking thread, so the device keeps answering meanwhile.

use std::path::{Path, PathBuf};
use std::process::Command;

use smp_mcuboot::{Image, ImageBuilder, ImageVersion, sample_body};
use smp_sim::{Sim, SimConfig};

use super::Run;

/// Runs `smp` with `args`, without the caller's `SMP_UDP`, `SMP_SERIAL`, `SMP_PACING` or
/// `RUST_LOG`.
pub(crate) async fn smp<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    smp_env(args, None).await
}

/// Runs `smp` with `args` and, when given, `SMP_UDP` set to `udp`.
pub(crate) async fn smp_env<I, S>(args: I, udp: Option<String>) -> Run
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let args: Vec<String> = args.into_iter().map(Into::into).collect();
    tokio::task::spawn_blocking(move || {
        let mut command = smp_command(&args);
        if let Some(udp) = udp {
            command.env("SMP_UDP", udp);
        }
        let output = command.output().expect("the smp binary runs");
        Run::from_output(output)
    })
    .await
    .expect("the blocking task finishes")
}

/// The `smp` binary with `args`, without the caller's `SMP_UDP`, `SMP_SERIAL`,
/// `SMP_PACING` or `RUST_LOG`: what every test runs.
pub(crate) fn smp_command<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_smp"));
    command
        .args(args)
        .env_remove("SMP_UDP")
        .env_remove("SMP_SERIAL")
        .env_remove("SMP_PACING")
        .env_remove("RUST_LOG");
    command
}

/// `smp --udp ADDR args...`.
pub(crate) async fn on(sim: &Sim, args: &[&str]) -> Run {
    let mut all = vec!["--udp".to_owned(), sim.addr().to_string()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    smp(all).await
}

/// `smp --udp ADDR --json args...`.
pub(crate) async fn on_json(sim: &Sim, args: &[&str]) -> Run {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    on(sim, &all).await
}

pub(crate) async fn start() -> Sim {
    start_with(SimConfig::default()).await
}

pub(crate) async fn start_with(config: SimConfig) -> Sim {
    Sim::start(config)
        .await
        .expect("the simulated device starts")
}

pub(crate) fn path_str(path: &Path) -> String {
    path.to_str().expect("UTF-8 path").to_owned()
}

/// Writes an image of `version` with a body of `len` bytes; returns its path and hash.
pub(crate) fn write_image(dir: &Path, version: ImageVersion, len: usize) -> (PathBuf, String) {
    let bytes = ImageBuilder::new(version).build(&sample_body(len, 7));
    let image = Image::parse(&bytes).expect("a built image parses");
    let hash = image.hash().expect("a built image has a hash");
    let path = dir.join(format!("app-{version}.bin"));
    std::fs::write(&path, &bytes).expect("write the image");
    (path, hex(&hash))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
