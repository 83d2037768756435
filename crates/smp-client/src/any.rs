//! [`AnyTransport`]: one client type for a device reached over UDP or a serial port,
//! chosen at run time.

use smp_transport::{Transport, TransportError};

/// A transport chosen at run time: a tool that takes `--udp` or `--serial` holds one
/// `Client<AnyTransport>` whichever the user gave.
///
/// ```no_run
/// # async fn demo(use_serial: bool) -> Result<(), smp_client::ClientError> {
/// use smp_client::{AnyTransport, Client, ClientOptions};
///
/// let options = ClientOptions::default();
/// let transport = if use_serial {
///     AnyTransport::connect_serial("/dev/ttyACM0".parse()?, options.retry.timeout).await?
/// } else {
///     AnyTransport::connect_udp("192.0.2.1".parse()?, options.retry.timeout).await?
/// };
/// let client = Client::new(transport, options).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum AnyTransport {
    /// SMP over UDP.
    #[cfg(feature = "udp")]
    Udp(smp_udp::UdpTransport),
    /// SMP over a serial port, a pseudo-terminal or a TCP serial bridge.
    #[cfg(feature = "serial")]
    Serial(smp_serial::SerialTransport),
}

impl AnyTransport {
    /// Connects over UDP, giving up after `timeout`.
    #[cfg(feature = "udp")]
    pub async fn connect_udp(
        target: smp_udp::UdpTarget,
        timeout: std::time::Duration,
    ) -> Result<Self, TransportError> {
        Ok(Self::Udp(
            smp_udp::UdpTransport::connect(target, timeout).await?,
        ))
    }

    /// Opens a serial port, giving up after `timeout`.
    #[cfg(feature = "serial")]
    pub async fn connect_serial(
        target: smp_serial::SerialTarget,
        timeout: std::time::Duration,
    ) -> Result<Self, TransportError> {
        Ok(Self::Serial(
            smp_serial::SerialTransport::connect(target, timeout).await?,
        ))
    }
}

#[cfg(feature = "udp")]
impl From<smp_udp::UdpTransport> for AnyTransport {
    fn from(transport: smp_udp::UdpTransport) -> Self {
        Self::Udp(transport)
    }
}

#[cfg(feature = "serial")]
impl From<smp_serial::SerialTransport> for AnyTransport {
    fn from(transport: smp_serial::SerialTransport) -> Self {
        Self::Serial(transport)
    }
}

/// Evaluates `$body` with `$t` bound to whichever transport `$self` holds.
macro_rules! each {
    ($self:expr, $t:ident => $body:expr) => {
        match $self {
            #[cfg(feature = "udp")]
            AnyTransport::Udp($t) => $body,
            #[cfg(feature = "serial")]
            AnyTransport::Serial($t) => $body,
        }
    };
}

impl Transport for AnyTransport {
    async fn send(&self, frame: &[u8]) -> Result<(), TransportError> {
        each!(self, t => t.send(frame).await)
    }

    async fn receive(&self) -> Result<Vec<u8>, TransportError> {
        each!(self, t => t.receive().await)
    }

    fn recycle(&self, frame: Vec<u8>) {
        each!(self, t => t.recycle(frame))
    }

    async fn disconnect(&self) -> Result<(), TransportError> {
        each!(self, t => t.disconnect().await)
    }

    fn mtu(&self) -> usize {
        each!(self, t => t.mtu())
    }

    fn max_unencoded_size(&self) -> usize {
        each!(self, t => t.max_unencoded_size())
    }

    fn set_device_buffer(&self, buf_size: usize) -> usize {
        each!(self, t => t.set_device_buffer(buf_size))
    }

    fn resynchronises(&self) -> bool {
        each!(self, t => t.resynchronises())
    }

    fn note_loss(&self) {
        each!(self, t => t.note_loss())
    }
}
