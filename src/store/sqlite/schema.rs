//! The tables, their version, and the way from each earlier version to this one.
//!
//! `meta.schema` holds the version. Schema 1 (no `schema` key) stored events and rows as JSON
//! and every event with the whole ticket; schema 2 stores protobuf records and the log as
//! described in `log.rs`. A start on a schema-1 store migrates it in place: the old tables
//! are renamed aside, their rows converted in chunks of one transaction each (so the WAL
//! stays small and a crash loses only the chunk in flight; the next start resumes), and the
//! old tables dropped in the last transaction, which also sets the version.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::de::DeserializeOwned;

use super::super::records::{self, encode};
use super::super::StoreError;
use super::log::{LogWriter, Rows};
use crate::domain::desk::Stats;
use crate::domain::event::{Event, EventBody};
use crate::domain::mesh::Agent;
use crate::domain::review::{Escalation, EscalationState, Reviewer};
use crate::domain::ticket::Ticket;

/// The version this code reads and writes.
pub(super) const VERSION: u32 = 2;

pub(super) const TABLES: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    time_ms INTEGER NOT NULL,
    ticket INTEGER,
    first INTEGER,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_ticket ON events(ticket, seq) WHERE ticket IS NOT NULL;
CREATE TABLE IF NOT EXISTS tickets (
    id INTEGER PRIMARY KEY,
    ticket_id TEXT NOT NULL UNIQUE,
    customer_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    status INTEGER NOT NULL,
    open INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    idempotency_key TEXT,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS tickets_by_time ON tickets(created_ms DESC, ticket_id DESC);
CREATE INDEX IF NOT EXISTS tickets_by_customer
    ON tickets(customer_id, client_id, created_ms DESC, ticket_id DESC);
CREATE INDEX IF NOT EXISTS tickets_by_status ON tickets(status, created_ms DESC, ticket_id DESC);
CREATE INDEX IF NOT EXISTS tickets_by_client ON tickets(client_id, created_ms DESC, ticket_id DESC);
CREATE INDEX IF NOT EXISTS tickets_open ON tickets(open) WHERE open = 1;
CREATE UNIQUE INDEX IF NOT EXISTS tickets_by_idempotency
    ON tickets(client_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS escalations (
    escalation_id TEXT PRIMARY KEY,
    state INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    reviewer_id TEXT,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS escalations_queue
    ON escalations(state, priority DESC, created_ms, escalation_id);
CREATE INDEX IF NOT EXISTS escalations_by_reviewer
    ON escalations(reviewer_id, state, priority DESC, created_ms, escalation_id);
CREATE TABLE IF NOT EXISTS agents (agent_id TEXT PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS reviewers (reviewer_id TEXT PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    client_name TEXT NOT NULL,
    permissions TEXT NOT NULL,
    secret_sha256 BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    last_used_ms INTEGER,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS config_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms INTEGER NOT NULL,
    changed_by TEXT NOT NULL,
    body TEXT NOT NULL
);
";

/// Rows converted per transaction while migrating.
const CHUNK: i64 = 20_000;
/// How often a long migration says how far it is.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

fn version(conn: &Connection) -> Result<Option<u32>, StoreError> {
    let has_meta: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta')",
        [],
        |r| r.get(0),
    )?;
    if !has_meta {
        return Ok(None);
    }
    let value: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
            r.get(0)
        })
        .optional()?;
    match value {
        None => Ok(Some(1)),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| StoreError::Corrupt(format!("schema version {v:?}"))),
    }
}

/// Brings the store to [`VERSION`]: creates the tables of a new store, migrates an older one,
/// refuses a newer one.
pub(super) fn prepare(conn: &mut Connection) -> Result<(), StoreError> {
    match version(conn)? {
        None => {
            let tx = conn.transaction()?;
            tx.execute_batch(TABLES)?;
            set_version(&tx)?;
            tx.commit()?;
        }
        Some(VERSION) => conn.execute_batch(TABLES)?,
        Some(1) => migrate_from_1(conn)?,
        Some(newer) => {
            return Err(StoreError::Corrupt(format!(
                "the store was written by a newer servicedesk (schema {newer}; this one knows \
                 {VERSION}): run that version, or restore a backup taken before it"
            )))
        }
    }
    Ok(())
}

fn set_version(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?1)",
        [VERSION.to_string()],
    )?;
    Ok(())
}

fn from_json<T: DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|err| StoreError::Corrupt(err.to_string()))
}

fn table_exists(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
        [name],
        |r| r.get(0),
    )?)
}

/// Says how far a long step is, at most every few seconds.
struct Progress {
    what: &'static str,
    total: i64,
    last: Instant,
}

impl Progress {
    fn new(conn: &Connection, what: &'static str, table: &str) -> Result<Self, StoreError> {
        let total: i64 =
            conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?;
        Ok(Progress {
            what,
            total,
            last: Instant::now(),
        })
    }

    fn done(&mut self, done: i64) {
        if self.last.elapsed() >= PROGRESS_EVERY {
            self.last = Instant::now();
            tracing::info!(
                done,
                total = self.total,
                "migrating the store to schema {VERSION}: {} {}%",
                self.what,
                done * 100 / self.total.max(1)
            );
        }
    }
}

/// Schema 1 to 2 (see the module documentation). Resumable: each table's progress is the
/// highest row it converted, kept in `meta` with the chunk.
fn migrate_from_1(conn: &mut Connection) -> Result<(), StoreError> {
    let started = Instant::now();
    tracing::info!("the store has schema 1; migrating it to schema {VERSION} before serving");
    if !table_exists(conn, "v1_events")? {
        let tx = conn.transaction()?;
        for table in ["events", "tickets", "escalations", "agents", "reviewers"] {
            tx.execute_batch(&format!("ALTER TABLE {table} RENAME TO v1_{table}"))?;
        }
        for index in [
            "events_by_ticket",
            "tickets_by_time",
            "tickets_by_customer",
            "tickets_by_status",
            "tickets_by_client",
            "tickets_open",
            "tickets_by_idempotency",
            "escalations_queue",
            "escalations_by_reviewer",
        ] {
            tx.execute_batch(&format!("DROP INDEX IF EXISTS {index}"))?;
        }
        tx.execute_batch(TABLES)?;
        tx.commit()?;
    }
    let tickets = migrate_rows(conn, "tickets", |tx, body| {
        let ticket: Ticket = from_json(body)?;
        super::write::upsert_ticket(tx, &ticket)?;
        Ok(())
    })?;
    let escalations = migrate_rows(conn, "escalations", |tx, body| {
        let escalation: Escalation = from_json(body)?;
        super::write::upsert_escalation(tx, &escalation)?;
        Ok(())
    })?;
    migrate_rows(conn, "agents", |tx, body| {
        let agent: Agent = from_json(body)?;
        super::write::upsert_agent(tx, &agent)
    })?;
    migrate_rows(conn, "reviewers", |tx, body| {
        let reviewer: Reviewer = from_json(body)?;
        super::write::upsert_reviewer(tx, &reviewer)
    })?;
    let events = migrate_events(conn)?;
    let tx = conn.transaction()?;
    let stats = stats_of_1(&tx)?;
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('stats', ?1)",
        [serde_json::to_string(&stats).expect("stats serialize")],
    )?;
    for table in ["events", "tickets", "escalations", "agents", "reviewers"] {
        tx.execute_batch(&format!("DROP TABLE v1_{table}"))?;
    }
    tx.execute("DELETE FROM meta WHERE key LIKE 'migrated_%'", [])?;
    set_version(&tx)?;
    tx.commit()?;
    let free_mb = conn.query_row("PRAGMA freelist_count", [], |r| r.get::<_, i64>(0))?
        * conn.query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))?
        / (1024 * 1024);
    tracing::info!(
        tickets,
        escalations,
        events,
        secs = started.elapsed().as_secs_f64(),
        free_mb,
        "the store is on schema {VERSION}; the space the old tables took is reused by new data"
    );
    Ok(())
}

/// Converts the rows of `v1_{table}` (in row order) with `convert`, chunk by chunk; returns
/// how many there were.
fn migrate_rows(
    conn: &mut Connection,
    table: &'static str,
    mut convert: impl FnMut(&Transaction<'_>, &str) -> Result<(), StoreError>,
) -> Result<i64, StoreError> {
    let key = format!("migrated_{table}");
    let mut progress = Progress::new(conn, table, &format!("v1_{table}"))?;
    let mut done = 0;
    loop {
        let tx = conn.transaction()?;
        let after: i64 = tx
            .query_row("SELECT value FROM meta WHERE key = ?1", [&key], |r| {
                r.get::<_, String>(0)
            })
            .optional()?
            .map_or(Ok(0), |v| v.parse())
            .map_err(|_| StoreError::Corrupt(format!("meta {key}")))?;
        let rows: Vec<(i64, String)> = tx
            .prepare(&format!(
                "SELECT rowid, body FROM v1_{table} WHERE rowid > ?1 ORDER BY rowid LIMIT ?2"
            ))?
            .query_map(params![after, CHUNK], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let Some(last) = rows.last().map(|(rowid, _)| *rowid) else {
            return Ok(done);
        };
        for (_, body) in &rows {
            convert(&tx, body)?;
        }
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            params![key, last.to_string()],
        )?;
        tx.commit()?;
        done += rows.len() as i64;
        progress.done(done);
    }
}

/// The log, in order. Events of one moment (one `time_ms`) are written as one commit of
/// schema 2 would write them, so they are as compact as new ones; a chunk ends only where
/// the moment changes.
fn migrate_events(conn: &mut Connection) -> Result<i64, StoreError> {
    let mut progress = Progress::new(conn, "events", "v1_events")?;
    let mut done = 0;
    loop {
        let tx = conn.transaction()?;
        let after: i64 =
            tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?;
        let mut rows: Vec<(i64, i64, String)> = tx
            .prepare_cached(
                "SELECT seq, time_ms, body FROM v1_events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?
            .query_map(params![after, CHUNK], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<Result<_, _>>()?;
        if rows.is_empty() {
            return Ok(done);
        }
        // Stop before the last moment unless it is all that is left, so none is split.
        if rows.len() as i64 == CHUNK {
            let last_time = rows.last().expect("not empty").1;
            let keep = rows.iter().take_while(|(_, t, _)| *t != last_time).count();
            if keep > 0 {
                rows.truncate(keep);
            }
        }
        let mut start = 0;
        while start < rows.len() {
            let time = rows[start].1;
            let end = start
                + rows[start..]
                    .iter()
                    .take_while(|(_, t, _)| *t == time)
                    .count();
            let events = rows[start..end]
                .iter()
                .map(|(seq, time_ms, body)| {
                    Ok(Event {
                        seq: *seq as u64,
                        time_ms: *time_ms,
                        body: from_json::<EventBody>(body)?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            write_moment(&tx, &events)?;
            start = end;
        }
        tx.commit()?;
        done += rows.len() as i64;
        progress.done(done);
    }
}

/// Writes one moment's events; a ticket's (escalation's) last event points at its row when
/// the row holds exactly that state and is final.
fn write_moment(tx: &Transaction<'_>, events: &[Event]) -> Result<(), StoreError> {
    let mut ticket_ids = HashMap::new();
    let mut last_ticket = HashMap::new();
    let mut last_escalation = HashMap::new();
    for (i, event) in events.iter().enumerate() {
        match &event.body {
            EventBody::Ticket { ticket, .. } => {
                last_ticket.insert(ticket.id.clone(), i);
            }
            EventBody::Escalation { escalation, .. } => {
                last_escalation.insert(escalation.id.clone(), i);
            }
            _ => {}
        }
    }
    let mut closed = HashMap::new();
    for (id, i) in last_ticket {
        let EventBody::Ticket { ticket, .. } = &events[i].body else {
            unreachable!("indexed ticket events")
        };
        let row: Option<(i64, Vec<u8>)> = tx
            .prepare_cached("SELECT id, body FROM tickets WHERE ticket_id = ?1")?
            .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((rowid, body)) = row {
            ticket_ids.insert(id.clone(), rowid);
            if ticket.status.is_final() && body == encode(&records::TicketRecord::from(ticket)) {
                closed.insert(id, i);
            }
        }
    }
    let mut decided = HashMap::new();
    for (id, i) in last_escalation {
        let EventBody::Escalation { escalation, .. } = &events[i].body else {
            unreachable!("indexed escalation events")
        };
        let body: Option<Vec<u8>> = tx
            .prepare_cached("SELECT body FROM escalations WHERE escalation_id = ?1")?
            .query_row([&id], |r| r.get(0))
            .optional()?;
        let row_is_this = body == Some(encode(&records::EscalationRecord::from(escalation)));
        if escalation.state != EscalationState::Pending && row_is_this {
            decided.insert(id, i);
        }
    }
    let rows = Rows {
        ticket_ids: &ticket_ids,
        closed: &closed,
        decided: &decided,
    };
    let mut log = LogWriter::new(tx);
    for (i, event) in events.iter().enumerate() {
        log.append(i, event, &rows)?;
    }
    Ok(())
}

/// The running totals as schema 1 kept them: computed from its tables.
fn stats_of_1(tx: &Transaction<'_>) -> Result<Stats, StoreError> {
    let mut stats = Stats::default();
    tx.query_row(
        "SELECT COUNT(*), COALESCE(SUM(escalated), 0), COALESCE(SUM(resolved_ms - created_ms), 0)
         FROM v1_tickets WHERE open = 0",
        [],
        |r| {
            stats.handled = r.get::<_, i64>(0)? as u64;
            stats.escalated = r.get::<_, i64>(1)? as u64;
            stats.resolution_ms_total = r.get::<_, i64>(2)?.max(0) as u64;
            Ok(())
        },
    )?;
    let mut stmt = tx.prepare(
        "SELECT state, COUNT(*), COALESCE(SUM(decided_ms - created_ms), 0)
         FROM v1_escalations GROUP BY state",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)? as u64,
            r.get::<_, i64>(2)?.max(0) as u64,
        ))
    })?;
    for row in rows {
        let (state, count, decide_ms) = row?;
        stats.reviews_total += count;
        match state.as_str() {
            "approved" => {
                stats.approved = count;
                stats.decide_ms_total += decide_ms;
            }
            "rejected" => {
                stats.rejected = count;
                stats.decide_ms_total += decide_ms;
            }
            "expired" => stats.expired = count,
            _ => {}
        }
    }
    Ok(stats)
}
