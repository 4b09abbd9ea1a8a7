//! The desk on PostgreSQL, against the real binary: `[store] url` keeps everything in the
//! database across a restart, and a second server on the same desk is refused while the first
//! holds it. Each test works in a schema of its own on the server `SERVICEDESK_TEST_POSTGRES`
//! names (CI sets it); without it, on the local default, or the test says it skipped.

mod common;

use std::time::Duration;

use common::*;
use servicedesk::proto::v1::{
    DeskEvent, GetTicketRequest, ListTicketsRequest, TicketStatus, WatchEventsRequest,
};

/// Where the tests find PostgreSQL unless `SERVICEDESK_TEST_POSTGRES` says otherwise.
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const EXIT_LIMIT: Duration = Duration::from_secs(30);

/// A schema of its own for one test, dropped with everything in it at the end.
struct Desk {
    admin_url: String,
    schema: String,
}

impl Desk {
    /// A fresh schema, or `None` (after saying so) when no PostgreSQL answers at the default
    /// URL; a server named in `SERVICEDESK_TEST_POSTGRES` must answer.
    fn new(test: &str) -> Option<Desk> {
        off_the_runtime(|| Desk::create(test))
    }

    fn create(test: &str) -> Option<Desk> {
        let named = std::env::var("SERVICEDESK_TEST_POSTGRES").ok();
        let admin_url = named.clone().unwrap_or_else(|| DEFAULT_URL.into());
        let mut client = match postgres::Client::connect(&admin_url, postgres::NoTls) {
            Ok(client) => client,
            Err(err) => {
                assert!(
                    named.is_none(),
                    "{test}: SERVICEDESK_TEST_POSTGRES names {admin_url}, which does not answer: {err}"
                );
                eprintln!("skipped {test}: no PostgreSQL at {admin_url} ({err})");
                return None;
            }
        };
        let schema = format!("sd_e2e_{:016x}", rand::random::<u64>());
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .expect("create the test schema");
        Some(Desk { admin_url, schema })
    }

    /// The server's configuration: the desk in this schema.
    fn config(&self) -> String {
        let separator = if self.admin_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!(
            "[store]\nurl = \"{}{separator}options=-csearch_path%3D{}\"\n",
            self.admin_url, self.schema
        )
    }
}

impl Drop for Desk {
    fn drop(&mut self) {
        off_the_runtime(|| {
            if let Ok(mut client) = postgres::Client::connect(&self.admin_url, postgres::NoTls) {
                let drop = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema);
                let _ = client.batch_execute(&drop);
            }
        })
    }
}

/// Runs `f` on a thread of its own: the blocking PostgreSQL client must not run on the
/// test's async runtime.
fn off_the_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| scope.spawn(f).join().expect("the blocking call panicked"))
}

/// Runs a server with `config` that must stop on its own, and what it said.
async fn serve_to_exit(config: &str) -> Exited {
    let root = tempfile::tempdir().unwrap();
    let config_path = root.path().join("servicedesk.toml");
    std::fs::write(&config_path, config).unwrap();
    let args: Vec<std::ffi::OsString> = vec![
        "serve".into(),
        "--dev".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--data-dir".into(),
        root.path().join("data").into(),
        "--config".into(),
        config_path.into(),
    ];
    run_to_exit(&args, EXIT_LIMIT)
        .await
        .expect("the server must stop on its own")
}

/// The sequence of every event up to the desk's head, as a watch from 0 delivers them.
async fn the_log(server: &Server) -> Vec<u64> {
    let head = ok(
        server
            .desk_as(ADMIN_KEY)
            .list_tickets(ListTicketsRequest::default())
            .await,
        "ListTickets",
    )
    .sequence;
    let mut admin = server.admin();
    let mut watch: Watch<DeskEvent> = Watch::open("WatchEvents", async move {
        admin.watch_events(WatchEventsRequest::default()).await
    });
    let events = watch.until(|e| e.sequence >= head).await;
    events.iter().map(|e| e.sequence).collect()
}

#[tokio::test]
async fn a_desk_on_postgresql_keeps_its_tickets_and_log_across_a_restart() {
    let Some(desk) = Desk::new("a_desk_on_postgresql_keeps_its_tickets_and_log_across_a_restart")
    else {
        return;
    };
    let config = desk.config();
    let server = Server::start_with_config(&config).await;
    let answer = ask(&mut server.desk(), inquiry("cust_pg", PASSWORD_RESET)).await;
    let ticket = answer.ticket.unwrap();
    assert_eq!(ticket.status(), TicketStatus::Resolved);
    let before = the_log(&server).await;
    assert_eq!(before, (1..=before.len() as u64).collect::<Vec<_>>());
    // The data directory holds nothing of the desk: a new one finds everything in the database.
    drop(server.terminate().await);
    let server = Server::start_with_config(&config).await;
    let again = server
        .desk()
        .get_ticket(GetTicketRequest {
            ticket_id: ticket.ticket_id.clone(),
        })
        .await
        .expect("the ticket is in the database")
        .into_inner();
    assert_eq!(again, ticket);
    assert_eq!(the_log(&server).await, before, "the log replays as it was");
    // The log goes on after the restart where it stopped, without a gap.
    ask(&mut server.desk(), inquiry("cust_pg_2", PASSWORD_RESET)).await;
    let after = the_log(&server).await;
    assert!(after.len() > before.len());
    assert_eq!(after, (1..=after.len() as u64).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_second_server_on_the_same_postgresql_desk_is_refused() {
    let Some(desk) = Desk::new("a_second_server_on_the_same_postgresql_desk_is_refused") else {
        return;
    };
    let config = desk.config();
    let server = Server::start_with_config(&config).await;
    let second = serve_to_exit(&config).await;
    assert!(!second.status.success(), "{second:?}");
    assert!(
        second
            .output
            .contains("in use by another servicedesk process"),
        "the log says why: {}",
        second.output
    );
    // The first serves on.
    let answer = ask(&mut server.desk(), inquiry("cust_pg_lock", PASSWORD_RESET)).await;
    assert_eq!(answer.ticket.unwrap().status(), TicketStatus::Resolved);
}

#[tokio::test]
async fn a_desk_in_a_schema_that_does_not_exist_is_refused_saying_what_to_do() {
    let Some(desk) = Desk::new("a_desk_in_a_schema_that_does_not_exist") else {
        return;
    };
    let missing = Desk {
        admin_url: desk.admin_url.clone(),
        schema: format!("{}_missing", desk.schema),
    };
    let refused = serve_to_exit(&missing.config()).await;
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        refused.output.contains("CREATE SCHEMA"),
        "the log says what to do: {}",
        refused.output
    );
}
