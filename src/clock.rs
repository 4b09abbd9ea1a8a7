//! Wall-clock time in milliseconds since the Unix epoch: the one place that reads the clock,
//! so the domain can take time as a plain argument.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
