//! The desk on PostgreSQL, against the real binary: `[store] url` keeps everything in the
//! database across a restart, and a second server on the same desk follows the first (reads
//! served, changes forwarded) and takes over when it stops. Each test works in a schema of its own on the server `SERVICEDESK_TEST_POSTGRES`
//! names (CI sets it); without it, on the local default, or the test says it skipped.

mod common;

use std::time::Duration;

use common::database::ScratchDesk;
use common::*;
use servicedesk::proto::v1::{
    DeskEvent, DeskLeader, GetDeskStatusRequest, GetTicketRequest, ListEscalationsRequest,
    ListTicketsRequest, TicketStatus, WatchEventsRequest,
};

const EXIT_LIMIT: Duration = Duration::from_secs(30);

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

/// Who leads the desk, as GetDeskStatus on `server` says.
async fn leader_of(server: &Server) -> DeskLeader {
    let status = ok(
        server
            .admin()
            .get_desk_status(GetDeskStatusRequest {})
            .await,
        "GetDeskStatus",
    );
    status
        .leader
        .expect("a shared desk's status names its leader")
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
async fn a_second_server_on_the_same_desk_follows_it_and_takes_over_when_the_first_stops() {
    let Some(desk) = ScratchDesk::new("a_second_server_follows") else {
        return;
    };
    let config = desk.config();
    let first = Server::start_with_config(&config).await;
    let second = Server::start_with_config(&config).await;
    assert_eq!(
        desk.lease_holder_pid(),
        Some(first.pid()),
        "the first server leads"
    );
    second
        .until_logged("following the desk's leader", Duration::from_secs(10))
        .await;
    // A change sent to the follower is forwarded to the leader, with the caller's key; a read
    // on the follower sees it at once (it reads the shared store).
    let answer = ask(
        &mut second.desk(),
        inquiry("cust_pg_follow", PASSWORD_RESET),
    )
    .await;
    let ticket = answer.ticket.unwrap();
    assert_eq!(ticket.status(), TicketStatus::Resolved);
    let read = ok(
        second
            .desk()
            .get_ticket(GetTicketRequest {
                ticket_id: ticket.ticket_id.clone(),
            })
            .await,
        "GetTicket on the follower",
    );
    assert_eq!(read, ticket);
    // A key created through the follower works there at once, before the follower learnt of
    // it (calls with a key it does not know go to the leader, which does).
    let key = second
        .create_key("follower-client", &["customer_service"])
        .await;
    let mine = ask(
        &mut second.desk_as(&key),
        inquiry("cust_pg_new_key", PASSWORD_RESET),
    )
    .await;
    let mine = mine.ticket.unwrap();
    let read = ok(
        second
            .desk_as(&key)
            .get_ticket(GetTicketRequest {
                ticket_id: mine.ticket_id.clone(),
            })
            .await,
        "GetTicket with a key just created",
    );
    assert_eq!(read, mine);
    // A key the follower does not know is refused there, as anywhere.
    expect_code(
        second
            .desk_as("not-a-key")
            .get_ticket(GetTicketRequest {
                ticket_id: ticket.ticket_id.clone(),
            })
            .await,
        tonic::Code::Unauthenticated,
        "a wrong key on the follower",
    );
    // Both logs are the same, on either server.
    assert_eq!(the_log(&second).await, the_log(&first).await);
    // Status, asked of the follower, is the leader's, and says who leads.
    let leader = leader_of(&second).await;
    assert_eq!(
        (leader.address, leader.epoch),
        (format!("http://{}", first.addr()), 1)
    );

    // The leader stops and lets the lease go: the follower leads without waiting for it to
    // expire, and the log goes on where it was.
    let before = the_log(&second).await;
    let stopped = std::time::Instant::now();
    drop(first.terminate().await);
    let answer = poll_until(Duration::from_secs(10), "the second server leads", || {
        let mut desk = second.desk();
        async move {
            desk.handle_inquiry(inquiry("cust_pg_takeover", PASSWORD_RESET))
                .await
                .ok()
        }
    })
    .await;
    eprintln!("a planned handover took {:?}", stopped.elapsed());
    assert_eq!(
        answer.into_inner().ticket.unwrap().status(),
        TicketStatus::Resolved
    );
    assert_eq!(desk.lease_holder_pid(), Some(second.pid()));
    let leader = leader_of(&second).await;
    assert_eq!(
        (leader.address, leader.epoch),
        (format!("http://{}", second.addr()), 2)
    );
    let after = the_log(&second).await;
    assert!(after.len() > before.len());
    assert_eq!(after, (1..=after.len() as u64).collect::<Vec<_>>());
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
    let refused = serve_to_exit(&missing.config(), &[], EXIT_LIMIT).await;
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        refused.output.contains("CREATE SCHEMA"),
        "the log says what to do: {}",
        refused.output
    );
}

/// `servicedesk migrate` with these arguments, to its exit.
async fn migrate(from: &std::path::Path, to: &str) -> Exited {
    let args = vec![
        "migrate".to_string(),
        "--from".into(),
        format!("sqlite://{}", from.display()),
        "--to".into(),
        to.to_string(),
    ];
    run_to_exit(&args, EXIT_LIMIT)
        .await
        .expect("migrate must end on its own")
}

#[tokio::test]
async fn a_desk_copied_from_the_embedded_store_serves_on_postgresql_as_it_was() {
    let Some(desk) = ScratchDesk::new("a_desk_copied_from_the_embedded_store") else {
        return;
    };
    // A desk with history on the embedded store: settled tickets, a pending review, a key.
    let server = Server::start().await;
    let settled = ask(&mut server.desk(), inquiry("cust_mig", PASSWORD_RESET)).await;
    let review = create_refund_escalation(&mut server.desk(), "cust_mig_review").await;
    let key = server
        .create_key("migrated-client", &["customer_service"])
        .await;
    ask(
        &mut server.desk_as(&key),
        inquiry("cust_mig_key", PASSWORD_RESET),
    )
    .await;
    let log = the_log(&server).await;
    // Not while a server holds it.
    let busy = migrate(&server.data_dir(), &desk.url()).await;
    assert!(!busy.status.success(), "{busy:?}");
    let root = server.terminate().await;
    let data = root.path().join("data");

    let copied = migrate(&data, &desk.url()).await;
    assert!(copied.status.success(), "{copied:?}");
    assert!(
        copied
            .output
            .contains(&format!("head sequence {}", log.len())),
        "{}",
        copied.output
    );
    // A second copy into the same desk is refused: it is not empty.
    let again = migrate(&data, &desk.url()).await;
    assert!(!again.status.success());
    assert!(again.output.contains("not empty"), "{}", again.output);

    let server = Server::start_with_config(&desk.config()).await;
    assert_eq!(the_log(&server).await, log, "the log replays as it was");
    let ticket = settled.ticket.unwrap();
    let read = ok(
        server
            .desk()
            .get_ticket(GetTicketRequest {
                ticket_id: ticket.ticket_id.clone(),
            })
            .await,
        "a copied ticket",
    );
    assert_eq!(read, ticket);
    let pending = ok(
        server
            .escalations_as(ADMIN_KEY)
            .list_escalations(ListEscalationsRequest::default())
            .await,
        "ListEscalations",
    );
    assert!(
        pending
            .escalations
            .iter()
            .any(|e| e.escalation_id == review.escalation_id),
        "the pending review was copied"
    );
    // The copied key authenticates, and the desk goes on with the next sequence.
    ask(
        &mut server.desk_as(&key),
        inquiry("cust_after_mig", PASSWORD_RESET),
    )
    .await;
    let after = the_log(&server).await;
    assert_eq!(after, (1..=after.len() as u64).collect::<Vec<_>>());
    assert!(after.len() > log.len());
}
