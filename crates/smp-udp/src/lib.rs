//! SMP over UDP on tokio: the transport for Ethernet, Wi-Fi and Thread devices.
//!
//! [`UdpTransport`] behaves like the reference UDP transport of the Python `smpclient`:
//! default MTU 1500 and port 1337, a datagram payload limit of the MTU less the IPv4
//! (28 B) or IPv6 (48 B) and UDP headers, frames larger than that split with a warning,
//! frames reassembled across datagrams with an error when more data arrives than the
//! header announced. Where that reference hurts users it does better: the socket is
//! connected, so datagrams from any other peer never reach the client; an MTU that
//! cannot carry a header is refused when connecting; a bad datagram costs one typed
//! error and the next frame is received normally; sending and receiving can happen
//! from different tasks at once.
//!
//! This crate moves frames only. Sequence matching, timeouts and retries belong to the
//! client (`smp-client`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), smp_udp::TransportError> {
//! use std::time::Duration;
//! use smp_udp::{Transport, UdpTarget, UdpTransport};
//!
//! let target: UdpTarget = "192.0.2.1:1337".parse()?;
//! let udp = UdpTransport::connect(target, Duration::from_secs(2)).await?;
//! assert_eq!(udp.max_unencoded_size(), 1472);
//! let reply = udp.send_and_receive(&[0x0a, 0, 0, 1, 0, 0, 0, 0, 0xa0]).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod target;

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub use smp_transport::{self as transport, Connect, Transport, TransportError, header};
use smp_transport::{DatagramReceiver, DatagramSource, split_frame};
pub use target::UdpTarget;
use tokio::net::UdpSocket;
use tokio::sync::Mutex;

/// Default link MTU in bytes (Ethernet).
pub const DEFAULT_MTU: usize = 1500;
/// Default SMP UDP port.
pub const DEFAULT_PORT: u16 = 1337;
/// Minimum IPv4 header size in bytes.
pub const IPV4_HEADER_SIZE: usize = 20;
/// IPv6 header size in bytes.
pub const IPV6_HEADER_SIZE: usize = 40;
/// UDP header size in bytes.
pub const UDP_HEADER_SIZE: usize = 8;
/// Bytes of IPv4 and UDP headers in each datagram (RFC 8085 section 3.2).
pub const IPV4_UDP_OVERHEAD: usize = IPV4_HEADER_SIZE + UDP_HEADER_SIZE;
/// Bytes of IPv6 and UDP headers in each datagram (RFC 8085 section 3.2).
pub const IPV6_UDP_OVERHEAD: usize = IPV6_HEADER_SIZE + UDP_HEADER_SIZE;

/// Received frames' buffers kept for reuse: a few more than the requests a client keeps
/// in flight.
const RECYCLED_FRAMES: usize = 16;

/// Largest UDP payload (IPv4 allows 65,507 B; a receive buffer this size never truncates).
const RECEIVE_BUFFER: usize = 65_536;

/// The datagram payload an `mtu` leaves for SMP on a connection to `peer`.
///
/// ```
/// use smp_udp::max_unencoded_size;
/// let v4 = "127.0.0.1:1337".parse().unwrap();
/// let v6 = "[::1]:1337".parse().unwrap();
/// assert_eq!(max_unencoded_size(1500, &v4).unwrap(), 1472);
/// assert_eq!(max_unencoded_size(1500, &v6).unwrap(), 1452);
/// assert_eq!(max_unencoded_size(512, &v4).unwrap(), 484);
/// assert!(max_unencoded_size(35, &v4).is_err());
/// ```
pub fn max_unencoded_size(mtu: usize, peer: &SocketAddr) -> Result<usize, TransportError> {
    let overhead = if peer.is_ipv6() {
        IPV6_UDP_OVERHEAD
    } else {
        IPV4_UDP_OVERHEAD
    };
    let payload = mtu.saturating_sub(overhead);
    if payload < header::SIZE {
        return Err(TransportError::MtuTooSmall {
            mtu,
            payload,
            needed: header::SIZE,
        });
    }
    Ok(payload)
}

/// A connected UDP socket carrying SMP frames to one device.
#[derive(Debug)]
pub struct UdpTransport {
    /// Shared with `receiver`'s source, which receives from it.
    socket: Arc<UdpSocket>,
    peer: SocketAddr,
    mtu: usize,
    max_unencoded_size: usize,
    /// Frames out of the socket's datagrams; the closed state.
    receiver: DatagramReceiver<Datagrams>,
    /// Held while the datagrams of one frame go out, so concurrent sends never interleave.
    sending: Mutex<()>,
}

/// A refused port (ICMP port unreachable on a connected socket) is a typed error.
fn socket_error(err: io::Error) -> TransportError {
    if err.kind() == io::ErrorKind::ConnectionRefused {
        TransportError::Unreachable(err)
    } else {
        TransportError::Io(err)
    }
}

/// The socket's datagrams, each received into the same buffer.
struct Datagrams {
    socket: Arc<UdpSocket>,
    buf: Vec<u8>,
}

impl DatagramSource for Datagrams {
    // Cancel-safe: `recv` takes a datagram only when it completes.
    async fn next_datagram(&mut self) -> Result<&[u8], TransportError> {
        let len = self
            .socket
            .recv(&mut self.buf)
            .await
            .map_err(socket_error)?;
        tracing::trace!(len, "received datagram");
        Ok(&self.buf[..len])
    }
}

impl std::fmt::Debug for Datagrams {
    // The 64 KiB receive buffer is scratch space, not state worth printing; the socket
    // is printed with the transport.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datagrams")
            .field("buf_len", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl UdpTransport {
    /// Resolves `target`, binds an ephemeral port of the same IP family and connects the
    /// socket to the device; all within `timeout`.
    pub async fn connect(target: UdpTarget, timeout: Duration) -> Result<Self, TransportError> {
        let name = target.to_string();
        tokio::time::timeout(timeout, Self::connect_now(target))
            .await
            .map_err(|_| TransportError::ConnectTimeout {
                target: name,
                timeout,
            })?
    }

    async fn connect_now(target: UdpTarget) -> Result<Self, TransportError> {
        let mut addrs = tokio::net::lookup_host((target.host(), target.port()))
            .await
            .map_err(|source| TransportError::Resolve {
                target: target.to_string(),
                source,
            })?;
        let peer = addrs.next().ok_or_else(|| TransportError::NoAddress {
            target: target.to_string(),
        })?;
        let max_unencoded_size = max_unencoded_size(target.mtu(), &peer)?;
        let local: SocketAddr = if peer.is_ipv6() {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local).await?;
        socket.connect(peer).await?;
        tracing::info!(%peer, ipv6 = peer.is_ipv6(), max_unencoded_size, "connected");
        let socket = Arc::new(socket);
        let datagrams = Datagrams {
            socket: Arc::clone(&socket),
            buf: vec![0; RECEIVE_BUFFER],
        };
        Ok(Self {
            socket,
            peer,
            mtu: target.mtu(),
            max_unencoded_size,
            receiver: DatagramReceiver::new(datagrams, RECYCLED_FRAMES),
            sending: Mutex::new(()),
        })
    }

    /// The device's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The local address of the socket.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// True when the connection is over IPv6.
    pub fn is_ipv6(&self) -> bool {
        self.peer.is_ipv6()
    }

    fn check_open(&self) -> Result<(), TransportError> {
        if self.receiver.is_closed() {
            return Err(TransportError::Closed);
        }
        Ok(())
    }
}

impl Transport for UdpTransport {
    async fn send(&self, frame: &[u8]) -> Result<(), TransportError> {
        self.check_open()?;
        if frame.len() > header::MAX_FRAME_SIZE {
            return Err(TransportError::FrameTooLarge {
                len: frame.len(),
                max: header::MAX_FRAME_SIZE,
            });
        }
        tracing::trace!(len = frame.len(), "sending frame");
        let _sending = self.sending.lock().await;
        for datagram in split_frame(frame, self.max_unencoded_size) {
            self.socket.send(datagram).await.map_err(socket_error)?;
        }
        Ok(())
    }

    async fn receive(&self) -> Result<Vec<u8>, TransportError> {
        self.receiver.receive().await
    }

    fn recycle(&self, frame: Vec<u8>) {
        self.receiver.recycle(frame);
    }

    async fn disconnect(&self) -> Result<(), TransportError> {
        self.receiver.close();
        tracing::info!(peer = %self.peer, "disconnected");
        Ok(())
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn max_unencoded_size(&self) -> usize {
        self.max_unencoded_size
    }
}

impl Connect for UdpTransport {
    type Target = UdpTarget;

    async fn connect(target: UdpTarget, timeout: Duration) -> Result<Self, TransportError> {
        UdpTransport::connect(target, timeout).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_limits() {
        let v4: SocketAddr = "127.0.0.1:1337".parse().unwrap();
        let v6: SocketAddr = "[::1]:1337".parse().unwrap();
        assert_eq!(max_unencoded_size(DEFAULT_MTU, &v4).unwrap(), 1472);
        assert_eq!(max_unencoded_size(DEFAULT_MTU, &v6).unwrap(), 1452);
        assert_eq!(max_unencoded_size(512, &v4).unwrap(), 484);
        assert_eq!(max_unencoded_size(36, &v4).unwrap(), 8);
        assert!(matches!(
            max_unencoded_size(35, &v4),
            Err(TransportError::MtuTooSmall {
                mtu: 35,
                payload: 7,
                needed: 8
            })
        ));
        assert!(matches!(
            max_unencoded_size(10, &v6),
            Err(TransportError::MtuTooSmall { payload: 0, .. })
        ));
    }
}
