use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use smp_transport::TransportError;

use crate::options::SerialOptions;

/// Where a [`SerialTransport`](crate::SerialTransport) connects, with which baud rate and
/// settings.
///
/// Parses from a device path (`/dev/ttyACM0`, `/dev/ttyUSB0`, a pseudo-terminal such as
/// `/dev/pts/3`) or `socket://HOST:PORT` for a TCP byte stream (an emulator's serial
/// chardev, ser2net; `socket://[::1]:PORT` for IPv6). The baud rate defaults to 115,200
/// (it means nothing to pseudo-terminals, TCP and USB CDC ACM) and the settings to
/// [`SerialOptions::default`].
///
/// ```
/// use smp_serial::{Framing, SerialOptions, SerialTarget};
///
/// let t: SerialTarget = "/dev/ttyACM0".parse().unwrap();
/// assert_eq!((t.to_string().as_str(), t.baud_rate()), ("/dev/ttyACM0", 115_200));
/// let t: SerialTarget = "socket://127.0.0.1:5555".parse().unwrap();
/// assert_eq!(t.tcp_address(), Some(("127.0.0.1", 5555)));
/// let t = t.with_options(SerialOptions::default().framing(Framing::Raw));
/// assert_eq!(t.options().framing, Framing::Raw);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialTarget {
    address: Address,
    baud_rate: u32,
    options: SerialOptions,
}

/// A port's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Address {
    Device(PathBuf),
    Tcp { host: String, port: u16 },
}

/// The URL scheme of a TCP byte stream, as pyserial spells it.
const TCP_SCHEME: &str = "socket://";

impl SerialTarget {
    /// The usual UART speed, and the default.
    pub const DEFAULT_BAUD_RATE: u32 = 115_200;

    /// A device path (UART, USB CDC ACM, pseudo-terminal) at the default baud rate.
    pub fn device(path: impl Into<PathBuf>) -> Self {
        Self::at(Address::Device(path.into()))
    }

    /// A TCP byte stream.
    pub fn tcp(host: impl Into<String>, port: u16) -> Self {
        Self::at(Address::Tcp {
            host: host.into(),
            port,
        })
    }

    fn at(address: Address) -> Self {
        Self {
            address,
            baud_rate: Self::DEFAULT_BAUD_RATE,
            options: SerialOptions::default(),
        }
    }

    /// The same target at another baud rate.
    #[must_use]
    pub fn with_baud_rate(mut self, baud_rate: u32) -> Self {
        self.baud_rate = baud_rate;
        self
    }

    /// The same target with other transport settings.
    #[must_use]
    pub fn with_options(mut self, options: SerialOptions) -> Self {
        self.options = options;
        self
    }

    /// Baud rate set on a device.
    pub fn baud_rate(&self) -> u32 {
        self.baud_rate
    }

    /// The transport's settings.
    pub fn options(&self) -> &SerialOptions {
        &self.options
    }

    /// The device path, for a device.
    pub fn device_path(&self) -> Option<&Path> {
        match &self.address {
            Address::Device(path) => Some(path),
            Address::Tcp { .. } => None,
        }
    }

    /// Host and port, for a TCP byte stream.
    pub fn tcp_address(&self) -> Option<(&str, u16)> {
        match &self.address {
            Address::Tcp { host, port } => Some((host, *port)),
            Address::Device(_) => None,
        }
    }

    pub(crate) fn address(&self) -> &Address {
        &self.address
    }
}

impl FromStr for SerialTarget {
    type Err = TransportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || TransportError::Resolve {
            target: s.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "expected a device path (/dev/ttyACM0) or socket://HOST:PORT",
            ),
        };
        let Some(rest) = s.strip_prefix(TCP_SCHEME) else {
            if s.is_empty() {
                return Err(invalid());
            }
            return Ok(Self::device(s));
        };
        let (host, port) = rest.rsplit_once(':').ok_or_else(invalid)?;
        let host = match host.strip_prefix('[') {
            Some(v6) => v6.strip_suffix(']').ok_or_else(invalid)?,
            None if host.contains(':') => return Err(invalid()),
            None => host,
        };
        let port = port.parse().map_err(|_| invalid())?;
        if host.is_empty() {
            return Err(invalid());
        }
        Ok(Self::tcp(host, port))
    }
}

impl fmt::Display for SerialTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.address {
            Address::Device(path) => write!(f, "{}", path.display()),
            Address::Tcp { host, port } if host.contains(':') => {
                write!(f, "{TCP_SCHEME}[{host}]:{port}")
            }
            Address::Tcp { host, port } => write!(f, "{TCP_SCHEME}{host}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let t: SerialTarget = "/dev/ttyUSB0".parse().unwrap();
        assert_eq!(t.device_path(), Some(Path::new("/dev/ttyUSB0")));
        assert_eq!(t.tcp_address(), None);
        let t: SerialTarget = "COM3".parse().unwrap();
        assert_eq!(t.to_string(), "COM3");
        let t: SerialTarget = "socket://localhost:4321".parse().unwrap();
        assert_eq!(t.tcp_address(), Some(("localhost", 4321)));
        assert_eq!(t.to_string(), "socket://localhost:4321");
        let t: SerialTarget = "socket://[::1]:4321".parse().unwrap();
        assert_eq!(t.tcp_address(), Some(("::1", 4321)));
        assert_eq!(t.to_string(), "socket://[::1]:4321");
        assert_eq!(t.device_path(), None);
        for bad in [
            "",
            "socket://",
            "socket://host",
            "socket://:80",
            "socket://host:port",
            "socket://host:70000",
            "socket://::1:80",
            "socket://[::1:80",
        ] {
            assert!(
                bad.parse::<SerialTarget>().is_err(),
                "{bad:?} should not parse"
            );
        }
    }

    #[test]
    fn settings_travel_with_the_target() {
        let t = SerialTarget::device("/dev/ttyACM0")
            .with_baud_rate(1_000_000)
            .with_options(SerialOptions::default().line_buffers(4));
        assert_eq!(t.baud_rate(), 1_000_000);
        assert_eq!(t.options().line_buffers, 4);
    }
}
