//! The customers' side end to end: the Python original's scenarios, every DeskService RPC,
//! idempotency, a desk from a config file and concurrent inquiries, against the real binary.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use servicedesk::proto::v1::{
    AgentAvailability, AgentKind, ApproveEscalationRequest, EscalationPriority, EscalationState,
    GetCustomerHistoryRequest, GetDeskStatusRequest, GetEscalationRequest, GetTicketRequest,
    HandleInquiryRequest, ListTicketsRequest, PathOutcome, Ticket, TicketStatus,
};
use tonic::Code;

fn get_ticket(id: &str) -> GetTicketRequest {
    GetTicketRequest {
        ticket_id: id.into(),
    }
}

fn get_escalation(id: &str) -> GetEscalationRequest {
    GetEscalationRequest {
        escalation_id: id.into(),
    }
}

/// The same ticket, timestamps compared only for presence (a store may keep less precision).
fn assert_same_ticket(got: &Ticket, want: &Ticket) {
    let strip = |t: &Ticket| {
        let mut t = t.clone();
        t.create_time = t.create_time.map(|_| Default::default());
        t.update_time = t.update_time.map(|_| Default::default());
        t.resolve_time = t.resolve_time.map(|_| Default::default());
        for step in &mut t.resolution_path {
            step.time = step.time.map(|_| Default::default());
        }
        t
    };
    assert_eq!(strip(got), strip(want));
}

#[tokio::test]
async fn password_reset_is_resolved_by_the_first_tier() {
    let server = Server::start().await;
    let mut desk = server.desk();

    let response = ask(&mut desk, inquiry("cust_123", PASSWORD_RESET)).await;
    let ticket = response
        .ticket
        .clone()
        .expect("response carries the ticket");
    assert_eq!(ticket.status(), TicketStatus::Resolved, "{response:#?}");
    assert_eq!(response.agent, "L1_Agent_3");
    assert_eq!(response.tier, "L1");
    assert!(!response.escalated);
    assert!(response.escalation_id.is_empty());
    assert!(!response.replayed);
    assert!(
        !response.response.trim().is_empty(),
        "the customer gets an answer"
    );
    assert!(response.resolution_time.is_some());

    assert!(
        ticket.ticket_id.starts_with("tkt_"),
        "ticket id {:?}",
        ticket.ticket_id
    );
    assert_eq!(ticket.customer_id, "cust_123");
    assert_eq!(ticket.inquiry, PASSWORD_RESET);
    assert_eq!(ticket.topic, "account");
    assert_eq!(ticket.priority, 5, "priority 0 means 5");
    assert_eq!(ticket.escalation_count, 0);
    assert_eq!(ticket.resolution, response.response);
    assert!(ticket.create_time.is_some() && ticket.resolve_time.is_some());
    let last = ticket.resolution_path.last().expect("a resolution path");
    assert_eq!(last.agent_name, "L1_Agent_3");
    assert_eq!(last.tier, "L1");
    assert_eq!(last.outcome(), PathOutcome::Resolved);

    let fetched = ok(
        desk.get_ticket(get_ticket(&ticket.ticket_id)).await,
        "GetTicket",
    );
    assert_same_ticket(&fetched, &ticket);
}

#[tokio::test]
async fn double_charge_refund_goes_to_sarah_johnson_and_approval_resolves_it() {
    let server = Server::start().await;
    let mut desk = server.desk();
    let mut escalations = server.escalations_as(ADMIN_KEY);

    let response = ask(&mut desk, refund_request("cust_456")).await;
    let ticket = response.ticket.clone().unwrap();
    assert_eq!(
        ticket.status(),
        TicketStatus::AwaitingReview,
        "{response:#?}"
    );
    assert!(response.escalated);
    assert!(!response.escalation_id.is_empty());
    assert!(
        !response.response.trim().is_empty(),
        "the customer gets an interim answer"
    );
    assert_eq!(ticket.escalation_id, response.escalation_id);
    assert_eq!(ticket.topic, "billing");
    assert_eq!(ticket.priority, 8);

    let escalation = ok(
        escalations
            .get_escalation(get_escalation(&response.escalation_id))
            .await,
        "GetEscalation",
    );
    assert!(escalation.escalation_id.starts_with("esc_"));
    assert_eq!(escalation.ticket_id, ticket.ticket_id);
    assert_eq!(escalation.customer_id, "cust_456");
    assert_eq!(escalation.priority(), EscalationPriority::High);
    assert_eq!(escalation.state(), EscalationState::Pending);
    assert_eq!(escalation.assigned_reviewer_id, "supervisor_1");
    assert!(escalation.expire_time.is_some());

    let answer = "We refunded the duplicate charge; it shows on your statement within 3 days.";
    let approved = ok(
        escalations
            .approve_escalation(ApproveEscalationRequest {
                escalation_id: response.escalation_id.clone(),
                comments: "duplicate charge confirmed".into(),
                response: answer.into(),
                reviewer_id: "supervisor_1".into(),
            })
            .await,
        "ApproveEscalation as supervisor_1 with the admin key",
    );
    assert_eq!(approved.state(), EscalationState::Approved);
    assert!(approved.decide_time.is_some());
    assert!(
        approved.decided_by == "supervisor_1" || approved.decided_by == "admin-client",
        "decided_by {:?}",
        approved.decided_by
    );

    let ticket = ok(
        desk.get_ticket(get_ticket(&ticket.ticket_id)).await,
        "GetTicket",
    );
    assert_eq!(ticket.status(), TicketStatus::Resolved);
    assert_eq!(ticket.resolution, answer);
    assert!(ticket.resolve_time.is_some());
}

#[tokio::test]
async fn reviewer_key_approves_own_escalation_with_the_agents_draft() {
    let server = Server::start().await;
    let mut desk = server.desk();
    let response = create_refund_escalation(&mut desk, "cust_draft").await;

    let sarah = server.create_key("supervisor_1", &["escalation"]).await;
    let mut escalations = server.escalations_as(&sarah);
    let pending = ok(
        escalations
            .get_escalation(get_escalation(&response.escalation_id))
            .await,
        "GetEscalation",
    );
    assert!(
        !pending.proposed_response.is_empty(),
        "the agent's draft is kept"
    );

    let approved = ok(
        escalations
            .approve_escalation(ApproveEscalationRequest {
                escalation_id: response.escalation_id.clone(),
                ..Default::default()
            })
            .await,
        "ApproveEscalation with supervisor_1's own key",
    );
    assert_eq!(approved.state(), EscalationState::Approved);
    assert_eq!(approved.decided_by, "supervisor_1");

    let ticket = ok(
        desk.get_ticket(get_ticket(&response.ticket.unwrap().ticket_id))
            .await,
        "GetTicket",
    );
    assert_eq!(ticket.status(), TicketStatus::Resolved);
    assert_eq!(
        ticket.resolution, pending.proposed_response,
        "approving without a response sends the agent's draft"
    );
}

#[tokio::test]
async fn vip_demanding_a_manager_gets_an_urgent_review() {
    let server = Server::start().await;
    let mut desk = server.desk();

    let response = ask(&mut desk, vip_complaint("cust_vip")).await;
    let ticket = response.ticket.clone().unwrap();
    assert_eq!(
        ticket.status(),
        TicketStatus::AwaitingReview,
        "{response:#?}"
    );
    assert!(response.escalated);
    assert_eq!(ticket.context.get("vip").map(String::as_str), Some("true"));
    assert_eq!(ticket.priority, 10);

    let escalation = ok(
        server
            .escalations()
            .get_escalation(get_escalation(&response.escalation_id))
            .await,
        "GetEscalation",
    );
    assert_eq!(escalation.priority(), EscalationPriority::Urgent);
    assert_eq!(escalation.state(), EscalationState::Pending);
    // No specialist takes the topic: Lisa Rodriguez, who takes any, reviews it.
    assert_eq!(escalation.assigned_reviewer_id, "manager_1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_mixed_inquiries_in_parallel_all_get_answers() {
    let server = Server::start().await;
    let requests = vec![
        inquiry("cust_p1", PASSWORD_RESET),
        inquiry(
            "cust_p2",
            "The app crashes with an error every time I upload a photo",
        ),
        inquiry("cust_p3", "How do I export my invoice as a PDF?"),
        refund_request("cust_p4"),
        inquiry("cust_p5", "What are your opening hours on public holidays?"),
    ];
    // What each must come to, whatever the order they arrive in: the knowledge base decides
    // how far each climbs, policy sends the refund to a person.
    let expected = [
        (TicketStatus::Resolved, "L1"),
        (TicketStatus::Resolved, "Expert"),
        (TicketStatus::Resolved, "L2"),
        (TicketStatus::AwaitingReview, "L1"),
        (TicketStatus::Resolved, "Expert"),
    ];
    let mut tasks = Vec::new();
    for request in requests {
        let mut desk = server.desk();
        tasks.push(tokio::spawn(async move { ask(&mut desk, request).await }));
    }
    let mut resolved = 0;
    for (task, (status, tier)) in tasks.into_iter().zip(expected) {
        let response = task.await.unwrap();
        assert!(
            !response.response.trim().is_empty(),
            "an answer for {response:#?}"
        );
        let ticket = response.ticket.as_ref().unwrap();
        assert_eq!(
            (ticket.status(), response.tier.as_str()),
            (status, tier),
            "{}: {:?}",
            ticket.customer_id,
            ticket.resolution_path
        );
        if status == TicketStatus::Resolved {
            resolved += 1;
        }
    }

    let status = ok(
        server
            .admin()
            .get_desk_status(GetDeskStatusRequest {})
            .await,
        "GetDeskStatus",
    );
    assert_eq!(
        status.total_handled, resolved,
        "every resolved ticket, and only those, is handled"
    );
    let tiers: Vec<(&str, usize)> = status
        .tiers
        .iter()
        .map(|t| (t.name.as_str(), t.agents.len()))
        .collect();
    assert_eq!(tiers, vec![("L1", 3), ("L2", 2), ("Expert", 1)]);
    for agent in status.tiers.iter().flat_map(|t| &t.agents) {
        assert_eq!(
            agent.load, 0,
            "agent {} still has load after all answers",
            agent.name
        );
    }
    assert!(status.escalation_stats.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_inquiries_are_all_answered_and_loads_return_to_zero() {
    let server = Server::start().await;
    let texts = [
        PASSWORD_RESET,
        "The app crashes with an error every time I upload a photo",
        "How do I export my invoice as a PDF?",
        "What are your opening hours on public holidays?",
        "My payment failed but the money left my account",
        "How can I enable two-factor security on my login?",
        "Is there a tutorial for getting started with the API?",
        "The dashboard is very slow since yesterday",
    ];
    let mut tasks = Vec::new();
    for i in 0..50 {
        let mut desk = server.desk();
        let request = inquiry(&format!("cust_load_{i}"), texts[i % texts.len()]);
        tasks.push(tokio::spawn(async move { ask(&mut desk, request).await }));
    }
    let mut ids = HashSet::new();
    let mut replies = 0u64;
    for task in tasks {
        let response = task.await.unwrap();
        assert!(!response.response.trim().is_empty());
        let ticket = response.ticket.unwrap();
        // Every answer an agent gave counts once among the agents' handled tickets.
        replies += ticket
            .resolution_path
            .iter()
            .filter(|s| s.outcome() != PathOutcome::HandedOn)
            .count() as u64;
        ids.insert(ticket.ticket_id);
    }
    assert_eq!(ids.len(), 50, "50 distinct tickets");

    let agents = all_agents(&server).await;
    assert_eq!(agents.len(), 6);
    for agent in &agents {
        assert_eq!(agent.load, 0, "agent {} load after all answers", agent.name);
        assert!(agent.load <= agent.capacity);
    }
    let handled: u64 = agents.iter().map(|a| a.handled_count).sum();
    assert_eq!(
        handled, replies,
        "the agents' handled counts add up to their answers"
    );
}

#[tokio::test]
async fn get_ticket_of_an_unknown_id_is_not_found() {
    let server = Server::start().await;
    expect_code(
        server
            .desk()
            .get_ticket(get_ticket("tkt_doesnotexist0000000"))
            .await,
        Code::NotFound,
        "GetTicket(unknown)",
    );
}

#[tokio::test]
async fn list_tickets_filters_and_paginates_newest_first() {
    let server = Server::start().await;
    let mut desk = server.desk();

    let mut created = Vec::new();
    for _ in 0..5 {
        let response = ask(&mut desk, inquiry("cust_pages", PASSWORD_RESET)).await;
        let ticket = response.ticket.unwrap();
        assert_eq!(ticket.status(), TicketStatus::Resolved);
        created.push(ticket.ticket_id);
    }
    let other = ask(&mut desk, inquiry("cust_other", PASSWORD_RESET)).await;
    let review = create_refund_escalation(&mut desk, "cust_pages").await;
    let review_id = review.ticket.unwrap().ticket_id;

    // The five resolved tickets, two per page, newest first.
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = ok(
            desk.list_tickets(ListTicketsRequest {
                customer_id: "cust_pages".into(),
                status: TicketStatus::Resolved as i32,
                page_size: 2,
                page_token: token.clone(),
            })
            .await,
            "ListTickets page",
        );
        pages += 1;
        assert!(
            page.tickets.len() <= 2,
            "page_size 2 gave {}",
            page.tickets.len()
        );
        assert!(page.sequence > 0, "a list carries the log sequence");
        for ticket in &page.tickets {
            assert_eq!(ticket.customer_id, "cust_pages");
            assert_eq!(ticket.status(), TicketStatus::Resolved);
        }
        seen.extend(page.tickets.into_iter().map(|t| t.ticket_id));
        if page.next_page_token.is_empty() {
            break;
        }
        assert!(pages < 10, "pagination does not end");
        token = page.next_page_token;
    }
    let mut newest_first = created.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);
    assert_eq!(pages, 3, "5 tickets at 2 per page are 3 pages");

    // Customer filter only: six tickets, newest (the review) first, none of the other customer.
    let all = ok(
        desk.list_tickets(ListTicketsRequest {
            customer_id: "cust_pages".into(),
            ..Default::default()
        })
        .await,
        "ListTickets by customer",
    );
    let ids: Vec<_> = all.tickets.iter().map(|t| t.ticket_id.clone()).collect();
    assert_eq!(ids.len(), 6);
    assert_eq!(ids[0], review_id);
    assert!(all.next_page_token.is_empty());
    assert!(!ids.contains(&other.ticket.unwrap().ticket_id));

    // Status filter only.
    let awaiting = ok(
        desk.list_tickets(ListTicketsRequest {
            status: TicketStatus::AwaitingReview as i32,
            ..Default::default()
        })
        .await,
        "ListTickets by status",
    );
    let ids: Vec<_> = awaiting
        .tickets
        .iter()
        .map(|t| t.ticket_id.clone())
        .collect();
    assert_eq!(ids, vec![review_id]);

    // No filter: everything, seven tickets.
    let everything = ok(
        desk.list_tickets(ListTicketsRequest::default()).await,
        "ListTickets",
    );
    assert_eq!(everything.tickets.len(), 7);
}

#[tokio::test]
async fn customer_history_lists_tickets_newest_first() {
    let server = Server::start().await;
    let mut desk = server.desk();
    let first = ask(&mut desk, inquiry("cust_hist", PASSWORD_RESET)).await;
    let second = create_refund_escalation(&mut desk, "cust_hist").await;
    let third = ask(&mut desk, inquiry("cust_hist", PASSWORD_RESET)).await;
    ask(&mut desk, inquiry("cust_somebody_else", PASSWORD_RESET)).await;

    let history = ok(
        desk.get_customer_history(GetCustomerHistoryRequest {
            customer_id: "cust_hist".into(),
            limit: 0,
        })
        .await,
        "GetCustomerHistory",
    );
    assert_eq!(history.customer_id, "cust_hist");
    assert_eq!(history.total_tickets, 3);
    let ids: Vec<_> = history
        .entries
        .iter()
        .map(|e| e.ticket_id.clone())
        .collect();
    let want: Vec<_> = [&third, &second, &first]
        .iter()
        .map(|r| r.ticket.as_ref().unwrap().ticket_id.clone())
        .collect();
    assert_eq!(ids, want, "newest first");

    let newest = &history.entries[0];
    assert_eq!(newest.inquiry, PASSWORD_RESET);
    assert_eq!(newest.response, third.response);
    assert_eq!(newest.agent, "L1_Agent_3");
    assert_eq!(newest.status(), TicketStatus::Resolved);
    assert_eq!(newest.topic, "account");
    assert!(newest.create_time.is_some() && newest.resolve_time.is_some());
    let pending = &history.entries[1];
    assert_eq!(pending.status(), TicketStatus::AwaitingReview);
    assert!(pending.resolve_time.is_none());

    let limited = ok(
        desk.get_customer_history(GetCustomerHistoryRequest {
            customer_id: "cust_hist".into(),
            limit: 2,
        })
        .await,
        "GetCustomerHistory limit 2",
    );
    assert_eq!(limited.entries.len(), 2);
    assert_eq!(limited.total_tickets, 3);
}

#[tokio::test]
async fn repeated_idempotency_key_returns_the_same_ticket() {
    let server = Server::start().await;
    let mut desk = server.desk();
    let request = HandleInquiryRequest {
        idempotency_key: "retry-7f3a".into(),
        ..inquiry("cust_idem", PASSWORD_RESET)
    };
    let first = ask(&mut desk, request.clone()).await;
    let second = ask(&mut desk, request).await;
    assert!(!first.replayed);
    assert!(
        second.replayed,
        "the second call must say it replayed: {second:#?}"
    );
    let first_id = first.ticket.unwrap().ticket_id;
    assert_eq!(second.ticket.unwrap().ticket_id, first_id);
    assert_eq!(second.response, first.response);

    let listed = ok(
        desk.list_tickets(ListTicketsRequest {
            customer_id: "cust_idem".into(),
            ..Default::default()
        })
        .await,
        "ListTickets",
    );
    assert_eq!(listed.tickets.len(), 1, "no second ticket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_with_one_idempotency_key_share_one_ticket() {
    let server = Server::start().await;
    let request = HandleInquiryRequest {
        idempotency_key: "burst-1".into(),
        ..refund_request("cust_burst")
    };
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let mut desk = server.desk();
        let request = request.clone();
        tasks.push(tokio::spawn(async move { ask(&mut desk, request).await }));
    }
    let mut ids = HashSet::new();
    let mut originals = 0;
    for task in tasks {
        let response = task.await.unwrap();
        ids.insert(response.ticket.unwrap().ticket_id);
        if !response.replayed {
            originals += 1;
        }
    }
    assert_eq!(ids.len(), 1, "all twenty calls return one ticket");
    assert_eq!(
        originals, 1,
        "exactly one call created it, the others replayed"
    );
}

#[tokio::test]
async fn the_same_idempotency_key_from_another_client_is_another_ticket() {
    let server = Server::start().await;
    let other_key = server
        .create_key("web-frontend", &["customer_service"])
        .await;
    let request = HandleInquiryRequest {
        idempotency_key: "shared-key".into(),
        ..inquiry("cust_two_clients", PASSWORD_RESET)
    };
    let mine = ask(&mut server.desk(), request.clone()).await;
    let theirs = ask(&mut server.desk_as(&other_key), request).await;
    assert!(!theirs.replayed);
    assert_ne!(
        mine.ticket.unwrap().ticket_id,
        theirs.ticket.unwrap().ticket_id,
        "idempotency keys are per client"
    );
}

#[tokio::test]
async fn config_file_defines_a_four_tier_desk() {
    let config = r#"
[desk]
name = "Acme Support"
[[desk.tiers]]
name = "Support"
agents = 4
[[desk.tiers]]
name = "Technical"
agents = 3
[[desk.tiers]]
name = "Engineering"
agents = 2
[[desk.tiers]]
name = "Management"
agents = 1
"#;
    let server = Server::start_with_config(config).await;
    let status = ok(
        server
            .admin()
            .get_desk_status(GetDeskStatusRequest {})
            .await,
        "GetDeskStatus",
    );
    assert_eq!(status.desk_name, "Acme Support");
    let tiers: Vec<(String, Vec<String>)> = status
        .tiers
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.agents.iter().map(|a| a.name.clone()).collect(),
            )
        })
        .collect();
    let want: Vec<(String, Vec<String>)> = [
        ("Support", 4),
        ("Technical", 3),
        ("Engineering", 2),
        ("Management", 1),
    ]
    .iter()
    .map(|(tier, n)| {
        (
            tier.to_string(),
            (1..=*n).map(|i| format!("{tier}_Agent_{i}")).collect(),
        )
    })
    .collect();
    assert_eq!(tiers, want);
    for tier in &status.tiers {
        for agent in &tier.agents {
            assert_eq!(agent.tier, tier.name);
            assert_eq!(agent.availability(), AgentAvailability::Available);
            assert_eq!(agent.kind(), AgentKind::Builtin);
            let want_capacity = if tier.name == "Support" { 5 } else { 3 };
            assert_eq!(agent.capacity, want_capacity, "capacity of {}", agent.name);
        }
    }

    // The desk answers on it.
    let response = ask(&mut server.desk(), inquiry("cust_acme", PASSWORD_RESET)).await;
    assert!(!response.response.is_empty());
    assert!(
        ["Support", "Technical", "Engineering", "Management"].contains(&response.tier.as_str()),
        "tier {:?}",
        response.tier
    );
}

#[tokio::test]
async fn an_answered_review_is_visible_to_get_escalation_and_history() {
    let server = Server::start().await;
    let mut desk = server.desk();
    let response = create_refund_escalation(&mut desk, "cust_seen").await;
    let mut escalations = server.escalations_as(ADMIN_KEY);
    ok(
        escalations
            .approve_escalation(ApproveEscalationRequest {
                escalation_id: response.escalation_id.clone(),
                response: "Refunded.".into(),
                reviewer_id: "supervisor_1".into(),
                ..Default::default()
            })
            .await,
        "ApproveEscalation",
    );
    let escalation = ok(
        escalations
            .get_escalation(get_escalation(&response.escalation_id))
            .await,
        "GetEscalation",
    );
    assert_eq!(escalation.state(), EscalationState::Approved);
    assert_eq!(escalation.resolution, "Refunded.");
    let history = ok(
        desk.get_customer_history(GetCustomerHistoryRequest {
            customer_id: "cust_seen".into(),
            limit: 5,
        })
        .await,
        "GetCustomerHistory",
    );
    assert_eq!(history.entries[0].status(), TicketStatus::Resolved);
    assert_eq!(history.entries[0].response, "Refunded.");
}

#[tokio::test]
async fn a_retry_after_the_client_deadline_returns_the_same_ticket() {
    let server = Server::start().await;
    set_every_agent(&server, AgentAvailability::Paused).await;
    let request = HandleInquiryRequest {
        idempotency_key: "order-7-question".into(),
        ..inquiry("cust_retry", PASSWORD_RESET)
    };
    // The first call gives up before the desk answers: nobody is free. Its deadline is long
    // enough to reach a loaded server, and it still passes, since nobody will answer.
    let mut first = tonic::Request::new(request.clone());
    first.set_timeout(Duration::from_secs(3));
    let gave_up = server.desk().handle_inquiry(first).await;
    // tonic's client reports its own timeout as CANCELLED; servers report DEADLINE_EXCEEDED.
    let code = gave_up.expect_err("nobody could answer in time").code();
    assert!(
        matches!(code, Code::Cancelled | Code::DeadlineExceeded),
        "{code:?}"
    );
    // The desk kept the ticket; agents come back; the retry finds it, answered.
    set_every_agent(&server, AgentAvailability::Available).await;
    let retried = ask(&mut server.desk(), request.clone()).await;
    assert!(
        retried.replayed,
        "the retry is answered from the first ticket"
    );
    assert_eq!(
        retried.ticket.as_ref().unwrap().status(),
        TicketStatus::Resolved
    );
    let listed = ok(
        server
            .desk()
            .list_tickets(ListTicketsRequest {
                customer_id: "cust_retry".into(),
                ..Default::default()
            })
            .await,
        "ListTickets",
    );
    assert_eq!(listed.tickets.len(), 1, "one ticket, not two");
    assert_eq!(
        listed.tickets[0].ticket_id,
        retried.ticket.unwrap().ticket_id
    );
}

#[tokio::test]
async fn reusing_an_idempotency_key_for_another_request_is_refused_naming_the_key() {
    let server = Server::start().await;
    let mut desk = server.desk();
    let first = HandleInquiryRequest {
        idempotency_key: "order-9".into(),
        ..inquiry("cust_reuse", PASSWORD_RESET)
    };
    let answered = ask(&mut desk, first.clone()).await;
    // The same request again is the same ticket.
    let again = ask(&mut desk, first.clone()).await;
    assert!(again.replayed);
    assert_eq!(
        again.ticket.as_ref().unwrap().ticket_id,
        answered.ticket.as_ref().unwrap().ticket_id
    );
    // Anything else under that key is a caller's mistake, not a replay.
    let variants = [
        HandleInquiryRequest {
            inquiry: "Where is my invoice?".into(),
            ..first.clone()
        },
        HandleInquiryRequest {
            customer_id: "cust_other".into(),
            ..first.clone()
        },
        HandleInquiryRequest {
            priority: 9,
            ..first.clone()
        },
        HandleInquiryRequest {
            topic: "billing".into(),
            ..first.clone()
        },
        HandleInquiryRequest {
            context: [("vip".to_string(), "true".to_string())].into(),
            ..first.clone()
        },
    ];
    for variant in variants {
        expect_bad_field(
            desk.handle_inquiry(variant.clone()).await,
            "idempotency_key",
            &format!("{variant:?}"),
        );
    }
    // The topic it was classified under, named explicitly, is the same request.
    let named = HandleInquiryRequest {
        topic: answered.ticket.as_ref().unwrap().topic.clone(),
        ..first.clone()
    };
    assert!(ask(&mut desk, named).await.replayed);
}
