//! Server streams: list-then-watch misses nothing and repeats nothing under concurrent writes;
//! WatchTicket replays and then ends; reviewers' and operators' live feeds.

mod common;

use std::collections::{HashMap, HashSet};

use common::*;
use servicedesk::proto::v1::desk_event::Event;
use servicedesk::proto::v1::{
    ApproveEscalationRequest, CreateAgentRequest, DeskEvent, DeskEventKind, EscalationEventType,
    ListEscalationsRequest, ListTicketsRequest, TicketEventType, TicketStatus,
    WatchEscalationsRequest, WatchEventsRequest, WatchTicketRequest,
};
use tonic::Code;

fn watch_events(server: &Server, after_sequence: u64, kinds: &[DeskEventKind]) -> Watch<DeskEvent> {
    let mut admin = server.admin();
    let request = WatchEventsRequest {
        after_sequence,
        kinds: kinds.iter().map(|k| *k as i32).collect(),
    };
    Watch::open(
        "WatchEvents",
        async move { admin.watch_events(request).await },
    )
}

async fn list_sequence(server: &Server) -> u64 {
    ok(
        server
            .desk()
            .list_tickets(ListTicketsRequest::default())
            .await,
        "ListTickets",
    )
    .sequence
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_then_watch_sees_every_event_exactly_once_under_concurrent_writes() {
    let server = Server::start().await;
    // Some history before the list, which the watch must not repeat.
    ask(&mut server.desk(), inquiry("cust_before", PASSWORD_RESET)).await;
    let start = list_sequence(&server).await;
    assert!(start > 0);

    let mut watch = watch_events(&server, start, &[]);
    let mut writers = Vec::new();
    for writer in 0..4 {
        let mut desk = server.desk();
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..25 {
                let response = ask(
                    &mut desk,
                    inquiry(&format!("cust_w{writer}_{i}"), PASSWORD_RESET),
                )
                .await;
                ids.push(response.ticket.unwrap().ticket_id);
            }
            ids
        }));
    }
    let mut created_ids = HashSet::new();
    for writer in writers {
        created_ids.extend(writer.await.unwrap());
    }
    assert_eq!(created_ids.len(), 100);
    let end = list_sequence(&server).await;
    assert!(end > start);

    let events = watch.until(|e| e.sequence >= end).await;
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    let want: Vec<u64> = (start + 1..=end).collect();
    if sequences != want {
        let mut seen = HashSet::new();
        let duplicates: Vec<_> = sequences.iter().filter(|s| !seen.insert(**s)).collect();
        let missing: Vec<_> = want.iter().filter(|s| !seen.contains(s)).collect();
        panic!(
            "expected every sequence {}..={} once and in order; got {} events, duplicates {:?}, missing {:?}, first out of order at {:?}",
            start + 1,
            end,
            sequences.len(),
            duplicates,
            missing,
            sequences.windows(2).position(|w| w[1] != w[0] + 1)
        );
    }

    let mut created_seen = HashMap::new();
    for event in &events {
        match &event.event {
            Some(Event::Ticket(ticket_event)) => {
                assert_eq!(
                    ticket_event.sequence, event.sequence,
                    "inner and outer sequence agree"
                );
                assert!(
                    created_ids.contains(&ticket_event.ticket_id),
                    "event for a ticket nobody created now: {:?}",
                    ticket_event.ticket_id
                );
                if ticket_event.r#type() == TicketEventType::Created {
                    *created_seen
                        .entry(ticket_event.ticket_id.clone())
                        .or_insert(0) += 1;
                }
            }
            other => panic!("unexpected event kind while only tickets were written: {other:?}"),
        }
    }
    assert_eq!(
        created_seen.len(),
        100,
        "a CREATED event for each of the 100 tickets"
    );
    assert!(
        created_seen.values().all(|n| *n == 1),
        "each CREATED exactly once"
    );

    // Nothing else arrives afterwards: the next event is the one we cause now.
    let next = ask(&mut server.desk(), inquiry("cust_after", PASSWORD_RESET)).await;
    let event = watch.expect_next().await;
    assert_eq!(event.sequence, end + 1);
    match event.event {
        Some(Event::Ticket(t)) => assert_eq!(t.ticket_id, next.ticket.unwrap().ticket_id),
        other => panic!("expected a ticket event, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_ticket_replays_a_resolved_ticket_and_ends() {
    let server = Server::start().await;
    let response = ask(&mut server.desk(), inquiry("cust_replay", PASSWORD_RESET)).await;
    let ticket_id = response.ticket.unwrap().ticket_id;

    let mut desk = server.desk();
    let request = WatchTicketRequest {
        ticket_id: ticket_id.clone(),
        after_sequence: 0,
    };
    let mut watch = Watch::open(
        "WatchTicket",
        async move { desk.watch_ticket(request).await },
    );
    let events = watch.until_end().await;
    let types: Vec<TicketEventType> = events.iter().map(|e| e.r#type()).collect();
    assert_eq!(
        types,
        vec![
            TicketEventType::Created,
            TicketEventType::Classified,
            TicketEventType::Assigned,
            TicketEventType::AgentReplied,
            TicketEventType::Resolved,
        ]
    );
    assert!(events.iter().all(|e| e.ticket_id == ticket_id));
    assert!(
        events.windows(2).all(|w| w[0].sequence < w[1].sequence),
        "increasing sequences"
    );
    let last = events
        .last()
        .unwrap()
        .ticket
        .as_ref()
        .expect("the ticket after the event");
    assert_eq!(last.status(), TicketStatus::Resolved);
    assert_eq!(events[1].ticket.as_ref().unwrap().topic, "account");

    // Resuming after the third event replays only the last two.
    let mut desk = server.desk();
    let request = WatchTicketRequest {
        ticket_id: ticket_id.clone(),
        after_sequence: events[2].sequence,
    };
    let mut resumed = Watch::open("WatchTicket resumed", async move {
        desk.watch_ticket(request).await
    });
    let rest: Vec<u64> = resumed
        .until_end()
        .await
        .iter()
        .map(|e| e.sequence)
        .collect();
    assert_eq!(rest, vec![events[3].sequence, events[4].sequence]);
}

#[tokio::test]
async fn watch_ticket_follows_a_review_live_until_the_decision() {
    let server = Server::start().await;
    let response = create_refund_escalation(&mut server.desk(), "cust_live").await;
    let ticket_id = response.ticket.unwrap().ticket_id;

    let mut desk = server.desk();
    let request = WatchTicketRequest {
        ticket_id: ticket_id.clone(),
        after_sequence: 0,
    };
    let mut watch = Watch::open(
        "WatchTicket",
        async move { desk.watch_ticket(request).await },
    );
    let replayed = watch
        .until(|e| {
            e.ticket
                .as_ref()
                .is_some_and(|t| t.status() == TicketStatus::AwaitingReview)
        })
        .await;
    assert_eq!(replayed[0].r#type(), TicketEventType::Created);

    ok(
        server
            .escalations_as(ADMIN_KEY)
            .approve_escalation(ApproveEscalationRequest {
                escalation_id: response.escalation_id.clone(),
                response: "Refund issued.".into(),
                reviewer_id: "supervisor_1".into(),
                ..Default::default()
            })
            .await,
        "ApproveEscalation",
    );
    let live = watch.until_end().await;
    assert!(
        live.iter().any(|e| e.r#type() == TicketEventType::Approved),
        "the approval arrives live"
    );
    let types: Vec<_> = replayed.iter().chain(&live).map(|e| e.r#type()).collect();
    let position = |t: TicketEventType| types.iter().position(|x| *x == t);
    assert!(
        position(TicketEventType::ReviewRequested).is_some(),
        "events {types:?}"
    );
    assert!(
        position(TicketEventType::ReviewRequested) < position(TicketEventType::Approved),
        "review requested, then approved: {types:?}"
    );
    assert_eq!(
        types.last(),
        Some(&TicketEventType::Resolved),
        "ends after the final event: {types:?}"
    );
    let last = live.last().unwrap().ticket.as_ref().unwrap();
    assert_eq!(last.resolution, "Refund issued.");
    let all: Vec<u64> = replayed.iter().chain(&live).map(|e| e.sequence).collect();
    assert!(
        all.windows(2).all(|w| w[0] < w[1]),
        "increasing sequences {all:?}"
    );
}

#[tokio::test]
async fn watch_ticket_of_an_unknown_ticket_is_not_found() {
    let server = Server::start().await;
    let mut desk = server.desk();
    let request = WatchTicketRequest {
        ticket_id: "tkt_doesnotexist0000000".into(),
        after_sequence: 0,
    };
    let mut watch = Watch::open("WatchTicket(unknown)", async move {
        desk.watch_ticket(request).await
    });
    match watch.next_result_within(STREAM_TIMEOUT).await {
        Some(Err(status)) => assert_eq!(status.code(), Code::NotFound, "{}", status.message()),
        other => panic!("expected NOT_FOUND, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_escalations_for_a_reviewer_sees_a_new_refund() {
    let server = Server::start().await;
    let sequence = ok(
        server
            .escalations()
            .list_escalations(ListEscalationsRequest {
                reviewer_id: "supervisor_1".into(),
                ..Default::default()
            })
            .await,
        "ListEscalations",
    )
    .sequence;

    let mut escalations = server.escalations();
    let request = WatchEscalationsRequest {
        reviewer_id: "supervisor_1".into(),
        after_sequence: sequence,
    };
    let mut watch = Watch::open("WatchEscalations supervisor_1", async move {
        escalations.watch_escalations(request).await
    });

    // Another reviewer's review first (the VIP's goes to manager_1): not on this feed.
    let others = ask(&mut server.desk(), vip_complaint("cust_other")).await;
    assert!(!others.escalation_id.is_empty());
    let response = create_refund_escalation(&mut server.desk(), "cust_feed").await;
    let events = watch
        .until(|e| {
            e.escalation.as_ref().is_some_and(|esc| {
                esc.escalation_id == response.escalation_id
                    && esc.assigned_reviewer_id == "supervisor_1"
            }) && matches!(
                e.r#type(),
                EscalationEventType::Created | EscalationEventType::Assigned
            )
        })
        .await;
    for event in &events {
        assert!(event.sequence > sequence);
        let escalation = event.escalation.as_ref().unwrap();
        assert_eq!(
            escalation.escalation_id, response.escalation_id,
            "only supervisor_1's escalations"
        );
    }

    // The decision reaches the same feed.
    ok(
        server
            .escalations_as(ADMIN_KEY)
            .approve_escalation(ApproveEscalationRequest {
                escalation_id: response.escalation_id.clone(),
                reviewer_id: "supervisor_1".into(),
                ..Default::default()
            })
            .await,
        "ApproveEscalation",
    );
    let decided = watch
        .until(|e| e.r#type() == EscalationEventType::Approved)
        .await;
    assert!(
        decided
            .iter()
            .all(|e| e.escalation.as_ref().unwrap().escalation_id == response.escalation_id),
        "only supervisor_1's escalations: {decided:?}"
    );
}

#[tokio::test]
async fn watch_events_filters_by_kind() {
    let server = Server::start().await;
    let start = list_sequence(&server).await;
    let mut agents_only = watch_events(&server, start, &[DeskEventKind::Agent]);

    ask(&mut server.desk(), inquiry("cust_noise", PASSWORD_RESET)).await;
    let agent = ok(
        server
            .admin()
            .create_agent(CreateAgentRequest {
                name: "Watched_Agent".into(),
                tier: "L2".into(),
                ..Default::default()
            })
            .await,
        "CreateAgent",
    );
    let event = agents_only.expect_next().await;
    assert!(event.sequence > start);
    match event.event {
        Some(Event::Agent(a)) => {
            assert_eq!(a.agent_id, agent.agent_id);
            assert_eq!(a.name, "Watched_Agent");
        }
        other => panic!("expected only agent events, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_events_from_zero_replays_the_whole_log_in_order() {
    let server = Server::start().await;
    ask(&mut server.desk(), inquiry("cust_log", PASSWORD_RESET)).await;
    create_refund_escalation(&mut server.desk(), "cust_log").await;
    let end = list_sequence(&server).await;

    let mut watch = watch_events(&server, 0, &[]);
    let events = watch.until(|e| e.sequence >= end).await;
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(
        sequences,
        (1..=end).collect::<Vec<_>>(),
        "no gaps, no repeats"
    );
    assert!(events.iter().all(|e| e.time.is_some() && e.event.is_some()));
    assert!(
        events.iter().any(|e| matches!(&e.event, Some(Event::Escalation(x)) if x.r#type() == EscalationEventType::Created)),
        "the escalation's CREATED is in the log"
    );
}
