//! Durations in messages for people.

use std::fmt;
use std::time::Duration;

/// Displays a duration for people: whole milliseconds below a second (`250 ms`), seconds
/// with one decimal below a minute (`2.5 s`), then minutes and seconds (`2 min 5 s`).
/// Error messages use it instead of `Duration`'s `Debug` form (`2.5s`, or
/// `2.500000000s` with a precision).
///
/// ```
/// use std::time::Duration;
/// use smp_transport::HumanDuration;
///
/// assert_eq!(HumanDuration(Duration::from_millis(2500)).to_string(), "2.5 s");
/// assert_eq!(HumanDuration(Duration::from_millis(250)).to_string(), "250 ms");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        if millis < 1000 {
            return write!(f, "{millis} ms");
        }
        // Rounded: to tenths of a second, from a minute on to whole seconds.
        let tenths = (millis + 50) / 100;
        if tenths < 600 {
            return write!(f, "{}.{} s", tenths / 10, tenths % 10);
        }
        let secs = (millis + 500) / 1000;
        write!(f, "{} min {} s", secs / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_seconds_minutes() {
        for (duration, shown) in [
            (Duration::ZERO, "0 ms"),
            (Duration::from_micros(1500), "1 ms"),
            (Duration::from_millis(250), "250 ms"),
            (Duration::from_nanos(999_999_999), "999 ms"),
            (Duration::from_secs(1), "1.0 s"),
            (Duration::from_millis(2500), "2.5 s"),
            (Duration::from_secs_f64(2.5), "2.5 s"),
            (Duration::from_nanos(10_360_806_069), "10.4 s"),
            (Duration::from_millis(59_940), "59.9 s"),
            (Duration::from_millis(59_950), "1 min 0 s"),
            (Duration::from_secs(125), "2 min 5 s"),
            (Duration::from_millis(125_600), "2 min 6 s"),
        ] {
            assert_eq!(HumanDuration(duration).to_string(), shown, "{duration:?}");
        }
    }
}
