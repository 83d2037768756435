//! An in-memory datagram link between two transports.

use tokio::sync::mpsc;

use crate::reassembly::{MIN_DATAGRAM, split_frame};
use crate::{DatagramReceiver, DatagramSource, Transport, TransportError};

/// Received frames' buffers kept for reuse: a few more than the requests a client keeps
/// in flight.
const RECYCLED_FRAMES: usize = 16;

/// One end of an in-memory link, for tests of the layers above the transport.
///
/// Frames are split into datagrams of at most `max_datagram` bytes and reassembled at
/// the other end exactly as a datagram transport does; datagrams are never lost or
/// reordered. Either end can act as the client or as a device.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), smp_transport::TransportError> {
/// use smp_transport::{MemoryTransport, Transport};
///
/// let (client, device) = MemoryTransport::pair(1472)?;
/// client.send(&[0x0a, 0, 0, 1, 0, 0, 0, 0, 0xa0]).await?;
/// assert_eq!(device.receive().await?, [0x0a, 0, 0, 1, 0, 0, 0, 0, 0xa0]);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MemoryTransport {
    max_datagram: usize,
    outbox: mpsc::UnboundedSender<Vec<u8>>,
    receiver: DatagramReceiver<Datagrams>,
}

/// The other end's datagrams, each kept until the next one arrives.
#[derive(Debug)]
struct Datagrams {
    channel: mpsc::UnboundedReceiver<Vec<u8>>,
    current: Vec<u8>,
}

impl DatagramSource for Datagrams {
    // Cancel-safe: `recv` takes a datagram only when it completes.
    async fn next_datagram(&mut self) -> Result<&[u8], TransportError> {
        self.current = self.channel.recv().await.ok_or(TransportError::Closed)?;
        Ok(&self.current)
    }
}

impl MemoryTransport {
    /// Two connected ends whose datagrams carry at most `max_datagram` bytes.
    pub fn pair(max_datagram: usize) -> Result<(Self, Self), TransportError> {
        if max_datagram < MIN_DATAGRAM {
            return Err(TransportError::MtuTooSmall {
                mtu: max_datagram,
                payload: max_datagram,
                needed: MIN_DATAGRAM,
            });
        }
        let (a_tx, a_rx) = mpsc::unbounded_channel();
        let (b_tx, b_rx) = mpsc::unbounded_channel();
        Ok((
            Self::end(max_datagram, a_tx, b_rx),
            Self::end(max_datagram, b_tx, a_rx),
        ))
    }

    fn end(
        max_datagram: usize,
        outbox: mpsc::UnboundedSender<Vec<u8>>,
        channel: mpsc::UnboundedReceiver<Vec<u8>>,
    ) -> Self {
        let datagrams = Datagrams {
            channel,
            current: Vec::new(),
        };
        Self {
            max_datagram,
            outbox,
            receiver: DatagramReceiver::new(datagrams, RECYCLED_FRAMES),
        }
    }

    /// Sends one raw datagram to the other end, bypassing framing: for tests that feed
    /// a peer truncated, oversized or garbled input.
    pub fn send_datagram(&self, datagram: &[u8]) -> Result<(), TransportError> {
        if self.receiver.is_closed() {
            return Err(TransportError::Closed);
        }
        self.outbox
            .send(datagram.to_vec())
            .map_err(|_| TransportError::Closed)
    }
}

impl Transport for MemoryTransport {
    async fn send(&self, frame: &[u8]) -> Result<(), TransportError> {
        for datagram in split_frame(frame, self.max_datagram) {
            self.send_datagram(datagram)?;
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
        Ok(())
    }

    fn mtu(&self) -> usize {
        self.max_datagram
    }

    fn max_unencoded_size(&self) -> usize {
        self.max_datagram
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use smp_header::{Header, Op, group};

    fn frame(payload: usize, sequence: u8) -> Vec<u8> {
        let header = Header::new(Op::Write, group::OS, 0, payload as u16).with_sequence(sequence);
        let mut frame = header.encode().to_vec();
        frame.resize(frame.len() + payload, 0xa5);
        frame
    }

    #[tokio::test]
    async fn frames_cross_in_both_directions() {
        let (a, b) = MemoryTransport::pair(64).unwrap();
        let big = frame(200, 1);
        a.send(&big).await.unwrap();
        assert_eq!(b.receive().await.unwrap(), big);
        let request = frame(3, 2);
        let reply = b.send_and_receive(&request);
        let (reply, got) = tokio::join!(reply, async {
            let got = a.receive().await.unwrap();
            a.send(&frame(5, 3)).await.unwrap();
            got
        });
        assert_eq!(got, frame(3, 2));
        assert_eq!(reply.unwrap(), frame(5, 3));
        assert_eq!(a.mtu(), 64);
        assert_eq!(a.max_unencoded_size(), 64);
    }

    #[tokio::test]
    async fn send_while_another_task_receives() {
        let (a, b) = MemoryTransport::pair(1472).unwrap();
        let a = Arc::new(a);
        let reader = tokio::spawn({
            let a = a.clone();
            async move { (a.receive().await.unwrap(), a.receive().await.unwrap()) }
        });
        a.send(&frame(1, 9)).await.unwrap();
        assert_eq!(b.receive().await.unwrap(), frame(1, 9));
        b.send(&frame(2, 10)).await.unwrap();
        b.send(&frame(3, 11)).await.unwrap();
        assert_eq!(reader.await.unwrap(), (frame(2, 10), frame(3, 11)));
    }

    #[tokio::test]
    async fn disconnect_wakes_a_waiting_receiver() {
        let (a, _b) = MemoryTransport::pair(1472).unwrap();
        let a = Arc::new(a);
        let waiting = tokio::spawn({
            let a = a.clone();
            async move { a.receive().await }
        });
        tokio::task::yield_now().await;
        a.disconnect().await.unwrap();
        assert!(matches!(
            waiting.await.unwrap(),
            Err(TransportError::Closed)
        ));
        assert!(matches!(
            a.send(&frame(0, 0)).await,
            Err(TransportError::Closed)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_receive_keeps_its_part_of_a_frame() {
        let (a, b) = MemoryTransport::pair(1472).unwrap();
        let whole = frame(10, 4);
        a.send_datagram(&whole[..12]).unwrap();
        // Dropped after taking the first datagram, waiting for the second.
        let waited = tokio::time::timeout(Duration::from_secs(1), b.receive()).await;
        assert!(waited.is_err(), "{waited:?}");
        a.send_datagram(&whole[12..]).unwrap();
        assert_eq!(b.receive().await.unwrap(), whole);
    }

    #[tokio::test]
    async fn peer_gone_is_closed() {
        let (a, b) = MemoryTransport::pair(1472).unwrap();
        drop(b);
        assert!(matches!(a.receive().await, Err(TransportError::Closed)));
        assert!(matches!(
            a.send(&frame(0, 0)).await,
            Err(TransportError::Closed)
        ));
    }

    #[tokio::test]
    async fn garbage_is_a_typed_error_then_frames_flow_again() {
        let (a, b) = MemoryTransport::pair(1472).unwrap();
        a.send_datagram(&[1, 2, 3]).unwrap();
        let mut long = frame(4, 1);
        long.push(0);
        a.send_datagram(&long).unwrap();
        a.send(&frame(4, 2)).await.unwrap();
        assert!(matches!(b.receive().await, Err(TransportError::Header(_))));
        assert!(matches!(
            b.receive().await,
            Err(TransportError::ExcessData { .. })
        ));
        assert_eq!(b.receive().await.unwrap(), frame(4, 2));
    }

    #[test]
    fn mtu_too_small_for_a_header() {
        assert!(matches!(
            MemoryTransport::pair(7),
            Err(TransportError::MtuTooSmall { needed: 8, .. })
        ));
    }
}
