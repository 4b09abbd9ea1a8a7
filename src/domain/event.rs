//! Events: what every command changed, in the order it changed it. The desk-wide log is a
//! sequence of these; streams, history and the store all read them.

use serde::{Deserialize, Serialize};

use super::mesh::Agent;
use super::review::{Escalation, Reviewer};
use super::ticket::Ticket;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketEventKind {
    Created,
    Classified,
    Assigned,
    Queued,
    AgentReplied,
    TierEscalated,
    ReviewRequested,
    ReviewerAssigned,
    Approved,
    Rejected,
    Expired,
    Resolved,
    Failed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscalationEventKind {
    Created,
    Assigned,
    Approved,
    Rejected,
    Expired,
    Reassigned,
}

/// Which part of the log an event belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Ticket,
    Escalation,
    Agent,
    Reviewer,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventBody {
    Ticket {
        kind: TicketEventKind,
        detail: String,
        ticket: Ticket,
    },
    Escalation {
        kind: EscalationEventKind,
        escalation: Escalation,
        previous_reviewer: Option<String>,
    },
    Agent {
        detail: String,
        agent: Agent,
        deleted: bool,
    },
    Reviewer {
        detail: String,
        reviewer: Reviewer,
        deleted: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the desk-wide log: consecutive, starting at 1.
    pub seq: u64,
    pub time_ms: i64,
    pub body: EventBody,
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self.body {
            EventBody::Ticket { .. } => EventKind::Ticket,
            EventBody::Escalation { .. } => EventKind::Escalation,
            EventBody::Agent { .. } => EventKind::Agent,
            EventBody::Reviewer { .. } => EventKind::Reviewer,
        }
    }

    /// The ticket this event concerns, for ticket and escalation events.
    pub fn ticket_id(&self) -> Option<&str> {
        match &self.body {
            EventBody::Ticket { ticket, .. } => Some(&ticket.id),
            EventBody::Escalation { escalation, .. } => Some(&escalation.ticket_id),
            _ => None,
        }
    }

    /// Reviewers an escalation event matters to: the one it is assigned to and the one it left.
    pub fn concerns_reviewer(&self, reviewer_id: &str) -> bool {
        match &self.body {
            EventBody::Escalation {
                escalation,
                previous_reviewer,
                ..
            } => {
                escalation.reviewer_id.as_deref() == Some(reviewer_id)
                    || previous_reviewer.as_deref() == Some(reviewer_id)
            }
            _ => false,
        }
    }
}
