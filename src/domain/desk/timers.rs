//! Deadlines: a queued ticket waits at most the queue timeout, a review expires (after its
//! reassignments), a remote agent answers its assignment in time. Timers fire when the
//! runtime passes the time in; each handler checks the deadline still holds, so a stale timer
//! does nothing.
//!
//! Methods of `Desk` here: `fire_timers`, `reply_overdue`, `queue_timed_out`, `review_deadline`.

use super::Desk;
use crate::domain::event::{EscalationEventKind, TicketEventKind};
use crate::domain::review::EscalationState;
use crate::domain::ticket::TicketStatus;

/// What a timer is for, ordered after its due time in [`Desk`]'s timer set.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    Review(String),
    Queue(String),
    /// A remote agent's reply is due.
    Assignment(String),
}

impl Desk {
    /// Fires every timer due at `now_ms`: queue timeouts send tickets to human review, review
    /// deadlines reassign (up to the configured count) and then expire.
    pub fn fire_timers(&mut self, now_ms: i64) {
        while let Some((due, _)) = self.timers.first() {
            if *due > now_ms {
                break;
            }
            let (_, timer) = self.timers.pop_first().expect("checked first");
            match timer {
                Timer::Queue(ticket_id) => self.queue_timed_out(&ticket_id, now_ms),
                Timer::Review(esc_id) => self.review_deadline(&esc_id, now_ms),
                Timer::Assignment(assignment_id) => self.reply_overdue(&assignment_id, now_ms),
            }
        }
    }

    /// A remote agent did not answer in time: the ticket goes to someone else.
    pub(super) fn reply_overdue(&mut self, assignment_id: &str, now_ms: i64) {
        let Some(ticket_id) = self.assignments.get(assignment_id).cloned() else {
            return;
        };
        let overdue = self.tickets.get(&ticket_id).is_some_and(|t| {
            t.assignment
                .as_ref()
                .and_then(|a| a.deadline_ms)
                .is_some_and(|due| due <= now_ms)
        });
        if overdue {
            self.reassign(&ticket_id, "no reply within the deadline", true, now_ms);
        }
    }

    pub(super) fn queue_timed_out(&mut self, ticket_id: &str, now_ms: i64) {
        let Some(ticket) = self.tickets.get(ticket_id) else {
            return;
        };
        let due = ticket
            .queued_ms
            .map(|since| since + self.settings.queue_timeout_ms);
        if ticket.status != TicketStatus::Queued || due.is_none_or(|due| due > now_ms) {
            return;
        }
        let mut ticket = self.tickets.remove(ticket_id).expect("checked above");
        if let Some(since) = ticket.queued_ms.take() {
            self.queue.remove(&ticket, since);
        }
        let reason = "no agent had capacity within the queue timeout";
        self.request_review(ticket, "desk", reason, None, now_ms);
    }

    pub(super) fn review_deadline(&mut self, esc_id: &str, now_ms: i64) {
        let Some(escalation) = self.reviews.pending(esc_id) else {
            return;
        };
        if escalation.expire_ms > now_ms {
            return;
        }
        let current = escalation.reviewer_id.clone();
        let can_reassign = escalation.reassign_count < self.settings.max_review_reassignments;
        let other = can_reassign
            .then(|| {
                self.reviews
                    .best_reviewer(&escalation.topic, current.as_deref())
            })
            .flatten();
        if let Some(other) = other {
            let new_deadline = now_ms + self.settings.escalation_timeout_ms;
            self.reviews.touch(esc_id, |e| {
                e.reassign_count += 1;
                e.expire_ms = new_deadline;
            });
            self.timers
                .insert((new_deadline, Timer::Review(esc_id.to_string())));
            self.assign_review(esc_id, &other, EscalationEventKind::Reassigned, now_ms);
            return;
        }
        let mut escalation = self.reviews.close(esc_id, None).expect("checked pending");
        let apology = "We are sorry: nobody could review your request in time. Please contact us again and we will prioritise it.".to_string();
        escalation.state = EscalationState::Expired;
        escalation.decided_ms = Some(now_ms);
        escalation.resolution = apology.clone();
        self.stats.expired += 1;
        self.escalation_event(EscalationEventKind::Expired, &escalation, None, now_ms);
        if let Some(mut ticket) = self.tickets.remove(&escalation.ticket_id) {
            ticket.resolution = apology;
            ticket.updated_ms = now_ms;
            self.ticket_event(
                TicketEventKind::Expired,
                "review expired".into(),
                &ticket,
                now_ms,
            );
            self.finish(
                ticket,
                TicketStatus::Failed,
                TicketEventKind::Failed,
                "closed without an answer".into(),
                now_ms,
            );
        }
        if let Some(r) = current {
            self.fill_reviewer(&r, now_ms);
        }
    }
}
