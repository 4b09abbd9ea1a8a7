//! The log entries commands append: each takes the next sequence number and a snapshot of
//! what changed.
//!
//! Methods of `Desk` here: `push`, `ticket_event`, `escalation_event`, `agent_event`,
//! `reviewer_event`.

use super::Desk;
use crate::domain::event::{EscalationEventKind, Event, EventBody, TicketEventKind};
use crate::domain::mesh::Agent;
use crate::domain::review::{Escalation, Reviewer};
use crate::domain::ticket::Ticket;

impl Desk {
    pub(super) fn push(&mut self, body: EventBody, now_ms: i64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.out.events.push(Event {
            seq,
            time_ms: now_ms,
            body,
        });
    }

    pub(super) fn ticket_event(
        &mut self,
        kind: TicketEventKind,
        detail: String,
        ticket: &Ticket,
        now_ms: i64,
    ) {
        self.push(
            EventBody::Ticket {
                kind,
                detail,
                ticket: ticket.clone(),
            },
            now_ms,
        );
    }

    pub(super) fn escalation_event(
        &mut self,
        kind: EscalationEventKind,
        escalation: &Escalation,
        previous_reviewer: Option<String>,
        now_ms: i64,
    ) {
        self.push(
            EventBody::Escalation {
                kind,
                escalation: escalation.clone(),
                previous_reviewer,
            },
            now_ms,
        );
    }

    pub(super) fn agent_event(&mut self, detail: &str, agent: &Agent, deleted: bool, now_ms: i64) {
        self.push(
            EventBody::Agent {
                detail: detail.into(),
                agent: agent.clone(),
                deleted,
            },
            now_ms,
        );
    }

    pub(super) fn reviewer_event(
        &mut self,
        detail: &str,
        reviewer: &Reviewer,
        deleted: bool,
        now_ms: i64,
    ) {
        self.push(
            EventBody::Reviewer {
                detail: detail.into(),
                reviewer: reviewer.clone(),
                deleted,
            },
            now_ms,
        );
    }
}
