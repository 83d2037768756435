//! The request engine's state, without IO: sequence numbers, the requests waiting for a
//! reply, and the retry schedule. The async [`Client`](crate::Client) drives it; tests
//! drive it directly.

use std::collections::HashMap;
use std::collections::hash_map;
use std::task::{Poll, Waker};
use std::time::Duration;

use smp_transport::header::Header;

/// Sequence numbers in use, and the reply slot of each request.
///
/// A reply fills a slot only when its sequence, group, command and op all answer the
/// registered request, so a late, duplicated or foreign reply can never complete (or
/// shift) another request. The slot lives in the table itself: waiting for a reply costs
/// no channel and no allocation, only the waker of the task that waits.
///
/// Each attempt of a request goes under a sequence number of its own
/// ([`add_attempt`](Self::add_attempt)), all of them leading to the same slot: a late
/// reply to any attempt completes the request, and the reply's sequence number says which
/// attempt it answers, so that a round trip is measured from the right send even after a
/// re-send (as QUIC's packet numbers allow, RFC 9002 section 5).
#[derive(Debug)]
pub(crate) struct Pending {
    next: u8,
    /// Tells registrations apart when a sequence number is reused.
    next_id: u64,
    waiting: HashMap<u8, Entry>,
    closed: bool,
}

/// What a sequence number in use stands for.
#[derive(Debug)]
enum Entry {
    /// The first attempt of a request, which holds its reply slot.
    First(Waiting),
    /// A later attempt (counted from 1) of the request registered as `id` under
    /// sequence number `first`.
    Again { first: u8, id: u64, attempt: u32 },
}

#[derive(Debug)]
struct Waiting {
    request: Header,
    id: u64,
    /// The reply frame and the attempt it answers, once it has come and until its
    /// request takes it.
    reply: Option<(Vec<u8>, u32)>,
    /// The task to wake when the reply comes.
    waker: Option<Waker>,
    /// Later attempts registered under sequence numbers of their own.
    again: u32,
}

/// A registered request: its header (with the sequence number of its first attempt) and
/// a ticket to cancel exactly this registration.
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

/// A reply, and which attempt of its request (from 0) it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) frame: Vec<u8>,
    pub(crate) attempt: u32,
}

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

    /// The next free sequence number, which the table then holds as `entry` gives it.
    fn take_sequence(&mut self, entry: impl FnOnce(u8) -> Entry) -> Result<u8, RegisterError> {
        if self.closed {
            return Err(RegisterError::Closed);
        }
        for _ in 0..=u8::MAX {
            let sequence = self.next;
            self.next = self.next.wrapping_add(1);
            if let hash_map::Entry::Vacant(slot) = self.waiting.entry(sequence) {
                slot.insert(entry(sequence));
                return Ok(sequence);
            }
        }
        Err(RegisterError::Full)
    }

    /// Registers `request` under the next free sequence number, which is written into
    /// the ticket's header.
    pub(crate) fn register(&mut self, request: Header) -> Result<Ticket, RegisterError> {
        let id = self.next_id;
        let sequence = self.take_sequence(|sequence| {
            Entry::First(Waiting {
                request: request.with_sequence(sequence),
                id,
                reply: None,
                waker: None,
                again: 0,
            })
        })?;
        self.next_id += 1;
        Ok(Ticket {
            request: request.with_sequence(sequence),
            id,
        })
    }

    /// Gives attempt `attempt` (from 1) of `ticket`'s request a sequence number of its
    /// own, which a reply may answer as well as the first one. `None` when no number is
    /// free (the attempt then goes under the previous one: which attempt a reply answers
    /// is then unknown) or the request no longer waits.
    pub(crate) fn add_attempt(&mut self, ticket: &Ticket, attempt: u32) -> Option<u8> {
        let first = ticket.request.sequence;
        let id = ticket.id;
        match self.waiting.get(&first) {
            Some(Entry::First(waiting)) if waiting.id == id && waiting.reply.is_none() => {}
            _ => return None,
        }
        let sequence = self
            .take_sequence(|_| Entry::Again { first, id, attempt })
            .ok()?;
        if let Some(Entry::First(waiting)) = self.waiting.get_mut(&first) {
            waiting.again += 1;
        }
        Some(sequence)
    }

    /// Puts `frame`, whose header is `reply`, in the slot of the request it answers and
    /// returns the waker to wake (outside the lock). A frame nobody waits for, or a
    /// second reply to a request that has not taken its first yet, comes back as `Err`.
    pub(crate) fn complete(
        &mut self,
        reply: &Header,
        frame: Vec<u8>,
    ) -> Result<Option<Waker>, Vec<u8>> {
        let (first, attempt) = match self.waiting.get(&reply.sequence) {
            Some(Entry::First(_)) => (reply.sequence, 0),
            Some(&Entry::Again { first, id, attempt }) => match self.waiting.get(&first) {
                Some(Entry::First(waiting)) if waiting.id == id => (first, attempt),
                _ => return Err(frame),
            },
            None => return Err(frame),
        };
        match self.waiting.get_mut(&first) {
            Some(Entry::First(waiting))
                if waiting.reply.is_none()
                    && waiting
                        .request
                        .with_sequence(reply.sequence)
                        .is_answered_by(reply) =>
            {
                waiting.reply = Some((frame, attempt));
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
    ) -> Poll<Result<Reply, Closed>> {
        let Some(waiting) = self.first_mut(ticket) else {
            // Only closing the table takes a registration away from its request.
            return Poll::Ready(Err(Closed));
        };
        if waiting.reply.is_some() {
            let reply = self.remove(ticket).and_then(|waiting| waiting.reply);
            return Poll::Ready(
                reply
                    .map(|(frame, attempt)| Reply { frame, attempt })
                    .ok_or(Closed),
            );
        }
        match &mut waiting.waker {
            Some(known) if known.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
        Poll::Pending
    }

    /// The slot of `ticket`'s request, if this registration still holds it.
    fn first_mut(&mut self, ticket: &Ticket) -> Option<&mut Waiting> {
        match self.waiting.get_mut(&ticket.request.sequence) {
            Some(Entry::First(waiting)) if waiting.id == ticket.id => Some(waiting),
            _ => None,
        }
    }

    /// Frees every sequence number of `ticket`'s request and returns its slot.
    fn remove(&mut self, ticket: &Ticket) -> Option<Waiting> {
        let again = self.first_mut(ticket)?.again;
        if again > 0 {
            let id = ticket.id;
            self.waiting
                .retain(|_, entry| !matches!(entry, Entry::Again { id: of, .. } if *of == id));
        }
        match self.waiting.remove(&ticket.request.sequence) {
            Some(Entry::First(waiting)) => Some(waiting),
            _ => None,
        }
    }

    /// Forgets the registration of `ticket`, if it still waits; a later registration
    /// under the same sequence number is left alone.
    pub(crate) fn cancel(&mut self, ticket: &Ticket) {
        self.remove(ticket);
    }

    /// Refuses every later registration, forgets those still waiting (their requests then
    /// see [`Closed`]) and hands back the wakers to wake them.
    /// A reply that has already come stays for its request to take.
    pub(crate) fn close(&mut self) -> Vec<Waker> {
        self.closed = true;
        let mut wakers = Vec::new();
        self.waiting.retain(|_, entry| match entry {
            Entry::First(waiting) => {
                wakers.extend(waiting.waker.take());
                waiting.again = 0;
                waiting.reply.is_some()
            }
            Entry::Again { .. } => false,
        });
        wakers
    }

    /// Requests waiting (each counted once, whatever its attempts).
    pub(crate) fn requests(&self) -> usize {
        self.waiting
            .values()
            .filter(|entry| matches!(entry, Entry::First(_)))
            .count()
    }

    /// Sequence numbers in use.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }
}

/// How long to wait for replies, how often to retry and how to back off: the defaults,
/// changed with the `with_*` methods.
///
/// # Timeouts, retries and the retransmission timer
///
/// A request is sent at most `retries + 1` times, always the same frame, each attempt under
/// a sequence number of its own; a reply to any attempt completes the request, and says
/// which attempt it answers. When an attempt goes again is learned: the client measures
/// how long the device takes to answer each kind of request (per command, and for uploads
/// the first, middle and last chunks apart) and re-sends after that kind's retransmission
/// timeout (RTO), computed as TCP does (RFC 6298: the smoothed round trip plus four times
/// its variation, at least [`min_rto`](Self::min_rto)) and doubled on each expiry until
/// the next reply. On a lossy link a lost request or reply then costs a few round trips,
/// not a `timeout`. While a request of a kind not measured yet (or a slow one) waits alone,
/// the client also probes the device with empty echoes: the device handles requests in
/// order, so an answer to a later probe shows that the request or its reply was lost, and
/// it goes again at once. Busy replies (ENOMEM, EBUSY) are not measured. Over a link
/// that cannot resynchronise after a damaged frame (serial raw framing:
/// [`Transport::resynchronises`](crate::Transport::resynchronises)) none of this
/// applies: every attempt waits the full `timeout` and the backoff, and nothing is probed.
/// To a device that reports a `buf_count` of 1 (MCUboot's serial recovery: the same frame
/// again while it still works on the first can cost both) nothing goes again on the
/// learned timer: an attempt waits the full `timeout`, unless a probe finds it lost.
///
/// The user's settings stay the bounds:
///
/// - `timeout` is the longest one attempt waits before the request goes again: the RTO is
///   used only while it is shorter. A kind not measured yet (the first request of each
///   kind, so usually the first and last chunks of a client's first upload, which may
///   wait for a slot erase or an image check) waits the full `timeout` plus the backoff,
///   as a timer backed off beyond the `timeout` does, unless a probe is answered.
/// - `retries` bounds the attempts whatever the timer and the probes say: early re-sends
///   count.
/// - The last attempt is kept until the device is heard from again (a reply to any other
///   request, or to a probe), at the latest until the fixed schedule (every attempt
///   waiting `timeout` and the backoff) would send it, and then waits the full `timeout`:
///   a device that is unreachable for a while (a reboot, a burst of interference) gets
///   as long to come back as without learned timers, and a reply as slow as the user
///   allows still counts.
/// - So a request that is never answered ends in [`ClientError::Timeout`] after
///   `retries + 1` attempts, [`budget`](Self::budget)`(timeout)` after its first send, as
///   without learned timers; sooner only when the device keeps answering other requests
///   while this one is lost again and again. A device that is merely slower than it was
///   sees each re-send later than the one before, and the first reply teaches the timer
///   the new round trip.
///
/// Transfers (uploads, downloads) go one step further: when one of their requests runs out
/// of attempts but the device took data since the last one did, they start again from
/// what the device holds instead of failing; a request that runs out twice with nothing
/// taken in between (or before anything was) fails the transfer with that
/// [`ClientError::Timeout`]. A device that stays silent mid-transfer is therefore reported
/// after two rounds of attempts.
///
/// On a lossy link, more `retries` cost little once the round trip is learned, and each
/// makes failure much rarer: with 10% of the datagrams lost each way an attempt fails
/// 19% of the time, four in a row (the default) 0.13%, eight 0.0002%.
///
/// [`ClientError::Timeout`]: crate::ClientError::Timeout
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// The longest wait for a reply before the same frame goes again, and the bound of
    /// the learned retransmission timer (see above).
    pub timeout: Duration,
    /// Re-sends of a request that got no reply (0: one attempt only), early ones included.
    pub retries: u32,
    /// Extra wait after a full `timeout` before re-sending, still listening for a late
    /// reply; doubles with each retry up to [`max_backoff`](Self::max_backoff). Not added
    /// to a re-send after the learned retransmission timeout, which doubles by itself.
    /// Also the first wait after a busy (ENOMEM, EBUSY) reply.
    pub backoff: Duration,
    /// Upper bound of the backoff.
    pub max_backoff: Duration,
    /// Attempts after busy replies (ENOMEM, EBUSY) before giving up.
    pub busy_retries: u32,
    /// The shortest learned retransmission timeout: a re-send never comes sooner after
    /// the attempt before it. A `min_rto` of `timeout` or more turns learning off: every
    /// attempt then waits the full `timeout` and the backoff.
    pub min_rto: Duration,
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
    /// Sets [`min_rto`](Self::min_rto).
    with_min_rto => min_rto: Duration,
});

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(2500),
            retries: 3,
            backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            busy_retries: 20,
            // Above the scheduling delays of a busy host (a spurious re-send of a chunk
            // takes a device buffer), as QUIC allows 25 ms for a delayed acknowledgement
            // (RFC 9000, max_ack_delay); at a 20 ms round trip the learned timer is
            // about 27 ms anyway.
            min_rto: Duration::from_millis(25),
        }
    }
}

impl RetryPolicy {
    /// The pause before attempt `attempt + 1`, where `attempt` counts from 0.
    pub fn backoff_after(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }

    /// How long attempt `attempt` (from 0) waits for its reply, given the kind's learned
    /// retransmission timeout `rto` (already backed off; `None` before any sample): the
    /// RTO while it is shorter than `timeout`, else the timeout and the backoff; the last
    /// attempt waits the timeout. A late reply to an earlier attempt counts meanwhile.
    pub(crate) fn attempt_wait(
        &self,
        timeout: Duration,
        attempt: u32,
        rto: Option<Duration>,
    ) -> Duration {
        if attempt >= self.retries {
            return timeout;
        }
        match rto.map(|rto| rto.max(self.min_rto)) {
            Some(rto) if rto < timeout => rto,
            _ => timeout + self.backoff_after(attempt),
        }
    }

    /// The longest a request can take when every attempt times out: every attempt but
    /// the last waits `timeout` and the backoff, the last `timeout`. A learned
    /// retransmission timer sends the attempts before the last one sooner, not the
    /// last one, unless the device answers something meanwhile.
    pub fn budget(&self, timeout: Duration) -> Duration {
        (0..=self.retries).fold(Duration::ZERO, |total, attempt| {
            total + self.attempt_wait(timeout, attempt, None)
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
            .map(|reply| reply.map(|reply| reply.frame))
    }

    /// The reply waiting for `ticket` and the attempt it answers.
    fn take_attempt(p: &mut Pending, ticket: &Ticket) -> Poll<Result<(Vec<u8>, u32), Closed>> {
        p.poll_reply(ticket, Waker::noop())
            .map(|reply| reply.map(|reply| (reply.frame, reply.attempt)))
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
    fn each_attempt_has_its_own_number_and_any_reply_completes_the_request() {
        let mut p = Pending::new(10);
        let ticket = p.register(echo()).unwrap();
        let other = p.register(echo()).unwrap();
        let second = p.add_attempt(&ticket, 1).unwrap();
        let third = p.add_attempt(&ticket, 2).unwrap();
        assert_eq!((ticket.request.sequence, second, third), (10, 12, 13));
        assert_eq!(p.len(), 4);
        // The reply to the second attempt completes the request and says so; the others
        // then find nobody, and every number of the request is free again.
        let reply = reply_to(&ticket.request.with_sequence(second));
        assert_eq!(fill(&mut p, &reply, vec![2]), Ok(false));
        let late = reply_to(&ticket.request);
        assert_eq!(fill(&mut p, &late, vec![1]), Err(vec![1]));
        assert_eq!(take_attempt(&mut p, &ticket), Poll::Ready(Ok((vec![2], 1))));
        assert_eq!(p.len(), 1, "only the other request's number is in use");
        let late = reply_to(&ticket.request.with_sequence(third));
        assert_eq!(fill(&mut p, &late, vec![3]), Err(vec![3]));
        // A reply to the first attempt says attempt 0.
        let again = p.add_attempt(&other, 1).unwrap();
        fill(&mut p, &reply_to(&other.request), vec![4]).unwrap();
        assert_eq!(take_attempt(&mut p, &other), Poll::Ready(Ok((vec![4], 0))));
        assert_eq!(
            fill(
                &mut p,
                &reply_to(&other.request.with_sequence(again)),
                vec![5]
            ),
            Err(vec![5])
        );
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn attempts_of_a_cancelled_or_closed_request_free_their_numbers() {
        let mut p = Pending::new(0);
        let cancelled = p.register(echo()).unwrap();
        let again = p.add_attempt(&cancelled, 1).unwrap();
        p.cancel(&cancelled);
        assert_eq!(p.len(), 0);
        assert_eq!(
            fill(
                &mut p,
                &reply_to(&cancelled.request.with_sequence(again)),
                vec![1]
            ),
            Err(vec![1])
        );
        // No attempt for a request that no longer waits.
        assert_eq!(p.add_attempt(&cancelled, 2), None);
        let open = p.register(echo()).unwrap();
        p.add_attempt(&open, 1).unwrap();
        p.close();
        assert_eq!(p.len(), 0);
        assert_eq!(take(&mut p, &open), Poll::Ready(Err(Closed)));
    }

    #[test]
    fn an_attempt_without_a_free_number_gets_none() {
        let mut p = Pending::new(0);
        let tickets: Vec<Ticket> = (0..=255u32).map(|_| p.register(echo()).unwrap()).collect();
        assert_eq!(p.add_attempt(&tickets[0], 1), None);
        // A number answered for a foreign request's attempt, reused: the id tells apart.
        p.cancel(&tickets[1]);
        let again = p.add_attempt(&tickets[0], 1).unwrap();
        assert_eq!(again, 1);
        let reply = reply_to(&tickets[0].request.with_sequence(again));
        assert_eq!(fill(&mut p, &reply, vec![9]), Ok(false));
        assert_eq!(
            take_attempt(&mut p, &tickets[0]),
            Poll::Ready(Ok((vec![9], 1)))
        );
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
