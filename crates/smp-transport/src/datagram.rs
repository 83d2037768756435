//! The receive side every datagram transport shares: datagrams in, whole frames out.

use std::future::Future;

use tokio::sync::{Mutex, watch};

use crate::{FramePool, Reassembler, TransportError};

/// Where a datagram transport's datagrams come from: a socket and the buffer it receives
/// into, a channel.
pub trait DatagramSource: Send {
    /// Waits for the next datagram and returns it; an error ends the
    /// [`receive`](DatagramReceiver::receive) that asked for it.
    ///
    /// This future must be cancel-safe: dropped, it loses no datagram (tokio's
    /// `UdpSocket::recv` and `mpsc::UnboundedReceiver::recv` do not).
    fn next_datagram(&mut self) -> impl Future<Output = Result<&[u8], TransportError>> + Send;
}

/// The receiving half of a datagram transport, whatever carries its datagrams: whole
/// frames out of datagrams ([`Reassembler`]) into reused buffers ([`FramePool`]), one
/// receiver at a time, and the transport's closed state.
///
/// A transport keeps one of these beside its sending half and forwards
/// [`Transport::receive`](crate::Transport::receive) to [`receive`](Self::receive);
/// [`recycle`](Self::recycle), [`close`](Self::close) and [`is_closed`](Self::is_closed)
/// serve `recycle`, `disconnect` and the checks before sending.
///
/// A transport of a byte stream (serial) frames differently and does not use it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), smp_transport::TransportError> {
/// use smp_transport::{DatagramReceiver, DatagramSource, TransportError};
/// use tokio::sync::mpsc;
///
/// /// Datagrams from a channel, each kept until the next arrives.
/// struct Channel {
///     datagrams: mpsc::UnboundedReceiver<Vec<u8>>,
///     current: Vec<u8>,
/// }
///
/// impl DatagramSource for Channel {
///     async fn next_datagram(&mut self) -> Result<&[u8], TransportError> {
///         self.current = self.datagrams.recv().await.ok_or(TransportError::Closed)?;
///         Ok(&self.current)
///     }
/// }
///
/// let (tx, datagrams) = mpsc::unbounded_channel();
/// let receiver = DatagramReceiver::new(Channel { datagrams, current: Vec::new() }, 4);
/// tx.send(vec![0x0b, 0, 0, 1, 0, 0, 0, 0]).unwrap(); // a header announcing 1 byte
/// tx.send(vec![0xa0]).unwrap(); // and that byte
/// let frame = receiver.receive().await?;
/// assert_eq!(frame, [0x0b, 0, 0, 1, 0, 0, 0, 0, 0xa0]);
/// receiver.recycle(frame);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DatagramReceiver<S> {
    inbox: Mutex<Inbox<S>>,
    /// Buffers of received frames handed back by [`recycle`](Self::recycle).
    pool: FramePool,
    closed: watch::Sender<bool>,
}

#[derive(Debug)]
struct Inbox<S> {
    source: S,
    reassembler: Reassembler,
}

impl<S: DatagramSource> DatagramReceiver<S> {
    /// A receiver of the datagrams of `source` that keeps up to `recycled_frames`
    /// buffers of frames handed back ([`FramePool::new`]).
    pub fn new(source: S, recycled_frames: usize) -> Self {
        Self {
            inbox: Mutex::new(Inbox {
                source,
                reassembler: Reassembler::new(),
            }),
            pool: FramePool::new(recycled_frames),
            closed: watch::Sender::new(false),
        }
    }

    /// Waits for and returns one whole frame, built from the source's datagrams; or the
    /// first error that the source or the framing reports.
    ///
    /// Concurrent calls wait for each other: each frame goes to exactly one caller. A
    /// call waiting now, or made after [`close`](Self::close), fails with
    /// [`TransportError::Closed`].
    ///
    /// This future is cancel-safe, as [`Transport::receive`](crate::Transport::receive)
    /// must be, since [`DatagramSource::next_datagram`] is: the datagrams of a partial
    /// frame stay with the receiver for the next call.
    pub async fn receive(&self) -> Result<Vec<u8>, TransportError> {
        let mut closed = self.closed.subscribe();
        let mut inbox = self.inbox.lock().await;
        let Inbox {
            source,
            reassembler,
        } = &mut *inbox;
        loop {
            if *closed.borrow_and_update() {
                return Err(TransportError::Closed);
            }
            tokio::select! {
                datagram = source.next_datagram() => {
                    if let Some(frame) = reassembler.push_pooled(datagram?, &self.pool)? {
                        return Ok(frame);
                    }
                }
                _ = closed.changed() => {}
            }
        }
    }

    /// Keeps `frame`, which [`receive`](Self::receive) returned, to receive a later frame
    /// into its buffer ([`FramePool::give_back`]).
    pub fn recycle(&self, frame: Vec<u8>) {
        self.pool.give_back(frame);
    }

    /// Closes the receiver: calls to [`receive`](Self::receive) waiting now and made later
    /// fail with [`TransportError::Closed`].
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// True once [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }
}
