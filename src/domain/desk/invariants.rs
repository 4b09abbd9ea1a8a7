//! The invariants between any two commands, checked by the property tests.

use std::collections::HashMap;

use super::Desk;
use crate::domain::mesh::{AgentKind, Availability};
use crate::domain::ticket::{PathOutcome, TicketStatus};

impl Desk {
    /// Checks the invariants that must hold between any two commands; returns what is broken.
    pub fn check_invariants(&self) -> Result<(), String> {
        for agent in self.mesh.agents() {
            if agent.kind == AgentKind::Remote
                && agent.availability == Availability::Available
                && agent.attached_by.is_none()
            {
                return Err(format!(
                    "remote agent {} available but not attached",
                    agent.name
                ));
            }
            let held = self.held.get(&agent.id).map_or(0, |s| s.len()) as u32;
            if agent.load != held {
                return Err(format!(
                    "agent {} load {} but holds {held}",
                    agent.name, agent.load
                ));
            }
            if agent.load > agent.capacity {
                return Err(format!(
                    "agent {} load {} above capacity {}",
                    agent.name, agent.load, agent.capacity
                ));
            }
        }
        let assigned_tickets = self
            .tickets
            .values()
            .filter(|t| t.status == TicketStatus::Assigned)
            .count();
        if assigned_tickets != self.assignments.len() {
            return Err(format!(
                "{assigned_tickets} assigned tickets but {} assignments",
                self.assignments.len()
            ));
        }
        let mut review_load: HashMap<&str, u32> = HashMap::new();
        for e in self.reviews.pending_all() {
            if let Some(r) = e.reviewer_id.as_deref() {
                *review_load.entry(r).or_default() += 1;
            }
        }
        for r in self.reviews.reviewers() {
            let expected = review_load.get(r.id.as_str()).copied().unwrap_or(0);
            if r.load != expected {
                return Err(format!(
                    "reviewer {} load {} but holds {expected}",
                    r.id, r.load
                ));
            }
        }
        let queued = self
            .tickets
            .values()
            .filter(|t| t.status == TicketStatus::Queued)
            .count();
        if queued != self.queue.len() {
            return Err(format!(
                "{queued} queued tickets but the queue holds {}",
                self.queue.len()
            ));
        }
        self.check_waiting_work()
    }

    /// Work waits only when nobody may take it: no queued ticket while an eligible agent has
    /// room (but the one it was just handed on from for not answering), no unassigned review
    /// while a matching reviewer has room; every review's ticket waits for it, and every
    /// ticket that waits for a review has one.
    fn check_waiting_work(&self) -> Result<(), String> {
        for r in self.reviews.reviewers() {
            if r.load > r.max_concurrent {
                return Err(format!(
                    "reviewer {} load {} above max_concurrent {}",
                    r.id, r.load, r.max_concurrent
                ));
            }
        }
        for t in self.tickets.values() {
            match t.status {
                TicketStatus::Queued => {
                    let passed_over = t
                        .path
                        .last()
                        .filter(|s| s.outcome == PathOutcome::HandedOn)
                        .map(|s| s.agent_id.as_str());
                    let taker = self.mesh.agents().find(|a| {
                        a.availability == Availability::Available
                            && a.load < a.capacity
                            && self
                                .mesh
                                .tier_index(&a.tier)
                                .is_some_and(|i| i >= t.min_tier)
                            && self.mesh.eligible(a, &t.topic)
                            && Some(a.id.as_str()) != passed_over
                    });
                    if let Some(a) = taker {
                        return Err(format!(
                            "ticket {} is queued while agent {} could take it",
                            t.id, a.name
                        ));
                    }
                }
                TicketStatus::AwaitingReview => {
                    let review = self.reviews.pending(&t.escalation_id);
                    if review.is_none_or(|e| e.ticket_id != t.id) {
                        return Err(format!(
                            "ticket {} awaits a review that is not pending",
                            t.id
                        ));
                    }
                }
                _ => {}
            }
        }
        for e in self.reviews.pending_all() {
            let waits = self
                .tickets
                .get(&e.ticket_id)
                .is_some_and(|t| t.status == TicketStatus::AwaitingReview);
            if !waits {
                return Err(format!(
                    "review {} is pending for a ticket not awaiting it",
                    e.id
                ));
            }
            if e.reviewer_id.is_none() {
                if let Some(r) = self
                    .reviews
                    .reviewers()
                    .find(|r| r.has_room() && r.matches(&e.topic))
                {
                    return Err(format!(
                        "review {} is unassigned while reviewer {} has room for it",
                        e.id, r.id
                    ));
                }
            }
        }
        Ok(())
    }
}
