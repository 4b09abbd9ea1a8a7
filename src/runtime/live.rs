//! The live feed: committed events as the writer publishes them, and the sequence of the last
//! one published. Its item is a committed event with room for the encoded forms streams send
//! it in. Every watch receives the same `Arc<LiveEvent>`; the first watch that sends it in a
//! form encodes it, the others share those bytes. The runtime knows nothing of the forms: it
//! hands out empty slots that the API layer numbers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use tokio::sync::broadcast;

use crate::domain::event::Event;

/// Committed events, published in sequence order, to every receiver subscribed at the time.
pub struct LiveFeed {
    events: broadcast::Sender<Arc<LiveEvent>>,
    /// The sequence of the last event published (the store's head when the desk opened).
    head: AtomicU64,
}

impl LiveFeed {
    /// A feed that keeps `capacity` events for receivers that fall behind, after the events
    /// up to `head`, which are in the store already.
    pub fn new(capacity: usize, head: u64) -> Self {
        LiveFeed {
            events: broadcast::channel(capacity.max(1)).0,
            head: AtomicU64::new(head),
        }
    }

    /// Publishes a committed event to every receiver.
    pub fn publish(&self, event: Event) {
        // The head moves before the event goes out: whoever reads the head after subscribing
        // receives every event after it (see `subscribe`).
        self.head.store(event.seq, Ordering::SeqCst);
        // No receivers is fine: the event is in the store.
        let _ = self.events.send(Arc::new(LiveEvent::new(event)));
    }

    /// A receiver of what is published from now on, and a sequence every later event reaches
    /// it after: the events up to it are committed, so a watch resuming at it or later needs
    /// nothing from the store.
    pub fn subscribe(&self) -> (broadcast::Receiver<Arc<LiveEvent>>, u64) {
        let receiver = self.events.subscribe();
        // Read after subscribing. An event published before the subscription moved the head
        // before it went out, so this read sees that event's sequence or a later one; an event
        // this read does not cover is published after the subscription, and received.
        (receiver, self.head.load(Ordering::SeqCst))
    }
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
