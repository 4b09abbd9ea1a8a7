//! The embedded default store: one SQLite file in WAL mode, one held writer connection for
//! group commits, a small pool of reader connections.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::de::DeserializeOwned;

use super::{
    files, CommitBatch, CommitReport, Cursor, Durability, EscalationFilter, KeyChange, KeyRecord,
    Loaded, Page, Retained, Store, StoreError, TicketFilter,
};
use crate::domain::desk::{Settings, Stats};
use crate::domain::event::{Event, EventBody};
use crate::domain::mesh::Agent;
use crate::domain::review::{Escalation, Reviewer};
use crate::domain::ticket::Ticket;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    time_ms INTEGER NOT NULL,
    ticket_id TEXT,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_ticket ON events(ticket_id, seq);
CREATE TABLE IF NOT EXISTS tickets (
    ticket_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    status TEXT NOT NULL,
    open INTEGER NOT NULL,
    escalated INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    resolved_ms INTEGER,
    client_id TEXT NOT NULL,
    idempotency_key TEXT,
    body TEXT NOT NULL
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
    ticket_id TEXT NOT NULL,
    state TEXT NOT NULL,
    priority INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    decided_ms INTEGER,
    reviewer_id TEXT,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS escalations_queue
    ON escalations(state, priority DESC, created_ms, escalation_id);
CREATE INDEX IF NOT EXISTS escalations_by_reviewer
    ON escalations(reviewer_id, state, priority DESC, created_ms, escalation_id);
CREATE TABLE IF NOT EXISTS agents (agent_id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reviewers (reviewer_id TEXT PRIMARY KEY, body TEXT NOT NULL);
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

/// Most events one commit compacts away; a backlog goes over the following commits.
const COMPACT_ROWS: i64 = 5_000;

/// The database file in the data directory.
const DB_FILE: &str = "desk.db";

pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// Checkpoints the WAL beside the writer, so commits never wait for one.
    maintenance: Mutex<Connection>,
    /// The data directory's lock, held for as long as the store is open.
    _lock: std::fs::File,
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
        match err.sqlite_error_code() {
            Some(DatabaseCorrupt | NotADatabase) => StoreError::Damaged(format!(
                "the store reports damage ({err}); stop the server and run `servicedesk check \
                 --full` on its data directory"
            )),
            _ => StoreError::Backend(Box::new(err)),
        }
    }
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn from_json<T: DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(corrupt)
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("domain types always serialize")
}

fn priority_rank(e: &Escalation) -> u8 {
    e.priority as u8
}

impl SqliteStore {
    /// Opens (creating if needed) `desk.db` in `dir`, after taking the directory's lock: one
    /// process per store, or two writers would corrupt each other's log.
    pub fn open(dir: &Path, durability: Durability) -> Result<Self, StoreError> {
        let lock = files::lock_dir(dir)?;
        let path = dir.join(DB_FILE);
        files::owner_only(&path)?;
        let writer = Connection::open(&path)?;
        writer.busy_timeout(std::time::Duration::from_secs(5))?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        let sync = match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        writer.pragma_update(None, "synchronous", sync)?;
        writer.pragma_update(None, "foreign_keys", "ON")?;
        writer.execute_batch(SCHEMA)?;
        // SQLite creates the WAL and its index with the database's mode; older stores may
        // have been created before that mode was owner-only.
        for companion in ["-wal", "-shm"] {
            files::tighten(&dir.join(format!("{DB_FILE}{companion}")))?;
        }
        let maintenance = Connection::open(&path)?;
        maintenance.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(SqliteStore {
            path,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            maintenance: Mutex::new(maintenance),
            _lock: lock,
        })
    }

    /// Whether `dir` holds a store.
    pub fn exists_in(dir: &Path) -> bool {
        dir.join(DB_FILE).is_file()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a pooled read-only connection.
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.readers.lock().expect("reader pool poisoned").pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(std::time::Duration::from_secs(5))?;
                c
            }
        };
        let result = f(&conn);
        let mut pool = self.readers.lock().expect("reader pool poisoned");
        if pool.len() < 8 {
            pool.push(conn);
        }
        result
    }

    fn head(conn: &Connection) -> Result<u64, StoreError> {
        let seq: Option<i64> = conn.query_row("SELECT MAX(seq) FROM events", [], |r| r.get(0))?;
        Ok(seq.unwrap_or(0) as u64)
    }

    fn bodies<T: DeserializeOwned>(
        stmt: &mut rusqlite::Statement<'_>,
        params: impl rusqlite::Params,
    ) -> Result<Vec<T>, StoreError> {
        let rows = stmt.query_map(params, |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(from_json(&row?)?);
        }
        Ok(out)
    }
}

impl Store for SqliteStore {
    fn load(&self) -> Result<Loaded, StoreError> {
        let conn = self.writer.lock().expect("writer poisoned");
        let seeded: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'seeded'", [], |r| {
                r.get(0)
            })
            .optional()?;
        let agents = Self::bodies::<Agent>(
            &mut conn.prepare("SELECT body FROM agents ORDER BY agent_id")?,
            [],
        )?;
        let mut reviewers =
            Self::bodies::<Reviewer>(&mut conn.prepare("SELECT body FROM reviewers")?, [])?;
        reviewers.sort_by_key(|r| r.order);
        let open_tickets = Self::bodies::<Ticket>(
            &mut conn.prepare("SELECT body FROM tickets WHERE open = 1")?,
            [],
        )?;
        let pending_escalations = Self::bodies::<Escalation>(
            &mut conn.prepare("SELECT body FROM escalations WHERE state = 'pending'")?,
            [],
        )?;
        let mut keys = Vec::new();
        {
            let mut stmt = conn.prepare(
                "SELECT key_id, client_id, client_name, permissions, secret_sha256, created_ms, last_used_ms, revoked
                 FROM api_keys ORDER BY created_ms, key_id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Vec<u8>>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                    r.get::<_, bool>(7)?,
                ))
            })?;
            for row in rows {
                let (
                    key_id,
                    client_id,
                    client_name,
                    permissions,
                    hash,
                    created_ms,
                    last_used_ms,
                    revoked,
                ) = row?;
                let secret_sha256: [u8; 32] = hash
                    .try_into()
                    .map_err(|_| corrupt(format!("api key {key_id} hash is not 32 bytes")))?;
                keys.push(KeyRecord {
                    key_id,
                    client_id,
                    client_name,
                    permissions: from_json(&permissions)?,
                    secret_sha256,
                    created_ms,
                    last_used_ms,
                    revoked,
                });
            }
        }
        let settings: Option<String> = conn
            .query_row(
                "SELECT body FROM config_changes ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        let settings = settings.map(|s| from_json::<Settings>(&s)).transpose()?;
        let mut stats = Stats::default();
        conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(escalated), 0), COALESCE(SUM(resolved_ms - created_ms), 0)
             FROM tickets WHERE open = 0",
            [],
            |r| {
                stats.handled = r.get::<_, i64>(0)? as u64;
                stats.escalated = r.get::<_, i64>(1)? as u64;
                stats.resolution_ms_total = r.get::<_, i64>(2)?.max(0) as u64;
                Ok(())
            },
        )?;
        {
            let mut stmt = conn.prepare(
                "SELECT state, COUNT(*), COALESCE(SUM(decided_ms - created_ms), 0) FROM escalations GROUP BY state",
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
        }
        let last_seq = Self::head(&conn)?;
        Ok(Loaded {
            seeded: seeded.is_some(),
            agents,
            reviewers,
            open_tickets,
            pending_escalations,
            keys,
            settings,
            stats,
            last_seq,
        })
    }

    fn commit(&self, batch: &CommitBatch) -> Result<CommitReport, StoreError> {
        let mut report = CommitReport::default();
        if batch.is_empty() {
            return Ok(report);
        }
        let mut conn = self.writer.lock().expect("writer poisoned");
        let tx = conn.transaction()?;
        {
            let mut insert_event = tx.prepare_cached(
                "INSERT INTO events (seq, time_ms, ticket_id, body) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut upsert_ticket = tx.prepare_cached(
                "INSERT INTO tickets (ticket_id, customer_id, status, open, escalated, created_ms, resolved_ms, client_id, idempotency_key, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT(ticket_id) DO UPDATE SET status = excluded.status, open = excluded.open,
                   escalated = excluded.escalated, resolved_ms = excluded.resolved_ms, body = excluded.body",
            )?;
            let mut upsert_escalation = tx.prepare_cached(
                "INSERT INTO escalations (escalation_id, ticket_id, state, priority, created_ms, decided_ms, reviewer_id, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(escalation_id) DO UPDATE SET state = excluded.state, decided_ms = excluded.decided_ms,
                   reviewer_id = excluded.reviewer_id, body = excluded.body",
            )?;
            // Only the last snapshot of each ticket and escalation in the batch is written.
            let mut last_ticket = std::collections::HashMap::new();
            let mut last_escalation = std::collections::HashMap::new();
            for (i, event) in batch.events.iter().enumerate() {
                insert_event.execute(params![
                    event.seq as i64,
                    event.time_ms,
                    event.ticket_id(),
                    to_json(&event.body)
                ])?;
                match &event.body {
                    EventBody::Ticket { ticket, .. } => {
                        last_ticket.insert(ticket.id.as_str(), i);
                    }
                    EventBody::Escalation { escalation, .. } => {
                        last_escalation.insert(escalation.id.as_str(), i);
                    }
                    _ => {}
                }
            }
            let mut ticket_rows: Vec<usize> = last_ticket.into_values().collect();
            ticket_rows.sort_unstable();
            for i in ticket_rows {
                let EventBody::Ticket { ticket: t, .. } = &batch.events[i].body else {
                    unreachable!()
                };
                let idem = (!t.idempotency_key.is_empty()).then_some(t.idempotency_key.as_str());
                upsert_ticket.execute(params![
                    t.id,
                    t.customer_id,
                    t.status.as_str(),
                    !t.status.is_final(),
                    t.escalated(),
                    t.created_ms,
                    t.resolved_ms,
                    t.client_id,
                    idem,
                    to_json(t)
                ])?;
            }
            let mut escalation_rows: Vec<usize> = last_escalation.into_values().collect();
            escalation_rows.sort_unstable();
            for i in escalation_rows {
                let EventBody::Escalation { escalation: e, .. } = &batch.events[i].body else {
                    unreachable!()
                };
                upsert_escalation.execute(params![
                    e.id,
                    e.ticket_id,
                    e.state.as_str(),
                    priority_rank(e),
                    e.created_ms,
                    e.decided_ms,
                    e.reviewer_id,
                    to_json(e)
                ])?;
            }
            let mut upsert_agent = tx
                .prepare_cached("INSERT OR REPLACE INTO agents (agent_id, body) VALUES (?1, ?2)")?;
            for agent in &batch.agents {
                upsert_agent.execute(params![agent.id, to_json(agent)])?;
            }
            for id in &batch.deleted_agents {
                tx.execute("DELETE FROM agents WHERE agent_id = ?1", [id])?;
            }
            let mut upsert_reviewer = tx.prepare_cached(
                "INSERT OR REPLACE INTO reviewers (reviewer_id, body) VALUES (?1, ?2)",
            )?;
            for reviewer in &batch.reviewers {
                upsert_reviewer.execute(params![reviewer.id, to_json(reviewer)])?;
            }
            for id in &batch.deleted_reviewers {
                tx.execute("DELETE FROM reviewers WHERE reviewer_id = ?1", [id])?;
            }
            for change in &batch.keys {
                match change {
                    KeyChange::Created(k) => {
                        tx.execute(
                            "INSERT INTO api_keys (key_id, client_id, client_name, permissions, secret_sha256, created_ms, last_used_ms, revoked)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                            params![
                                k.key_id,
                                k.client_id,
                                k.client_name,
                                to_json(&k.permissions),
                                k.secret_sha256.to_vec(),
                                k.created_ms,
                                k.last_used_ms,
                                k.revoked
                            ],
                        )?;
                    }
                    KeyChange::Revoked { key_id } => {
                        tx.execute(
                            "UPDATE api_keys SET revoked = 1 WHERE key_id = ?1",
                            [key_id],
                        )?;
                    }
                    KeyChange::Used { key_id, time_ms } => {
                        tx.execute(
                            "UPDATE api_keys SET last_used_ms = MAX(COALESCE(last_used_ms, 0), ?2) WHERE key_id = ?1",
                            params![key_id, time_ms],
                        )?;
                    }
                }
            }
            if let Some(cutoff) = batch.compact_before_ms {
                // A contiguous prefix of the log, never its newest event (the head sequence is
                // read from it), at most COMPACT_ROWS per commit so no commit stalls.
                // Reads at most `limit` rows, whatever the backlog; at least twice what this
                // batch writes, so a backlog shrinks under any write rate.
                let limit = COMPACT_ROWS.max(2 * batch.events.len() as i64);
                let deleted = tx.execute(
                    "DELETE FROM events WHERE seq < MIN(
                        (SELECT MAX(seq) FROM events),
                        COALESCE(
                            (SELECT MIN(seq) FROM
                                (SELECT seq, time_ms FROM events ORDER BY seq LIMIT ?2)
                             WHERE time_ms >= ?1),
                            (SELECT MIN(seq) FROM events) + ?2))",
                    params![cutoff, limit],
                )?;
                report.compaction_backlog = deleted as i64 >= limit;
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('compacted_before_ms', ?1)
                     ON CONFLICT(key) DO UPDATE SET value = MAX(CAST(value AS INTEGER), ?1)",
                    params![cutoff],
                )?;
            }
            if batch.mark_seeded {
                tx.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('seeded', '1')",
                    [],
                )?;
            }
            if let Some((settings, who)) = &batch.settings {
                tx.execute(
                    "INSERT INTO config_changes (time_ms, changed_by, body) VALUES (?1, ?2, ?3)",
                    params![crate::clock::now_ms(), who, to_json(settings)],
                )?;
            }
        }
        tx.commit()?;
        Ok(report)
    }

    fn get_ticket(&self, ticket_id: &str) -> Result<Option<Ticket>, StoreError> {
        self.read(|c| {
            let body: Option<String> = c
                .query_row(
                    "SELECT body FROM tickets WHERE ticket_id = ?1",
                    [ticket_id],
                    |r| r.get(0),
                )
                .optional()?;
            body.map(|b| from_json(&b)).transpose()
        })
    }

    fn list_tickets(
        &self,
        filter: &TicketFilter,
        limit: usize,
        after: Option<&Cursor>,
    ) -> Result<Page<Ticket>, StoreError> {
        let (after_ms, after_id) = match after {
            Some(Cursor::Ticket {
                created_ms,
                ticket_id,
            }) => (*created_ms, ticket_id.clone()),
            _ => (i64::MAX, String::new()),
        };
        let status = filter.status.map(|s| s.as_str().to_string());
        self.read(|c| {
            let tx = c.unchecked_transaction()?;
            let seq = Self::head(&tx)?;
            let mut stmt = tx.prepare_cached(
                "SELECT body FROM tickets
                 WHERE (?1 IS NULL OR customer_id = ?1) AND (?2 IS NULL OR status = ?2)
                   AND (?6 IS NULL OR client_id = ?6)
                   AND (created_ms < ?3 OR (created_ms = ?3 AND (?4 = '' OR ticket_id < ?4)))
                 ORDER BY created_ms DESC, ticket_id DESC LIMIT ?5",
            )?;
            let mut items: Vec<Ticket> = Self::bodies(
                &mut stmt,
                params![
                    filter.customer_id,
                    status,
                    after_ms,
                    after_id,
                    (limit + 1) as i64,
                    filter.client_id
                ],
            )?;
            let next = if items.len() > limit {
                items.truncate(limit);
                items.last().map(|t| Cursor::Ticket {
                    created_ms: t.created_ms,
                    ticket_id: t.id.clone(),
                })
            } else {
                None
            };
            drop(stmt);
            tx.finish()?;
            Ok(Page { items, next, seq })
        })
    }

    fn count_customer_tickets(
        &self,
        customer_id: &str,
        client_id: Option<&str>,
    ) -> Result<u64, StoreError> {
        self.read(|c| {
            let n: i64 = c.query_row(
                "SELECT COUNT(*) FROM tickets
                 WHERE customer_id = ?1 AND (?2 IS NULL OR client_id = ?2)",
                params![customer_id, client_id],
                |r| r.get(0),
            )?;
            Ok(n as u64)
        })
    }

    fn find_idempotent(&self, client_id: &str, key: &str) -> Result<Option<String>, StoreError> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT ticket_id FROM tickets WHERE client_id = ?1 AND idempotency_key = ?2",
                [client_id, key],
                |r| r.get(0),
            )
            .optional()?)
        })
    }

    fn get_escalation(&self, escalation_id: &str) -> Result<Option<Escalation>, StoreError> {
        self.read(|c| {
            let body: Option<String> = c
                .query_row(
                    "SELECT body FROM escalations WHERE escalation_id = ?1",
                    [escalation_id],
                    |r| r.get(0),
                )
                .optional()?;
            body.map(|b| from_json(&b)).transpose()
        })
    }

    fn list_escalations(
        &self,
        filter: &EscalationFilter,
        limit: usize,
        after: Option<&Cursor>,
    ) -> Result<Page<Escalation>, StoreError> {
        // Keyset pagination over (priority DESC, created_ms ASC, id ASC).
        let (prio, created, id) = match after {
            Some(Cursor::Escalation {
                priority,
                created_ms,
                escalation_id,
            }) => (i64::from(*priority), *created_ms, escalation_id.clone()),
            _ => (i64::MAX, i64::MIN, String::new()),
        };
        self.read(|c| {
            let tx = c.unchecked_transaction()?;
            let seq = Self::head(&tx)?;
            let mut stmt = tx.prepare_cached(
                "SELECT body FROM escalations
                 WHERE state = ?1 AND (?2 IS NULL OR reviewer_id = ?2)
                   AND (priority < ?3 OR (priority = ?3 AND (created_ms > ?4 OR (created_ms = ?4 AND escalation_id > ?5))))
                 ORDER BY priority DESC, created_ms ASC, escalation_id ASC LIMIT ?6",
            )?;
            let mut items: Vec<Escalation> = Self::bodies(
                &mut stmt,
                params![filter.state.as_str(), filter.reviewer_id, prio, created, id, (limit + 1) as i64],
            )?;
            let next = if items.len() > limit {
                items.truncate(limit);
                items.last().map(|e| Cursor::Escalation {
                    priority: priority_rank(e),
                    created_ms: e.created_ms,
                    escalation_id: e.id.clone(),
                })
            } else {
                None
            };
            drop(stmt);
            tx.finish()?;
            Ok(Page { items, next, seq })
        })
    }

    fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, time_ms, body FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            read_events(&mut stmt, params![after as i64, limit as i64])
        })
    }

    fn ticket_events_after(
        &self,
        ticket_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, time_ms, body FROM events WHERE ticket_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?;
            read_events(&mut stmt, params![ticket_id, after as i64, limit as i64])
        })
    }

    fn head_seq(&self) -> Result<u64, StoreError> {
        self.read(Self::head)
    }

    fn retained(&self) -> Result<Retained, StoreError> {
        self.read(|c| {
            let oldest: Option<i64> =
                c.query_row("SELECT MIN(seq) FROM events", [], |r| r.get(0))?;
            let before: Option<String> = c
                .query_row(
                    "SELECT value FROM meta WHERE key = 'compacted_before_ms'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(Retained {
                oldest_seq: oldest.unwrap_or(1).max(1) as u64,
                compacted_before_ms: before.and_then(|v| v.parse().ok()),
            })
        })
    }

    fn maintain(&self) -> Result<(), StoreError> {
        let conn = self.maintenance.lock().expect("maintenance poisoned");
        // PASSIVE copies what no reader still needs and never waits; an error is a file the
        // database cannot write (its disk, its permissions, its attributes).
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(())
    }

    fn check(&self, thorough: bool) -> Result<(), StoreError> {
        let pragma = if thorough {
            "PRAGMA integrity_check(20)"
        } else {
            "PRAGMA quick_check(20)"
        };
        let damaged = |found: String| {
            StoreError::Damaged(format!(
                "the store {} is damaged ({found}); nothing was written to it. Restore it from a \
                 backup, or move it away and start on an empty data directory; `servicedesk \
                 check --full --data-dir {}` lists what is wrong",
                self.path.display(),
                self.path.parent().unwrap_or(&self.path).display()
            ))
        };
        let conn = self.writer.lock().expect("writer poisoned");
        let found: Result<Vec<String>, rusqlite::Error> = conn
            .prepare(pragma)
            .and_then(|mut stmt| stmt.query_map([], |r| r.get(0))?.collect());
        match found {
            Ok(rows) if rows.len() == 1 && rows[0] == "ok" => Ok(()),
            Ok(rows) => Err(damaged(rows.join("; "))),
            Err(err) => Err(damaged(err.to_string())),
        }
    }
}

fn read_events(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<Event>, StoreError> {
    let rows = stmt.query_map(params, |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, time_ms, body) = row?;
        out.push(Event {
            seq: seq as u64,
            time_ms,
            body: from_json(&body)?,
        });
    }
    Ok(out)
}
