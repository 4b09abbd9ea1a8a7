//! How the desk's types are written to disk: protobuf messages, compact and readable by any
//! later version (a field added later decodes as its default from an older record).
//!
//! The tags and the codes of the enums below are the format: never renumber one, only add.
//! Every record converts to and from its domain type without loss (`tests` proves it for
//! arbitrary values), so what a replay delivers is exactly what was committed.

use std::collections::BTreeMap;

use crate::domain::event::{EscalationEventKind, TicketEventKind};
use crate::domain::mesh::{Agent, AgentKind, Availability};
use crate::domain::policy::ReviewPriority;
use crate::domain::review::{Escalation, EscalationState, Reviewer};
use crate::domain::ticket::{Assignment, PathOutcome, PathStep, Ticket, TicketStatus};

use super::StoreError;

#[derive(Clone, PartialEq, prost::Message)]
pub struct TicketRecord {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub customer_id: String,
    #[prost(string, tag = "3")]
    pub inquiry: String,
    #[prost(btree_map = "string, string", tag = "4")]
    pub context: BTreeMap<String, String>,
    #[prost(string, tag = "5")]
    pub topic: String,
    #[prost(uint32, tag = "6")]
    pub priority: u32,
    #[prost(uint32, tag = "7")]
    pub status: u32,
    #[prost(string, tag = "8")]
    pub agent_id: String,
    #[prost(string, tag = "9")]
    pub agent_name: String,
    #[prost(string, tag = "10")]
    pub agent_tier: String,
    #[prost(uint32, tag = "11")]
    pub escalation_count: u32,
    #[prost(string, tag = "12")]
    pub resolution: String,
    #[prost(message, repeated, tag = "13")]
    pub path: Vec<PathStepRecord>,
    #[prost(string, tag = "14")]
    pub escalation_id: String,
    #[prost(int64, tag = "15")]
    pub created_ms: i64,
    #[prost(int64, tag = "16")]
    pub updated_ms: i64,
    #[prost(int64, optional, tag = "17")]
    pub resolved_ms: Option<i64>,
    #[prost(string, repeated, tag = "18")]
    pub policy_rules: Vec<String>,
    #[prost(uint32, optional, tag = "19")]
    pub policy_raise_to: Option<u32>,
    #[prost(uint64, tag = "20")]
    pub min_tier: u64,
    #[prost(message, optional, tag = "21")]
    pub assignment: Option<AssignmentRecord>,
    #[prost(uint32, tag = "22")]
    pub assignments_made: u32,
    #[prost(string, tag = "23")]
    pub draft: String,
    #[prost(string, tag = "24")]
    pub client_id: String,
    #[prost(string, tag = "25")]
    pub idempotency_key: String,
    #[prost(int64, optional, tag = "26")]
    pub queued_ms: Option<i64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PathStepRecord {
    #[prost(string, tag = "1")]
    pub agent_id: String,
    #[prost(string, tag = "2")]
    pub agent_name: String,
    #[prost(string, tag = "3")]
    pub tier: String,
    #[prost(uint32, tag = "4")]
    pub outcome: u32,
    #[prost(int64, tag = "5")]
    pub time_ms: i64,
    #[prost(double, tag = "6")]
    pub confidence: f64,
    #[prost(string, tag = "7")]
    pub detail: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AssignmentRecord {
    #[prost(string, tag = "1")]
    pub assignment_id: String,
    #[prost(string, tag = "2")]
    pub agent_id: String,
    #[prost(uint64, tag = "3")]
    pub tier: u64,
    #[prost(int64, optional, tag = "4")]
    pub deadline_ms: Option<i64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct EscalationRecord {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub ticket_id: String,
    #[prost(string, tag = "3")]
    pub customer_id: String,
    #[prost(string, tag = "4")]
    pub title: String,
    #[prost(string, tag = "5")]
    pub description: String,
    #[prost(string, tag = "6")]
    pub topic: String,
    #[prost(uint32, tag = "7")]
    pub priority: u32,
    #[prost(uint32, tag = "8")]
    pub state: u32,
    #[prost(string, optional, tag = "9")]
    pub reviewer_id: Option<String>,
    #[prost(string, tag = "10")]
    pub requested_by: String,
    #[prost(string, tag = "11")]
    pub proposed_response: String,
    #[prost(int64, tag = "12")]
    pub created_ms: i64,
    #[prost(int64, tag = "13")]
    pub expire_ms: i64,
    #[prost(int64, optional, tag = "14")]
    pub decided_ms: Option<i64>,
    #[prost(string, tag = "15")]
    pub decided_by: String,
    #[prost(string, tag = "16")]
    pub resolution: String,
    #[prost(string, tag = "17")]
    pub comments: String,
    #[prost(uint32, tag = "18")]
    pub reassign_count: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AgentRecord {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub tier: String,
    #[prost(string, repeated, tag = "4")]
    pub specialties: Vec<String>,
    #[prost(uint32, tag = "5")]
    pub capacity: u32,
    #[prost(uint32, tag = "6")]
    pub load: u32,
    #[prost(uint32, tag = "7")]
    pub availability: u32,
    #[prost(uint32, tag = "8")]
    pub kind: u32,
    #[prost(uint64, tag = "9")]
    pub handled: u64,
    #[prost(string, optional, tag = "10")]
    pub attached_by: Option<String>,
    #[prost(string, optional, tag = "11")]
    pub owner: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ReviewerRecord {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, repeated, tag = "3")]
    pub specialties: Vec<String>,
    #[prost(uint32, tag = "4")]
    pub max_concurrent: u32,
    #[prost(uint32, tag = "5")]
    pub load: u32,
    #[prost(uint64, tag = "6")]
    pub decided: u64,
    #[prost(uint64, tag = "7")]
    pub order: u64,
}

/// One entry of the log. The state after the event is stored whole at most once per ticket
/// (or escalation) per commit; the commit's later events of the same ticket store only what
/// changed, and the event that closes a ticket for good points at the ticket's row, which
/// never changes again (see `sqlite::events`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct EventRecord {
    /// A [`TicketEventKind`] or [`EscalationEventKind`] code.
    #[prost(uint32, tag = "1")]
    pub kind: u32,
    #[prost(string, tag = "2")]
    pub detail: String,
    /// Agents and reviewers: the event deleted it.
    #[prost(bool, tag = "3")]
    pub deleted: bool,
    /// Escalation events: the reviewer it was assigned to before.
    #[prost(string, optional, tag = "4")]
    pub previous_reviewer: Option<String>,
    #[prost(oneof = "State", tags = "5, 6, 7, 8, 9, 10, 11, 12")]
    pub state: Option<State>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum State {
    /// An encoded [`TicketRecord`].
    #[prost(bytes, tag = "5")]
    Ticket(Vec<u8>),
    /// What changed since an earlier event of the same ticket.
    #[prost(message, tag = "6")]
    TicketChange(Change),
    /// The ticket as its row holds it: this event closed it.
    #[prost(bool, tag = "7")]
    TicketClosed(bool),
    /// An encoded [`EscalationRecord`].
    #[prost(bytes, tag = "8")]
    Escalation(Vec<u8>),
    #[prost(message, tag = "9")]
    EscalationChange(Change),
    /// The escalation as its row (this id) holds it: this event decided it.
    #[prost(string, tag = "10")]
    EscalationDecided(String),
    #[prost(message, tag = "11")]
    Agent(AgentRecord),
    #[prost(message, tag = "12")]
    Reviewer(ReviewerRecord),
}

/// The top-level fields of a record that differ from an earlier state (see `delta`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Change {
    /// How many sequence numbers back the earlier state is.
    #[prost(uint64, tag = "1")]
    pub back: u64,
    /// Fields the earlier state had and this one has not.
    #[prost(uint32, repeated, tag = "2")]
    pub cleared: Vec<u32>,
    /// The changed fields, encoded as in the record.
    #[prost(bytes = "vec", tag = "3")]
    pub fields: Vec<u8>,
}

fn bad(what: &str, code: u32) -> StoreError {
    StoreError::Corrupt(format!("unknown {what} code {code}"))
}

/// Stable codes of the domain's enums, one table each: the code is its position plus one.
macro_rules! codes {
    ($name:ident, $from:ident, $ty:ty, $what:literal, [$($variant:expr),+ $(,)?]) => {
        pub fn $name(value: $ty) -> u32 {
            const ALL: &[$ty] = &[$($variant),+];
            ALL.iter().position(|v| *v == value).expect("every variant has a code") as u32 + 1
        }
        pub fn $from(code: u32) -> Result<$ty, StoreError> {
            const ALL: &[$ty] = &[$($variant),+];
            (code as usize)
                .checked_sub(1)
                .and_then(|i| ALL.get(i).copied())
                .ok_or_else(|| bad($what, code))
        }
    };
}

codes!(
    status_code,
    status_from,
    TicketStatus,
    "ticket status",
    [
        TicketStatus::Queued,
        TicketStatus::Assigned,
        TicketStatus::AwaitingReview,
        TicketStatus::Resolved,
        TicketStatus::Rejected,
        TicketStatus::Failed,
    ]
);
codes!(
    outcome_code,
    outcome_from,
    PathOutcome,
    "path outcome",
    [
        PathOutcome::Resolved,
        PathOutcome::Escalated,
        PathOutcome::ReviewRequested,
        PathOutcome::HandedOn,
    ]
);
codes!(
    priority_code,
    priority_from,
    ReviewPriority,
    "review priority",
    [
        ReviewPriority::Low,
        ReviewPriority::Medium,
        ReviewPriority::High,
        ReviewPriority::Urgent,
    ]
);
codes!(
    state_code,
    state_from,
    EscalationState,
    "escalation state",
    [
        EscalationState::Pending,
        EscalationState::Approved,
        EscalationState::Rejected,
        EscalationState::Expired,
    ]
);
codes!(
    availability_code,
    availability_from,
    Availability,
    "availability",
    [
        Availability::Available,
        Availability::Paused,
        Availability::Offline,
    ]
);
codes!(
    agent_kind_code,
    agent_kind_from,
    AgentKind,
    "agent kind",
    [AgentKind::Builtin, AgentKind::Remote,]
);
codes!(
    ticket_event_code,
    ticket_event_from,
    TicketEventKind,
    "ticket event",
    [
        TicketEventKind::Created,
        TicketEventKind::Classified,
        TicketEventKind::Assigned,
        TicketEventKind::Queued,
        TicketEventKind::AgentReplied,
        TicketEventKind::TierEscalated,
        TicketEventKind::ReviewRequested,
        TicketEventKind::ReviewerAssigned,
        TicketEventKind::Approved,
        TicketEventKind::Rejected,
        TicketEventKind::Expired,
        TicketEventKind::Resolved,
        TicketEventKind::Failed,
    ]
);
codes!(
    escalation_event_code,
    escalation_event_from,
    EscalationEventKind,
    "escalation event",
    [
        EscalationEventKind::Created,
        EscalationEventKind::Assigned,
        EscalationEventKind::Approved,
        EscalationEventKind::Rejected,
        EscalationEventKind::Expired,
        EscalationEventKind::Reassigned,
    ]
);

impl From<&Ticket> for TicketRecord {
    fn from(t: &Ticket) -> Self {
        TicketRecord {
            id: t.id.clone(),
            customer_id: t.customer_id.clone(),
            inquiry: t.inquiry.clone(),
            context: t.context.clone(),
            topic: t.topic.clone(),
            priority: u32::from(t.priority),
            status: status_code(t.status),
            agent_id: t.agent_id.clone(),
            agent_name: t.agent_name.clone(),
            agent_tier: t.agent_tier.clone(),
            escalation_count: t.escalation_count,
            resolution: t.resolution.clone(),
            path: t
                .path
                .iter()
                .map(|p| PathStepRecord {
                    agent_id: p.agent_id.clone(),
                    agent_name: p.agent_name.clone(),
                    tier: p.tier.clone(),
                    outcome: outcome_code(p.outcome),
                    time_ms: p.time_ms,
                    confidence: p.confidence,
                    detail: p.detail.clone(),
                })
                .collect(),
            escalation_id: t.escalation_id.clone(),
            created_ms: t.created_ms,
            updated_ms: t.updated_ms,
            resolved_ms: t.resolved_ms,
            policy_rules: t.policy_rules.clone(),
            policy_raise_to: t.policy_raise_to.map(priority_code),
            min_tier: t.min_tier as u64,
            assignment: t.assignment.as_ref().map(|a| AssignmentRecord {
                assignment_id: a.assignment_id.clone(),
                agent_id: a.agent_id.clone(),
                tier: a.tier as u64,
                deadline_ms: a.deadline_ms,
            }),
            assignments_made: t.assignments_made,
            draft: t.draft.clone(),
            client_id: t.client_id.clone(),
            idempotency_key: t.idempotency_key.clone(),
            queued_ms: t.queued_ms,
        }
    }
}

impl TryFrom<TicketRecord> for Ticket {
    type Error = StoreError;

    fn try_from(r: TicketRecord) -> Result<Self, StoreError> {
        let path = r
            .path
            .into_iter()
            .map(|p| {
                Ok(PathStep {
                    agent_id: p.agent_id,
                    agent_name: p.agent_name,
                    tier: p.tier,
                    outcome: outcome_from(p.outcome)?,
                    time_ms: p.time_ms,
                    confidence: p.confidence,
                    detail: p.detail,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Ticket {
            id: r.id,
            customer_id: r.customer_id,
            inquiry: r.inquiry,
            context: r.context,
            topic: r.topic,
            priority: u8::try_from(r.priority)
                .map_err(|_| StoreError::Corrupt(format!("ticket priority {}", r.priority)))?,
            status: status_from(r.status)?,
            agent_id: r.agent_id,
            agent_name: r.agent_name,
            agent_tier: r.agent_tier,
            escalation_count: r.escalation_count,
            resolution: r.resolution,
            path,
            escalation_id: r.escalation_id,
            created_ms: r.created_ms,
            updated_ms: r.updated_ms,
            resolved_ms: r.resolved_ms,
            policy_rules: r.policy_rules,
            policy_raise_to: r.policy_raise_to.map(priority_from).transpose()?,
            min_tier: r.min_tier as usize,
            assignment: r.assignment.map(|a| Assignment {
                assignment_id: a.assignment_id,
                agent_id: a.agent_id,
                tier: a.tier as usize,
                deadline_ms: a.deadline_ms,
            }),
            assignments_made: r.assignments_made,
            draft: r.draft,
            client_id: r.client_id,
            idempotency_key: r.idempotency_key,
            queued_ms: r.queued_ms,
            prepared: None,
        })
    }
}

impl From<&Escalation> for EscalationRecord {
    fn from(e: &Escalation) -> Self {
        EscalationRecord {
            id: e.id.clone(),
            ticket_id: e.ticket_id.clone(),
            customer_id: e.customer_id.clone(),
            title: e.title.clone(),
            description: e.description.clone(),
            topic: e.topic.clone(),
            priority: priority_code(e.priority),
            state: state_code(e.state),
            reviewer_id: e.reviewer_id.clone(),
            requested_by: e.requested_by.clone(),
            proposed_response: e.proposed_response.clone(),
            created_ms: e.created_ms,
            expire_ms: e.expire_ms,
            decided_ms: e.decided_ms,
            decided_by: e.decided_by.clone(),
            resolution: e.resolution.clone(),
            comments: e.comments.clone(),
            reassign_count: e.reassign_count,
        }
    }
}

impl TryFrom<EscalationRecord> for Escalation {
    type Error = StoreError;

    fn try_from(r: EscalationRecord) -> Result<Self, StoreError> {
        Ok(Escalation {
            id: r.id,
            ticket_id: r.ticket_id,
            customer_id: r.customer_id,
            title: r.title,
            description: r.description,
            topic: r.topic,
            priority: priority_from(r.priority)?,
            state: state_from(r.state)?,
            reviewer_id: r.reviewer_id,
            requested_by: r.requested_by,
            proposed_response: r.proposed_response,
            created_ms: r.created_ms,
            expire_ms: r.expire_ms,
            decided_ms: r.decided_ms,
            decided_by: r.decided_by,
            resolution: r.resolution,
            comments: r.comments,
            reassign_count: r.reassign_count,
        })
    }
}

impl From<&Agent> for AgentRecord {
    fn from(a: &Agent) -> Self {
        AgentRecord {
            id: a.id.clone(),
            name: a.name.clone(),
            tier: a.tier.clone(),
            specialties: a.specialties.iter().cloned().collect(),
            capacity: a.capacity,
            load: a.load,
            availability: availability_code(a.availability),
            kind: agent_kind_code(a.kind),
            handled: a.handled,
            attached_by: a.attached_by.clone(),
            owner: a.owner.clone(),
        }
    }
}

impl TryFrom<AgentRecord> for Agent {
    type Error = StoreError;

    fn try_from(r: AgentRecord) -> Result<Self, StoreError> {
        Ok(Agent {
            id: r.id,
            name: r.name,
            tier: r.tier,
            specialties: r.specialties.into_iter().collect(),
            capacity: r.capacity,
            load: r.load,
            availability: availability_from(r.availability)?,
            kind: agent_kind_from(r.kind)?,
            handled: r.handled,
            attached_by: r.attached_by,
            owner: r.owner,
        })
    }
}

impl From<&Reviewer> for ReviewerRecord {
    fn from(r: &Reviewer) -> Self {
        ReviewerRecord {
            id: r.id.clone(),
            name: r.name.clone(),
            specialties: r.specialties.iter().cloned().collect(),
            max_concurrent: r.max_concurrent,
            load: r.load,
            decided: r.decided,
            order: r.order,
        }
    }
}

impl From<ReviewerRecord> for Reviewer {
    fn from(r: ReviewerRecord) -> Self {
        Reviewer {
            id: r.id,
            name: r.name,
            specialties: r.specialties.into_iter().collect(),
            max_concurrent: r.max_concurrent,
            load: r.load,
            decided: r.decided,
            order: r.order,
        }
    }
}

/// Decodes a record, naming what it is when the bytes are not one.
pub fn decode<M: prost::Message + Default>(what: &str, bytes: &[u8]) -> Result<M, StoreError> {
    M::decode(bytes).map_err(|err| StoreError::Corrupt(format!("{what}: {err}")))
}

pub fn ticket_from(bytes: &[u8]) -> Result<Ticket, StoreError> {
    decode::<TicketRecord>("ticket", bytes)?.try_into()
}

pub fn escalation_from(bytes: &[u8]) -> Result<Escalation, StoreError> {
    decode::<EscalationRecord>("escalation", bytes)?.try_into()
}

pub fn agent_from(bytes: &[u8]) -> Result<Agent, StoreError> {
    decode::<AgentRecord>("agent", bytes)?.try_into()
}

pub fn reviewer_from(bytes: &[u8]) -> Result<Reviewer, StoreError> {
    Ok(decode::<ReviewerRecord>("reviewer", bytes)?.into())
}

pub fn encode<M: prost::Message>(record: &M) -> Vec<u8> {
    record.encode_to_vec()
}
