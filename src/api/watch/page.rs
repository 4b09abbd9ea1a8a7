//! A watch's catch-up page: of what the store holds next, the events its stream sends, within
//! a weight per watch and a weight shared by every watch, so that watches whose clients do not
//! read hold (almost) nothing of the log.

use tokio::sync::Semaphore;

use super::EventTest;
use crate::domain::event::Event;
use crate::runtime::event_bytes;

/// Events read from the store per catch-up query, at most.
pub(super) const REPLAY_PAGE: usize = 32;
/// What a page a watch holds between its client's reads may weigh, decoded ([`event_bytes`]):
/// the events it keeps (those it will send) until they come to this. A page with one event
/// only is handed over in the read that made it: a stream whose client does not read holds no
/// page at all then.
pub(super) const PAGE_BYTES: usize = 32 * 1024;
/// What the pages of every watch together may weigh, in KiB: a page is read only with its
/// weight taken from this; a watch that finds too little left reads one event at a time
/// (slower catch-up, nothing held), so unread watches, however many, hold at most this.
const PAGES_KIB: usize = 16 * 1024;
pub(super) static PAGES_HELD: Semaphore = Semaphore::const_new(PAGES_KIB);
/// What one read of the store gives a watch.
pub(super) struct Page {
    /// The events the stream sends or ends on, in order.
    pub events: Vec<Event>,
    /// What they weigh, decoded.
    pub bytes: usize,
    /// The sequence of the first event read, kept or not.
    pub first_seq: Option<u64>,
    /// The last sequence the page accounts for: once its events are sent, every event up to
    /// here has been sent or passed over.
    pub read_to: u64,
    /// The store may hold more after `read_to`.
    pub more: bool,
}

impl Page {
    /// Of `raw`, the events read after `from`, those `keep` keeps or `ends` ends on, while they
    /// weigh at most `budget` (always one at least: a stream must move on).
    pub(super) fn of(
        raw: Vec<Event>,
        from: u64,
        keep: &EventTest,
        ends: &EventTest,
        budget: usize,
    ) -> Page {
        let full = raw.len() == REPLAY_PAGE;
        let mut page = Page {
            events: Vec::new(),
            bytes: 0,
            first_seq: raw.first().map(|e| e.seq),
            read_to: raw.last().map_or(from, |e| e.seq),
            more: full,
        };
        for event in raw {
            if !(keep(&event) || ends(&event)) {
                continue;
            }
            let bytes = event_bytes(&event);
            if !page.events.is_empty() && page.bytes + bytes > budget {
                // The rest is read again once these are sent.
                page.read_to = page.events.last().map_or(from, |e: &Event| e.seq);
                page.more = true;
                break;
            }
            page.bytes += bytes;
            page.events.push(event);
        }
        page
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::EventBody;
    use crate::domain::fixtures;
    use proptest::prelude::*;

    /// An agent event of about `bytes` bytes; the stream is about it when its detail says so.
    fn sized_event(seq: u64, bytes: usize, kept: bool) -> Event {
        let mark = if kept { "k" } else { "s" };
        Event {
            seq,
            time_ms: 0,
            body: EventBody::Agent {
                detail: format!("{mark}{}", "x".repeat(bytes)),
                agent: fixtures::agent("L1_Agent_1", "L1", &["general"], 2),
                deleted: false,
            },
        }
    }

    fn kept(e: &Event) -> bool {
        matches!(&e.body, EventBody::Agent { detail, .. } if detail.starts_with('k'))
    }

    proptest! {
        /// Read page by page as a watch reads them (each read after what the last page
        /// accounts for), the pages hand over every event the stream is about, once each, in
        /// order, whatever the events weigh and whether the budget is a page's or none; and a
        /// page of more than one event weighs at most the budget.
        #[test]
        fn pages_hand_over_every_kept_event_once_in_order(
            events in proptest::collection::vec((0usize..40_000, any::<bool>()), 0..120),
            budgets in proptest::collection::vec(prop_oneof![Just(0usize), Just(PAGE_BYTES)], 1..8),
        ) {
            let log: Vec<Event> = events
                .iter()
                .enumerate()
                .map(|(i, (bytes, keep))| sized_event(i as u64 + 1, *bytes, *keep))
                .collect();
            let never = |_: &Event| false;
            let (mut last, mut sent, mut reads) = (0u64, Vec::new(), 0usize);
            loop {
                let raw: Vec<Event> = log
                    .iter()
                    .filter(|e| e.seq > last)
                    .take(REPLAY_PAGE)
                    .cloned()
                    .collect();
                let budget = budgets[reads % budgets.len()];
                reads += 1;
                let page = Page::of(raw, last, &kept, &never, budget);
                if page.events.len() > 1 {
                    prop_assert!(page.bytes <= budget, "{} > {budget}", page.bytes);
                }
                for event in &page.events {
                    prop_assert!(event.seq > last && event.seq <= page.read_to);
                    sent.push(event.seq);
                }
                last = last.max(page.read_to);
                if !page.more {
                    break;
                }
                prop_assert!(reads <= 2 * log.len() + 2, "no progress");
            }
            let expected: Vec<u64> = log.iter().filter(|e| kept(e)).map(|e| e.seq).collect();
            prop_assert_eq!(sent, expected);
        }
    }
}
