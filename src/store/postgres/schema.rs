//! The tables, their version, and the migrations that lead to it.
//!
//! `schema_migrations` records every migration applied, with the time it was; the store's
//! version is the highest one. Migrations run at connect, each in a transaction of its own,
//! under a session advisory lock on [`MIGRATION_LOCK`], so that two servers starting on one
//! database at once apply each migration exactly once: the second waits, then finds nothing
//! left to do. The lock is released as soon as the schema is current.
//!
//! The SQL is plain (no extensions, no PL/pgSQL): tables, B-tree indexes, partial indexes and
//! `ON CONFLICT`, so that engines speaking PostgreSQL's dialect can run it too. Identifiers
//! that page queries order by are `COLLATE "C"`: byte order, as in the SQLite store, whatever
//! the database's default collation, so pages come in the same order on every backend.

use postgres::Client;

use super::super::StoreError;

/// The advisory lock key that serializes migrations: fixed, so that every servicedesk on the
/// database agrees on it ("svcdesk\0" in ASCII). It is database-wide, so migrations of
/// different schemas in one database wait for each other too; they are short.
const MIGRATION_LOCK: i64 = 0x7376_6364_6573_6b00;

/// Each migration, in order: its version is its position plus one. Never edit one that was
/// released: add the next.
const MIGRATIONS: &[&str] = &[
    // 1: the desk's tables. Events are stored whole (an `EventRecord` each), with the ticket
    // they concern (an escalation's ticket for escalation events) for per-ticket replays.
    r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE events (
    seq BIGINT PRIMARY KEY,
    time_ms BIGINT NOT NULL,
    ticket_id TEXT COLLATE "C",
    body BYTEA NOT NULL
);
CREATE INDEX events_by_ticket ON events (ticket_id, seq) WHERE ticket_id IS NOT NULL;
CREATE TABLE tickets (
    ticket_id TEXT COLLATE "C" PRIMARY KEY,
    customer_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    status INTEGER NOT NULL,
    open BOOLEAN NOT NULL,
    created_ms BIGINT NOT NULL,
    idempotency_key TEXT,
    body BYTEA NOT NULL
);
CREATE INDEX tickets_by_time ON tickets (created_ms DESC, ticket_id DESC);
CREATE INDEX tickets_by_customer
    ON tickets (customer_id, client_id, created_ms DESC, ticket_id DESC);
CREATE INDEX tickets_by_status ON tickets (status, created_ms DESC, ticket_id DESC);
CREATE INDEX tickets_by_client ON tickets (client_id, created_ms DESC, ticket_id DESC);
CREATE INDEX tickets_open ON tickets (ticket_id) WHERE open;
CREATE UNIQUE INDEX tickets_by_idempotency
    ON tickets (client_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE TABLE escalations (
    escalation_id TEXT COLLATE "C" PRIMARY KEY,
    state INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    created_ms BIGINT NOT NULL,
    reviewer_id TEXT,
    body BYTEA NOT NULL
);
CREATE INDEX escalations_queue
    ON escalations (state, priority DESC, created_ms, escalation_id);
CREATE INDEX escalations_by_reviewer
    ON escalations (reviewer_id, state, priority DESC, created_ms, escalation_id);
CREATE TABLE agents (agent_id TEXT COLLATE "C" PRIMARY KEY, body BYTEA NOT NULL);
CREATE TABLE reviewers (reviewer_id TEXT COLLATE "C" PRIMARY KEY, body BYTEA NOT NULL);
CREATE TABLE api_keys (
    key_id TEXT COLLATE "C" PRIMARY KEY,
    client_id TEXT NOT NULL,
    client_name TEXT NOT NULL,
    permissions TEXT NOT NULL,
    secret_sha256 BYTEA NOT NULL,
    created_ms BIGINT NOT NULL,
    last_used_ms BIGINT,
    revoked BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE TABLE config_changes (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time_ms BIGINT NOT NULL,
    changed_by TEXT NOT NULL,
    body TEXT NOT NULL
);
"#,
    // 2: the desk's lease (one row): which of the servers sharing the desk writes, until when
    // by the database's clock, and the epoch every commit checks.
    r#"
CREATE TABLE desk_lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    address TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
"#,
];

/// The version this code reads and writes.
pub(super) const VERSION: i32 = MIGRATIONS.len() as i32;

/// Creates `schema` when given and missing, then brings its tables to [`VERSION`]; refuses a
/// store a newer servicedesk migrated further. `client` already has its `search_path`.
pub(super) fn prepare(client: &mut Client, schema: Option<&str>) -> Result<(), StoreError> {
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])?;
    let migrated = migrate(client, schema);
    // Released whatever happened: a connection that broke released it with its session.
    let released = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
    migrated?;
    released?;
    Ok(())
}

/// The migrations, under the lock.
fn migrate(client: &mut Client, schema: Option<&str>) -> Result<(), StoreError> {
    if let Some(schema) = schema {
        client.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            super::quote_identifier(schema)
        ))?;
    }
    let row = client.query_one(
        "SELECT current_schema(), current_setting('search_path')",
        &[],
    )?;
    let (current, search_path): (Option<String>, String) = (row.try_get(0)?, row.try_get(1)?);
    if current.is_none() {
        return Err(StoreError::Backend(
            format!(
                "no schema of the search path ({search_path}) exists in this database: create \
                 it (CREATE SCHEMA name) or name an existing one in the URL's \
                 options=-csearch_path%3Dname"
            )
            .into(),
        ));
    }
    client.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY,
             applied_ms BIGINT NOT NULL
         )",
    )?;
    let current = version(client)?;
    if current > VERSION {
        return Err(newer(current));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = index as i32 + 1;
        let mut tx = client.transaction()?;
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_ms) VALUES ($1, $2)",
            &[&version, &crate::clock::now_ms()],
        )?;
        tx.commit()?;
        tracing::info!(version, "store schema migrated");
    }
    Ok(())
}

/// The highest migration applied (0 for none).
pub(super) fn version(client: &mut impl postgres::GenericClient) -> Result<i32, StoreError> {
    let row = client.query_one("SELECT MAX(version) FROM schema_migrations", &[])?;
    Ok(row.get::<_, Option<i32>>(0).unwrap_or(0))
}

/// What a store of a newer schema than this binary knows is: one it must not write to.
pub(super) fn newer(version: i32) -> StoreError {
    StoreError::Damaged(format!(
        "the store was migrated by a newer servicedesk (schema {version}; this one knows \
         {VERSION}): run that version, or restore a backup taken before it"
    ))
}
