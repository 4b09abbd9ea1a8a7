//! The live feed: committed events as the writer publishes them, and the sequence of the last
//! one published. Its item is a committed event with room for the encoded forms streams send
//! it in. Every watch receives the same `Arc<LiveEvent>`; the first watch that sends it in a
//! form encodes it, the others share those bytes. The runtime knows nothing of the forms: it
//! hands out empty slots that the API layer numbers.
//!
//! The feed is bounded twice: by count (the broadcast's capacity) and by bytes. The broadcast
//! holds only weak references; the events themselves are kept alive by the feed, newest
//! first, within a byte budget. A watch that reaches an event let go of reads it from the
//! store, as it does when it falls behind the count; so a run of 16 KiB inquiries costs the
//! budget, not thousands of times their size.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use bytes::Bytes;
use tokio::sync::broadcast;

use crate::domain::event::Event;

/// Committed events, published in sequence order, to every receiver subscribed at the time.
pub struct LiveFeed {
    events: broadcast::Sender<Published>,
    /// The sequence of the last event published (the store's head when the desk opened).
    head: AtomicU64,
    /// What keeps the published events alive. Locked by the writer only, as it publishes.
    kept: Mutex<Newest>,
}

/// One event as the feed hands it out: its sequence, and the event while the feed keeps it.
#[derive(Clone)]
pub struct Published {
    pub seq: u64,
    event: Weak<LiveEvent>,
}

impl Published {
    /// The event, or `None` when the feed let it go to stay within its bytes: the store has it.
    pub fn event(&self) -> Option<Arc<LiveEvent>> {
        self.event.upgrade()
    }
}

/// The newest events within the budget, each with its weight.
struct Newest {
    events: VecDeque<(Arc<LiveEvent>, usize)>,
    bytes: usize,
    budget: usize,
    capacity: usize,
}

impl Newest {
    /// Keeps `event`, letting the oldest go past the budget or the count; the newest is kept
    /// whatever it weighs.
    fn keep(&mut self, event: Arc<LiveEvent>, weight: usize) {
        self.events.push_back((event, weight));
        self.bytes += weight;
        while self.events.len() > 1
            && (self.bytes > self.budget || self.events.len() > self.capacity)
        {
            if let Some((_, weight)) = self.events.pop_front() {
                self.bytes -= weight;
            }
        }
    }
}

/// How much of the newest events a live feed keeps for receivers that fall behind.
#[derive(Clone, Copy, Debug)]
pub struct Keeps {
    pub events: usize,
    /// About this many bytes of them (the newest one whatever it weighs).
    pub bytes: usize,
}

impl LiveFeed {
    /// A feed that keeps the newest events within `keeps`, for receivers that fall behind,
    /// after the events up to `head`, which are in the store already.
    pub fn new(keeps: Keeps, head: u64) -> Self {
        let (capacity, budget) = (keeps.events.max(1), keeps.bytes);
        LiveFeed {
            events: broadcast::channel(capacity).0,
            head: AtomicU64::new(head),
            kept: Mutex::new(Newest {
                events: VecDeque::new(),
                bytes: 0,
                budget,
                capacity,
            }),
        }
    }

    /// Publishes a committed event to every receiver.
    pub fn publish(&self, event: Event) {
        let seq = event.seq;
        let weight = weight(&event);
        let event = Arc::new(LiveEvent::new(event));
        let published = Published {
            seq,
            event: Arc::downgrade(&event),
        };
        self.kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keep(event, weight);
        // The head moves before the event goes out: whoever reads the head after subscribing
        // receives every event after it (see `subscribe`).
        self.head.store(seq, Ordering::SeqCst);
        // No receivers is fine: the event is in the store.
        let _ = self.events.send(published);
    }

    /// The sequence of the last event published.
    pub fn head(&self) -> u64 {
        self.head.load(Ordering::SeqCst)
    }

    /// A receiver of what is published from now on, and a sequence every later event reaches
    /// it after: the events up to it are committed, so a watch resuming at it or later needs
    /// nothing from the store.
    pub fn subscribe(&self) -> (broadcast::Receiver<Published>, u64) {
        let receiver = self.events.subscribe();
        // Read after subscribing. An event published before the subscription moved the head
        // before it went out, so this read sees that event's sequence or a later one; an event
        // this read does not cover is published after the subscription, and received.
        (receiver, self.head.load(Ordering::SeqCst))
    }
}

/// About what `event` holds in memory once streams have encoded it: the event itself
/// ([`event_bytes`]), and as much again for each of the (at most two) forms a stream sends it
/// in.
fn weight(event: &Event) -> usize {
    event_bytes(event) * 3
}

/// About what `event` holds in memory, decoded: counted by its JSON form (its strings, mostly).
pub fn event_bytes(event: &Event) -> usize {
    struct Count(usize);
    impl Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Serializing plain data into a counter cannot fail.
    let _ = serde_json::to_writer(&mut count, event);
    count.0
}

/// Forms an event can be kept in at once.
pub const FORMS: usize = 3;

pub struct LiveEvent {
    pub event: Event,
    forms: [OnceLock<Option<Bytes>>; FORMS],
}

impl LiveEvent {
    pub fn new(event: Event) -> Self {
        LiveEvent {
            event,
            forms: Default::default(),
        }
    }

    /// The event in form `slot` (below [`FORMS`]), made by `make` for the first caller only;
    /// `None` when the event has no such form.
    pub fn form(&self, slot: usize, make: impl FnOnce(&Event) -> Option<Bytes>) -> Option<Bytes> {
        self.forms[slot].get_or_init(|| make(&self.event)).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::EventBody;
    use crate::domain::fixtures;

    fn agent_event(seq: u64, detail_bytes: usize) -> Event {
        Event {
            seq,
            time_ms: 0,
            body: EventBody::Agent {
                detail: "x".repeat(detail_bytes),
                agent: fixtures::agent("L1_Agent_1", "L1", &["general"], 2),
                deleted: false,
            },
        }
    }

    #[test]
    fn the_feed_keeps_the_newest_events_within_its_bytes_and_its_count() {
        // Two-digit sequences, as the kept ones below have: weights of equal length.
        let small = weight(&agent_event(20, 0));
        let large = weight(&agent_event(1, 10_000));
        assert!(large > 10_000 * 3, "the weight counts the strings: {large}");
        // Room for ten small events, or one large one; a count of 100.
        let feed = LiveFeed::new(
            Keeps {
                events: 100,
                bytes: small * 10,
            },
            0,
        );
        let (mut receiver, head) = feed.subscribe();
        assert_eq!(head, 0);
        for seq in 1..=20 {
            feed.publish(agent_event(seq, 0));
        }
        let published: Vec<Published> = (0..20).map(|_| receiver.try_recv().unwrap()).collect();
        let kept: Vec<u64> = published
            .iter()
            .filter_map(|p| p.event().map(|e| e.event.seq))
            .collect();
        assert_eq!(kept, (11..=20).collect::<Vec<_>>(), "the newest ten");
        assert_eq!(published.iter().map(|p| p.seq).max(), Some(20));
        // A large event is kept alone, whatever it weighs; the small ones go.
        feed.publish(agent_event(21, 10_000));
        let large_one = receiver.try_recv().unwrap();
        assert!(large_one.event().is_some(), "the newest is always kept");
        assert!(published.iter().all(|p| p.event().is_none()));
        assert_eq!(feed.subscribe().1, 21);
        // The count bounds it too.
        let feed = LiveFeed::new(
            Keeps {
                events: 3,
                bytes: usize::MAX,
            },
            0,
        );
        let (mut receiver, _) = feed.subscribe();
        for seq in 1..=3 {
            feed.publish(agent_event(seq, 0));
        }
        let first = receiver.try_recv().unwrap();
        feed.publish(agent_event(4, 0));
        assert!(first.event().is_none(), "past the count: let go");
    }

    #[test]
    fn a_form_is_made_once_and_shared() {
        let live = LiveEvent::new(Event {
            seq: 1,
            time_ms: 0,
            body: EventBody::Agent {
                detail: "agent created".into(),
                agent: fixtures::agent("L1_Agent_1", "L1", &["general"], 2),
                deleted: false,
            },
        });
        let mut made = 0;
        let first = live.form(0, |e| {
            made += 1;
            Some(Bytes::from(e.seq.to_string()))
        });
        let second = live.form(0, |_| {
            made += 1;
            None
        });
        assert_eq!(made, 1);
        let (first, second) = (first.unwrap(), second.unwrap());
        assert_eq!(
            first.as_ptr(),
            second.as_ptr(),
            "the bytes are shared, not copied"
        );
        assert_eq!(first, Bytes::from_static(b"1"));
        assert_eq!(live.form(1, |_| None), None);
    }
}
