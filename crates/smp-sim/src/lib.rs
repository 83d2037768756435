//! A simulated Zephyr SMP (MCUmgr) device over UDP and serial lines, for tests and
//! demos.
//!
//! It is a test tool beside the `smp` client layers, not one of them: it behaves like
//! Zephyr's MCUmgr UDP server (the `smp_svr` sample with an MCUboot image group), and
//! like its serial transport over a pseudo-terminal or TCP ([`Sim::start_serial`]), with
//! their limits and failure modes:
//!
//! - one datagram is one request; several frames in one datagram run in order; a
//!   datagram longer than the MTU is cut; a frame longer than its datagram gets `rc 9`;
//! - a pool of `buf_count` buffers shared by requests and replies: a datagram that finds
//!   none is dropped silently, a request whose reply finds none gets ENOMEM;
//! - one work queue, with processing delays (per request, per KiB written, slot erase);
//! - replies with op + 1 and the request's seq, group and command, indefinite-length
//!   CBOR maps, v2 `err` for group errors and v1 `rc` for protocol errors;
//! - the OS, image (two slots, MCUboot header and TLV checks, `sha` resume, swap on
//!   reset), file system, statistics, settings, shell, enumeration and Zephyr groups;
//! - faults on demand, seeded: lost, duplicated, reordered, delayed and corrupted
//!   datagrams, ENOMEM and EBUSY, silence;
//! - over serial ([`SerialConfig`]), the same requests as frames in the console, raw or
//!   raw COBS framing (the framing is [`smp_serial`]'s own code); frames larger than an
//!   SMP buffer dropped; the UART's line buffers, which a burst of lines overruns as
//!   native_sim's does; lost and corrupted lines on demand.
//!
//! ```no_run
//! # async fn demo() -> Result<(), smp_sim::SimError> {
//! use smp_sim::{Sim, SimConfig};
//!
//! let sim = Sim::start(SimConfig::default()).await?;
//! println!("a simulated device listens on {}", sim.addr());
//! // ... point a client at sim.addr() ...
//! let images = sim.image_state();
//! assert_eq!(images.images[0].slot, 0);
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

// Layers, each module using only those below it: `serial_port` (the serial port: `uart`, the
// UART's line buffers, then the framing) → `server` (socket, buffer pool, work queue,
// faults) → `dispatch` (one datagram to replies) → `groups` (one handler per management group)
// → `device` (the state; each group's part in `device::*`) and `request` (what a
// handler is given) → `reply`, with `config`, `flash` and `rng` at the bottom.
mod config;
mod device;
mod dispatch;
mod flash;
mod groups;
mod reply;
mod request;
mod rng;
mod serial_port;
mod server;
mod uart;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use smp_proto::messages::image::StateResponse;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

pub use config::{
    DEFAULT_BUF_COUNT, DEFAULT_BUF_SIZE, DEFAULT_MTU, DEFAULT_SLOT_SIZE, Delays, Faults, ImageBoot,
    SerialConfig, SerialListen, Silence, SimConfig,
};
pub use device::fs::MOUNT_POINT;
pub use groups::settings::ROOT as SETTINGS_ROOT;
pub use smp_mcuboot as mcuboot;
pub use smp_serial as serial;

use device::Device;
use server::Shared;

/// Why a simulated device could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The socket could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
    /// The slot files could not be created or opened.
    #[error("cannot prepare the image slots: {0}")]
    Storage(std::io::Error),
    /// The configuration cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The serial port could not be opened.
    #[error("cannot serve serial on {port}")]
    Serial {
        /// The port asked for.
        port: String,
        /// What the system said.
        source: std::io::Error,
    },
}

/// A running simulated device. Dropping it stops the device.
#[derive(Debug)]
pub struct Sim {
    addr: SocketAddr,
    serial: Option<smp_serial::SerialTarget>,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

/// What the device's network side has seen, for tests and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SimCounters {
    /// Datagrams (and serial frames) received.
    pub received: u64,
    /// Datagrams (and serial frames) lost to an injected fault (drop or silence).
    pub dropped_by_fault: u64,
    /// Datagrams (and serial frames) dropped because no buffer was free.
    pub dropped_no_buffer: u64,
    /// Datagrams (and serial frames) the work queue processed.
    pub processed: u64,
    /// Replies sent.
    pub replies_sent: u64,
    /// Replies lost to an injected fault or a send error.
    pub replies_dropped: u64,
    /// Serial lines the UART received (console framing), lost ones included.
    pub lines_received: u64,
    /// Serial lines lost because every UART line buffer was taken (a burst overrun).
    pub lines_overrun: u64,
    /// Serial lines lost because they were longer than a UART line buffer.
    pub lines_too_long: u64,
    /// Serial lines lost to an injected fault, either way.
    pub lines_dropped_by_fault: u64,
    /// Serial lines with a byte corrupted by an injected fault, either way.
    pub lines_corrupted: u64,
    /// Serial frames dropped as damaged: bad base64, CRC or length, lost lines.
    pub frames_damaged: u64,
    /// Serial frames dropped because they were larger than an SMP buffer.
    pub frames_too_large: u64,
}

impl Sim {
    /// Starts a device on the current tokio runtime, listening on `config.addr`.
    pub async fn start(config: SimConfig) -> Result<Self, SimError> {
        Self::launch(config, None).await
    }

    /// Starts a device that serves a serial port as `serial` says, besides UDP on
    /// `config.addr` (port 0, the default, picks a free one): the same device, buffers
    /// and work queue on both. [`serial_target`](Self::serial_target) says where the
    /// port is, with the framing and line length a client needs.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), smp_sim::SimError> {
    /// use smp_sim::{SerialConfig, Sim, SimConfig};
    ///
    /// // native_sim's `serial` fixture: 4 buffers of 384 B, 128-byte lines, a UART
    /// // that loses bursts of more than two lines.
    /// let config = SimConfig { buf_count: 4, buf_size: 384, ..SimConfig::default() };
    /// let sim = Sim::start_serial(config, SerialConfig::pty()).await?;
    /// let target = sim.serial_target().expect("serves serial");
    /// println!("smp-sim serial on {target}"); // /dev/pts/N
    /// # Ok(()) }
    /// ```
    pub async fn start_serial(config: SimConfig, serial: SerialConfig) -> Result<Self, SimError> {
        Self::launch(config, Some(serial)).await
    }

    async fn launch(config: SimConfig, serial: Option<SerialConfig>) -> Result<Self, SimError> {
        if config.buf_count == 0 || config.buf_size < smp_proto::header::SIZE || config.mtu == 0 {
            return Err(SimError::Config(format!(
                "buf_count ({}) must be at least 1, buf_size ({}) at least 8 and mtu ({}) at least 1",
                config.buf_count, config.buf_size, config.mtu
            )));
        }
        let socket = UdpSocket::bind(config.addr)
            .await
            .map_err(|source| SimError::Bind {
                addr: config.addr,
                source,
            })?;
        let addr = socket.local_addr().map_err(|source| SimError::Bind {
            addr: config.addr,
            source,
        })?;
        let device = Device::new(config).map_err(SimError::Storage)?;
        let shared = Arc::new(Shared::new(device));
        let (mut tasks, inlet) = server::spawn_device(&shared);
        // Stops what started so far if the serial port cannot be served.
        let mut sim = Self {
            addr,
            serial: None,
            shared: Arc::clone(&shared),
            tasks: Vec::new(),
        };
        tasks.push(server::spawn_udp(
            socket,
            Arc::clone(&shared),
            inlet.clone(),
        ));
        sim.tasks = tasks;
        if let Some(config) = serial {
            let port = match config.listen {
                SerialListen::Pty => "a new pseudo-terminal".to_owned(),
                SerialListen::Tcp(addr) => format!("tcp:{addr}"),
            };
            let served = serial_port::serve(config, shared, inlet)
                .await
                .map_err(|source| SimError::Serial { port, source })?;
            tracing::info!(port = %served.target, "simulated device serving serial");
            sim.serial = Some(served.target);
            sim.tasks.push(served.task);
        }
        tracing::info!(%addr, "simulated device listening");
        Ok(sim)
    }

    /// The address the device listens on (with the port chosen when it was 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the device's serial port is, with the framing, line length and line buffers
    /// a client needs in its options (and the client's default pacing); `None` for a
    /// device started without one. Its `to_string()` is the path (`/dev/pts/N`) or
    /// `socket://HOST:PORT`, as a client's `SerialTarget` parses it.
    pub fn serial_target(&self) -> Option<smp_serial::SerialTarget> {
        self.serial.clone()
    }

    /// Stops the device and waits until its tasks are gone.
    pub async fn shutdown(mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
            let _ = task.await;
        }
    }

    /// The image state, as the image group's state read reports it.
    pub fn image_state(&self) -> StateResponse {
        self.shared.device().images.state()
    }

    /// The content of an image slot (0 or 1), erased bytes included.
    pub fn slot(&self, slot: usize) -> Option<Vec<u8>> {
        self.shared.device().images.slot(slot)
    }

    /// The image upload in progress: `(next offset, image size)`.
    pub fn upload_progress(&self) -> Option<(u64, u64)> {
        self.shared
            .device()
            .images
            .upload
            .as_ref()
            .map(|u| (u.off, u.len))
    }

    /// A file's content, if the device has it (`name` as the client gives it, under
    /// [`MOUNT_POINT`]): as the device shows it, without what an upload has written to
    /// a file it has not closed yet.
    pub fn file(&self, name: &str) -> Option<Vec<u8>> {
        let mut device = self.shared.device();
        device.fs.close_if_idle();
        device.fs.read_all(name).ok()
    }

    /// Replaces the faults in effect (and reseeds their generator).
    pub fn set_faults(&self, faults: Faults) {
        self.shared.faults().set(faults);
    }

    /// The device stops answering for `duration`: everything it receives meanwhile is
    /// lost.
    pub fn go_silent(&self, duration: Duration) {
        self.shared.faults().silent_until = Some(tokio::time::Instant::now() + duration);
    }

    /// Reboots the device now: an upload in progress is forgotten and the bootloader
    /// swaps a pending image, as after a reset. The device is deaf for its boot time
    /// ([`Delays::boot`]).
    pub fn reboot(&self) {
        server::reboot(&self.shared);
    }

    /// What the bootloader does with the next image it is asked to boot (marked for test
    /// or for good): run it, refuse it, or run it until it crashes and is reverted.
    pub fn set_image_boot(&self, boot: ImageBoot) {
        self.shared.device().images.image_boot = boot;
    }

    /// Counters of the traffic so far.
    pub fn counters(&self) -> SimCounters {
        let c = &self.shared.counters;
        let get = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed);
        SimCounters {
            received: get(&c.received),
            dropped_by_fault: get(&c.dropped_by_fault),
            dropped_no_buffer: get(&c.dropped_no_buffer),
            processed: get(&c.processed),
            replies_sent: get(&c.replies_sent),
            replies_dropped: get(&c.replies_dropped),
            lines_received: get(&c.lines_received),
            lines_overrun: get(&c.lines_overrun),
            lines_too_long: get(&c.lines_too_long),
            lines_dropped_by_fault: get(&c.lines_dropped_by_fault),
            lines_corrupted: get(&c.lines_corrupted),
            frames_damaged: get(&c.frames_damaged),
            frames_too_large: get(&c.frames_too_large),
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
