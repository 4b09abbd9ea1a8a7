//! The desk's timed and administrative paths over gRPC: the queue timeout, review
//! reassignment and expiry, explicit topics, remote agents that are not attached, reviewers
//! deleted while they hold work, and which client may read which tickets.

mod common;

use std::time::Duration;

use common::*;
use servicedesk::proto::v1::{
    AgentAvailability, AgentKind, CreateAgentRequest, DeleteReviewerRequest, EscalationEventType,
    EscalationState, GetCustomerHistoryRequest, GetEscalationRequest, GetTicketRequest,
    ListTicketsRequest, TicketStatus, UpdateAgentRequest, WatchEscalationsRequest,
    WatchTicketRequest,
};
use tonic::Code;

async fn pause_every_agent(server: &Server) {
    set_every_agent(server, AgentAvailability::Paused).await;
}

#[tokio::test]
async fn a_ticket_nobody_can_take_goes_to_human_review_at_the_queue_timeout() {
    let server = Server::start_with_config("[desk]\nqueue_timeout_secs = 1\n").await;
    pause_every_agent(&server).await;
    let started = std::time::Instant::now();
    let answer = ask(&mut server.desk(), inquiry("cust_queue", PASSWORD_RESET)).await;
    let waited = started.elapsed();
    let ticket = answer.ticket.unwrap();
    assert_eq!(ticket.status(), TicketStatus::AwaitingReview);
    assert!(
        waited >= Duration::from_millis(900),
        "the ticket waited the 1 s queue timeout, not {waited:?}"
    );
    assert!(ticket.resolution_path.is_empty(), "no agent ever held it");
    let escalation = ok(
        server
            .escalations()
            .get_escalation(GetEscalationRequest {
                escalation_id: answer.escalation_id.clone(),
            })
            .await,
        "GetEscalation",
    );
    assert_eq!(escalation.requested_by, "desk");
    assert!(
        escalation.description.contains("queue timeout"),
        "{}",
        escalation.description
    );
    assert_eq!(escalation.state(), EscalationState::Pending);
}

#[tokio::test]
async fn a_review_nobody_decides_moves_to_another_reviewer_once_then_expires() {
    let config = "[desk]\nescalation_timeout_secs = 1\nmax_review_reassignments = 1\n";
    let server = Server::start_with_config(config).await;
    let mut escalations = server.escalations();
    let mut watch = Watch::open("WatchEscalations", async move {
        escalations
            .watch_escalations(WatchEscalationsRequest {
                reviewer_id: String::new(),
                after_sequence: 0,
            })
            .await
    });
    let review = create_refund_escalation(&mut server.desk(), "cust_slow_review").await;
    let id = review.escalation_id.clone();
    let events = watch
        .until(|e| {
            e.r#type() == EscalationEventType::Expired
                && e.escalation.as_ref().unwrap().escalation_id == id
        })
        .await;
    let story: Vec<(EscalationEventType, String, String)> = events
        .iter()
        .filter(|e| e.escalation.as_ref().unwrap().escalation_id == id)
        .map(|e| {
            (
                e.r#type(),
                e.escalation.as_ref().unwrap().assigned_reviewer_id.clone(),
                e.previous_reviewer_id.clone(),
            )
        })
        .collect();
    assert_eq!(
        story,
        [
            (EscalationEventType::Created, String::new(), String::new()),
            (
                EscalationEventType::Assigned,
                "supervisor_1".into(),
                String::new()
            ),
            // Mike Chen takes technical topics only: the generalist is next for billing.
            (
                EscalationEventType::Reassigned,
                "manager_1".into(),
                "supervisor_1".into()
            ),
            (
                EscalationEventType::Expired,
                "manager_1".into(),
                String::new()
            ),
        ]
    );
    let expired = events.last().unwrap().escalation.clone().unwrap();
    assert_eq!(expired.reassign_count, 1);
    let ticket_id = review.ticket.unwrap().ticket_id;
    let ticket = ok(
        server
            .desk()
            .get_ticket(GetTicketRequest {
                ticket_id: ticket_id.clone(),
            })
            .await,
        "GetTicket",
    );
    assert_eq!(ticket.status(), TicketStatus::Failed);
    assert!(ticket.resolution.contains("sorry"), "{}", ticket.resolution);
}

#[tokio::test]
async fn an_explicit_topic_wins_over_classification() {
    let server = Server::start().await;
    // Classified, this is an account question for the account specialist of the first tier.
    let classified = ask(&mut server.desk(), inquiry("cust_topic", PASSWORD_RESET)).await;
    assert_eq!(classified.ticket.as_ref().unwrap().topic, "account");
    let mut request = inquiry("cust_topic", PASSWORD_RESET);
    request.topic = "Billing".into();
    let explicit = ask(&mut server.desk(), request).await;
    let ticket = explicit.ticket.unwrap();
    assert_eq!(ticket.topic, "billing", "the caller's topic, lowercased");
    assert_eq!(
        ticket.resolution_path[0].agent_name, "L1_Agent_1",
        "routed to the billing specialist"
    );
}

#[tokio::test]
async fn a_remote_agent_without_a_process_is_never_available() {
    let server = Server::start().await;
    let mut admin = server.admin();
    let agent = ok(
        admin
            .create_agent(CreateAgentRequest {
                name: "Remote_1".into(),
                tier: "L1".into(),
                specialties: vec!["Billing".into()],
                capacity: 2,
                kind: AgentKind::Remote as i32,
            })
            .await,
        "CreateAgent(remote)",
    );
    assert_eq!(agent.availability(), AgentAvailability::Offline);
    assert_eq!(agent.specialties, ["billing"], "stored lowercase");
    let set = |availability: AgentAvailability| UpdateAgentRequest {
        agent_id: agent.agent_id.clone(),
        availability: Some(availability as i32),
        ..Default::default()
    };
    // Resuming it is accepted, but without an attached process it stays OFFLINE.
    let resumed = ok(
        admin.update_agent(set(AgentAvailability::Available)).await,
        "UpdateAgent(available)",
    );
    assert_eq!(resumed.availability(), AgentAvailability::Offline);
    let paused = ok(
        admin.update_agent(set(AgentAvailability::Paused)).await,
        "UpdateAgent(paused)",
    );
    assert_eq!(paused.availability(), AgentAvailability::Paused);
    let resumed = ok(
        admin.update_agent(set(AgentAvailability::Available)).await,
        "UpdateAgent(available) after a pause",
    );
    assert_eq!(resumed.availability(), AgentAvailability::Offline);
    expect_bad_field(
        admin.update_agent(set(AgentAvailability::Offline)).await,
        "availability",
        "OFFLINE is the desk's to set",
    );
    // Nothing is ever routed to it: billing still goes to the built-in specialist.
    let answer = ask(&mut server.desk(), inquiry("cust_remote", DOUBLE_CHARGE)).await;
    assert_eq!(answer.agent, "L1_Agent_1");
}

#[tokio::test]
async fn a_deleted_reviewers_work_is_handed_on_or_visibly_unassigned() {
    let server = Server::start().await;
    let mut admin = server.admin();
    // Lisa would take anything Sarah drops; without her, nobody else takes billing.
    ok(
        admin
            .delete_reviewer(DeleteReviewerRequest {
                reviewer_id: "manager_1".into(),
            })
            .await,
        "DeleteReviewer(manager_1)",
    );
    let review = create_refund_escalation(&mut server.desk(), "cust_orphan").await;
    let id = review.escalation_id.clone();
    let mut escalations = server.escalations();
    let mut watch = Watch::open("WatchEscalations(supervisor_1)", async move {
        escalations
            .watch_escalations(WatchEscalationsRequest {
                reviewer_id: "supervisor_1".into(),
                after_sequence: 0,
            })
            .await
    });
    watch
        .until(|e| e.r#type() == EscalationEventType::Assigned)
        .await;
    ok(
        admin
            .delete_reviewer(DeleteReviewerRequest {
                reviewer_id: "supervisor_1".into(),
            })
            .await,
        "DeleteReviewer(supervisor_1)",
    );
    let moved = watch.expect_next().await;
    assert_eq!(moved.r#type(), EscalationEventType::Reassigned);
    assert_eq!(moved.previous_reviewer_id, "supervisor_1");
    let stored = ok(
        server
            .escalations()
            .get_escalation(GetEscalationRequest {
                escalation_id: id.clone(),
            })
            .await,
        "GetEscalation",
    );
    assert_eq!(stored.state(), EscalationState::Pending);
    assert_eq!(
        stored.assigned_reviewer_id, "",
        "nobody left takes billing: it waits unassigned, and says so"
    );
}

#[tokio::test]
async fn a_client_reads_only_the_tickets_it_created_and_admin_reads_all() {
    let server = Server::start().await;
    let key_a = server.create_key("app_a", &["customer_service"]).await;
    let key_b = server.create_key("app_b", &["customer_service"]).await;
    let mine = ask(
        &mut server.desk_as(&key_a),
        inquiry("cust_shared", PASSWORD_RESET),
    )
    .await
    .ticket
    .unwrap();
    ask(
        &mut server.desk_as(&key_b),
        inquiry("cust_shared", PASSWORD_RESET),
    )
    .await;

    let get = |key: &str| {
        let mut desk = server.desk_as(key);
        let id = mine.ticket_id.clone();
        async move { desk.get_ticket(GetTicketRequest { ticket_id: id }).await }
    };
    ok(get(&key_a).await, "GetTicket by its creator");
    ok(get(ADMIN_KEY).await, "GetTicket by an admin key");
    let hidden = expect_code(
        get(&key_b).await,
        Code::NotFound,
        "GetTicket of another client's ticket",
    );
    assert!(hidden.message().contains("not found"));

    let watched = Watch::open("WatchTicket by another client", {
        let mut desk = server.desk_as(&key_b);
        let id = mine.ticket_id.clone();
        async move {
            desk.watch_ticket(WatchTicketRequest {
                ticket_id: id,
                after_sequence: 0,
            })
            .await
        }
    });
    let mut watched = watched;
    match watched.next_result_within(STREAM_TIMEOUT).await {
        Some(Err(status)) => assert_eq!(status.code(), Code::NotFound),
        other => {
            panic!("WatchTicket of another client's ticket: expected NOT_FOUND, got {other:?}")
        }
    }

    let listed = |key: &str| {
        let mut desk = server.desk_as(key);
        async move {
            ok(
                desk.list_tickets(ListTicketsRequest {
                    customer_id: "cust_shared".into(),
                    ..Default::default()
                })
                .await,
                "ListTickets",
            )
            .tickets
            .len()
        }
    };
    assert_eq!(listed(&key_a).await, 1);
    assert_eq!(listed(&key_b).await, 1);
    assert_eq!(listed(ADMIN_KEY).await, 2);

    let history = |key: &str| {
        let mut desk = server.desk_as(key);
        async move {
            ok(
                desk.get_customer_history(GetCustomerHistoryRequest {
                    customer_id: "cust_shared".into(),
                    limit: 0,
                })
                .await,
                "GetCustomerHistory",
            )
        }
    };
    let a = history(&key_a).await;
    assert_eq!((a.entries.len(), a.total_tickets), (1, 1));
    assert_eq!(a.entries[0].ticket_id, mine.ticket_id);
    assert_eq!(history(ADMIN_KEY).await.total_tickets, 2);
}
