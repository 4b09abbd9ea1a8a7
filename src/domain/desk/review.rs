//! Human review: opening a review for a ticket, assigning it to the best reviewer with room,
//! who may decide it, and the decisions themselves (approve, reject, hand over).
//!
//! Methods of `Desk` here: `request_review`, `assign_review`, `record_review_assignment`,
//! `fill_reviewer`, `decider`, `decide`, `approve`, `reject`, `after_decision`,
//! `refill_after_review`, `assign_escalation`.

use super::timers::Timer;
use super::{interim_answer, Actor, Decision, Desk};
use crate::domain::error::DomainError;
use crate::domain::event::{EscalationEventKind, TicketEventKind};
use crate::domain::policy::ReviewPriority;
use crate::domain::review::{Escalation, EscalationState};
use crate::domain::ticket::{Ticket, TicketStatus};

impl Desk {
    pub(super) fn request_review(
        &mut self,
        mut ticket: Ticket,
        requested_by: &str,
        reason: &str,
        priority: Option<ReviewPriority>,
        now_ms: i64,
    ) {
        let priority = [
            Some(ReviewPriority::from_ticket_priority(ticket.priority)),
            ticket.policy_raise_to,
            priority,
        ]
        .into_iter()
        .flatten()
        .max()
        .expect("the ticket priority always gives one");
        let escalation = Escalation {
            id: format!("esc_{}", ticket.id_suffix()),
            ticket_id: ticket.id.clone(),
            customer_id: ticket.customer_id.clone(),
            title: review_title(&ticket),
            description: format!("{reason}\n\ninquiry: {}", ticket.inquiry),
            topic: ticket.topic.clone(),
            priority,
            state: EscalationState::Pending,
            reviewer_id: None,
            requested_by: requested_by.to_string(),
            proposed_response: ticket.draft.clone(),
            created_ms: now_ms,
            expire_ms: now_ms + self.settings.escalation_timeout_ms,
            decided_ms: None,
            decided_by: String::new(),
            resolution: String::new(),
            comments: String::new(),
            reassign_count: 0,
        };
        ticket.status = TicketStatus::AwaitingReview;
        ticket.escalation_id = escalation.id.clone();
        ticket.updated_ms = now_ms;
        ticket.resolution = interim_answer(&escalation.id);
        self.ticket_event(
            TicketEventKind::ReviewRequested,
            format!("human review requested by {requested_by}: {reason}"),
            &ticket,
            now_ms,
        );
        self.escalation_event(EscalationEventKind::Created, &escalation, None, now_ms);
        self.stats.reviews_total += 1;
        self.timers
            .insert((escalation.expire_ms, Timer::Review(escalation.id.clone())));
        let esc_id = escalation.id.clone();
        let topic = escalation.topic.clone();
        self.tickets.insert(ticket.id.clone(), ticket);
        self.reviews.open(escalation);
        if let Some(reviewer) = self.reviews.best_reviewer(&topic, None) {
            self.assign_review(&esc_id, &reviewer, EscalationEventKind::Assigned, now_ms);
        }
    }

    /// Assigns a pending review and records it on both logs.
    pub(super) fn assign_review(
        &mut self,
        esc_id: &str,
        reviewer_id: &str,
        kind: EscalationEventKind,
        now_ms: i64,
    ) {
        let previous = match self.reviews.assign(esc_id, reviewer_id, false) {
            Ok(previous) => previous,
            Err(err) => {
                debug_assert!(false, "assign_review called without room: {err}");
                return;
            }
        };
        self.record_review_assignment(esc_id, reviewer_id, kind, previous.clone(), now_ms);
        if let Some(previous) = previous {
            self.fill_reviewer(&previous, now_ms);
        }
    }

    /// Puts an assignment of a review on both logs: the escalation's and its ticket's.
    pub(super) fn record_review_assignment(
        &mut self,
        esc_id: &str,
        reviewer_id: &str,
        kind: EscalationEventKind,
        previous: Option<String>,
        now_ms: i64,
    ) {
        let escalation = self
            .reviews
            .pending(esc_id)
            .expect("assigned above")
            .clone();
        self.escalation_event(kind, &escalation, previous, now_ms);
        let name = self
            .reviews
            .reviewer(reviewer_id)
            .map(|r| r.name.clone())
            .unwrap_or_default();
        if let Some(ticket) = self.tickets.get(&escalation.ticket_id).cloned() {
            self.ticket_event(
                TicketEventKind::ReviewerAssigned,
                format!("review assigned to {name} ({reviewer_id})"),
                &ticket,
                now_ms,
            );
        }
    }

    /// Gives a reviewer with room the most urgent, oldest unassigned reviews they match.
    pub(super) fn fill_reviewer(&mut self, reviewer_id: &str, now_ms: i64) {
        while let Some(esc_id) = self.reviews.next_for(reviewer_id) {
            self.assign_review(&esc_id, reviewer_id, EscalationEventKind::Assigned, now_ms);
        }
    }

    /// Resolves who decides: the key's client, or `on_behalf_of` for admin keys. Checks the
    /// rules of who may decide what, and claims an unassigned review for its decider.
    pub(super) fn decider(
        &mut self,
        esc_id: &str,
        actor: &Actor,
        on_behalf_of: Option<&str>,
        now_ms: i64,
    ) -> Result<String, DomainError> {
        let acting = match on_behalf_of {
            Some(r) if r != actor.client_id => {
                if !actor.admin {
                    return Err(DomainError::PermissionDenied(format!(
                        "acting as reviewer {r} needs an admin key"
                    )));
                }
                if self.reviews.reviewer(r).is_none() {
                    return Err(DomainError::NotFound(format!("reviewer {r} not found")));
                }
                r.to_string()
            }
            _ => actor.client_id.clone(),
        };
        let escalation = self
            .reviews
            .pending(esc_id)
            .ok_or_else(|| DomainError::NotPending(esc_id.to_string()))?;
        match escalation.reviewer_id.as_deref() {
            Some(owner) if owner == acting => {}
            Some(owner) => {
                if !actor.admin {
                    return Err(DomainError::PermissionDenied(format!(
                        "escalation {esc_id} is assigned to reviewer {owner}"
                    )));
                }
            }
            None => {
                if self.reviews.reviewer(&acting).is_some() {
                    let previous = self.reviews.assign(esc_id, &acting, true)?;
                    self.record_review_assignment(
                        esc_id,
                        &acting,
                        EscalationEventKind::Assigned,
                        previous,
                        now_ms,
                    );
                } else if !actor.admin {
                    return Err(DomainError::PermissionDenied(format!(
                        "client {acting} is not a reviewer"
                    )));
                }
            }
        }
        Ok(acting)
    }

    /// Applies a reviewer's decision (see [`Desk::approve`] and [`Desk::reject`]).
    pub fn decide(
        &mut self,
        esc_id: &str,
        actor: &Actor,
        on_behalf_of: Option<&str>,
        decision: Decision,
        now_ms: i64,
    ) -> Result<Escalation, DomainError> {
        match decision {
            Decision::Approve { comments, response } => {
                self.approve(esc_id, actor, on_behalf_of, comments, response, now_ms)
            }
            Decision::Reject { reason } => self.reject(esc_id, actor, on_behalf_of, reason, now_ms),
        }
    }

    /// Resolves the ticket with the reviewer's response, or the agent's draft.
    pub fn approve(
        &mut self,
        esc_id: &str,
        actor: &Actor,
        on_behalf_of: Option<&str>,
        comments: String,
        response: Option<String>,
        now_ms: i64,
    ) -> Result<Escalation, DomainError> {
        let decider = self.decider(esc_id, actor, on_behalf_of, now_ms)?;
        let mut escalation = self
            .reviews
            .close(esc_id, Some(&decider))
            .expect("decider checked it is pending");
        let answer = response
            .filter(|r| !r.trim().is_empty())
            .or_else(|| Some(escalation.proposed_response.clone()).filter(|d| !d.trim().is_empty()))
            .unwrap_or_else(|| {
                "Your request has been reviewed and approved by our team.".to_string()
            });
        escalation.state = EscalationState::Approved;
        escalation.decided_ms = Some(now_ms);
        escalation.decided_by = decider.clone();
        escalation.comments = comments;
        escalation.resolution = answer.clone();
        self.after_decision(&escalation, now_ms);
        self.escalation_event(EscalationEventKind::Approved, &escalation, None, now_ms);
        self.stats.approved += 1;
        if let Some(mut ticket) = self.tickets.remove(&escalation.ticket_id) {
            ticket.resolution = answer;
            ticket.updated_ms = now_ms;
            self.ticket_event(
                TicketEventKind::Approved,
                format!("approved by {decider}"),
                &ticket,
                now_ms,
            );
            self.finish(
                ticket,
                TicketStatus::Resolved,
                TicketEventKind::Resolved,
                format!("resolved after review by {decider}"),
                now_ms,
            );
        }
        self.refill_after_review(&escalation, now_ms);
        Ok(escalation)
    }

    /// Closes the ticket `REJECTED` with a reason the customer is told.
    pub fn reject(
        &mut self,
        esc_id: &str,
        actor: &Actor,
        on_behalf_of: Option<&str>,
        reason: String,
        now_ms: i64,
    ) -> Result<Escalation, DomainError> {
        if reason.trim().is_empty() {
            return Err(DomainError::invalid(
                "reason",
                "a rejection needs a reason the customer can read",
            ));
        }
        let decider = self.decider(esc_id, actor, on_behalf_of, now_ms)?;
        let mut escalation = self
            .reviews
            .close(esc_id, Some(&decider))
            .expect("decider checked it is pending");
        let answer = format!("We are unable to help with this request: {reason}");
        escalation.state = EscalationState::Rejected;
        escalation.decided_ms = Some(now_ms);
        escalation.decided_by = decider.clone();
        escalation.comments = reason;
        escalation.resolution = answer.clone();
        self.after_decision(&escalation, now_ms);
        self.escalation_event(EscalationEventKind::Rejected, &escalation, None, now_ms);
        self.stats.rejected += 1;
        if let Some(mut ticket) = self.tickets.remove(&escalation.ticket_id) {
            ticket.resolution = answer;
            self.finish(
                ticket,
                TicketStatus::Rejected,
                TicketEventKind::Rejected,
                format!("rejected by {decider}"),
                now_ms,
            );
        }
        self.refill_after_review(&escalation, now_ms);
        Ok(escalation)
    }

    pub(super) fn after_decision(&mut self, escalation: &Escalation, now_ms: i64) {
        self.timers
            .remove(&(escalation.expire_ms, Timer::Review(escalation.id.clone())));
        self.stats.decide_ms_total += (now_ms - escalation.created_ms).max(0) as u64;
    }

    pub(super) fn refill_after_review(&mut self, escalation: &Escalation, now_ms: i64) {
        if let Some(r) = escalation.reviewer_id.clone() {
            self.fill_reviewer(&r, now_ms);
        }
    }

    /// Claims a review (`reviewer_id` empty or the caller) or hands it to another reviewer.
    pub fn assign_escalation(
        &mut self,
        esc_id: &str,
        actor: &Actor,
        reviewer_id: Option<&str>,
        now_ms: i64,
    ) -> Result<Escalation, DomainError> {
        let target = reviewer_id.unwrap_or(&actor.client_id).to_string();
        let escalation = self
            .reviews
            .pending(esc_id)
            .ok_or_else(|| DomainError::NotPending(esc_id.to_string()))?;
        let owner = escalation.reviewer_id.clone();
        if !actor.admin {
            let mine_or_free =
                owner.is_none() || owner.as_deref() == Some(actor.client_id.as_str());
            if !mine_or_free {
                return Err(DomainError::PermissionDenied(format!(
                    "escalation {esc_id} is assigned to reviewer {}",
                    owner.unwrap_or_default()
                )));
            }
        }
        if self.reviews.reviewer(&target).is_none() {
            return Err(DomainError::NotFound(format!(
                "reviewer {target} not found"
            )));
        }
        if owner.as_deref() == Some(target.as_str()) {
            return Ok(escalation.clone());
        }
        if !self.reviews.reviewer(&target).is_some_and(|r| r.has_room()) {
            return Err(DomainError::FailedPrecondition(format!(
                "reviewer {target} has no room for another escalation"
            )));
        }
        self.assign_review(esc_id, &target, EscalationEventKind::Assigned, now_ms);
        Ok(self.reviews.pending(esc_id).expect("still pending").clone())
    }
}

/// A review's title: the topic and the start of the inquiry.
fn review_title(ticket: &Ticket) -> String {
    let mut title: String = ticket.inquiry.chars().take(80).collect();
    if ticket.inquiry.chars().count() > 80 {
        title.push('…');
    }
    format!("[{}] {title}", ticket.topic)
}
