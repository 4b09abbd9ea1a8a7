//! What changed between two encodings of one protobuf record, at the level of its top-level
//! fields, and how to apply it. Knows nothing of the record's type: a field is the bytes of
//! all its occurrences (a repeated or map field is one field), and a change names the fields
//! that differ, with their new bytes, and the fields that went away.
//!
//! `apply(old, diff(old, new))` decodes to exactly what `new` decodes to; the fields come out
//! in tag order, which protobuf decoding does not care about.

use std::cmp::Ordering;

use super::records::Change;
use super::StoreError;

/// One occurrence of a top-level field: its number and the bytes that encode it (key included).
type Occurrence<'a> = (u32, &'a [u8]);

/// Every top-level field occurrence, ordered by field number and, within one number, as they
/// were written. Encoders write fields in tag order, so the sort has nothing to do.
fn fields(bytes: &[u8]) -> Result<Vec<Occurrence<'_>>, StoreError> {
    let mut out = Vec::with_capacity(24);
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
        out.push((number, &bytes[start..at]));
    }
    out.sort_by_key(|(number, _)| *number);
    Ok(out)
}

/// The occurrences of one field at a time: (number, its occurrences).
fn by_field<'s, 'a>(
    occurrences: &'s [Occurrence<'a>],
) -> impl Iterator<Item = (u32, &'s [Occurrence<'a>])> {
    occurrences
        .chunk_by(|a, b| a.0 == b.0)
        .map(|group| (group[0].0, group))
}

/// What the two sides of a [`merge`] hold of one field.
enum Held<'s, 'a> {
    Left(&'s [Occurrence<'a>]),
    Right(&'s [Occurrence<'a>]),
    Both(&'s [Occurrence<'a>], &'s [Occurrence<'a>]),
}

/// Walks two field lists in number order, calling `each` with what each side holds of a field.
fn merge<'s, 'a>(
    left: &'s [Occurrence<'a>],
    right: &'s [Occurrence<'a>],
    mut each: impl FnMut(u32, Held<'s, 'a>),
) {
    let (mut left, mut right) = (by_field(left).peekable(), by_field(right).peekable());
    loop {
        let order = match (left.peek(), right.peek()) {
            (None, None) => return,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((l, _)), Some((r, _))) => l.cmp(r),
        };
        match order {
            Ordering::Less => {
                let (number, l) = left.next().expect("peeked");
                each(number, Held::Left(l));
            }
            Ordering::Greater => {
                let (number, r) = right.next().expect("peeked");
                each(number, Held::Right(r));
            }
            Ordering::Equal => {
                let (number, l) = left.next().expect("peeked");
                let (_, r) = right.next().expect("peeked");
                each(number, Held::Both(l, r));
            }
        }
    }
}

fn same(a: &[Occurrence<'_>], b: &[Occurrence<'_>]) -> bool {
    a.iter().map(|o| o.1).eq(b.iter().map(|o| o.1))
}

fn extend(out: &mut Vec<u8>, occurrences: &[Occurrence<'_>]) {
    for (_, bytes) in occurrences {
        out.extend_from_slice(bytes);
    }
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
    let (old, new) = (fields(old)?, fields(new)?);
    let mut change = Change {
        back,
        cleared: Vec::new(),
        fields: Vec::new(),
    };
    merge(&old, &new, |number, held| match held {
        Held::Left(_) => change.cleared.push(number),
        Held::Both(was, now) if same(was, now) => {}
        Held::Right(now) | Held::Both(_, now) => extend(&mut change.fields, now),
    });
    Ok(change)
}

/// `old` with `change` applied.
pub fn apply(old: &[u8], change: &Change) -> Result<Vec<u8>, StoreError> {
    let state = fields(old)?;
    let changed = fields(&change.fields)?;
    let mut out = Vec::with_capacity(old.len() + change.fields.len());
    merge(&state, &changed, |number, held| match held {
        Held::Right(now) | Held::Both(_, now) => extend(&mut out, now),
        Held::Left(_) if change.cleared.contains(&number) => {}
        Held::Left(was) => extend(&mut out, was),
    });
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
