//! Tickets through the tiers: opening one, routing it to the lowest tier with an eligible
//! agent or into the queue, an agent's answer (resolve, escalate a tier, ask a human), handing
//! a ticket on when its agent cannot keep it, and closing it.
//!
//! Methods of `Desk` here: `open_ticket`, `builtin_answered`, `agent_replied`, `assigned_ticket`,
//! `route`, `route_excluding`, `bind`, `refill`, `reassign_all`, `reassign`,
//! `refill_passing_over`, `finish`.

use std::sync::Arc;

use super::timers::Timer;
use super::{AgentReply, Desk, Dispatch, NewTicket, RemoteMessage};
use crate::domain::classify::Topic;
use crate::domain::error::DomainError;
use crate::domain::event::TicketEventKind;
use crate::domain::knowledge::KbAnswer;
use crate::domain::limits::PRIORITY;
use crate::domain::mesh::{AgentKind, Availability};
use crate::domain::policy::PolicyInput;
use crate::domain::ticket::{Assignment, PathOutcome, PathStep, Ticket, TicketStatus};

impl Desk {
    /// Creates a ticket with its settled topic, evaluates policy and routes it.
    pub fn open_ticket(&mut self, new: NewTicket, now_ms: i64) -> Result<Ticket, DomainError> {
        if self.tickets.contains_key(&new.id) {
            return Err(DomainError::AlreadyExists(format!(
                "ticket {} already exists",
                new.id
            )));
        }
        if !PRIORITY.contains(&i32::from(new.priority)) {
            return Err(DomainError::invalid("priority", "must be within 1..10"));
        }
        let (topic, how) = match new.topic {
            Topic::Given(t) => (t.to_lowercase(), "given by the caller"),
            Topic::Classified(t) => (t, "classified"),
        };
        let verdict = self.policy.evaluate(&PolicyInput {
            inquiry: &new.inquiry,
            topic: &topic,
            priority: new.priority,
            context: &new.context,
        });
        let mut ticket = Ticket {
            id: new.id,
            customer_id: new.customer_id,
            inquiry: new.inquiry,
            context: new.context,
            topic: String::new(),
            priority: new.priority,
            status: TicketStatus::Queued,
            agent_id: String::new(),
            agent_name: String::new(),
            agent_tier: String::new(),
            escalation_count: 0,
            resolution: String::new(),
            path: Vec::new(),
            escalation_id: String::new(),
            created_ms: now_ms,
            updated_ms: now_ms,
            resolved_ms: None,
            policy_rules: verdict.matched.clone(),
            policy_raise_to: verdict.raise_to,
            min_tier: 0,
            assignment: None,
            assignments_made: 0,
            draft: String::new(),
            client_id: new.client_id,
            idempotency_key: new.idempotency_key,
            queued_ms: None,
            prepared: new.prepared.map(Arc::new),
        };
        self.ticket_event(
            TicketEventKind::Created,
            "ticket created".into(),
            &ticket,
            now_ms,
        );
        ticket.topic = topic;
        let detail = format!("topic {} ({how})", ticket.topic);
        self.ticket_event(TicketEventKind::Classified, detail, &ticket, now_ms);
        let snapshot = self.route(ticket, now_ms, "");
        Ok(snapshot)
    }

    /// A built-in agent's knowledge-base answer: resolve above the tier's threshold, escalate
    /// below it, ask a human from the top tier or when policy says so.
    pub fn builtin_answered(
        &mut self,
        assignment_id: &str,
        answer: Option<KbAnswer>,
        now_ms: i64,
    ) -> Result<(), DomainError> {
        let ticket = self.assigned_ticket(assignment_id)?;
        let tier = ticket.assignment.as_ref().map(|a| a.tier).unwrap_or(0);
        let threshold = self.mesh.tiers()[tier].threshold;
        let top = tier == self.mesh.top_tier();
        let (draft, confidence, title) = match &answer {
            Some(a) => (a.answer.clone(), a.confidence, a.title.clone()),
            None => (String::new(), 0.0, String::new()),
        };
        let reply = if !ticket.policy_rules.is_empty() {
            AgentReply::RequestReview {
                reason: format!(
                    "policy requires human review: {}",
                    ticket.policy_rules.join(", ")
                ),
                draft,
                priority: None,
                confidence,
            }
        } else if confidence >= threshold {
            AgentReply::Resolve {
                response: draft,
                confidence,
            }
        } else if top {
            AgentReply::RequestReview {
                reason: format!(
                    "top tier confidence {confidence:.2} is below its threshold {threshold:.2}"
                ),
                draft,
                priority: None,
                confidence,
            }
        } else {
            let best = if title.is_empty() {
                "no matching article".to_string()
            } else {
                format!("best article {title:?}")
            };
            AgentReply::Escalate {
                reason: format!(
                    "confidence {confidence:.2} below threshold {threshold:.2}, {best}"
                ),
                draft,
                confidence,
            }
        };
        self.agent_replied(assignment_id, reply, now_ms)
    }

    /// An agent's answer to its assignment.
    pub fn agent_replied(
        &mut self,
        assignment_id: &str,
        reply: AgentReply,
        now_ms: i64,
    ) -> Result<(), DomainError> {
        self.assigned_ticket(assignment_id)?;
        let ticket_id = self
            .assignments
            .remove(assignment_id)
            .expect("checked above");
        let mut ticket = self
            .tickets
            .remove(&ticket_id)
            .expect("assignments point at open tickets");
        let assignment = ticket
            .assignment
            .take()
            .expect("assigned tickets carry their assignment");
        if let Some(set) = self.held.get_mut(&assignment.agent_id) {
            set.remove(&ticket.id);
            if set.is_empty() {
                self.held.remove(&assignment.agent_id);
            }
        }
        if let Some(due) = assignment.deadline_ms {
            self.timers
                .remove(&(due, Timer::Assignment(assignment.assignment_id.clone())));
        }
        self.mesh.release(&assignment.agent_id, true);
        let top = assignment.tier == self.mesh.top_tier();
        let (outcome, confidence, detail) = match &reply {
            AgentReply::Resolve { confidence, .. } => {
                (PathOutcome::Resolved, *confidence, "resolved".to_string())
            }
            AgentReply::Escalate {
                reason, confidence, ..
            } => (
                PathOutcome::Escalated,
                *confidence,
                format!("escalated: {reason}"),
            ),
            AgentReply::RequestReview {
                reason, confidence, ..
            } => (
                PathOutcome::ReviewRequested,
                *confidence,
                format!("review requested: {reason}"),
            ),
        };
        ticket.path.push(PathStep {
            agent_id: assignment.agent_id.clone(),
            agent_name: ticket.agent_name.clone(),
            tier: ticket.agent_tier.clone(),
            outcome,
            time_ms: now_ms,
            confidence,
            detail: detail.clone(),
        });
        ticket.updated_ms = now_ms;
        let agent_name = ticket.agent_name.clone();
        self.ticket_event(
            TicketEventKind::AgentReplied,
            format!("{agent_name}: {detail}"),
            &ticket,
            now_ms,
        );
        match reply {
            AgentReply::Resolve { response, .. } => {
                ticket.resolution = response;
                self.finish(
                    ticket,
                    TicketStatus::Resolved,
                    TicketEventKind::Resolved,
                    format!("resolved by {agent_name}"),
                    now_ms,
                );
            }
            AgentReply::Escalate { reason, draft, .. } => {
                if !draft.is_empty() {
                    ticket.draft = draft;
                }
                if top {
                    let reason = format!("the top tier could not resolve it: {reason}");
                    self.request_review(ticket, &agent_name, &reason, None, now_ms);
                } else {
                    ticket.escalation_count += 1;
                    ticket.min_tier = assignment.tier + 1;
                    let next = self.mesh.tiers()[ticket.min_tier].name.clone();
                    self.ticket_event(
                        TicketEventKind::TierEscalated,
                        format!("escalated to {next}"),
                        &ticket,
                        now_ms,
                    );
                    self.route(ticket, now_ms, "");
                }
            }
            AgentReply::RequestReview {
                reason,
                draft,
                priority,
                ..
            } => {
                if !draft.is_empty() {
                    ticket.draft = draft;
                }
                self.request_review(ticket, &agent_name, &reason, priority, now_ms);
            }
        }
        self.refill(&assignment.agent_id, now_ms);
        Ok(())
    }

    pub(super) fn assigned_ticket(&self, assignment_id: &str) -> Result<&Ticket, DomainError> {
        self.assignments
            .get(assignment_id)
            .and_then(|t| self.tickets.get(t))
            .ok_or_else(|| DomainError::AssignmentNotOpen(assignment_id.to_string()))
    }

    /// Sends a ticket to an agent (lowest eligible tier from its `min_tier`), or queues it.
    /// Returns the ticket as it stands after routing.
    pub(super) fn route(&mut self, ticket: Ticket, now_ms: i64, why: &str) -> Ticket {
        self.route_excluding(ticket, now_ms, why, None)
    }

    /// Routes, passing over `exclude` (the agent the ticket is taken from) for this pick.
    pub(super) fn route_excluding(
        &mut self,
        mut ticket: Ticket,
        now_ms: i64,
        why: &str,
        exclude: Option<&str>,
    ) -> Ticket {
        let picked = self.mesh.pick_excluding(
            &ticket.topic,
            ticket.min_tier,
            self.settings.routing,
            exclude,
        );
        let prefix = if why.is_empty() {
            String::new()
        } else {
            format!("{why}; ")
        };
        match picked {
            Some(agent_id) => {
                self.bind(&mut ticket, &agent_id, now_ms, &prefix);
            }
            None => {
                ticket.status = TicketStatus::Queued;
                ticket.queued_ms = Some(now_ms);
                ticket.updated_ms = now_ms;
                self.queue.push(&ticket, now_ms);
                self.timers.insert((
                    now_ms + self.settings.queue_timeout_ms,
                    Timer::Queue(ticket.id.clone()),
                ));
                let detail = format!("{prefix}queued: no eligible agent has capacity");
                self.ticket_event(TicketEventKind::Queued, detail, &ticket, now_ms);
            }
        }
        let snapshot = ticket.clone();
        self.tickets.insert(ticket.id.clone(), ticket);
        snapshot
    }

    pub(super) fn bind(&mut self, ticket: &mut Ticket, agent_id: &str, now_ms: i64, prefix: &str) {
        self.mesh
            .assign(agent_id)
            .expect("picked agents have capacity");
        let agent = self
            .mesh
            .agent(agent_id)
            .expect("picked agents exist")
            .clone();
        let tier = self.mesh.tier_index(&agent.tier).unwrap_or(0);
        ticket.assignments_made += 1;
        let assignment_id = ticket.assignment_id(ticket.assignments_made);
        let deadline_ms =
            (agent.kind == AgentKind::Remote).then(|| now_ms + self.settings.assignment_timeout_ms);
        ticket.assignment = Some(Assignment {
            assignment_id: assignment_id.clone(),
            agent_id: agent.id.clone(),
            tier,
            deadline_ms,
        });
        ticket.status = TicketStatus::Assigned;
        ticket.agent_id = agent.id.clone();
        ticket.agent_name = agent.name.clone();
        ticket.agent_tier = agent.tier.clone();
        ticket.queued_ms = None;
        ticket.updated_ms = now_ms;
        self.assignments
            .insert(assignment_id.clone(), ticket.id.clone());
        self.held
            .entry(agent.id.clone())
            .or_default()
            .insert(ticket.id.clone());
        let detail = format!("{prefix}assigned to {} ({})", agent.name, agent.tier);
        self.ticket_event(TicketEventKind::Assigned, detail, ticket, now_ms);
        match (agent.kind, deadline_ms) {
            (AgentKind::Remote, Some(deadline_ms)) => {
                self.timers
                    .insert((deadline_ms, Timer::Assignment(assignment_id.clone())));
                self.out.remote.push(RemoteMessage::Assignment {
                    agent_id: agent.id,
                    assignment_id,
                    ticket: Box::new(ticket.clone()),
                    deadline_ms,
                    draft: ticket.draft.clone(),
                    instructions: self.mesh.tiers()[tier].instructions.clone(),
                });
            }
            _ => self.out.dispatches.push(Dispatch {
                assignment_id,
                ticket_id: ticket.id.clone(),
                agent_id: agent.id,
                inquiry: ticket.inquiry.clone(),
                topic: ticket.topic.clone(),
                prepared: ticket.prepared.clone(),
            }),
        }
    }

    /// Gives an agent with spare capacity the most urgent, oldest queued tickets it may take.
    pub(super) fn refill(&mut self, agent_id: &str, now_ms: i64) {
        loop {
            let Some(agent) = self.mesh.agent(agent_id) else {
                return;
            };
            if agent.availability != Availability::Available || agent.load >= agent.capacity {
                return;
            }
            let tier = self.mesh.tier_index(&agent.tier).unwrap_or(0);
            let any_topic = self.mesh.takes_any_topic(agent);
            let best = self
                .queue
                .head_for(tier, any_topic, agent.specialties.iter())
                .cloned();
            let Some((_, queued_ms, ticket_id)) = best else {
                return;
            };
            let mut ticket = self
                .tickets
                .remove(&ticket_id)
                .expect("queued tickets are open");
            self.queue.remove(&ticket, queued_ms);
            self.timers.remove(&(
                queued_ms + self.settings.queue_timeout_ms,
                Timer::Queue(ticket_id.clone()),
            ));
            let agent_id = agent_id.to_string();
            self.bind(&mut ticket, &agent_id, now_ms, "dequeued; ");
            self.tickets.insert(ticket.id.clone(), ticket);
        }
    }

    /// Moves every ticket an agent holds to other agents (same tier first, then up).
    pub(super) fn reassign_all(&mut self, agent_id: &str, why: &str, now_ms: i64) {
        let held: Vec<String> = self
            .held
            .get(agent_id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for ticket_id in held {
            self.reassign(&ticket_id, why, false, now_ms);
        }
    }

    /// Takes a ticket from the agent holding it and routes it again from that agent's tier:
    /// another agent of the tier, else the next tier, else the queue. With `skip_holder` the
    /// holder is passed over even if it could take it (it just failed to answer). A remote
    /// holder hears that the assignment was revoked.
    pub(super) fn reassign(&mut self, ticket_id: &str, why: &str, skip_holder: bool, now_ms: i64) {
        let Some(mut ticket) = self.tickets.remove(ticket_id) else {
            return;
        };
        let Some(assignment) = ticket.assignment.take() else {
            self.tickets.insert(ticket_id.to_string(), ticket);
            return;
        };
        let agent_id = assignment.agent_id.clone();
        self.assignments.remove(&assignment.assignment_id);
        if let Some(set) = self.held.get_mut(&agent_id) {
            set.remove(ticket_id);
            if set.is_empty() {
                self.held.remove(&agent_id);
            }
        }
        if let Some(due) = assignment.deadline_ms {
            self.timers
                .remove(&(due, Timer::Assignment(assignment.assignment_id.clone())));
            self.out.remote.push(RemoteMessage::Revoked {
                agent_id: agent_id.clone(),
                assignment_id: assignment.assignment_id.clone(),
                reason: why.to_string(),
            });
        }
        self.mesh.release(&agent_id, false);
        ticket.path.push(PathStep {
            agent_id: agent_id.clone(),
            agent_name: ticket.agent_name.clone(),
            tier: ticket.agent_tier.clone(),
            outcome: PathOutcome::HandedOn,
            time_ms: now_ms,
            confidence: 0.0,
            detail: why.to_string(),
        });
        ticket.min_tier = assignment.tier;
        ticket.updated_ms = now_ms;
        let detail = format!("handed on from {}: {why}", ticket.agent_name);
        let exclude = skip_holder.then_some(agent_id.as_str());
        let routed = self.route_excluding(ticket, now_ms, &detail, exclude);
        if skip_holder {
            self.refill_passing_over(&agent_id, &routed, now_ms);
        }
    }

    /// Gives an agent that is still available, with room again, the other waiting work, but
    /// not the ticket just taken from it for not answering.
    fn refill_passing_over(&mut self, agent_id: &str, taken: &Ticket, now_ms: i64) {
        let queued_since = taken
            .queued_ms
            .filter(|_| taken.status == TicketStatus::Queued);
        if let Some(since) = queued_since {
            self.queue.remove(taken, since);
        }
        self.refill(agent_id, now_ms);
        if let Some(since) = queued_since {
            self.queue.push(taken, since);
        }
    }

    pub(super) fn finish(
        &mut self,
        mut ticket: Ticket,
        status: TicketStatus,
        kind: TicketEventKind,
        detail: String,
        now_ms: i64,
    ) {
        debug_assert!(status.is_final());
        ticket.status = status;
        ticket.resolved_ms = Some(now_ms);
        ticket.updated_ms = now_ms;
        ticket.assignment = None;
        self.stats.handled += 1;
        if ticket.escalated() {
            self.stats.escalated += 1;
        }
        self.stats.resolution_ms_total += (now_ms - ticket.created_ms).max(0) as u64;
        self.ticket_event(kind, detail, &ticket, now_ms);
    }
}
