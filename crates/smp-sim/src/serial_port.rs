//! The serial port: a byte stream (a pseudo-terminal, or TCP connections) in the
//! configured framing, feeding the same work queue as UDP.
//!
//! ```text
//! stream ─read─▶ [UART line buffers, line faults] ─▶ deframer ─▶ [size check] ─▶ arrived()
//!   ▲                                                                              │
//!   └──write── [line faults] ◀── framing ◀── reply frames (after the reply faults) ◀┘
//! ```
//!
//! As Zephyr's serial transport (`smp_uart.c`, `serial_util.c`): lines that are not
//! frame lines are skipped, a frame whose base64, length or CRC is wrong is dropped
//! without a word, and so is a frame larger than an SMP buffer (`buf_size`, which also
//! holds the console packet's length and CRC). One frame is one request.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use smp_serial::console::{self, LineLength};
use smp_serial::{Deframer, Framing, SerialOptions, SerialTarget};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::{debug, trace, warn};

use crate::config::{SerialConfig, SerialListen};
use crate::server::{self, Inlet, ReplyTo, Shared, bump};
use crate::uart::{LineRx, Lost, Rx};

/// Bytes read at once.
const READ_BUFFER: usize = 4096;

/// A serial port, ready: where a client finds it, and the task serving it.
pub(crate) struct Served {
    pub(crate) target: SerialTarget,
    pub(crate) task: JoinHandle<()>,
}

/// Opens the port `config` names and starts serving it.
pub(crate) async fn serve(
    config: SerialConfig,
    shared: Arc<Shared>,
    inlet: Inlet,
) -> io::Result<Served> {
    let settings = Arc::new(Settings::new(&config, shared.device().config.buf_size)?);
    let options = SerialOptions::default()
        .framing(config.framing)
        .line_length(config.line_length)
        .line_buffers(
            config
                .rx_line_buffers
                .unwrap_or(SerialOptions::DEFAULT_LINE_BUFFERS),
        );
    match config.listen {
        SerialListen::Pty => {
            let pty = pty::Pty::open()?;
            let target = SerialTarget::device(pty.path.clone()).with_options(options);
            let task = tokio::spawn(async move {
                // The device keeps the terminal end open as long as it serves, so a
                // client may close it and open it again.
                let pty::Pty {
                    rx, tx, terminal, ..
                } = pty;
                connection(rx, tx, shared, inlet, settings, Stream::Pty).await;
                drop(terminal);
            });
            Ok(Served { target, task })
        }
        SerialListen::Tcp(addr) => {
            let listener = TcpListener::bind(addr).await?;
            let local = listener.local_addr()?;
            let target =
                SerialTarget::tcp(local.ip().to_string(), local.port()).with_options(options);
            let task = tokio::spawn(accept(listener, shared, inlet, settings));
            Ok(Served { target, task })
        }
    }
}

/// What every connection of one port is set up with.
#[derive(Debug)]
struct Settings {
    framing: Framing,
    line_length: LineLength,
    rx_line_buffers: Option<usize>,
    rx_hold: std::time::Duration,
    buf_size: usize,
    vanishes_on_reset: bool,
}

impl Settings {
    fn new(config: &SerialConfig, buf_size: usize) -> io::Result<Self> {
        let line_length = LineLength::new(config.line_length)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
        Ok(Self {
            framing: config.framing,
            line_length,
            rx_line_buffers: config.rx_line_buffers,
            rx_hold: config.rx_hold,
            vanishes_on_reset: config.vanishes_on_reset,
            buf_size,
        })
    }

    /// The largest SMP frame an SMP buffer takes in this framing.
    fn max_frame(&self) -> usize {
        match self.framing {
            Framing::Console => console::max_frame_for_buf_size(self.buf_size),
            _ => self.buf_size,
        }
    }
}

/// Serves every TCP connection, each a serial line to the same device.
async fn accept(listener: TcpListener, shared: Arc<Shared>, inlet: Inlet, settings: Arc<Settings>) {
    // Dropped with this task: the connections end with it.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let (rx, tx) = stream.into_split();
                    let (shared, inlet, settings) =
                        (Arc::clone(&shared), inlet.clone(), Arc::clone(&settings));
                    connections.spawn(async move {
                        debug!(%peer, "serial connection");
                        connection(rx, tx, shared, inlet, settings, Stream::Tcp).await;
                        debug!(%peer, "serial connection closed");
                    });
                }
                Err(e) => {
                    warn!(%e, "cannot accept a serial connection");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

/// What a connection's byte stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    /// The controlling end of the pseudo-terminal: it never ends while the device runs.
    Pty,
    /// A TCP connection: it ends when the client goes.
    Tcp,
}

/// Serves one byte stream until it ends: requests read from `rx`, replies written to
/// `tx`.
async fn connection<R, W>(
    rx: R,
    tx: W,
    shared: Arc<Shared>,
    inlet: Inlet,
    settings: Arc<Settings>,
    kind: Stream,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (replies_tx, replies_rx) = mpsc::unbounded_channel();
    // When the device last answered on this line: its work queue had taken in every
    // line received before then.
    let answered = Mutex::new(None);
    let vanishes = kind == Stream::Tcp && settings.vanishes_on_reset;
    tokio::select! {
        () = read_requests(rx, &shared, &inlet, &settings, replies_tx, &answered, kind) => {}
        () = write_replies(tx, &shared, &settings, replies_rx, &answered) => {}
        () = next_boot(&shared), if vanishes => debug!("the device reset: its port vanishes"),
    }
}

/// Returns once the device has rebooted after the call (its boot count moved).
async fn next_boot(shared: &Shared) {
    let boots = shared.boots.load(Ordering::Acquire);
    while shared.boots.load(Ordering::Acquire) == boots {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Reads the line, and hands every whole frame to the work queue.
async fn read_requests<R: AsyncRead + Unpin>(
    mut rx: R,
    shared: &Arc<Shared>,
    inlet: &Inlet,
    settings: &Settings,
    replies: mpsc::UnboundedSender<Vec<u8>>,
    answered: &Mutex<Option<Instant>>,
    kind: Stream,
) {
    let mut buf = vec![0u8; READ_BUFFER];
    let mut uart = LineRx::new(
        settings.line_length.get(),
        settings.rx_line_buffers,
        settings.rx_hold,
    );
    let max_frame = settings.max_frame();
    let mut deframer = Deframer::new(settings.framing, max_frame);
    let mut boots = shared.boots.load(Ordering::Acquire);
    loop {
        let read = rx.read(&mut buf).await;
        let len = match (read, kind) {
            (Ok(len), _) if len > 0 => len,
            (Ok(_), Stream::Tcp) => return,
            (Err(e), Stream::Tcp) => {
                debug!(%e, "serial connection read error");
                return;
            }
            (result, Stream::Pty) => {
                // Not expected while the device holds the terminal end open; do not spin.
                debug!(?result, "pty read: no data");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let now = Instant::now();
        let booted = shared.boots.load(Ordering::Acquire);
        if booted != boots {
            // A reboot loses what the UART and the transport were receiving.
            boots = booted;
            uart.reset();
            deframer.reset();
        }
        let bytes = &buf[..len];
        trace!(len, "serial bytes received");
        if let Some(at) = *answered.lock().unwrap_or_else(|p| p.into_inner()) {
            uart.taken_in(at);
        }
        if settings.framing == Framing::Console {
            for rx in uart.push(bytes, now) {
                bump(&shared.counters.lines_received);
                match rx {
                    Rx::Line(mut line) => {
                        if line_faults(shared, &mut line, "request") {
                            deframer.push(&line);
                        }
                    }
                    Rx::Lost(Lost::Overrun) => {
                        debug!("burst overrun: no UART line buffer free, line lost");
                        bump(&shared.counters.lines_overrun);
                    }
                    Rx::Lost(Lost::TooLong) => {
                        debug!(
                            line_length = settings.line_length.get(),
                            "line longer than the UART line buffer, lost"
                        );
                        bump(&shared.counters.lines_too_long);
                    }
                }
            }
        } else {
            deframer.push(bytes);
        }
        while let Some(frame) = deframer.next_frame() {
            match frame {
                Ok(frame) if frame.len() > max_frame => {
                    debug!(
                        len = frame.len(),
                        max_frame,
                        buf_size = settings.buf_size,
                        "frame larger than an SMP buffer: dropped"
                    );
                    bump(&shared.counters.frames_too_large);
                }
                Ok(frame) => {
                    server::arrived(shared, inlet, frame, ReplyTo::Serial(replies.clone()));
                }
                Err(err) => {
                    debug!(%err, "damaged frame dropped");
                    bump(&shared.counters.frames_damaged);
                }
            }
        }
    }
}

/// Frames the replies and writes them, with the line faults.
async fn write_replies<W: AsyncWrite + Unpin>(
    mut tx: W,
    shared: &Arc<Shared>,
    settings: &Settings,
    mut replies: mpsc::UnboundedReceiver<Vec<u8>>,
    answered: &Mutex<Option<Instant>>,
) {
    while let Some(reply) = replies.recv().await {
        *answered.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        let encoded = match smp_serial::encode(settings.framing, &reply, settings.line_length) {
            Ok(encoded) => encoded,
            Err(err) => {
                warn!(%err, "reply cannot be framed");
                continue;
            }
        };
        let wire = if settings.framing == Framing::Console {
            let mut wire = Vec::with_capacity(encoded.len());
            for line in console::lines(&encoded) {
                let mut line = line.to_vec();
                if line_faults(shared, &mut line, "reply") {
                    wire.extend_from_slice(&line);
                }
            }
            wire
        } else {
            encoded
        };
        if let Err(e) = tx.write_all(&wire).await {
            debug!(%e, "serial write failed");
            return;
        }
        let _ = tx.flush().await;
    }
}

/// Applies the line faults to one line; false when it is lost.
fn line_faults(shared: &Shared, line: &mut [u8], way: &'static str) -> bool {
    let mut f = shared.faults();
    let (drop, corrupt) = (f.faults.drop_lines, f.faults.corrupt_lines);
    if f.chance(drop) {
        trace!(way, "fault: line dropped");
        bump(&shared.counters.lines_dropped_by_fault);
        return false;
    }
    if f.chance(corrupt) && !line.is_empty() {
        let at = f.below(line.len());
        // Another byte, never the same one.
        line[at] ^= 1 + f.below(255) as u8;
        trace!(way, at, "fault: line corrupted");
        bump(&shared.counters.lines_corrupted);
    }
    true
}

#[cfg(unix)]
mod pty {
    //! A pseudo-terminal, as native_sim's UART: the device reads and writes the
    //! controlling end; the terminal end, by its path, is the serial port.

    use std::fs::File;
    use std::io;
    use std::os::fd::OwnedFd;
    use std::path::PathBuf;

    use rustix::fs::{Mode, OFlags};
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    use rustix::termios::{self, OptionalActions};
    use tokio::net::unix::pipe;

    /// An open pseudo-terminal.
    pub(super) struct Pty {
        pub(super) rx: pipe::Receiver,
        pub(super) tx: pipe::Sender,
        pub(super) path: PathBuf,
        /// The terminal end, held open so that the controlling end never sees the port
        /// closed between clients (Linux fails its reads with EIO until a terminal end
        /// is open again).
        pub(super) terminal: OwnedFd,
    }

    impl Pty {
        /// A new pair, the terminal end in raw mode (no echo of the device's replies
        /// back to it, no newline translation) until a client sets its own mode.
        pub(super) fn open() -> io::Result<Self> {
            let controller = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY)?;
            grantpt(&controller)?;
            unlockpt(&controller)?;
            let path = PathBuf::from(
                ptsname(&controller, Vec::new())?
                    .into_string()
                    .map_err(|_| io::Error::other("pseudo-terminal path is not UTF-8"))?,
            );
            let terminal = rustix::fs::open(
                &path,
                OFlags::RDWR | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let mut settings = termios::tcgetattr(&terminal)?;
            settings.make_raw();
            termios::tcsetattr(&terminal, OptionalActions::Now, &settings)?;
            rustix::io::ioctl_fionbio(&controller, true)?;
            let file = File::from(controller);
            // tokio's pipe ends drive any pollable non-blocking descriptor through safe
            // constructors (its `AsyncFd` needs `unsafe` since tokio 1.54).
            let tx = pipe::Sender::from_file_unchecked(file.try_clone()?)?;
            let rx = pipe::Receiver::from_file_unchecked(file)?;
            Ok(Self {
                rx,
                tx,
                path,
                terminal,
            })
        }
    }
}

#[cfg(not(unix))]
mod pty {
    //! Pseudo-terminals need a Unix system.

    use std::io;
    use std::path::PathBuf;

    pub(super) struct Pty {
        pub(super) rx: tokio::io::Empty,
        pub(super) tx: tokio::io::Sink,
        pub(super) path: PathBuf,
        pub(super) terminal: (),
    }

    impl Pty {
        pub(super) fn open() -> io::Result<Self> {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "pseudo-terminals need a Unix system: serve serial over TCP instead",
            ))
        }
    }
}
