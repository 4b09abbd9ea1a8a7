//! Durable storage behind the [`Store`] trait: the event log, tickets, escalations, agents,
//! reviewers, API keys (hashed) and configuration changes.
//!
//! The trait names no backend: [`open`] picks the one the configuration asks for (today the
//! embedded SQLite file, [`SqliteStore`]), and the rest of the crate sees `dyn Store` and
//! [`StoreError`] only. Only this module knows SQL. The runtime's single writer calls
//! [`Store::commit`] with a whole batch of commands' effects in one transaction (group
//! commit); readers (lists, gets, stream replays) only ever see committed data.
//!
//! A second backend is written from the trait's documentation and proven by the contract
//! suite (`contract.rs`), which every backend must pass unchanged.

mod delta;
mod files;
pub mod postgres;
mod records;
mod sqlite;
#[cfg(test)]
pub(crate) mod tests_support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// How hard a commit waits for the disk before [`Store::commit`] returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// An acknowledged commit survives a power loss (default).
    #[default]
    Full,
    /// An acknowledged commit survives a crash of the process; the last commits may be lost
    /// on power loss.
    Normal,
}

/// Where the store lives and how it commits: the `[store]` section of the configuration.
#[derive(Clone, Debug)]
pub struct StoreSettings {
    /// The directory of the embedded store (created if missing).
    pub data_dir: PathBuf,
    pub durability: Durability,
    /// A PostgreSQL database to keep the desk in instead of the embedded store: its URL, read
    /// and checked, with the password when given apart; `None`: the embedded store in
    /// `data_dir`.
    pub url: Option<postgres::Target>,
}

impl StoreSettings {
    /// Where the store is, for logs and errors: the data directory, or the database's host,
    /// port and name (never the URL nor the password).
    pub fn describe(&self) -> String {
        match &self.url {
            None => self.data_dir.display().to_string(),
            Some(target) => target.describe(),
        }
    }
}

/// A store as [`open`] opens it: the store, and, when several servers may share it, the means
/// to choose which one writes.
pub struct Opened {
    pub store: Arc<dyn Store>,
    /// `None` for the embedded store, which one process holds alone.
    pub shared: Option<Arc<dyn SharedStore>>,
}

/// Opens (creating if needed) the store the settings describe. A PostgreSQL store is opened
/// with a blocking client: call this off the async workers (`spawn_blocking`).
pub fn open(settings: &StoreSettings) -> Result<Opened, StoreError> {
    if let Some(target) = &settings.url {
        let store = Arc::new(postgres::PostgresStore::connect(target.open()?)?);
        return Ok(Opened {
            store: store.clone(),
            shared: Some(store),
        });
    }
    let store = SqliteStore::open(&settings.data_dir, settings.durability)?;
    Ok(Opened {
        store: Arc::new(store),
        shared: None,
    })
}

/// Opens the store the settings describe, which must already exist, as it is (an older
/// schema is not migrated): for offline tools, which must never create an empty store where
/// an operator expected one, nor change one they only look at.
pub fn open_existing(settings: &StoreSettings) -> Result<Arc<dyn Store>, StoreError> {
    if !SqliteStore::exists_in(&settings.data_dir) {
        return Err(StoreError::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no store in {}", settings.data_dir.display()),
        )));
    }
    Ok(Arc::new(SqliteStore::open_as_is(
        &settings.data_dir,
        settings.durability,
    )?))
}

pub use sqlite::SqliteStore;

/// Copies the desk of the embedded store in `from` (which no server may have open) into the
/// empty PostgreSQL database `to`, in one transaction, then reads the copy back and checks it
/// against the source: the count of every kind of record and the head of the log.
pub fn copy_desk(
    from: &std::path::Path,
    to: &postgres::Target,
) -> Result<postgres::Copied, StoreError> {
    let settings = StoreSettings {
        data_dir: from.to_path_buf(),
        durability: Durability::Full,
        url: None,
    };
    let source = open_existing(&settings)?;
    let target = postgres::PostgresStore::connect(to.open()?)?;
    let copied = target.import_from(source.as_ref())?;
    let found = postgres::Copied {
        tickets: count_tickets(&target)?,
        escalations: count_escalations(&target)?,
        events: count_events(&target)?,
        ..postgres::Copied::default()
    };
    let loaded = target.load()?;
    let found = postgres::Copied {
        agents: loaded.agents.len() as u64,
        reviewers: loaded.reviewers.len() as u64,
        keys: loaded.keys.len() as u64,
        head: target.head_seq()?,
        ..found
    };
    let expected = postgres::Copied {
        tickets: count_tickets(source.as_ref())?,
        escalations: count_escalations(source.as_ref())?,
        events: count_events(source.as_ref())?,
        ..copied.clone()
    };
    if found != expected {
        return Err(StoreError::Damaged(format!(
            "the copy does not match its source: the source has {expected:?}, the copy \
             {found:?}; drop the target's tables before trying again"
        )));
    }
    Ok(copied)
}

/// Calls `f` with every ticket, a page at a time, newest first.
pub(crate) fn each_ticket_page(
    store: &dyn Store,
    mut f: impl FnMut(&[Ticket]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut after = None;
    loop {
        let page = store.list_tickets(&TicketFilter::default(), 1000, after.as_ref())?;
        f(&page.items)?;
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(()),
        }
    }
}

/// Calls `f` with every escalation, in every state, a page at a time.
pub(crate) fn each_escalation_page(
    store: &dyn Store,
    mut f: impl FnMut(&[Escalation]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    for state in EscalationState::ALL {
        let filter = EscalationFilter {
            state,
            reviewer_id: None,
        };
        let mut after = None;
        loop {
            let page = store.list_escalations(&filter, 1000, after.as_ref())?;
            f(&page.items)?;
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    Ok(())
}

/// Every ticket, counted.
fn count_tickets(store: &dyn Store) -> Result<u64, StoreError> {
    let mut count = 0;
    each_ticket_page(store, |page| {
        count += page.len() as u64;
        Ok(())
    })?;
    Ok(count)
}

/// Every escalation, counted.
fn count_escalations(store: &dyn Store) -> Result<u64, StoreError> {
    let mut count = 0;
    each_escalation_page(store, |page| {
        count += page.len() as u64;
        Ok(())
    })?;
    Ok(count)
}

/// Every event the log keeps.
fn count_events(store: &dyn Store) -> Result<u64, StoreError> {
    let (mut count, mut after) = (0, 0);
    loop {
        let events = store.events_after(after, 5000)?;
        let Some(last) = events.last() else {
            return Ok(count);
        };
        after = last.seq;
        count += events.len() as u64;
    }
}

use crate::domain::desk::{Settings, Stats};
use crate::domain::event::{Event, EventBody};
use crate::domain::mesh::Agent;
use crate::domain::review::{Escalation, EscalationState, Reviewer};
use crate::domain::ticket::{Ticket, TicketStatus};

/// Why the store could not do what was asked. Names no backend: each backend turns its own
/// errors into these.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (a query, a lock it could not take, a constraint it enforces).
    #[error("store: {0}")]
    Backend(Box<dyn std::error::Error + Send + Sync>),
    /// A record could not be read back into the desk's types.
    #[error("store: corrupt record: {0}")]
    Corrupt(String),
    /// The files of the store could not be read or written.
    #[error("store: {0}")]
    Io(#[from] std::io::Error),
    /// Another process has the store open.
    #[error("{0}")]
    InUse(String),
    /// The store's own consistency check failed: it must not be written to.
    #[error("{0}")]
    Damaged(String),
    /// Another server took the desk's lease: this one must never write again (fencing).
    #[error("{0}")]
    Deposed(String),
    /// The store's settings cannot work as given: a URL the backend refuses, a file it names
    /// that cannot be read, a TLS connection its settings refused. Saying which is the message.
    #[error("{0}")]
    Settings(String),
    /// Something else wrote to the store under this server (its log holds a sequence this
    /// server was about to write): what the server holds in memory is not the desk any more,
    /// and it must stop rather than write over, or beside, the other writer.
    #[error("{0}")]
    WrittenElsewhere(String),
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
    /// The desk's running totals after the batch, when it changed them: a start reads the
    /// last ones back instead of counting every ticket.
    pub stats: Option<Stats>,
}

impl CommitBatch {
    /// Where each ticket's and each escalation's last event in the batch is (indexes into
    /// `events`, in event order, tickets then escalations): the state its row takes.
    pub(crate) fn last_states(&self) -> (Vec<usize>, Vec<usize>) {
        let mut tickets: HashMap<&str, usize> = HashMap::new();
        let mut escalations: HashMap<&str, usize> = HashMap::new();
        for (i, event) in self.events.iter().enumerate() {
            match &event.body {
                EventBody::Ticket { ticket, .. } => {
                    tickets.insert(&ticket.id, i);
                }
                EventBody::Escalation { escalation, .. } => {
                    escalations.insert(&escalation.id, i);
                }
                _ => {}
            }
        }
        let in_order = |rows: HashMap<&str, usize>| {
            let mut rows: Vec<usize> = rows.into_values().collect();
            rows.sort_unstable();
            rows
        };
        (in_order(tickets), in_order(escalations))
    }

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
            && self.stats.is_none()
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

/// How deep a store's check reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckDepth {
    /// What a start can afford, in about the time of reading the largest table: every table and
    /// index page by page. What no single table shows (for SQLite: the free list aside, a page no
    /// table owns or two share) is left to the first [`Store::maintain`] after start.
    Start,
    /// The whole structure at once, offline (`servicedesk check`).
    Structure,
    /// Every page and index entry, in time proportional to the store's size (`--full`).
    Full,
}

/// The desk's durable state. Every method may be called from any thread; `commit` is only ever
/// called by one thread at a time (the runtime's writer), the reads concurrently with it.
///
/// What every backend guarantees:
/// - **Atomic, durable commits.** A batch is written whole or not at all, and is durable to
///   the [`Durability`] asked for when `commit` returns `Ok`. After an error nothing of the
///   batch is visible, and the caller stops writing.
/// - **Readers see commits, whole.** A read never sees part of a batch, and never sees a
///   batch before its `commit` returned.
/// - **One snapshot per answer.** A [`Page`] and its `seq` are read in one snapshot: every
///   event up to `seq` is reflected in the page and none after it, so a watch from `seq`
///   misses nothing and repeats nothing.
/// - **A gapless log.** Events are stored by their sequence, which the batch assigns; the log
///   is contiguous from [`Retained::oldest_seq`] to [`Store::head_seq`].
pub trait Store: Send + Sync + 'static {
    /// Reads everything a start needs: every agent, reviewer and key, the open tickets, the
    /// pending escalations, the settings and running totals last committed, and the head of
    /// the log; never a scan of closed work, so a start takes no longer with a long history.
    /// `seeded` is false only for a store no commit ever marked seeded.
    fn load(&self) -> Result<Loaded, StoreError>;
    /// Writes a batch atomically (see the trait's guarantees). Ticket and escalation rows
    /// take the snapshot of their last event in the batch; agents and reviewers are upserted
    /// or deleted; key changes apply in order; `compact_before_ms` removes at most a bounded
    /// number of the oldest events per call and reports a backlog in [`CommitReport`].
    fn commit(&self, batch: &CommitBatch) -> Result<CommitReport, StoreError>;

    /// A ticket as of the last commit, open or closed.
    fn get_ticket(&self, ticket_id: &str) -> Result<Option<Ticket>, StoreError>;
    /// Tickets matching every set filter, newest first (creation time, then id, both
    /// descending), at most `limit`, strictly after `after`; `next` is set when more may
    /// follow. Page and `seq` in one snapshot.
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
    /// The ticket a client created with an idempotency key, if any (keys are unique per
    /// client).
    fn find_idempotent(&self, client_id: &str, key: &str) -> Result<Option<String>, StoreError>;

    /// An escalation as of the last commit, in any state.
    fn get_escalation(&self, escalation_id: &str) -> Result<Option<Escalation>, StoreError>;
    /// Escalations in `filter.state` (and of `filter.reviewer_id` when set), most urgent
    /// first, then oldest, then id, at most `limit`, strictly after `after`. Page and `seq`
    /// in one snapshot.
    fn list_escalations(
        &self,
        filter: &EscalationFilter,
        limit: usize,
        after: Option<&Cursor>,
    ) -> Result<Page<Escalation>, StoreError>;

    /// Events with `seq > after`, oldest first, at most `limit`.
    fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError>;
    /// One ticket's events (and its escalation's) with `seq > after`, oldest first, at most
    /// `limit`.
    fn ticket_events_after(
        &self,
        ticket_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError>;
    /// Sequence of the last committed event (0 for an empty log).
    fn head_seq(&self) -> Result<u64, StoreError>;
    /// What retention left of the log.
    fn retained(&self) -> Result<Retained, StoreError>;

    /// Checks the store's own consistency before it is trusted: `Err(Damaged)` saying what is
    /// wrong and what to do, as deep as `depth` asks.
    fn check(&self, depth: CheckDepth) -> Result<(), StoreError>;

    /// Keeps the store in shape between commits (for SQLite: moves the write-ahead log into
    /// the database), and once after start runs what [`CheckDepth::Start`] left out of the
    /// check. Called by the writer now and then. An error means commits still
    /// succeed but the store will not stay healthy (it grows, or cannot write some files):
    /// the desk reports it.
    fn maintain(&self) -> Result<(), StoreError>;

    /// Cuts short a [`Store::maintain`] that is running, so a closing desk does not wait for
    /// it; the cut work is done again by the next call, if any.
    fn interrupt_maintenance(&self) {}
}

/// Who holds a shared store's lease, as the store last recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The holder's name for itself (unique per process).
    pub holder: String,
    /// The gRPC address the holder advertised, which the other servers forward changes to.
    pub address: String,
    /// Raised by one each time the lease changes hands.
    pub epoch: u64,
    /// Milliseconds until the lease expires unless renewed (by the store's clock); zero or
    /// less: expired, and any server may take it.
    pub expires_in_ms: i64,
}

/// A store several servers share (PostgreSQL), of which one at a time writes: the one that
/// holds the desk's lease. The lease is a record with the holder, its address, an epoch and an
/// expiry, all read and written by the store's own clock, so the servers' clocks do not
/// matter. Every commit of a leader checks, in its transaction, that the lease's epoch is still
/// the one it took (fencing): once another server took it, the old leader's commits fail with
/// [`StoreError::Deposed`], whatever that leader believes.
///
/// Every method blocks: call them from a plain thread or the blocking pool.
pub trait SharedStore: Send + Sync + 'static {
    /// Takes the lease for `ttl` if nobody holds it or its holder let it expire, returning the
    /// new epoch; from then on this store's commits are fenced by it. `None`: another server
    /// holds it.
    fn try_lead(
        &self,
        holder: &str,
        address: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<u64>, StoreError>;
    /// Extends the lease of `epoch` to `ttl` from now; false when it is no longer this epoch's.
    fn renew(&self, epoch: u64, ttl: std::time::Duration) -> Result<bool, StoreError>;
    /// Lets the lease of `epoch` expire now (a leader stopping), so that another server takes
    /// over at once instead of after the TTL.
    fn release(&self, epoch: u64) -> Result<(), StoreError>;
    /// The lease as recorded, if it was ever taken.
    fn lease(&self) -> Result<Option<Lease>, StoreError>;
    /// Returns when a commit may have happened since the last call, or after `timeout`: a
    /// wake-up for servers that follow the log (spurious wake-ups are allowed).
    fn wait_for_commits(&self, timeout: std::time::Duration) -> Result<(), StoreError>;
    /// Every API key as committed, for servers that authenticate without leading.
    fn keys(&self) -> Result<Vec<KeyRecord>, StoreError>;
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
