//! Durable storage behind the [`Store`] trait: the event log, tickets, escalations, agents,
//! reviewers, API keys (hashed) and configuration changes.
//!
//! Only this module knows SQL. The runtime's single writer calls [`Store::commit`] with a
//! whole batch of commands' effects in one transaction (group commit); readers (lists, gets,
//! stream replays) run on their own connections and only ever see committed data.

mod sqlite;

/// How hard a commit waits for the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Survives power loss (default).
    Full,
    /// Survives a crash of the process; may lose the last commits on power loss.
    Normal,
}

pub use sqlite::SqliteStore;

use crate::domain::desk::{Settings, Stats};
use crate::domain::event::Event;
use crate::domain::mesh::Agent;
use crate::domain::review::{Escalation, EscalationState, Reviewer};
use crate::domain::ticket::{Ticket, TicketStatus};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("store: corrupt record: {0}")]
    Corrupt(String),
    #[error("store: {0}")]
    Io(#[from] std::io::Error),
}

/// An API key as persisted: never the secret, only its SHA-256.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyRecord {
    pub key_id: String,
    pub client_id: String,
    pub client_name: String,
    pub permissions: Vec<String>,
    pub secret_sha256: [u8; 32],
    pub created_ms: i64,
    pub last_used_ms: Option<i64>,
    pub revoked: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum KeyChange {
    Created(KeyRecord),
    Revoked { key_id: String },
    Used { key_id: String, time_ms: i64 },
}

/// Everything one group commit writes, in one transaction.
#[derive(Debug, Default)]
pub struct CommitBatch {
    /// Events in sequence order; ticket and escalation rows follow their last snapshot.
    pub events: Vec<Event>,
    /// Agents and reviewers whose counters or fields changed.
    pub agents: Vec<Agent>,
    pub deleted_agents: Vec<String>,
    pub reviewers: Vec<Reviewer>,
    pub deleted_reviewers: Vec<String>,
    pub keys: Vec<KeyChange>,
    /// A configuration change and who made it.
    pub settings: Option<(Settings, String)>,
    /// Set by the commit that creates the default desk, so a restart never seeds twice.
    pub mark_seeded: bool,
    /// Drop events older than this time (ms): a contiguous prefix of the log, never its newest
    /// event, possibly over several commits.
    pub compact_before_ms: Option<i64>,
}

impl CommitBatch {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.agents.is_empty()
            && self.deleted_agents.is_empty()
            && self.reviewers.is_empty()
            && self.deleted_reviewers.is_empty()
            && self.keys.is_empty()
            && self.settings.is_none()
            && !self.mark_seeded
            && self.compact_before_ms.is_none()
    }
}

/// What a start needs to rebuild the open work.
#[derive(Debug, Default)]
pub struct Loaded {
    /// False on a brand-new store: the desk seeds its default agents and reviewers.
    pub seeded: bool,
    pub agents: Vec<Agent>,
    pub reviewers: Vec<Reviewer>,
    pub open_tickets: Vec<Ticket>,
    pub pending_escalations: Vec<Escalation>,
    pub keys: Vec<KeyRecord>,
    pub settings: Option<Settings>,
    pub stats: Stats,
    pub last_seq: u64,
}

impl Loaded {
    /// What the desk rebuilds its open work from.
    pub fn into_restore(self) -> crate::domain::desk::Restore {
        crate::domain::desk::Restore {
            agents: self.agents,
            reviewers: self.reviewers,
            open_tickets: self.open_tickets,
            pending_escalations: self.pending_escalations,
            stats: self.stats,
            last_seq: self.last_seq,
        }
    }
}

/// Position after which the next page starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cursor {
    /// Tickets: newest first.
    Ticket { created_ms: i64, ticket_id: String },
    /// Escalations: priority (highest first), then oldest, then id.
    Escalation {
        priority: u8,
        created_ms: i64,
        escalation_id: String,
    },
}

#[derive(Clone, Debug, Default)]
pub struct TicketFilter {
    pub customer_id: Option<String>,
    pub status: Option<TicketStatus>,
    /// Only tickets created through this client (API key client id); `None`: every client's.
    pub client_id: Option<String>,
}

#[derive(Clone, Debug)]
pub struct EscalationFilter {
    pub state: EscalationState,
    pub reviewer_id: Option<String>,
}

/// A page read at one point of the log.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
    /// Sequence of the last committed event when the page was read.
    pub seq: u64,
}

pub trait Store: Send + Sync + 'static {
    /// Reads everything a start needs.
    fn load(&self) -> Result<Loaded, StoreError>;
    /// Writes a batch atomically; durable when it returns.
    fn commit(&self, batch: &CommitBatch) -> Result<CommitReport, StoreError>;

    fn get_ticket(&self, ticket_id: &str) -> Result<Option<Ticket>, StoreError>;
    fn list_tickets(
        &self,
        filter: &TicketFilter,
        limit: usize,
        after: Option<&Cursor>,
    ) -> Result<Page<Ticket>, StoreError>;
    /// How many tickets the customer has, only those created through `client_id` when given.
    fn count_customer_tickets(
        &self,
        customer_id: &str,
        client_id: Option<&str>,
    ) -> Result<u64, StoreError>;
    fn find_idempotent(&self, client_id: &str, key: &str) -> Result<Option<String>, StoreError>;

    fn get_escalation(&self, escalation_id: &str) -> Result<Option<Escalation>, StoreError>;
    fn list_escalations(
        &self,
        filter: &EscalationFilter,
        limit: usize,
        after: Option<&Cursor>,
    ) -> Result<Page<Escalation>, StoreError>;

    /// Events with `seq > after`, oldest first, at most `limit`.
    fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError>;
    /// One ticket's events (and its escalation's) with `seq > after`, oldest first.
    fn ticket_events_after(
        &self,
        ticket_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError>;
    /// Sequence of the last committed event.
    fn head_seq(&self) -> Result<u64, StoreError>;
    /// What retention left of the log.
    fn retained(&self) -> Result<Retained, StoreError>;
}

/// What a commit tells the runtime beyond success.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitReport {
    /// Compaction stopped at its per-commit cap: more old events wait, so the next commit
    /// should compact again.
    pub compaction_backlog: bool,
}

/// What retention left of the event log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retained {
    /// The oldest sequence still stored (1 when nothing was ever compacted).
    pub oldest_seq: u64,
    /// Events older than this time (ms) may be gone; `None` when nothing was compacted.
    pub compacted_before_ms: Option<i64>,
}

#[cfg(test)]
mod contract;
