use std::io;
use std::time::Duration;

use smp_header::HeaderError;

/// Why a transport could not connect, send or receive.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// A received frame does not start with a valid SMP header.
    #[error("received an invalid SMP header: {0}")]
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
    #[error("cannot resolve {target}: {source}")]
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
    #[error("connecting to {target} timed out after {timeout:?}")]
    ConnectTimeout {
        /// The target as given.
        target: String,
        /// The timeout.
        timeout: Duration,
    },

    /// The network reported that nothing receives at the peer's address (for UDP, an
    /// ICMP "port unreachable": the device is down or restarting). The transport stays
    /// usable; a later datagram may get through.
    #[error("the device is unreachable: {0}")]
    Unreachable(io::Error),

    /// The transport was disconnected, or its peer went away.
    #[error("transport is closed")]
    Closed,

    /// The operating system reported an error.
    #[error("transport I/O error: {0}")]
    Io(#[from] io::Error),

    /// The link's framing refused something: received bytes that make no frame (bad
    /// encoding, a wrong checksum, a length that lies), dropped before the next frame is
    /// received normally; or settings that cannot frame a message. The source is the
    /// transport's own error type (for serial, `smp_serial::FrameError` or `OptionsError`).
    #[error("framing error")]
    Framing(#[source] Box<dyn std::error::Error + Send + Sync>),
}
