//! The store's integrity checks: at start, offline, and once after start.
//!
//! A start checks every table with its indexes page by page (`quick_check` of each table),
//! sharing the tables out over a few read-only connections that map the file rather than
//! copy it, so a store of a million tickets is checked in about the time of its largest table.
//! The free list is checked with `sqlite_schema`. What no single table shows (a page no table
//! owns, or two tables share) needs the whole-store check, which the maintenance connection
//! runs once after start: its damage is reported through [`crate::store::Store::maintain`]
//! (the log, the store's health) rather than refused, since the desk already serves.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rusqlite::{Connection, OpenFlags};

use super::SqliteStore;
use crate::store::{CheckDepth, StoreError};

/// Connections that check tables side by side at start.
const CHECKERS: usize = 4;

/// How much of the file a checking connection maps (SQLite's own cap is just under 2 GiB;
/// past it, pages are read as usual).
const CHECK_MMAP_BYTES: i64 = 1 << 31;

impl SqliteStore {
    pub(super) fn check_depth(&self, depth: CheckDepth) -> Result<(), StoreError> {
        let whole = |pragma| {
            let conn = self.writer.lock().expect("writer poisoned");
            problems(&conn, pragma).unwrap_or_else(|err| vec![err.to_string()])
        };
        let found = match depth {
            CheckDepth::Start => self.check_each_table(),
            CheckDepth::Structure => whole("PRAGMA quick_check(20)"),
            CheckDepth::Full => whole("PRAGMA integrity_check(20)"),
        };
        if found.is_empty() {
            if depth != CheckDepth::Start {
                // The whole store was checked: nothing is left for after start.
                *self.structure.lock().expect("structure poisoned") = Some(String::new());
            }
            Ok(())
        } else {
            Err(self.damaged(&found.join("; "), "nothing was written to it"))
        }
    }

    /// `quick_check` of every table (with its indexes) on up to [`CHECKERS`] connections.
    fn check_each_table(&self) -> Vec<String> {
        let mut tables = match self.tables() {
            Ok(tables) => tables,
            Err(err) => return vec![err.to_string()],
        };
        tables.push("sqlite_schema".into());
        // The log and the tickets are most of a store: they go first.
        tables.sort_by_key(|t| !matches!(t.as_str(), "events" | "tickets"));
        let next = AtomicUsize::new(0);
        let checkers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, CHECKERS);
        std::thread::scope(|scope| {
            let running: Vec<_> = (0..checkers)
                .map(|_| scope.spawn(|| self.check_tables_from(&tables, &next)))
                .collect();
            running
                .into_iter()
                .flat_map(|checker| checker.join().expect("a store checker panicked"))
                .collect()
        })
    }

    fn tables(&self) -> Result<Vec<String>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")?;
            let names = stmt.query_map([], |r| r.get::<_, String>(0))?;
            Ok(names.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// One checker: takes the next unchecked table until none is left; returns the damage.
    fn check_tables_from(&self, tables: &[String], next: &AtomicUsize) -> Vec<String> {
        let conn = match self.checking_connection() {
            Ok(conn) => conn,
            Err(err) => return vec![err.to_string()],
        };
        let mut found = Vec::new();
        while let Some(table) = tables.get(next.fetch_add(1, Ordering::Relaxed)) {
            let started = Instant::now();
            let pragma = format!("PRAGMA quick_check(\"{table}\")");
            found.extend(problems(&conn, &pragma).unwrap_or_else(|err| vec![err.to_string()]));
            tracing::debug!(
                table,
                ms = started.elapsed().as_millis() as u64,
                "table checked"
            );
        }
        found
    }

    /// A read-only connection that maps the file: reading pages through `pread` from two
    /// threads at once copies them at half speed each, mapping them does not. Only for the
    /// check, under the directory's lock, so nothing can shrink the file under the map; a
    /// disk error on a mapped page is a SIGBUS, which `process.rs` logs before the process
    /// ends, so a start on a failing disk is refused either way.
    fn checking_connection(&self) -> Result<Connection, rusqlite::Error> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "mmap_size", CHECK_MMAP_BYTES)?;
        Ok(conn)
    }

    /// Runs the whole-store `quick_check` once, on the maintenance connection; afterwards
    /// returns what it found. An interrupted check
    /// ([`crate::store::Store::interrupt_maintenance`]) found nothing and runs again next time.
    pub(super) fn check_structure_once(&self, conn: &Connection) -> Result<(), StoreError> {
        let mut structure = self.structure.lock().expect("structure poisoned");
        if structure.is_none() {
            let started = Instant::now();
            let Ok(found) = problems(conn, "PRAGMA quick_check(20)") else {
                return Ok(());
            };
            tracing::info!(
                ms = started.elapsed().as_millis() as u64,
                damaged = !found.is_empty(),
                "store structure checked"
            );
            *structure = Some(found.join("; "));
        }
        match structure.as_deref() {
            Some(found) if !found.is_empty() => Err(self.damaged(found, "found after start")),
            _ => Ok(()),
        }
    }

    fn damaged(&self, found: &str, when: &str) -> StoreError {
        StoreError::Damaged(format!(
            "the store {} is damaged ({found}); {when}. Restore it from a backup, or move it \
             away and start on an empty data directory; `servicedesk check --full --data-dir \
             {}` lists what is wrong",
            self.path.display(),
            self.path.parent().unwrap_or(&self.path).display()
        ))
    }
}

/// What an integrity `pragma` reports wrong: nothing when it says "ok"; an error that stops
/// the check is what is wrong, but for an interruption
/// ([`crate::store::Store::interrupt_maintenance`]).
fn problems(conn: &Connection, pragma: &str) -> Result<Vec<String>, rusqlite::Error> {
    let rows: Result<Vec<String>, rusqlite::Error> = conn
        .prepare(pragma)
        .and_then(|mut stmt| stmt.query_map([], |r| r.get(0))?.collect());
    match rows {
        Ok(rows) if rows.len() == 1 && rows[0] == "ok" => Ok(Vec::new()),
        Ok(rows) => Ok(rows),
        Err(err) if err.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted) => {
            Err(err)
        }
        Err(err) => Ok(vec![err.to_string()]),
    }
}
