//! A data directory written by an earlier version of the server opens in this one, and the API
//! shows exactly what the earlier version showed: every event of the log (desk-wide and per
//! ticket), every ticket, review, agent, reviewer, key, the configuration and the counters.
//!
//! `tests/fixtures/store-v1/desk.db` is a store of schema 1 (events and rows as JSON), written by
//! the server as it was before the compact format; `expected.txt` beside it is what that
//! server answered on it. Both came from `write_fixture` below, run against that server with
//! `SERVICEDESK_WRITE_STORE_FIXTURE=1`. The fixture holds only closed work and decided reviews,
//! so that no deadline passing between its making and a test run changes what it shows.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use prost_types::{Duration as ProtoDuration, FieldMask};
use servicedesk::proto::v1::*;
use tokio_stream::StreamExt;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1")
}

/// Lines of `Debug` output, one per thing the API shows, in a fixed order.
async fn api_view(server: &Server, head: u64) -> Vec<String> {
    let mut view = vec![format!("head {head}")];
    let mut admin = server.admin();
    let mut desk = server.desk_as(ADMIN_KEY);
    let mut escalations = server.escalations_as(ADMIN_KEY);

    // The desk-wide log, replayed from the start up to the fixture's head.
    let mut events = admin
        .watch_events(WatchEventsRequest::default())
        .await
        .expect("WatchEvents")
        .into_inner();
    loop {
        let event = tokio::time::timeout(STREAM_TIMEOUT, events.next())
            .await
            .expect("the replay goes on")
            .expect("the replay does not end")
            .expect("an event");
        let sequence = event.sequence;
        assert!(sequence <= head, "the replay skipped past {head}");
        view.push(format!("event {event:?}"));
        if sequence == head {
            break;
        }
    }

    let mut tickets = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = ok(
            desk.list_tickets(ListTicketsRequest {
                page_size: 7,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await,
            "ListTickets",
        );
        tickets.extend(page.tickets);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let mut customers = std::collections::BTreeSet::new();
    for ticket in &tickets {
        view.push(format!("listed {ticket:?}"));
        customers.insert(ticket.customer_id.clone());
        let got = ok(
            desk.get_ticket(GetTicketRequest {
                ticket_id: ticket.ticket_id.clone(),
            })
            .await,
            "GetTicket",
        );
        view.push(format!("ticket {got:?}"));
        let mut watch = desk
            .watch_ticket(WatchTicketRequest {
                ticket_id: ticket.ticket_id.clone(),
                after_sequence: 0,
            })
            .await
            .expect("WatchTicket")
            .into_inner();
        // A closed ticket's watch replays its events and ends.
        while let Some(event) = tokio::time::timeout(STREAM_TIMEOUT, watch.next())
            .await
            .expect("the ticket's replay ends")
        {
            view.push(format!("ticket event {:?}", event.expect("a ticket event")));
        }
    }
    for status in [TicketStatus::Resolved, TicketStatus::Rejected] {
        let page = ok(
            desk.list_tickets(ListTicketsRequest {
                status: status as i32,
                page_size: 100,
                ..Default::default()
            })
            .await,
            "ListTickets by status",
        );
        let ids: Vec<_> = page.tickets.iter().map(|t| t.ticket_id.as_str()).collect();
        view.push(format!("{status:?} {ids:?}"));
    }
    for customer_id in customers {
        let history = ok(
            desk.get_customer_history(GetCustomerHistoryRequest {
                customer_id,
                limit: 100,
            })
            .await,
            "GetCustomerHistory",
        );
        view.push(format!("history {history:?}"));
    }
    let reviews = ok(
        escalations
            .list_escalations(ListEscalationsRequest {
                page_size: 100,
                ..Default::default()
            })
            .await,
        "ListEscalations",
    );
    for review in reviews.escalations {
        view.push(format!("review {review:?}"));
    }
    view.push(format!(
        "review stats {:?}",
        ok(
            escalations
                .get_escalation_stats(GetEscalationStatsRequest::default())
                .await,
            "GetEscalationStats"
        )
    ));
    for agent in all_agents(server).await {
        view.push(format!("agent {agent:?}"));
    }
    let reviewers = ok(
        admin
            .list_reviewers(ListReviewersRequest {
                page_size: 100,
                ..Default::default()
            })
            .await,
        "ListReviewers",
    );
    for reviewer in reviewers.reviewers {
        view.push(format!("reviewer {reviewer:?}"));
    }
    let keys = ok(
        admin
            .list_api_keys(ListApiKeysRequest {
                page_size: 100,
                show_revoked: true,
                ..Default::default()
            })
            .await,
        "ListApiKeys",
    );
    for key in keys.keys {
        view.push(format!("key {key:?}"));
    }
    view.push(format!(
        "config {:?}",
        ok(admin.get_config(GetConfigRequest {}).await, "GetConfig")
    ));
    let status = ok(
        admin.get_desk_status(GetDeskStatusRequest::default()).await,
        "GetDeskStatus",
    );
    view.push(format!(
        "status handled {} open {} queued {} escalation rate {} resolution {:?} reviews {:?}",
        status.total_handled,
        status.open_tickets,
        status.queued_tickets,
        status.escalation_rate,
        status.avg_resolution_time,
        status.escalation_stats,
    ));
    view
}

#[tokio::test]
async fn a_store_of_the_first_schema_opens_and_shows_what_it_showed() {
    if std::env::var_os("SERVICEDESK_WRITE_STORE_FIXTURE").is_some() {
        write_fixture().await;
        return;
    }
    let expected = std::fs::read_to_string(fixture_dir().join("expected.txt"))
        .expect("read tests/fixtures/store-v1/expected.txt");
    let expected: Vec<&str> = expected.lines().collect();
    let head: u64 = expected[0]
        .strip_prefix("head ")
        .and_then(|n| n.parse().ok())
        .expect("expected.txt starts with the head");

    let root = new_root();
    let data = root.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(fixture_dir().join("desk.db"), data.join("desk.db")).unwrap();
    let server = Server::start_with(root, &[], Some(FIXTURE_CONFIG)).await;
    let view = api_view(&server, head).await;
    for (i, (got, want)) in view.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "line {} of expected.txt", i + 1);
    }
    assert_eq!(view.len(), expected.len(), "as many lines as expected.txt");

    // And it goes on: a restart of the migrated store shows the same, and new work lands.
    let root = server.terminate().await;
    let server = Server::start_with(root, &[], Some(FIXTURE_CONFIG)).await;
    assert_eq!(api_view(&server, head).await, view);
    let answer = ask(&mut server.desk(), inquiry("after", PASSWORD_RESET)).await;
    assert_eq!(
        answer.ticket.expect("the ticket").status(),
        TicketStatus::Resolved
    );
}

/// Reviews wait 30 days (so none can expire between the fixture's making and a test run, were
/// one pending), events are kept for ever.
const FIXTURE_CONFIG: &str = "
[desk]
escalation_timeout_secs = 2592000
event_retention_secs = 0
";

fn escalation_timeout(seconds: i64, reassignments: u32) -> UpdateConfigRequest {
    UpdateConfigRequest {
        config: Some(DeskConfig {
            escalation_timeout: Some(ProtoDuration { seconds, nanos: 0 }),
            max_review_reassignments: reassignments,
            ..Default::default()
        }),
        update_mask: Some(FieldMask {
            paths: vec![
                "escalation_timeout".into(),
                "max_review_reassignments".into(),
            ],
        }),
    }
}

/// Runs a little of everything against the server under test, stops it, and writes its store
/// and what it shows after a restart into `tests/fixtures/store-v1`.
async fn write_fixture() {
    let server = Server::start_with(new_root(), &[], Some(FIXTURE_CONFIG)).await;
    let mut admin = server.admin();
    let mut desk = server.desk();
    let other_app = server.create_key("other-app", &["customer_service"]).await;
    let mut other_desk = server.desk_as(&other_app);
    let mut escalations = server.escalations_as(ADMIN_KEY);

    ask(&mut desk, inquiry("alice", PASSWORD_RESET)).await;
    ask(
        &mut desk,
        inquiry_with(
            "alice",
            "How do I export my data to CSV?",
            3,
            &[("plan", "pro")],
        ),
    )
    .await;
    let keyed = HandleInquiryRequest {
        idempotency_key: "order-17".into(),
        ..inquiry("bob", "Where can I download my invoice?")
    };
    ask(&mut desk, keyed.clone()).await;
    ask(&mut desk, keyed).await;
    ask(&mut other_desk, inquiry("carol", PASSWORD_RESET)).await;
    ask(
        &mut desk,
        inquiry("dave", "The app keeps crashing when I upload a file"),
    )
    .await;
    ask(&mut desk, inquiry("erin", "Tell me about your company")).await;

    let approved = create_refund_escalation(&mut desk, "frank").await;
    ok(
        escalations
            .approve_escalation(ApproveEscalationRequest {
                escalation_id: approved.escalation_id,
                comments: "refund issued".into(),
                reviewer_id: "supervisor_1".into(),
                ..Default::default()
            })
            .await,
        "ApproveEscalation",
    );
    let rejected = ask(&mut desk, vip_complaint("grace")).await;
    ok(
        escalations
            .reject_escalation(RejectEscalationRequest {
                escalation_id: rejected.escalation_id,
                reason: "handled by phone".into(),
                reviewer_id: "manager_1".into(),
            })
            .await,
        "RejectEscalation",
    );

    // A review that expires: its ticket fails.
    ok(
        admin.update_config(escalation_timeout(1, 0)).await,
        "UpdateConfig",
    );
    let expiring = create_refund_escalation(&mut desk, "heidi").await;
    poll_until(Duration::from_secs(30), "the review expires", || {
        let mut escalations = server.escalations();
        let id = expiring.escalation_id.clone();
        async move {
            let review = escalations
                .get_escalation(GetEscalationRequest { escalation_id: id })
                .await
                .ok()?
                .into_inner();
            (review.state() == EscalationState::Expired).then_some(())
        }
    })
    .await;
    ok(
        admin.update_config(escalation_timeout(2_592_000, 1)).await,
        "UpdateConfig",
    );

    let extra = ok(
        admin
            .create_agent(CreateAgentRequest {
                name: "Extra_L2".into(),
                tier: "L2".into(),
                specialties: vec!["billing".into()],
                capacity: 2,
                ..Default::default()
            })
            .await,
        "CreateAgent",
    );
    ok(
        admin
            .update_agent(UpdateAgentRequest {
                agent_id: extra.agent_id.clone(),
                availability: Some(AgentAvailability::Paused as i32),
                ..Default::default()
            })
            .await,
        "UpdateAgent",
    );
    let gone = ok(
        admin
            .create_agent(CreateAgentRequest {
                name: "Gone_L1".into(),
                tier: "L1".into(),
                capacity: 1,
                ..Default::default()
            })
            .await,
        "CreateAgent",
    );
    ok(
        admin
            .delete_agent(DeleteAgentRequest {
                agent_id: gone.agent_id,
            })
            .await,
        "DeleteAgent",
    );
    ok(
        admin
            .create_agent(CreateAgentRequest {
                name: "Remote_Expert".into(),
                tier: "Expert".into(),
                capacity: 3,
                kind: AgentKind::Remote as i32,
                ..Default::default()
            })
            .await,
        "CreateAgent remote",
    );
    ok(
        admin
            .create_reviewer(CreateReviewerRequest {
                reviewer_id: "night_shift".into(),
                name: "Night Shift".into(),
                specialties: vec!["technical".into()],
                max_concurrent: 2,
            })
            .await,
        "CreateReviewer",
    );
    ok(
        admin
            .update_reviewer(UpdateReviewerRequest {
                reviewer_id: "night_shift".into(),
                max_concurrent: Some(4),
                ..Default::default()
            })
            .await,
        "UpdateReviewer",
    );
    ok(
        admin
            .create_reviewer(CreateReviewerRequest {
                reviewer_id: "temp".into(),
                name: "Temp".into(),
                max_concurrent: 1,
                ..Default::default()
            })
            .await,
        "CreateReviewer",
    );
    ok(
        admin
            .delete_reviewer(DeleteReviewerRequest {
                reviewer_id: "temp".into(),
            })
            .await,
        "DeleteReviewer",
    );
    let revoked = ok(
        admin
            .create_api_key(CreateApiKeyRequest {
                client_id: "old-app".into(),
                client_name: "Old App".into(),
                permissions: vec!["customer_service".into()],
            })
            .await,
        "CreateApiKey",
    );
    ok(
        admin
            .revoke_api_key(RevokeApiKeyRequest {
                key_id: revoked.key.expect("the key").key_id,
            })
            .await,
        "RevokeApiKey",
    );

    let head = ok(
        admin.list_reviewers(ListReviewersRequest::default()).await,
        "ListReviewers",
    )
    .sequence;
    let root = server.terminate().await;
    let data = root.path().join("data");
    assert!(
        !data.join("desk.db-wal").exists(),
        "a clean stop leaves the whole store in desk.db"
    );
    let out = fixture_dir();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::copy(data.join("desk.db"), out.join("desk.db")).unwrap();
    let server = Server::start_with(root, &[], Some(FIXTURE_CONFIG)).await;
    let view = api_view(&server, head).await;
    std::fs::write(out.join("expected.txt"), view.join("\n") + "\n").unwrap();
}
