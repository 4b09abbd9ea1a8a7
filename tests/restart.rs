//! Durability and lifecycle: a SIGTERM exits 0 (even with open streams) and a restart on the
//! same data directory brings back tickets, escalations, agents, reviewers, keys and the event
//! log with the same sequences; review deadlines keep running across a restart; acknowledged
//! changes survive a SIGKILL.

mod common;

use std::time::Duration;

use common::*;
use servicedesk::proto::v1::desk_event::Event;
use servicedesk::proto::v1::{
    ApproveEscalationRequest, CreateAgentRequest, CreateReviewerRequest, DeskEvent, Escalation,
    EscalationState, GetEscalationRequest, GetEscalationStatsRequest, GetTicketRequest,
    ListReviewersRequest, ListTicketsRequest, Ticket, TicketStatus, WatchEscalationsRequest,
    WatchEventsRequest, WatchTicketRequest,
};
use tonic::{Code, Status};

async fn ticket(server: &Server, id: &str) -> Ticket {
    ok(
        server
            .desk()
            .get_ticket(GetTicketRequest {
                ticket_id: id.into(),
            })
            .await,
        "GetTicket",
    )
}

async fn escalation(server: &Server, id: &str) -> Escalation {
    ok(
        server
            .escalations()
            .get_escalation(GetEscalationRequest {
                escalation_id: id.into(),
            })
            .await,
        "GetEscalation",
    )
}

async fn log_sequence(server: &Server) -> u64 {
    ok(
        server
            .desk()
            .list_tickets(ListTicketsRequest::default())
            .await,
        "ListTickets",
    )
    .sequence
}

/// WatchEvents from 0 up to and including `end`.
async fn events_through(server: &Server, end: u64) -> Vec<DeskEvent> {
    let mut admin = server.admin();
    let mut watch = Watch::open("WatchEvents from 0", async move {
        admin.watch_events(WatchEventsRequest::default()).await
    });
    watch.until(|e| e.sequence >= end).await
}

/// The ticket without its timestamps' values (their presence still counts): a store may keep
/// less precision than the clock that made them.
fn comparable(ticket: &Ticket) -> Ticket {
    let mut t = ticket.clone();
    t.create_time = t.create_time.map(|_| Default::default());
    t.update_time = t.update_time.map(|_| Default::default());
    t.resolve_time = t.resolve_time.map(|_| Default::default());
    for step in &mut t.resolution_path {
        step.time = step.time.map(|_| Default::default());
    }
    t
}

fn seconds(time: &Option<prost_types::Timestamp>) -> i64 {
    time.as_ref().expect("a timestamp").seconds
}

#[tokio::test]
async fn everything_comes_back_after_a_sigterm_restart() {
    let server = Server::start().await;
    let mut desk = server.desk();
    let resolved = ask(&mut desk, inquiry("cust_durable", PASSWORD_RESET)).await;
    let resolved_id = resolved.ticket.as_ref().unwrap().ticket_id.clone();
    assert_eq!(resolved.ticket.unwrap().status(), TicketStatus::Resolved);
    let review = create_refund_escalation(&mut desk, "cust_durable").await;
    let review_id = review.ticket.as_ref().unwrap().ticket_id.clone();

    let mut admin = server.admin();
    let agent = ok(
        admin
            .create_agent(CreateAgentRequest {
                name: "Night_Shift".into(),
                tier: "L2".into(),
                specialties: vec!["billing".into()],
                capacity: 4,
                ..Default::default()
            })
            .await,
        "CreateAgent",
    );
    let reviewer = ok(
        admin
            .create_reviewer(CreateReviewerRequest {
                reviewer_id: "night_lead".into(),
                name: "Night Lead".into(),
                specialties: vec!["technical".into()],
                max_concurrent: 2,
            })
            .await,
        "CreateReviewer",
    );
    let key = server.create_key("survivor", &["customer_service"]).await;
    let survivor_ticket = ask(
        &mut server.desk_as(&key),
        inquiry("cust_survivor", PASSWORD_RESET),
    )
    .await
    .ticket
    .unwrap()
    .ticket_id;

    let tickets_before = [
        ticket(&server, &resolved_id).await,
        ticket(&server, &review_id).await,
    ];
    let escalation_before = escalation(&server, &review.escalation_id).await;
    let end = log_sequence(&server).await;
    let events_before = events_through(&server, end).await;
    assert!(
        events_before
            .iter()
            .any(|e| matches!(&e.event, Some(Event::Agent(a)) if a.name == "Night_Shift")),
        "the agent's creation is in the log"
    );
    assert!(
        events_before
            .iter()
            .any(|e| matches!(&e.event, Some(Event::Reviewer(r)) if r.reviewer_id == "night_lead")),
        "the reviewer's creation is in the log"
    );

    let root = server.terminate().await;
    let server = Server::start_with(root, &[], None).await;

    for before in &tickets_before {
        let after = ticket(&server, &before.ticket_id).await;
        assert_eq!(
            comparable(&after),
            comparable(before),
            "ticket {} after restart",
            before.ticket_id
        );
        assert_eq!(seconds(&after.create_time), seconds(&before.create_time));
    }
    let escalation_after = escalation(&server, &review.escalation_id).await;
    assert_eq!(escalation_after.state(), EscalationState::Pending);
    assert_eq!(
        escalation_after.assigned_reviewer_id,
        escalation_before.assigned_reviewer_id
    );
    assert_eq!(escalation_after.ticket_id, review_id);
    assert_eq!(escalation_after.priority, escalation_before.priority);
    assert_eq!(
        escalation_after.proposed_response,
        escalation_before.proposed_response
    );
    assert_eq!(
        seconds(&escalation_after.expire_time),
        seconds(&escalation_before.expire_time)
    );

    let agents = all_agents(&server).await;
    let restored = agents
        .iter()
        .find(|a| a.agent_id == agent.agent_id)
        .expect("the created agent is back");
    assert_eq!(restored.name, "Night_Shift");
    assert_eq!(restored.tier, "L2");
    assert_eq!(restored.capacity, 4);
    assert_eq!(restored.specialties, vec!["billing".to_string()]);
    assert_eq!(
        agents.len(),
        7,
        "the six seeded agents are not seeded twice"
    );
    assert!(
        agents.iter().all(|a| a.load == 0),
        "no load survives without open assignments"
    );

    let reviewers = ok(
        server
            .admin()
            .list_reviewers(ListReviewersRequest::default())
            .await,
        "ListReviewers",
    )
    .reviewers;
    let restored = reviewers
        .iter()
        .find(|r| r.reviewer_id == "night_lead")
        .expect("the created reviewer is back");
    assert_eq!(restored.name, reviewer.name);
    assert_eq!(restored.max_concurrent, 2);
    assert_eq!(
        reviewers.len(),
        4,
        "the three seeded reviewers are not seeded twice"
    );
    let sarah = reviewers
        .iter()
        .find(|r| r.reviewer_id == "supervisor_1")
        .unwrap();
    assert_eq!(sarah.load, 1, "supervisor_1 still holds the pending review");

    ok(
        server
            .desk_as(&key)
            .get_ticket(GetTicketRequest {
                ticket_id: survivor_ticket,
            })
            .await,
        "the created key reading its own ticket after the restart",
    );

    let events_after = events_through(&server, end).await;
    let after_prefix: Vec<&DeskEvent> = events_after
        .iter()
        .take_while(|e| e.sequence <= end)
        .collect();
    assert_eq!(
        after_prefix.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        events_before.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        "the same sequences after the restart"
    );
    for (before, after) in events_before.iter().zip(&after_prefix) {
        assert_eq!(
            *after, before,
            "event {} differs after the restart",
            before.sequence
        );
    }

    // The desk goes on where it stopped.
    let approved = ok(
        server
            .escalations_as(ADMIN_KEY)
            .approve_escalation(ApproveEscalationRequest {
                escalation_id: review.escalation_id.clone(),
                response: "Refunded after the restart.".into(),
                reviewer_id: "supervisor_1".into(),
                ..Default::default()
            })
            .await,
        "ApproveEscalation after the restart",
    );
    assert_eq!(approved.state(), EscalationState::Approved);
    assert_eq!(
        ticket(&server, &review_id).await.status(),
        TicketStatus::Resolved
    );
    assert!(
        log_sequence(&server).await > end,
        "new events continue the log"
    );
}

#[tokio::test]
async fn a_review_deadline_keeps_running_across_a_restart() {
    let config = "[desk]\nescalation_timeout_secs = 3\nmax_review_reassignments = 0\n";
    let server = Server::start_with_config(config).await;
    let review = create_refund_escalation(&mut server.desk(), "cust_deadline").await;
    let ticket_id = review.ticket.as_ref().unwrap().ticket_id.clone();
    let root = server.terminate().await;

    let server = Server::start_with(root, &[], Some(config)).await;
    let (server_ref, escalation_id) = (&server, review.escalation_id.as_str());
    let expired = poll_until(
        Duration::from_secs(15),
        "the escalation expires",
        || async move {
            let e = escalation(server_ref, escalation_id).await;
            (e.state() == EscalationState::Expired).then_some(e)
        },
    )
    .await;
    assert!(expired.decide_time.is_some());
    assert_eq!(expired.reassign_count, 0);
    let created = seconds(&expired.create_time);
    let expires = seconds(&expired.expire_time);
    assert!(
        (2..=4).contains(&(expires - created)),
        "a 3 s timeout: created {created}, expires {expires}"
    );

    let ticket_ref = ticket_id.as_str();
    let failed = poll_until(Duration::from_secs(5), "the ticket fails", || async move {
        let t = ticket(server_ref, ticket_ref).await;
        (t.status() == TicketStatus::Failed).then_some(t)
    })
    .await;
    assert!(
        !failed.resolution.is_empty(),
        "the customer gets an apology"
    );
    assert!(failed.resolve_time.is_some());

    let stats = ok(
        server
            .escalations()
            .get_escalation_stats(GetEscalationStatsRequest {})
            .await,
        "GetEscalationStats",
    );
    assert_eq!(stats.expired, 1);
    assert_eq!(stats.active, 0);
    let sarah = stats
        .reviewers
        .iter()
        .find(|r| r.reviewer_id == "supervisor_1")
        .unwrap();
    assert_eq!(sarah.load, 0, "an expired review frees its reviewer's slot");
}

#[tokio::test]
async fn acknowledged_changes_survive_a_sigkill() {
    let server = Server::start().await;
    let mut desk = server.desk();
    let resolved = ask(&mut desk, inquiry("cust_crash", PASSWORD_RESET)).await;
    let review = create_refund_escalation(&mut desk, "cust_crash").await;
    let end = log_sequence(&server).await;
    let root = server.kill().await;

    let server = Server::start_with(root, &[], None).await;
    let t = ticket(&server, &resolved.ticket.unwrap().ticket_id).await;
    assert_eq!(t.status(), TicketStatus::Resolved);
    let t = ticket(&server, &review.ticket.unwrap().ticket_id).await;
    assert_eq!(t.status(), TicketStatus::AwaitingReview);
    assert_eq!(
        escalation(&server, &review.escalation_id).await.state(),
        EscalationState::Pending
    );
    let events = events_through(&server, end).await;
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(
        sequences,
        (1..=end).collect::<Vec<_>>(),
        "the log has no holes"
    );
}

#[tokio::test]
async fn sigterm_ends_open_streams_and_exits_zero() {
    let server = Server::start().await;
    let review = create_refund_escalation(&mut server.desk(), "cust_streams").await;
    let ticket_id = review.ticket.unwrap().ticket_id;

    let mut admin = server.admin();
    let mut events = Watch::open("WatchEvents", async move {
        admin.watch_events(WatchEventsRequest::default()).await
    });
    let mut escalations = server.escalations();
    let mut queue = Watch::open("WatchEscalations", async move {
        escalations
            .watch_escalations(WatchEscalationsRequest::default())
            .await
    });
    let mut desk = server.desk();
    let mut one_ticket = Watch::open("WatchTicket", async move {
        desk.watch_ticket(WatchTicketRequest {
            ticket_id,
            after_sequence: 0,
        })
        .await
    });
    // Each stream is established and has replayed something.
    events.expect_next().await;
    queue.expect_next().await;
    one_ticket.expect_next().await;

    // Draining: each stream hears from the server itself that it is shutting down, with
    // where to resume, while the process is still there to say it.
    server.send_sigterm();
    for (what, end) in [
        ("WatchEvents", drain(&mut events).await),
        ("WatchEscalations", drain(&mut queue).await),
        ("WatchTicket", drain(&mut one_ticket).await),
    ] {
        let status = end.unwrap_or_else(|| panic!("{what} did not end while the server drained"));
        assert_eq!(status.code(), Code::Unavailable, "{what}: {status:?}");
        assert!(
            status.message().contains("shutting down"),
            "{what}: {status:?}"
        );
    }
    let _root = server.terminate().await;
}

/// Reads until the stream ends; the status it ended with, `None` if it did not end with one
/// within the stream timeout.
async fn drain<T: Send + std::fmt::Debug + 'static>(watch: &mut Watch<T>) -> Option<Status> {
    loop {
        match watch.next_result_within(STREAM_TIMEOUT).await {
            Some(Ok(_)) => continue,
            Some(Err(status)) => return Some(status),
            None => return None,
        }
    }
}
