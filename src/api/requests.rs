//! Requests into commands: each function checks one request against the API's limits (every
//! bad field named at once, see [`Violations`]) and turns it into the domain's or runtime's
//! terms, or fails with INVALID_ARGUMENT. What a field may hold is decided here and in
//! [`super::validate`]; what it means, in [`super::convert`].

use std::collections::{BTreeSet, HashSet};

use tonic::Status;

use super::convert;
use super::validate::{TokenKind, Violations, Window, HISTORY_PAGE, STORED_PAGE};
use crate::config::Limits;
use crate::domain::desk::{
    AgentChange, AgentReply, AttachSpec, Decision, ReviewerChange, SettingsChange,
};
use crate::domain::event::EventKind;
use crate::domain::limits::{CAPACITY, DEFAULT_PRIORITY, DISPLAY_NAME_BYTES, NAME_BYTES, PRIORITY};
use crate::domain::mesh::{Agent, AgentKind, Availability};
use crate::domain::review::{EscalationState, Reviewer};
use crate::keys::{is_key_id, PERMISSIONS};
use crate::proto::v1 as pb;
use crate::runtime::Inquiry;
use crate::store::{Cursor, EscalationFilter, TicketFilter};

/// Longest comment on a decision, and longest rejection reason, in bytes.
const COMMENT_BYTES: usize = 4 * 1024;
/// Longest escalation or review reason of a remote agent, in bytes.
const REASON_BYTES: usize = 1024;
/// Longest answer or draft of a remote agent, in bytes.
const AGENT_TEXT_BYTES: usize = 16 * 1024;
/// A reviewer created without `max_concurrent` holds this many reviews at once.
const DEFAULT_MAX_CONCURRENT: u32 = 3;
/// How much of a caller's text an error message quotes back.
const QUOTED_CHARS: usize = 32;

/// One page of a list read from the store.
pub struct StoredPage<F> {
    pub filter: F,
    pub limit: usize,
    pub after: Option<Cursor>,
}

/// A decision on a review, as a reviewer (or an admin for one) asked for it.
pub struct DecisionRequest {
    pub escalation_id: String,
    pub on_behalf_of: Option<String>,
    pub decision: Decision,
}

/// A watch: from where, and which events.
pub struct WatchRequest<T> {
    pub after: u64,
    pub select: T,
}

fn quoted(s: &str) -> String {
    s.chars().take(QUOTED_CHARS).collect()
}

fn non_empty(s: String) -> Option<String> {
    Some(s).filter(|s| !s.is_empty())
}

fn capacity_in_range(v: &mut Violations, field: &str, value: u32) {
    v.check(
        CAPACITY.contains(&value),
        field,
        format!("must be within {}..{}", CAPACITY.start(), CAPACITY.end()),
    );
}

/// The `update_specialties` switch: specialties are replaced only when it is set.
fn specialties_change(
    v: &mut Violations,
    specialties: &[String],
    update: bool,
) -> Option<BTreeSet<String>> {
    let parsed = v.topics("specialties", specialties);
    if !update && !specialties.is_empty() {
        v.add(
            "update_specialties",
            "set it to true to replace the specialties",
        );
    }
    update.then_some(parsed)
}

/// A customer id: a label of at most `limits.customer_id_bytes`.
fn customer_id(v: &mut Violations, value: &str, required: bool, limits: &Limits) {
    v.label("customer_id", value, required, limits.customer_id_bytes);
}

pub fn inquiry(r: pb::HandleInquiryRequest, limits: &Limits) -> Result<Inquiry, Status> {
    let mut v = Violations::default();
    customer_id(&mut v, &r.customer_id, true, limits);
    v.text("inquiry", &r.inquiry, true, limits.inquiry_bytes);
    if r.context.len() > limits.context_entries {
        v.add(
            "context",
            format!(
                "has {} entries; at most {} allowed",
                r.context.len(),
                limits.context_entries
            ),
        );
    }
    for (key, value) in &r.context {
        if key.is_empty()
            || key.len() > limits.context_key_bytes
            || key.chars().any(char::is_control)
        {
            v.add(
                "context",
                format!(
                    "key {:?} must be 1..{} bytes without control characters",
                    quoted(key),
                    limits.context_key_bytes
                ),
            );
        }
        if value.len() > limits.context_value_bytes || value.chars().any(char::is_control) {
            v.add(
                "context",
                format!(
                    "value of {:?} must be at most {} bytes without control characters",
                    quoted(key),
                    limits.context_value_bytes
                ),
            );
        }
    }
    v.check(
        r.priority == 0 || PRIORITY.contains(&r.priority),
        "priority",
        format!(
            "must be within {}..{} (0 means {DEFAULT_PRIORITY})",
            PRIORITY.start(),
            PRIORITY.end()
        ),
    );
    let topic = r.topic.trim();
    if !topic.is_empty() {
        v.identifier("topic", topic, limits.topic_bytes);
    }
    v.label(
        "idempotency_key",
        &r.idempotency_key,
        false,
        limits.idempotency_key_bytes,
    );
    v.finish()?;
    Ok(Inquiry {
        topic: non_empty(topic.to_string()),
        customer_id: r.customer_id,
        inquiry: r.inquiry.trim().to_string(),
        context: r.context.into_iter().collect(),
        priority: if r.priority == 0 {
            DEFAULT_PRIORITY
        } else {
            r.priority as u8
        },
        idempotency_key: r.idempotency_key,
    })
}

/// `scope`: the client whose tickets the caller may list (`None`: every client's).
pub fn ticket_list(
    r: pb::ListTicketsRequest,
    limits: &Limits,
    scope: Option<&str>,
) -> Result<StoredPage<TicketFilter>, Status> {
    let mut v = Violations::default();
    customer_id(&mut v, &r.customer_id, false, limits);
    let status = match pb::TicketStatus::try_from(r.status) {
        Ok(s) => convert::ticket_status_from(s),
        Err(_) => {
            v.add("status", format!("unknown TicketStatus value {}", r.status));
            None
        }
    };
    let limit = v.page_size("page_size", r.page_size, STORED_PAGE);
    let after = v.page_token("page_token", &r.page_token, TokenKind::Ticket);
    v.finish()?;
    Ok(StoredPage {
        filter: TicketFilter {
            customer_id: non_empty(r.customer_id),
            status,
            client_id: scope.map(str::to_string),
        },
        limit,
        after,
    })
}

/// The ticket to watch, and from where.
pub fn watch_ticket(r: &pb::WatchTicketRequest) -> Result<(), Status> {
    let mut v = Violations::default();
    v.sequence("after_sequence", r.after_sequence);
    v.resource_id("ticket_id", &r.ticket_id, "tkt_");
    v.finish()
}

/// How many of the customer's newest tickets the caller asked for.
pub fn history(r: &pb::GetCustomerHistoryRequest, limits: &Limits) -> Result<usize, Status> {
    let mut v = Violations::default();
    customer_id(&mut v, &r.customer_id, true, limits);
    let limit = v.page_size("limit", r.limit, HISTORY_PAGE);
    v.finish()?;
    Ok(limit)
}

pub fn escalation_list(
    r: pb::ListEscalationsRequest,
) -> Result<StoredPage<EscalationFilter>, Status> {
    let mut v = Violations::default();
    let state = match pb::EscalationState::try_from(r.state) {
        Ok(s) => convert::escalation_state_from(s),
        Err(_) => {
            v.add(
                "state",
                format!("unknown EscalationState value {}", r.state),
            );
            EscalationState::Pending
        }
    };
    v.optional_name("reviewer_id", &r.reviewer_id);
    let limit = v.page_size("page_size", r.page_size, STORED_PAGE);
    let after = v.page_token("page_token", &r.page_token, TokenKind::Escalation);
    v.finish()?;
    Ok(StoredPage {
        filter: EscalationFilter {
            state,
            reviewer_id: non_empty(r.reviewer_id),
        },
        limit,
        after,
    })
}

pub fn approval(
    r: pb::ApproveEscalationRequest,
    limits: &Limits,
) -> Result<DecisionRequest, Status> {
    let mut v = Violations::default();
    v.resource_id("escalation_id", &r.escalation_id, "esc_");
    v.text("comments", &r.comments, false, COMMENT_BYTES);
    v.text("response", &r.response, false, limits.text_bytes);
    v.optional_name("reviewer_id", &r.reviewer_id);
    v.finish()?;
    Ok(DecisionRequest {
        escalation_id: r.escalation_id,
        on_behalf_of: non_empty(r.reviewer_id),
        decision: Decision::Approve {
            comments: r.comments.trim().to_string(),
            response: non_empty(r.response.trim().to_string()),
        },
    })
}

pub fn rejection(r: pb::RejectEscalationRequest) -> Result<DecisionRequest, Status> {
    let mut v = Violations::default();
    v.resource_id("escalation_id", &r.escalation_id, "esc_");
    v.text("reason", &r.reason, true, COMMENT_BYTES);
    v.optional_name("reviewer_id", &r.reviewer_id);
    v.finish()?;
    Ok(DecisionRequest {
        escalation_id: r.escalation_id,
        on_behalf_of: non_empty(r.reviewer_id),
        decision: Decision::Reject {
            reason: r.reason.trim().to_string(),
        },
    })
}

/// The review and the reviewer to give it to (`None`: the caller).
pub fn assignment(r: pb::AssignEscalationRequest) -> Result<(String, Option<String>), Status> {
    let mut v = Violations::default();
    v.resource_id("escalation_id", &r.escalation_id, "esc_");
    v.optional_name("reviewer_id", &r.reviewer_id);
    v.finish()?;
    Ok((r.escalation_id, non_empty(r.reviewer_id)))
}

/// From where, and whose reviews (`None`: everyone's).
pub fn watch_escalations(
    r: pb::WatchEscalationsRequest,
) -> Result<WatchRequest<Option<String>>, Status> {
    let mut v = Violations::default();
    v.sequence("after_sequence", r.after_sequence);
    v.optional_name("reviewer_id", &r.reviewer_id);
    v.finish()?;
    Ok(WatchRequest {
        after: r.after_sequence,
        select: non_empty(r.reviewer_id),
    })
}

/// A new agent from the fields CreateAgent and Attach share, validated into `v`.
fn agent_fields(
    v: &mut Violations,
    name: &str,
    tier: &str,
    specialties: &[String],
    capacity: u32,
) -> Agent {
    v.name("name", name);
    v.label("tier", tier, true, NAME_BYTES);
    let specialties = v.topics("specialties", specialties);
    v.check(
        capacity <= *CAPACITY.end(),
        "capacity",
        format!(
            "must be within {}..{} (0 means the tier default)",
            CAPACITY.start(),
            CAPACITY.end()
        ),
    );
    Agent::new(name, tier, specialties, capacity, AgentKind::Builtin)
}

pub fn new_agent(r: pb::CreateAgentRequest) -> Result<Agent, Status> {
    let mut v = Violations::default();
    let agent = agent_fields(&mut v, &r.name, &r.tier, &r.specialties, r.capacity);
    let kind = convert::agent_kind_from(r.kind).unwrap_or_else(|| {
        v.add("kind", format!("unknown AgentKind value {}", r.kind));
        AgentKind::Builtin
    });
    v.finish()?;
    Ok(Agent { kind, ..agent })
}

pub fn agent_change(r: pb::UpdateAgentRequest) -> Result<(String, AgentChange), Status> {
    let mut v = Violations::default();
    v.name("agent_id", &r.agent_id);
    let availability = match r.availability.map(convert::availability_from) {
        None => None,
        Some(Some(a @ (Availability::Available | Availability::Paused))) => Some(a),
        Some(Some(Availability::Offline)) => {
            v.add(
                "availability",
                "OFFLINE is set by the desk when a remote agent detaches; use PAUSED",
            );
            None
        }
        Some(None) => {
            v.add("availability", "must be AVAILABLE or PAUSED");
            None
        }
    };
    if let Some(c) = r.capacity {
        capacity_in_range(&mut v, "capacity", c);
    }
    let specialties = specialties_change(&mut v, &r.specialties, r.update_specialties);
    v.finish()?;
    let change = AgentChange {
        availability,
        capacity: r.capacity,
        specialties,
    };
    Ok((r.agent_id, change))
}

/// An agent or reviewer id to act on.
pub fn roster_id(field: &str, id: &str) -> Result<(), Status> {
    let mut v = Violations::default();
    v.name(field, id);
    v.finish()
}

/// A server-minted id to act on: `tkt_...` for `ticket_id`, `esc_...` for `escalation_id`.
pub fn resource_id(field: &str, id: &str, prefix: &str) -> Result<(), Status> {
    let mut v = Violations::default();
    v.resource_id(field, id, prefix);
    v.finish()
}

pub fn agent_list(r: &pb::ListAgentsRequest) -> Result<Window, Status> {
    let mut v = Violations::default();
    v.label("tier", &r.tier, false, NAME_BYTES);
    let window = v.window(r.page_size, &r.page_token);
    v.finish()?;
    Ok(window)
}

pub fn new_reviewer(r: pb::CreateReviewerRequest) -> Result<Reviewer, Status> {
    let mut v = Violations::default();
    v.name("reviewer_id", &r.reviewer_id);
    v.label("name", &r.name, true, DISPLAY_NAME_BYTES);
    let specialties = v.topics("specialties", &r.specialties);
    v.check(
        r.max_concurrent <= *CAPACITY.end(),
        "max_concurrent",
        format!(
            "must be within {}..{} (0 means {DEFAULT_MAX_CONCURRENT})",
            CAPACITY.start(),
            CAPACITY.end()
        ),
    );
    v.finish()?;
    Ok(Reviewer {
        id: r.reviewer_id,
        name: r.name,
        specialties,
        max_concurrent: if r.max_concurrent == 0 {
            DEFAULT_MAX_CONCURRENT
        } else {
            r.max_concurrent
        },
        load: 0,
        decided: 0,
        order: 0,
    })
}

pub fn reviewer_change(r: pb::UpdateReviewerRequest) -> Result<(String, ReviewerChange), Status> {
    let mut v = Violations::default();
    v.name("reviewer_id", &r.reviewer_id);
    if let Some(name) = &r.name {
        v.label("name", name, true, DISPLAY_NAME_BYTES);
    }
    if let Some(m) = r.max_concurrent {
        capacity_in_range(&mut v, "max_concurrent", m);
    }
    let specialties = specialties_change(&mut v, &r.specialties, r.update_specialties);
    v.finish()?;
    let change = ReviewerChange {
        name: r.name,
        max_concurrent: r.max_concurrent,
        specialties,
    };
    Ok((r.reviewer_id, change))
}

pub fn window(page_size: i32, page_token: &str) -> Result<Window, Status> {
    let mut v = Violations::default();
    let window = v.window(page_size, page_token);
    v.finish()?;
    Ok(window)
}

/// A key to create: for whom (client id and display name) and with which permissions (sorted,
/// each once).
pub struct NewKey {
    pub client_id: String,
    pub client_name: String,
    pub permissions: Vec<String>,
}

pub fn new_key(r: pb::CreateApiKeyRequest) -> Result<NewKey, Status> {
    let mut v = Violations::default();
    v.name("client_id", &r.client_id);
    v.label("client_name", &r.client_name, false, DISPLAY_NAME_BYTES);
    if r.permissions.is_empty() {
        v.add(
            "permissions",
            format!("name at least one of {}", PERMISSIONS.join(", ")),
        );
    }
    for p in &r.permissions {
        if !PERMISSIONS.contains(&p.as_str()) {
            v.add(
                "permissions",
                format!(
                    "unknown permission {:?}; use {}",
                    quoted(p),
                    PERMISSIONS.join(", ")
                ),
            );
        }
    }
    v.finish()?;
    let permissions: BTreeSet<String> = r.permissions.into_iter().collect();
    Ok(NewKey {
        client_name: non_empty(r.client_name).unwrap_or_else(|| r.client_id.clone()),
        client_id: r.client_id,
        permissions: permissions.into_iter().collect(),
    })
}

pub fn key_id(key_id: &str) -> Result<(), Status> {
    let mut v = Violations::default();
    v.check(
        is_key_id(key_id),
        "key_id",
        "must be the 12 hex characters of a key id (from ListApiKeys)",
    );
    v.finish()
}

/// The settings an UpdateConfig names: those in its update mask, or (without a mask) those it
/// sets. Bounds are the domain's ([`SettingsChange::applied_to`]).
pub fn settings_change(r: pb::UpdateConfigRequest) -> Result<SettingsChange, Status> {
    const FIELDS: [&str; 5] = [
        "routing_strategy",
        "escalation_timeout",
        "max_review_reassignments",
        "queue_timeout",
        "assignment_timeout",
    ];
    let mut v = Violations::default();
    let config = r.config.unwrap_or_default();
    let paths: Vec<String> = r.update_mask.map(|m| m.paths).unwrap_or_default();
    for p in &paths {
        if !FIELDS.contains(&p.as_str()) {
            v.add(
                "update_mask",
                format!("unknown field {:?}; use {}", quoted(p), FIELDS.join(", ")),
            );
        }
    }
    let wants = |field: &str, set: bool| {
        if paths.is_empty() {
            set
        } else {
            paths.iter().any(|p| p == field)
        }
    };
    let routing = if wants("routing_strategy", config.routing_strategy != 0) {
        let routing = convert::routing_from(config.routing_strategy);
        if routing.is_none() {
            v.add(
                "config.routing_strategy",
                "must be LEAST_LOADED or ROUND_ROBIN",
            );
        }
        routing
    } else {
        None
    };
    // A named duration that is unset is 0, which the domain's bounds refuse.
    let duration = |field: &str, value: &Option<prost_types::Duration>| {
        wants(field, value.is_some())
            .then(|| value.as_ref().map(convert::duration_to_ms).unwrap_or(0))
    };
    let change = SettingsChange {
        routing,
        escalation_timeout_ms: duration("escalation_timeout", &config.escalation_timeout),
        queue_timeout_ms: duration("queue_timeout", &config.queue_timeout),
        assignment_timeout_ms: duration("assignment_timeout", &config.assignment_timeout),
        max_review_reassignments: wants(
            "max_review_reassignments",
            config.max_review_reassignments != 0,
        )
        .then_some(config.max_review_reassignments),
    };
    v.finish()?;
    Ok(change)
}

/// From where, and which kinds of events (empty: all).
pub fn watch_events(r: pb::WatchEventsRequest) -> Result<WatchRequest<HashSet<EventKind>>, Status> {
    let mut v = Violations::default();
    v.sequence("after_sequence", r.after_sequence);
    let mut kinds = HashSet::new();
    for k in &r.kinds {
        match pb::DeskEventKind::try_from(*k)
            .ok()
            .and_then(convert::event_kind_from)
        {
            Some(kind) => {
                kinds.insert(kind);
            }
            None => v.add("kinds", format!("unknown DeskEventKind value {k}")),
        }
    }
    v.finish()?;
    Ok(WatchRequest {
        after: r.after_sequence,
        select: kinds,
    })
}

pub fn attach_spec(r: pb::AttachRequest) -> Result<AttachSpec, Status> {
    let mut v = Violations::default();
    let spec = if r.agent_id.is_empty() {
        AttachSpec::New(agent_fields(
            &mut v,
            &r.name,
            &r.tier,
            &r.specialties,
            r.capacity,
        ))
    } else {
        v.resource_id("agent_id", &r.agent_id, "agt_");
        if !r.name.is_empty() || !r.tier.is_empty() || !r.specialties.is_empty() {
            v.add(
                "agent_id",
                "give agent_id to bind an existing agent, or name and tier to register one, \
                 not both",
            );
        }
        AttachSpec::Existing(r.agent_id)
    };
    v.finish()?;
    Ok(spec)
}

/// The assignment answered and the agent's answer.
pub fn agent_reply(r: pb::ReplyRequest) -> Result<(String, AgentReply), Status> {
    use pb::reply_request::Outcome;
    let mut v = Violations::default();
    v.resource_id("assignment_id", &r.assignment_id, "asg_");
    // A remote agent reports no confidence: 0 means "not applicable" in the path.
    let reply = match r.outcome {
        Some(Outcome::Resolve(r)) => {
            v.text("resolve.response", &r.response, true, AGENT_TEXT_BYTES);
            AgentReply::Resolve {
                response: r.response.trim().to_string(),
                confidence: 0.0,
            }
        }
        Some(Outcome::Escalate(e)) => {
            v.text("escalate.reason", &e.reason, true, REASON_BYTES);
            v.text("escalate.draft", &e.draft, false, AGENT_TEXT_BYTES);
            AgentReply::Escalate {
                reason: e.reason.trim().to_string(),
                draft: e.draft.trim().to_string(),
                confidence: 0.0,
            }
        }
        Some(Outcome::RequestReview(r)) => {
            v.text("request_review.reason", &r.reason, true, REASON_BYTES);
            v.text("request_review.draft", &r.draft, false, AGENT_TEXT_BYTES);
            let priority = convert::review_priority_from(r.priority);
            if priority.is_none() && r.priority != 0 {
                v.add(
                    "request_review.priority",
                    format!("unknown EscalationPriority value {}", r.priority),
                );
            }
            AgentReply::RequestReview {
                reason: r.reason.trim().to_string(),
                draft: r.draft.trim().to_string(),
                priority,
                confidence: 0.0,
            }
        }
        None => {
            v.add(
                "outcome",
                "is required: set one of resolve, escalate or request_review",
            );
            AgentReply::Resolve {
                response: String::new(),
                confidence: 0.0,
            }
        }
    };
    v.finish()?;
    Ok((r.assignment_id, reply))
}
