//! Time for everything that is not the domain: the one place that reads the wall clock, so the
//! domain can take time as a plain argument. The runtime takes its time from a [`Clock`]: the
//! wall clock in production ([`SystemClock`]), a clock a test moves by hand, so timers fire
//! exactly when the test says.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, by the wall clock.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A source of time and of waits on it.
pub trait Clock: Debug + Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// Resolves once this clock reads `due_ms` or later.
    fn sleep_until(&self, due_ms: i64) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }

    fn sleep_until(&self, due_ms: i64) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let wait = (due_ms - now_ms()).max(0) as u64;
        Box::pin(tokio::time::sleep(Duration::from_millis(wait)))
    }
}

/// A clock a test moves by hand: waits on it end when it passes their due time. Starts at a
/// fixed moment.
#[cfg(test)]
#[derive(Clone, Debug)]
pub struct ManualClock(std::sync::Arc<(std::sync::atomic::AtomicI64, tokio::sync::Notify)>);

#[cfg(test)]
#[allow(clippy::new_without_default)] // every test says it wants a new clock, at START_MS
impl ManualClock {
    /// Where every manual clock starts: any fixed moment will do.
    pub const START_MS: i64 = 1_700_000_000_000;

    pub fn new() -> Self {
        ManualClock(std::sync::Arc::new((
            std::sync::atomic::AtomicI64::new(Self::START_MS),
            tokio::sync::Notify::new(),
        )))
    }

    pub fn advance(&self, ms: i64) {
        self.0 .0.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
        self.0 .1.notify_waiters();
    }
}

#[cfg(test)]
impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0 .0.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn sleep_until(&self, due_ms: i64) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let clock = self.0.clone();
        Box::pin(async move {
            loop {
                // Created before the check: a move in between still wakes it.
                let moved = clock.1.notified();
                if clock.0.load(std::sync::atomic::Ordering::SeqCst) >= due_ms {
                    return;
                }
                moved.await;
            }
        })
    }
}
