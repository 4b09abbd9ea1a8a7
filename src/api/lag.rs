//! Watches that fall behind the live feed, counted and reported at most once per interval.
//!
//! A lagging watch loses nothing (it catches up from the store), but an operator needs to know
//! it happens: it means consoles read slower than the desk commits, and catch-up reads load the
//! store. When a thousand consoles fall behind at once, one line with the totals says that
//! better than a thousand lines, and costs a lock per lag rather than a write to the log.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Least time between two lines.
pub(super) const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Lags since the last line, and when that line was written.
#[derive(Default)]
struct Window {
    watches: u64,
    missed: u64,
    reported: Option<Instant>,
}

/// What to log: the lags counted since the previous line.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Report {
    /// Times a watch fell behind.
    pub watches: u64,
    /// Live events those watches skipped, to be read back from the store.
    pub missed: u64,
}

/// Counts lags; hands back a [`Report`] when one is due.
pub(super) struct Lag {
    window: Mutex<Window>,
}

impl Lag {
    pub(super) const fn new() -> Self {
        Lag {
            window: Mutex::new(Window {
                watches: 0,
                missed: 0,
                reported: None,
            }),
        }
    }

    /// Counts one watch that fell `missed` events behind at `now`. The first lag is reported
    /// at once; later ones are summed until [`REPORT_EVERY`] has passed since the last report.
    pub(super) fn record(&self, missed: u64, now: Instant) -> Option<Report> {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        w.watches += 1;
        w.missed = w.missed.saturating_add(missed);
        let due = w
            .reported
            .is_none_or(|at| now.saturating_duration_since(at) >= REPORT_EVERY);
        if !due {
            return None;
        }
        let report = Report {
            watches: std::mem::take(&mut w.watches),
            missed: std::mem::take(&mut w.missed),
        };
        w.reported = Some(now);
        Some(report)
    }
}

/// Every lag of this process, so that all watches share one report.
static LAGS: Lag = Lag::new();

/// Counts a watch that fell `missed` events behind, and logs the totals when due.
pub(super) fn fell_behind(missed: u64, after_sequence: u64) {
    if let Some(r) = LAGS.record(missed, Instant::now()) {
        tracing::warn!(
            watches = r.watches,
            missed = r.missed,
            after_sequence,
            every_s = REPORT_EVERY.as_secs(),
            "watches fell behind the live events and catch up from the store; their clients \
             read slower than the desk commits (counts since the last such line)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_lag_is_reported_at_once_and_later_ones_summed_per_interval() {
        let lag = Lag::new();
        let t0 = Instant::now();
        let once = Report {
            watches: 1,
            missed: 7,
        };
        assert_eq!(lag.record(7, t0), Some(once));
        for i in 1..=1000u64 {
            let at = t0 + Duration::from_millis(i * 5);
            assert_eq!(lag.record(3, at), None, "lag {i} within the interval");
        }
        let due = t0 + REPORT_EVERY;
        let summed = Report {
            watches: 1001,
            missed: 3000,
        };
        assert_eq!(lag.record(0, due), Some(summed));
        // The window starts again from the report just made, not from the first lag.
        assert_eq!(lag.record(1, due + REPORT_EVERY / 2), None);
        let next = Report {
            watches: 2,
            missed: 2,
        };
        assert_eq!(lag.record(1, due + REPORT_EVERY), Some(next));
    }
}
