//! When the lines of a message may go out, without IO: time is passed in.

use tokio::time::Instant;

use crate::options::Pacing;

/// The pacing state of one writer: how many lines the current burst holds, and when the
/// last one went out.
#[derive(Debug)]
pub(crate) struct Pacer {
    pacing: Pacing,
    in_burst: usize,
    last_write: Option<Instant>,
    /// A loss was noted: [`Pacing::until_loss`] pacing applies from now on.
    lost: bool,
}

/// What the writer may do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    /// Wait until then first, if set.
    pub(crate) not_before: Option<Instant>,
    /// Lines that may then go out back to back (at least 1).
    pub(crate) lines: usize,
}

impl Pacer {
    pub(crate) fn new(pacing: Pacing) -> Self {
        Self {
            pacing,
            in_burst: 0,
            last_write: None,
            lost: false,
        }
    }

    /// The client noted a loss: pacing that waits for one starts.
    pub(crate) fn note_loss(&mut self) {
        self.lost = true;
    }

    /// Whether lines are paced now.
    pub(crate) fn paced(&self) -> bool {
        !self.pacing.is_none() && (self.lost || !self.pacing.until_loss())
    }

    /// The next slot for lines, at time `now`.
    pub(crate) fn next_slot(&mut self, now: Instant) -> Slot {
        if !self.paced() {
            return Slot {
                not_before: None,
                lines: usize::MAX,
            };
        }
        let burst = self.pacing.burst();
        let Some(last) = self.last_write else {
            return Slot {
                not_before: None,
                lines: burst,
            };
        };
        let resume = last + self.pacing.pause();
        if now >= resume {
            // The device had its pause: a new burst starts.
            self.in_burst = 0;
        }
        if self.in_burst < burst {
            return Slot {
                not_before: None,
                lines: burst - self.in_burst,
            };
        }
        self.in_burst = 0;
        Slot {
            not_before: Some(resume),
            lines: burst,
        }
    }

    /// `lines` lines went out, the last one at `now`.
    pub(crate) fn wrote(&mut self, lines: usize, now: Instant) {
        self.in_burst = self.in_burst.saturating_add(lines);
        self.last_write = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const PAUSE: Duration = Duration::from_millis(5);

    #[test]
    fn bursts_then_pauses() {
        let t0 = Instant::now();
        let mut p = Pacer::new(Pacing::new(2, PAUSE));
        assert!(p.paced());
        let slot = p.next_slot(t0);
        assert_eq!(
            slot,
            Slot {
                not_before: None,
                lines: 2
            }
        );
        p.wrote(2, t0);
        // A third line must wait for the pause after the second.
        let slot = p.next_slot(t0);
        assert_eq!(
            slot,
            Slot {
                not_before: Some(t0 + PAUSE),
                lines: 2
            }
        );
        p.wrote(1, t0 + PAUSE);
        // One line of the new burst is left.
        assert_eq!(
            p.next_slot(t0 + PAUSE),
            Slot {
                not_before: None,
                lines: 1
            }
        );
        // After a pause of its own, the burst starts over.
        let later = t0 + PAUSE * 3;
        assert_eq!(
            p.next_slot(later),
            Slot {
                not_before: None,
                lines: 2
            }
        );
    }

    #[test]
    fn the_count_carries_over_between_messages() {
        let t0 = Instant::now();
        let mut p = Pacer::new(Pacing::new(3, PAUSE));
        p.wrote(2, t0);
        let soon = t0 + PAUSE / 2;
        assert_eq!(
            p.next_slot(soon),
            Slot {
                not_before: None,
                lines: 1
            }
        );
        p.wrote(1, soon);
        assert_eq!(
            p.next_slot(soon),
            Slot {
                not_before: Some(soon + PAUSE),
                lines: 3
            }
        );
    }

    #[test]
    fn auto_pacing_waits_only_after_a_loss() {
        let t0 = Instant::now();
        let mut p = Pacer::new(Pacing::auto());
        let unpaced = Slot {
            not_before: None,
            lines: usize::MAX,
        };
        assert_eq!(p.next_slot(t0), unpaced);
        p.wrote(8, t0);
        assert_eq!(p.next_slot(t0), unpaced);
        assert!(!p.paced());
        p.note_loss();
        assert!(p.paced());
        // The lines written before count: the next ones wait for the pause.
        assert_eq!(
            p.next_slot(t0),
            Slot {
                not_before: Some(t0 + Pacing::DEFAULT_PAUSE),
                lines: Pacing::DEFAULT_BURST
            }
        );
        // A loss changes nothing for fixed pacing or none.
        for pacing in [Pacing::none(), Pacing::new(2, PAUSE)] {
            let mut p = Pacer::new(pacing);
            let before = p.paced();
            p.note_loss();
            assert_eq!(p.paced(), before, "{pacing}");
        }
    }

    #[test]
    fn no_pacing_never_waits() {
        let t0 = Instant::now();
        for pacing in [Pacing::none(), Pacing::new(1, Duration::ZERO)] {
            let mut p = Pacer::new(pacing);
            for _ in 0..3 {
                assert_eq!(
                    p.next_slot(t0),
                    Slot {
                        not_before: None,
                        lines: usize::MAX
                    }
                );
                p.wrote(usize::MAX, t0);
            }
        }
    }
}
