//! The desk: every open ticket, the mesh, the review board, the ticket queue and the timers,
//! and the commands that change them. Each command validates first and changes nothing when it
//! fails; when it succeeds it appends the events it caused to [`Output`], which the runtime
//! drains, persists and publishes. Time comes in as `now_ms`; nothing here reads a clock.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::classify::Classifier;
use super::error::DomainError;
use super::event::{EscalationEventKind, Event, EventBody, TicketEventKind};
use super::knowledge::{KbAnswer, PreparedAnswer};
use super::mesh::{Agent, AgentKind, Availability, Mesh, RoutingStrategy};
use super::policy::{Policy, PolicyInput, ReviewPriority};
use super::review::{Escalation, EscalationState, ReviewBoard, Reviewer};
use super::ticket::{Assignment, PathOutcome, PathStep, Ticket, TicketStatus};

/// What operators may change at run time (`UpdateConfig`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub routing: RoutingStrategy,
    pub escalation_timeout_ms: i64,
    /// How many times an expired review moves to another reviewer before it expires.
    pub max_review_reassignments: u32,
    pub queue_timeout_ms: i64,
    /// How long a remote agent has to answer an assignment before the ticket is handed on.
    #[serde(default = "default_assignment_timeout_ms")]
    pub assignment_timeout_ms: i64,
}

fn default_assignment_timeout_ms() -> i64 {
    60 * 1000
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            routing: RoutingStrategy::LeastLoaded,
            escalation_timeout_ms: 15 * 60 * 1000,
            max_review_reassignments: 1,
            queue_timeout_ms: 5 * 60 * 1000,
            assignment_timeout_ms: default_assignment_timeout_ms(),
        }
    }
}

/// A new inquiry, validated by the caller.
#[derive(Clone, Debug)]
pub struct NewTicket {
    pub id: String,
    pub customer_id: String,
    pub inquiry: String,
    pub context: BTreeMap<String, String>,
    pub priority: u8,
    /// Explicit topic; classified when `None`.
    pub topic: Option<String>,
    pub client_id: String,
    pub idempotency_key: String,
    /// The knowledge base's answer scored beforehand; used when its topic is the ticket's.
    pub prepared: Option<PreparedAnswer>,
}

/// What an agent did with an assignment.
#[derive(Clone, Debug, PartialEq)]
pub enum AgentReply {
    Resolve {
        response: String,
        confidence: f64,
    },
    Escalate {
        reason: String,
        draft: String,
        confidence: f64,
    },
    RequestReview {
        reason: String,
        draft: String,
        priority: Option<ReviewPriority>,
        confidence: f64,
    },
}

/// Work for a built-in agent. With a `prepared` answer the runtime applies it at once, in
/// the same batch; without one it scores the inquiry against the knowledge base off the
/// critical section and comes back later. Either way through [`Desk::builtin_answered`].
#[derive(Clone, Debug, PartialEq)]
pub struct Dispatch {
    pub assignment_id: String,
    pub ticket_id: String,
    pub agent_id: String,
    pub inquiry: String,
    pub topic: String,
    pub prepared: Option<Arc<PreparedAnswer>>,
}

/// Who is acting on the review queue.
#[derive(Clone, Debug)]
pub struct Actor {
    pub client_id: String,
    pub admin: bool,
}

/// Running totals for status and stats.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub handled: u64,
    pub escalated: u64,
    pub resolution_ms_total: u64,
    pub reviews_total: u64,
    pub approved: u64,
    pub rejected: u64,
    pub expired: u64,
    pub decide_ms_total: u64,
}

/// Changes to an agent; `None` keeps a field.
#[derive(Clone, Debug, Default)]
pub struct AgentChange {
    pub availability: Option<Availability>,
    pub capacity: Option<u32>,
    pub specialties: Option<BTreeSet<String>>,
}

/// Changes to a reviewer; `None` keeps a field.
#[derive(Clone, Debug, Default)]
pub struct ReviewerChange {
    pub name: Option<String>,
    pub max_concurrent: Option<u32>,
    pub specialties: Option<BTreeSet<String>>,
}

/// What commands produced since the runtime last drained it.
#[derive(Debug, Default)]
pub struct Output {
    pub events: Vec<Event>,
    pub dispatches: Vec<Dispatch>,
    /// Messages for attached remote agents, to send after the commit.
    pub remote: Vec<RemoteMessage>,
}

/// What an attached remote agent's stream carries.
#[derive(Clone, Debug, PartialEq)]
pub enum RemoteMessage {
    /// A ticket to answer by `deadline_ms`.
    Assignment {
        agent_id: String,
        assignment_id: String,
        ticket: Box<Ticket>,
        deadline_ms: i64,
        draft: String,
        instructions: String,
    },
    /// An assignment taken back: the ticket moved on.
    Revoked {
        agent_id: String,
        assignment_id: String,
        reason: String,
    },
}

impl RemoteMessage {
    pub fn agent_id(&self) -> &str {
        match self {
            RemoteMessage::Assignment { agent_id, .. }
            | RemoteMessage::Revoked { agent_id, .. } => agent_id,
        }
    }
}

/// A remote agent process attaching: an existing agent by id, or a new one.
#[derive(Clone, Debug)]
pub enum AttachSpec {
    Existing(String),
    New(Agent),
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Review(String),
    Queue(String),
    /// A remote agent's reply is due.
    Assignment(String),
}

type QueueKey = (Reverse<u8>, i64, String);

/// Tickets waiting for an agent, indexed twice so a freed agent reads only the heads of the
/// sets it may serve: per topic and lowest tier allowed (for specialists), and per lowest tier
/// allowed across topics (for agents that take any topic). Never a scan of the queue or of
/// the topics callers made up.
#[derive(Debug, Default)]
struct TicketQueue {
    by_topic: HashMap<String, BTreeMap<usize, BTreeSet<QueueKey>>>,
    by_tier: BTreeMap<usize, BTreeSet<QueueKey>>,
    len: usize,
}

impl TicketQueue {
    fn key(t: &Ticket, queued_ms: i64) -> QueueKey {
        (Reverse(t.priority), queued_ms, t.id.clone())
    }

    fn push(&mut self, t: &Ticket, queued_ms: i64) {
        let key = Self::key(t, queued_ms);
        let new = self
            .by_topic
            .entry(t.topic.clone())
            .or_default()
            .entry(t.min_tier)
            .or_default()
            .insert(key.clone());
        self.by_tier.entry(t.min_tier).or_default().insert(key);
        if new {
            self.len += 1;
        }
    }

    fn remove(&mut self, t: &Ticket, queued_ms: i64) {
        let key = Self::key(t, queued_ms);
        if let Some(tiers) = self.by_topic.get_mut(&t.topic) {
            if let Some(set) = tiers.get_mut(&t.min_tier) {
                if set.remove(&key) {
                    self.len -= 1;
                }
                if set.is_empty() {
                    tiers.remove(&t.min_tier);
                }
            }
            if tiers.is_empty() {
                self.by_topic.remove(&t.topic);
            }
        }
        if let Some(set) = self.by_tier.get_mut(&t.min_tier) {
            set.remove(&key);
            if set.is_empty() {
                self.by_tier.remove(&t.min_tier);
            }
        }
    }

    /// The most urgent, oldest ticket an agent of `tier` may take: any topic, or one of
    /// `specialties`.
    fn head_for<'a>(
        &self,
        tier: usize,
        any_topic: bool,
        specialties: impl Iterator<Item = &'a String>,
    ) -> Option<&QueueKey> {
        if any_topic {
            return self
                .by_tier
                .range(..=tier)
                .filter_map(|(_, set)| set.first())
                .min();
        }
        specialties
            .filter_map(|topic| self.by_topic.get(topic))
            .flat_map(|tiers| tiers.range(..=tier).filter_map(|(_, set)| set.first()))
            .min()
    }
}

pub struct Desk {
    settings: Settings,
    mesh: Mesh,
    reviews: ReviewBoard,
    classifier: Classifier,
    policy: Policy,
    tickets: HashMap<String, Ticket>,
    /// assignment id -> ticket id, for replies.
    assignments: HashMap<String, String>,
    /// agent id -> tickets it holds.
    held: HashMap<String, BTreeSet<String>>,
    queue: TicketQueue,
    timers: BTreeSet<(i64, Timer)>,
    next_seq: u64,
    stats: Stats,
    out: Output,
}

/// Everything needed to rebuild a desk after a restart.
pub struct Restore {
    pub agents: Vec<Agent>,
    pub reviewers: Vec<Reviewer>,
    pub open_tickets: Vec<Ticket>,
    pub pending_escalations: Vec<Escalation>,
    pub stats: Stats,
    pub last_seq: u64,
}

impl Desk {
    pub fn new(settings: Settings, mesh: Mesh, classifier: Classifier, policy: Policy) -> Self {
        Desk {
            settings,
            mesh,
            reviews: ReviewBoard::default(),
            classifier,
            policy,
            tickets: HashMap::new(),
            assignments: HashMap::new(),
            held: HashMap::new(),
            queue: TicketQueue::default(),
            timers: BTreeSet::new(),
            next_seq: 1,
            stats: Stats::default(),
            out: Output::default(),
        }
    }

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

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Applies new settings. A changed queue timeout moves the deadlines of the tickets already
    /// waiting, so each waits exactly the new timeout from when it was queued.
    pub fn set_settings(&mut self, settings: Settings) {
        let old_timeout = self.settings.queue_timeout_ms;
        self.settings = settings;
        if old_timeout == self.settings.queue_timeout_ms {
            return;
        }
        self.timers
            .retain(|(_, timer)| !matches!(timer, Timer::Queue(_)));
        let timeout = self.settings.queue_timeout_ms;
        let waiting: Vec<(i64, String)> = self
            .queue
            .by_tier
            .values()
            .flatten()
            .map(|(_, queued_ms, id)| (queued_ms + timeout, id.clone()))
            .collect();
        for (due, id) in waiting {
            self.timers.insert((due, Timer::Queue(id)));
        }
    }

    pub fn mesh(&self) -> &Mesh {
        &self.mesh
    }

    pub fn reviews(&self) -> &ReviewBoard {
        &self.reviews
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn ticket(&self, id: &str) -> Option<&Ticket> {
        self.tickets.get(id)
    }

    /// The open tickets, in no particular order.
    pub fn tickets(&self) -> impl Iterator<Item = &Ticket> {
        self.tickets.values()
    }

    pub fn open_tickets(&self) -> usize {
        self.tickets.len()
    }

    pub fn queued_tickets(&self) -> usize {
        self.queue.len
    }

    /// Sequence of the last event produced.
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    pub fn take_output(&mut self) -> Output {
        std::mem::take(&mut self.out)
    }

    /// When the next timer is due, if any.
    pub fn next_deadline(&self) -> Option<i64> {
        self.timers.first().map(|(due, _)| *due)
    }

    // ---- tickets ----------------------------------------------------------------------

    /// Creates a ticket, classifies it, evaluates policy and routes it.
    pub fn open_ticket(&mut self, new: NewTicket, now_ms: i64) -> Result<Ticket, DomainError> {
        if self.tickets.contains_key(&new.id) {
            return Err(DomainError::AlreadyExists(format!(
                "ticket {} already exists",
                new.id
            )));
        }
        if !(1..=10).contains(&new.priority) {
            return Err(DomainError::invalid("priority", "must be within 1..10"));
        }
        let explicit = new.topic.is_some();
        let topic = match new.topic {
            Some(t) => t.to_lowercase(),
            None => self.classifier.classify(&new.inquiry),
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
            prepared: new.prepared.filter(|p| p.topic == topic).map(Arc::new),
        };
        self.ticket_event(
            TicketEventKind::Created,
            "ticket created".into(),
            &ticket,
            now_ms,
        );
        ticket.topic = topic;
        let how = if explicit {
            "given by the caller"
        } else {
            "classified"
        };
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

    fn assigned_ticket(&self, assignment_id: &str) -> Result<&Ticket, DomainError> {
        self.assignments
            .get(assignment_id)
            .and_then(|t| self.tickets.get(t))
            .ok_or_else(|| DomainError::AssignmentNotOpen(assignment_id.to_string()))
    }

    /// Sends a ticket to an agent (lowest eligible tier from its `min_tier`), or queues it.
    /// Returns the ticket as it stands after routing.
    fn route(&mut self, ticket: Ticket, now_ms: i64, why: &str) -> Ticket {
        self.route_excluding(ticket, now_ms, why, None)
    }

    /// Routes, passing over `exclude` (the agent the ticket is taken from) for this pick.
    fn route_excluding(
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

    fn bind(&mut self, ticket: &mut Ticket, agent_id: &str, now_ms: i64, prefix: &str) {
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
    fn refill(&mut self, agent_id: &str, now_ms: i64) {
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
    fn hand_on_all(&mut self, agent_id: &str, why: &str, now_ms: i64) {
        let held: Vec<String> = self
            .held
            .get(agent_id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for ticket_id in held {
            self.hand_on(&ticket_id, why, false, now_ms);
        }
    }

    /// Takes a ticket from the agent holding it and routes it again from that agent's tier:
    /// another agent of the tier, else the next tier, else the queue. With `skip_holder` the
    /// holder is passed over even if it could take it (it just failed to answer). A remote
    /// holder hears that the assignment was revoked.
    fn hand_on(&mut self, ticket_id: &str, why: &str, skip_holder: bool, now_ms: i64) {
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
        self.route_excluding(ticket, now_ms, &detail, exclude);
    }

    fn finish(
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

    // ---- human review -----------------------------------------------------------------

    fn request_review(
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
    fn assign_review(
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
    fn record_review_assignment(
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
    fn fill_reviewer(&mut self, reviewer_id: &str, now_ms: i64) {
        while let Some(esc_id) = self.reviews.next_for(reviewer_id) {
            self.assign_review(&esc_id, reviewer_id, EscalationEventKind::Assigned, now_ms);
        }
    }

    /// Resolves who decides: the key's client, or `on_behalf_of` for admin keys. Checks the
    /// rules of who may decide what, and claims an unassigned review for its decider.
    fn decider(
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

    fn after_decision(&mut self, escalation: &Escalation, now_ms: i64) {
        self.timers
            .remove(&(escalation.expire_ms, Timer::Review(escalation.id.clone())));
        self.stats.decide_ms_total += (now_ms - escalation.created_ms).max(0) as u64;
    }

    fn refill_after_review(&mut self, escalation: &Escalation, now_ms: i64) {
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

    // ---- timers -----------------------------------------------------------------------

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
    fn reply_overdue(&mut self, assignment_id: &str, now_ms: i64) {
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
            self.hand_on(&ticket_id, "no reply within the deadline", true, now_ms);
        }
    }

    fn queue_timed_out(&mut self, ticket_id: &str, now_ms: i64) {
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

    fn review_deadline(&mut self, esc_id: &str, now_ms: i64) {
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

    // ---- agents and reviewers ---------------------------------------------------------

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
            self.hand_on_all(agent_id, "agent paused", now_ms);
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
        self.hand_on_all(agent_id, "agent deleted", now_ms);
        let agent = self.mesh.remove(agent_id).expect("checked above");
        self.agent_event("agent deleted", &agent, true, now_ms);
        Ok(agent)
    }

    /// A remote agent's process attached (by `client_id`'s key): it is online, takes work
    /// unless paused, and is sent again every assignment it still holds (a process that
    /// reconnects carries on). Returns the agent.
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
                if let Some(owner) = agent.attached_by.as_deref() {
                    if owner != client_id && !actor.admin {
                        return Err(DomainError::PermissionDenied(format!(
                            "agent {} is attached by another client; only that client (or an \
                             admin key) may take it over",
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
        self.hand_on_all(agent_id, "the agent went offline", now_ms);
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

    fn tier_names(&self) -> String {
        self.mesh
            .tiers()
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    // ---- events -----------------------------------------------------------------------

    fn push(&mut self, body: EventBody, now_ms: i64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.out.events.push(Event {
            seq,
            time_ms: now_ms,
            body,
        });
    }

    fn ticket_event(
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

    fn escalation_event(
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

    fn agent_event(&mut self, detail: &str, agent: &Agent, deleted: bool, now_ms: i64) {
        self.push(
            EventBody::Agent {
                detail: detail.into(),
                agent: agent.clone(),
                deleted,
            },
            now_ms,
        );
    }

    fn reviewer_event(&mut self, detail: &str, reviewer: &Reviewer, deleted: bool, now_ms: i64) {
        self.push(
            EventBody::Reviewer {
                detail: detail.into(),
                reviewer: reviewer.clone(),
                deleted,
            },
            now_ms,
        );
    }

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
        if queued != self.queue.len {
            return Err(format!(
                "{queued} queued tickets but the queue holds {}",
                self.queue.len
            ));
        }
        Ok(())
    }
}

fn review_title(ticket: &Ticket) -> String {
    let mut title: String = ticket.inquiry.chars().take(80).collect();
    if ticket.inquiry.chars().count() > 80 {
        title.push('…');
    }
    format!("[{}] {title}", ticket.topic)
}

/// What the customer hears while a human looks at their request.
pub fn interim_answer(escalation_id: &str) -> String {
    format!(
        "Thank you for your patience. Your request needs a review by a member of our team, who will get back to you shortly (reference {escalation_id})."
    )
}
