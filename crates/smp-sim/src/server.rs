//! The network side: Zephyr's buffer pool, one work queue, the faults between them and
//! the client, and the UDP socket. The serial port (`serial_port`) feeds the same work queue
//! through [`arrived`].
//!
//! ```text
//! socket ─recv─▶ [request faults, latency] ─▶ buffer pool ─▶ work queue (Device)
//!  (or serial)                               (full: drop)         │
//!    ▲                                                            │
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
    /// Reboots so far: a serial port forgets the lines it was receiving at each.
    pub(crate) boots: AtomicU64,
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
            boots: AtomicU64::new(0),
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
    /// True with probability `p`, from the fault generator.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.rng.chance(p)
    }

    /// A uniform index below `n`, from the fault generator.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        self.rng.below(n)
    }

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
    pub(crate) lines_received: AtomicU64,
    pub(crate) lines_overrun: AtomicU64,
    pub(crate) lines_too_long: AtomicU64,
    pub(crate) lines_dropped_by_fault: AtomicU64,
    pub(crate) lines_corrupted: AtomicU64,
    pub(crate) frames_damaged: AtomicU64,
    pub(crate) frames_too_large: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Where a request came from, and so where its replies go.
#[derive(Debug, Clone)]
pub(crate) enum ReplyTo {
    /// A UDP peer.
    Udp {
        socket: Arc<UdpSocket>,
        peer: SocketAddr,
    },
    /// A serial line: reply frames go to its writer, which frames them.
    Serial(mpsc::UnboundedSender<Vec<u8>>),
}

/// A request (a datagram, or a serial frame) waiting in a buffer for the work queue.
struct Job {
    datagram: Vec<u8>,
    reply_to: ReplyTo,
    _buffer: Buffer,
}

type Datagram = (Vec<u8>, ReplyTo);

/// The way into the work queue, past the request faults and latency.
#[derive(Debug, Clone)]
pub(crate) struct Inlet {
    jobs: mpsc::UnboundedSender<Job>,
    delayed: mpsc::UnboundedSender<(Instant, Datagram)>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("len", &self.datagram.len())
            .finish_non_exhaustive()
    }
}

/// Starts the device's work queue and reply stages on the current runtime; requests
/// come in through the returned [`Inlet`].
pub(crate) fn spawn_device(shared: &Arc<Shared>) -> (Vec<tokio::task::JoinHandle<()>>, Inlet) {
    let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
    let (replies_tx, replies_rx) = mpsc::unbounded_channel();
    let (outbound_tx, outbound_rx) = mpsc::unbounded_channel();
    let (inbound_tx, inbound_rx) = mpsc::unbounded_channel();
    let inlet = Inlet {
        jobs: jobs_tx.clone(),
        delayed: inbound_tx,
    };
    let tasks = vec![
        tokio::spawn(delay_line(inbound_rx, {
            let shared = Arc::clone(shared);
            move |(datagram, reply_to)| admit(&shared, &jobs_tx, datagram, reply_to)
        })),
        tokio::spawn(work(Arc::clone(shared), jobs_rx, replies_tx)),
        tokio::spawn(reply_faults(Arc::clone(shared), replies_rx, outbound_tx)),
        tokio::spawn(delay_line(outbound_rx, {
            let shared = Arc::clone(shared);
            move |(reply, to): Datagram| send_now(&shared, reply, &to)
        })),
    ];
    (tasks, inlet)
}

/// Starts serving UDP on `socket`.
pub(crate) fn spawn_udp(
    socket: UdpSocket,
    shared: Arc<Shared>,
    inlet: Inlet,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(receive(Arc::new(socket), shared, inlet))
}

/// Reads datagrams and hands them on.
async fn receive(socket: Arc<UdpSocket>, shared: Arc<Shared>, inlet: Inlet) {
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
        if len > shared.mtu {
            debug!(len, mtu = shared.mtu, "datagram longer than the MTU: cut");
        }
        let datagram = buf[..len.min(shared.mtu)].to_vec();
        let reply_to = ReplyTo::Udp {
            socket: Arc::clone(&socket),
            peer,
        };
        arrived(&shared, &inlet, datagram, reply_to);
    }
}

/// A request arrived (a datagram, or a frame off the serial line): applies request
/// faults and latency, and hands it to the work queue.
pub(crate) fn arrived(shared: &Arc<Shared>, inlet: &Inlet, datagram: Vec<u8>, reply_to: ReplyTo) {
    bump(&shared.counters.received);
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
        trace!(len = datagram.len(), "fault: request dropped");
        bump(&shared.counters.dropped_by_fault);
        return;
    }
    for _ in 0..copies {
        if shared.latency.is_zero() {
            admit(shared, &inlet.jobs, datagram.clone(), reply_to.clone());
        } else {
            let _ = inlet.delayed.send((
                Instant::now() + shared.latency,
                (datagram.clone(), reply_to.clone()),
            ));
        }
    }
}

/// Puts a datagram into a free buffer for the work queue, or drops it when the pool
/// is empty (Zephyr's behaviour: silently).
fn admit(
    shared: &Arc<Shared>,
    jobs: &mpsc::UnboundedSender<Job>,
    datagram: Vec<u8>,
    reply_to: ReplyTo,
) {
    match Pool::take(shared) {
        Some(buffer) => {
            let _ = jobs.send(Job {
                datagram,
                reply_to,
                _buffer: buffer,
            });
        }
        None => {
            debug!(len = datagram.len(), "no free buffer: request dropped");
            bump(&shared.counters.dropped_no_buffer);
        }
    }
}

/// The single work queue: one datagram at a time, in arrival order.
async fn work(
    shared: Arc<Shared>,
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
                send_now(&shared, answer, &job.reply_to);
            } else {
                let _ = replies.send((answer, job.reply_to.clone()));
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
    mut replies: mpsc::UnboundedReceiver<Datagram>,
    outbound: mpsc::UnboundedSender<(Instant, Datagram)>,
) {
    let out = |reply: Datagram| {
        if shared.latency.is_zero() {
            send_now(&shared, reply.0, &reply.1);
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
        let Some((mut reply, to)) = next else {
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
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                tokio::time::sleep(delay + shared.latency).await;
                for _ in 0..copies {
                    send_now(&shared, reply.clone(), &to);
                }
            });
            continue;
        }
        if reorder && held.is_none() {
            trace!("fault: reply held back");
            held = Some((reply, to));
            continue;
        }
        for _ in 0..copies {
            out((reply.clone(), to.clone()));
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

fn send_now(shared: &Shared, reply: Vec<u8>, to: &ReplyTo) {
    match to {
        ReplyTo::Udp { socket, peer } => match socket.try_send_to(&reply, *peer) {
            Ok(_) => bump(&shared.counters.replies_sent),
            Err(e) => {
                warn!(%e, %peer, len = reply.len(), "reply not sent");
                bump(&shared.counters.replies_dropped);
            }
        },
        // Counted as sent once on its way to the line; the line's faults act later.
        ReplyTo::Serial(line) => match line.send(reply) {
            Ok(()) => bump(&shared.counters.replies_sent),
            Err(_) => {
                debug!("reply not sent: the serial connection is gone");
                bump(&shared.counters.replies_dropped);
            }
        },
    }
}

/// The device reboots: its state is what a reboot leaves, and it receives nothing for
/// its boot time.
pub(crate) fn reboot(shared: &Shared) {
    shared.device().reboot();
    shared.boots.fetch_add(1, Ordering::AcqRel);
    let boot = shared.boot;
    if !boot.is_zero() {
        shared.faults().silent_until = Some(tokio::time::Instant::now() + boot);
    }
}
