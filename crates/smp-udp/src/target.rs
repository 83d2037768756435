use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use smp_transport::TransportError;

use crate::{DEFAULT_MTU, DEFAULT_PORT};

/// Where a [`UdpTransport`](crate::UdpTransport) connects, and with which MTU.
///
/// Parses from `host`, `host:port`, an IPv6 address (`::1`) or `[v6]:port`;
/// the port defaults to 1337 and the MTU to 1500.
///
/// ```
/// use smp_udp::UdpTarget;
/// let t: UdpTarget = "[::1]:1400".parse().unwrap();
/// assert_eq!((t.host(), t.port(), t.mtu()), ("::1", 1400, 1500));
/// let t = UdpTarget::new("localhost").with_mtu(1280);
/// assert_eq!(t.to_string(), "localhost:1337");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpTarget {
    host: String,
    port: u16,
    mtu: usize,
}

impl UdpTarget {
    /// A host name or address on the default port with the default MTU.
    pub fn new(host: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            port: DEFAULT_PORT,
            mtu: DEFAULT_MTU,
        }
    }

    /// The same target on another port.
    #[must_use]
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The same target with another link MTU.
    #[must_use]
    pub fn with_mtu(mut self, mtu: usize) -> Self {
        self.mtu = mtu;
        self
    }

    /// Host name or address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// UDP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Link MTU in bytes.
    pub fn mtu(&self) -> usize {
        self.mtu
    }
}

impl From<SocketAddr> for UdpTarget {
    fn from(addr: SocketAddr) -> Self {
        Self::new(addr.ip().to_string()).with_port(addr.port())
    }
}

impl FromStr for UdpTarget {
    type Err = TransportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || TransportError::Resolve {
            target: s.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "expected HOST, HOST:PORT, an IPv6 address or [IPV6]:PORT",
            ),
        };
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(addr.into());
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Self::new(ip.to_string()));
        }
        if s.starts_with('[') || s.is_empty() {
            return Err(invalid());
        }
        match s.rsplit_once(':') {
            None => Ok(Self::new(s)),
            Some((host, port)) if !host.is_empty() && !host.contains(':') => {
                let port = port.parse().map_err(|_| invalid())?;
                Ok(Self::new(host).with_port(port))
            }
            Some(_) => Err(invalid()),
        }
    }
}

impl fmt::Display for UdpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let t: UdpTarget = "127.0.0.1".parse().unwrap();
        assert_eq!((t.host(), t.port()), ("127.0.0.1", 1337));
        let t: UdpTarget = "127.0.0.1:9".parse().unwrap();
        assert_eq!((t.host(), t.port()), ("127.0.0.1", 9));
        let t: UdpTarget = "::1".parse().unwrap();
        assert_eq!((t.host(), t.port()), ("::1", 1337));
        let t: UdpTarget = "[::1]:5683".parse().unwrap();
        assert_eq!((t.host(), t.port()), ("::1", 5683));
        assert_eq!(t.to_string(), "[::1]:5683");
        let t: UdpTarget = "localhost:1400".parse().unwrap();
        assert_eq!((t.host(), t.port()), ("localhost", 1400));
        for bad in ["", "[::1", "host:port", "host:99999", ":1337", "[::1]x"] {
            assert!(
                bad.parse::<UdpTarget>().is_err(),
                "{bad:?} should not parse"
            );
        }
    }
}
