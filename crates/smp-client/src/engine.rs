//! The request engine's state, without IO: sequence numbers, the requests waiting for a
//! reply, and the retry schedule. The async [`Client`](crate::Client) drives it; tests
//! drive it directly.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::task::{Poll, Waker};
use std::time::Duration;

use smp_transport::header::Header;

/// Sequence numbers in use, and the reply slot of each.
///
/// A reply fills a slot only when its sequence, group, command and op all answer the
/// registered request, so a late, duplicated or foreign reply can never complete (or
/// shift) another request. The slot lives in the table itself: waiting for a reply costs
/// no channel and no allocation, only the waker of the task that waits.
#[derive(Debug)]
pub(crate) struct Pending {
    next: u8,
    /// Tells registrations apart when a sequence number is reused.
    next_id: u64,
    waiting: HashMap<u8, Waiting>,
    closed: bool,
}

#[derive(Debug)]
struct Waiting {
    request: Header,
    id: u64,
    /// The reply frame, once it has come and until its request takes it.
    reply: Option<Vec<u8>>,
    /// The task to wake when the reply comes.
    waker: Option<Waker>,
}

/// A registered request: its header (with the sequence number it got) and a ticket to
/// cancel exactly this registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket {
    pub(crate) request: Header,
    id: u64,
}

/// Why a request could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegisterError {
    /// All 256 sequence numbers wait for replies.
    Full,
    /// The table was closed: no reply will ever be dispatched again.
    Closed,
}

/// The table was closed before the reply came: none ever will.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

impl Pending {
    /// An empty table whose first sequence number is `start`.
    pub(crate) fn new(start: u8) -> Self {
        Self {
            next: start,
            next_id: 0,
            waiting: HashMap::new(),
            closed: false,
        }
    }

    /// Registers `request` under the next free sequence number, which is written into
    /// the ticket's header.
    pub(crate) fn register(&mut self, request: Header) -> Result<Ticket, RegisterError> {
        if self.closed {
            return Err(RegisterError::Closed);
        }
        for _ in 0..=u8::MAX {
            let sequence = self.next;
            self.next = self.next.wrapping_add(1);
            if let Entry::Vacant(slot) = self.waiting.entry(sequence) {
                let request = request.with_sequence(sequence);
                let id = self.next_id;
                self.next_id += 1;
                slot.insert(Waiting {
                    request,
                    id,
                    reply: None,
                    waker: None,
                });
                return Ok(Ticket { request, id });
            }
        }
        Err(RegisterError::Full)
    }

    /// Puts `frame`, whose header is `reply`, in the slot of the request it answers and
    /// returns the waker to wake (outside the lock). A frame nobody waits for, or a
    /// second reply to a request that has not taken its first yet, comes back as `Err`.
    pub(crate) fn complete(
        &mut self,
        reply: &Header,
        frame: Vec<u8>,
    ) -> Result<Option<Waker>, Vec<u8>> {
        match self.waiting.get_mut(&reply.sequence) {
            Some(waiting) if waiting.reply.is_none() && waiting.request.is_answered_by(reply) => {
                waiting.reply = Some(frame);
                Ok(waiting.waker.take())
            }
            _ => Err(frame),
        }
    }

    /// The reply to `ticket` if it has come, which ends the registration; otherwise
    /// remembers `waker` to be woken when it comes.
    pub(crate) fn poll_reply(
        &mut self,
        ticket: &Ticket,
        waker: &Waker,
    ) -> Poll<Result<Vec<u8>, Closed>> {
        let sequence = ticket.request.sequence;
        let Some(waiting) = self
            .waiting
            .get_mut(&sequence)
            .filter(|waiting| waiting.id == ticket.id)
        else {
            // Only closing the table takes a registration away from its request.
            return Poll::Ready(Err(Closed));
        };
        if waiting.reply.is_some() {
            let reply = self
                .waiting
                .remove(&sequence)
                .and_then(|waiting| waiting.reply);
            return Poll::Ready(reply.ok_or(Closed));
        }
        match &mut waiting.waker {
            Some(known) if known.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
        Poll::Pending
    }

    /// Forgets the registration of `ticket`, if it still waits; a later registration
    /// under the same sequence number is left alone.
    pub(crate) fn cancel(&mut self, ticket: &Ticket) {
        let sequence = ticket.request.sequence;
        if self
            .waiting
            .get(&sequence)
            .is_some_and(|waiting| waiting.id == ticket.id)
        {
            self.waiting.remove(&sequence);
        }
    }

    /// Refuses every later registration, forgets those still waiting (their requests then
    /// see [`Closed`]) and hands back the wakers to wake them.
    /// A reply that has already come stays for its request to take.
    pub(crate) fn close(&mut self) -> Vec<Waker> {
        self.closed = true;
        let mut wakers = Vec::new();
        self.waiting.retain(|_, waiting| {
            wakers.extend(waiting.waker.take());
            waiting.reply.is_some()
        });
        wakers
    }

    /// Number of requests waiting.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }
}

/// How long to wait for replies, how often to retry and how to back off: the defaults,
/// changed with the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Time to wait for a reply before re-sending the same frame.
    pub timeout: Duration,
    /// Re-sends after a timeout (0: one attempt only).
    pub retries: u32,
    /// Extra wait after the first timeout before re-sending, still listening for a late
    /// reply; doubles with each retry up to [`max_backoff`](Self::max_backoff).
    /// Also the first wait after a busy (ENOMEM, EBUSY) reply.
    pub backoff: Duration,
    /// Upper bound of the backoff.
    pub max_backoff: Duration,
    /// Attempts after busy replies (ENOMEM, EBUSY) before giving up.
    pub busy_retries: u32,
}

crate::with_setters!(RetryPolicy {
    /// Sets [`timeout`](Self::timeout).
    with_timeout => timeout: Duration,
    /// Sets [`retries`](Self::retries).
    with_retries => retries: u32,
    /// Sets [`backoff`](Self::backoff).
    with_backoff => backoff: Duration,
    /// Sets [`max_backoff`](Self::max_backoff).
    with_max_backoff => max_backoff: Duration,
    /// Sets [`busy_retries`](Self::busy_retries).
    with_busy_retries => busy_retries: u32,
});

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(2500),
            retries: 3,
            backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            busy_retries: 20,
        }
    }
}

impl RetryPolicy {
    /// The pause before attempt `attempt + 1`, where `attempt` counts from 0.
    pub fn backoff_after(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }

    /// How long attempt `attempt` (from 0) waits for its reply: the timeout, and before
    /// a re-send also the backoff (a late reply still counts meanwhile).
    pub(crate) fn attempt_wait(&self, timeout: Duration, attempt: u32) -> Duration {
        if attempt < self.retries {
            timeout + self.backoff_after(attempt)
        } else {
            timeout
        }
    }

    /// The longest a request can take when every attempt times out.
    pub fn budget(&self, timeout: Duration) -> Duration {
        (0..=self.retries).fold(Duration::ZERO, |total, attempt| {
            total + self.attempt_wait(timeout, attempt)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smp_transport::header::{Op, group};

    fn echo() -> Header {
        Header::new(Op::Write, group::OS, 0, 9)
    }

    fn reply_to(request: &Header) -> Header {
        Header::new(Op::WriteRsp, group::OS, 0, 3).with_sequence(request.sequence)
    }

    /// [`Pending::complete`], telling only whether a task was woken.
    fn fill(p: &mut Pending, reply: &Header, frame: Vec<u8>) -> Result<bool, Vec<u8>> {
        p.complete(reply, frame).map(|waker| waker.is_some())
    }

    /// The reply waiting for `ticket`, if any, taken without a task to wake.
    fn take(p: &mut Pending, ticket: &Ticket) -> Poll<Result<Vec<u8>, Closed>> {
        p.poll_reply(ticket, Waker::noop())
    }

    #[test]
    fn sequences_start_anywhere_and_wrap() {
        let mut p = Pending::new(254);
        let seqs: Vec<u8> = (0..4)
            .map(|_| p.register(echo()).unwrap().request.sequence)
            .collect();
        assert_eq!(seqs, [254, 255, 0, 1]);
    }

    #[test]
    fn busy_sequences_are_skipped_and_exhaustion_is_reported() {
        let mut p = Pending::new(0);
        let tickets: Vec<Ticket> = (0..=255u32).map(|_| p.register(echo()).unwrap()).collect();
        assert_eq!(p.register(echo()), Err(RegisterError::Full));
        p.cancel(&tickets[17]);
        assert_eq!(p.register(echo()).unwrap().request.sequence, 17);
    }

    #[test]
    fn only_the_matching_reply_completes() {
        let mut p = Pending::new(10);
        let ticket = p.register(echo()).unwrap();
        let reply = reply_to(&ticket.request);
        // Wrong op, group, command, sequence: nothing completes, nothing is lost.
        for wrong in [
            Header {
                op: Op::ReadRsp,
                ..reply
            },
            Header { group: 1, ..reply },
            Header {
                command: 6,
                ..reply
            },
            reply.with_sequence(11),
            Header {
                op: Op::Write,
                ..reply
            },
        ] {
            assert_eq!(fill(&mut p, &wrong, vec![0]), Err(vec![0]));
        }
        assert_eq!(take(&mut p, &ticket), Poll::Pending);
        assert_eq!(fill(&mut p, &reply, vec![1]), Ok(true));
        // A duplicate that comes before the request took the first is refused...
        assert_eq!(fill(&mut p, &reply, vec![2]), Err(vec![2]));
        assert_eq!(take(&mut p, &ticket), Poll::Ready(Ok(vec![1])));
        // ...and one that comes after finds nobody.
        assert_eq!(fill(&mut p, &reply, vec![3]), Err(vec![3]));
        assert_eq!(p.len(), 0);
    }

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Counter(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Counter {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[test]
    fn the_waiting_task_is_woken_once_its_reply_is_in() {
        let mut p = Pending::new(0);
        let ticket = p.register(echo()).unwrap();
        let counter = std::sync::Arc::new(Counter::default());
        let waker = Waker::from(counter.clone());
        // Polled twice by the same task: one waker kept.
        assert_eq!(p.poll_reply(&ticket, &waker), Poll::Pending);
        assert_eq!(p.poll_reply(&ticket, &waker), Poll::Pending);
        let woken = p.complete(&reply_to(&ticket.request), vec![7]).unwrap();
        woken.unwrap().wake();
        assert_eq!(counter.0.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert_eq!(take(&mut p, &ticket), Poll::Ready(Ok(vec![7])));
    }

    #[test]
    fn a_late_reply_never_completes_a_newer_request() {
        let mut p = Pending::new(0);
        let old = p.register(echo()).unwrap();
        p.cancel(&old); // timed out
        let new = p.register(echo()).unwrap();
        assert_ne!(old.request.sequence, new.request.sequence);
        let late = reply_to(&old.request);
        assert_eq!(fill(&mut p, &late, vec![1]), Err(vec![1]));
        assert_eq!(fill(&mut p, &reply_to(&new.request), vec![2]), Ok(false));
        assert_eq!(take(&mut p, &new), Poll::Ready(Ok(vec![2])));
    }

    #[test]
    fn a_stale_ticket_cancels_nothing() {
        // A reply completes sequence 0 and is taken, the number is reused by a new
        // request before the first request's guard cancels its ticket: the new request
        // must stay.
        let mut p = Pending::new(0);
        let first = p.register(echo()).unwrap();
        let reply = reply_to(&first.request);
        fill(&mut p, &reply, vec![1]).unwrap();
        assert_eq!(take(&mut p, &first), Poll::Ready(Ok(vec![1])));
        for _ in 0..255 {
            p.register(echo()).unwrap();
        }
        let reused = p.register(echo()).unwrap();
        assert_eq!(reused.request.sequence, 0);
        p.cancel(&first);
        assert_eq!(take(&mut p, &first), Poll::Ready(Err(Closed)));
        assert_eq!(fill(&mut p, &reply, vec![2]), Ok(false));
        assert_eq!(take(&mut p, &reused), Poll::Ready(Ok(vec![2])));
    }

    #[test]
    fn close_wakes_every_waiter_and_refuses_more() {
        let mut p = Pending::new(0);
        let waiting = p.register(echo()).unwrap();
        let answered = p.register(echo()).unwrap();
        let never_polled = p.register(echo()).unwrap();
        assert_eq!(p.poll_reply(&waiting, Waker::noop()), Poll::Pending);
        fill(&mut p, &reply_to(&answered.request), vec![5]).unwrap();
        assert_eq!(p.close().len(), 1);
        assert_eq!(p.register(echo()), Err(RegisterError::Closed));
        assert_eq!(take(&mut p, &waiting), Poll::Ready(Err(Closed)));
        assert_eq!(take(&mut p, &never_polled), Poll::Ready(Err(Closed)));
        // A reply that came before the close is still delivered.
        assert_eq!(take(&mut p, &answered), Poll::Ready(Ok(vec![5])));
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn backoff_doubles_up_to_its_bound() {
        let policy = RetryPolicy {
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
            ..RetryPolicy::default()
        };
        let pauses: Vec<_> = (0..5)
            .map(|a| policy.backoff_after(a).as_millis())
            .collect();
        assert_eq!(pauses, [100, 200, 350, 350, 350]);
        assert_eq!(policy.backoff_after(u32::MAX), Duration::from_millis(350));
        // 4 attempts of 2.5 s plus pauses of 100, 200 and 350 ms.
        assert_eq!(
            policy.budget(Duration::from_millis(2500)),
            Duration::from_millis(10_650)
        );
    }
}
