//! The tokio layer: a framing over any byte stream.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use smp_transport::{Connect, FramePool, Transport, TransportError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;

use crate::console::{self, LineLength};
use crate::error::FrameError;
use crate::framing::{Deframer, encode};
use crate::options::{Framing, Pacing, SerialOptions};
use crate::pace::Pacer;
use crate::port::Port;
use crate::target::SerialTarget;

/// Received frames' buffers kept for reuse: a few more than the requests a client keeps
/// in flight.
const RECYCLED_FRAMES: usize = 16;
/// Bytes read from the port at once (a UART delivers far fewer per read).
const READ_BUFFER: usize = 4096;

/// SMP frames over a serial byte stream: a UART, USB CDC ACM, a pseudo-terminal or a TCP
/// serial bridge ([`Port`], opened by [`connect`](SerialTransport::connect)), or any
/// `AsyncRead + AsyncWrite` given to [`new`](SerialTransport::new).
///
/// Frames are encoded in the [`Framing`] of its [`SerialOptions`] and written as a unit:
/// concurrent sends never interleave their lines. Console lines are paced as the options
/// say.
/// Received bytes are kept, with the deframer's state, inside the transport, so a dropped
/// [`receive`](Transport::receive) loses nothing. When the port goes away (end of stream,
/// or a read or write error: a USB device unplugged, an emulator killed), receives that
/// wait end at once, the first with the error ([`TransportError::Io`]) or
/// [`TransportError::Closed`] at the end of the stream, and every later call with
/// `Closed`. A frame that arrives damaged is one [`TransportError::Framing`] error (its
/// source a [`FrameError`]), and the next frame is received normally.
///
/// Dropping a [`send`](Transport::send) while it writes a multi-line message may leave
/// part of it on the line: a console device drops it at the next message's start line;
/// raw framing has no way to resynchronise.
pub struct SerialTransport<P = Port> {
    options: SerialOptions,
    line_length: LineLength,
    /// The largest frame to send: from the options, until the device's buffer size is
    /// known ([`Transport::set_device_buffer`]).
    max_unencoded_size: AtomicUsize,
    /// The largest raw frame to take in: grows with what the device says it buffers.
    max_received: AtomicUsize,
    reader: Mutex<Reader<P>>,
    writer: Mutex<Writer<P>>,
    /// Buffers of received frames handed back by [`Transport::recycle`].
    pool: FramePool,
    /// Set by [`Transport::disconnect`] and when the port goes away.
    closed: watch::Sender<bool>,
    /// What [`stats`](SerialTransport::stats) reports (boxed: the transport is a
    /// variant of `smp-client`'s `AnyTransport`, which stays small).
    counters: Box<Counters>,
}

/// What a [`SerialTransport`] has moved since it was opened, and how long pacing held
/// its writes back: [`SerialTransport::stats`].
///
/// The bytes are those on the line, framing included (base64, line delimiters and
/// newlines, length and CRC; COBS overhead), so `bytes_written` over the frames' own
/// length is what the framing costs. `pacing_waited` adds up the pauses [`Pacing`]
/// made between lines: with fixed pacing, what a link that needs no pacing loses to it;
/// with [`Pacing::auto`] (the default), nothing until a loss is noted.
///
/// [`Pacing`]: crate::Pacing
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SerialStats {
    /// Frames (messages) written whole.
    pub frames_sent: u64,
    /// Bytes written to the port.
    pub bytes_written: u64,
    /// Console lines written (0 in the raw framings).
    pub lines_written: u64,
    /// Frames received whole and intact.
    pub frames_received: u64,
    /// Bytes read from the port, whatever they were (frames, log lines, noise).
    pub bytes_read: u64,
    /// Time spent waiting between lines because of pacing.
    pub pacing_waited: Duration,
    /// Losses the client noted ([`Transport::note_loss`]); with [`Pacing::auto`], lines
    /// are paced from the first on.
    pub losses_noted: u64,
}

#[derive(Debug, Default)]
struct Counters {
    frames_sent: AtomicU64,
    bytes_written: AtomicU64,
    lines_written: AtomicU64,
    frames_received: AtomicU64,
    bytes_read: AtomicU64,
    pacing_waited_ns: AtomicU64,
    losses_noted: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: impl TryInto<u64>) {
        counter.fetch_add(n.try_into().unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn snapshot(&self) -> SerialStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        SerialStats {
            frames_sent: get(&self.frames_sent),
            bytes_written: get(&self.bytes_written),
            lines_written: get(&self.lines_written),
            frames_received: get(&self.frames_received),
            bytes_read: get(&self.bytes_read),
            pacing_waited: Duration::from_nanos(get(&self.pacing_waited_ns)),
            losses_noted: get(&self.losses_noted),
        }
    }
}

struct Reader<P> {
    /// `None` once disconnected.
    io: Option<ReadHalf<P>>,
    buf: Box<[u8]>,
    deframer: Deframer,
}

struct Writer<P> {
    /// `None` once disconnected.
    io: Option<WriteHalf<P>>,
    pacer: Pacer,
}

impl<P> fmt::Debug for SerialTransport<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SerialTransport")
            .field("options", &self.options)
            .field("max_unencoded_size", &self.max_unencoded_size)
            .field("closed", &*self.closed.borrow())
            .finish_non_exhaustive()
    }
}

impl SerialTransport<Port> {
    /// Opens the port `target` names with its settings; gives up with
    /// [`TransportError::ConnectTimeout`] after `timeout`.
    ///
    /// Settings that cannot frame a message fail before the port is touched, with
    /// [`TransportError::Framing`] (its source an [`OptionsError`](crate::OptionsError)).
    pub async fn connect(target: SerialTarget, timeout: Duration) -> Result<Self, TransportError> {
        target.options().max_unencoded_size()?;
        let name = target.to_string();
        let port = tokio::time::timeout(timeout, Port::open(&target))
            .await
            .map_err(|_| TransportError::ConnectTimeout {
                target: name.clone(),
                timeout,
            })??;
        let transport = Self::new(port, target.options().clone())?;
        tracing::info!(
            port = %name,
            framing = ?transport.options.framing,
            max_unencoded_size = transport.max_unencoded_size(),
            "connected"
        );
        Ok(transport)
    }
}

impl<P: AsyncRead + AsyncWrite + Send> SerialTransport<P> {
    /// A transport over `io`, an open byte stream to the device, with `options`.
    ///
    /// Fails with [`TransportError::Framing`] (its source an
    /// [`OptionsError`](crate::OptionsError)) for settings that cannot frame a message.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), smp_serial::TransportError> {
    /// use smp_serial::{SerialOptions, SerialTransport, Transport};
    ///
    /// let (ours, _device) = tokio::io::duplex(1024);
    /// let serial = SerialTransport::new(ours, SerialOptions::default().buf_size(384))?;
    /// assert_eq!(serial.max_unencoded_size(), 380);
    /// # Ok(()) }
    /// ```
    pub fn new(io: P, options: SerialOptions) -> Result<Self, TransportError> {
        let line_length = options.checked_line_length()?;
        let max_unencoded_size = options.max_unencoded_size()?;
        let (read, write) = tokio::io::split(io);
        Ok(Self {
            line_length,
            max_unencoded_size: AtomicUsize::new(max_unencoded_size),
            max_received: AtomicUsize::new(max_unencoded_size),
            reader: Mutex::new(Reader {
                io: Some(read),
                buf: vec![0; READ_BUFFER].into_boxed_slice(),
                deframer: Deframer::new(options.framing, max_unencoded_size),
            }),
            writer: Mutex::new(Writer {
                io: Some(write),
                pacer: Pacer::new(options.pacing),
            }),
            options,
            pool: FramePool::new(RECYCLED_FRAMES),
            closed: watch::Sender::new(false),
            counters: Box::default(),
        })
    }
}

impl<P> SerialTransport<P> {
    /// The settings the transport runs with.
    pub fn options(&self) -> &SerialOptions {
        &self.options
    }

    /// What the transport has moved so far, and how long pacing held it back.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), smp_serial::TransportError> {
    /// use smp_serial::{SerialOptions, SerialTransport, Transport};
    ///
    /// let (ours, _device) = tokio::io::duplex(1024);
    /// let serial = SerialTransport::new(ours, SerialOptions::default())?;
    /// serial.send(&[0x08, 0, 0, 0, 0, 0, 1, 0]).await?;
    /// let stats = serial.stats();
    /// // 2 + 8 + 2 bytes in base64, a 2-byte delimiter and a newline.
    /// assert_eq!((stats.frames_sent, stats.lines_written, stats.bytes_written), (1, 1, 19));
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> SerialStats {
        self.counters.snapshot()
    }

    fn check_open(&self) -> Result<(), TransportError> {
        if *self.closed.borrow() {
            return Err(TransportError::Closed);
        }
        Ok(())
    }

    /// The port went away: every waiting and later call ends with `Closed`.
    fn port_gone(&self, why: &dyn fmt::Display) {
        if !self.closed.send_replace(true) {
            tracing::info!(%why, "serial port gone");
        }
    }
}

/// Writes `encoded`, made of consecutive lines of the given lengths, paced; adds the
/// time it waits to `waited_ns`.
async fn write_paced<W: AsyncWrite + Unpin>(
    io: &mut W,
    pacer: &mut Pacer,
    encoded: &[u8],
    lines: impl Iterator<Item = usize>,
    waited_ns: &AtomicU64,
) -> io::Result<()> {
    let mut lines = lines.peekable();
    let mut start = 0;
    while lines.peek().is_some() {
        let slot = pacer.next_slot(Instant::now());
        if let Some(resume) = slot.not_before {
            let before = Instant::now();
            tokio::time::sleep_until(resume).await;
            Counters::add(waited_ns, before.elapsed().as_nanos());
        }
        let mut end = start;
        let mut burst = 0;
        while burst < slot.lines {
            let Some(len) = lines.next() else { break };
            end += len;
            burst += 1;
        }
        io.write_all(&encoded[start..end]).await?;
        pacer.wrote(burst, Instant::now());
        start = end;
    }
    io.flush().await
}

impl<P: AsyncRead + AsyncWrite + Send> Transport for SerialTransport<P> {
    async fn send(&self, frame: &[u8]) -> Result<(), TransportError> {
        self.check_open()?;
        let encoded =
            encode(self.options.framing, frame, self.line_length).map_err(|err| match err {
                FrameError::TooLong { len, max } => TransportError::FrameTooLarge { len, max },
                other => other.into(),
            })?;
        let max_unencoded_size = self.max_unencoded_size.load(Ordering::Relaxed);
        if frame.len() > max_unencoded_size {
            tracing::warn!(
                len = frame.len(),
                max_unencoded_size,
                "sending a frame larger than the device's buffer: it may drop it"
            );
        }
        tracing::trace!(len = frame.len(), encoded = encoded.len(), "sending frame");
        let mut closed = self.closed.subscribe();
        let mut writer = self.writer.lock().await;
        let Writer { io, pacer } = &mut *writer;
        // Automatic pacing starts at the first loss the client noted.
        if self.counters.losses_noted.load(Ordering::Relaxed) > 0 {
            pacer.note_loss();
        }
        let Some(io) = io.as_mut() else {
            return Err(TransportError::Closed);
        };
        let line_count = match self.options.framing {
            Framing::Console => console::lines(&encoded).count(),
            Framing::Raw | Framing::RawCobs => 0,
        };
        let write = async {
            match self.options.framing {
                Framing::Console => {
                    let lines = console::lines(&encoded).map(<[u8]>::len);
                    let waited = &self.counters.pacing_waited_ns;
                    write_paced(io, pacer, &encoded, lines, waited).await
                }
                // One write, unpaced: native_sim's raw UART takes a whole 384-byte frame
                // at once, and the reference writes raw frames that way.
                Framing::Raw | Framing::RawCobs => {
                    io.write_all(&encoded).await?;
                    io.flush().await
                }
            }
        };
        tokio::select! {
            written = write => {
                written.map_err(|err| {
                    self.port_gone(&err);
                    TransportError::Io(err)
                })?;
                let c = &self.counters;
                Counters::add(&c.frames_sent, 1u64);
                Counters::add(&c.bytes_written, encoded.len());
                Counters::add(&c.lines_written, line_count);
                Ok(())
            }
            _ = closed.wait_for(|closed| *closed) => Err(TransportError::Closed),
        }
    }

    async fn receive(&self) -> Result<Vec<u8>, TransportError> {
        let mut closed = self.closed.subscribe();
        let mut reader = self.reader.lock().await;
        let Reader { io, buf, deframer } = &mut *reader;
        loop {
            if *closed.borrow_and_update() {
                return Err(TransportError::Closed);
            }
            match deframer.next_frame_pooled(&self.pool) {
                Some(Ok(frame)) => {
                    tracing::trace!(len = frame.len(), "received frame");
                    Counters::add(&self.counters.frames_received, 1u64);
                    return Ok(frame);
                }
                Some(Err(err)) => {
                    tracing::debug!(%err, "dropping a damaged frame");
                    return Err(err.into());
                }
                None => {}
            }
            let Some(io) = io.as_mut() else {
                return Err(TransportError::Closed);
            };
            tokio::select! {
                read = io.read(buf) => match read {
                    Ok(0) => {
                        self.port_gone(&"end of stream");
                        return Err(TransportError::Closed);
                    }
                    Ok(len) => {
                        tracing::trace!(len, "read");
                        Counters::add(&self.counters.bytes_read, len);
                        deframer.set_max_frame(self.max_received.load(Ordering::Relaxed));
                        deframer.push(&buf[..len]);
                    }
                    Err(err) => {
                        self.port_gone(&err);
                        return Err(TransportError::Io(err));
                    }
                },
                _ = closed.changed() => {}
            }
        }
    }

    fn recycle(&self, frame: Vec<u8>) {
        self.pool.give_back(frame);
    }

    async fn disconnect(&self) -> Result<(), TransportError> {
        self.closed.send_replace(true);
        // Waiting sends and receives see `closed` and let go of the port; then it closes.
        if let Some(mut io) = self.writer.lock().await.io.take() {
            if let Err(err) = io.shutdown().await {
                tracing::debug!(%err, "shutting the port down");
            }
        }
        let mut reader = self.reader.lock().await;
        reader.io = None;
        reader.deframer.reset();
        tracing::info!("disconnected");
        Ok(())
    }

    fn mtu(&self) -> usize {
        self.options.mtu()
    }

    fn max_unencoded_size(&self) -> usize {
        self.max_unencoded_size.load(Ordering::Relaxed)
    }

    /// Console framing keeps the length field and CRC in the device's buffer, so frames
    /// are `buf_size - 4` bytes at most; raw framings carry `buf_size`. Either replaces
    /// the guess from the options (the reference does the same once it knows
    /// `buf_size`), and raw frames up to it are received from then on.
    fn set_device_buffer(&self, buf_size: usize) -> usize {
        let limit = match self.options.framing {
            Framing::Console => console::max_frame_for_buf_size(buf_size),
            Framing::Raw | Framing::RawCobs => buf_size,
        }
        .clamp(
            smp_transport::header::SIZE,
            smp_transport::header::MAX_FRAME_SIZE,
        );
        self.max_unencoded_size.store(limit, Ordering::Relaxed);
        self.max_received.fetch_max(limit, Ordering::Relaxed);
        tracing::debug!(buf_size, limit, "device buffer size known");
        limit
    }

    /// False for [`Framing::Raw`], whose frames only their header's length delimits: a
    /// lost byte makes the device read the next frame's start as the missing tail, so a
    /// request must not go again before the device's input timeout drops the partial
    /// one. Console lines (newlines, a CRC) and COBS (a delimiter, a CRC) resynchronise.
    fn resynchronises(&self) -> bool {
        self.options.framing != Framing::Raw
    }

    /// Starts [`Pacing::auto`]'s pacing (console framing) for the rest of the connection.
    fn note_loss(&self) {
        let first = self.counters.losses_noted.fetch_add(1, Ordering::Relaxed) == 0;
        let paces = self.options.framing == Framing::Console && self.options.pacing.until_loss();
        if first && paces {
            tracing::info!(
                pacing = %Pacing::new(self.options.pacing.burst(), self.options.pacing.pause()),
                "a message was lost: pacing lines from now on"
            );
        }
    }
}

impl Connect for SerialTransport<Port> {
    type Target = SerialTarget;

    async fn connect(target: SerialTarget, timeout: Duration) -> Result<Self, TransportError> {
        SerialTransport::connect(target, timeout).await
    }
}
