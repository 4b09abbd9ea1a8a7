//! What changed between two encodings of one protobuf record, at the level of its top-level
//! fields, and how to apply it. Knows nothing of the record's type: a field is the bytes of
//! all its occurrences (a repeated or map field is one field), and a change names the fields
//! that differ, with their new bytes, and the fields that went away.
//!
//! `apply(old, diff(old, new))` decodes to exactly what `new` decodes to; the fields come out
//! in tag order, which protobuf decoding does not care about.

use std::collections::BTreeMap;

use super::records::Change;
use super::StoreError;

/// Each top-level field's occurrences, by field number, as the bytes that encode them (key
/// included).
fn fields(bytes: &[u8]) -> Result<BTreeMap<u32, Vec<&[u8]>>, StoreError> {
    let mut out: BTreeMap<u32, Vec<&[u8]>> = BTreeMap::new();
    let mut at = 0;
    while at < bytes.len() {
        let start = at;
        let key = varint(bytes, &mut at)?;
        let number = u32::try_from(key >> 3).map_err(|_| malformed("field number"))?;
        match key & 7 {
            0 => {
                varint(bytes, &mut at)?;
            }
            1 => at = skip(bytes, at, 8)?,
            2 => {
                let len = varint(bytes, &mut at)?;
                at = skip(
                    bytes,
                    at,
                    usize::try_from(len).map_err(|_| malformed("length"))?,
                )?;
            }
            5 => at = skip(bytes, at, 4)?,
            other => return Err(malformed(&format!("wire type {other}"))),
        }
        out.entry(number).or_default().push(&bytes[start..at]);
    }
    Ok(out)
}

fn malformed(what: &str) -> StoreError {
    StoreError::Corrupt(format!("a stored record has a malformed {what}"))
}

fn varint(bytes: &[u8], at: &mut usize) -> Result<u64, StoreError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at).ok_or_else(|| malformed("varint"))?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(malformed("varint"))
}

fn skip(bytes: &[u8], at: usize, len: usize) -> Result<usize, StoreError> {
    let end = at.checked_add(len).ok_or_else(|| malformed("length"))?;
    if end > bytes.len() {
        return Err(malformed("length"));
    }
    Ok(end)
}

/// The change from `old` to `new`, `back` sequence numbers after `old`'s event.
pub fn diff(old: &[u8], new: &[u8], back: u64) -> Result<Change, StoreError> {
    let old = fields(old)?;
    let new_fields = fields(new)?;
    let mut change = Change {
        back,
        cleared: Vec::new(),
        fields: Vec::new(),
    };
    for (number, was) in &old {
        match new_fields.get(number) {
            None => change.cleared.push(*number),
            Some(now) if now != was => {
                for occurrence in now {
                    change.fields.extend_from_slice(occurrence);
                }
            }
            Some(_) => {}
        }
    }
    for (number, now) in &new_fields {
        if !old.contains_key(number) {
            for occurrence in now {
                change.fields.extend_from_slice(occurrence);
            }
        }
    }
    Ok(change)
}

/// `old` with `change` applied.
pub fn apply(old: &[u8], change: &Change) -> Result<Vec<u8>, StoreError> {
    let mut state = fields(old)?;
    for number in &change.cleared {
        state.remove(number);
    }
    let changed = fields(&change.fields)?;
    for number in changed.keys() {
        state.remove(number);
    }
    state.extend(changed);
    let mut out = Vec::with_capacity(old.len() + change.fields.len());
    for occurrences in state.values() {
        for occurrence in occurrences {
            out.extend_from_slice(occurrence);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::{ticket_from, TicketRecord};
    use crate::store::tests_support::any_ticket;
    use proptest::prelude::*;
    use prost::Message;

    proptest! {
        #[test]
        fn applying_the_diff_of_two_tickets_gives_the_second(
            old in any_ticket(), new in any_ticket(), back in 1u64..100,
        ) {
            let (a, b) = (
                TicketRecord::from(&old).encode_to_vec(),
                TicketRecord::from(&new).encode_to_vec(),
            );
            let change = diff(&a, &b, back).unwrap();
            prop_assert_eq!(change.back, back);
            prop_assert_eq!(ticket_from(&apply(&a, &change).unwrap()).unwrap(), new);
        }

        #[test]
        fn a_ticket_that_did_not_change_has_an_empty_diff(ticket in any_ticket()) {
            let a = TicketRecord::from(&ticket).encode_to_vec();
            let change = diff(&a, &a, 1).unwrap();
            prop_assert!(change.cleared.is_empty() && change.fields.is_empty());
        }

        #[test]
        fn garbage_is_an_error_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let change = Change { back: 1, cleared: vec![3], fields: bytes.clone() };
            let _ = apply(&bytes, &change);
            let _ = diff(&bytes, &bytes, 1);
        }
    }

    #[test]
    fn a_later_step_of_a_ticket_costs_only_what_changed() {
        let mut ticket = crate::store::tests_support::sample_ticket();
        let before = TicketRecord::from(&ticket).encode_to_vec();
        ticket.topic = "billing".into();
        let after = TicketRecord::from(&ticket).encode_to_vec();
        let change = diff(&before, &after, 1).unwrap();
        assert_eq!(change.fields, b"\x2a\x07billing");
        assert!(change.cleared.is_empty());
    }
}
