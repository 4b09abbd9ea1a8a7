//! The bounds on names, sizes and numbers that every way in enforces alike: the config file,
//! the API and the seed of a new desk read them here, so no two entry points disagree about
//! what is valid.

use std::ops::RangeInclusive;

/// Longest name used as an id (agent and tier names, reviewer and client ids), in bytes.
pub const NAME_BYTES: usize = 64;
/// Longest display name (a reviewer's or a client's), in bytes.
pub const DISPLAY_NAME_BYTES: usize = 128;
/// Longest topic or specialty, in bytes.
pub const TOPIC_BYTES: usize = 64;
/// Most specialties an agent or reviewer may have.
pub const MAX_SPECIALTIES: usize = 32;
/// An agent's capacity and a reviewer's `max_concurrent`.
pub const CAPACITY: RangeInclusive<u32> = 1..=1000;
/// A ticket's priority, from lowest to highest.
pub const PRIORITY: RangeInclusive<i32> = 1..=10;
/// The priority of an inquiry that names none.
pub const DEFAULT_PRIORITY: u8 = 5;
/// Built-in agents one tier of the config may seed.
pub const MAX_SEEDED_AGENTS_PER_TIER: u32 = 10_000;
/// Review deadlines, queue and assignment timeouts, in milliseconds: 1 s to 30 days.
pub const TIMEOUT_MS: RangeInclusive<i64> = 1000..=30 * 24 * 3600 * 1000;
/// Most times an expiring review moves to another reviewer.
pub const MAX_REVIEW_REASSIGNMENTS: u32 = 10;

/// A name used as an id: 1..=[`NAME_BYTES`] bytes, [`is_plain`].
pub fn is_name(value: &str) -> bool {
    !value.is_empty() && value.len() <= NAME_BYTES && is_plain(value)
}

/// Only ASCII letters, digits, `_`, `-` and `.`: safe in logs, URLs and file names.
pub fn is_plain(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_and_plain() {
        assert!(is_name("L1_Agent_1"));
        assert!(is_name("night.lead-2"));
        assert!(!is_name(""));
        assert!(!is_name("two words"));
        assert!(!is_name(&"a".repeat(NAME_BYTES + 1)));
    }
}
