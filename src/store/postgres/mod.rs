//! A store in a PostgreSQL database: one held writer connection for group commits, a small
//! pool of reader connections, versioned migrations at connect ([`schema`]), the commit in
//! [`write`], the event log (each event stored whole) in [`log`], the check in [`check`].
//!
//! It meets the trait's guarantees with PostgreSQL's own: a commit is one transaction, and
//! `commit` returns after PostgreSQL acknowledged its `COMMIT`, which with the default
//! `synchronous_commit = on` means the commit reached the server's write-ahead log on disk
//! (the [`super::Durability`] of the configuration does not apply: the server decides). A
//! page and its sequence are read in one `REPEATABLE READ` transaction, so in one snapshot.
//!
//! Several servers may share a desk; one writes at a time, the one holding the desk's lease
//! ([`lease`]), and every commit checks the lease in its own transaction, so a server that lost
//! it can never write again. Were two ever to write regardless, the sequence numbers being the
//! log's primary key would refuse the second's commit on the first sequence both used, rather
//! than interleave two logs. A commit notifies [`lease::CHANNEL`], which wakes the servers
//! following the log.

mod check;
mod connect;
mod errors;
mod import;
mod lease;
mod log;
mod schema;
mod tls;
mod write;

#[cfg(test)]
pub(crate) mod scratch;

pub use connect::{Database, Password, Target};
pub use import::Copied;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use postgres::types::ToSql;
use postgres::{Client, GenericClient, IsolationLevel, Statement, Transaction};

use super::{
    records, CheckDepth, CommitBatch, CommitReport, Cursor, EscalationFilter, KeyRecord, Loaded,
    Page, Retained, Store, StoreError, TicketFilter,
};
use crate::domain::desk::{Settings, Stats};
use crate::domain::event::Event;
use crate::domain::review::{Escalation, EscalationState};
use crate::domain::ticket::Ticket;
use write::{code_column, committed_already};

/// Reader connections kept open between reads; more are opened when that many are busy, and
/// closed after their read.
const POOLED_READERS: usize = 8;

/// `name` as an SQL identifier: quoted, so any schema name is taken as it is written.
pub(super) fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// An escalation's priority as the `priority` column orders it (as in the SQLite store).
fn priority_rank(e: &Escalation) -> u8 {
    e.priority as u8
}

/// The statements prepared on one connection, by their SQL: each is parsed and planned once
/// per connection, so a commit or a read is one round trip per statement, not two.
#[derive(Default)]
pub(super) struct Statements(HashMap<String, Statement>);

impl Statements {
    /// The statement for `sql`, prepared on `client`'s connection the first time.
    pub(super) fn prepare(
        &mut self,
        client: &mut impl GenericClient,
        sql: &str,
    ) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.0.get(sql) {
            return Ok(statement.clone());
        }
        let statement = client.prepare(sql)?;
        self.0.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

/// One connection and what was prepared on it.
struct Session {
    client: Client,
    statements: Statements,
}

/// The store in a PostgreSQL database (see the module documentation).
///
/// It uses the blocking `postgres` client, which runs a runtime of its own for each call:
/// every method must be called from a plain thread (the desk's writer thread, or tokio's
/// blocking pool through `spawn_blocking`), never from inside an async task, where the
/// client panics rather than block the executor.
pub struct PostgresStore {
    database: Database,
    /// The schema every connection works in, when one was asked for; else the URL's (or the
    /// server's) `search_path` decides.
    schema: Option<String>,
    /// `None` only once dropped.
    writer: Mutex<Option<Session>>,
    /// The last commit failed, perhaps after the server carried it out: the next one first
    /// looks whether its batch is there.
    uncertain: AtomicBool,
    readers: Mutex<Vec<Session>>,
    /// The lease epoch every commit checks ([`lease::fence`]); 0 until this store leads.
    fence: AtomicU64,
    /// The connection that takes and renews the lease.
    lease: Mutex<Option<Session>>,
    /// The connection that listens for commits, for a server following the log.
    listener: Mutex<Option<Client>>,
}

impl PostgresStore {
    /// Connects to `database` and brings its tables to this version's schema ([`schema`]), in
    /// the schema the URL's `search_path` names (for example
    /// `?options=-csearch_path%3Ddesk`), else the server's default (usually `public`).
    pub fn connect(database: Database) -> Result<PostgresStore, StoreError> {
        Self::open(database, None)
    }

    /// Connects as [`PostgresStore::connect`] does, but keeps every table in `schema`,
    /// created if missing: several stores (tests, desks) share one database that way.
    pub fn connect_in_schema(
        database: Database,
        schema: &str,
    ) -> Result<PostgresStore, StoreError> {
        Self::open(database, Some(schema.to_owned()))
    }

    fn open(database: Database, schema: Option<String>) -> Result<PostgresStore, StoreError> {
        let mut writer = connect_session(&database, schema.as_deref())?;
        schema::prepare(&mut writer.client, schema.as_deref())?;
        Ok(PostgresStore {
            database,
            schema,
            writer: Mutex::new(Some(writer)),
            uncertain: AtomicBool::new(false),
            readers: Mutex::new(Vec::new()),
            fence: AtomicU64::new(0),
            lease: Mutex::new(None),
            listener: Mutex::new(None),
        })
    }

    /// Has the next commit look whether its batch is there already, as after a failed one.
    #[cfg(test)]
    pub(crate) fn doubt_the_last_commit(&self) {
        self.uncertain.store(true, Ordering::Relaxed);
    }

    /// A new connection, set up as every one of this store's is.
    fn new_session(&self) -> Result<Session, StoreError> {
        connect_session(&self.database, self.schema.as_deref())
    }

    /// Runs `f` on a pooled reader connection. A connection that broke is left behind, so
    /// the next read opens a new one.
    fn read<T>(
        &self,
        f: impl FnOnce(&mut Session) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // A panic elsewhere while the pool was locked leaves it a list of idle connections,
        // as good as before.
        let pooled = {
            let mut pool = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
            std::iter::from_fn(|| pool.pop()).find(|s| !s.client.is_closed())
        };
        let mut session = match pooled {
            Some(session) => session,
            None => self.new_session()?,
        };
        let result = f(&mut session);
        if !session.client.is_closed() {
            let mut pool = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
            if pool.len() < POOLED_READERS {
                pool.push(session);
            }
        }
        result
    }

    /// Runs `f` in a read-only `REPEATABLE READ` transaction: every statement in it reads
    /// the same snapshot.
    fn read_snapshot<T>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>, &mut Statements) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.read(|session| {
            let mut tx = session
                .client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let value = f(&mut tx, &mut session.statements)?;
            tx.commit()?;
            Ok(value)
        })
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        let writer = self
            .writer
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let readers = std::mem::take(
            self.readers
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let lease = self
            .lease
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let listener = self
            .listener
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        // A blocking client closes its connection with a call of its own as it drops, which
        // panics on an async worker (where the desk's last handle may go): there, on a thread.
        if tokio::runtime::Handle::try_current().is_ok() {
            let closing = std::thread::spawn(move || drop((writer, readers, lease, listener)));
            let _ = closing.join();
        }
    }
}

/// Opens a connection working in `schema`, if given.
fn connect_session(database: &Database, schema: Option<&str>) -> Result<Session, StoreError> {
    let mut client = database.connect()?;
    // Notices ("already exists, skipping") are not the desk's news: only warnings are logged.
    let mut setup = String::from("SET client_min_messages TO warning");
    if let Some(schema) = schema {
        // Set on the session, not per transaction: every statement prepared on it resolves
        // its tables in `schema`.
        setup.push_str(&format!(
            "; SET search_path TO {}",
            quote_identifier(schema)
        ));
    }
    client.batch_execute(&setup)?;
    Ok(Session {
        client,
        statements: Statements::default(),
    })
}

/// Runs a prepared query.
fn query(
    client: &mut impl GenericClient,
    statements: &mut Statements,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<postgres::Row>, StoreError> {
    let statement = statements.prepare(client, sql)?;
    Ok(client.query(&statement, params)?)
}

/// Runs a prepared query of at most one row.
fn query_opt(
    client: &mut impl GenericClient,
    statements: &mut Statements,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<postgres::Row>, StoreError> {
    let statement = statements.prepare(client, sql)?;
    Ok(client.query_opt(&statement, params)?)
}

/// Decodes the `bytea` in column 0 of every row.
fn bodies<T>(
    rows: &[postgres::Row],
    decode: impl Fn(&[u8]) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    rows.iter().map(|row| decode(row.try_get(0)?)).collect()
}

/// Sequence of the last committed event in what `client` sees.
fn head(client: &mut impl GenericClient, statements: &mut Statements) -> Result<u64, StoreError> {
    let row = query_opt(client, statements, "SELECT MAX(seq) FROM events", &[])?;
    let seq: Option<i64> = match row {
        Some(row) => row.try_get(0)?,
        None => None,
    };
    seq.map_or(Ok(0), log::seq_from)
}

/// A page's `LIMIT`: one more than asked, to know whether more follow.
fn fetch(limit: usize) -> i64 {
    i64::try_from(limit).map_or(i64::MAX, |limit| limit.saturating_add(1))
}

/// A `LIMIT` for reads of the log.
fn limit_column(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// A sequence bound of a read: past the largest one a `BIGINT` holds, nothing follows.
fn after_column(after: u64) -> i64 {
    i64::try_from(after).unwrap_or(i64::MAX)
}

/// The page query of `list_tickets` with the filters given and no others, so that the
/// planner picks the index that leads with them; `$1..$3` are the cursor and the fetch size,
/// the filters follow in order.
fn tickets_query(customer: bool, status: bool, client: bool) -> String {
    let mut sql = String::from("SELECT body FROM tickets WHERE (created_ms, ticket_id) < ($1, $2)");
    let mut n = 3;
    for (given, column) in [
        (customer, "customer_id"),
        (status, "status"),
        (client, "client_id"),
    ] {
        if given {
            n += 1;
            sql.push_str(&format!(" AND {column} = ${n}"));
        }
    }
    sql.push_str(" ORDER BY created_ms DESC, ticket_id DESC LIMIT $3");
    sql
}

/// The page query of `list_escalations`, over (priority DESC, created_ms ASC, id ASC); with
/// a reviewer, one of its own that walks that reviewer's index.
fn escalations_query(by_reviewer: bool) -> &'static str {
    if by_reviewer {
        "SELECT body FROM escalations
         WHERE state = $1 AND reviewer_id = $6
           AND (priority < $2 OR (priority = $2 AND (created_ms > $3 OR (created_ms = $3 AND escalation_id > $4))))
         ORDER BY priority DESC, created_ms ASC, escalation_id ASC LIMIT $5"
    } else {
        "SELECT body FROM escalations
         WHERE state = $1
           AND (priority < $2 OR (priority = $2 AND (created_ms > $3 OR (created_ms = $3 AND escalation_id > $4))))
         ORDER BY priority DESC, created_ms ASC, escalation_id ASC LIMIT $5"
    }
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|err| StoreError::Corrupt(format!("{what}: {err}")))
}

fn key_from(row: &postgres::Row) -> Result<KeyRecord, StoreError> {
    let key_id: String = row.try_get(0)?;
    let hash: &[u8] = row.try_get(4)?;
    let secret_sha256: [u8; 32] = hash
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("api key {key_id} hash is not 32 bytes")))?;
    let permissions: &str = row.try_get(3)?;
    Ok(KeyRecord {
        client_id: row.try_get(1)?,
        client_name: row.try_get(2)?,
        permissions: from_json("api key permissions", permissions)?,
        secret_sha256,
        created_ms: row.try_get(5)?,
        last_used_ms: row.try_get(6)?,
        revoked: row.try_get(7)?,
        key_id,
    })
}

/// Every API key, oldest first.
fn read_keys(
    client: &mut impl GenericClient,
    statements: &mut Statements,
) -> Result<Vec<KeyRecord>, StoreError> {
    query(
        client,
        statements,
        "SELECT key_id, client_id, client_name, permissions, secret_sha256, created_ms, last_used_ms, revoked
         FROM api_keys ORDER BY created_ms, key_id",
        &[],
    )?
    .iter()
    .map(key_from)
    .collect()
}

impl Store for PostgresStore {
    fn load(&self) -> Result<Loaded, StoreError> {
        self.read_snapshot(|tx, statements| {
            let seeded = query_opt(
                tx,
                statements,
                "SELECT value FROM meta WHERE key = 'seeded'",
                &[],
            )?
            .is_some();
            let agents = bodies(
                &query(
                    tx,
                    statements,
                    "SELECT body FROM agents ORDER BY agent_id",
                    &[],
                )?,
                records::agent_from,
            )?;
            let mut reviewers = bodies(
                &query(tx, statements, "SELECT body FROM reviewers", &[])?,
                records::reviewer_from,
            )?;
            reviewers.sort_by_key(|r| r.order);
            // The partial index `tickets_open`: closed tickets are never read.
            let open_tickets = bodies(
                &query(tx, statements, "SELECT body FROM tickets WHERE open", &[])?,
                records::ticket_from,
            )?;
            let pending = code_column(records::state_code(EscalationState::Pending));
            let pending_escalations = bodies(
                &query(
                    tx,
                    statements,
                    "SELECT body FROM escalations WHERE state = $1",
                    &[&pending],
                )?,
                records::escalation_from,
            )?;
            let keys = read_keys(tx, statements)?;
            let settings = query_opt(
                tx,
                statements,
                "SELECT body FROM config_changes ORDER BY id DESC LIMIT 1",
                &[],
            )?
            .map(|row| from_json::<Settings>("settings", row.try_get(0)?))
            .transpose()?;
            let stats = query_opt(
                tx,
                statements,
                "SELECT value FROM meta WHERE key = 'stats'",
                &[],
            )?
            .map(|row| from_json::<Stats>("running totals", row.try_get(0)?))
            .transpose()?
            .unwrap_or_default();
            let last_seq = head(tx, statements)?;
            Ok(Loaded {
                seeded,
                agents,
                reviewers,
                open_tickets,
                pending_escalations,
                keys,
                settings,
                stats,
                last_seq,
            })
        })
    }

    fn commit(&self, batch: &CommitBatch) -> Result<CommitReport, StoreError> {
        if batch.is_empty() {
            return Ok(CommitReport::default());
        }
        // A panic while committing leaves the connection in an unknown state of the protocol:
        // the writer is not reused after one.
        let mut writer = self.writer.lock().expect("writer poisoned");
        // A connection the server closed (a restart, a failover) is replaced, so that the
        // runtime's retries of a failed commit reach the server again.
        let session = match writer.as_mut() {
            Some(session) if !session.client.is_closed() => session,
            _ => writer.insert(self.new_session()?),
        };
        let Session { client, statements } = session;
        let mut tx = client.transaction()?;
        lease::fence(&mut tx, statements, self.fence.load(Ordering::SeqCst))?;
        // After a failure the runtime commits the same batch again; if the failure was the
        // answer to a COMMIT that the server carried out (the connection broke on the way
        // back), the batch is there already, whole: that is success, not a duplicate.
        if self.uncertain.load(Ordering::Relaxed) && committed_already(&mut tx, statements, batch)?
        {
            self.uncertain.store(false, Ordering::Relaxed);
            return Ok(CommitReport::default());
        }
        let committed = write::commit(&mut tx, statements, batch).and_then(|report| {
            tx.commit()?;
            Ok(report)
        });
        self.uncertain.store(committed.is_err(), Ordering::Relaxed);
        committed
    }

    fn get_ticket(&self, ticket_id: &str) -> Result<Option<Ticket>, StoreError> {
        self.read(|s| {
            query_opt(
                &mut s.client,
                &mut s.statements,
                "SELECT body FROM tickets WHERE ticket_id = $1",
                &[&ticket_id],
            )?
            .map(|row| records::ticket_from(row.try_get(0)?))
            .transpose()
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
            }) => (*created_ms, ticket_id.as_str()),
            _ => (i64::MAX, ""),
        };
        let status = filter.status.map(|s| code_column(records::status_code(s)));
        let fetch = fetch(limit);
        let sql = tickets_query(
            filter.customer_id.is_some(),
            status.is_some(),
            filter.client_id.is_some(),
        );
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&after_ms, &after_id, &fetch];
        if let Some(customer_id) = &filter.customer_id {
            params.push(customer_id);
        }
        if let Some(status) = &status {
            params.push(status);
        }
        if let Some(client_id) = &filter.client_id {
            params.push(client_id);
        }
        self.read_snapshot(|tx, statements| {
            let seq = head(tx, statements)?;
            let mut items = bodies(&query(tx, statements, &sql, &params)?, records::ticket_from)?;
            let next = if items.len() > limit {
                items.truncate(limit);
                items.last().map(|t| Cursor::Ticket {
                    created_ms: t.created_ms,
                    ticket_id: t.id.clone(),
                })
            } else {
                None
            };
            Ok(Page { items, next, seq })
        })
    }

    fn count_customer_tickets(
        &self,
        customer_id: &str,
        client_id: Option<&str>,
    ) -> Result<u64, StoreError> {
        self.read(|s| {
            let row = match client_id {
                Some(client_id) => query_opt(
                    &mut s.client,
                    &mut s.statements,
                    "SELECT COUNT(*) FROM tickets WHERE customer_id = $1 AND client_id = $2",
                    &[&customer_id, &client_id],
                )?,
                None => query_opt(
                    &mut s.client,
                    &mut s.statements,
                    "SELECT COUNT(*) FROM tickets WHERE customer_id = $1",
                    &[&customer_id],
                )?,
            };
            let count: i64 = match row {
                Some(row) => row.try_get(0)?,
                None => 0,
            };
            Ok(count.max(0) as u64)
        })
    }

    fn find_idempotent(&self, client_id: &str, key: &str) -> Result<Option<String>, StoreError> {
        self.read(|s| {
            query_opt(
                &mut s.client,
                &mut s.statements,
                "SELECT ticket_id FROM tickets WHERE client_id = $1 AND idempotency_key = $2",
                &[&client_id, &key],
            )?
            .map(|row| Ok(row.try_get(0)?))
            .transpose()
        })
    }

    fn get_escalation(&self, escalation_id: &str) -> Result<Option<Escalation>, StoreError> {
        self.read(|s| {
            query_opt(
                &mut s.client,
                &mut s.statements,
                "SELECT body FROM escalations WHERE escalation_id = $1",
                &[&escalation_id],
            )?
            .map(|row| records::escalation_from(row.try_get(0)?))
            .transpose()
        })
    }

    fn list_escalations(
        &self,
        filter: &EscalationFilter,
        limit: usize,
        after: Option<&Cursor>,
    ) -> Result<Page<Escalation>, StoreError> {
        let (priority, created_ms, escalation_id) = match after {
            Some(Cursor::Escalation {
                priority,
                created_ms,
                escalation_id,
            }) => (i32::from(*priority), *created_ms, escalation_id.as_str()),
            _ => (i32::MAX, i64::MIN, ""),
        };
        let state = code_column(records::state_code(filter.state));
        let fetch = fetch(limit);
        let mut params: Vec<&(dyn ToSql + Sync)> =
            vec![&state, &priority, &created_ms, &escalation_id, &fetch];
        if let Some(reviewer_id) = &filter.reviewer_id {
            params.push(reviewer_id);
        }
        let sql = escalations_query(filter.reviewer_id.is_some());
        self.read_snapshot(|tx, statements| {
            let seq = head(tx, statements)?;
            let mut items = bodies(
                &query(tx, statements, sql, &params)?,
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
            Ok(Page { items, next, seq })
        })
    }

    fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.read(|s| {
            log::events_of(&query(
                &mut s.client,
                &mut s.statements,
                "SELECT seq, time_ms, body FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&after_column(after), &limit_column(limit)],
            )?)
        })
    }

    fn ticket_events_after(
        &self,
        ticket_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        self.read(|s| {
            log::events_of(&query(
                &mut s.client,
                &mut s.statements,
                "SELECT seq, time_ms, body FROM events
                 WHERE ticket_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                &[&ticket_id, &after_column(after), &limit_column(limit)],
            )?)
        })
    }

    fn head_seq(&self) -> Result<u64, StoreError> {
        self.read(|s| head(&mut s.client, &mut s.statements))
    }

    fn retained(&self) -> Result<Retained, StoreError> {
        self.read(|s| {
            let row = query_opt(
                &mut s.client,
                &mut s.statements,
                "SELECT (SELECT MIN(seq) FROM events),
                        (SELECT value FROM meta WHERE key = 'compacted_before_ms')",
                &[],
            )?;
            let (oldest, before): (Option<i64>, Option<String>) = match row {
                Some(row) => (row.try_get(0)?, row.try_get(1)?),
                None => (None, None),
            };
            let compacted_before_ms = before
                .map(|v| {
                    v.parse().map_err(|_| {
                        StoreError::Corrupt(format!("compacted_before_ms {v:?} is not a time"))
                    })
                })
                .transpose()?;
            Ok(Retained {
                oldest_seq: oldest.map_or(Ok(1), log::seq_from)?.max(1),
                compacted_before_ms,
            })
        })
    }

    fn check(&self, depth: CheckDepth) -> Result<(), StoreError> {
        self.check_depth(depth)
    }

    /// Nothing to do: PostgreSQL keeps its own files in shape (autovacuum reclaims what
    /// compaction deletes, the checkpointer moves its write-ahead log into the tables), and
    /// the checks a start leaves out are the server's, not the desk's.
    fn maintain(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
