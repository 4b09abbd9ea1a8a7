//! The invariants between any two commands, checked by the property tests.

use std::collections::HashMap;

use super::Desk;
use crate::domain::mesh::{AgentKind, Availability};
use crate::domain::ticket::TicketStatus;

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
        Ok(())
    }
}
