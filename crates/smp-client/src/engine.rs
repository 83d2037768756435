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
    waiting: HashMap<u8, (Header, W)>,
}

impl<W> Pending<W> {
    /// An empty table whose first sequence number is `start`.
    pub(crate) fn new(start: u8) -> Self {
        Self {
            next: start,
            waiting: HashMap::new(),
        }
    }

    /// Registers `request` under the next free sequence number, which is written into
    /// the returned header. `None` when all 256 numbers wait for replies.
    pub(crate) fn register(&mut self, request: Header, waiter: W) -> Option<Header> {
        for _ in 0..=u8::MAX {
            let sequence = self.next;
            self.next = self.next.wrapping_add(1);
            if let Entry::Vacant(slot) = self.waiting.entry(sequence) {
                let request = request.with_sequence(sequence);
                slot.insert((request, waiter));
                return Some(request);
            }
        }
        None
    }

    /// Takes the waiter that `reply` answers, if any.
    pub(crate) fn complete(&mut self, reply: &Header) -> Option<W> {
        match self.waiting.get(&reply.sequence) {
            Some((request, _)) if request.is_answered_by(reply) => self
                .waiting
                .remove(&reply.sequence)
                .map(|(_, waiter)| waiter),
            _ => None,
        }
    }

    /// Forgets the request registered under `sequence`.
    pub(crate) fn cancel(&mut self, sequence: u8) {
        self.waiting.remove(&sequence);
    }

    /// Forgets every request, handing their waiters back.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = W> + '_ {
        self.waiting.drain().map(|(_, (_, waiter))| waiter)
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
            .map(|i| p.register(echo(), i).unwrap().sequence)
            .collect();
        assert_eq!(seqs, [254, 255, 0, 1]);
    }

    #[test]
    fn busy_sequences_are_skipped_and_exhaustion_is_reported() {
        let mut p = Pending::new(0);
        for i in 0..=255u32 {
            assert!(p.register(echo(), i).is_some());
        }
        assert!(p.register(echo(), 999).is_none());
        p.cancel(17);
        assert_eq!(p.register(echo(), 1000).unwrap().sequence, 17);
    }

    #[test]
    fn only_the_matching_reply_completes() {
        let mut p = Pending::new(10);
        let request = p.register(echo(), "echo").unwrap();
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
        p.cancel(old.sequence); // timed out
        let new = p.register(echo(), "new").unwrap();
        assert_ne!(old.sequence, new.sequence);
        let late = Header::new(Op::WriteRsp, group::OS, 0, 3).with_sequence(old.sequence);
        assert_eq!(p.complete(&late), None);
        let own = late.with_sequence(new.sequence);
        assert_eq!(p.complete(&own), Some("new"));
    }

    #[test]
    fn drain_returns_every_waiter() {
        let mut p = Pending::new(0);
        p.register(echo(), 1).unwrap();
        p.register(echo(), 2).unwrap();
        let mut all: Vec<_> = p.drain().collect();
        all.sort();
        assert_eq!(all, [1, 2]);
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
