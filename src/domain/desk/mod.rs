//! The desk: every open ticket, the mesh, the review board, the ticket queue and the timers,
//! and the commands that change them. Each command validates first and changes nothing when it
//! fails; when it succeeds it appends the events it caused to [`Output`], which the runtime
//! drains, persists and publishes. Time comes in as `now_ms`; nothing here reads a clock.
//!
//! One `impl Desk` spread over files by concern: [`tickets`] (routing, answers, the queue),
//! [`review`] (human review and decisions), [`timers`] (deadlines), [`roster`] (agents and
//! reviewers), [`restore`] (rebuilding open work after a start), [`events`] (the log entries a
//! command appends), [`settings`], [`status`] and [`invariants`].
//!
//! Methods of `Desk` here: `new`, `settings`, `mesh`, `reviews`, `stats`, `ticket`, `tickets`,
//! `open_tickets`, `queued_tickets`, `last_seq`, `take_output`, `next_deadline`, `tier_names`.

mod events;
mod invariants;
mod queue;
mod restore;
mod review;
mod roster;
mod settings;
mod status;
#[cfg(test)]
mod tests;
mod tickets;
mod timers;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::classify::Topic;
use super::event::Event;
use super::knowledge::PreparedAnswer;
use super::mesh::{Agent, Availability, Mesh};
use super::policy::{Policy, ReviewPriority};
use super::review::{Escalation, ReviewBoard, Reviewer};
use super::ticket::Ticket;
use queue::TicketQueue;
use timers::Timer;

pub use settings::{Settings, SettingsChange};
pub use status::{Gauges, ReviewReport, StatusReport, TierReport};

/// A new inquiry, validated by the caller, its topic settled (see [`crate::domain::classify::Classifier::topic`]).
#[derive(Clone, Debug)]
pub struct NewTicket {
    pub id: String,
    pub customer_id: String,
    pub inquiry: String,
    pub context: BTreeMap<String, String>,
    pub priority: u8,
    pub topic: Topic,
    pub client_id: String,
    pub idempotency_key: String,
    /// The knowledge base's answer for this inquiry and topic, scored before the ticket
    /// entered the desk; `None`: built-in agents score it when they are assigned.
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

/// Who is acting: the client whose key made the call, and whether that key holds `admin`.
#[derive(Clone, Debug)]
pub struct Actor {
    pub client_id: String,
    pub admin: bool,
}

impl Actor {
    /// Whose tickets the actor may read: its own client's, or everyone's (`None`) with
    /// `admin`. One customer-facing application cannot read the customers of another.
    pub fn scope(&self) -> Option<&str> {
        (!self.admin).then_some(self.client_id.as_str())
    }

    /// Whether the actor may read a ticket created through `client_id`.
    pub fn may_read(&self, client_id: &str) -> bool {
        self.scope().is_none_or(|own| own == client_id)
    }
}

/// A reviewer's decision on a pending review.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Resolve the ticket with `response`, or the agent's draft when `None`.
    Approve {
        comments: String,
        response: Option<String>,
    },
    /// Close the ticket `REJECTED`; the customer is told `reason`.
    Reject { reason: String },
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

pub struct Desk {
    settings: Settings,
    mesh: Mesh,
    reviews: ReviewBoard,
    policy: Policy,
    /// Open tickets, ordered by id. A B-tree, as are pending escalations and the runtime's
    /// idempotency keys: a hash map grows by rehashing every entry at once, and with 115,000
    /// tickets waiting for review that held the desk for 45 ms per map; a B-tree grows a node
    /// at a time.
    tickets: BTreeMap<String, Ticket>,
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
    pub fn new(settings: Settings, mesh: Mesh, policy: Policy) -> Self {
        Desk {
            settings,
            mesh,
            reviews: ReviewBoard::default(),
            policy,
            tickets: BTreeMap::new(),
            assignments: HashMap::new(),
            held: HashMap::new(),
            queue: TicketQueue::default(),
            timers: BTreeSet::new(),
            next_seq: 1,
            stats: Stats::default(),
            out: Output::default(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
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
        self.queue.len()
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

    fn tier_names(&self) -> String {
        self.mesh
            .tiers()
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What the customer hears while a human looks at their request.
pub fn interim_answer(escalation_id: &str) -> String {
    format!(
        "Thank you for your patience. Your request needs a review by a member of our team, who will get back to you shortly (reference {escalation_id})."
    )
}
