use std::io;
use std::time::Duration;

use smp_header::HeaderError;

use crate::HumanDuration;

/// Why a transport could not connect, send or receive.
///
/// A variant that wraps a lower error says what went wrong at this layer and returns
/// the lower error from [`source`](std::error::Error::source) without printing it, so
/// that a report that walks the chain (as `anyhow`'s `{:#}` does) shows each cause once.
/// Print the chain, not only this error's message, to show the cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// A received frame does not start with a valid SMP header.
    #[error("received an invalid SMP header")]
    Header(#[from] HeaderError),

    /// More bytes arrived for a frame than its header announced; the frame was discarded.
    #[error(
        "received more data than expected: {received} B > {expected} B announced by the header"
    )]
    ExcessData {
        /// Frame size announced by the header (header included).
        expected: usize,
        /// Bytes received for the frame.
        received: usize,
    },

    /// A frame to send is larger than any SMP header can announce.
    #[error("frame of {len} B is larger than an SMP frame can be ({max} B)")]
    FrameTooLarge {
        /// Size of the frame.
        len: usize,
        /// Largest possible SMP frame.
        max: usize,
    },

    /// The link's MTU cannot carry even one SMP header in a datagram.
    #[error(
        "MTU {mtu} B is too small: it leaves {payload} B per datagram, an SMP header needs {needed} B"
    )]
    MtuTooSmall {
        /// The MTU asked for.
        mtu: usize,
        /// Datagram payload left after the IP and UDP headers.
        payload: usize,
        /// The smallest payload that carries a header.
        needed: usize,
    },

    /// The target's name did not resolve.
    #[error("cannot resolve {target}")]
    Resolve {
        /// The name as given.
        target: String,
        /// The resolver's error.
        source: io::Error,
    },

    /// The target's name resolved to no address.
    #[error("{target} resolved to no address")]
    NoAddress {
        /// The name as given.
        target: String,
    },

    /// Connecting took longer than the timeout.
    #[error("connecting to {target} timed out after {}", HumanDuration(*timeout))]
    ConnectTimeout {
        /// The target as given.
        target: String,
        /// The timeout.
        timeout: Duration,
    },

    /// The network reported that nothing receives at the peer's address (for UDP, an
    /// ICMP "port unreachable": the device is down or restarting). The transport stays
    /// usable; a later datagram may get through.
    #[error("the device is unreachable")]
    Unreachable(#[source] io::Error),

    /// The transport was disconnected, or its peer went away.
    #[error("transport is closed")]
    Closed,

    /// The operating system reported an error.
    #[error("transport I/O error")]
    Io(#[from] io::Error),

    /// The link's framing refused something: received bytes that make no frame (bad
    /// encoding, a wrong checksum, a length that lies), dropped before the next frame is
    /// received normally; or settings that cannot frame a message. The source is the
    /// transport's own error type (for serial, `smp_serial::FrameError` or `OptionsError`).
    #[error("framing error")]
    Framing(#[source] Box<dyn std::error::Error + Send + Sync>),
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    use super::*;

    /// The message, then each cause's, as a reporter that walks the chain prints them.
    fn chain(err: &TransportError) -> Vec<String> {
        std::iter::successors(Some(err as &(dyn Error + 'static)), |&err| err.source())
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn each_cause_is_printed_once() {
        let refused = || io::Error::from(io::ErrorKind::ConnectionRefused);
        let refused_text = refused().to_string();
        for (err, top) in [
            (
                TransportError::from(HeaderError::TooShort { len: 3 }),
                "received an invalid SMP header",
            ),
            (
                TransportError::Resolve {
                    target: "nowhere.invalid:1337".into(),
                    source: refused(),
                },
                "cannot resolve nowhere.invalid:1337",
            ),
            (
                TransportError::Unreachable(refused()),
                "the device is unreachable",
            ),
            (TransportError::from(refused()), "transport I/O error"),
        ] {
            let chain = chain(&err);
            assert_eq!(chain.len(), 2, "{chain:?}");
            assert_eq!(chain[0], top);
            assert!(!chain[0].contains(&chain[1]), "{chain:?}");
        }
        assert_eq!(
            chain(&HeaderError::TooShort { len: 3 }.into())[1],
            "SMP header needs 8 bytes, only 3 available"
        );
        assert_eq!(
            chain(&TransportError::Unreachable(refused()))[1],
            refused_text
        );
    }

    #[test]
    fn a_timeout_reads_in_seconds() {
        let err = TransportError::ConnectTimeout {
            target: "192.0.2.1:1337".into(),
            timeout: Duration::from_millis(2500),
        };
        assert_eq!(
            err.to_string(),
            "connecting to 192.0.2.1:1337 timed out after 2.5 s"
        );
        assert!(err.source().is_none());
    }
}
