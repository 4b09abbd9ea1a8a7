//! Watches that fall behind the live feed, or whose clients stop reading, counted and reported
//! at most once per interval.
//!
//! A lagging watch loses nothing (it catches up from the store), but an operator needs to know
//! it happens: it means consoles read slower than the desk commits, and catch-up reads load the
//! store. A watch whose client stops reading is ended, resumable, and then its connection if
//! it still takes nothing. When a thousand consoles fall behind, or a flood of streams nobody
//! reads is ended, one line with the totals says that better than a thousand lines, and costs
//! a lock per occurrence rather than a write to the log.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Least time between two lines.
pub(super) const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Occurrences since the last line, and when that line was written.
#[derive(Default)]
struct Window {
    times: u64,
    total: u64,
    reported: Option<Instant>,
}

/// What to log: what was counted since the previous line.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Report {
    /// Times it happened (a watch fell behind, a client stopped reading).
    pub times: u64,
    /// What they add up to (live events the lagging watches skipped).
    pub total: u64,
}

/// Counts occurrences of one thing; hands back a [`Report`] when one is due.
pub(super) struct Tally {
    window: Mutex<Window>,
}

impl Tally {
    pub(super) const fn new() -> Self {
        Tally {
            window: Mutex::new(Window {
                times: 0,
                total: 0,
                reported: None,
            }),
        }
    }

    /// Counts one occurrence worth `amount` at `now`. The first is reported at once; later
    /// ones are summed until [`REPORT_EVERY`] has passed since the last report.
    pub(super) fn record(&self, amount: u64, now: Instant) -> Option<Report> {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        w.times += 1;
        w.total = w.total.saturating_add(amount);
        let due = w
            .reported
            .is_none_or(|at| now.saturating_duration_since(at) >= REPORT_EVERY);
        if !due {
            return None;
        }
        let report = Report {
            times: std::mem::take(&mut w.times),
            total: std::mem::take(&mut w.total),
        };
        w.reported = Some(now);
        Some(report)
    }
}

/// Every lag of this process, so that all watches share one report.
static LAGS: Tally = Tally::new();
/// Every watch ended because its client stopped reading.
static STALLED: Tally = Tally::new();
/// Every connection closed because a watch's client on it took nothing even after its end.
static UNREAD: Tally = Tally::new();

/// Counts a watch whose client stopped reading, ended resumable after `resume_after`, and
/// logs the totals when due.
pub(super) fn stopped_reading(resume_after: u64) {
    if let Some(r) = STALLED.record(0, Instant::now()) {
        tracing::info!(
            watches = r.times,
            resume_after,
            every_s = REPORT_EVERY.as_secs(),
            "watches whose clients stopped reading were ended, resumable (counts since the last \
             such line)"
        );
    }
}

/// Counts a connection closed because a watch's client on it takes nothing, and logs the
/// totals when due.
pub(super) fn closed_unread(after_secs: u64) {
    if let Some(r) = UNREAD.record(0, Instant::now()) {
        tracing::info!(
            connections = r.times,
            after_secs,
            every_s = REPORT_EVERY.as_secs(),
            "connections whose watches' clients took nothing after their end were closed, to \
             free their buffers (counts since the last such line)"
        );
    }
}

/// Counts a watch that fell `missed` events behind, and logs the totals when due.
pub(super) fn fell_behind(missed: u64, after_sequence: u64) {
    if let Some(r) = LAGS.record(missed, Instant::now()) {
        tracing::warn!(
            watches = r.times,
            missed = r.total,
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
        let lag = Tally::new();
        let t0 = Instant::now();
        let once = Report { times: 1, total: 7 };
        assert_eq!(lag.record(7, t0), Some(once));
        for i in 1..=1000u64 {
            let at = t0 + Duration::from_millis(i * 5);
            assert_eq!(lag.record(3, at), None, "lag {i} within the interval");
        }
        let due = t0 + REPORT_EVERY;
        let summed = Report {
            times: 1001,
            total: 3000,
        };
        assert_eq!(lag.record(0, due), Some(summed));
        // The window starts again from the report just made, not from the first lag.
        assert_eq!(lag.record(1, due + REPORT_EVERY / 2), None);
        let next = Report { times: 2, total: 2 };
        assert_eq!(lag.record(1, due + REPORT_EVERY), Some(next));
    }
}
