//! The byte pipes a serial transport runs over: a terminal device or a TCP stream.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use smp_transport::TransportError;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::target::{Address, SerialTarget};

/// An open serial port: a terminal device (UART, USB CDC ACM, pseudo-terminal) or a TCP
/// byte stream (an emulator's serial chardev, ser2net). What
/// [`SerialTransport::connect`](crate::SerialTransport::connect) runs over.
#[derive(Debug)]
pub struct Port(Kind);

#[derive(Debug)]
enum Kind {
    #[cfg(unix)]
    Tty(tty::Tty),
    Tcp(TcpStream),
}

impl Port {
    /// Opens the port `target` names: a device path in raw mode at its baud rate, or a TCP
    /// connection for `socket://HOST:PORT`.
    pub async fn open(target: &SerialTarget) -> Result<Self, TransportError> {
        match target.address() {
            #[cfg(unix)]
            Address::Device(path) => {
                let tty = tty::Tty::open(path, target.baud_rate()).map_err(|err| {
                    TransportError::Io(io::Error::new(
                        err.kind(),
                        format!("cannot open {}: {err}", path.display()),
                    ))
                })?;
                Ok(Self(Kind::Tty(tty)))
            }
            #[cfg(not(unix))]
            Address::Device(path) => Err(TransportError::Io(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "cannot open {}: serial devices need a Unix system here",
                    path.display()
                ),
            ))),
            Address::Tcp { host, port } => {
                let addr = tokio::net::lookup_host((host.as_str(), *port))
                    .await
                    .map_err(|source| TransportError::Resolve {
                        target: target.to_string(),
                        source,
                    })?
                    .next()
                    .ok_or_else(|| TransportError::NoAddress {
                        target: target.to_string(),
                    })?;
                let stream = TcpStream::connect(addr).await?;
                // Lines go out as written: pacing means nothing if the socket batches them.
                stream.set_nodelay(true)?;
                Ok(Self(Kind::Tcp(stream)))
            }
        }
    }

    /// True for a TCP byte stream.
    pub fn is_tcp(&self) -> bool {
        matches!(self.0, Kind::Tcp(_))
    }
}

impl AsyncRead for Port {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            #[cfg(unix)]
            Kind::Tty(tty) => Pin::new(tty).poll_read(cx, buf),
            Kind::Tcp(tcp) => {
                let before = buf.filled().len();
                let read = Pin::new(&mut *tcp).poll_read(cx, buf);
                if buf.filled().len() > before {
                    quick_ack(tcp);
                }
                read
            }
        }
    }
}

/// Acknowledges what arrives at once instead of after the usual delay (Linux delays an
/// ACK up to 40 ms). An emulator's chardev socket writes a reply in small pieces with
/// Nagle's algorithm on (QEMU's `nodelay` is off by default), so each piece after the
/// first waits for our ACK: measured on the mps2_an385 fixture over loopback, a short
/// echo took 40 ms this way and 10 ms with quick ACKs. Linux clears the option as it
/// sees fit, so it is set again after every read.
#[cfg(target_os = "linux")]
fn quick_ack(tcp: &TcpStream) {
    if let Err(err) = rustix::net::sockopt::set_tcp_quickack(tcp, true) {
        tracing::trace!(%err, "TCP_QUICKACK");
    }
}

#[cfg(not(target_os = "linux"))]
fn quick_ack(_: &TcpStream) {}

impl AsyncWrite for Port {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().0 {
            #[cfg(unix)]
            Kind::Tty(tty) => Pin::new(tty).poll_write(cx, buf),
            Kind::Tcp(tcp) => Pin::new(tcp).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            #[cfg(unix)]
            Kind::Tty(tty) => Pin::new(tty).poll_flush(cx),
            Kind::Tcp(tcp) => Pin::new(tcp).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            #[cfg(unix)]
            Kind::Tty(tty) => Pin::new(tty).poll_shutdown(cx),
            Kind::Tcp(tcp) => Pin::new(tcp).poll_shutdown(cx),
        }
    }
}

#[cfg(unix)]
mod tty {
    //! A terminal device opened non-blocking, in raw mode, driven by tokio's reactor.

    use std::fs::File;
    use std::io;
    use std::path::Path;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use rustix::fs::{Mode, OFlags};
    use rustix::termios::{
        self, ControlModes, InputModes, OptionalActions, QueueSelector, SpecialCodeIndex,
    };
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio::net::unix::pipe;

    /// An open terminal device: one descriptor for each direction.
    ///
    /// tokio's pipe ends drive any non-blocking descriptor that the reactor can poll, a
    /// terminal as well as a FIFO, through safe constructors (its `AsyncFd` needs `unsafe`
    /// to be built since tokio 1.54).
    #[derive(Debug)]
    pub(super) struct Tty {
        rx: pipe::Receiver,
        tx: pipe::Sender,
    }

    impl Tty {
        /// Opens `path` (not as the controlling terminal), sets raw mode (8N1, no echo,
        /// no line editing, no flow control, modem lines ignored) and `baud_rate`, and
        /// drops input the device sent before, as the reference does on connecting.
        pub(super) fn open(path: &Path, baud_rate: u32) -> io::Result<Self> {
            let fd = rustix::fs::open(
                path,
                OFlags::RDWR | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let mut settings = termios::tcgetattr(&fd).map_err(|err| {
                io::Error::new(
                    io::Error::from(err).kind(),
                    "not a terminal device (a serial port or pseudo-terminal)",
                )
            })?;
            settings.make_raw();
            settings.control_modes |= ControlModes::CLOCAL | ControlModes::CREAD;
            settings.control_modes -= ControlModes::CRTSCTS;
            settings.input_modes -= InputModes::IXON | InputModes::IXOFF | InputModes::IXANY;
            settings.special_codes[SpecialCodeIndex::VMIN] = 1;
            settings.special_codes[SpecialCodeIndex::VTIME] = 0;
            settings.set_speed(baud_rate)?;
            termios::tcsetattr(&fd, OptionalActions::Now, &settings)?;
            termios::tcflush(&fd, QueueSelector::IFlush)?;
            let file = File::from(fd);
            // Both descriptors share the open file and its non-blocking flag.
            let tx = pipe::Sender::from_file_unchecked(file.try_clone()?)?;
            let rx = pipe::Receiver::from_file_unchecked(file)?;
            Ok(Self { rx, tx })
        }
    }

    impl AsyncRead for Tty {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().rx).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Tty {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.get_mut().tx).poll_write(cx, buf)
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().tx).poll_flush(cx)
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().tx).poll_shutdown(cx)
        }
    }
}
