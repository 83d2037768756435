//! What a simulated device is: its limits, storage, timing and faults.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use smp_mcuboot::ImageVersion;
use smp_serial::Framing;

/// Zephyr's default number of SMP buffers on UDP (`CONFIG_MCUMGR_TRANSPORT_NETBUF_COUNT`).
pub const DEFAULT_BUF_COUNT: usize = 2;
/// Zephyr's default SMP buffer size (`CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE`).
pub const DEFAULT_BUF_SIZE: usize = 2048;
/// Zephyr's default UDP receive size (`CONFIG_MCUMGR_TRANSPORT_UDP_MTU`): longer
/// datagrams are cut to this many bytes.
pub const DEFAULT_MTU: usize = 1500;
/// Default size of each image slot: room for a 1 MiB image with its header and TLVs.
pub const DEFAULT_SLOT_SIZE: usize = 0x11_0000;

/// Everything about a simulated device. `Default` is a Zephyr UDP device with the
/// defaults above, listening on a free port of 127.0.0.1, with no delays and no faults.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to listen. Port 0 picks a free port ([`Sim::addr`](crate::Sim::addr) says
    /// which).
    pub addr: SocketAddr,
    /// Number of SMP buffers shared by requests and replies.
    pub buf_count: usize,
    /// Size of each SMP buffer: the largest request or reply frame.
    pub buf_size: usize,
    /// Largest datagram read; the rest of a longer one is lost.
    pub mtu: usize,
    /// Size of each of the two image slots.
    pub slot_size: usize,
    /// Keep the slots in this folder (`slot0.bin`, `slot1.bin`) instead of in memory.
    pub slot_dir: Option<PathBuf>,
    /// Version of the image running in slot 0 at start.
    pub running_version: ImageVersion,
    /// Serve the file system group from this folder instead of from memory.
    pub fs_root: Option<PathBuf>,
    /// Add `"rc": 0` to successful replies, as Zephyr does with
    /// `CONFIG_MCUMGR_SMP_LEGACY_RC_BEHAVIOUR`.
    pub legacy_rc: bool,
    /// Processing times of the work queue.
    pub delays: Delays,
    /// Network faults and misbehaviour.
    pub faults: Faults,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            buf_count: DEFAULT_BUF_COUNT,
            buf_size: DEFAULT_BUF_SIZE,
            mtu: DEFAULT_MTU,
            slot_size: DEFAULT_SLOT_SIZE,
            slot_dir: None,
            running_version: ImageVersion {
                major: 1,
                minor: 0,
                revision: 0,
                build: 0,
            },
            fs_root: None,
            legacy_rc: false,
            delays: Delays::default(),
            faults: Faults::default(),
        }
    }
}

/// Where a simulated device's serial port is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SerialListen {
    /// A new pseudo-terminal (Unix only), as native_sim's UART: the device holds the
    /// controlling end, a client opens the terminal by its path
    /// ([`Sim::serial_target`](crate::Sim::serial_target)), again after closing it if it
    /// likes.
    Pty,
    /// A TCP server socket, as an emulator's serial chardev (`-chardev
    /// socket,server=on`): each connection is a serial line to the same device, and
    /// replies go to the connection that sent the request. Port 0 picks a free port.
    Tcp(SocketAddr),
}

/// The serial side of a simulated device: its port, its framing, and the UART receive
/// path of Zephyr's MCUmgr serial transport (`uart_mcumgr.c`), with its limits.
///
/// `Default` is native_sim's `serial` fixture on a pseudo-terminal: console framing,
/// 128-byte lines, two line buffers that a burst of more than two lines overruns. Its
/// SMP buffers are the [`SimConfig`]'s (that fixture has `buf_count` 4 of `buf_size`
/// 384).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SerialConfig {
    /// Where the port is.
    pub listen: SerialListen,
    /// How frames are put on the line, both ways.
    pub framing: Framing,
    /// The longest line the device takes, newline included
    /// (`CONFIG_UART_MCUMGR_RX_BUF_SIZE`; a longer line is dropped), and the line length
    /// its replies are cut to. Console framing only.
    pub line_length: usize,
    /// The UART's line buffers (`CONFIG_UART_MCUMGR_RX_BUF_COUNT`, 2 by default): each
    /// received line takes one until the work queue has taken the line in, and a line
    /// that starts while all are taken is lost (a burst overrun). `None`: as many as it
    /// takes (native_sim's `bigrx` variant). Console framing only.
    pub rx_line_buffers: Option<usize>,
    /// How long a received line holds its buffer. native_sim's UART takes input about
    /// every 10 ms and hands the lines to the work queue then, so a line written less
    /// than that after two others finds no buffer.
    pub rx_hold: Duration,
    /// A reboot ends every TCP connection to the port (TCP only; the pseudo-terminal
    /// stays): as a USB CDC ACM port vanishes while the device re-enumerates, or an
    /// emulator's serial socket closes when it restarts. The client has to connect again.
    pub vanishes_on_reset: bool,
}

impl SerialConfig {
    /// The line buffers of Zephyr's UART transport by default, and of native_sim's
    /// `serial` fixture.
    pub const DEFAULT_RX_LINE_BUFFERS: usize = 2;
    /// How long a line holds its buffer by default: native_sim's UART polling period.
    pub const DEFAULT_RX_HOLD: Duration = Duration::from_millis(10);

    /// The defaults on a new pseudo-terminal.
    pub fn pty() -> Self {
        Self::default()
    }

    /// The defaults on a TCP server socket at `addr`.
    pub fn tcp(addr: SocketAddr) -> Self {
        Self {
            listen: SerialListen::Tcp(addr),
            ..Self::default()
        }
    }
}

impl Default for SerialConfig {
    fn default() -> Self {
        Self {
            listen: SerialListen::Pty,
            framing: Framing::Console,
            line_length: smp_serial::console::DEFAULT_LINE_LENGTH,
            rx_line_buffers: Some(Self::DEFAULT_RX_LINE_BUFFERS),
            rx_hold: Self::DEFAULT_RX_HOLD,
            vanishes_on_reset: false,
        }
    }
}

/// How long the device's single work queue is busy. While it is, requests wait in
/// their buffers, and datagrams that find no free buffer are dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delays {
    /// Every request.
    pub per_request: Duration,
    /// Per KiB written to flash or to a file.
    pub per_kib_written: Duration,
    /// Erasing the whole slot when an upload starts.
    pub erase: Duration,
    /// Added to every datagram in each direction: a round trip takes twice this.
    pub one_way_latency: Duration,
    /// A reboot's boot time: after a reset the device receives nothing for this long,
    /// as a real one is deaf while MCUboot checks and swaps images and the
    /// application starts.
    pub boot: Duration,
}

/// What the bootloader does with an image marked for test (or for good) at the next
/// boot, as [`Sim::set_image_boot`](crate::Sim::set_image_boot) sets it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImageBoot {
    /// Swaps it in and runs it (the default).
    #[default]
    Runs,
    /// Refuses it (MCUboot found it invalid): no swap, the old image keeps running and
    /// the new one stays in slot 1, no longer pending.
    Refused,
    /// Swaps it in, but it crashes before anyone confirms it: the watchdog resets the
    /// device and MCUboot reverts to the old image, which runs confirmed again.
    Crashes,
}

/// Faults on demand. Probabilities are in `0.0..=1.0`; every random choice comes from
/// one generator seeded with [`seed`](Self::seed), so a test sees the same faults for
/// the same traffic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    /// Seed of the fault generator.
    pub seed: u64,
    /// Drop a received datagram before the device sees it.
    pub drop_requests: f64,
    /// Drop a reply instead of sending it.
    pub drop_replies: f64,
    /// Deliver a received datagram to the device twice (it runs twice, as on Zephyr).
    pub duplicate_requests: f64,
    /// Send a reply twice.
    pub duplicate_replies: f64,
    /// Hold a reply back and send it after the next one.
    pub reorder_replies: f64,
    /// Delay a reply by [`delay`](Self::delay).
    pub delay_replies: f64,
    /// How long a delayed reply waits.
    pub delay: Duration,
    /// Flip one random bit in a reply.
    pub corrupt_replies: f64,
    /// Answer a request with `rc 2` ENOMEM instead of running it.
    pub enomem: f64,
    /// Answer a request with `rc 10` EBUSY instead of running it.
    pub ebusy: f64,
    /// Stop answering for a while.
    pub silence: Option<Silence>,
    /// Lose a serial line, either way (console framing only): the frame it belonged to
    /// is lost with it, as the receiver finds it incomplete.
    pub drop_lines: f64,
    /// Replace one byte of a serial line by another, either way (console framing only):
    /// the CRC16, or the base64 or line structure, gives the frame away and it is dropped.
    pub corrupt_lines: f64,
}

/// The device goes deaf and mute: every datagram received in the window is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Silence {
    /// Datagrams received before the silence starts.
    pub after_requests: u64,
    /// How long it lasts.
    pub duration: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            seed: 0,
            drop_requests: 0.0,
            drop_replies: 0.0,
            duplicate_requests: 0.0,
            duplicate_replies: 0.0,
            reorder_replies: 0.0,
            delay_replies: 0.0,
            delay: Duration::ZERO,
            corrupt_replies: 0.0,
            enomem: 0.0,
            ebusy: 0.0,
            silence: None,
            drop_lines: 0.0,
            corrupt_lines: 0.0,
        }
    }
}

impl Faults {
    /// No faults at all.
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether any fault acts on reply frames (serial line faults act after framing and
    /// do not count here).
    pub fn touches_replies(&self) -> bool {
        [
            self.drop_replies,
            self.duplicate_replies,
            self.reorder_replies,
            self.delay_replies,
            self.corrupt_replies,
        ]
        .iter()
        .any(|p| *p > 0.0)
    }
}
