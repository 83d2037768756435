//! `smp-sim`: run a simulated Zephyr SMP device on a UDP port, and a serial port if
//! asked, until interrupted.
//!
//! Prints `smp-sim listening on ADDRESS` on stdout once ready (the port chosen when
//! `--addr` asks for port 0), then, with `--serial`, `smp-sim serial on PORT` (a
//! pseudo-terminal's path, or `socket://HOST:PORT`); logs every request to stderr, and
//! stops on Ctrl-C or SIGTERM.
#![forbid(unsafe_code)]

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use smp_sim::mcuboot::ImageVersion;
use smp_sim::serial::Framing;
use smp_sim::{Delays, Faults, ImageBoot, SerialConfig, SerialListen, Silence, Sim, SimConfig};

/// The UDP address without `--addr` and without `--serial`.
const DEFAULT_ADDR: &str = "127.0.0.1:1337";

/// A simulated Zephyr SMP (MCUmgr) device over UDP, and over a serial port if asked,
/// with Zephyr's limits and faults on demand.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// UDP address to listen on; port 0 picks a free port. [default: 127.0.0.1:1337,
    /// or 127.0.0.1:0 with --serial]
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// Also serve a serial port: `pty` (a new pseudo-terminal, as native_sim's UART) or
    /// `tcp:HOST:PORT` (a TCP server, as an emulator's serial chardev; port 0 picks a
    /// free one). Prints `smp-sim serial on PATH` or `... on socket://HOST:PORT`.
    #[arg(long, value_name = "pty|tcp:ADDR", value_parser = parse_serial)]
    serial: Option<SerialListen>,
    /// Serial framing.
    #[arg(long, value_enum, default_value_t = FramingArg::Console, requires = "serial")]
    framing: FramingArg,
    /// Longest serial line the device takes, newline included, and the length of the
    /// lines of its replies (console framing).
    #[arg(long, default_value_t = smp_sim::serial::console::DEFAULT_LINE_LENGTH, requires = "serial")]
    line_length: usize,
    /// UART line buffers: a line that starts while all hold unprocessed lines is lost
    /// (a burst overrun, as on native_sim without bigrx).
    #[arg(long, default_value_t = SerialConfig::DEFAULT_RX_LINE_BUFFERS, requires = "serial")]
    rx_line_buffers: usize,
    /// As many UART line buffers as it takes: no burst overrun (native_sim's bigrx).
    #[arg(long, conflicts_with = "rx_line_buffers", requires = "serial")]
    bigrx: bool,
    /// How long a received line holds its UART line buffer, in milliseconds
    /// (native_sim's UART polling period).
    #[arg(long, default_value_t = 10.0, value_name = "MS", requires = "serial")]
    rx_hold_ms: f64,
    /// A reset ends every TCP connection to the serial port, as a USB CDC ACM port
    /// vanishes while the device re-enumerates (TCP serial only).
    #[arg(long, requires = "serial")]
    vanishes_on_reset: bool,
    /// SMP buffers shared by requests and replies (Zephyr's UDP default: 2).
    #[arg(long, default_value_t = smp_sim::DEFAULT_BUF_COUNT)]
    buf_count: usize,
    /// Size of each SMP buffer in bytes.
    #[arg(long, default_value_t = smp_sim::DEFAULT_BUF_SIZE)]
    buf_size: usize,
    /// Largest datagram read; longer ones are cut.
    #[arg(long, default_value_t = smp_sim::DEFAULT_MTU)]
    mtu: usize,
    /// Size of each image slot in bytes.
    #[arg(long, default_value_t = smp_sim::DEFAULT_SLOT_SIZE)]
    slot_size: usize,
    /// Keep the image slots in this folder (slot0.bin, slot1.bin) instead of memory.
    #[arg(long)]
    slot_dir: Option<PathBuf>,
    /// Version of the image running at first start.
    #[arg(long, default_value = "1.0.0")]
    running_version: ImageVersion,
    /// Serve the file system (mounted at /lfs1) from this folder instead of memory.
    #[arg(long)]
    fs_root: Option<PathBuf>,
    /// Add `"rc": 0` to successful replies (Zephyr's legacy behaviour).
    #[arg(long)]
    legacy_rc: bool,

    /// Processing time of every request, in milliseconds.
    #[arg(long, default_value_t = 0.0, value_name = "MS")]
    request_ms: f64,
    /// Flash write time per KiB, in milliseconds.
    #[arg(long, default_value_t = 0.0, value_name = "MS")]
    write_ms_per_kib: f64,
    /// Time to erase a slot when an upload starts, in milliseconds.
    #[arg(long, default_value_t = 0.0, value_name = "MS")]
    erase_ms: f64,
    /// Simulated network round-trip time, in milliseconds (half each way).
    #[arg(long, default_value_t = 0.0, value_name = "MS")]
    rtt_ms: f64,
    /// Boot time after a reset, in milliseconds: the device receives nothing meanwhile.
    #[arg(long, default_value_t = 0.0, value_name = "MS")]
    boot_ms: f64,
    /// What the bootloader does with an image marked for test or for good at the next
    /// boot: runs it, refuses it, or runs it until it crashes unconfirmed and reverts.
    #[arg(long, value_enum, default_value_t = ImageBootArg::Runs)]
    image_boot: ImageBootArg,

    /// Seed of the fault generator.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Fraction of received datagrams lost.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    drop_requests: f64,
    /// Fraction of replies lost.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    drop_replies: f64,
    /// Fraction of received datagrams processed twice.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    duplicate_requests: f64,
    /// Fraction of replies sent twice.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    duplicate_replies: f64,
    /// Fraction of replies held back and sent after the next one.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    reorder_replies: f64,
    /// Fraction of replies delayed by --delay-ms.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    delay_replies: f64,
    /// Delay of a delayed reply, in milliseconds.
    #[arg(long, default_value_t = 0.0, value_name = "MS")]
    delay_ms: f64,
    /// Fraction of replies with one bit flipped.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    corrupt_replies: f64,
    /// Fraction of requests answered ENOMEM without running.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    enomem: f64,
    /// Fraction of requests answered EBUSY without running.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    ebusy: f64,
    /// Go silent after this many datagrams (with --silent-ms).
    #[arg(long, value_name = "N", requires = "silent_ms")]
    silent_after: Option<u64>,
    /// How long the silence lasts, in milliseconds.
    #[arg(long, value_name = "MS", requires = "silent_after")]
    silent_ms: Option<f64>,
    /// Fraction of serial lines lost, either way (console framing).
    #[arg(long, default_value_t = 0.0, value_name = "P", requires = "serial")]
    drop_lines: f64,
    /// Fraction of serial lines with one byte corrupted, either way (console framing).
    #[arg(long, default_value_t = 0.0, value_name = "P", requires = "serial")]
    corrupt_lines: f64,

    /// More logs (-v: every request; -vv: protocol details).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

/// What the bootloader does with the next image, as `--image-boot` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ImageBootArg {
    /// Swap it in and run it.
    Runs,
    /// Refuse it: the old image keeps running.
    Refused,
    /// Run it, then revert it when it crashes before it is confirmed.
    Crashes,
}

impl From<ImageBootArg> for ImageBoot {
    fn from(boot: ImageBootArg) -> Self {
        match boot {
            ImageBootArg::Runs => Self::Runs,
            ImageBootArg::Refused => Self::Refused,
            ImageBootArg::Crashes => Self::Crashes,
        }
    }
}

/// The serial framings, as `--framing` spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FramingArg {
    /// Base64 lines with a length and CRC16 (Zephyr's SMP over console/UART).
    Console,
    /// The bare frame (Zephyr's raw UART transport).
    Raw,
    /// The frame and its CRC16, COBS-encoded (MCUboot's raw COBS serial recovery).
    Cobs,
}

impl From<FramingArg> for Framing {
    fn from(framing: FramingArg) -> Self {
        match framing {
            FramingArg::Console => Framing::Console,
            FramingArg::Raw => Framing::Raw,
            FramingArg::Cobs => Framing::RawCobs,
        }
    }
}

fn parse_serial(value: &str) -> Result<SerialListen, String> {
    match value.split_once(':') {
        None if value == "pty" => Ok(SerialListen::Pty),
        Some(("tcp", addr)) => addr
            .parse()
            .map(SerialListen::Tcp)
            .map_err(|e| format!("{addr:?} is not an address and port: {e}")),
        _ => Err("expected `pty` or `tcp:HOST:PORT` (e.g. tcp:127.0.0.1:0)".to_owned()),
    }
}

fn ms(value: f64) -> Duration {
    Duration::from_secs_f64(value.max(0.0) / 1000.0)
}

impl Args {
    fn config(&self) -> Result<SimConfig, String> {
        let probabilities = [
            ("--drop-requests", self.drop_requests),
            ("--drop-replies", self.drop_replies),
            ("--duplicate-requests", self.duplicate_requests),
            ("--duplicate-replies", self.duplicate_replies),
            ("--reorder-replies", self.reorder_replies),
            ("--delay-replies", self.delay_replies),
            ("--corrupt-replies", self.corrupt_replies),
            ("--enomem", self.enomem),
            ("--ebusy", self.ebusy),
            ("--drop-lines", self.drop_lines),
            ("--corrupt-lines", self.corrupt_lines),
        ];
        if let Some((name, p)) = probabilities.iter().find(|(_, p)| !(0.0..=1.0).contains(p)) {
            return Err(format!("{name} is a probability between 0 and 1, not {p}"));
        }
        let addr = match (self.addr, self.serial) {
            (Some(addr), _) => addr,
            (None, Some(_)) => SocketAddr::from(([127, 0, 0, 1], 0)),
            (None, None) => DEFAULT_ADDR.parse().map_err(|e| format!("{e}"))?,
        };
        Ok(SimConfig {
            addr,
            buf_count: self.buf_count,
            buf_size: self.buf_size,
            mtu: self.mtu,
            slot_size: self.slot_size,
            slot_dir: self.slot_dir.clone(),
            running_version: self.running_version,
            fs_root: self.fs_root.clone(),
            legacy_rc: self.legacy_rc,
            delays: Delays {
                per_request: ms(self.request_ms),
                per_kib_written: ms(self.write_ms_per_kib),
                erase: ms(self.erase_ms),
                one_way_latency: ms(self.rtt_ms / 2.0),
                boot: ms(self.boot_ms),
            },
            faults: Faults {
                seed: self.seed,
                drop_requests: self.drop_requests,
                drop_replies: self.drop_replies,
                duplicate_requests: self.duplicate_requests,
                duplicate_replies: self.duplicate_replies,
                reorder_replies: self.reorder_replies,
                delay_replies: self.delay_replies,
                delay: ms(self.delay_ms),
                corrupt_replies: self.corrupt_replies,
                enomem: self.enomem,
                ebusy: self.ebusy,
                silence: self
                    .silent_after
                    .zip(self.silent_ms)
                    .map(|(after, duration)| Silence {
                        after_requests: after,
                        duration: ms(duration),
                    }),
                drop_lines: self.drop_lines,
                corrupt_lines: self.corrupt_lines,
            },
        })
    }

    fn serial_config(&self) -> Option<SerialConfig> {
        self.serial.map(|listen| SerialConfig {
            listen,
            framing: self.framing.into(),
            line_length: self.line_length,
            rx_line_buffers: (!self.bigrx).then_some(self.rx_line_buffers),
            rx_hold: ms(self.rx_hold_ms),
            vanishes_on_reset: self.vanishes_on_reset,
        })
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let level = match args.verbose {
        0 => "smp_sim=info",
        1 => "smp_sim=debug",
        _ => "smp_sim=trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        // Colours on a terminal only: log files and pipes get plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let config = match args.config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("smp-sim: {message}");
            return ExitCode::from(2);
        }
    };
    // One thread, as a device has: the tasks of the simulated device hand each datagram
    // on without crossing threads, which keeps a round trip close to the bare socket's.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("smp-sim: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let started = match args.serial_config() {
            Some(serial) => Sim::start_serial(config, serial).await,
            None => Sim::start(config).await,
        };
        let sim = match started {
            Ok(sim) => {
                sim.set_image_boot(args.image_boot.into());
                sim
            }
            Err(e) => {
                let mut message = e.to_string();
                let mut cause = std::error::Error::source(&e);
                while let Some(err) = cause {
                    message = format!("{message}: {err}");
                    cause = err.source();
                }
                eprintln!("smp-sim: {message}");
                return ExitCode::FAILURE;
            }
        };
        println!("smp-sim listening on {}", sim.addr());
        if let Some(target) = sim.serial_target() {
            println!("smp-sim serial on {target}");
        }
        let _ = std::io::stdout().flush();
        wait_for_stop().await;
        sim.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// Ctrl-C, or SIGTERM on Unix.
async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
