//! The embedded default store: one SQLite file in WAL mode, one held writer connection for
//! group commits, a small pool of reader connections. The tables and their migrations are in
//! [`schema`], the commit in [`write`], the event log's compact form in [`log`].

mod check;
mod log;
mod schema;
mod write;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::de::DeserializeOwned;

use super::{
    files, records, CheckDepth, CommitBatch, CommitReport, Cursor, Durability, EscalationFilter,
    KeyRecord, Loaded, Page, Retained, Store, StoreError, TicketFilter,
};
use crate::domain::desk::{Settings, Stats};
use crate::domain::event::Event;
use crate::domain::review::{Escalation, EscalationState};
use crate::domain::ticket::Ticket;

/// The database file in the data directory.
const DB_FILE: &str = "desk.db";
/// The writer's page cache: negative means KiB to SQLite (8 MiB). Enough for the pages every
/// commit touches (the ends and inner pages of the tables and indexes); no more, because each
/// commit ends by scanning the whole cache (SQLite's `pcache1TruncateUnsafe`): at 64 MiB that
/// scan was 9% of the writer thread's time under load, at 8 MiB 2%.
const WRITER_CACHE_KIB: i64 = -8_192;

/// The page query of `list_tickets` with the filters given and no others, so that the planner
/// picks the index that leads with them (an `?1 IS NULL OR` clause would leave it walking
/// every ticket by time).
fn tickets_query(customer: bool, status: bool, client: bool) -> String {
    let mut sql = String::from(
        "SELECT body FROM tickets WHERE (created_ms, ticket_id) < (:after_ms, :after_id)",
    );
    for (given, clause) in [
        (customer, " AND customer_id = :customer_id"),
        (status, " AND status = :status"),
        (client, " AND client_id = :client_id"),
    ] {
        if given {
            sql.push_str(clause);
        }
    }
    sql.push_str(" ORDER BY created_ms DESC, ticket_id DESC LIMIT :fetch");
    sql
}

/// The page query of `list_escalations`, over (priority DESC, created_ms ASC, id ASC). With
/// a reviewer, a query of its own, so that it walks that reviewer's index rather than every
/// escalation in the state.
fn escalations_query(by_reviewer: bool) -> String {
    let reviewer = if by_reviewer {
        "AND reviewer_id = ?2"
    } else {
        "AND ?2 IS NULL"
    };
    format!(
        "SELECT body FROM escalations
         WHERE state = ?1 {reviewer}
           AND (priority < ?3 OR (priority = ?3 AND (created_ms > ?4 OR (created_ms = ?4 AND escalation_id > ?5))))
         ORDER BY priority DESC, created_ms ASC, escalation_id ASC LIMIT ?6"
    )
}

pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// Checkpoints the WAL beside the writer, so commits never wait for one.
    maintenance: Mutex<Connection>,
    /// What the whole-store check after start found: `None` until it ran, then `Some("")`
    /// for no damage or what is wrong.
    structure: Mutex<Option<String>>,
    /// Stops what the maintenance connection is running, for a quick exit.
    interrupt: rusqlite::InterruptHandle,
    /// The data directory's lock, held for as long as the store is open.
    _lock: files::DirLock,
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

/// An escalation's priority as the `priority` column orders it.
fn priority_rank(e: &Escalation) -> u8 {
    e.priority as u8
}

impl SqliteStore {
    /// Opens (creating if needed) `desk.db` in `dir`, after taking the directory's lock: one
    /// process per store, or two writers would corrupt each other's log. A store of an
    /// earlier schema is checked and migrated first ([`schema`]).
    pub fn open(dir: &Path, durability: Durability) -> Result<Self, StoreError> {
        let mut store = Self::open_as_is(dir, durability)?;
        let writer = store.writer.get_mut().expect("writer poisoned");
        // SQLite opens a file it may not write read-only, without a word: every commit would
        // then fail, and go on failing after the file is made writable again.
        if writer.is_readonly(rusqlite::MAIN_DB)? {
            return Err(StoreError::Io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "{} cannot be written (its mode or owner, an immutable attribute, or a \
                     read-only file system): make it writable by this server's user, then start \
                     again",
                    store.path.display()
                ),
            )));
        }
        schema::prepare(writer)?;
        Ok(store)
    }

    /// Opens the store as it is on disk, whatever its schema, changing nothing: for checking
    /// it offline.
    pub fn open_as_is(dir: &Path, durability: Durability) -> Result<Self, StoreError> {
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
        // Statement journals of the batch's upserts in memory, not a temporary file each; and
        // the B-tree pages a commit touches (the ends of the tables and indexes) kept cached.
        writer.pragma_update(None, "temp_store", "MEMORY")?;
        writer.pragma_update(None, "cache_size", WRITER_CACHE_KIB)?;
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
            interrupt: maintenance.get_interrupt_handle(),
            maintenance: Mutex::new(maintenance),
            structure: Mutex::new(None),
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

    /// Decodes the blob in column 0 of every row the statement selects.
    fn records<T>(
        stmt: &mut rusqlite::Statement<'_>,
        params: impl rusqlite::Params,
        decode: impl Fn(&[u8]) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let rows = stmt.query_map(params, |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(decode(&row?)?);
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
        let agents = Self::records(
            &mut conn.prepare("SELECT body FROM agents ORDER BY agent_id")?,
            [],
            records::agent_from,
        )?;
        let mut reviewers = Self::records(
            &mut conn.prepare("SELECT body FROM reviewers")?,
            [],
            records::reviewer_from,
        )?;
        reviewers.sort_by_key(|r| r.order);
        let open_tickets = Self::records(
            &mut conn.prepare("SELECT body FROM tickets WHERE open = 1")?,
            [],
            records::ticket_from,
        )?;
        let pending_escalations = Self::records(
            &mut conn.prepare("SELECT body FROM escalations WHERE state = ?1")?,
            [records::state_code(EscalationState::Pending)],
            records::escalation_from,
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
        let stats: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'stats'", [], |r| {
                r.get(0)
            })
            .optional()?;
        let stats = stats
            .map(|s| from_json::<Stats>(&s))
            .transpose()?
            .unwrap_or_default();
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
        if batch.is_empty() {
            return Ok(CommitReport::default());
        }
        let mut conn = self.writer.lock().expect("writer poisoned");
        let tx = conn.transaction()?;
        let report = write::commit(&tx, batch)?;
        tx.commit()?;
        Ok(report)
    }

    fn get_ticket(&self, ticket_id: &str) -> Result<Option<Ticket>, StoreError> {
        self.read(|c| {
            let body: Option<Vec<u8>> = c
                .query_row(
                    "SELECT body FROM tickets WHERE ticket_id = ?1",
                    [ticket_id],
                    |r| r.get(0),
                )
                .optional()?;
            body.map(|b| records::ticket_from(&b)).transpose()
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
        let status = filter.status.map(records::status_code);
        let fetch = (limit + 1) as i64;
        let sql = tickets_query(
            filter.customer_id.is_some(),
            status.is_some(),
            filter.client_id.is_some(),
        );
        let mut args: Vec<(&str, &dyn rusqlite::ToSql)> = vec![
            (":after_ms", &after_ms),
            (":after_id", &after_id),
            (":fetch", &fetch),
        ];
        if let Some(customer_id) = &filter.customer_id {
            args.push((":customer_id", customer_id));
        }
        if let Some(status) = &status {
            args.push((":status", status));
        }
        if let Some(client_id) = &filter.client_id {
            args.push((":client_id", client_id));
        }
        self.read(|c| {
            let tx = c.unchecked_transaction()?;
            let seq = Self::head(&tx)?;
            let mut stmt = tx.prepare_cached(&sql)?;
            let mut items: Vec<Ticket> =
                Self::records(&mut stmt, args.as_slice(), records::ticket_from)?;
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
            let body: Option<Vec<u8>> = c
                .query_row(
                    "SELECT body FROM escalations WHERE escalation_id = ?1",
                    [escalation_id],
                    |r| r.get(0),
                )
                .optional()?;
            body.map(|b| records::escalation_from(&b)).transpose()
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
            let mut stmt = tx.prepare_cached(&escalations_query(filter.reviewer_id.is_some()))?;
            let mut items: Vec<Escalation> = Self::records(
                &mut stmt,
                params![
                    records::state_code(filter.state),
                    filter.reviewer_id,
                    prio,
                    created,
                    id,
                    (limit + 1) as i64
                ],
                records::escalation_from,
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
            log::read(
                c,
                "SELECT seq, time_ms, ticket, body FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                params![after as i64, limit as i64],
            )
        })
    }

    fn ticket_events_after(
        &self,
        ticket_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        self.read(|c| {
            let id: Option<i64> = c
                .prepare_cached("SELECT id FROM tickets WHERE ticket_id = ?1")?
                .query_row([ticket_id], |r| r.get(0))
                .optional()?;
            let Some(id) = id else {
                return Ok(Vec::new());
            };
            log::read(
                c,
                "SELECT seq, time_ms, ticket, body FROM events
                 WHERE ticket = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                params![id, after as i64, limit as i64],
            )
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
        self.check_structure_once(&conn)
    }

    fn interrupt_maintenance(&self) {
        self.interrupt.interrupt();
    }

    fn check(&self, depth: CheckDepth) -> Result<(), StoreError> {
        self.check_depth(depth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What SQLite plans for a query.
    fn plan_of(conn: &Connection, query: &str) -> String {
        let sql = format!("EXPLAIN QUERY PLAN {query}");
        let mut stmt = conn.prepare(&sql).unwrap();
        // Unbound parameters are NULL: the plan does not depend on their values.
        let mut rows = stmt.raw_query();
        let mut steps = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            steps.push(row.get::<_, String>(3).unwrap());
        }
        steps.join("; ")
    }

    #[test]
    fn each_ticket_filter_walks_the_index_that_leads_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Durability::Full).unwrap();
        let conn = store.writer.lock().unwrap();
        // Status and client together may take either index: both lead with an equality.
        let status_or_client: &[&str] = &[
            "tickets_by_status (status=?",
            "tickets_by_client (client_id=?",
        ];
        for (customer, status, client, indexes) in [
            (
                true,
                false,
                false,
                &["tickets_by_customer (customer_id=?)"][..],
            ),
            (
                true,
                true,
                true,
                &["tickets_by_customer (customer_id=? AND client_id=?"],
            ),
            (
                true,
                false,
                true,
                &["tickets_by_customer (customer_id=? AND client_id=?"],
            ),
            (false, true, false, &["tickets_by_status (status=?"]),
            (false, false, true, &["tickets_by_client (client_id=?"]),
            (false, true, true, status_or_client),
            (false, false, false, &["tickets_by_time"]),
        ] {
            let plan = plan_of(&conn, &tickets_query(customer, status, client));
            assert!(
                indexes.iter().any(|index| plan.contains(index)),
                "customer {customer}, status {status}, client {client}: {plan}"
            );
        }
    }

    #[test]
    fn a_reviewers_escalations_walk_the_reviewers_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Durability::Full).unwrap();
        let conn = store.writer.lock().unwrap();
        let plan = plan_of(&conn, &escalations_query(true));
        assert!(
            plan.contains("escalations_by_reviewer (reviewer_id=? AND state=?"),
            "{plan}"
        );
        let plan = plan_of(&conn, &escalations_query(false));
        assert!(plan.contains("escalations_queue (state=?"), "{plan}");
    }

    #[test]
    fn a_change_that_points_before_the_log_is_corruption_not_a_panic() {
        use crate::store::records::{encode, Change, EventRecord, State};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Durability::Full).unwrap();
        let mut conn = store.writer.lock().unwrap();
        let whole = EventRecord {
            state: Some(State::Ticket(Vec::new())),
            ..Default::default()
        };
        // Event 2 says its earlier state is 10 events back: before the log began.
        let broken = EventRecord {
            state: Some(State::TicketChange(Change {
                back: 10,
                ..Default::default()
            })),
            ..Default::default()
        };
        conn.execute(
            "INSERT INTO events (seq, time_ms, ticket, first, body)
             VALUES (1, 0, NULL, 1, ?1), (2, 0, NULL, 0, ?2)",
            params![encode(&whole), encode(&broken)],
        )
        .unwrap();
        let tx = conn.transaction().unwrap();
        let err = log::compact(&tx, i64::MAX, 0).unwrap_err();
        assert!(err.to_string().contains("before the log"), "{err}");
    }
}
