//! The store's consistency check. PostgreSQL guards its own pages (checksums, when the
//! cluster has them, and its write-ahead log), so what is left to the desk is what only the
//! desk knows: that the schema is the one this binary writes, that the log has no gap, and
//! (`--full`) that every record decodes.

use postgres::Transaction;

use super::{log, records, schema, PostgresStore, Statements};
use crate::store::{CheckDepth, StoreError};

/// Rows one statement of the full check reads: its memory stays bounded on any store.
const CHECK_ROWS: i64 = 10_000;

impl PostgresStore {
    pub(super) fn check_depth(&self, depth: CheckDepth) -> Result<(), StoreError> {
        let found = self.read_snapshot(|tx, statements| {
            let version = schema::version(tx)?;
            if version > schema::VERSION {
                return Err(schema::newer(version));
            }
            let mut found = Vec::new();
            if version < schema::VERSION {
                found.push(format!(
                    "its schema is {version}, not {} (a migration did not finish)",
                    schema::VERSION
                ));
                return Ok(found);
            }
            found.extend(log_gap(tx)?);
            if depth == CheckDepth::Full {
                found.extend(undecodable(tx, statements)?);
            }
            Ok(found)
        })?;
        if found.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Damaged(format!(
                "the store in PostgreSQL{} is damaged ({}); nothing was written to it. Restore \
                 the database (or the schema) from a backup, or drop the schema and start on an \
                 empty one",
                self.schema
                    .as_deref()
                    .map(|s| format!(" (schema {s})"))
                    .unwrap_or_default(),
                found.join("; ")
            )))
        }
    }
}

/// What breaks the log's run of consecutive sequences: with `seq` its primary key, the log is
/// gapless exactly when it holds one row per sequence from its oldest to its newest. One walk
/// of the primary key's index.
fn log_gap(tx: &mut Transaction<'_>) -> Result<Option<String>, StoreError> {
    let row = tx.query_one("SELECT MIN(seq), MAX(seq), COUNT(*) FROM events", &[])?;
    let (oldest, newest, count): (Option<i64>, Option<i64>, i64) =
        (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    let (Some(oldest), Some(newest)) = (oldest, newest) else {
        return Ok(None);
    };
    if oldest < 1 {
        return Ok(Some(format!("the log holds event {oldest}")));
    }
    let span = newest - oldest + 1;
    Ok((span != count).then(|| {
        format!(
            "the log from event {oldest} to {newest} misses {} of them",
            span - count
        )
    }))
}

/// Every stored record that does not read back, in chunks of [`CHECK_ROWS`].
fn undecodable(
    tx: &mut Transaction<'_>,
    statements: &mut Statements,
) -> Result<Vec<String>, StoreError> {
    let mut found = Vec::new();
    let mut after = 0i64;
    loop {
        let page = statements.prepare(
            tx,
            "SELECT seq, time_ms, body FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
        )?;
        let rows = tx.query(&page, &[&after, &CHECK_ROWS])?;
        for row in &rows {
            let seq: i64 = row.try_get(0)?;
            if let Err(err) = log::event_from(seq, row.try_get(1)?, row.try_get(2)?) {
                found.push(err.to_string());
            }
            after = seq;
        }
        if (rows.len() as i64) < CHECK_ROWS {
            break;
        }
    }
    type Decode = fn(&[u8]) -> Result<(), StoreError>;
    let tables: [(&str, &str, Decode); 4] = [
        ("tickets", "ticket_id", |b| {
            records::ticket_from(b).map(drop)
        }),
        ("escalations", "escalation_id", |b| {
            records::escalation_from(b).map(drop)
        }),
        ("agents", "agent_id", |b| records::agent_from(b).map(drop)),
        ("reviewers", "reviewer_id", |b| {
            records::reviewer_from(b).map(drop)
        }),
    ];
    for (table, key, decode) in tables {
        let page = statements.prepare(
            tx,
            &format!("SELECT {key}, body FROM {table} WHERE {key} > $1 ORDER BY {key} LIMIT $2"),
        )?;
        let mut after = String::new();
        loop {
            let rows = tx.query(&page, &[&after, &CHECK_ROWS])?;
            for row in &rows {
                let id: String = row.try_get(0)?;
                if let Err(err) = decode(row.try_get(1)?) {
                    found.push(format!("{table} {id}: {err}"));
                }
                after = id;
            }
            if (rows.len() as i64) < CHECK_ROWS {
                break;
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::super::scratch::ScratchSchema;
    use super::super::{quote_identifier, schema};
    use crate::store::{CheckDepth, Store, StoreError};

    /// Runs `sql` in the scratch schema, beside the store.
    fn tamper(scratch: &ScratchSchema, sql: &str) {
        let mut client = scratch.client();
        client
            .batch_execute(&format!(
                "SET search_path TO {}; {sql}",
                quote_identifier(scratch.name())
            ))
            .unwrap();
    }

    #[test]
    fn a_gap_in_the_log_is_damage() {
        let Some(scratch) = ScratchSchema::new("postgres_a_gap_in_the_log_is_damage") else {
            return;
        };
        let store = scratch.connect();
        tamper(
            &scratch,
            "INSERT INTO events (seq, time_ms, body) VALUES (1, 0, ''), (3, 0, '')",
        );
        let err = store.check(CheckDepth::Start).unwrap_err();
        assert!(matches!(err, StoreError::Damaged(_)), "{err}");
        assert!(err.to_string().contains("misses 1"), "{err}");
        // Bodies that are no record are found by the full check only.
        tamper(
            &scratch,
            "INSERT INTO events (seq, time_ms, body) VALUES (2, 0, '\\xff')",
        );
        store.check(CheckDepth::Start).unwrap();
        let err = store.check(CheckDepth::Full).unwrap_err();
        assert!(err.to_string().contains("event"), "{err}");
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let Some(scratch) = ScratchSchema::new("postgres_a_newer_schema_is_refused") else {
            return;
        };
        let store = scratch.connect();
        tamper(
            &scratch,
            &format!(
                "INSERT INTO schema_migrations (version, applied_ms) VALUES ({}, 0)",
                schema::VERSION + 1
            ),
        );
        let err = store.check(CheckDepth::Start).unwrap_err();
        assert!(err.to_string().contains("newer servicedesk"), "{err}");
        drop(store);
        let err =
            super::super::PostgresStore::connect_in_schema(scratch.database(), scratch.name())
                .err()
                .expect("a newer schema is refused");
        assert!(err.to_string().contains("newer servicedesk"), "{err}");
    }

    #[test]
    fn a_backend_error_says_what_the_server_said() {
        let Some(scratch) = ScratchSchema::new("postgres_a_backend_error_says_what") else {
            return;
        };
        let store = scratch.connect();
        tamper(&scratch, "DROP TABLE events");
        let err = store.head_seq().unwrap_err();
        assert!(err.to_string().contains("events"), "{err}");
    }
}
