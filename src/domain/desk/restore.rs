//! Rebuilding the open work of a desk from what the store kept.
//!
//! Methods of `Desk` here: `restore`.

use super::timers::Timer;
use super::{Desk, Dispatch, Restore};
use crate::domain::error::DomainError;
use crate::domain::mesh::{AgentKind, Availability};
use crate::domain::ticket::TicketStatus;

impl Desk {
    /// Rebuilds the open work of a desk from the store: loads are recounted from open
    /// assignments, tickets of agents that are gone are handed on, queued tickets and review
    /// deadlines get their timers back, built-in work is dispatched again.
    ///
    /// Refuses, changing nothing that matters, when a stored agent's tier is not among the
    /// configured tiers: starting anyway would strand that agent's tickets.
    pub fn restore(&mut self, restore: Restore, now_ms: i64) -> Result<(), DomainError> {
        if let Some(agent) = restore
            .agents
            .iter()
            .find(|a| self.mesh.tier_index(&a.tier).is_none())
        {
            return Err(DomainError::invalid(
                "tiers",
                format!(
                    "agent {} is in tier {:?}, which the configuration no longer has \
                     (it has {}); add the tier back, or delete the agent first",
                    agent.name,
                    agent.tier,
                    self.tier_names()
                ),
            ));
        }
        self.next_seq = restore.last_seq + 1;
        self.stats = restore.stats;
        for mut agent in restore.agents {
            agent.load = 0;
            // No process is attached after a restart; a paused agent stays paused.
            agent.attached_by = None;
            if agent.kind == AgentKind::Remote && agent.availability == Availability::Available {
                agent.availability = Availability::Offline;
            }
            self.mesh.insert(agent)?;
        }
        for mut reviewer in restore.reviewers {
            reviewer.load = 0;
            let _ = self.reviews.add_reviewer(reviewer);
        }
        for escalation in restore.pending_escalations {
            self.timers
                .insert((escalation.expire_ms, Timer::Review(escalation.id.clone())));
            self.reviews.restore(escalation);
        }
        let mut tickets = restore.open_tickets;
        tickets.sort_by_key(|t| (t.created_ms, t.id.clone()));
        let mut orphans = Vec::new();
        for mut ticket in tickets {
            ticket.min_tier = ticket.min_tier.min(self.mesh.top_tier());
            match ticket.status {
                TicketStatus::Assigned => {
                    let assignment = ticket.assignment.clone();
                    let bound = assignment.as_ref().is_some_and(|a| {
                        let live = self.mesh.agent(&a.agent_id).is_some_and(|agent| {
                            agent.availability == Availability::Available
                                && agent.kind == AgentKind::Builtin
                        });
                        live && self.mesh.assign(&a.agent_id).is_ok()
                    });
                    if bound {
                        let mut a = assignment.expect("bound implies some");
                        // The tiers come from the config of this start: where the agent's tier
                        // now sits, not where it sat when the ticket was stored.
                        let agent_tier = &self.mesh.agent(&a.agent_id).expect("live").tier;
                        a.tier = self.mesh.tier_index(agent_tier).unwrap_or(0);
                        ticket.assignment = Some(a.clone());
                        self.held
                            .entry(a.agent_id.clone())
                            .or_default()
                            .insert(ticket.id.clone());
                        self.assignments
                            .insert(a.assignment_id.clone(), ticket.id.clone());
                        self.out.dispatches.push(Dispatch {
                            assignment_id: a.assignment_id,
                            ticket_id: ticket.id.clone(),
                            agent_id: a.agent_id,
                            inquiry: ticket.inquiry.clone(),
                            topic: ticket.topic.clone(),
                            prepared: None,
                        });
                        self.tickets.insert(ticket.id.clone(), ticket);
                    } else {
                        ticket.assignment = None;
                        orphans.push(ticket.id.clone());
                        self.tickets.insert(ticket.id.clone(), ticket);
                    }
                }
                TicketStatus::Queued => {
                    let since = ticket.queued_ms.unwrap_or(ticket.updated_ms);
                    self.queue.push(&ticket, since);
                    self.timers.insert((
                        since + self.settings.queue_timeout_ms,
                        Timer::Queue(ticket.id.clone()),
                    ));
                    self.tickets.insert(ticket.id.clone(), ticket);
                }
                _ => {
                    self.tickets.insert(ticket.id.clone(), ticket);
                }
            }
        }
        for id in orphans {
            if let Some(mut ticket) = self.tickets.remove(&id) {
                ticket.updated_ms = now_ms;
                self.route(
                    ticket,
                    now_ms,
                    "its agent is gone after a restart: handed on",
                );
            }
        }
        // Reviewers and agents with room take waiting work.
        let reviewer_ids: Vec<String> = self.reviews.reviewers().map(|r| r.id.clone()).collect();
        for r in reviewer_ids {
            self.fill_reviewer(&r, now_ms);
        }
        let agent_ids: Vec<String> = self.mesh.agents().map(|a| a.id.clone()).collect();
        for a in agent_ids {
            self.refill(&a, now_ms);
        }
        Ok(())
    }
}
