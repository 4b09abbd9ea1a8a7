//! Tickets: a customer's inquiry and its way through the tiers.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::knowledge::PreparedAnswer;
use super::policy::ReviewPriority;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    Queued,
    Assigned,
    AwaitingReview,
    Resolved,
    Rejected,
    Failed,
}

impl TicketStatus {
    /// Final states never change again; a final ticket leaves memory.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TicketStatus::Resolved | TicketStatus::Rejected | TicketStatus::Failed
        )
    }

    /// States in which a `HandleInquiry` caller gets its answer.
    pub fn is_settled(self) -> bool {
        self.is_final() || self == TicketStatus::AwaitingReview
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Queued => "queued",
            TicketStatus::Assigned => "assigned",
            TicketStatus::AwaitingReview => "awaiting_review",
            TicketStatus::Resolved => "resolved",
            TicketStatus::Rejected => "rejected",
            TicketStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            TicketStatus::Queued,
            TicketStatus::Assigned,
            TicketStatus::AwaitingReview,
            TicketStatus::Resolved,
            TicketStatus::Rejected,
            TicketStatus::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathOutcome {
    Resolved,
    Escalated,
    ReviewRequested,
    HandedOn,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PathStep {
    pub agent_id: String,
    pub agent_name: String,
    pub tier: String,
    pub outcome: PathOutcome,
    pub time_ms: i64,
    pub confidence: f64,
    pub detail: String,
}

/// The assignment a ticket is under while `Assigned`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub assignment_id: String,
    pub agent_id: String,
    pub tier: usize,
    /// A remote agent must reply by then or the ticket is handed on; built-in agents have none.
    #[serde(default)]
    pub deadline_ms: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: String,
    pub customer_id: String,
    pub inquiry: String,
    pub context: BTreeMap<String, String>,
    pub topic: String,
    pub priority: u8,
    pub status: TicketStatus,
    /// The agent working on it, or the last one that did.
    pub agent_id: String,
    pub agent_name: String,
    pub agent_tier: String,
    pub escalation_count: u32,
    pub resolution: String,
    pub path: Vec<PathStep>,
    pub escalation_id: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub resolved_ms: Option<i64>,
    /// Policy rules that force a human review, evaluated once at creation.
    pub policy_rules: Vec<String>,
    pub policy_raise_to: Option<ReviewPriority>,
    /// Lowest tier that may take it next (rises with each escalation).
    pub min_tier: usize,
    pub assignment: Option<Assignment>,
    /// Counts assignments, to mint unique assignment ids.
    pub assignments_made: u32,
    /// The best draft answer so far, handed to the next tier and to reviewers.
    pub draft: String,
    /// The client that created it and its idempotency key (empty: none).
    pub client_id: String,
    pub idempotency_key: String,
    /// When it entered the queue, while `Queued`.
    pub queued_ms: Option<i64>,
    /// The knowledge base's answer, when it was scored before the ticket was created. Kept in
    /// memory only: after a restart built-in agents score the inquiry again.
    #[serde(skip)]
    pub prepared: Option<Arc<PreparedAnswer>>,
}

/// What a customer asked, as a retry with the same idempotency key must ask it again.
#[derive(Clone, Copy, Debug)]
pub struct Asked<'a> {
    pub customer_id: &'a str,
    pub inquiry: &'a str,
    pub context: &'a BTreeMap<String, String>,
    pub priority: u8,
    /// The topic the caller named, if any.
    pub topic: Option<&'a str>,
}

impl Ticket {
    /// Whether `asked` is what this ticket was created for: the same customer, inquiry, context
    /// and priority, and the same topic when the retry names one. A retry that asks something
    /// else with the same idempotency key is a mistake the caller must hear of.
    pub fn was_asked(&self, asked: &Asked<'_>) -> bool {
        self.customer_id == asked.customer_id
            && self.inquiry == asked.inquiry
            && &self.context == asked.context
            && self.priority == asked.priority
            && asked
                .topic
                .is_none_or(|t| t.trim().eq_ignore_ascii_case(&self.topic))
    }

    /// True once it moved up a tier or went to a human.
    pub fn escalated(&self) -> bool {
        self.escalation_count > 0 || !self.escalation_id.is_empty()
    }

    /// The part of the id after `tkt_`, reused for ids derived from the ticket.
    pub fn id_suffix(&self) -> &str {
        self.id.strip_prefix("tkt_").unwrap_or(&self.id)
    }

    /// The id of the ticket's `n`th assignment: `asg_<suffix>_<n>`.
    pub fn assignment_id(&self, n: u32) -> String {
        format!("asg_{}_{n}", self.id_suffix())
    }
}

/// The ticket an assignment id was minted for (see [`Ticket::assignment_id`]), if it is one.
pub fn ticket_of_assignment(assignment_id: &str) -> Option<String> {
    let rest = assignment_id.strip_prefix("asg_")?;
    let (suffix, n) = rest.rsplit_once('_')?;
    n.parse::<u32>().ok()?;
    Some(format!("tkt_{suffix}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::ticket;

    #[test]
    fn settled_means_closed_or_with_a_human() {
        use TicketStatus::*;
        for (status, settled, closed) in [
            (Queued, false, false),
            (Assigned, false, false),
            (AwaitingReview, true, false),
            (Resolved, true, true),
            (Rejected, true, true),
            (Failed, true, true),
        ] {
            assert_eq!(status.is_settled(), settled, "{status:?} settled");
            assert_eq!(status.is_final(), closed, "{status:?} final");
            assert_eq!(TicketStatus::parse(status.as_str()), Some(status));
        }
    }

    #[test]
    fn a_retry_asks_the_same_only_when_every_part_matches() {
        let mut t = ticket();
        t.topic = "account".into();
        let context = BTreeMap::from([("plan".to_string(), "pro".to_string())]);
        t.context = context.clone();
        let same = Asked {
            customer_id: "alice",
            inquiry: "How do I reset my password?",
            context: &context,
            priority: 5,
            topic: None,
        };
        assert!(t.was_asked(&same));
        assert!(t.was_asked(&Asked {
            topic: Some(" Account "),
            ..same
        }));
        let other_context = BTreeMap::new();
        for differs in [
            Asked {
                customer_id: "bob",
                ..same
            },
            Asked {
                inquiry: "Where is my invoice?",
                ..same
            },
            Asked {
                context: &other_context,
                ..same
            },
            Asked {
                priority: 6,
                ..same
            },
            Asked {
                topic: Some("billing"),
                ..same
            },
        ] {
            assert!(!t.was_asked(&differs), "{differs:?}");
        }
    }

    #[test]
    fn escalated_once_it_moved_up_a_tier_or_went_to_a_human() {
        let mut t = ticket();
        assert!(!t.escalated());
        t.escalation_count = 1;
        assert!(t.escalated());
        t.escalation_count = 0;
        t.escalation_id = "esc_1".into();
        assert!(t.escalated());
    }

    #[test]
    fn assignment_ids_lead_back_to_their_ticket() {
        assert_eq!(
            ticket_of_assignment("asg_1a2b3c_2").as_deref(),
            Some("tkt_1a2b3c")
        );
        assert_eq!(ticket_of_assignment("asg_x"), None);
        assert_eq!(ticket_of_assignment("tkt_1_1"), None);
        assert_eq!(ticket_of_assignment("asg_1_x"), None);
    }
}
