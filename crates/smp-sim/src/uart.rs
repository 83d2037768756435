//! The receive side of Zephyr's UART MCUmgr transport (`uart_mcumgr.c`), without IO:
//! received bytes become lines in a few line buffers, or are lost. Time is passed in.
//!
//! ```text
//! bytes ─▶ line buffer (taken at a line's first byte) ─▶ line, at its newline
//!             none free: the line is lost (burst overrun)
//!             line longer than the buffer: the line is lost
//! ```
//!
//! Zephyr's UART interrupt puts each line into one of `CONFIG_UART_MCUMGR_RX_BUF_COUNT`
//! buffers of `CONFIG_UART_MCUMGR_RX_BUF_SIZE` bytes and hands it to the work queue,
//! which frees the buffer once it has decoded the line. A line that starts while every
//! buffer is taken is ignored up to its newline, and so is a line too long for its
//! buffer. On a real UART the baud rate spaces the lines out; on native_sim's
//! pseudo-terminal nothing does, and its UART, which takes input about every 10 ms,
//! loses every message written as more than two lines at once. The model: a line holds
//! its buffer for `hold` after its newline arrived, or until the device answers
//! something after it arrived ([`LineRx::taken_in`]), whichever comes first: it cannot
//! answer before its work queue has taken in the lines received so far.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Why a line was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lost {
    /// Every line buffer was taken when it started.
    Overrun,
    /// Longer than a line buffer.
    TooLong,
}

/// What the receive side made of the bytes given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rx {
    /// A whole line, newline included, taken in by the work queue.
    Line(Vec<u8>),
    /// A line lost, at its newline.
    Lost(Lost),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between lines.
    Idle,
    /// Filling a buffer.
    Filling,
    /// Ignoring the rest of a lost line.
    Ignoring(Lost),
}

/// The UART's line buffers and the line being received.
#[derive(Debug)]
pub(crate) struct LineRx {
    /// Bytes a buffer holds, newline included.
    capacity: usize,
    /// How many buffers; `None`: unlimited.
    buffers: Option<usize>,
    hold: Duration,
    /// The buffers holding finished lines, earliest first: when the line arrived, and
    /// when the buffer is free again at the latest.
    held: VecDeque<(Instant, Instant)>,
    line: Vec<u8>,
    state: State,
}

impl LineRx {
    /// Line buffers of `capacity` bytes, `buffers` of them (`None`: as many as it takes),
    /// each held for `hold` after its line ends.
    pub(crate) fn new(capacity: usize, buffers: Option<usize>, hold: Duration) -> Self {
        Self {
            capacity,
            buffers,
            hold,
            held: VecDeque::new(),
            line: Vec::new(),
            state: State::Idle,
        }
    }

    /// Receives `bytes`, all arriving at `now`; returns what became of the lines that
    /// ended in them.
    pub(crate) fn push(&mut self, bytes: &[u8], now: Instant) -> Vec<Rx> {
        let mut out = Vec::new();
        for &byte in bytes {
            if self.state == State::Idle {
                // A line's first byte takes a buffer.
                while self.held.front().is_some_and(|&(_, until)| until <= now) {
                    self.held.pop_front();
                }
                self.state = match self.buffers {
                    Some(n) if self.held.len() >= n => State::Ignoring(Lost::Overrun),
                    _ => State::Filling,
                };
                self.line.clear();
            }
            if self.state == State::Filling {
                if self.line.len() >= self.capacity {
                    // Zephyr frees the buffer at once and ignores the rest of the line.
                    self.state = State::Ignoring(Lost::TooLong);
                    self.line.clear();
                } else {
                    self.line.push(byte);
                }
            }
            if byte == b'\n' {
                match self.state {
                    State::Filling => {
                        self.held.push_back((now, now + self.hold));
                        out.push(Rx::Line(std::mem::take(&mut self.line)));
                    }
                    State::Ignoring(why) => out.push(Rx::Lost(why)),
                    State::Idle => {}
                }
                self.state = State::Idle;
            }
        }
        out
    }

    /// The work queue has taken in every line that arrived by `at` (the device answered
    /// something then): their buffers are free.
    pub(crate) fn taken_in(&mut self, at: Instant) {
        while self.held.front().is_some_and(|&(arrived, _)| arrived <= at) {
            self.held.pop_front();
        }
    }

    /// Forgets everything, as a reboot does.
    pub(crate) fn reset(&mut self) {
        self.held.clear();
        self.line.clear();
        self.state = State::Idle;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOLD: Duration = Duration::from_millis(10);

    fn lines(rx: &[Rx]) -> Vec<&[u8]> {
        rx.iter()
            .filter_map(|r| match r {
                Rx::Line(line) => Some(line.as_slice()),
                Rx::Lost(_) => None,
            })
            .collect()
    }

    #[test]
    fn two_buffers_take_two_lines_of_a_burst_and_lose_the_rest() {
        let t0 = Instant::now();
        let mut rx = LineRx::new(128, Some(2), HOLD);
        let got = rx.push(b"one\ntwo\nthree\nfour\n", t0);
        assert_eq!(
            got,
            vec![
                Rx::Line(b"one\n".to_vec()),
                Rx::Line(b"two\n".to_vec()),
                Rx::Lost(Lost::Overrun),
                Rx::Lost(Lost::Overrun),
            ]
        );
        // Still held just before the hold ends; free once it has.
        assert_eq!(
            rx.push(b"five\n", t0 + HOLD - Duration::from_millis(1)),
            vec![Rx::Lost(Lost::Overrun)]
        );
        assert_eq!(
            lines(&rx.push(b"six\nseven\neight\n", t0 + HOLD)),
            [b"six\n".as_slice(), b"seven\n"]
        );
    }

    #[test]
    fn paced_lines_all_arrive() {
        // The client's pacing after a loss: two lines, then 20 ms.
        let t0 = Instant::now();
        let mut rx = LineRx::new(128, Some(2), HOLD);
        for burst in 0..5u32 {
            let at = t0 + Duration::from_millis(20) * burst;
            assert_eq!(lines(&rx.push(b"a\nb\n", at)).len(), 2, "burst {burst}");
        }
    }

    #[test]
    fn an_answer_frees_the_buffers_of_the_lines_before_it() {
        let t0 = Instant::now();
        let mut rx = LineRx::new(128, Some(2), HOLD);
        let soon = t0 + Duration::from_millis(1);
        assert_eq!(lines(&rx.push(b"a\nb\n", t0)).len(), 2);
        // The device answered right after: a request that follows at once gets through.
        rx.taken_in(t0);
        assert_eq!(lines(&rx.push(b"c\nd\n", soon)).len(), 2);
        // An answer from before those lines frees nothing.
        rx.taken_in(t0);
        assert_eq!(rx.push(b"e\n", soon), vec![Rx::Lost(Lost::Overrun)]);
    }

    #[test]
    fn a_line_arriving_in_pieces_takes_its_buffer_at_its_first_byte() {
        let t0 = Instant::now();
        let mut rx = LineRx::new(128, Some(1), HOLD);
        assert!(rx.push(b"hal", t0).is_empty());
        assert_eq!(lines(&rx.push(b"f\n", t0 + HOLD * 5)), [b"half\n"]);
        // The buffer is held from the newline on.
        assert_eq!(
            rx.push(b"x\n", t0 + HOLD * 5),
            vec![Rx::Lost(Lost::Overrun)]
        );
    }

    #[test]
    fn a_line_longer_than_its_buffer_is_lost_and_frees_it() {
        let t0 = Instant::now();
        let mut rx = LineRx::new(8, Some(1), HOLD);
        // 8 bytes with the newline fit; 9 do not.
        assert_eq!(lines(&rx.push(b"1234567\n", t0)), [b"1234567\n"]);
        let later = t0 + HOLD;
        assert_eq!(
            rx.push(b"12345678\nok\n", later),
            vec![Rx::Lost(Lost::TooLong), Rx::Line(b"ok\n".to_vec())]
        );
    }

    #[test]
    fn without_a_buffer_limit_nothing_is_lost() {
        let t0 = Instant::now();
        let mut rx = LineRx::new(128, None, HOLD);
        let burst = b"line\n".repeat(50);
        assert_eq!(lines(&rx.push(&burst, t0)).len(), 50);
        rx.push(b"cut", t0);
        rx.reset();
        assert_eq!(lines(&rx.push(b"new\n", t0)), [b"new\n"]);
    }
}
