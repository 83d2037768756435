//! The progress bar of transfers: bytes, rate and ETA on stderr, only on a terminal.

use std::cell::Cell;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use smp_client::Progress;

/// The bar's layout. `{speed}` is the rate and the time left, once they are known.
const TEMPLATE: &str = "{msg} [{bar:30}] {bytes}/{total_bytes}{speed}";

/// How long the rate is measured before it is shown, and an ETA with it.
const MEASURED_FOR: Duration = Duration::from_millis(500);

/// The rate of a transfer, measured from the first bytes the device confirmed rather
/// than from the start: the first chunk of an image upload may wait seconds while the
/// device erases the slot, which says nothing of the rate (it made a 2 s upload show
/// "ETA 2m"). Until the rate has been measured for [`MEASURED_FOR`], there is none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Rate {
    /// When the first bytes were confirmed, and how many.
    first: Option<(Instant, u64)>,
    /// The latest report: when, and bytes confirmed.
    latest: Option<(Instant, u64)>,
}

impl Rate {
    /// Takes the report that `done` bytes are confirmed at `now`.
    fn record(&mut self, now: Instant, done: u64) {
        if done == 0 {
            return;
        }
        if self.first.is_none() {
            self.first = Some((now, done));
        }
        self.latest = Some((now, done));
    }

    /// Bytes per second, once measured for long enough over some bytes.
    fn bytes_per_second(&self) -> Option<f64> {
        let ((t0, done0), (t1, done1)) = (self.first?, self.latest?);
        let span = t1.checked_duration_since(t0)?;
        if span < MEASURED_FOR || done1 <= done0 {
            return None;
        }
        Some((done1 - done0) as f64 / span.as_secs_f64())
    }

    /// The time left to transfer `total` bytes at the measured rate, counted from the
    /// latest report.
    fn eta(&self, now: Instant, total: u64) -> Option<Duration> {
        let rate = self.bytes_per_second()?;
        let (at, done) = self.latest?;
        let left = total.saturating_sub(done) as f64 / rate;
        let since = now.saturating_duration_since(at).as_secs_f64();
        Some(Duration::from_secs_f64((left - since).max(0.0)))
    }

    /// ` 873.74 KiB/s ETA 3s`, or nothing before the rate is known.
    fn render(&self, now: Instant, total: Option<u64>, out: &mut dyn std::fmt::Write) {
        let Some(rate) = self.bytes_per_second() else {
            return;
        };
        let _ = write!(out, " {}/s", HumanBytes(rate as u64));
        if let Some(eta) = total.and_then(|total| self.eta(now, total)) {
            let _ = write!(out, " ETA {:#}", indicatif::HumanDuration(eta));
        }
    }
}

/// A transfer's progress bar and clock. Hidden when stderr is not a terminal, so piped
/// and scripted runs print nothing extra.
#[derive(Debug)]
pub(crate) struct Transfer<'a> {
    bar: Option<ProgressBar>,
    started: Instant,
    /// The last report, kept where an interruption's message finds it.
    last: &'a Cell<Option<Progress>>,
    /// The measured rate, shared with the bar's `{speed}`.
    rate: Arc<Mutex<Rate>>,
}

impl<'a> Transfer<'a> {
    /// Starts the clock, and a bar labelled `label` when stderr is a terminal. `total`
    /// is the size when known (a download learns it from the first reply). Each report
    /// is also kept in `last`.
    pub(crate) fn start(label: &str, total: Option<u64>, last: &'a Cell<Option<Progress>>) -> Self {
        let rate = Arc::new(Mutex::new(Rate::default()));
        let bar = std::io::stderr().is_terminal().then(|| {
            let shown = Arc::clone(&rate);
            let speed = move |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                let rate = *shown.lock().unwrap_or_else(PoisonError::into_inner);
                rate.render(Instant::now(), state.len(), out);
            };
            let style = ProgressStyle::with_template(TEMPLATE)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .with_key("speed", speed)
                .progress_chars("=> ");
            ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr())
                .with_style(style)
                .with_message(label.to_owned())
        });
        last.set(total.map(|total| Progress::new(0, total)));
        Self {
            bar,
            started: Instant::now(),
            last,
            rate,
        }
    }

    /// Shows the client's progress report.
    pub(crate) fn update(&self, progress: Progress) {
        self.last.set(Some(progress));
        if let Some(bar) = &self.bar {
            self.rate
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record(Instant::now(), progress.done);
            if bar.length() != Some(progress.total) {
                bar.set_length(progress.total);
            }
            bar.set_position(progress.done);
        }
    }

    /// Removes the bar and returns the time since the start.
    pub(crate) fn finish(self) -> Duration {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        self.started.elapsed()
    }
}

impl Drop for Transfer<'_> {
    fn drop(&mut self) {
        // A transfer that failed leaves no half-drawn bar above the error message.
        if let Some(bar) = &self.bar {
            if !bar.is_finished() {
                bar.finish_and_clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_rate_or_eta_until_the_rate_is_measured() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let shown = |rate: &Rate, now| {
            let mut out = String::new();
            rate.render(now, Some(100_000), &mut out);
            out
        };
        let mut rate = Rate::default();
        // The slot erase: nothing confirmed for 2 s, then the first chunk.
        rate.record(at(0), 0);
        assert_eq!(shown(&rate, at(1000)), "");
        rate.record(at(2000), 1000);
        // One report is no rate (from the start it would be 500 B/s: "ETA 3m").
        assert_eq!(rate.bytes_per_second(), None);
        assert_eq!(shown(&rate, at(2100)), "");
        rate.record(at(2200), 10_000);
        assert_eq!(shown(&rate, at(2200)), "", "measured for 200 ms only");
        // 40 KB over the 500 ms after the first chunk: 80 KB/s, 59 KB left.
        rate.record(at(2500), 41_000);
        assert_eq!(rate.bytes_per_second(), Some(80_000.0));
        assert_eq!(
            rate.eta(at(2500), 100_000),
            Some(Duration::from_micros(737_500))
        );
        assert_eq!(shown(&rate, at(2500)), " 78.12 KiB/s ETA 1s");
        // Time passes without a report: the estimate counts down, not below 0.
        assert_eq!(
            rate.eta(at(3000), 100_000),
            Some(Duration::from_micros(237_500))
        );
        assert_eq!(rate.eta(at(9000), 100_000), Some(Duration::ZERO));
        // A download of unknown length: the rate, no ETA.
        let mut out = String::new();
        rate.render(at(2500), None, &mut out);
        assert_eq!(out, " 78.12 KiB/s");
    }

    #[test]
    fn the_template_is_valid() {
        assert!(ProgressStyle::with_template(TEMPLATE).is_ok());
    }

    #[test]
    fn updates_without_a_terminal_do_nothing() {
        // Test runs capture stderr: no bar, but the clock runs.
        let last = Cell::new(None);
        let transfer = Transfer::start("x", None, &last);
        transfer.update(Progress::new(5, 10));
        assert_eq!(last.get(), Some(Progress::new(5, 10)));
        assert!(transfer.finish() < Duration::from_secs(60));
    }
}
