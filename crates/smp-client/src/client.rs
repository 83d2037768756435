//! The async client: drives the engine's state over a transport.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::Duration;

use smp_transport::header::{self, Header, Op, Version};
use smp_transport::{Transport, TransportError};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::RetryPolicy;
use crate::engine::{Closed, Pending, RegisterError, Reply, Ticket};
use crate::messages::os::{McumgrParamsRequest, McumgrParamsResponse};
use crate::rto::{Attempts, Kind, Phase, Sample, Timers};
use crate::{ClientError, ReplyError, Request};

/// Room for a typed request's frame (up to the frame limit): most requests are far
/// smaller; a larger one grows its buffer while it is encoded.
const TYPED_FRAME_CAPACITY: usize = 256;

/// Settings of a [`Client`]: the defaults, changed with the `with_*` methods.
///
/// ```
/// use std::time::Duration;
/// use smp_client::{ClientOptions, RetryPolicy};
///
/// let options = ClientOptions::default()
///     .with_retry(RetryPolicy::default().with_timeout(Duration::from_secs(1)).with_retries(5));
/// assert_eq!(options.retry.retries, 5);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientOptions {
    /// Timeouts, retries and backoff of every request.
    pub retry: RetryPolicy,
    /// SMP version of the requests (devices answer with the lower of theirs and this).
    pub version: Version,
    /// Read the device's MCUmgr parameters when the client starts, to size frames to its
    /// buffers and to know how many requests it can hold. A device that does not support
    /// them keeps the defaults; a device that does not answer fails [`Client::new`].
    pub read_params: bool,
    /// Requests that may wait for replies at once. `None`: the device's `buf_count - 1`
    /// (a Zephyr UDP server drops what does not fit its buffers), 1 until it is known.
    /// It also bounds how many chunks an upload keeps in flight; to pipeline less, use
    /// the upload's own `window` ([`ImageUploadOptions::window`](crate::ImageUploadOptions::window)).
    pub max_in_flight: Option<usize>,
}

crate::with_setters!(ClientOptions {
    /// Sets [`retry`](Self::retry).
    with_retry => retry: RetryPolicy,
    /// Sets [`version`](Self::version).
    with_version => version: Version,
    /// Sets [`read_params`](Self::read_params).
    with_read_params => read_params: bool,
    /// Sets [`max_in_flight`](Self::max_in_flight).
    with_max_in_flight => max_in_flight: Option<usize>,
});

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            version: Version::V2,
            read_params: true,
            max_in_flight: None,
        }
    }
}

/// An SMP client for one device over any [`Transport`].
///
/// Requests can be issued from many tasks at once (`&self`); replies are matched to
/// requests on sequence, group, command and op, and anything else that arrives is
/// dropped with a debug log. Dropping the client stops its reader task.
///
/// A request whose every attempt the network refuses (for UDP, an ICMP "port
/// unreachable": nothing listens there) before the device has ever answered fails with
/// [`TransportError::Unreachable`] at once, instead of waiting for each attempt to time
/// out; re-sends are paced by the retry policy's backoff. Once the device has answered,
/// a refusal means it is restarting (after a reset, say) and counts as a lost datagram.
///
/// ```no_run
/// # async fn demo() -> Result<(), smp_client::ClientError> {
/// use smp_client::{Client, ClientOptions};
/// use smp_client::messages::os::EchoRequest;
///
/// let client = Client::connect_udp("192.0.2.1:1337".parse()?, ClientOptions::default()).await?;
/// let reply = client.request(&EchoRequest { d: "hello".into() }).await?;
/// assert_eq!(reply.r, "hello");
/// # Ok(()) }
/// ```
pub struct Client<T: Transport + 'static> {
    shared: Arc<Shared<T>>,
    reader: JoinHandle<()>,
    /// How to open the link again once it closed, if the client knows.
    reopen: Option<Reopen<T>>,
}

impl<T: Transport + std::fmt::Debug + 'static> std::fmt::Debug for Client<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("shared", &self.shared)
            .field("reader", &self.reader)
            .field("reopens", &self.reopen.is_some())
            .finish()
    }
}

/// Opens the link to a device again: see [`Client::set_reopen`].
pub type Reopen<T> = Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = Result<T, TransportError>> + Send>>
        + Send
        + Sync,
>;

#[derive(Debug)]
struct Shared<T> {
    transport: T,
    pending: Mutex<Pending>,
    options: ClientOptions,
    frame_limit: AtomicUsize,
    buf_count: AtomicUsize,
    /// The device's parameters, once read.
    params: Mutex<Option<McumgrParamsResponse>>,
    in_flight: InFlight,
    /// The retransmission timers, learned per kind of request.
    timers: Mutex<Timers>,
    /// Woken by every reply that answers a request: the device is reachable.
    heard: Notify,
    /// Refusals: the network said nothing listens at the peer's address.
    refusals: Refusals,
}

/// What the client knows of refusals (an ICMP "port unreachable" for UDP): whether
/// anything ever answered, and a signal for the requests waiting when one comes.
///
/// A refusal before any reply at all means the address is wrong or the device's server
/// is not running: requests then give up once every attempt was refused, instead of
/// waiting for each to time out. Once the device has answered, a refusal means it is
/// restarting (after a reset, say): it counts as a lost datagram, retried as usual.
#[derive(Debug, Default)]
struct Refusals {
    /// Set by the first frame received from the device.
    answered_once: AtomicBool,
    /// Woken at every refusal.
    signal: Notify,
}

/// How many requests may wait for replies at once, and the permits to do so.
#[derive(Debug)]
struct InFlight {
    permits: Semaphore,
    limit: AtomicUsize,
}

impl InFlight {
    fn new(limit: usize) -> Self {
        Self {
            permits: Semaphore::new(limit),
            limit: AtomicUsize::new(limit),
        }
    }

    /// Changes the limit; permits held now are kept until released.
    fn set_limit(&self, limit: usize) {
        let old = self.limit.swap(limit, Ordering::Relaxed);
        if limit > old {
            self.permits.add_permits(limit - old);
        } else {
            self.permits.forget_permits(old - limit);
        }
    }
}

impl<T> Shared<T> {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        // The table stays consistent even if a holder panicked: every operation on it is
        // a single map update.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn timers(&self) -> MutexGuard<'_, Timers> {
        // Each operation on the timers is a single estimator update.
        self.timers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What else than its reply (or the end of the wait) ends a wait in
/// [`Client::wait_for`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Until {
    /// Nothing: no probes.
    Reply,
    /// A reply to a probe.
    Probed,
    /// A reply to a probe or to any other request.
    Heard,
}

/// How a wait for a reply ended.
enum Waited {
    /// The reply came.
    Reply(Reply),
    /// The network refused the attempt before the device ever answered (see
    /// [`Refusals`]).
    Refused,
    /// No reply within the wait.
    Expired,
    /// The device answered a probe sent after the request: the request or its reply was
    /// lost.
    Lost,
}

/// Forgets a registered request when its future ends or is dropped.
struct Registration<'a, T> {
    shared: &'a Shared<T>,
    ticket: Ticket,
}

impl<T> Drop for Registration<'_, T> {
    fn drop(&mut self) {
        self.shared.pending().cancel(&self.ticket);
    }
}

#[cfg(feature = "udp")]
impl Client<smp_udp::UdpTransport> {
    /// Connects over UDP (bounded by the retry policy's timeout) and starts the client.
    pub async fn connect_udp(
        target: smp_udp::UdpTarget,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        let transport = smp_udp::UdpTransport::connect(target, options.retry.timeout).await?;
        Self::new(transport, options).await
    }
}

#[cfg(feature = "serial")]
impl Client<smp_serial::SerialTransport> {
    /// Opens a serial port (a device path, a pseudo-terminal or `socket://HOST:PORT`, with
    /// the target's baud rate and framing; bounded by the retry policy's timeout) and
    /// starts the client. Reading the device's MCUmgr parameters sizes frames to its
    /// buffer, as over UDP.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), smp_client::ClientError> {
    /// use smp_client::{Client, ClientOptions};
    /// use smp_client::serial::SerialTarget;
    ///
    /// let target: SerialTarget = "/dev/ttyACM0".parse()?;
    /// let client = Client::connect_serial(target, ClientOptions::default()).await?;
    /// println!("{}", client.echo("hello").await?);
    /// # Ok(()) }
    /// ```
    pub async fn connect_serial(
        target: smp_serial::SerialTarget,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        let timeout = options.retry.timeout;
        let transport = smp_serial::SerialTransport::connect(target.clone(), timeout).await?;
        let mut client = Self::new(transport, options).await?;
        client.set_reopen(move || smp_serial::SerialTransport::connect(target.clone(), timeout));
        Ok(client)
    }
}

impl<T: Transport + 'static> Client<T> {
    /// Starts a client on a connected transport; reads the MCUmgr parameters if the
    /// options ask for it.
    pub async fn new(transport: T, options: ClientOptions) -> Result<Self, ClientError> {
        let client = Self::start(transport, options);
        if client.shared.options.read_params {
            client.read_params().await?;
        }
        Ok(client)
    }

    fn start(transport: T, options: ClientOptions) -> Self {
        let frame_limit = transport.max_unencoded_size().min(header::MAX_FRAME_SIZE);
        let options_limit = options.max_in_flight;
        let shared = Arc::new(Shared {
            transport,
            pending: Mutex::new(Pending::new(random_u8())),
            options,
            frame_limit: AtomicUsize::new(frame_limit),
            buf_count: AtomicUsize::new(0),
            params: Mutex::new(None),
            in_flight: InFlight::new(options_limit.unwrap_or(1).max(1)),
            timers: Mutex::new(Timers::default()),
            heard: Notify::new(),
            refusals: Refusals::default(),
        });
        let reader = tokio::spawn(read_replies(shared.clone()));
        Self {
            shared,
            reader,
            reopen: None,
        }
    }

    /// Reads MCUmgr parameters: narrows the frame limit to the device's buffer size and,
    /// unless the options fix it, allows `buf_count - 1` requests in flight. Returns them,
    /// or `None` when the device does not offer them.
    pub async fn read_params(&self) -> Result<Option<McumgrParamsResponse>, ClientError> {
        match self.request(&McumgrParamsRequest {}).await {
            Ok(params) => {
                let buf_size = usize::try_from(params.buf_size).unwrap_or(usize::MAX);
                let limit = self
                    .shared
                    .transport
                    .set_device_buffer(buf_size)
                    .min(header::MAX_FRAME_SIZE);
                self.shared.frame_limit.store(limit, Ordering::Relaxed);
                let buf_count = usize::try_from(params.buf_count).unwrap_or(usize::MAX);
                self.shared.buf_count.store(buf_count, Ordering::Relaxed);
                if self.shared.options.max_in_flight.is_none() {
                    // One buffer holds each request, one its reply (docs/protocol.md 5.3); the
                    // semaphore's own maximum bounds absurd reports.
                    let limit = buf_count
                        .saturating_sub(1)
                        .clamp(1, Semaphore::MAX_PERMITS.min(256));
                    self.shared.in_flight.set_limit(limit);
                }
                tracing::debug!(
                    params.buf_size,
                    params.buf_count,
                    frame_limit = limit,
                    "device parameters"
                );
                *self
                    .shared
                    .params
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(params);
                Ok(Some(params))
            }
            Err(ClientError::Device(err)) => {
                tracing::debug!(%err, "device offers no MCUmgr parameters; keeping defaults");
                Ok(None)
            }
            Err(other) => Err(other),
        }
    }

    /// The parameters [`read_params`](Self::read_params) last read.
    pub(crate) fn cached_params(&self) -> Option<McumgrParamsResponse> {
        *self
            .shared
            .params
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The largest frame (header and payload) this client sends: the smaller of the
    /// transport's datagram payload and the device's buffer size.
    pub fn frame_limit(&self) -> usize {
        self.shared.frame_limit.load(Ordering::Relaxed)
    }

    /// The device's `buf_count`, when it reported one.
    pub fn buf_count(&self) -> Option<usize> {
        match self.shared.buf_count.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }

    /// Requests that may wait for replies at once: [`ClientOptions::max_in_flight`] when
    /// set, else the device's `buf_count - 1` once its parameters are read, else 1.
    /// Pipelined uploads keep at most this many chunks in flight.
    pub fn max_in_flight(&self) -> usize {
        self.shared.in_flight.limit.load(Ordering::Relaxed)
    }

    /// Requests waiting for a reply right now.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.shared.pending().len()
    }

    /// The learned retransmission timeout of requests like `request` in `phase`.
    #[cfg(test)]
    pub(crate) fn learned_rto(&self, request: &Header, phase: Phase) -> Option<Duration> {
        let min = self.shared.options.retry.min_rto;
        self.shared.timers().rto(Kind::new(request, phase), min)
    }

    /// Lets the client open its link again once it has closed, with `reopen` (for
    /// example the same serial port, by its path). A USB CDC ACM port vanishes while the
    /// device re-enumerates after a reset and comes back under the same path; an
    /// emulator's serial socket closes when it restarts. [`Client::upgrade`] reopens the
    /// link this way while it waits for the device to come back.
    /// [`Client::connect_serial`] sets it.
    pub fn set_reopen<F, Fut>(&mut self, reopen: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, TransportError>> + Send + 'static,
    {
        self.reopen = Some(Arc::new(move || Box::pin(reopen())));
    }

    /// A client on the link opened again (see [`set_reopen`](Self::set_reopen)), with
    /// these options, its parameters not read (the device may still be starting); `None`
    /// when the client has no way to reopen it.
    pub(crate) async fn reopened(&self) -> Option<Result<Self, ClientError>> {
        let reopen = self.reopen.clone()?;
        let transport = match reopen().await {
            Ok(transport) => transport,
            Err(err) => return Some(Err(err.into())),
        };
        let options = ClientOptions {
            read_params: false,
            ..self.options().clone()
        };
        let mut client = Self::start(transport, options);
        client.reopen = Some(reopen);
        Some(Ok(client))
    }

    /// The client's settings.
    pub fn options(&self) -> &ClientOptions {
        &self.shared.options
    }

    /// The transport underneath.
    pub fn transport(&self) -> &T {
        &self.shared.transport
    }

    /// Echoes `text` (OS group, command 0) and returns it once the device has sent the
    /// same text back.
    ///
    /// Unlike `request(&EchoRequest { .. })`, the answer is checked: SMP has no checksum
    /// of its own, and an echo that comes back different is a damaged datagram, taken
    /// as lost and sent again within the retry policy ([`ClientError::Decode`] when every
    /// attempt came back different).
    pub async fn echo(&self, text: &str) -> Result<String, ClientError> {
        use crate::messages::os::EchoResponse;
        let text_request = EchoText(text);
        let capacity = header::SIZE + minicbor::len(&text_request);
        let frame = self.encode_frame(
            Op::Write,
            header::group::OS,
            header::command::os::ECHO,
            &text_request,
            capacity,
        )?;
        let policy = &self.shared.options.retry;
        self.request_checked(frame, policy.timeout, policy.retries, false, |body| {
            match minicbor::decode::<EchoResponse>(body) {
                Ok(reply) if reply.r == text => Ok(reply.r),
                Ok(reply) => Err(ReplyError::EchoMismatch {
                    sent: text.len(),
                    received: reply.r.len(),
                }),
                Err(err) => Err(err.into()),
            }
        })
        .await
    }

    /// Sends a typed request and returns the device's typed response.
    pub async fn request<R: Request>(&self, request: &R) -> Result<R::Response, ClientError> {
        self.request_with_timeout(request, self.shared.options.retry.timeout)
            .await
    }

    /// Like [`request`](Self::request), with a per-attempt timeout for this request only
    /// (an image upload's first chunk may wait seconds for a slot erase): the bound of
    /// its learned retransmission timer, as [`RetryPolicy::timeout`] is for the others.
    pub async fn request_with_timeout<R: Request>(
        &self,
        request: &R,
        timeout: Duration,
    ) -> Result<R::Response, ClientError> {
        let capacity = self.frame_limit().min(TYPED_FRAME_CAPACITY);
        let frame = self.encode_frame(R::OP, R::GROUP, R::COMMAND, request, capacity)?;
        let retries = self.shared.options.retry.retries;
        self.request_checked(frame, timeout, retries, R::RC_MAY_BE_RESULT, |body| {
            minicbor::decode(body).map_err(ReplyError::from)
        })
        .await
    }

    /// Sends a typed request once, waiting at most `timeout` for the reply, and never
    /// again: for a request that must not run twice even if its reply is lost (a reset
    /// that would reset the device a second time, after it booted a test image). No
    /// reply is [`ClientError::Timeout`] after one attempt; busy replies are still
    /// retried (the device did not run the request).
    pub async fn request_once<R: Request>(
        &self,
        request: &R,
        timeout: Duration,
    ) -> Result<R::Response, ClientError> {
        let capacity = self.frame_limit().min(TYPED_FRAME_CAPACITY);
        let frame = self.encode_frame(R::OP, R::GROUP, R::COMMAND, request, capacity)?;
        self.request_checked(frame, timeout, 0, R::RC_MAY_BE_RESULT, |body| {
            minicbor::decode(body).map_err(ReplyError::from)
        })
        .await
    }

    /// Sends an already encoded CBOR payload and returns the reply's payload after
    /// checking it for a device error. Retries on timeout (same frame, a new sequence
    /// number per attempt, see [`RetryPolicy`])
    /// and on busy replies (ENOMEM, EBUSY) as the retry policy says.
    pub async fn request_raw(
        &self,
        op: Op,
        group: u16,
        command: u8,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, ClientError> {
        let mut frame = Vec::with_capacity(header::SIZE + payload.len());
        frame.extend_from_slice(&[0; header::SIZE]);
        frame.extend_from_slice(payload);
        let frame = self.finish_frame(op, group, command, frame)?;
        let retries = self.shared.options.retry.retries;
        self.request_checked(frame, timeout, retries, false, |body| Ok(body.to_vec()))
            .await
    }

    /// [`request_raw`](Self::request_raw), with the [`Request::RC_MAY_BE_RESULT`] rule,
    /// returning what `parse` makes of a successful reply's payload.
    ///
    /// A reply that is neither a device error nor something `parse` accepts (a damaged
    /// datagram: SMP has no checksum of its own) counts as lost: the request goes again
    /// under a new sequence number, within the retry policy's `retries`, and only when
    /// every attempt was malformed is the error [`ClientError::Decode`].
    async fn request_checked<P>(
        &self,
        (template, mut frame): (Header, Vec<u8>),
        timeout: Duration,
        retries: u32,
        rc_may_be_result: bool,
        parse: impl Fn(&[u8]) -> Result<P, ReplyError>,
    ) -> Result<P, ClientError> {
        let (group, command) = (template.group, template.command);
        let policy = &self.shared.options.retry;
        let (mut busy_attempts, mut malformed) = (0, 0);
        loop {
            let (reply, sample) = self
                .exchange(
                    template,
                    &mut frame,
                    timeout,
                    retries,
                    Phase::Other,
                    &mut || {},
                )
                .await?;
            let reply = Recycled::new(&self.shared.transport, reply);
            let body = &reply[header::SIZE..];
            let verdict = smp_proto::reply_error(body, group, rc_may_be_result);
            if !matches!(&verdict, Ok(Some(err)) if err.is_back_pressure()) {
                self.learn(sample);
            }
            let problem = match verdict {
                Ok(None) => match parse(body) {
                    Ok(parsed) => return Ok(parsed),
                    Err(problem) => problem,
                },
                Ok(Some(err)) if err.is_back_pressure() && busy_attempts < policy.busy_retries => {
                    let pause = policy.backoff_after(busy_attempts);
                    tracing::debug!(%err, ?pause, "device busy; retrying");
                    busy_attempts += 1;
                    tokio::time::sleep(pause).await;
                    continue;
                }
                Ok(Some(err)) if err.is_back_pressure() => {
                    return Err(ClientError::Busy {
                        last: err,
                        attempts: busy_attempts + 1,
                    });
                }
                Ok(Some(err)) => return Err(err.into()),
                Err(err) => err.into(),
            };
            if malformed >= retries {
                return Err(ClientError::Decode {
                    group,
                    command,
                    source: problem,
                });
            }
            malformed += 1;
            tracing::debug!(%problem, group, command, "malformed reply, taken as lost; sending again");
        }
    }

    /// One request of an upload, its frame built by [`encode_frame`](Self::encode_frame).
    /// The whole reply frame comes back unchecked (it may be a device error, busy replies
    /// included, which are not retried) and goes back to the transport when dropped,
    /// with the round trip to [`learn`](Self::learn) from once the caller knows the reply
    /// was not a busy one. Timeouts re-send the same frame as for any request, and call
    /// `on_timeout` each time. Pipelined upload chunks use it: the upload handles busy
    /// replies itself, and narrows its window on timeouts; `phase` tells the first and
    /// last chunks, whose timers learn apart from the others'.
    pub(crate) async fn request_unchecked(
        &self,
        (template, frame): &mut (Header, Vec<u8>),
        timeout: Duration,
        phase: Phase,
        mut on_timeout: impl FnMut() + Send,
    ) -> Result<(Recycled<'_, T>, Option<Sample>), ClientError> {
        let (reply, sample) = self
            .exchange(
                *template,
                frame,
                timeout,
                self.shared.options.retry.retries,
                phase,
                &mut on_timeout,
            )
            .await?;
        Ok((Recycled::new(&self.shared.transport, reply), sample))
    }

    /// Feeds the round trip of a request, measured from the attempt its reply answers,
    /// to its kind's retransmission timer. Not for busy replies (ENOMEM, EBUSY), which
    /// the device sends without doing the work.
    pub(crate) fn learn(&self, sample: Option<Sample>) {
        if let Some(Sample { kind, rtt }) = sample {
            self.shared.timers().sample(kind, rtt);
        }
    }

    /// The frame of `payload` (sequence number still 0), encoded straight into one buffer
    /// of `capacity` bytes after room for the header, and checked against the frame limit.
    pub(crate) fn encode_frame<E: minicbor::Encode<()>>(
        &self,
        op: Op,
        group: u16,
        command: u8,
        payload: &E,
        capacity: usize,
    ) -> Result<(Header, Vec<u8>), ClientError> {
        let mut frame = Vec::with_capacity(capacity);
        frame.extend_from_slice(&[0; header::SIZE]);
        minicbor::encode(payload, &mut frame).map_err(ClientError::Encode)?;
        self.finish_frame(op, group, command, frame)
    }

    /// Writes the header (sequence number still 0) into the room left for it at the start
    /// of `frame`, after checking the frame against the frame limit.
    fn finish_frame(
        &self,
        op: Op,
        group: u16,
        command: u8,
        mut frame: Vec<u8>,
    ) -> Result<(Header, Vec<u8>), ClientError> {
        let too_large = || ClientError::FrameTooLarge {
            len: frame.len(),
            max: self.frame_limit(),
        };
        let length = u16::try_from(frame.len() - header::SIZE).map_err(|_| too_large())?;
        if frame.len() > self.frame_limit() {
            return Err(too_large());
        }
        let template =
            Header::new(op, group, command, length).with_version(self.shared.options.version);
        frame[..header::SIZE].copy_from_slice(&template.encode());
        Ok((template, frame))
    }

    /// One request: send, wait, re-send the same frame (under a new sequence number, a
    /// reply to any attempt counting) when no reply came within the wait the retry
    /// policy and the learned retransmission timer of the request's kind (its command,
    /// in `phase`) give, calling `on_timeout` on every expiry. Returns the reply and the
    /// round trip from the attempt it answers, for [`learn`](Self::learn).
    async fn exchange(
        &self,
        template: Header,
        frame: &mut [u8],
        timeout: Duration,
        retries: u32,
        phase: Phase,
        on_timeout: &mut (dyn FnMut() + Send),
    ) -> Result<(Vec<u8>, Option<Sample>), ClientError> {
        let shared = &*self.shared;
        let _permit = shared
            .in_flight
            .permits
            .acquire()
            .await
            .map_err(|_| ClientError::Closed)?;
        let registration = self.register(template)?;
        let request = registration.ticket.request;
        frame[..header::SIZE].copy_from_slice(&request.encode());
        let ticket = &registration.ticket;
        let mut reply = std::future::poll_fn(|cx| shared.pending().poll_reply(ticket, cx.waker()));

        let policy = &shared.options.retry;
        let mut attempts = Attempts::new(Kind::new(&request, phase));
        let mut sequence = request.sequence;
        let started = Instant::now();
        // When the last attempt went out.
        let mut sent_at = started;
        let mut refused = 0;
        for attempt in 0..=retries {
            // Each attempt under a number of its own, so that the reply says which one
            // it answers; the previous one's when none is free.
            let own_sequence = attempt == 0
                || match shared.pending().add_attempt(ticket, attempt) {
                    Some(again) => {
                        sequence = again;
                        frame[..header::SIZE]
                            .copy_from_slice(&request.with_sequence(again).encode());
                        true
                    }
                    None => false,
                };
            // Refusals before the device ever answered end the request instead (see
            // `Refusals`): the last attempt is not held for them.
            let listen = !shared.refusals.answered_once.load(Ordering::Relaxed);
            // A link that cannot resynchronise keeps the fixed schedule (and sends no
            // probes while it holds).
            let resynchronises = shared.transport.resynchronises();
            if attempt == retries && attempt > 0 && !(listen && refused > 0) && resynchronises {
                // The last attempt: kept for when the device is heard from again, at the
                // latest when the fixed schedule (no learned timer) would send it, so that
                // a device that is unreachable for a while gets as long to come back as
                // without learned timers; meanwhile a late reply still counts.
                let hold_until = started + policy.budget(timeout).saturating_sub(timeout);
                let hold = hold_until.saturating_duration_since(Instant::now());
                if !hold.is_zero() {
                    if let Waited::Reply(answer) =
                        self.wait_for(&mut reply, hold, Until::Heard).await?
                    {
                        return Ok(take_reply(&request, &mut attempts, answer, sent_at));
                    }
                }
            }
            // Without learned re-sends each attempt waits the full timeout, unless a
            // probe finds the request lost.
            let rto = if resynchronises && self.learned_resends() {
                shared.timers().rto(attempts.kind(), policy.min_rto)
            } else {
                None
            };
            let wait = if attempt < retries {
                policy.attempt_wait(timeout, attempt, rto)
            } else {
                timeout
            };
            // Armed before sending, so that a refusal reported at once is not missed.
            let refusal = shared.refusals.signal.notified();
            tokio::pin!(refusal);
            refusal.as_mut().enable();
            sent_at = Instant::now();
            attempts.sent(sent_at, own_sequence);
            let refused_at_send = self.send_attempt(frame).await?;
            crate::wire::sent(&request.with_sequence(sequence), frame, attempt);
            // The last attempt waits the whole timeout: nothing would go after a probe.
            // Nor does any attempt on a link that cannot resynchronise: a probe sent
            // after a damaged request would be read as its tail.
            let until = if attempt < retries && resynchronises {
                Until::Probed
            } else {
                Until::Reply
            };
            let waited = if listen && refused_at_send {
                Waited::Refused
            } else {
                tokio::select! {
                    waited = self.wait_for(&mut reply, wait, until) => waited?,
                    () = &mut refusal, if listen => Waited::Refused,
                }
            };
            match waited {
                Waited::Reply(answer) => {
                    return Ok(take_reply(&request, &mut attempts, answer, sent_at));
                }
                Waited::Refused => {
                    refused += 1;
                    tracing::debug!(
                        sequence,
                        group = request.group,
                        command = request.command,
                        attempt,
                        "refused: nothing listens"
                    );
                    if refused > retries {
                        return Err(ClientError::Transport(TransportError::Unreachable(
                            std::io::ErrorKind::ConnectionRefused.into(),
                        )));
                    }
                    // Paced as after a timeout, still taking a late reply meanwhile.
                    let pause = policy.backoff_after(attempt);
                    if let Waited::Reply(answer) =
                        self.wait_for(&mut reply, pause, Until::Reply).await?
                    {
                        return Ok(take_reply(&request, &mut attempts, answer, sent_at));
                    }
                    on_timeout();
                }
                Waited::Expired => {
                    shared.timers().expired(attempts.kind());
                    shared.transport.note_loss();
                    tracing::debug!(
                        sequence,
                        group = request.group,
                        command = request.command,
                        attempt,
                        ?wait,
                        learned = rto.is_some(),
                        "no reply; re-sending"
                    );
                    on_timeout();
                }
                Waited::Lost => {
                    // Not the timer's doing: it is neither backed off nor learned from.
                    shared.transport.note_loss();
                    tracing::debug!(
                        sequence,
                        group = request.group,
                        command = request.command,
                        attempt,
                        "the device answered a later probe: request or reply lost; re-sending"
                    );
                    on_timeout();
                }
            }
        }
        Err(ClientError::Timeout {
            group: request.group,
            command: request.command,
            sequence: request.sequence,
            attempts: retries + 1,
            waited: started.elapsed(),
        })
    }

    /// Whether a request may go again when its kind's learned timer expires, before its
    /// timeout. Not to a device that reported one buffer (MCUboot's serial recovery): the
    /// request holds it, and the same frame again while the device still works on it can
    /// cost both (measured on MCUboot's COBS recovery under `qemu-system-arm`: of 100
    /// pairs of echoes sent back to back, 6 to 11 lost both, against about 2 in 100
    /// single frames lost). Probes still go: a lost request is found by an answered
    /// probe instead, and costs a few round trips, not the timeout (docs/reliability.md).
    fn learned_resends(&self) -> bool {
        self.buf_count() != Some(1)
    }

    /// Waits up to `wait` for `reply`, the reply to a request just sent. When the wait is
    /// long against the round trip the client has learned (the request's kind has no
    /// timer of its own yet, or is slow: a slot erase, an image check) and nothing else
    /// is in flight, probes the device meanwhile: an empty echo after the shortest
    /// learned retransmission timeout, then after twice as long each time. The device
    /// handles requests one at a time in the order they arrive (docs/protocol.md 5.4),
    /// so a reply to a probe while the request's has not come means the request or its
    /// reply was lost ([`Waited::Lost`]): no need to wait for the timeout. A probe that
    /// gets no reply says nothing (the device may be busy with the request; a Zephyr UDP
    /// server drops what finds no free buffer). Probes are not taken when other requests
    /// are in flight: they could take a device buffer a request needs; nor with
    /// [`Until::Reply`]. With [`Until::Heard`], a reply to any other request ends the wait
    /// as well ([`Waited::Lost`]: the device is reachable).
    async fn wait_for<F>(
        &self,
        reply: &mut F,
        wait: Duration,
        until: Until,
    ) -> Result<Waited, ClientError>
    where
        F: Future<Output = Result<Reply, Closed>> + Unpin,
    {
        let shared = &*self.shared;
        let deadline = Instant::now() + wait;
        let interval = (until != Until::Reply)
            .then(|| shared.timers().fastest(shared.options.retry.min_rto))
            .flatten()
            .filter(|interval| interval.saturating_mul(2) <= wait);
        if interval.is_none() && until != Until::Heard {
            return match tokio::time::timeout_at(deadline, reply).await {
                Ok(Ok(reply)) => Ok(Waited::Reply(reply)),
                Ok(Err(Closed)) => Err(ClientError::Closed),
                Err(_) => Ok(Waited::Expired),
            };
        }
        // Without a learned timer, no probes: the first one would be due at the deadline.
        let mut interval = interval.unwrap_or(wait);
        let mut next_probe = Instant::now() + interval;
        // One probe request for this wait, each probe an attempt of it.
        let mut probe: Option<Registration<'_, T>> = None;
        let mut probes = 0;
        loop {
            let probe_reply = async {
                match &probe {
                    Some(registration) => {
                        let ticket = &registration.ticket;
                        std::future::poll_fn(|cx| shared.pending().poll_reply(ticket, cx.waker()))
                            .await
                    }
                    None => std::future::pending().await,
                }
            };
            let heard = async {
                match until {
                    Until::Heard => shared.heard.notified().await,
                    Until::Reply | Until::Probed => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                answered = &mut *reply => {
                    return answered.map(Waited::Reply).map_err(|Closed| ClientError::Closed);
                }
                () = heard => return Ok(Waited::Lost),
                answered = probe_reply => {
                    if let Ok(Reply { frame, .. }) = answered {
                        shared.transport.recycle(frame);
                    }
                    return Ok(Waited::Lost);
                }
                () = tokio::time::sleep_until(deadline) => return Ok(Waited::Expired),
                () = tokio::time::sleep_until(next_probe), if next_probe < deadline => {
                    if shared.pending().requests() == 1 + usize::from(probe.is_some()) {
                        self.send_probe(&mut probe, probes).await?;
                        probes += 1;
                    }
                    interval = interval.saturating_mul(2);
                    next_probe = Instant::now() + interval;
                }
            }
        }
    }

    /// Sends probe number `count` (from 0) of a wait: an empty echo, the first one
    /// registered as `probe`, the later ones as its further attempts. None when no
    /// sequence number is free: a probe is worth less than a request.
    async fn send_probe<'a>(
        &'a self,
        probe: &mut Option<Registration<'a, T>>,
        count: u32,
    ) -> Result<(), ClientError> {
        // An empty echo, encoded as every echo is (a frame too large for the device
        // cannot happen: it is 12 bytes, but a probe is never worth an error).
        let Ok((template, mut frame)) = self.encode_frame(
            Op::Write,
            header::group::OS,
            header::command::os::ECHO,
            &EchoText(""),
            header::SIZE + 4,
        ) else {
            return Ok(());
        };
        let header = match probe {
            None => {
                let Ok(registration) = self.register(template) else {
                    return Ok(());
                };
                let header = registration.ticket.request;
                *probe = Some(registration);
                header
            }
            Some(registration) => {
                let ticket = registration.ticket;
                match self.shared.pending().add_attempt(&ticket, count) {
                    Some(sequence) => ticket.request.with_sequence(sequence),
                    None => ticket.request,
                }
            }
        };
        frame[..header::SIZE].copy_from_slice(&header.encode());
        tracing::debug!(sequence = header.sequence, "probing the device");
        // A refused probe tells nothing the request's own attempts do not.
        self.send_attempt(&frame).await.map(|_| ())
    }

    /// Registers `template` under a free sequence number, until the registration drops.
    fn register(&self, template: Header) -> Result<Registration<'_, T>, ClientError> {
        let shared = &*self.shared;
        let ticket = shared
            .pending()
            .register(template)
            .map_err(|err| match err {
                RegisterError::Full => ClientError::TooManyInFlight,
                RegisterError::Closed => ClientError::Closed,
            })?;
        Ok(Registration { shared, ticket })
    }

    /// Sends one attempt of a request; true when the transport reported a refusal
    /// (nothing listening, the device restarting) instead, which [`exchange`] handles as
    /// the reader's refusals.
    ///
    /// [`exchange`]: Self::exchange
    async fn send_attempt(&self, frame: &[u8]) -> Result<bool, ClientError> {
        match self.shared.transport.send(frame).await {
            Ok(()) => Ok(false),
            Err(TransportError::Unreachable(err)) => {
                tracing::debug!(%err, "send refused");
                Ok(true)
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Disconnects the transport and stops the reader; requests in flight fail with
    /// [`ClientError::Closed`].
    pub async fn close(self) -> Result<(), ClientError> {
        self.shared.transport.disconnect().await?;
        Ok(())
    }
}

impl<T: Transport + 'static> Drop for Client<T> {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The reply to one of `request`'s attempts: logged as received (its round trip from
/// `sent_at`, the last send) and measured from the attempt it answers.
fn take_reply(
    request: &Header,
    attempts: &mut Attempts<Instant>,
    Reply { frame, attempt }: Reply,
    sent_at: Instant,
) -> (Vec<u8>, Option<Sample>) {
    let now = Instant::now();
    crate::wire::received(request, &frame, now.saturating_duration_since(sent_at));
    let sample = attempts.sample(attempt, now);
    (frame, sample)
}

/// Hands every received frame to the request it answers; drops the rest.
async fn read_replies<T: Transport>(shared: Arc<Shared<T>>) {
    loop {
        match shared.transport.receive().await {
            Ok(frame) => {
                shared.refusals.answered_once.store(true, Ordering::Relaxed);
                dispatch(&shared, frame);
            }
            Err(TransportError::Closed) => break,
            // Nothing listens: requests waiting hear of it (see `Refusals`).
            Err(TransportError::Unreachable(err)) => {
                shared.refusals.signal.notify_waiters();
                tracing::debug!(%err, "device unreachable while waiting for replies");
            }
            Err(TransportError::Io(err)) => {
                // An error the socket may keep returning: pause so the loop does not spin.
                tracing::debug!(%err, "transport error while waiting for replies");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(err) => {
                tracing::debug!(err = %crate::ErrorChain(&err), "dropping a malformed datagram");
            }
        }
    }
    tracing::debug!("transport closed; failing requests in flight");
    let waiters = shared.pending().close();
    for waiter in waiters {
        waiter.wake();
    }
}

fn dispatch<T: Transport>(shared: &Shared<T>, frame: Vec<u8>) {
    let reply = match Header::decode(&frame) {
        Ok(reply) if reply.frame_len() == frame.len() => reply,
        Ok(reply) => {
            // Transports hand over whole frames; a third-party one might not.
            tracing::debug!(
                announced = reply.frame_len(),
                len = frame.len(),
                "dropping a frame whose length disagrees with its header"
            );
            return;
        }
        Err(err) => {
            tracing::debug!(%err, "dropping a frame with an invalid header");
            return;
        }
    };
    let completed = shared.pending().complete(&reply, frame);
    match completed {
        Ok(waiter) => {
            waiter.into_iter().for_each(Waker::wake);
            shared.heard.notify_waiters();
        }
        Err(frame) => {
            shared.transport.recycle(frame);
            tracing::debug!(
                sequence = reply.sequence,
                group = reply.group,
                command = reply.command,
                op = ?reply.op,
                "dropping a reply no request waits for"
            );
        }
    }
}

/// A reply frame that goes back to its transport ([`Transport::recycle`]) when dropped,
/// so that the transport can receive a later frame into the same buffer.
pub(crate) struct Recycled<'a, T: Transport> {
    frame: Vec<u8>,
    transport: &'a T,
}

impl<'a, T: Transport> Recycled<'a, T> {
    fn new(transport: &'a T, frame: Vec<u8>) -> Self {
        Self { frame, transport }
    }
}

impl<T: Transport> std::ops::Deref for Recycled<'_, T> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.frame
    }
}

impl<T: Transport> Drop for Recycled<'_, T> {
    fn drop(&mut self) {
        self.transport.recycle(std::mem::take(&mut self.frame));
    }
}

/// An echo request that borrows its text: `{"d": text}`, as [`EchoRequest`] encodes it.
///
/// [`EchoRequest`]: crate::messages::os::EchoRequest
struct EchoText<'a>(&'a str);

impl<C> minicbor::CborLen<C> for EchoText<'_> {
    fn cbor_len(&self, ctx: &mut C) -> usize {
        // A one-entry map head, the key "d", the text.
        1 + "d".cbor_len(ctx) + self.0.cbor_len(ctx)
    }
}

impl<C> minicbor::Encode<C> for EchoText<'_> {
    fn encode<W: minicbor::encode::Write>(
        &self,
        e: &mut minicbor::Encoder<W>,
        _: &mut C,
    ) -> Result<(), minicbor::encode::Error<W::Error>> {
        e.map(1)?.str("d")?.str(self.0)?;
        Ok(())
    }
}

/// A random starting sequence number, from the standard library's hasher keys.
fn random_u8() -> u8 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(std::process::id().into());
    hasher.finish().to_le_bytes()[0]
}

#[cfg(test)]
mod tests {
    use super::EchoText;
    use crate::messages::os::EchoRequest;

    #[test]
    fn a_borrowed_echo_encodes_as_the_typed_request() {
        for text in ["", "hello", &"x".repeat(300)] {
            let typed = EchoRequest { d: text.into() };
            let bytes = minicbor::to_vec(EchoText(text)).unwrap();
            assert_eq!(bytes, minicbor::to_vec(&typed).unwrap());
            assert_eq!(minicbor::len(EchoText(text)), bytes.len());
        }
    }
}
