//! The real serial SMP servers of the interop suite: what `cargo xtask interop` tells a
//! test about the fixture it started, and how to reach it with the library.
//!
//! `cargo xtask interop` starts one fixture of the `smpclient` sdist at a time (a
//! native_sim program with its UART on a pseudo-terminal, or an emulated board under
//! `qemu-system-arm` with its UART on a TCP socket) and runs the `serial_*` tests the
//! fixture's manifest entry calls for, with two variables set:
//! - [`INTEROP_SERIAL`]: where the fixture's serial port is, `/dev/pts/N` or
//!   `socket://127.0.0.1:PORT`;
//! - [`INTEROP_SERIAL_FIXTURE`]: a JSON object with the manifest's facts about it and the
//!   framing to speak ([`SerialFixture`]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use smp_client::serial::{Framing, SerialOptions, SerialTarget, SerialTransport};
use smp_client::{Client, ClientOptions};

/// Environment variable naming the serial port of the fixture under test.
pub const INTEROP_SERIAL: &str = "SMP_INTEROP_SERIAL";
/// Environment variable holding the fixture's description, a JSON object (see
/// [`SerialFixture::from_env`]).
pub const INTEROP_SERIAL_FIXTURE: &str = "SMP_INTEROP_SERIAL_FIXTURE";

/// How long a fixture may take to answer its first request: an emulated board boots
/// MCUboot, then the application, in a few seconds.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(30);

/// What a test knows about the fixture under test: the manifest's facts, and how to speak
/// to it, as `cargo xtask interop` worked them out.
#[derive(Debug, Clone)]
pub struct SerialFixture {
    /// `TARGET.CONFIG` as the reference names it, such as `native_sim.serial_buf96`.
    pub name: String,
    /// The serial port: a pseudo-terminal or `socket://127.0.0.1:PORT`.
    pub target: String,
    /// The framing the application's SMP server speaks.
    pub framing: Framing,
    /// The longest console line the server takes (`line_length_max`), when it says.
    pub line_length: Option<usize>,
    /// The application's buffer size and count (`buf_size`, `buf_count`).
    pub buf_size: usize,
    /// See [`buf_size`](Self::buf_size).
    pub buf_count: usize,
    /// Whether the server answers MCUmgr parameters (false for `noparams` builds).
    pub params: bool,
    /// The management groups the manifest lists (`os`, `img`, `stat`, `settings`, `fs`,
    /// `shell`, `enum`, `zbasic`).
    pub groups: Vec<String>,
    /// Groups the manifest lists that the build does not have (errata the runner keeps,
    /// with the evidence); [`groups`](Self::groups) leaves them out.
    pub absent_groups: Vec<String>,
    /// Whether the application runs under MCUboot.
    pub mcuboot: bool,
    /// MCUboot serial recovery, when the fixture has it: entered with `os reset
    /// boot_mode=1` from the application.
    pub recovery: Option<Recovery>,
    /// The fixture's own signed application image (`*.signed.bin`), when it has one.
    pub image: Option<PathBuf>,
}

/// MCUboot's serial recovery on a fixture.
#[derive(Debug, Clone, Copy)]
pub struct Recovery {
    /// The framing the bootloader speaks (it may differ from the application's: the raw
    /// COBS fixture's application speaks raw).
    pub framing: Framing,
    /// The bootloader's MCUmgr parameters, when the manifest says it reports them
    /// (`recovery_buf_size`, `recovery_buf_count`).
    pub params: Option<(usize, usize)>,
}

impl SerialFixture {
    /// The fixture `cargo xtask interop` started, from [`INTEROP_SERIAL`] and
    /// [`INTEROP_SERIAL_FIXTURE`]. Panics with instructions when they are missing: an
    /// interop test never passes without having talked to the real server.
    pub fn from_env() -> Self {
        let target = crate::interop_server(INTEROP_SERIAL);
        let json = crate::interop_server(INTEROP_SERIAL_FIXTURE);
        let value: serde_json::Value = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("{INTEROP_SERIAL_FIXTURE} is not JSON ({e}): {json}"));
        let field = |key: &str| {
            value
                .get(key)
                .unwrap_or_else(|| panic!("{INTEROP_SERIAL_FIXTURE} has no {key:?}: {json}"))
        };
        let size = |key: &str| field(key).as_u64().map(|n| n as usize);
        let strings = |key: &str| -> Vec<String> {
            field(key)
                .as_array()
                .unwrap_or_else(|| panic!("{INTEROP_SERIAL_FIXTURE}: {key} is not a list"))
                .iter()
                .map(|g| g.as_str().unwrap().to_owned())
                .collect()
        };
        let framing = |key: &str| match field(key).as_str() {
            Some("console") => Framing::Console,
            Some("raw") => Framing::Raw,
            Some("cobs") => Framing::RawCobs,
            other => panic!("{INTEROP_SERIAL_FIXTURE}: unknown {key} {other:?}"),
        };
        let recovery = field("serial_recovery")
            .as_bool()
            .unwrap()
            .then(|| Recovery {
                framing: framing("recovery_framing"),
                params: size("recovery_buf_size").zip(size("recovery_buf_count")),
            });
        Self {
            name: field("name").as_str().unwrap().to_owned(),
            target,
            framing: framing("framing"),
            line_length: size("line_length"),
            buf_size: size("buf_size").unwrap(),
            buf_count: size("buf_count").unwrap(),
            params: field("params").as_bool().unwrap(),
            groups: strings("groups"),
            absent_groups: strings("absent_groups"),
            mcuboot: field("mcuboot").as_bool().unwrap(),
            recovery,
            image: field("image").as_str().map(PathBuf::from),
        }
    }

    /// Whether the manifest lists `group` for the application.
    pub fn has_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// The serial settings for `framing` on this fixture: everything the transport's
    /// defaults (pacing included), but for a server that reports its parameters, console
    /// lines as long as the manifest says it takes. The frame size comes from the
    /// parameters then, and the line length only decides how a frame is cut. Without
    /// parameters the client sizes frames from the line length (two lines' worth, as
    /// the reference does), and the manifest's longest line would overshoot the buffer
    /// (2 × 512-byte lines carry 745 B, `serial_noparams` holds 384): the default 128
    /// is what a client that knows nothing about the device uses.
    pub fn options(&self, framing: Framing) -> SerialOptions {
        let options = SerialOptions::default().framing(framing);
        match (framing, self.line_length) {
            (Framing::Console, Some(line_length)) if self.params => {
                options.line_length(line_length)
            }
            _ => options,
        }
    }

    /// The target with the application's framing.
    pub fn app_target(&self) -> SerialTarget {
        self.target_with(self.options(self.framing))
    }

    /// The port with `options`.
    pub fn target_with(&self, options: SerialOptions) -> SerialTarget {
        let target: SerialTarget = self
            .target
            .parse()
            .unwrap_or_else(|e| panic!("{INTEROP_SERIAL}={}: {e}", self.target));
        target.with_options(options)
    }

    /// The largest frame the client should send once it has read the application's
    /// parameters: console framing keeps its length field and CRC in the device's
    /// buffer (`buf_size - 4`), raw framings do not.
    pub fn expected_frame_limit(&self, framing: Framing, buf_size: usize) -> usize {
        match framing {
            Framing::Console => buf_size - 4,
            _ => buf_size,
        }
    }
}

/// A client of the application, once it answers (an emulated board may still be booting).
pub async fn app_client(fixture: &SerialFixture) -> Client<SerialTransport> {
    answering_client(fixture.app_target(), ClientOptions::default(), Probe::Echo).await
}

/// What shows that a device is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// An echo comes back (an application).
    Echo,
    /// MCUboot serial recovery answers: the image state comes back without the flags
    /// an application's image group reports (`active`, `confirmed`, ...); MCUboot's
    /// recovery lists only slot, version and hash. An application that has answered
    /// `os reset` restarts a moment later, and until then it still answers.
    Bootloader,
}

/// Connects to `target` again and again until the device answers `probe` within
/// [`BOOT_TIMEOUT`], then returns a client that has read the device's parameters as
/// `options` ask.
pub async fn answering_client(
    target: SerialTarget,
    options: ClientOptions,
    probe: Probe,
) -> Client<SerialTransport> {
    let started = Instant::now();
    let quick = ClientOptions::default().with_read_params(false).with_retry(
        smp_client::RetryPolicy::default()
            .with_timeout(Duration::from_millis(500))
            .with_retries(0),
    );
    let mut last_error = String::from("no attempt");
    while started.elapsed() < BOOT_TIMEOUT {
        match Client::connect_serial(target.clone(), quick.clone()).await {
            Ok(client) => {
                let answered = match probe {
                    Probe::Echo => client
                        .echo("ready?")
                        .await
                        .map(drop)
                        .map_err(|e| crate::error_chain(&e)),
                    Probe::Bootloader => match client.image_state().await {
                        Ok(states) if states.iter().all(|s| s.active.is_none()) => Ok(()),
                        Ok(states) => Err(format!("an application answers: {states:?}")),
                        Err(e) => Err(crate::error_chain(&e)),
                    },
                };
                let _ = client.close().await;
                match answered {
                    Ok(()) => {
                        tracing::info!(%target, elapsed = ?started.elapsed(), "device answers");
                        return Client::connect_serial(target.clone(), options)
                            .await
                            .unwrap_or_else(|e| panic!("{target} answered, then: {e}"));
                    }
                    Err(e) => last_error = e,
                }
            }
            Err(e) => last_error = crate::error_chain(&e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{target} did not answer {probe:?} within {BOOT_TIMEOUT:?}; last error: {last_error}");
}
