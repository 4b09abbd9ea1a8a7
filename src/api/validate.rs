//! Request validation: every limit of API.md, collected per request so one INVALID_ARGUMENT
//! names every bad field at once.

use tonic::Status;

use super::status::{invalid, FieldViolation};
use crate::store::Cursor;

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

    /// A name used as an id: letters, digits, `_`, `-`, `.`, 1..=max bytes.
    pub fn identifier(&mut self, field: &str, value: &str, max: usize) {
        if value.is_empty() {
            self.add(field, "is required");
        } else if value.len() > max {
            self.add(
                field,
                format!("is {} bytes; at most {max} allowed", value.len()),
            );
        } else if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        {
            self.add(field, "may contain only letters, digits, '_', '-' and '.'");
        }
    }

    /// A server-minted id such as `tkt_...`.
    pub fn resource_id(&mut self, field: &str, value: &str, prefix: &str) {
        if value.is_empty() {
            self.add(field, "is required");
        } else if !value.starts_with(prefix)
            || value.len() > 64
            || !value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            self.add(field, format!("is not a valid id (expected {prefix}...)"));
        }
    }

    /// A list of topics: at most 32, each an identifier of at most 64 bytes; lowercased.
    pub fn topics(&mut self, field: &str, values: &[String]) -> std::collections::BTreeSet<String> {
        if values.len() > 32 {
            self.add(
                field,
                format!("has {} entries; at most 32 allowed", values.len()),
            );
        }
        let mut out = std::collections::BTreeSet::new();
        for v in values {
            let t = v.trim().to_lowercase();
            let before = self.0.len();
            self.identifier(field, &t, 64);
            if self.0.len() == before {
                out.insert(t);
            }
        }
        out
    }

    /// AIP-158 page size: 0 means `default`, negative is invalid, above `max` is clamped.
    pub fn page_size(&mut self, field: &str, value: i32, default: usize, max: usize) -> usize {
        if value < 0 {
            self.add(field, "must not be negative");
            return default;
        }
        if value == 0 {
            default
        } else {
            (value as usize).min(max)
        }
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

pub fn encode_offset(offset: usize) -> String {
    hex::encode(format!("o|{offset}"))
}

pub fn decode_offset(token: &str) -> Option<usize> {
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
    fn violations_collect_every_field() {
        let mut v = Violations::default();
        v.text("inquiry", "   ", true, 10);
        v.label("customer_id", "a\u{7}b", true, 128);
        v.page_size("page_size", -1, 50, 500);
        assert_eq!(v.0.len(), 3);
        assert_eq!(v.page_size("page_size", 1_000_000_000, 50, 500), 500);
    }
}
