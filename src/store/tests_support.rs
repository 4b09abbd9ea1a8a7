//! Values for the store's tests: arbitrary tickets and escalations that reach every field.

use proptest::prelude::*;

use crate::domain::policy::ReviewPriority;
use crate::domain::review::{Escalation, EscalationState};
use crate::domain::ticket::{Assignment, PathOutcome, PathStep, Ticket, TicketStatus};

pub use crate::domain::fixtures::ticket as sample_ticket;

fn status() -> impl Strategy<Value = TicketStatus> {
    prop_oneof![
        Just(TicketStatus::Queued),
        Just(TicketStatus::Assigned),
        Just(TicketStatus::AwaitingReview),
        Just(TicketStatus::Resolved),
        Just(TicketStatus::Rejected),
        Just(TicketStatus::Failed),
    ]
}

fn priority() -> impl Strategy<Value = ReviewPriority> {
    prop_oneof![
        Just(ReviewPriority::Low),
        Just(ReviewPriority::Medium),
        Just(ReviewPriority::High),
        Just(ReviewPriority::Urgent),
    ]
}

fn step() -> impl Strategy<Value = PathStep> {
    (
        "[a-z_0-9]{0,8}",
        "\\PC{0,8}",
        prop_oneof![
            Just(PathOutcome::Resolved),
            Just(PathOutcome::Escalated),
            Just(PathOutcome::ReviewRequested),
            Just(PathOutcome::HandedOn),
        ],
        any::<i64>(),
        any::<f64>().prop_filter("comparable", |c| !c.is_nan()),
        "\\PC{0,12}",
    )
        .prop_map(
            |(agent_id, agent_name, outcome, time_ms, confidence, detail)| PathStep {
                tier: agent_id.chars().take(2).collect(),
                agent_id,
                agent_name,
                outcome,
                time_ms,
                confidence,
                detail,
            },
        )
}

/// Short strings from a small alphabet, so two tickets often share a field.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[ab]{1,3}", "\\PC{0,20}"]
}

/// Any ticket: every field takes its empty, shared and arbitrary values.
pub fn any_ticket() -> impl Strategy<Value = Ticket> {
    let ids = (text(), text(), text(), text(), text(), text(), text());
    let texts = (text(), text(), text(), text(), text());
    let numbers = (
        1u8..=10,
        any::<u32>(),
        any::<i64>(),
        any::<i64>(),
        proptest::option::of(any::<i64>()),
        0usize..4,
        any::<u32>(),
        proptest::option::of(any::<i64>()),
    );
    let parts = (
        status(),
        proptest::collection::btree_map(text(), text(), 0..3),
        proptest::collection::vec(step(), 0..3),
        proptest::collection::vec(text(), 0..2),
        proptest::option::of(priority()),
        proptest::option::of((
            text(),
            text(),
            0usize..3,
            proptest::option::of(any::<i64>()),
        )),
    );
    (ids, texts, numbers, parts).prop_map(
        |(
            (id, customer_id, agent_id, agent_name, agent_tier, escalation_id, client_id),
            (inquiry, topic, resolution, draft, idempotency_key),
            (
                priority,
                escalation_count,
                created_ms,
                updated_ms,
                resolved_ms,
                min_tier,
                assignments_made,
                queued_ms,
            ),
            (status, context, path, policy_rules, policy_raise_to, assignment),
        )| Ticket {
            id,
            customer_id,
            inquiry,
            context,
            topic,
            priority,
            status,
            agent_id,
            agent_name,
            agent_tier,
            escalation_count,
            resolution,
            path,
            escalation_id,
            created_ms,
            updated_ms,
            resolved_ms,
            policy_rules,
            policy_raise_to,
            min_tier,
            assignment: assignment.map(|(assignment_id, agent_id, tier, deadline_ms)| Assignment {
                assignment_id,
                agent_id,
                tier,
                deadline_ms,
            }),
            assignments_made,
            draft,
            client_id,
            idempotency_key,
            queued_ms,
            prepared: None,
        },
    )
}

/// Any escalation.
pub fn any_escalation() -> impl Strategy<Value = Escalation> {
    let texts = (
        text(),
        text(),
        text(),
        text(),
        text(),
        text(),
        text(),
        text(),
        text(),
    );
    let rest = (
        priority(),
        prop_oneof![
            Just(EscalationState::Pending),
            Just(EscalationState::Approved),
            Just(EscalationState::Rejected),
            Just(EscalationState::Expired),
        ],
        proptest::option::of(text()),
        (
            any::<i64>(),
            any::<i64>(),
            proptest::option::of(any::<i64>()),
        ),
        text(),
        any::<u32>(),
    );
    (texts, rest).prop_map(
        |(
            (
                id,
                ticket_id,
                customer_id,
                title,
                description,
                topic,
                requested_by,
                proposed_response,
                resolution,
            ),
            (
                priority,
                state,
                reviewer_id,
                (created_ms, expire_ms, decided_ms),
                decided_by,
                reassign_count,
            ),
        )| Escalation {
            id,
            ticket_id,
            customer_id,
            title,
            description,
            topic,
            priority,
            state,
            reviewer_id,
            requested_by,
            proposed_response,
            created_ms,
            expire_ms,
            decided_ms,
            decided_by,
            resolution,
            comments: String::new(),
            reassign_count,
        },
    )
}
