//! The invariants between any two commands, checked by the property tests.
//!
//! Methods of `Desk` here: `check_invariants`, `check_gauges`, `check_only_open_work_held`,
//! `check_waiting_work`.

use std::collections::{BTreeSet, HashMap};

use super::timers::Timer;
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
        self.check_waiting_work()?;
        self.check_only_open_work_held()?;
        self.check_gauges()
    }

    /// The metrics' counts agree with the desk's own structures: only open statuses, the
    /// queued tickets are the queue, the assigned reviews are the reviewers' loads, the
    /// unassigned ones the board's unassigned set, and the oldest queue time is the queue's.
    fn check_gauges(&self) -> Result<(), String> {
        let gauges = self.gauges();
        if let Some(status) = gauges.tickets.keys().find(|s| s.is_final()) {
            return Err(format!("gauges count {status:?} tickets, a final status"));
        }
        let queued = gauges
            .tickets
            .get(&TicketStatus::Queued)
            .copied()
            .unwrap_or(0);
        let count = |assigned: bool| -> u64 {
            gauges
                .reviews
                .iter()
                .filter(|((_, a), _)| *a == assigned)
                .map(|(_, n)| n)
                .sum()
        };
        let loads: u64 = self.reviews.reviewers().map(|r| u64::from(r.load)).sum();
        let oldest = self.queue.waiting().map(|(queued_ms, _)| queued_ms).min();
        let counted = (queued, count(true), count(false), gauges.oldest_queued_ms);
        let held = (
            self.queue.len() as u64,
            loads,
            self.reviews.unassigned_count() as u64,
            oldest,
        );
        if counted != held {
            return Err(format!(
                "gauges count (queued, assigned reviews, unassigned reviews, oldest queued) \
                 {counted:?} but the desk holds {held:?}"
            ));
        }
        Ok(())
    }

    /// Memory follows open work, not history: no closed ticket stays in memory (the store
    /// keeps it), and every timer, assignment and hold points at open work, one each.
    fn check_only_open_work_held(&self) -> Result<(), String> {
        if let Some(t) = self.tickets.values().find(|t| t.status.is_final()) {
            return Err(format!(
                "closed ticket {} ({:?}) still held",
                t.id, t.status
            ));
        }
        let mut timed = BTreeSet::new();
        for (_, timer) in &self.timers {
            let live = match timer {
                Timer::Queue(id) => self
                    .tickets
                    .get(id)
                    .is_some_and(|t| t.status == TicketStatus::Queued),
                Timer::Review(id) => self.reviews.pending(id).is_some(),
                // Only remote agents' assignments have a reply deadline.
                Timer::Assignment(id) => self.assignments.contains_key(id),
            };
            if !live {
                return Err(format!("timer {timer:?} outlived its work"));
            }
            if !timed.insert(timer) {
                return Err(format!("two timers for {timer:?}"));
            }
        }
        let queue_timers = timed
            .iter()
            .filter(|t| matches!(t, Timer::Queue(_)))
            .count();
        let review_timers = timed.len()
            - queue_timers
            - timed
                .iter()
                .filter(|t| matches!(t, Timer::Assignment(_)))
                .count();
        let pending = self.reviews.pending_all().count();
        if (queue_timers, review_timers) != (self.queue.len(), pending) {
            return Err(format!(
                "{queue_timers} queue and {review_timers} review timers for {} queued \
                 tickets and {pending} pending reviews",
                self.queue.len()
            ));
        }
        for (assignment, ticket) in &self.assignments {
            let assigned = self
                .tickets
                .get(ticket)
                .is_some_and(|t| t.status == TicketStatus::Assigned);
            if !assigned {
                return Err(format!(
                    "assignment {assignment} for ticket {ticket}, not assigned"
                ));
            }
        }
        for (agent, held) in &self.held {
            if held.is_empty() {
                return Err(format!("agent {agent} keeps an empty hold"));
            }
        }
        Ok(())
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
