//! Agents and reviewers: creating, changing and deleting them, and remote agents' processes
//! attaching, detaching and replying. Every change that frees or removes capacity moves the
//! work it affects on.
//!
//! Methods of `Desk` here: `create_agent`, `update_agent`, `delete_agent`, `attach_remote`,
//! `detach_remote`, `remote_replied`, `create_reviewer`, `update_reviewer`, `delete_reviewer`.

use super::{Actor, AgentChange, AgentReply, AttachSpec, Desk, RemoteMessage, ReviewerChange};
use crate::domain::error::DomainError;
use crate::domain::event::{EscalationEventKind, EventBody};
use crate::domain::mesh::{Agent, AgentKind, Availability};
use crate::domain::review::Reviewer;
use crate::domain::ticket::Ticket;

impl Desk {
    pub fn create_agent(&mut self, mut agent: Agent, now_ms: i64) -> Result<Agent, DomainError> {
        let tier = self.mesh.tier_index(&agent.tier).ok_or_else(|| {
            DomainError::invalid(
                "tier",
                format!(
                    "unknown tier {:?}; the desk has {}",
                    agent.tier,
                    self.tier_names()
                ),
            )
        })?;
        if agent.capacity == 0 {
            agent.capacity = self.mesh.tiers()[tier].default_capacity;
        }
        agent.id = self.mesh.next_agent_id();
        agent.load = 0;
        agent.handled = 0;
        agent.availability = match agent.kind {
            AgentKind::Builtin => Availability::Available,
            AgentKind::Remote => Availability::Offline,
        };
        self.mesh.insert(agent.clone())?;
        let agent = self.mesh.agent(&agent.id).expect("inserted").clone();
        self.agent_event("agent created", &agent, false, now_ms);
        self.refill(&agent.id, now_ms);
        Ok(agent)
    }

    pub fn update_agent(
        &mut self,
        agent_id: &str,
        change: AgentChange,
        now_ms: i64,
    ) -> Result<Agent, DomainError> {
        let agent = self
            .mesh
            .agent(agent_id)
            .ok_or_else(|| DomainError::NotFound(format!("agent {agent_id} not found")))?;
        if let Some(capacity) = change.capacity {
            if capacity < agent.load {
                return Err(DomainError::FailedPrecondition(format!(
                    "agent {} holds {} tickets; capacity cannot go below that (pause it first)",
                    agent.name, agent.load
                )));
            }
        }
        if change.availability == Some(Availability::Offline) {
            return Err(DomainError::invalid(
                "availability",
                "OFFLINE is set by the desk when a remote agent's process is not attached; \
                 pause the agent instead",
            ));
        }
        // A remote agent takes work only while its process is attached: resumed without one,
        // it is OFFLINE (no longer paused) and becomes AVAILABLE when the process attaches.
        let availability = change.availability.map(|wanted| {
            if wanted == Availability::Available
                && agent.kind == AgentKind::Remote
                && agent.attached_by.is_none()
            {
                Availability::Offline
            } else {
                wanted
            }
        });
        let pausing = availability == Some(Availability::Paused)
            && agent.availability != Availability::Paused;
        self.mesh.update(agent_id, |a| {
            if let Some(v) = availability {
                a.availability = v;
            }
            if let Some(c) = change.capacity {
                a.capacity = c;
            }
            if let Some(s) = change.specialties {
                a.specialties = s;
            }
        });
        if pausing {
            self.reassign_all(agent_id, "agent paused", now_ms);
        }
        let agent = self.mesh.agent(agent_id).expect("exists").clone();
        let detail = if pausing {
            "agent paused"
        } else {
            "agent updated"
        };
        self.agent_event(detail, &agent, false, now_ms);
        self.refill(agent_id, now_ms);
        Ok(agent)
    }

    pub fn delete_agent(&mut self, agent_id: &str, now_ms: i64) -> Result<Agent, DomainError> {
        if self.mesh.agent(agent_id).is_none() {
            return Err(DomainError::NotFound(format!("agent {agent_id} not found")));
        }
        // Paused first so handing on cannot pick it again.
        self.mesh
            .update(agent_id, |a| a.availability = Availability::Paused);
        self.reassign_all(agent_id, "agent deleted", now_ms);
        let agent = self.mesh.remove(agent_id).expect("checked above");
        self.agent_event("agent deleted", &agent, true, now_ms);
        Ok(agent)
    }

    /// A remote agent's process attached (by `actor`'s key): it is online, takes work unless
    /// paused, and is sent again every assignment it still holds (a process that reconnects
    /// carries on). An agent belongs to the client that registered it or first attached it:
    /// another client's key is refused, attached or not, unless it is an admin's. Returns the
    /// agent.
    pub fn attach_remote(
        &mut self,
        spec: AttachSpec,
        actor: &Actor,
        now_ms: i64,
    ) -> Result<Agent, DomainError> {
        let client_id = actor.client_id.as_str();
        let agent_id = match spec {
            AttachSpec::Existing(id) => {
                let agent = self
                    .mesh
                    .agent(&id)
                    .ok_or_else(|| DomainError::NotFound(format!("agent {id} not found")))?;
                if agent.kind != AgentKind::Remote {
                    return Err(DomainError::FailedPrecondition(format!(
                        "agent {} is built in; only REMOTE agents attach",
                        agent.name
                    )));
                }
                let holder = agent.owner.as_deref().or(agent.attached_by.as_deref());
                if let Some(owner) = holder {
                    if owner != client_id && !actor.admin {
                        return Err(DomainError::PermissionDenied(format!(
                            "agent {} belongs to another client; only that client (or an admin \
                             key) may attach it",
                            agent.name
                        )));
                    }
                }
                id
            }
            AttachSpec::New(agent) => {
                let agent = Agent {
                    kind: AgentKind::Remote,
                    ..agent
                };
                self.create_agent(agent, now_ms)?.id
            }
        };
        self.mesh.update(&agent_id, |a| {
            a.attached_by = Some(client_id.to_string());
            // The first client to attach an agent nobody owns yet (one an operator created)
            // makes it theirs.
            a.owner.get_or_insert_with(|| client_id.to_string());
            if a.availability == Availability::Offline {
                a.availability = Availability::Available;
            }
        });
        let agent = self.mesh.agent(&agent_id).expect("exists").clone();
        self.agent_event("agent attached", &agent, false, now_ms);
        let held: Vec<String> = self
            .held
            .get(&agent_id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for ticket_id in held {
            let ticket = self.tickets.get(&ticket_id).expect("held tickets are open");
            let Some(assignment) = &ticket.assignment else {
                continue;
            };
            let tier = assignment.tier;
            self.out.remote.push(RemoteMessage::Assignment {
                agent_id: agent_id.clone(),
                assignment_id: assignment.assignment_id.clone(),
                ticket: Box::new(ticket.clone()),
                deadline_ms: assignment.deadline_ms.unwrap_or(now_ms),
                draft: ticket.draft.clone(),
                instructions: self.mesh.tiers()[tier].instructions.clone(),
            });
        }
        self.refill(&agent_id, now_ms);
        Ok(self.mesh.agent(&agent_id).expect("exists").clone())
    }

    /// A remote agent's process went away (its stream closed): it is offline and every
    /// ticket it held is handed on. Unknown or already detached agents are left alone.
    pub fn detach_remote(&mut self, agent_id: &str, now_ms: i64) {
        let attached = self
            .mesh
            .agent(agent_id)
            .is_some_and(|a| a.attached_by.is_some());
        if !attached {
            return;
        }
        self.mesh.update(agent_id, |a| {
            a.attached_by = None;
            if a.availability == Availability::Available {
                a.availability = Availability::Offline;
            }
        });
        self.reassign_all(agent_id, "the agent went offline", now_ms);
        let agent = self.mesh.agent(agent_id).expect("exists").clone();
        self.agent_event("agent detached", &agent, false, now_ms);
    }

    /// A remote agent's reply, sent with `actor`'s key: it must be the client that attached
    /// the agent, or an admin. Returns the ticket as it stands after the reply.
    pub fn remote_replied(
        &mut self,
        assignment_id: &str,
        reply: AgentReply,
        actor: &Actor,
        now_ms: i64,
    ) -> Result<Ticket, DomainError> {
        let ticket = self.assigned_ticket(assignment_id)?;
        let ticket_id = ticket.id.clone();
        let agent_id = ticket
            .assignment
            .as_ref()
            .map(|a| a.agent_id.clone())
            .unwrap_or_default();
        let agent = self.mesh.agent(&agent_id).expect("assigned agents exist");
        if agent.kind != AgentKind::Remote {
            return Err(DomainError::PermissionDenied(format!(
                "assignment {assignment_id} belongs to built-in agent {}",
                agent.name
            )));
        }
        let owner = agent.attached_by.as_deref();
        if !actor.admin && owner != Some(actor.client_id.as_str()) {
            return Err(DomainError::PermissionDenied(format!(
                "assignment {assignment_id} belongs to agent {}, attached by another client",
                agent.name
            )));
        }
        // Policy binds remote agents as it binds built-in ones: what it sends to a human, no
        // agent resolves on its own; the answer becomes the reviewer's draft.
        let rules = &self.tickets[&ticket_id].policy_rules;
        let reply = match reply {
            AgentReply::Resolve {
                response,
                confidence,
            } if !rules.is_empty() => AgentReply::RequestReview {
                reason: format!("policy requires human review: {}", rules.join(", ")),
                draft: response,
                priority: None,
                confidence,
            },
            other => other,
        };
        let from = self.out.events.len();
        self.agent_replied(assignment_id, reply, now_ms)?;
        let after = self.out.events[from..]
            .iter()
            .rev()
            .find_map(|e| match &e.body {
                EventBody::Ticket { ticket, .. } if ticket.id == ticket_id => Some(ticket.clone()),
                _ => None,
            })
            .expect("a reply always records the ticket");
        Ok(after)
    }

    pub fn create_reviewer(
        &mut self,
        reviewer: Reviewer,
        now_ms: i64,
    ) -> Result<Reviewer, DomainError> {
        let id = reviewer.id.clone();
        self.reviews.add_reviewer(Reviewer {
            load: 0,
            decided: 0,
            order: 0,
            ..reviewer
        })?;
        let snapshot = self.reviews.reviewer(&id).expect("added").clone();
        self.reviewer_event("reviewer created", &snapshot, false, now_ms);
        self.fill_reviewer(&id, now_ms);
        Ok(self.reviews.reviewer(&id).expect("added").clone())
    }

    pub fn update_reviewer(
        &mut self,
        reviewer_id: &str,
        change: ReviewerChange,
        now_ms: i64,
    ) -> Result<Reviewer, DomainError> {
        let current = self
            .reviews
            .reviewer(reviewer_id)
            .ok_or_else(|| DomainError::NotFound(format!("reviewer {reviewer_id} not found")))?;
        if let Some(max) = change.max_concurrent {
            if max < current.load {
                return Err(DomainError::FailedPrecondition(format!(
                    "reviewer {reviewer_id} holds {} reviews; max_concurrent cannot go below that \
                     (hand some over first)",
                    current.load
                )));
            }
        }
        let reviewer = self
            .reviews
            .update_reviewer(reviewer_id, |r| {
                if let Some(n) = change.name {
                    r.name = n;
                }
                if let Some(m) = change.max_concurrent {
                    r.max_concurrent = m;
                }
                if let Some(s) = change.specialties {
                    r.specialties = s;
                }
            })
            .ok_or_else(|| DomainError::NotFound(format!("reviewer {reviewer_id} not found")))?
            .clone();
        self.reviewer_event("reviewer updated", &reviewer, false, now_ms);
        self.fill_reviewer(reviewer_id, now_ms);
        Ok(self.reviews.reviewer(reviewer_id).expect("exists").clone())
    }

    pub fn delete_reviewer(
        &mut self,
        reviewer_id: &str,
        now_ms: i64,
    ) -> Result<Reviewer, DomainError> {
        let (reviewer, orphaned) = self
            .reviews
            .remove_reviewer(reviewer_id)
            .ok_or_else(|| DomainError::NotFound(format!("reviewer {reviewer_id} not found")))?;
        self.reviewer_event("reviewer deleted", &reviewer, true, now_ms);
        // Every orphan is on the log, handed to another reviewer or back in the unassigned
        // queue, so watchers of the deleted reviewer see it leave and the store row follows.
        for esc_id in orphaned {
            let Some(topic) = self.reviews.pending(&esc_id).map(|e| e.topic.clone()) else {
                continue;
            };
            let previous = Some(reviewer_id.to_string());
            match self.reviews.best_reviewer(&topic, None) {
                Some(other) => {
                    let none = self
                        .reviews
                        .assign(&esc_id, &other, false)
                        .expect("the best reviewer has room");
                    debug_assert!(none.is_none(), "orphans are unassigned");
                    self.record_review_assignment(
                        &esc_id,
                        &other,
                        EscalationEventKind::Reassigned,
                        previous,
                        now_ms,
                    );
                }
                None => {
                    let escalation = self.reviews.pending(&esc_id).expect("listed").clone();
                    self.escalation_event(
                        EscalationEventKind::Reassigned,
                        &escalation,
                        previous,
                        now_ms,
                    );
                }
            }
        }
        Ok(reviewer)
    }
}
