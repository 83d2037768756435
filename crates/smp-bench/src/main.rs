//! `smp-bench`: the Rust side of `cargo xtask bench`.
//!
//! A benchmark tool beside the `smp` layers, not one of them: each subcommand times one
//! thing against a simulated device (`smp-sim`) on loopback and prints one line of JSON
//! with what it measured. `cargo xtask bench` runs it next to the Python reference client
//! and writes the tables of `BENCHMARKS.md`. It asserts nothing about speed.
//!
//! - `upload`: our client connects with default options (window automatic) and uploads
//!   an image; the upload alone is timed, as the reference script times it.
//! - `download`: our client connects with default options and downloads a file, which
//!   is then compared with a local copy; the download alone is timed, without the hash
//!   check afterwards (the reference client makes none).
//! - `echo`: sequential echo requests, each timed; `--raw` sends pre-encoded SMP frames
//!   on a bare socket instead, to separate the simulated device's cost from the client's.
//! - `udp-floor`: the same number and size of datagrams bounced off a minimal echo
//!   socket: what loopback UDP with tokio costs at least.
//! - `fleet`: N simulated devices in this process, one image uploaded to all of them at
//!   once by one client each, on one tokio runtime.
//! - `sims` and `fleet-upgrade`: N simulated devices in one process, and
//!   `Client::upgrade` on all of them at once in another, so that its peak memory is the
//!   client's alone ([`fleet_upgrade`]).
//! - `serial-upload`, `serial-wait`: an image upload over a serial port with what the
//!   transport counted, and a wait for a booting device (see [`serial`]).
//!
//! `RUST_LOG` (for example `RUST_LOG=smp_client=debug`) logs to stderr what the client
//! does meanwhile: re-sends, probes, the upload window.
#![forbid(unsafe_code)]

mod fleet_upgrade;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use smp_client::header::Header;
use smp_client::messages::os::EchoRequest;
use smp_client::{Client, ClientOptions, FileTransferOptions, ImageUploadOptions, Request};
use smp_mcuboot::{ImageBuilder, ImageVersion, sample_body};
use smp_sim::{Delays, Sim, SimConfig};
use tokio::net::UdpSocket;

mod serial;

/// Requests sent before timing starts (sockets, caches and the device's first-request
/// work warmed up).
const WARMUP: usize = 50;
/// How long one echo or floor round trip may take before the run fails: loopback
/// never loses datagrams, so a timeout means something is broken.
const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(2);

/// Timed runs of the smp client against a simulated device; one line of JSON each.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Connect (default options) and upload an MCUboot image; time the upload.
    Upload {
        /// The device, e.g. 127.0.0.1:1337.
        #[arg(long)]
        addr: SocketAddr,
        /// The image file.
        #[arg(long)]
        image: PathBuf,
    },
    /// Connect (default options) and download a file; time the download, then compare
    /// it with a local copy.
    Download {
        /// The device, e.g. 127.0.0.1:1337.
        #[arg(long)]
        addr: SocketAddr,
        /// The file on the device, e.g. /lfs1/bench.bin.
        #[arg(long)]
        name: String,
        /// A local copy of the file, to check the download against.
        #[arg(long)]
        expect: PathBuf,
    },
    /// Sequential echo requests of SIZE characters; per-echo median and p90.
    Echo {
        /// The device, e.g. 127.0.0.1:1337.
        #[arg(long)]
        addr: SocketAddr,
        /// Timed echoes (after a warm-up of 50).
        #[arg(long, default_value_t = 1000)]
        count: usize,
        /// Characters echoed.
        #[arg(long, default_value_t = 32)]
        size: usize,
        /// Send pre-encoded frames on a bare UDP socket instead of using the client.
        #[arg(long)]
        raw: bool,
    },
    /// A minimal UDP ping-pong on loopback with datagrams as long as the SMP echo frame
    /// of SIZE characters: the floor under any echo.
    UdpFloor {
        /// Timed round trips (after a warm-up of 50).
        #[arg(long, default_value_t = 1000)]
        count: usize,
        /// Characters of the echo whose frame size the datagrams take.
        #[arg(long, default_value_t = 32)]
        size: usize,
    },
    /// Start N simulated devices in this process and upload one image to all at once.
    Fleet {
        /// Simulated devices, each on its own port of 127.0.0.1.
        #[arg(long)]
        devices: usize,
        /// Image size in KiB (header and TLVs included).
        #[arg(long, default_value_t = 1024)]
        image_kib: usize,
        /// Simulated round-trip time of each device, in milliseconds.
        #[arg(long, default_value_t = 20.0)]
        rtt_ms: f64,
        /// SMP buffers of each device.
        #[arg(long, default_value_t = 4)]
        buf_count: usize,
    },
    /// Connect over a serial port (default client options) and upload an image; time
    /// the upload and report what the serial transport counted.
    SerialUpload {
        /// A pseudo-terminal or serial device path, or socket://HOST:PORT.
        #[arg(long)]
        port: String,
        /// The image file.
        #[arg(long)]
        image: PathBuf,
        /// Console line length, newline included.
        #[arg(long, default_value_t = smp_client::serial::SerialOptions::DEFAULT_LINE_LENGTH)]
        line_length: usize,
        /// Line pacing: `auto` (unpaced until a loss, then 2 lines and 20 ms), `none`, or
        /// BURST:MS.
        #[arg(long, default_value = "auto")]
        pacing: smp_client::serial::Pacing,
    },
    /// Wait until the device on a serial port answers an image state read.
    SerialWait {
        /// A pseudo-terminal or serial device path, or socket://HOST:PORT.
        #[arg(long)]
        port: String,
        /// How long to keep trying, in seconds.
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
    },
    /// Start N simulated devices, write their list and serve until stdin closes; then
    /// count those running the expected image, confirmed.
    Sims(fleet_upgrade::SimsArgs),
    /// Upgrade every device of a list with `Client::upgrade`, all at once by default.
    FleetUpgrade(fleet_upgrade::FleetUpgradeArgs),
}

fn main() -> ExitCode {
    // Nothing unless RUST_LOG asks: stdout carries the JSON line the bench reads.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Upload { addr, image } => current_thread().and_then(|rt| {
            let image = std::fs::read(&image)
                .map_err(|e| format!("cannot read {}: {e}", image.display()))?;
            rt.block_on(upload(addr, &image))
        }),
        Command::Download { addr, name, expect } => current_thread().and_then(|rt| {
            let expect = std::fs::read(&expect)
                .map_err(|e| format!("cannot read {}: {e}", expect.display()))?;
            rt.block_on(download(addr, &name, &expect))
        }),
        Command::Echo {
            addr,
            count,
            size,
            raw,
        } => current_thread().and_then(|rt| {
            if raw {
                rt.block_on(echo_raw(addr, count, size))
            } else {
                rt.block_on(echo(addr, count, size))
            }
        }),
        Command::UdpFloor { count, size } => udp_floor(count, size),
        Command::Fleet {
            devices,
            image_kib,
            rtt_ms,
            buf_count,
        } => fleet(devices, image_kib, rtt_ms, buf_count),
        Command::SerialUpload {
            port,
            image,
            line_length,
            pacing,
        } => current_thread()
            .and_then(|rt| rt.block_on(serial::upload(&port, &image, line_length, pacing))),
        Command::SerialWait { port, seconds } => {
            current_thread().and_then(|rt| rt.block_on(serial::wait(&port, seconds)))
        }
        Command::Sims(args) => fleet_upgrade::sims(&args),
        Command::FleetUpgrade(args) => fleet_upgrade::fleet_upgrade(&args),
    };
    match result {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("smp-bench: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The runtime `smp` itself uses: one thread.
fn current_thread() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

async fn upload(addr: SocketAddr, image: &[u8]) -> Result<Value, String> {
    let started = Instant::now();
    let client = Client::connect_udp(addr.into(), ClientOptions::default())
        .await
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    let connect = started.elapsed();
    let started = Instant::now();
    let summary = client
        .upload_image(image, &ImageUploadOptions::default(), |_| {})
        .await
        .map_err(|e| format!("upload to {addr}: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(upload_report(
        &client,
        image.len(),
        connect,
        seconds,
        &summary,
    ))
}

/// What every timed image upload reports: the image's size, the upload's time and rate,
/// the connect time, and what the client found (chunks, window, frame limit, buffers).
fn upload_report<T: smp_client::Transport>(
    client: &Client<T>,
    image_len: usize,
    connect: Duration,
    seconds: f64,
    summary: &smp_client::UploadSummary,
) -> Value {
    json!({
        "bytes": image_len,
        "seconds": seconds,
        "bytes_per_second": image_len as f64 / seconds,
        "connect_seconds": connect.as_secs_f64(),
        "chunks": summary.chunks,
        "max_in_flight": summary.max_in_flight,
        "matched": summary.matched,
        "frame_limit": client.frame_limit(),
        "buf_count": client.buf_count(),
    })
}

async fn download(addr: SocketAddr, name: &str, expect: &[u8]) -> Result<Value, String> {
    let client = Client::connect_udp(addr.into(), ClientOptions::default())
        .await
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    let options = FileTransferOptions::default().with_verify(false);
    let started = Instant::now();
    let (data, summary) = client
        .download_file(name, &options, |_| {})
        .await
        .map_err(|e| format!("download {name} from {addr}: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    if data != expect {
        return Err(format!(
            "download {name} from {addr}: {} bytes that differ from the local copy ({} bytes)",
            data.len(),
            expect.len()
        ));
    }
    Ok(json!({
        "bytes": data.len(),
        "seconds": seconds,
        "bytes_per_second": data.len() as f64 / seconds,
        "chunks": summary.chunks,
        "max_in_flight": summary.max_in_flight,
        "buf_count": client.buf_count(),
    }))
}

fn echo_request(size: usize) -> EchoRequest {
    EchoRequest {
        d: "x".repeat(size),
    }
}

async fn echo(addr: SocketAddr, count: usize, size: usize) -> Result<Value, String> {
    let client = Client::connect_udp(addr.into(), ClientOptions::default())
        .await
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    let request = echo_request(size);
    let mut samples = Vec::with_capacity(count);
    for i in 0..WARMUP + count {
        let started = Instant::now();
        let reply = client
            .request(&request)
            .await
            .map_err(|e| format!("echo {i}: {e}"))?;
        let elapsed = started.elapsed();
        if reply.r != request.d {
            return Err(format!("echo {i}: the device answered {:?}", reply.r));
        }
        if i >= WARMUP {
            samples.push(elapsed);
        }
    }
    Ok(json!({ "client": "smp-client", "size": size, "round_trip": stats(&mut samples) }))
}

/// The echo request as one complete frame, sequence 0.
fn echo_frame(size: usize) -> Result<Vec<u8>, String> {
    let request = echo_request(size);
    let payload = minicbor::to_vec(&request).map_err(|e| e.to_string())?;
    let length = u16::try_from(payload.len()).map_err(|_| format!("echo of {size} is too long"))?;
    let header = Header::new(
        EchoRequest::OP,
        EchoRequest::GROUP,
        EchoRequest::COMMAND,
        length,
    );
    let mut frame = header.encode().to_vec();
    frame.extend_from_slice(&payload);
    Ok(frame)
}

async fn echo_raw(addr: SocketAddr, count: usize, size: usize) -> Result<Value, String> {
    let socket = connected_socket(addr).await?;
    let template = Header::decode(&echo_frame(size)?).map_err(|e| e.to_string())?;
    let mut frame = echo_frame(size)?;
    let mut buf = vec![0u8; 4096];
    let mut samples = Vec::with_capacity(count);
    for i in 0..WARMUP + count {
        let sequence = i as u8;
        frame[..smp_client::header::SIZE]
            .copy_from_slice(&template.with_sequence(sequence).encode());
        let started = Instant::now();
        socket
            .send(&frame)
            .await
            .map_err(|e| format!("send: {e}"))?;
        // Only the reply to this frame ends the round trip.
        loop {
            let len = receive(&socket, &mut buf).await?;
            if Header::decode(&buf[..len]).is_ok_and(|h| h.sequence == sequence) {
                break;
            }
        }
        if i >= WARMUP {
            samples.push(started.elapsed());
        }
    }
    Ok(json!({ "client": "raw frames", "size": size, "round_trip": stats(&mut samples) }))
}

async fn connected_socket(addr: SocketAddr) -> Result<UdpSocket, String> {
    let socket = UdpSocket::bind(SocketAddr::new(
        if addr.is_ipv4() {
            Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        },
        0,
    ))
    .await
    .map_err(|e| format!("bind: {e}"))?;
    socket
        .connect(addr)
        .await
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    Ok(socket)
}

async fn receive(socket: &UdpSocket, buf: &mut [u8]) -> Result<usize, String> {
    match tokio::time::timeout(ROUND_TRIP_TIMEOUT, socket.recv(buf)).await {
        Ok(Ok(len)) => Ok(len),
        Ok(Err(e)) => Err(format!("receive: {e}")),
        Err(_) => Err(format!(
            "no datagram within {ROUND_TRIP_TIMEOUT:?} on loopback"
        )),
    }
}

/// A tokio echo socket on its own thread and runtime (as a device runs in its own
/// process), and a client on this thread doing send then receive.
fn udp_floor(count: usize, size: usize) -> Result<Value, String> {
    let datagram = vec![0x5a; echo_frame(size)?.len()];
    let server = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("bind the echo socket: {e}"))?;
    server
        .set_nonblocking(true)
        .map_err(|e| format!("echo socket: {e}"))?;
    let server_addr = server.local_addr().map_err(|e| e.to_string())?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let echo_thread = std::thread::spawn(move || -> Result<(), String> {
        current_thread()?.block_on(async move {
            let socket = UdpSocket::from_std(server).map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; 4096];
            let mut stopped = std::pin::pin!(stopped);
            loop {
                tokio::select! {
                    received = socket.recv_from(&mut buf) => {
                        let (len, peer) = received.map_err(|e| e.to_string())?;
                        socket.send_to(&buf[..len], peer).await.map_err(|e| e.to_string())?;
                    }
                    _ = &mut stopped => return Ok(()),
                }
            }
        })
    });
    let samples = current_thread()?.block_on(async {
        let socket = connected_socket(server_addr).await?;
        let mut buf = vec![0u8; 4096];
        let mut samples = Vec::with_capacity(count);
        for i in 0..WARMUP + count {
            let started = Instant::now();
            socket
                .send(&datagram)
                .await
                .map_err(|e| format!("send: {e}"))?;
            let len = receive(&socket, &mut buf).await?;
            if len != datagram.len() {
                return Err(format!("sent {} bytes, got {len} back", datagram.len()));
            }
            if i >= WARMUP {
                samples.push(started.elapsed());
            }
        }
        Ok::<_, String>(samples)
    });
    let _ = stop.send(());
    let served = echo_thread
        .join()
        .map_err(|_| "the echo thread panicked".to_owned())?;
    let mut samples = samples?;
    served?;
    Ok(json!({
        "client": "udp floor",
        "size": size,
        "datagram_bytes": datagram.len(),
        "round_trip": stats(&mut samples),
    }))
}

/// Median, 90th percentile (nearest rank), minimum and mean, in microseconds.
fn stats(samples: &mut [Duration]) -> Value {
    samples.sort_unstable();
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let rank = |q: f64| {
        let n = samples.len();
        let i = ((q * n as f64).ceil() as usize).clamp(1, n.max(1)) - 1;
        samples.get(i).copied().map(micros)
    };
    let mean = if samples.is_empty() {
        None
    } else {
        Some(micros(samples.iter().sum::<Duration>()) / samples.len() as f64)
    };
    json!({
        "count": samples.len(),
        "median_us": rank(0.5),
        "p90_us": rank(0.9),
        "min_us": samples.first().copied().map(micros),
        "mean_us": mean,
    })
}

/// An unsigned MCUboot image of exactly `len` bytes (header and TLVs included), or
/// the smallest one when `len` is too small for any body.
fn image_of_len(len: usize) -> Vec<u8> {
    let version = ImageVersion {
        major: 2,
        minor: 0,
        revision: 0,
        build: 0,
    };
    let overhead = ImageBuilder::new(version).build(&[]).len();
    ImageBuilder::new(version).build(&sample_body(len.saturating_sub(overhead), 2))
}

fn fleet(devices: usize, image_kib: usize, rtt_ms: f64, buf_count: usize) -> Result<Value, String> {
    if devices == 0 {
        return Err("--devices must be at least 1".into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let workers = runtime.metrics().num_workers();
    runtime.block_on(async {
        let image = Arc::new(image_of_len(image_kib * 1024));
        let config = SimConfig {
            buf_count,
            // Slots just large enough: the devices' flash is most of the process's memory.
            slot_size: image.len().next_multiple_of(4096),
            delays: Delays {
                one_way_latency: Duration::from_secs_f64(rtt_ms.max(0.0) / 2000.0),
                ..Delays::default()
            },
            ..SimConfig::default()
        };
        let mut sims = Vec::with_capacity(devices);
        for _ in 0..devices {
            sims.push(
                Sim::start(config.clone())
                    .await
                    .map_err(|e| format!("start a simulated device: {e}"))?,
            );
        }
        let rss_before_kib = proc_status_kib("VmRSS");
        let started = Instant::now();
        let mut uploads = tokio::task::JoinSet::new();
        for sim in &sims {
            let (addr, image) = (sim.addr(), Arc::clone(&image));
            uploads.spawn(async move {
                let client = Client::connect_udp(addr.into(), ClientOptions::default())
                    .await
                    .map_err(|e| format!("connect to {addr}: {e}"))?;
                client
                    .upload_image(&image, &ImageUploadOptions::default(), |_| {})
                    .await
                    .map_err(|e| format!("upload to {addr}: {e}"))?;
                Ok::<_, String>(started.elapsed())
            });
        }
        let mut finished = Vec::with_capacity(devices);
        while let Some(done) = uploads.join_next().await {
            finished.push(done.map_err(|e| format!("an upload task failed: {e}"))??);
        }
        let seconds = started.elapsed().as_secs_f64();
        let peak_rss_kib = proc_status_kib("VmHWM");
        for (i, sim) in sims.iter().enumerate() {
            let slot = sim.slot(1).unwrap_or_default();
            if slot.get(..image.len()) != Some(&image[..]) {
                return Err(format!(
                    "device {i} ({}) does not hold the image",
                    sim.addr()
                ));
            }
        }
        let total_bytes = (devices * image.len()) as f64;
        Ok(json!({
            "devices": devices,
            "image_bytes": image.len(),
            "rtt_ms": rtt_ms,
            "buf_count": buf_count,
            "runtime_workers": workers,
            "seconds": seconds,
            "bytes_per_second": total_bytes / seconds,
            "per_device_seconds": stats(&mut finished),
            "rss_before_uploads_kib": rss_before_kib,
            "peak_rss_kib": peak_rss_kib,
        }))
    })
}

/// A `kB` line of `/proc/self/status` (`VmRSS`, `VmHWM`), or `None` off Linux.
fn proc_status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_use_nearest_rank() {
        let mut samples: Vec<Duration> = (1..=10).rev().map(Duration::from_micros).collect();
        let s = stats(&mut samples);
        assert_eq!(s["median_us"], 5.0);
        assert_eq!(s["p90_us"], 9.0);
        assert_eq!(s["min_us"], 1.0);
        assert_eq!(s["mean_us"], 5.5);
        assert_eq!(stats(&mut [])["median_us"], Value::Null);
    }

    #[test]
    fn images_have_the_length_asked_for() {
        assert_eq!(image_of_len(64 * 1024).len(), 64 * 1024);
        assert!(smp_mcuboot::Image::parse(&image_of_len(4096)).is_ok());
    }

    #[test]
    fn the_echo_frame_is_a_whole_smp_frame() {
        let frame = echo_frame(32).unwrap();
        let header = Header::decode(&frame).unwrap();
        assert_eq!(header.frame_len(), frame.len());
        assert_eq!(frame.len(), 8 + 1 + 2 + 2 + 32);
    }

    #[test]
    fn reads_proc_status() {
        if cfg!(target_os = "linux") {
            assert!(proc_status_kib("VmHWM").is_some_and(|kib| kib > 0));
        }
        assert_eq!(proc_status_kib("NoSuchKey"), None);
    }
}
