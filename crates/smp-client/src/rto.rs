//! Retransmission timers that learn the round trip, without IO: one estimator per kind of
//! request, fed with measured round trips and told about timeouts; time is passed in.
//!
//! Each estimator follows RFC 6298 (TCP's retransmission timer), section by section:
//!
//! - 2.2: the first round trip `R` sets `SRTT = R` and `RTTVAR = R / 2`.
//! - 2.3: every later one sets `RTTVAR = 3/4 RTTVAR + 1/4 |SRTT − R|`, then
//!   `SRTT = 7/8 SRTT + 1/8 R`.
//! - 2.3 and 2.4: `RTO = SRTT + max(G, 4 RTTVAR)`, at least a minimum. The clock granularity
//!   `G` is [`GRANULARITY`]: the timer's own millisecond and the scheduling jitter of a
//!   host shared with other work. The minimum is the retry policy's
//!   [`min_rto`](crate::RetryPolicy::min_rto); RFC 6298's one second is meant for
//!   delayed TCP acknowledgements, which SMP does not have.
//! - 3, Karn's rule: a round trip is never measured from the wrong send. Each attempt of
//!   a request goes under a sequence number of its own (a late reply to any attempt still
//!   completes the request), so the reply says which attempt it answers and re-sent
//!   requests are measured too, as QUIC's packet numbers allow (RFC 9002 section 5);
//!   when an attempt has to reuse a number, its request gives no sample at all.
//! - 5.5 and 5.7: each expiry doubles the timer, and it stays doubled until a request
//!   answered on its first attempt gives a new sample.
//!
//! What differs from TCP: there is no single connection timer but one estimator per
//! [`Kind`] of request, because the device's processing time is part of what is measured
//! and differs by command: an echo is answered at once, the first chunk of an image
//! upload waits for a slot erase, the last one may wait for the image check, a file
//! system write for the flash. A kind never learns from another, and a kind without a
//! sample has no timer at all ([`Timers::rto`] is `None`): its requests wait the caller's
//! full timeout, as before, so that a slow command is never sent again early only
//! because nothing is known about it yet. Busy replies (ENOMEM, EBUSY) are not samples
//! either: the device answered them without doing the work.

use std::collections::HashMap;
use std::time::Duration;

use smp_transport::header::{Header, Op};

/// `G` of RFC 6298: the timer's granularity plus the scheduling jitter of a host shared
/// with other work.
pub(crate) const GRANULARITY: Duration = Duration::from_millis(5);
/// Doublings of a timer at most: far beyond any timeout already.
const MAX_BACKOFF: u32 = 16;

/// Which part of a transfer a request is, when that changes how long the device takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Phase {
    /// Any request, and the chunks of a transfer between its first and its last.
    Other,
    /// The first chunk of an upload: the device may erase the slot (or create the file).
    First,
    /// The last chunk of an upload: the device may check the image.
    Last,
}

/// A kind of request: the requests whose round trips one estimator learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Kind {
    op: Op,
    group: u16,
    command: u8,
    phase: Phase,
}

impl Kind {
    /// The kind of the request `header`, in `phase`.
    pub(crate) fn new(header: &Header, phase: Phase) -> Self {
        Self {
            op: header.op,
            group: header.group,
            command: header.command,
            phase,
        }
    }
}

/// The round-trip estimate of one kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Estimator {
    /// `SRTT` and `RTTVAR`, once a sample came.
    estimate: Option<(Duration, Duration)>,
    /// Timer expiries since the last sample: the timer is doubled this many times.
    backoff: u32,
}

impl Estimator {
    const fn new() -> Self {
        Self {
            estimate: None,
            backoff: 0,
        }
    }

    /// Takes the round trip of a request answered on its only attempt.
    fn sample(&mut self, rtt: Duration) {
        self.estimate = Some(match self.estimate {
            None => (rtt, rtt / 2),
            Some((srtt, rttvar)) => {
                let deviation = srtt.abs_diff(rtt);
                let rttvar = (rttvar * 3 + deviation) / 4;
                let srtt = (srtt * 7 + rtt) / 8;
                (srtt, rttvar)
            }
        });
        self.backoff = 0;
    }

    /// A timer expired: the next one waits twice as long.
    fn expired(&mut self) {
        self.backoff = (self.backoff + 1).min(MAX_BACKOFF);
    }

    /// The smoothed round trip, once known.
    #[cfg(test)]
    fn srtt(&self) -> Option<Duration> {
        self.estimate.map(|(srtt, _)| srtt)
    }

    /// The retransmission timeout, at least `min`, once a sample came.
    fn rto(&self, min: Duration) -> Option<Duration> {
        let (srtt, rttvar) = self.estimate?;
        let rto = (srtt + (rttvar * 4).max(GRANULARITY)).max(min);
        Some(rto.saturating_mul(1 << self.backoff))
    }
}

/// The estimators of one client (one device), by kind of request.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    kinds: HashMap<Kind, Estimator>,
}

impl Timers {
    /// How long to wait for a reply to a request of `kind` sent now before sending it
    /// again: `None` while the kind has no sample (then the caller's timeout applies).
    pub(crate) fn rto(&self, kind: Kind, min: Duration) -> Option<Duration> {
        self.kinds.get(&kind).and_then(|e| e.rto(min))
    }

    /// The shortest retransmission timeout of any kind with a sample: how soon the device
    /// answers at best, for probes (see `Client::wait_for`).
    pub(crate) fn fastest(&self, min: Duration) -> Option<Duration> {
        self.kinds.values().filter_map(|e| e.rto(min)).min()
    }

    /// The smoothed round trip of `kind`, once known.
    #[cfg(test)]
    pub(crate) fn srtt(&self, kind: Kind) -> Option<Duration> {
        self.kinds.get(&kind).and_then(Estimator::srtt)
    }

    /// A request of `kind` was answered `rtt` after its only attempt was sent.
    pub(crate) fn sample(&mut self, kind: Kind, rtt: Duration) {
        self.kinds
            .entry(kind)
            .or_insert_with(Estimator::new)
            .sample(rtt);
    }

    /// A request of `kind` got no reply within its wait and goes again.
    pub(crate) fn expired(&mut self, kind: Kind) {
        if let Some(estimator) = self.kinds.get_mut(&kind) {
            estimator.expired();
        }
    }
}

/// One request's attempts: when each was sent, and the sample its reply gives, with time
/// passed in.
///
/// Each attempt normally goes under a sequence number of its own, so the reply says which
/// attempt it answers and the round trip is measured from that attempt's send, re-sent
/// requests included. When an attempt had to reuse the previous number (all 256 were
/// in use), which attempt a reply answers is unknown, and Karn's rule applies: only a
/// request sent once gives a sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attempts<I> {
    kind: Kind,
    first: Option<I>,
    /// When the attempts after the first were sent (allocated only by a re-send).
    again: Vec<I>,
    /// An attempt went under the sequence number of the one before.
    ambiguous: bool,
}

impl<I: Copy + std::ops::Sub<Output = Duration>> Attempts<I> {
    pub(crate) fn new(kind: Kind) -> Self {
        Self {
            kind,
            first: None,
            again: Vec::new(),
            ambiguous: false,
        }
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    /// The next attempt was sent at `now`, under a sequence number of its own or not.
    pub(crate) fn sent(&mut self, now: I, own_sequence: bool) {
        if self.first.is_none() {
            self.first = Some(now);
        } else {
            self.again.push(now);
            self.ambiguous |= !own_sequence;
        }
    }

    /// The reply to attempt `attempt` (from 0, as its sequence number says) came at
    /// `now`: the round trip to learn from, unless it is ambiguous.
    pub(crate) fn sample(&self, attempt: u32, now: I) -> Option<Sample> {
        if self.ambiguous {
            return None;
        }
        let sent = match attempt.checked_sub(1) {
            None => self.first?,
            Some(again) => *self.again.get(usize::try_from(again).ok()?)?,
        };
        Some(Sample {
            kind: self.kind,
            rtt: now - sent,
        })
    }
}

/// A round trip to learn from, once the reply has turned out not to be a busy one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sample {
    pub(crate) kind: Kind,
    pub(crate) rtt: Duration,
}

#[cfg(test)]
mod tests {
    use smp_transport::header::group;

    use super::*;
    use crate::RetryPolicy;

    const MIN: Duration = Duration::from_millis(10);

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn echo() -> Kind {
        Kind::new(&Header::new(Op::Write, group::OS, 0, 4), Phase::Other)
    }

    fn chunk(phase: Phase) -> Kind {
        Kind::new(&Header::new(Op::Write, group::IMAGE, 1, 1400), phase)
    }

    /// Round trips with a little jitter around `center`.
    fn jittered(center: u64, count: usize) -> impl Iterator<Item = Duration> {
        (0..count).map(move |i| ms(center) + Duration::from_micros((i as u64 * 7919) % 2000))
    }

    #[test]
    fn nothing_is_known_before_the_first_sample() {
        let mut timers = Timers::default();
        assert_eq!(timers.rto(echo(), MIN), None);
        // A timeout of a kind without samples changes nothing.
        timers.expired(echo());
        assert_eq!(timers.rto(echo(), MIN), None);
    }

    #[test]
    fn the_first_sample_gives_three_round_trips() {
        let mut timers = Timers::default();
        timers.sample(echo(), ms(20));
        // SRTT 20, RTTVAR 10: RTO = 20 + 4 × 10 (RFC 6298 2.2).
        assert_eq!(timers.srtt(echo()), Some(ms(20)));
        assert_eq!(timers.rto(echo(), MIN), Some(ms(60)));
    }

    #[test]
    fn converges_to_the_round_trip() {
        let mut timers = Timers::default();
        for rtt in jittered(20, 200) {
            timers.sample(echo(), rtt);
        }
        let srtt = timers.srtt(echo()).unwrap();
        assert!(srtt >= ms(20) && srtt <= ms(22), "SRTT {srtt:?}");
        // The variation has shrunk to the jitter: the timer is a little above the round
        // trip, the granularity's 5 ms at most plus the jitter.
        let rto = timers.rto(echo(), MIN).unwrap();
        assert!(rto >= ms(25) && rto <= ms(30), "RTO {rto:?}");

        // The round trip doubles (a slower route): the estimate follows within a few
        // dozen samples, and the variation keeps the timer above it meanwhile.
        for rtt in jittered(40, 5) {
            timers.sample(echo(), rtt);
            let rto = timers.rto(echo(), MIN).unwrap();
            assert!(rto > rtt, "RTO {rto:?} below the round trip {rtt:?}");
        }
        for rtt in jittered(40, 60) {
            timers.sample(echo(), rtt);
        }
        let srtt = timers.srtt(echo()).unwrap();
        assert!(srtt >= ms(39) && srtt <= ms(42), "SRTT {srtt:?}");
    }

    #[test]
    fn the_timer_never_goes_below_its_minimum() {
        let mut timers = Timers::default();
        for _ in 0..100 {
            timers.sample(echo(), Duration::from_micros(80));
        }
        assert_eq!(timers.rto(echo(), MIN), Some(MIN));
        assert_eq!(timers.rto(echo(), ms(200)), Some(ms(200)));
    }

    #[test]
    fn backs_off_on_consecutive_losses_until_a_new_sample() {
        let mut timers = Timers::default();
        timers.sample(echo(), ms(20));
        let rto = timers.rto(echo(), MIN).unwrap();
        let mut waits = Vec::new();
        for _ in 0..4 {
            timers.expired(echo());
            waits.push(timers.rto(echo(), MIN).unwrap());
        }
        assert_eq!(waits, [rto * 2, rto * 4, rto * 8, rto * 16]);
        // Doubling stops before it overflows.
        for _ in 0..100 {
            timers.expired(echo());
        }
        assert_eq!(timers.rto(echo(), MIN), Some(rto * (1 << MAX_BACKOFF)));
        // A request answered on its first attempt ends the backoff.
        timers.sample(echo(), ms(20));
        assert!(timers.rto(echo(), MIN).unwrap() <= rto);
    }

    #[test]
    fn each_attempts_reply_is_measured_from_its_own_send() {
        let sample = |rtt| {
            Some(Sample {
                kind: echo(),
                rtt: ms(rtt),
            })
        };
        let mut attempts = Attempts::<Duration>::new(echo());
        attempts.sent(ms(0), true);
        assert_eq!(attempts.sample(0, ms(21)), sample(21));
        // Sent again at 100 ms under a new sequence number: a reply at 130 ms that
        // answers the second attempt took 30 ms; one that answers the first, 130 ms (the
        // re-send was spurious: the timer learns that it was too short).
        attempts.sent(ms(100), true);
        assert_eq!(attempts.sample(1, ms(130)), sample(30));
        assert_eq!(attempts.sample(0, ms(130)), sample(130));
        // An attempt the reply cannot be for is no sample.
        assert_eq!(attempts.sample(2, ms(130)), None);
    }

    #[test]
    fn ambiguous_round_trips_are_not_samples() {
        let mut attempts = Attempts::<Duration>::new(echo());
        attempts.sent(ms(0), true);
        // The re-send had to go under the first attempt's number (all were in use): the
        // reply at 130 ms may answer either (130 ms or 30 ms). Karn's rule takes neither.
        attempts.sent(ms(100), false);
        assert_eq!(attempts.sample(0, ms(130)), None);
        assert_eq!(attempts.sample(1, ms(130)), None);
    }

    #[test]
    fn kinds_learn_apart() {
        let mut timers = Timers::default();
        for _ in 0..10 {
            timers.sample(chunk(Phase::Other), ms(20));
        }
        // The slot erase of a first chunk learns nothing from the middle chunks...
        assert_eq!(timers.rto(chunk(Phase::First), MIN), None);
        assert_eq!(timers.rto(chunk(Phase::Last), MIN), None);
        assert_eq!(timers.rto(echo(), MIN), None);
        // ...and the middle chunks nothing from it.
        timers.sample(chunk(Phase::First), ms(3000));
        assert!(timers.rto(chunk(Phase::Other), MIN).unwrap() < ms(30));
        assert!(timers.rto(chunk(Phase::First), MIN).unwrap() >= ms(3000));
        // Expiries back off only their own kind.
        timers.expired(chunk(Phase::First));
        assert!(timers.rto(chunk(Phase::Other), MIN).unwrap() < ms(30));
    }

    #[test]
    fn probes_go_at_the_fastest_learned_timer() {
        let mut timers = Timers::default();
        assert_eq!(timers.fastest(MIN), None);
        timers.sample(chunk(Phase::First), ms(3000));
        timers.sample(echo(), ms(20));
        timers.sample(chunk(Phase::Other), ms(30));
        assert_eq!(timers.fastest(MIN), Some(ms(60)));
        timers.expired(echo());
        assert_eq!(timers.fastest(MIN), Some(ms(90)));
    }

    /// The waits of a request that is never answered, its timer learned at 60 ms.
    fn waits_without_reply(policy: &RetryPolicy, timeout: Duration) -> Vec<Duration> {
        let mut timers = Timers::default();
        timers.sample(echo(), ms(20));
        (0..=policy.retries)
            .map(|attempt| {
                let rto = timers.rto(echo(), policy.min_rto);
                let wait = policy.attempt_wait(timeout, attempt, rto);
                timers.expired(echo());
                wait
            })
            .collect()
    }

    #[test]
    fn never_exceeds_the_users_bound() {
        let timeout = ms(2500);
        for retries in [0, 1, 3, 6, 10, 30] {
            let policy = RetryPolicy::default().with_retries(retries);
            let waits = waits_without_reply(&policy, timeout);
            assert_eq!(waits.len() as u32, retries + 1, "attempts: retries + 1");
            let total: Duration = waits.iter().sum();
            assert!(
                total <= policy.budget(timeout),
                "{retries} retries: {total:?} > {:?}",
                policy.budget(timeout)
            );
            // No wait is longer than the timeout and its backoff; the last is the
            // timeout: a reply as slow as the user allows still counts.
            for (attempt, wait) in waits.iter().enumerate() {
                assert!(*wait <= timeout + policy.backoff_after(attempt as u32));
            }
            assert_eq!(waits.last(), Some(&timeout));
        }
        // With 3 retries: 60, 120 and 240 ms, then the timeout.
        let waits = waits_without_reply(&RetryPolicy::default(), timeout);
        assert_eq!(waits, [ms(60), ms(120), ms(240), timeout]);
        // A timer backed off beyond the timeout waits the timeout and the backoff, as
        // a request of a kind without samples does.
        let waits = waits_without_reply(&RetryPolicy::default().with_retries(8), ms(500));
        assert_eq!(waits[..4], [ms(60), ms(120), ms(240), ms(480)]);
        assert_eq!(waits[4], ms(500) + RetryPolicy::default().backoff_after(4));
    }

    #[test]
    fn a_minimum_as_long_as_the_timeout_keeps_the_fixed_timer() {
        let policy = RetryPolicy::default().with_min_rto(ms(2500));
        let fixed: Vec<_> = (0..=policy.retries)
            .map(|attempt| policy.attempt_wait(ms(2500), attempt, None))
            .collect();
        assert_eq!(waits_without_reply(&policy, ms(2500)), fixed);
    }
}
