//! Request validation: the checks every request field is put through, collected per request
//! so one INVALID_ARGUMENT names every bad field at once, and the page sizes and page tokens
//! of the lists (AIP-158). The limits themselves are `crate::config::Limits` (configurable)
//! and `crate::domain::limits` (fixed).

use std::collections::BTreeSet;

use tonic::Status;

use super::status::{invalid, FieldViolation};
use crate::domain::limits::{is_plain, MAX_SPECIALTIES, NAME_BYTES, TOPIC_BYTES};
use crate::store::Cursor;

/// Longest server-minted id (`tkt_...`, `esc_...`, `asg_...`, `agt_...`), in bytes.
const RESOURCE_ID_BYTES: usize = 64;

/// The page sizes of one list: `default` when the request says 0, at most `max`.
#[derive(Clone, Copy, Debug)]
pub struct PageSize {
    pub default: usize,
    pub max: usize,
}

/// Tickets and escalations, read from the store.
pub const STORED_PAGE: PageSize = PageSize {
    default: 50,
    max: 500,
};
/// A customer's history.
pub const HISTORY_PAGE: PageSize = PageSize {
    default: 20,
    max: 500,
};
/// Agents, reviewers and keys, listed from memory.
pub const ROSTER_PAGE: PageSize = PageSize {
    default: 100,
    max: 1000,
};

/// A page of a list held in memory: how many, from which offset.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub size: usize,
    pub offset: usize,
}

impl Window {
    /// The window's items of `items`, and the token of the next page (empty at the end).
    pub fn page<T>(self, items: Vec<T>) -> (Vec<T>, String) {
        let end = self.offset.saturating_add(self.size).min(items.len());
        let next = if end < items.len() {
            encode_offset(end)
        } else {
            String::new()
        };
        let page = items
            .into_iter()
            .skip(self.offset)
            .take(end.saturating_sub(self.offset))
            .collect();
        (page, next)
    }
}

#[derive(Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn add(&mut self, field: &str, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    pub fn check(&mut self, ok: bool, field: &str, description: impl Into<String>) {
        if !ok {
            self.add(field, description);
        }
    }

    pub fn finish(self) -> Result<(), Status> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(invalid(self.0))
        }
    }

    /// Free text: 1..=max bytes after trimming (or 0 when optional), no control characters
    /// other than newlines and tabs.
    pub fn text(&mut self, field: &str, value: &str, required: bool, max: usize) {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            if required {
                self.add(field, "is required and must not be blank");
            }
            return;
        }
        if trimmed.len() > max {
            self.add(
                field,
                format!("is {} bytes; at most {max} allowed", trimmed.len()),
            );
        } else if trimmed
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
        {
            self.add(field, "must not contain control characters");
        }
    }

    /// A single-line label: 1..=max bytes, no control characters, no surrounding whitespace.
    pub fn label(&mut self, field: &str, value: &str, required: bool, max: usize) {
        if value.is_empty() {
            if required {
                self.add(field, "is required");
            }
            return;
        }
        if value.len() > max {
            self.add(
                field,
                format!("is {} bytes; at most {max} allowed", value.len()),
            );
        } else if value.chars().any(char::is_control) {
            self.add(field, "must not contain control characters");
        } else if value.trim() != value {
            self.add(field, "must not start or end with whitespace");
        }
    }

    /// A name used as an id: letters, digits, `_`, `-`, `.`, 1..=[`NAME_BYTES`] bytes.
    pub fn name(&mut self, field: &str, value: &str) {
        self.identifier(field, value, NAME_BYTES);
    }

    /// Like [`Violations::name`], when the field may be empty.
    pub fn optional_name(&mut self, field: &str, value: &str) {
        if !value.is_empty() {
            self.name(field, value);
        }
    }

    /// Letters, digits, `_`, `-`, `.`, 1..=`max` bytes (a name, or a topic).
    pub fn identifier(&mut self, field: &str, value: &str, max: usize) {
        if value.is_empty() {
            self.add(field, "is required");
        } else if value.len() > max {
            self.add(
                field,
                format!("is {} bytes; at most {max} allowed", value.len()),
            );
        } else if !is_plain(value) {
            self.add(field, "may contain only letters, digits, '_', '-' and '.'");
        }
    }

    /// A server-minted id such as `tkt_...`.
    pub fn resource_id(&mut self, field: &str, value: &str, prefix: &str) {
        if value.is_empty() {
            self.add(field, "is required");
        } else if !value.starts_with(prefix)
            || value.len() > RESOURCE_ID_BYTES
            || !value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            self.add(field, format!("is not a valid id (expected {prefix}...)"));
        }
    }

    /// A list of topics: at most [`MAX_SPECIALTIES`], each a name of at most [`TOPIC_BYTES`];
    /// lowercased.
    pub fn topics(&mut self, field: &str, values: &[String]) -> BTreeSet<String> {
        if values.len() > MAX_SPECIALTIES {
            self.add(
                field,
                format!(
                    "has {} entries; at most {MAX_SPECIALTIES} allowed",
                    values.len()
                ),
            );
        }
        let mut out = BTreeSet::new();
        for v in values {
            let t = v.trim().to_lowercase();
            let before = self.0.len();
            self.identifier(field, &t, TOPIC_BYTES);
            if self.0.len() == before {
                out.insert(t);
            }
        }
        out
    }

    /// AIP-158 page size: 0 means the default, negative is invalid, above the max is clamped.
    pub fn page_size(&mut self, field: &str, value: i32, size: PageSize) -> usize {
        if value < 0 {
            self.add(field, "must not be negative");
            return size.default;
        }
        if value == 0 {
            size.default
        } else {
            (value as usize).min(size.max)
        }
    }

    /// A page of a list held in memory, from `page_size` and `page_token` (an offset token).
    pub fn window(&mut self, page_size: i32, page_token: &str) -> Window {
        let size = self.page_size("page_size", page_size, ROSTER_PAGE);
        if page_token.is_empty() {
            return Window { size, offset: 0 };
        }
        let offset = decode_offset(page_token).unwrap_or_else(|| {
            self.add(
                "page_token",
                "is not a page token from this list; start again with an empty token",
            );
            0
        });
        Window { size, offset }
    }

    /// A watch's resume point: any sequence the log could hold (sequences are stored as
    /// signed 64-bit integers).
    pub fn sequence(&mut self, field: &str, value: u64) {
        if value > i64::MAX as u64 {
            self.add(field, format!("must be at most {}", i64::MAX));
        }
    }

    pub fn page_token(&mut self, field: &str, token: &str, kind: TokenKind) -> Option<Cursor> {
        if token.is_empty() {
            return None;
        }
        let cursor = decode_token(token, kind);
        if cursor.is_none() {
            self.add(
                field,
                "is not a page token from this list; start again with an empty token",
            );
        }
        cursor
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Ticket,
    Escalation,
}

/// Opaque page tokens: hex of a small text form, so clients treat them as opaque.
pub fn encode_token(cursor: &Cursor) -> String {
    let text = match cursor {
        Cursor::Ticket {
            created_ms,
            ticket_id,
        } => format!("t|{created_ms}|{ticket_id}"),
        Cursor::Escalation {
            priority,
            created_ms,
            escalation_id,
        } => {
            format!("e|{priority}|{created_ms}|{escalation_id}")
        }
    };
    hex::encode(text)
}

fn encode_offset(offset: usize) -> String {
    hex::encode(format!("o|{offset}"))
}

fn decode_offset(token: &str) -> Option<usize> {
    let text = String::from_utf8(hex::decode(token).ok()?).ok()?;
    text.strip_prefix("o|")?.parse().ok()
}

fn decode_token(token: &str, kind: TokenKind) -> Option<Cursor> {
    let text = String::from_utf8(hex::decode(token).ok()?).ok()?;
    let parts: Vec<&str> = text.split('|').collect();
    match (kind, parts.as_slice()) {
        (TokenKind::Ticket, ["t", ms, id]) => Some(Cursor::Ticket {
            created_ms: ms.parse().ok()?,
            ticket_id: id.to_string(),
        }),
        (TokenKind::Escalation, ["e", p, ms, id]) => Some(Cursor::Escalation {
            priority: p.parse().ok()?,
            created_ms: ms.parse().ok()?,
            escalation_id: id.to_string(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_the_wrong_list() {
        let c = Cursor::Ticket {
            created_ms: 5,
            ticket_id: "tkt_a".into(),
        };
        let token = encode_token(&c);
        assert_eq!(decode_token(&token, TokenKind::Ticket), Some(c));
        assert_eq!(decode_token(&token, TokenKind::Escalation), None);
        assert_eq!(decode_token("zz", TokenKind::Ticket), None);
        assert_eq!(decode_offset(&encode_offset(7)), Some(7));
    }

    #[test]
    fn a_window_pages_through_a_list_and_says_where_the_next_page_starts() {
        let w = Window { size: 2, offset: 0 };
        let (page, next) = w.page(vec![1, 2, 3]);
        assert_eq!(page, [1, 2]);
        assert_eq!(decode_offset(&next), Some(2));
        let (page, next) = Window { size: 2, offset: 2 }.page(vec![1, 2, 3]);
        assert_eq!((page, next), (vec![3], String::new()));
        let (page, next) = Window { size: 2, offset: 9 }.page(vec![1, 2, 3]);
        assert_eq!((page, next), (Vec::<i32>::new(), String::new()));
    }

    #[test]
    fn violations_collect_every_field() {
        let mut v = Violations::default();
        v.text("inquiry", "   ", true, 10);
        v.label("customer_id", "a\u{7}b", true, 128);
        v.page_size("page_size", -1, STORED_PAGE);
        assert_eq!(v.0.len(), 3);
        assert_eq!(v.page_size("page_size", 1_000_000_000, STORED_PAGE), 500);
    }
}
