//! The progress bar of transfers: bytes, rate and ETA on stderr, only on a terminal.

use std::cell::Cell;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use smp_client::Progress;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bar's layout.
const TEMPLATE: &str = "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}";

/// A transfer's progress bar and clock. Hidden when stderr is not a terminal, so piped
/// and scripted runs print nothing extra.
#[derive(Debug)]
pub(crate) struct Transfer<'a> {
    bar: Option<ProgressBar>,
    started: Instant,
    /// The last report, kept where an interruption's message finds it.
    last: &'a Cell<Option<Progress>>,
}

impl<'a> Transfer<'a> {
    /// Starts the clock, and a bar labelled `label` when stderr is a terminal. `total`
    /// is the size when known (a download learns it from the first reply). Each report
    /// is also kept in `last`.
    pub(crate) fn start(label: &str, total: Option<u64>, last: &'a Cell<Option<Progress>>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let style = ProgressStyle::with_template(TEMPLATE)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
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
        }
    }

    /// Shows the client's progress report.
    pub(crate) fn update(&self, progress: Progress) {
        self.last.set(Some(progress));
        if let Some(bar) = &self.bar {
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
