//! The transport layer of the `smp` workspace: how SMP frames move, not what they mean.
//!
//! This crate defines the [`Transport`] trait that the client is written against,
//! [`Connect`] for transports that reach a device by address, the one error type of all
//! transports ([`TransportError`]), and the framing pieces every datagram transport
//! shares: [`Reassembler`] (whole frames out of datagrams, IO-free), [`split_frame`],
//! [`FramePool`] (received frames' buffers, reused once the caller hands them back) and
//! [`DatagramReceiver`] (the receive loop built of those, for any [`DatagramSource`]).
//! [`MemoryTransport`] is a real in-memory transport pair for testing the layers above.
//!
//! It knows the 8-byte header (re-exported as [`header`]) but nothing of CBOR, sequence
//! matching, timeouts or retries: those belong to the client.
//!
//! # Concurrency
//! Every method takes `&self`, so a transport can be shared (`Arc<T>`) between a task that
//! sends and a task that receives: several requests can be in flight while one reader
//! collects the replies. Concurrent calls to [`Transport::receive`] are serialized by the
//! transport (each whole frame goes to exactly one caller); concurrent sends are allowed
//! and each frame is sent as a unit of datagrams.
//!
//! # Buffers
//! [`Transport::receive`] hands over each frame as a `Vec<u8>`, and
//! [`Transport::recycle`] takes it back once the caller is done: datagram transports keep
//! those buffers in a [`FramePool`] and copy later frames out of their receive buffer
//! into them. A caller that hands every reply back, as `smp-client` does, receives
//! without allocating: an image upload over UDP allocates once per chunk, its outgoing
//! frame, where it allocates twice without recycling (`smp-client`'s allocation test).
//!
//! The `bytes` crate (`BytesMut` split into frozen `Bytes`, as tokio-util's codecs do)
//! does not do better here. It pays when frames are cloned, sliced or cut out of a byte
//! stream without copying; an SMP datagram is one frame, and a reply is decoded, then
//! dropped. A receive buffer that never truncates a datagram is 64 KiB; `BytesMut` gets
//! it back only when no earlier frame is alive, and otherwise allocates a new 64 KiB
//! buffer per reply (a client with requests in flight may still hold one), while copying
//! each frame into new `Bytes` allocates once per reply. The `Transport` API would change
//! to `Bytes` for every transport and caller, for no fewer allocations.
#![forbid(unsafe_code)]

mod datagram;
mod duration;
mod error;
mod memory;
mod pool;
mod reassembly;

use std::future::Future;
use std::time::Duration;

pub use datagram::{DatagramReceiver, DatagramSource};
pub use duration::HumanDuration;
pub use error::TransportError;
pub use memory::MemoryTransport;
pub use pool::FramePool;
pub use reassembly::{Reassembler, split_frame};
/// The SMP header codec this layer frames with.
pub use smp_header as header;

/// A bidirectional carrier of whole SMP frames (header and CBOR payload).
///
/// Implementations send a frame as one or more datagrams of at most
/// [`max_unencoded_size`](Transport::max_unencoded_size) bytes and hand back whole frames
/// from [`receive`](Transport::receive). See the [crate docs](crate#concurrency) for the
/// concurrency contract.
pub trait Transport: Send + Sync {
    /// Sends one whole SMP frame.
    fn send(&self, frame: &[u8]) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Waits for and returns one whole SMP frame.
    ///
    /// This future is cancel-safe: dropping it never loses part of a frame that
    /// another call will later complete. It has no timeout of its own; callers bound it.
    fn receive(&self) -> impl Future<Output = Result<Vec<u8>, TransportError>> + Send;

    /// Hands back a frame that [`receive`](Transport::receive) returned, once the caller
    /// is done with it, so that the transport may receive a later frame into the same
    /// buffer instead of allocating one. Optional for both sides: the default drops it.
    fn recycle(&self, frame: Vec<u8>) {
        drop(frame);
    }

    /// Sends `frame`, then receives the next whole frame, whatever it answers.
    ///
    /// This mirrors the reference transport. A client with several requests in flight
    /// sends and receives separately and matches replies itself.
    fn send_and_receive(
        &self,
        frame: &[u8],
    ) -> impl Future<Output = Result<Vec<u8>, TransportError>> + Send {
        async move {
            self.send(frame).await?;
            self.receive().await
        }
    }

    /// Closes the transport: later sends and receives fail with [`TransportError::Closed`],
    /// and receives waiting now return that error.
    fn disconnect(&self) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// The maximum transmission unit of the link, in bytes.
    fn mtu(&self) -> usize;

    /// The largest datagram payload this transport sends without splitting a frame.
    fn max_unencoded_size(&self) -> usize;

    /// Tells the transport the size of the device's SMP buffer (its MCUmgr `buf_size`),
    /// once the client has read it, and returns the largest frame to send it.
    ///
    /// The default is the smaller of [`max_unencoded_size`](Transport::max_unencoded_size)
    /// and `buf_size`: the buffer holds the frame and nothing else. A transport whose
    /// framing shares the device's buffer with the frame (serial console framing keeps
    /// its length field and CRC there) returns less; one whose limit before this was a
    /// guess (a serial line's size from line buffers) adopts what the device says, and
    /// receives frames up to it.
    fn set_device_buffer(&self, buf_size: usize) -> usize {
        self.max_unencoded_size().min(buf_size)
    }

    /// Whether the device finds the start of the next frame by itself after a damaged or
    /// partial one: true for datagrams and for delimited, checked framings (serial
    /// console lines, COBS), the default.
    ///
    /// A framing that only a length field delimits (serial raw framing) cannot: when a
    /// byte of a request is lost, the device takes the first bytes of whatever comes next
    /// as the missing tail, and the request sent again is lost with the damaged one. A
    /// client must then not send a request again before the device has given up the
    /// partial frame (Zephyr's and MCUboot's input timeouts): `smp-client` re-sends only
    /// after the full timeout on such a link, with no early re-sends and no probes.
    fn resynchronises(&self) -> bool {
        true
    }

    /// The client found a request or its reply lost: an attempt got no reply in time, or
    /// the device answered a later request first. A transport that can send more gently
    /// may start now (serial console framing paces its lines from the first loss on, when
    /// its pacing is automatic). The default does nothing.
    fn note_loss(&self) {}
}

/// A transport that is opened by connecting to a target (an address, a device path).
pub trait Connect: Transport + Sized {
    /// What to connect to, with the transport's settings.
    type Target: Send;

    /// Connects to `target`, giving up with [`TransportError::ConnectTimeout`] after `timeout`.
    fn connect(
        target: Self::Target,
        timeout: Duration,
    ) -> impl Future<Output = Result<Self, TransportError>> + Send;
}
