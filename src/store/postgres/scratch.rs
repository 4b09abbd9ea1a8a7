//! A schema of its own for each test on the test server, so tests running side by side never
//! see each other's rows, and the one place that decides whether a PostgreSQL test runs.

use super::super::StoreError;
use super::{Database, PostgresStore};

/// Where the tests find PostgreSQL unless `SERVICEDESK_TEST_POSTGRES` says otherwise.
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A freshly named schema on the test server, dropped with everything in it when this is
/// dropped (at the end of the test, or when it panics).
pub(crate) struct ScratchSchema {
    url: String,
    name: String,
}

impl ScratchSchema {
    /// A new schema name for `test` on the server at `SERVICEDESK_TEST_POSTGRES` (or the
    /// local default); `None`, after a line on stderr saying so and why, when no server
    /// answers at the default: the test then passes without running. A server named in
    /// `SERVICEDESK_TEST_POSTGRES` (as CI does) must answer: the test fails otherwise.
    pub(crate) fn new(test: &str) -> Option<ScratchSchema> {
        let named = std::env::var("SERVICEDESK_TEST_POSTGRES").ok();
        let url = named.clone().unwrap_or_else(|| DEFAULT_URL.into());
        if let Err(err) = admin(&url) {
            assert!(
                named.is_none(),
                "{test}: SERVICEDESK_TEST_POSTGRES names {url}, which does not answer ({err})"
            );
            eprintln!(
                "skipped {test}: no PostgreSQL at {url} ({err}); set \
                 SERVICEDESK_TEST_POSTGRES to a reachable server to run it"
            );
            return None;
        }
        // PostgreSQL keeps 63 bytes of a name: the test's part is cut to fit with the rest.
        let short: String = test
            .trim_start_matches("postgres_")
            .chars()
            .take(32)
            .collect();
        let name = format!("sd_test_{short}_{:016x}", rand::random::<u64>());
        Some(ScratchSchema { url, name })
    }

    /// A store in this schema (created by the first connect).
    pub(crate) fn connect(&self) -> PostgresStore {
        PostgresStore::connect_in_schema(self.database(), &self.name)
            .expect("connect to the test schema")
    }

    /// The test server, as every store connects to it.
    pub(crate) fn database(&self) -> Database {
        Database::new(&self.url).expect("the test server's URL")
    }

    /// A connection of its own to the test server, beside the store's.
    pub(crate) fn client(&self) -> postgres::Client {
        admin(&self.url).expect("connect to the test server")
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

fn admin(url: &str) -> Result<postgres::Client, StoreError> {
    Database::new(url)?.connect()
}

impl Drop for ScratchSchema {
    fn drop(&mut self) {
        let dropped = admin(&self.url).and_then(|mut client| {
            Ok(client.batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {} CASCADE",
                super::quote_identifier(&self.name)
            ))?)
        });
        if let Err(err) = dropped {
            eprintln!("test schema {} left behind: {err}", self.name);
        }
    }
}
