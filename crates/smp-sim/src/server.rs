//! The network side: a UDP socket, Zephyr's buffer pool, one work queue, and the
//! faults between them and the client.
//!
//! ```text
//! socket ─recv─▶ [request faults, latency] ─▶ buffer pool ─▶ work queue (Device)
//!    ▲                                       (full: drop)         │
//!    └──────send── [reply faults, latency] ◀── replies ◀──────────┘
//! ```

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, trace, warn};

use crate::config::Faults;
use crate::device::Device;
use crate::dispatch;
use crate::reply::mgmt;
use crate::request::Ctx;
use crate::rng::Rng;

/// Largest datagram the socket reads before cutting to the MTU.
const RECEIVE_BUFFER: usize = 65_536;
/// How long a reply held back for reordering waits for a later one.
const REORDER_HOLD: Duration = Duration::from_millis(50);

/// State shared by the tasks of one device.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) device: Mutex<Device>,
    pub(crate) faults: Mutex<FaultState>,
    pub(crate) pool: Pool,
    pub(crate) counters: Counters,
    mtu: usize,
    latency: Duration,
    /// Boot time after a reset.
    boot: Duration,
}

impl Shared {
    pub(crate) fn new(device: Device) -> Self {
        let config = &device.config;
        Self {
            faults: Mutex::new(FaultState::new(config.faults)),
            pool: Pool::new(config.buf_count),
            counters: Counters::default(),
            mtu: config.mtu,
            latency: config.delays.one_way_latency,
            boot: config.delays.boot,
            device: Mutex::new(device),
        }
    }

    /// The device, even if a panicking thread poisoned its lock (the simulator's
    /// own tests may panic while holding it).
    pub(crate) fn device(&self) -> MutexGuard<'_, Device> {
        self.device.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn faults(&self) -> MutexGuard<'_, FaultState> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Faults in effect and the generator that draws them.
#[derive(Debug)]
pub(crate) struct FaultState {
    pub(crate) faults: Faults,
    rng: Rng,
    received: u64,
    pub(crate) silent_until: Option<Instant>,
}

impl FaultState {
    fn new(faults: Faults) -> Self {
        Self {
            rng: Rng::new(faults.seed),
            faults,
            received: 0,
            silent_until: None,
        }
    }

    pub(crate) fn set(&mut self, faults: Faults) {
        *self = Self {
            silent_until: self.silent_until,
            ..Self::new(faults)
        };
    }
}

/// Zephyr's SMP buffer pool: requests and replies take from the same buffers.
#[derive(Debug)]
pub(crate) struct Pool {
    free: AtomicUsize,
}

impl Pool {
    fn new(count: usize) -> Self {
        Self {
            free: AtomicUsize::new(count),
        }
    }

    /// Takes a buffer of `shared`'s pool, if one is free.
    fn take(shared: &Arc<Shared>) -> Option<Buffer> {
        shared
            .pool
            .free
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .ok()
            .map(|_| Buffer(Arc::clone(shared)))
    }
}

/// A buffer taken from the pool, given back when dropped.
#[derive(Debug)]
struct Buffer(Arc<Shared>);

impl Drop for Buffer {
    fn drop(&mut self) {
        self.0.pool.free.fetch_add(1, Ordering::AcqRel);
    }
}

/// What happened to the traffic so far.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) received: AtomicU64,
    pub(crate) dropped_by_fault: AtomicU64,
    pub(crate) dropped_no_buffer: AtomicU64,
    pub(crate) processed: AtomicU64,
    pub(crate) replies_sent: AtomicU64,
    pub(crate) replies_dropped: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A datagram waiting in a buffer for the work queue.
struct Job {
    datagram: Vec<u8>,
    peer: SocketAddr,
    _buffer: Buffer,
}

/// Starts the device's tasks on the current runtime.
pub(crate) fn spawn(socket: UdpSocket, shared: Arc<Shared>) -> Vec<tokio::task::JoinHandle<()>> {
    let socket = Arc::new(socket);
    let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
    let (replies_tx, replies_rx) = mpsc::unbounded_channel();
    let (outbound_tx, outbound_rx) = mpsc::unbounded_channel();
    let (inbound_tx, inbound_rx) = mpsc::unbounded_channel();
    vec![
        tokio::spawn(receive(
            Arc::clone(&socket),
            Arc::clone(&shared),
            inbound_tx,
            jobs_tx.clone(),
        )),
        tokio::spawn(delay_line(inbound_rx, {
            let shared = Arc::clone(&shared);
            move |(datagram, peer)| admit(&shared, &jobs_tx, datagram, peer)
        })),
        tokio::spawn(work(
            Arc::clone(&shared),
            Arc::clone(&socket),
            jobs_rx,
            replies_tx,
        )),
        tokio::spawn(reply_faults(
            Arc::clone(&shared),
            Arc::clone(&socket),
            replies_rx,
            outbound_tx,
        )),
        tokio::spawn(delay_line(
            outbound_rx,
            move |(reply, peer): (Vec<u8>, SocketAddr)| {
                send_now(&socket, &shared, &reply, peer);
            },
        )),
    ]
}

type Datagram = (Vec<u8>, SocketAddr);

/// Reads datagrams, applies request faults and latency, and hands them on.
async fn receive(
    socket: Arc<UdpSocket>,
    shared: Arc<Shared>,
    delayed: mpsc::UnboundedSender<(Instant, Datagram)>,
    jobs: mpsc::UnboundedSender<Job>,
) {
    let mut buf = vec![0u8; RECEIVE_BUFFER];
    loop {
        let (len, peer) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(e) => {
                // ICMP errors for earlier replies surface here on some systems.
                debug!(%e, "receive error");
                continue;
            }
        };
        bump(&shared.counters.received);
        if len > shared.mtu {
            debug!(len, mtu = shared.mtu, "datagram longer than the MTU: cut");
        }
        let datagram = buf[..len.min(shared.mtu)].to_vec();
        let copies = {
            let mut f = shared.faults();
            f.received += 1;
            let now = Instant::now();
            if let Some(silence) = f.faults.silence {
                if f.received == silence.after_requests + 1 {
                    debug!(duration = ?silence.duration, "fault: device goes silent");
                    f.silent_until = Some(now + silence.duration);
                }
            }
            if f.silent_until.is_some_and(|until| now < until) {
                0
            } else {
                let (drop, dup) = (f.faults.drop_requests, f.faults.duplicate_requests);
                if f.rng.chance(drop) {
                    0
                } else if f.rng.chance(dup) {
                    2
                } else {
                    1
                }
            }
        };
        if copies == 0 {
            trace!(len, %peer, "fault: request dropped");
            bump(&shared.counters.dropped_by_fault);
            continue;
        }
        for _ in 0..copies {
            if shared.latency.is_zero() {
                admit(&shared, &jobs, datagram.clone(), peer);
            } else {
                let _ = delayed.send((Instant::now() + shared.latency, (datagram.clone(), peer)));
            }
        }
    }
}

/// Puts a datagram into a free buffer for the work queue, or drops it when the pool
/// is empty (Zephyr's behaviour: silently).
fn admit(
    shared: &Arc<Shared>,
    jobs: &mpsc::UnboundedSender<Job>,
    datagram: Vec<u8>,
    peer: SocketAddr,
) {
    match Pool::take(shared) {
        Some(buffer) => {
            let _ = jobs.send(Job {
                datagram,
                peer,
                _buffer: buffer,
            });
        }
        None => {
            debug!(len = datagram.len(), %peer, "no free buffer: datagram dropped");
            bump(&shared.counters.dropped_no_buffer);
        }
    }
}

/// The single work queue: one datagram at a time, in arrival order.
async fn work(
    shared: Arc<Shared>,
    socket: Arc<UdpSocket>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    replies: mpsc::UnboundedSender<Datagram>,
) {
    while let Some(job) = jobs.recv().await {
        // Zephyr takes the reply's buffer before running the request and keeps it
        // until the reply is sent: a long erase holds two buffers.
        let reply_buffer = Pool::take(&shared);
        let refuse = {
            let mut f = shared.faults();
            let (enomem, ebusy) = (f.faults.enomem, f.faults.ebusy);
            if reply_buffer.is_none() || f.rng.chance(enomem) {
                Some(mgmt::ENOMEM)
            } else if f.rng.chance(ebusy) {
                Some(mgmt::EBUSY)
            } else {
                None
            }
        };
        let mut ctx = Ctx::default();
        let answers =
            dispatch::process_datagram(&mut shared.device(), &job.datagram, refuse, &mut ctx);
        bump(&shared.counters.processed);
        if !ctx.busy.is_zero() {
            tokio::time::sleep(ctx.busy).await;
        }
        // Without reply faults or latency, the work queue sends its replies itself, as
        // Zephyr's does; otherwise they go through the fault stage.
        let direct = shared.latency.is_zero() && !shared.faults().faults.touches_replies();
        for answer in answers {
            if direct {
                send_now(&socket, &shared, &answer, job.peer);
            } else {
                let _ = replies.send((answer, job.peer));
            }
        }
        drop(reply_buffer);
        drop(job);
        if ctx.reset_after_reply {
            reboot(&shared);
        }
    }
}

/// Applies reply faults, then passes replies to the outbound latency line (or sends
/// them at once without latency).
async fn reply_faults(
    shared: Arc<Shared>,
    socket: Arc<UdpSocket>,
    mut replies: mpsc::UnboundedReceiver<Datagram>,
    outbound: mpsc::UnboundedSender<(Instant, Datagram)>,
) {
    let out = |reply: Datagram| {
        if shared.latency.is_zero() {
            send_now(&socket, &shared, &reply.0, reply.1);
        } else {
            let _ = outbound.send((Instant::now() + shared.latency, reply));
        }
    };
    let mut held: Option<Datagram> = None;
    loop {
        let next = if held.is_some() {
            match tokio::time::timeout(REORDER_HOLD, replies.recv()).await {
                Ok(next) => next,
                Err(_) => {
                    if let Some(late) = held.take() {
                        out(late);
                    }
                    continue;
                }
            }
        } else {
            replies.recv().await
        };
        let Some((mut reply, peer)) = next else {
            return;
        };
        let (drop, duplicate, reorder, delay) = {
            let mut f = shared.faults();
            let faults = f.faults;
            if f.rng.chance(faults.corrupt_replies) && !reply.is_empty() {
                let bit = f.rng.below(reply.len() * 8);
                reply[bit / 8] ^= 1 << (bit % 8);
                trace!(bit, "fault: reply corrupted");
            }
            (
                f.rng.chance(faults.drop_replies),
                f.rng.chance(faults.duplicate_replies),
                f.rng.chance(faults.reorder_replies),
                f.rng.chance(faults.delay_replies).then_some(faults.delay),
            )
        };
        if drop {
            trace!("fault: reply dropped");
            bump(&shared.counters.replies_dropped);
            continue;
        }
        let copies = if duplicate { 2 } else { 1 };
        if let Some(delay) = delay {
            trace!(?delay, "fault: reply delayed");
            let (shared, socket) = (Arc::clone(&shared), Arc::clone(&socket));
            tokio::spawn(async move {
                tokio::time::sleep(delay + shared.latency).await;
                for _ in 0..copies {
                    send_now(&socket, &shared, &reply, peer);
                }
            });
            continue;
        }
        if reorder && held.is_none() {
            trace!("fault: reply held back");
            held = Some((reply, peer));
            continue;
        }
        for _ in 0..copies {
            out((reply.clone(), peer));
        }
        if let Some(late) = held.take() {
            out(late);
        }
    }
}

/// Delivers items after their due time, in order (latency is the same for all, so
/// the queue stays sorted).
async fn delay_line<T>(mut rx: mpsc::UnboundedReceiver<(Instant, T)>, mut deliver: impl FnMut(T)) {
    let mut queue = VecDeque::new();
    loop {
        let due = queue.front().map(|(due, _)| *due);
        tokio::select! {
            item = rx.recv() => match item {
                Some(item) => queue.push_back(item),
                None if queue.is_empty() => return,
                None => {}
            },
            () = sleep_until_some(due) => {
                if let Some((_, item)) = queue.pop_front() {
                    deliver(item);
                }
            }
        }
    }
}

async fn sleep_until_some(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

fn send_now(socket: &UdpSocket, shared: &Shared, reply: &[u8], peer: SocketAddr) {
    match socket.try_send_to(reply, peer) {
        Ok(_) => bump(&shared.counters.replies_sent),
        Err(e) => {
            warn!(%e, %peer, len = reply.len(), "reply not sent");
            bump(&shared.counters.replies_dropped);
        }
    }
}

/// The device reboots: its state is what a reboot leaves, and it receives nothing for
/// its boot time.
pub(crate) fn reboot(shared: &Shared) {
    shared.device().reboot();
    let boot = shared.boot;
    if !boot.is_zero() {
        shared.faults().silent_until = Some(tokio::time::Instant::now() + boot);
    }
}
