//! Tickets waiting for an agent, ordered by priority (higher first), then age.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::domain::ticket::Ticket;

pub(super) type QueueKey = (Reverse<u8>, i64, String);

/// Tickets waiting for an agent, indexed twice so a freed agent reads only the heads of the
/// sets it may serve: per topic and lowest tier allowed (for specialists), and per lowest tier
/// allowed across topics (for agents that take any topic). Never a scan of the queue or of
/// the topics callers made up.
#[derive(Debug, Default)]
pub(super) struct TicketQueue {
    by_topic: HashMap<String, BTreeMap<usize, BTreeSet<QueueKey>>>,
    by_tier: BTreeMap<usize, BTreeSet<QueueKey>>,
    len: usize,
}

impl TicketQueue {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Every waiting ticket: when it was queued, and its id.
    pub(super) fn waiting(&self) -> impl Iterator<Item = (i64, &str)> {
        self.by_tier
            .values()
            .flatten()
            .map(|(_, queued_ms, id)| (*queued_ms, id.as_str()))
    }

    fn key(t: &Ticket, queued_ms: i64) -> QueueKey {
        (Reverse(t.priority), queued_ms, t.id.clone())
    }

    pub(super) fn push(&mut self, t: &Ticket, queued_ms: i64) {
        let key = Self::key(t, queued_ms);
        let new = self
            .by_topic
            .entry(t.topic.clone())
            .or_default()
            .entry(t.min_tier)
            .or_default()
            .insert(key.clone());
        self.by_tier.entry(t.min_tier).or_default().insert(key);
        if new {
            self.len += 1;
        }
    }

    pub(super) fn remove(&mut self, t: &Ticket, queued_ms: i64) {
        let key = Self::key(t, queued_ms);
        if let Some(tiers) = self.by_topic.get_mut(&t.topic) {
            if let Some(set) = tiers.get_mut(&t.min_tier) {
                if set.remove(&key) {
                    self.len -= 1;
                }
                if set.is_empty() {
                    tiers.remove(&t.min_tier);
                }
            }
            if tiers.is_empty() {
                self.by_topic.remove(&t.topic);
            }
        }
        if let Some(set) = self.by_tier.get_mut(&t.min_tier) {
            set.remove(&key);
            if set.is_empty() {
                self.by_tier.remove(&t.min_tier);
            }
        }
    }

    /// The most urgent, oldest ticket an agent of `tier` may take: any topic, or one of
    /// `specialties`.
    pub(super) fn head_for<'a>(
        &self,
        tier: usize,
        any_topic: bool,
        specialties: impl Iterator<Item = &'a String>,
    ) -> Option<&QueueKey> {
        if any_topic {
            return self
                .by_tier
                .range(..=tier)
                .filter_map(|(_, set)| set.first())
                .min();
        }
        specialties
            .filter_map(|topic| self.by_topic.get(topic))
            .flat_map(|tiers| tiers.range(..=tier).filter_map(|(_, set)| set.first()))
            .min()
    }
}
