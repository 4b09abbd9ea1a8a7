//! The desk on PostgreSQL, against the real binary: `[store] url` keeps everything in the
//! database across a restart, and a second server on the same desk is refused while the first
//! holds it. Each test works in a schema of its own on the server `SERVICEDESK_TEST_POSTGRES`
//! names (CI sets it); without it, on the local default, or the test says it skipped.

mod common;

use std::time::Duration;

use common::database::ScratchDesk;
use common::*;
use servicedesk::proto::v1::{
    DeskEvent, GetTicketRequest, ListTicketsRequest, TicketStatus, WatchEventsRequest,
};

const EXIT_LIMIT: Duration = Duration::from_secs(30);

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
    let Some(desk) =
        ScratchDesk::new("a_desk_on_postgresql_keeps_its_tickets_and_log_across_a_restart")
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
    let Some(desk) = ScratchDesk::new("a_second_server_on_the_same_postgresql_desk_is_refused")
    else {
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
    let Some(desk) = ScratchDesk::new("a_desk_in_a_schema_that_does_not_exist") else {
        return;
    };
    let missing = ScratchDesk {
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
