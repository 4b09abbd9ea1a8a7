//! The live feed's item: a committed event, with room for the encoded forms streams send it in.
//! Every watch receives the same `Arc<LiveEvent>`; the first watch that sends it in a form
//! encodes it, the others share those bytes. The runtime knows nothing of the forms: it hands
//! out empty slots that the API layer numbers.

use std::sync::OnceLock;

use bytes::Bytes;

use crate::domain::event::Event;

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
