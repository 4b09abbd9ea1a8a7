//! Domain values to protobuf messages and back: every conversion between the two lives here.
//! Only `api` knows the generated types. Enum conversions from the wire return `None` for a
//! value the domain has no meaning for (`*_UNSPECIFIED`, or a number from a newer client), so
//! the request parser can name the field.

use prost_types::{Duration, Timestamp};

use crate::clock::now_ms;
use crate::domain::desk::{RemoteMessage, ReviewReport, Settings, StatusReport};
use crate::domain::event::{EscalationEventKind, Event, EventBody, EventKind, TicketEventKind};
use crate::domain::mesh::{Agent, AgentKind, Availability, RoutingStrategy};
use crate::domain::policy::ReviewPriority;
use crate::domain::review::{Escalation, EscalationState, Reviewer};
use crate::domain::ticket::{PathOutcome, Ticket, TicketStatus};
use crate::proto::v1 as pb;
use crate::runtime::{Answer, DeskStatus};
use crate::store::KeyRecord;

pub fn timestamp(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

pub fn duration_ms(ms: i64) -> Duration {
    Duration {
        seconds: ms / 1000,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

/// Milliseconds of a Duration, saturating; negative durations come back negative.
pub fn duration_to_ms(d: &Duration) -> i64 {
    d.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(d.nanos) / 1_000_000)
}

pub fn ticket_status(s: TicketStatus) -> pb::TicketStatus {
    match s {
        TicketStatus::Queued => pb::TicketStatus::Queued,
        TicketStatus::Assigned => pb::TicketStatus::Assigned,
        TicketStatus::AwaitingReview => pb::TicketStatus::AwaitingReview,
        TicketStatus::Resolved => pb::TicketStatus::Resolved,
        TicketStatus::Rejected => pb::TicketStatus::Rejected,
        TicketStatus::Failed => pb::TicketStatus::Failed,
    }
}

pub fn ticket_status_from(s: pb::TicketStatus) -> Option<TicketStatus> {
    Some(match s {
        pb::TicketStatus::Unspecified => return None,
        pb::TicketStatus::Queued => TicketStatus::Queued,
        pb::TicketStatus::Assigned => TicketStatus::Assigned,
        pb::TicketStatus::AwaitingReview => TicketStatus::AwaitingReview,
        pb::TicketStatus::Resolved => TicketStatus::Resolved,
        pb::TicketStatus::Rejected => TicketStatus::Rejected,
        pb::TicketStatus::Failed => TicketStatus::Failed,
    })
}

fn path_outcome(o: PathOutcome) -> pb::PathOutcome {
    match o {
        PathOutcome::Resolved => pb::PathOutcome::Resolved,
        PathOutcome::Escalated => pb::PathOutcome::Escalated,
        PathOutcome::ReviewRequested => pb::PathOutcome::ReviewRequested,
        PathOutcome::HandedOn => pb::PathOutcome::HandedOn,
    }
}

pub fn ticket(t: &Ticket) -> pb::Ticket {
    pb::Ticket {
        ticket_id: t.id.clone(),
        customer_id: t.customer_id.clone(),
        inquiry: t.inquiry.clone(),
        context: t.context.clone().into_iter().collect(),
        topic: t.topic.clone(),
        priority: i32::from(t.priority),
        status: ticket_status(t.status) as i32,
        assigned_agent_id: t.agent_id.clone(),
        escalation_count: t.escalation_count,
        resolution: t.resolution.clone(),
        resolution_path: t
            .path
            .iter()
            .map(|s| pb::PathStep {
                agent_id: s.agent_id.clone(),
                agent_name: s.agent_name.clone(),
                tier: s.tier.clone(),
                outcome: path_outcome(s.outcome) as i32,
                time: Some(timestamp(s.time_ms)),
                confidence: s.confidence,
                detail: s.detail.clone(),
            })
            .collect(),
        escalation_id: t.escalation_id.clone(),
        create_time: Some(timestamp(t.created_ms)),
        update_time: Some(timestamp(t.updated_ms)),
        resolve_time: t.resolved_ms.map(timestamp),
        policy_rules: t.policy_rules.clone(),
    }
}

pub fn review_priority(p: ReviewPriority) -> pb::EscalationPriority {
    match p {
        ReviewPriority::Low => pb::EscalationPriority::Low,
        ReviewPriority::Medium => pb::EscalationPriority::Medium,
        ReviewPriority::High => pb::EscalationPriority::High,
        ReviewPriority::Urgent => pb::EscalationPriority::Urgent,
    }
}

pub fn escalation_state(s: EscalationState) -> pb::EscalationState {
    match s {
        EscalationState::Pending => pb::EscalationState::Pending,
        EscalationState::Approved => pb::EscalationState::Approved,
        EscalationState::Rejected => pb::EscalationState::Rejected,
        EscalationState::Expired => pb::EscalationState::Expired,
    }
}

/// A priority from the wire; `None` for unspecified or unknown values.
pub fn review_priority_from(p: i32) -> Option<ReviewPriority> {
    match pb::EscalationPriority::try_from(p).ok()? {
        pb::EscalationPriority::Unspecified => None,
        pb::EscalationPriority::Low => Some(ReviewPriority::Low),
        pb::EscalationPriority::Medium => Some(ReviewPriority::Medium),
        pb::EscalationPriority::High => Some(ReviewPriority::High),
        pb::EscalationPriority::Urgent => Some(ReviewPriority::Urgent),
    }
}

pub fn escalation_state_from(s: pb::EscalationState) -> EscalationState {
    match s {
        pb::EscalationState::Unspecified | pb::EscalationState::Pending => EscalationState::Pending,
        pb::EscalationState::Approved => EscalationState::Approved,
        pb::EscalationState::Rejected => EscalationState::Rejected,
        pb::EscalationState::Expired => EscalationState::Expired,
    }
}

pub fn escalation(e: &Escalation) -> pb::Escalation {
    pb::Escalation {
        escalation_id: e.id.clone(),
        ticket_id: e.ticket_id.clone(),
        customer_id: e.customer_id.clone(),
        title: e.title.clone(),
        description: e.description.clone(),
        topic: e.topic.clone(),
        priority: review_priority(e.priority) as i32,
        state: escalation_state(e.state) as i32,
        assigned_reviewer_id: e.reviewer_id.clone().unwrap_or_default(),
        requested_by: e.requested_by.clone(),
        proposed_response: e.proposed_response.clone(),
        create_time: Some(timestamp(e.created_ms)),
        expire_time: Some(timestamp(e.expire_ms)),
        decide_time: e.decided_ms.map(timestamp),
        decided_by: e.decided_by.clone(),
        resolution: e.resolution.clone(),
        comments: e.comments.clone(),
        reassign_count: e.reassign_count,
    }
}

pub fn availability(a: Availability) -> pb::AgentAvailability {
    match a {
        Availability::Available => pb::AgentAvailability::Available,
        Availability::Paused => pb::AgentAvailability::Paused,
        Availability::Offline => pb::AgentAvailability::Offline,
    }
}

/// An availability from the wire; `None` for unspecified or unknown values.
pub fn availability_from(a: i32) -> Option<Availability> {
    match pb::AgentAvailability::try_from(a).ok()? {
        pb::AgentAvailability::Unspecified => None,
        pb::AgentAvailability::Available => Some(Availability::Available),
        pb::AgentAvailability::Paused => Some(Availability::Paused),
        pb::AgentAvailability::Offline => Some(Availability::Offline),
    }
}

fn agent_kind(k: AgentKind) -> pb::AgentKind {
    match k {
        AgentKind::Builtin => pb::AgentKind::Builtin,
        AgentKind::Remote => pb::AgentKind::Remote,
    }
}

/// An agent kind from the wire: unspecified means built-in; `None` for unknown values.
pub fn agent_kind_from(k: i32) -> Option<AgentKind> {
    match pb::AgentKind::try_from(k).ok()? {
        pb::AgentKind::Unspecified | pb::AgentKind::Builtin => Some(AgentKind::Builtin),
        pb::AgentKind::Remote => Some(AgentKind::Remote),
    }
}

pub fn agent(a: &Agent) -> pb::Agent {
    pb::Agent {
        agent_id: a.id.clone(),
        name: a.name.clone(),
        tier: a.tier.clone(),
        specialties: a.specialties.iter().cloned().collect(),
        capacity: a.capacity,
        load: a.load,
        availability: availability(a.availability) as i32,
        kind: agent_kind(a.kind) as i32,
        handled_count: a.handled,
    }
}

pub fn reviewer(r: &Reviewer) -> pb::Reviewer {
    pb::Reviewer {
        reviewer_id: r.id.clone(),
        name: r.name.clone(),
        specialties: r.specialties.iter().cloned().collect(),
        max_concurrent: r.max_concurrent,
        load: r.load,
        decided_count: r.decided,
    }
}

pub fn api_key(k: &KeyRecord) -> pb::ApiKey {
    pb::ApiKey {
        key_id: k.key_id.clone(),
        client_id: k.client_id.clone(),
        client_name: k.client_name.clone(),
        permissions: k.permissions.clone(),
        create_time: Some(timestamp(k.created_ms)),
        last_used_time: k.last_used_ms.map(timestamp),
        revoked: k.revoked,
    }
}

pub fn routing(r: RoutingStrategy) -> pb::RoutingStrategy {
    match r {
        RoutingStrategy::LeastLoaded => pb::RoutingStrategy::LeastLoaded,
        RoutingStrategy::RoundRobin => pb::RoutingStrategy::RoundRobin,
    }
}

/// A routing strategy from the wire; `None` for unspecified or unknown values.
pub fn routing_from(r: i32) -> Option<RoutingStrategy> {
    match pb::RoutingStrategy::try_from(r).ok()? {
        pb::RoutingStrategy::Unspecified => None,
        pb::RoutingStrategy::LeastLoaded => Some(RoutingStrategy::LeastLoaded),
        pb::RoutingStrategy::RoundRobin => Some(RoutingStrategy::RoundRobin),
    }
}

pub fn desk_config(s: &Settings) -> pb::DeskConfig {
    pb::DeskConfig {
        routing_strategy: routing(s.routing) as i32,
        escalation_timeout: Some(duration_ms(s.escalation_timeout_ms)),
        max_review_reassignments: s.max_review_reassignments,
        queue_timeout: Some(duration_ms(s.queue_timeout_ms)),
        assignment_timeout: Some(duration_ms(s.assignment_timeout_ms)),
    }
}

pub fn escalation_stats(r: &ReviewReport) -> pb::EscalationStats {
    pb::EscalationStats {
        total: r.total,
        active: r.active,
        approved: r.approved,
        rejected: r.rejected,
        expired: r.expired,
        approval_rate: r.approval_rate,
        avg_time_to_decision: Some(duration_ms(r.mean_decision_ms)),
        reviewers: r.reviewers.iter().map(reviewer).collect(),
        unassigned: r.unassigned,
    }
}

pub fn desk_status(
    desk_name: &str,
    status: &DeskStatus,
    leader: Option<&crate::store::Lease>,
) -> pb::DeskStatus {
    let r: &StatusReport = &status.report;
    pb::DeskStatus {
        desk_name: desk_name.to_string(),
        total_handled: r.stats.handled,
        escalation_rate: r.escalation_rate,
        avg_resolution_time: Some(duration_ms(r.mean_resolution_ms)),
        utilization: r.utilization,
        open_tickets: r.open_tickets,
        tiers: r
            .tiers
            .iter()
            .map(|t| pb::TierStatus {
                name: t.tier.name.clone(),
                agents: t.agents.iter().map(agent).collect(),
                confidence_threshold: t.tier.threshold,
            })
            .collect(),
        escalation_stats: Some(escalation_stats(&r.reviews)),
        auth_enabled: true,
        registered_clients: status.registered_clients as u32,
        queued_tickets: r.queued_tickets,
        sequence: r.sequence,
        leader: leader.map(|l| pb::DeskLeader {
            address: l.address.clone(),
            epoch: l.epoch,
            holder: l.holder.clone(),
        }),
    }
}

/// What HandleInquiry answers: the settled ticket and what to tell the customer now.
pub fn inquiry_answer(answer: &Answer) -> pb::HandleInquiryResponse {
    let t = &answer.ticket;
    let end = t.resolved_ms.unwrap_or_else(now_ms);
    pb::HandleInquiryResponse {
        response: t.resolution.clone(),
        agent: t.agent_name.clone(),
        escalated: t.escalated(),
        resolution_time: Some(duration_ms((end - t.created_ms).max(0))),
        escalation_id: if t.status == TicketStatus::AwaitingReview {
            t.escalation_id.clone()
        } else {
            String::new()
        },
        tier: t.agent_tier.clone(),
        replayed: answer.replayed,
        ticket: Some(ticket(t)),
    }
}

pub fn history_entry(t: &Ticket) -> pb::CustomerHistoryEntry {
    pb::CustomerHistoryEntry {
        ticket_id: t.id.clone(),
        inquiry: t.inquiry.clone(),
        response: t.resolution.clone(),
        agent: t.agent_name.clone(),
        status: ticket_status(t.status) as i32,
        topic: t.topic.clone(),
        create_time: Some(timestamp(t.created_ms)),
        resolve_time: t.resolved_ms.map(timestamp),
    }
}

/// The first message of an Attach stream.
pub fn attached(a: &Agent, assignment_timeout_ms: i64) -> pb::AttachResponse {
    pb::AttachResponse {
        message: Some(pb::attach_response::Message::Attached(pb::Attached {
            agent_id: a.id.clone(),
            agent: Some(agent(a)),
            assignment_timeout: Some(duration_ms(assignment_timeout_ms)),
        })),
    }
}

/// A message of an Attach stream after the first: an assignment or a revocation.
pub fn attach_message(message: RemoteMessage) -> pb::AttachResponse {
    use pb::attach_response::Message;
    let message = match message {
        RemoteMessage::Assignment {
            agent_id,
            assignment_id,
            ticket: t,
            deadline_ms,
            draft,
            instructions,
        } => Message::Assignment(pb::Assignment {
            assignment_id,
            agent_id,
            ticket: Some(ticket(&t)),
            deadline: Some(timestamp(deadline_ms)),
            draft,
            instructions,
        }),
        RemoteMessage::Revoked {
            assignment_id,
            reason,
            ..
        } => Message::Revoked(pb::Revoked {
            assignment_id,
            reason,
        }),
    };
    pb::AttachResponse {
        message: Some(message),
    }
}

fn ticket_event_type(k: TicketEventKind) -> pb::TicketEventType {
    use pb::TicketEventType as T;
    match k {
        TicketEventKind::Created => T::Created,
        TicketEventKind::Classified => T::Classified,
        TicketEventKind::Assigned => T::Assigned,
        TicketEventKind::Queued => T::Queued,
        TicketEventKind::AgentReplied => T::AgentReplied,
        TicketEventKind::TierEscalated => T::TierEscalated,
        TicketEventKind::ReviewRequested => T::ReviewRequested,
        TicketEventKind::ReviewerAssigned => T::ReviewerAssigned,
        TicketEventKind::Approved => T::Approved,
        TicketEventKind::Rejected => T::Rejected,
        TicketEventKind::Expired => T::Expired,
        TicketEventKind::Resolved => T::Resolved,
        TicketEventKind::Failed => T::Failed,
    }
}

fn escalation_event_type(k: EscalationEventKind) -> pb::EscalationEventType {
    use pb::EscalationEventType as T;
    match k {
        EscalationEventKind::Created => T::Created,
        EscalationEventKind::Assigned => T::Assigned,
        EscalationEventKind::Approved => T::Approved,
        EscalationEventKind::Rejected => T::Rejected,
        EscalationEventKind::Expired => T::Expired,
        EscalationEventKind::Reassigned => T::Reassigned,
    }
}

pub fn event_kind_from(k: pb::DeskEventKind) -> Option<EventKind> {
    Some(match k {
        pb::DeskEventKind::Unspecified => return None,
        pb::DeskEventKind::Ticket => EventKind::Ticket,
        pb::DeskEventKind::Escalation => EventKind::Escalation,
        pb::DeskEventKind::Agent => EventKind::Agent,
        pb::DeskEventKind::Reviewer => EventKind::Reviewer,
    })
}

/// The ticket event of a log entry, if it is one.
pub fn ticket_event(e: &Event) -> Option<pb::TicketEvent> {
    match &e.body {
        EventBody::Ticket {
            kind,
            detail,
            ticket: t,
        } => Some(pb::TicketEvent {
            sequence: e.seq,
            ticket_id: t.id.clone(),
            time: Some(timestamp(e.time_ms)),
            r#type: ticket_event_type(*kind) as i32,
            detail: detail.clone(),
            ticket: Some(ticket(t)),
        }),
        _ => None,
    }
}

/// The escalation event of a log entry, if it is one.
pub fn escalation_event(e: &Event) -> Option<pb::EscalationEvent> {
    match &e.body {
        EventBody::Escalation {
            kind,
            escalation: esc,
            previous_reviewer,
        } => Some(pb::EscalationEvent {
            sequence: e.seq,
            time: Some(timestamp(e.time_ms)),
            r#type: escalation_event_type(*kind) as i32,
            escalation: Some(escalation(esc)),
            previous_reviewer_id: previous_reviewer.clone().unwrap_or_default(),
        }),
        _ => None,
    }
}

pub fn desk_event(e: &Event) -> pb::DeskEvent {
    use pb::desk_event::Event as E;
    let (event, detail) = match &e.body {
        EventBody::Ticket { detail, .. } => (
            E::Ticket(ticket_event(e).expect("ticket body")),
            detail.clone(),
        ),
        EventBody::Escalation { kind, .. } => (
            E::Escalation(escalation_event(e).expect("escalation body")),
            format!(
                "escalation {}",
                escalation_event_type(*kind).as_str_name().to_lowercase()
            ),
        ),
        EventBody::Agent {
            detail, agent: a, ..
        } => (E::Agent(agent(a)), detail.clone()),
        EventBody::Reviewer {
            detail,
            reviewer: r,
            ..
        } => (E::Reviewer(reviewer(r)), detail.clone()),
    };
    pb::DeskEvent {
        sequence: e.seq,
        time: Some(timestamp(e.time_ms)),
        event: Some(event),
        detail,
    }
}
