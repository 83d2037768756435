//! The request engine's state, without IO: sequence numbers, the requests waiting for a
//! reply, and the retry schedule. The async [`Client`](crate::Client) drives it; tests
//! drive it directly.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::time::Duration;

use smp_transport::header::Header;

/// Sequence numbers in use and what waits on each.
///
/// A reply completes a waiter only when its sequence, group, command and op all answer
/// the registered request, so a late, duplicated or foreign reply can never complete
/// (or shift) another request.
#[derive(Debug)]
pub(crate) struct Pending<W> {
    next: u8,
    /// Tells registrations apart when a sequence number is reused.
    next_id: u64,
    waiting: HashMap<u8, Waiting<W>>,
    closed: bool,
}

#[derive(Debug)]
struct Waiting<W> {
    request: Header,
    id: u64,
    waiter: W,
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

impl<W> Pending<W> {
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
    pub(crate) fn register(&mut self, request: Header, waiter: W) -> Result<Ticket, RegisterError> {
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
                    waiter,
                });
                return Ok(Ticket { request, id });
            }
        }
        Err(RegisterError::Full)
    }

    /// Takes the waiter that `reply` answers, if any.
    pub(crate) fn complete(&mut self, reply: &Header) -> Option<W> {
        match self.waiting.get(&reply.sequence) {
            Some(waiting) if waiting.request.is_answered_by(reply) => self
                .waiting
                .remove(&reply.sequence)
                .map(|waiting| waiting.waiter),
            _ => None,
        }
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

    /// Refuses every later registration and hands back the waiters of those in flight.
    pub(crate) fn close(&mut self) -> Vec<W> {
        self.closed = true;
        self.waiting
            .drain()
            .map(|(_, waiting)| waiting.waiter)
            .collect()
    }

    /// Number of requests waiting.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }
}

/// How long to wait for replies, how often to retry and how to back off.
#[derive(Debug, Clone, PartialEq, Eq)]
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

    /// The longest a request can take when every attempt times out.
    pub fn budget(&self, timeout: Duration) -> Duration {
        (0..=self.retries).fold(Duration::ZERO, |total, attempt| {
            let pause = if attempt < self.retries {
                self.backoff_after(attempt)
            } else {
                Duration::ZERO
            };
            total + timeout + pause
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

    #[test]
    fn sequences_start_anywhere_and_wrap() {
        let mut p = Pending::new(254);
        let seqs: Vec<u8> = (0..4)
            .map(|i| p.register(echo(), i).unwrap().request.sequence)
            .collect();
        assert_eq!(seqs, [254, 255, 0, 1]);
    }

    #[test]
    fn busy_sequences_are_skipped_and_exhaustion_is_reported() {
        let mut p = Pending::new(0);
        let tickets: Vec<Ticket> = (0..=255u32)
            .map(|i| p.register(echo(), i).unwrap())
            .collect();
        assert_eq!(p.register(echo(), 999), Err(RegisterError::Full));
        p.cancel(&tickets[17]);
        assert_eq!(p.register(echo(), 1000).unwrap().request.sequence, 17);
    }

    #[test]
    fn only_the_matching_reply_completes() {
        let mut p = Pending::new(10);
        let request = p.register(echo(), "echo").unwrap().request;
        let reply = Header::new(Op::WriteRsp, group::OS, 0, 3).with_sequence(request.sequence);
        // Wrong op, group, command, sequence: nothing completes, nothing is lost.
        assert_eq!(
            p.complete(&Header {
                op: Op::ReadRsp,
                ..reply
            }),
            None
        );
        assert_eq!(p.complete(&Header { group: 1, ..reply }), None);
        assert_eq!(
            p.complete(&Header {
                command: 6,
                ..reply
            }),
            None
        );
        assert_eq!(p.complete(&reply.with_sequence(11)), None);
        assert_eq!(
            p.complete(&Header {
                op: Op::Write,
                ..reply
            }),
            None
        );
        assert_eq!(p.complete(&reply), Some("echo"));
        // A duplicate of the same reply finds nobody.
        assert_eq!(p.complete(&reply), None);
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn a_late_reply_never_completes_a_newer_request() {
        let mut p = Pending::new(0);
        let old = p.register(echo(), "old").unwrap();
        p.cancel(&old); // timed out
        let new = p.register(echo(), "new").unwrap().request;
        assert_ne!(old.request.sequence, new.sequence);
        let late = Header::new(Op::WriteRsp, group::OS, 0, 3).with_sequence(old.request.sequence);
        assert_eq!(p.complete(&late), None);
        let own = late.with_sequence(new.sequence);
        assert_eq!(p.complete(&own), Some("new"));
    }

    #[test]
    fn a_stale_ticket_cancels_nothing() {
        // A reply completes sequence 0, the number is reused by a new request before the
        // first request's guard cancels its ticket: the new request must stay.
        let mut p = Pending::new(0);
        let first = p.register(echo(), "first").unwrap();
        let reply = Header::new(Op::WriteRsp, group::OS, 0, 3).with_sequence(0);
        assert_eq!(p.complete(&reply), Some("first"));
        for _ in 0..255 {
            p.register(echo(), "filler").unwrap();
        }
        let reused = p.register(echo(), "reused").unwrap();
        assert_eq!(reused.request.sequence, 0);
        p.cancel(&first);
        assert_eq!(p.complete(&reply), Some("reused"));
    }

    #[test]
    fn close_returns_every_waiter_and_refuses_more() {
        let mut p = Pending::new(0);
        p.register(echo(), 1).unwrap();
        p.register(echo(), 2).unwrap();
        let mut all = p.close();
        all.sort();
        assert_eq!(all, [1, 2]);
        assert_eq!(p.len(), 0);
        assert_eq!(p.register(echo(), 3), Err(RegisterError::Closed));
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
