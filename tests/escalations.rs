//! The human review queue over gRPC: ordering, deciding (and who may), claiming and handing
//! over, racing decisions and the statistics.

mod common;

use common::*;
use servicedesk::proto::v1::{
    ApproveEscalationRequest, AssignEscalationRequest, CreateReviewerRequest, Escalation,
    EscalationPriority, EscalationState, GetEscalationRequest, GetEscalationStatsRequest,
    GetTicketRequest, ListEscalationsRequest, RejectEscalationRequest, TicketStatus,
};
use tonic::Code;

fn get(id: &str) -> GetEscalationRequest {
    GetEscalationRequest {
        escalation_id: id.into(),
    }
}

fn approve(id: &str) -> ApproveEscalationRequest {
    ApproveEscalationRequest {
        escalation_id: id.into(),
        ..Default::default()
    }
}

fn reject(id: &str, reason: &str) -> RejectEscalationRequest {
    RejectEscalationRequest {
        escalation_id: id.into(),
        reason: reason.into(),
        ..Default::default()
    }
}

async fn escalation(server: &Server, id: &str) -> Escalation {
    ok(
        server.escalations().get_escalation(get(id)).await,
        "GetEscalation",
    )
}

async fn all_pages(server: &Server, request: ListEscalationsRequest) -> Vec<Escalation> {
    let mut escalations = server.escalations();
    let mut out = Vec::new();
    let mut request = request;
    for _ in 0..100 {
        let page = ok(
            escalations.list_escalations(request.clone()).await,
            "ListEscalations",
        );
        assert!(page.sequence > 0, "a list carries the log sequence");
        out.extend(page.escalations);
        if page.next_page_token.is_empty() {
            return out;
        }
        request.page_token = page.next_page_token;
    }
    panic!("ListEscalations pagination does not end");
}

#[tokio::test]
async fn list_escalations_puts_urgent_first_then_oldest_first() {
    let server = Server::start().await;
    let mut desk = server.desk();
    let high_1 = create_refund_escalation(&mut desk, "cust_h1")
        .await
        .escalation_id;
    let urgent_1 = ask(&mut desk, vip_complaint("cust_u1")).await.escalation_id;
    let high_2 = create_refund_escalation(&mut desk, "cust_h2")
        .await
        .escalation_id;
    let urgent_2 = ask(&mut desk, vip_complaint("cust_u2")).await.escalation_id;
    assert!(!urgent_1.is_empty() && !urgent_2.is_empty());
    for id in [&high_1, &high_2] {
        assert_eq!(
            escalation(&server, id).await.priority(),
            EscalationPriority::High
        );
    }
    for id in [&urgent_1, &urgent_2] {
        assert_eq!(
            escalation(&server, id).await.priority(),
            EscalationPriority::Urgent
        );
    }
    let want = vec![
        urgent_1.clone(),
        urgent_2.clone(),
        high_1.clone(),
        high_2.clone(),
    ];

    let listed = all_pages(&server, ListEscalationsRequest::default()).await;
    let ids: Vec<_> = listed.iter().map(|e| e.escalation_id.clone()).collect();
    assert_eq!(ids, want, "URGENT before HIGH, then oldest first");
    assert!(listed.iter().all(|e| e.state() == EscalationState::Pending));

    // The same order one per page.
    let paged = all_pages(
        &server,
        ListEscalationsRequest {
            page_size: 1,
            ..Default::default()
        },
    )
    .await;
    let ids: Vec<_> = paged.iter().map(|e| e.escalation_id.clone()).collect();
    assert_eq!(ids, want, "pagination keeps the order");

    // Filtered by reviewer.
    let sarahs = all_pages(
        &server,
        ListEscalationsRequest {
            reviewer_id: "supervisor_1".into(),
            ..Default::default()
        },
    )
    .await;
    assert!(sarahs
        .iter()
        .all(|e| e.assigned_reviewer_id == "supervisor_1"));
    let ids: Vec<_> = sarahs.iter().map(|e| e.escalation_id.clone()).collect();
    assert!(ids.contains(&high_1) && ids.contains(&high_2), "{ids:?}");

    // Decided ones leave the PENDING list and show under their state.
    ok(
        server
            .escalations_as(ADMIN_KEY)
            .approve_escalation(approve(&urgent_1))
            .await,
        "ApproveEscalation",
    );
    let pending = all_pages(&server, ListEscalationsRequest::default()).await;
    assert_eq!(pending.len(), 3);
    let approved = all_pages(
        &server,
        ListEscalationsRequest {
            state: EscalationState::Approved as i32,
            ..Default::default()
        },
    )
    .await;
    let ids: Vec<_> = approved.iter().map(|e| e.escalation_id.clone()).collect();
    assert_eq!(ids, vec![urgent_1]);
}

#[tokio::test]
async fn reject_with_a_reason_closes_the_ticket_rejected() {
    let server = Server::start().await;
    let mut desk = server.desk();
    let response = create_refund_escalation(&mut desk, "cust_rej").await;
    let reason = "Our records show a single charge; the second line is a pending authorisation";
    let rejected = ok(
        server
            .escalations_as(ADMIN_KEY)
            .reject_escalation(RejectEscalationRequest {
                escalation_id: response.escalation_id.clone(),
                reason: reason.into(),
                reviewer_id: "supervisor_1".into(),
            })
            .await,
        "RejectEscalation",
    );
    assert_eq!(rejected.state(), EscalationState::Rejected);
    assert!(rejected.decide_time.is_some());

    let ticket = ok(
        desk.get_ticket(GetTicketRequest {
            ticket_id: response.ticket.unwrap().ticket_id,
        })
        .await,
        "GetTicket",
    );
    assert_eq!(ticket.status(), TicketStatus::Rejected);
    assert!(
        ticket.resolution.contains(reason),
        "the customer is told the reason; resolution {:?}",
        ticket.resolution
    );
    assert!(ticket.resolve_time.is_some());

    // The reviewer's slot is free again.
    let stats = ok(
        server
            .escalations()
            .get_escalation_stats(GetEscalationStatsRequest {})
            .await,
        "GetEscalationStats",
    );
    let sarah = stats
        .reviewers
        .iter()
        .find(|r| r.reviewer_id == "supervisor_1")
        .unwrap();
    assert_eq!(sarah.load, 0);
    assert_eq!(sarah.decided_count, 1);
}

#[tokio::test]
async fn reject_without_a_reason_is_invalid_argument() {
    let server = Server::start().await;
    let response = create_refund_escalation(&mut server.desk(), "cust_noreason").await;
    let mut escalations = server.escalations_as(ADMIN_KEY);
    for reason in ["", "   "] {
        expect_bad_field(
            escalations
                .reject_escalation(reject(&response.escalation_id, reason))
                .await,
            "reason",
            &format!("RejectEscalation with reason {reason:?}"),
        );
    }
    assert_eq!(
        escalation(&server, &response.escalation_id).await.state(),
        EscalationState::Pending,
        "a refused rejection changes nothing"
    );
}

#[tokio::test]
async fn unknown_escalation_ids_are_not_found() {
    let server = Server::start().await;
    let mut escalations = server.escalations_as(ADMIN_KEY);
    let unknown = "esc_doesnotexist00000000";
    expect_code(
        escalations.get_escalation(get(unknown)).await,
        Code::NotFound,
        "GetEscalation",
    );
    expect_code(
        escalations.approve_escalation(approve(unknown)).await,
        Code::NotFound,
        "ApproveEscalation",
    );
    expect_code(
        escalations.reject_escalation(reject(unknown, "no")).await,
        Code::NotFound,
        "RejectEscalation",
    );
    expect_code(
        escalations
            .assign_escalation(AssignEscalationRequest {
                escalation_id: unknown.into(),
                reviewer_id: "supervisor_1".into(),
            })
            .await,
        Code::NotFound,
        "AssignEscalation",
    );
}

#[tokio::test]
async fn reviewers_decide_only_their_own_escalations() {
    let server = Server::start().await;
    let response = create_refund_escalation(&mut server.desk(), "cust_rules").await;
    let id = response.escalation_id.clone();
    assert_eq!(
        escalation(&server, &id).await.assigned_reviewer_id,
        "supervisor_1"
    );

    let mike = server.create_key("supervisor_2", &["escalation"]).await;
    let mut as_mike = server.escalations_as(&mike);
    expect_code(
        as_mike.approve_escalation(approve(&id)).await,
        Code::PermissionDenied,
        "supervisor_2 approving supervisor_1's escalation",
    );
    expect_code(
        as_mike
            .reject_escalation(reject(&id, "not mine to refuse"))
            .await,
        Code::PermissionDenied,
        "supervisor_2 rejecting supervisor_1's escalation",
    );
    expect_code(
        as_mike
            .approve_escalation(ApproveEscalationRequest {
                reviewer_id: "supervisor_1".into(),
                ..approve(&id)
            })
            .await,
        Code::PermissionDenied,
        "supervisor_2 acting as supervisor_1 without admin",
    );
    expect_code(
        server
            .escalations()
            .reject_escalation(RejectEscalationRequest {
                reviewer_id: "supervisor_1".into(),
                ..reject(&id, "pretending")
            })
            .await,
        Code::PermissionDenied,
        "test-client acting as supervisor_1 without admin",
    );
    assert_eq!(
        escalation(&server, &id).await.state(),
        EscalationState::Pending
    );

    // Sarah's own key decides it; a second decision is too late.
    let sarah = server.create_key("supervisor_1", &["escalation"]).await;
    let mut as_sarah = server.escalations_as(&sarah);
    let approved = ok(
        as_sarah.approve_escalation(approve(&id)).await,
        "supervisor_1 approving",
    );
    assert_eq!(approved.state(), EscalationState::Approved);
    expect_code(
        as_sarah.approve_escalation(approve(&id)).await,
        Code::FailedPrecondition,
        "approving an approved escalation",
    );
    let mut as_admin = server.escalations_as(ADMIN_KEY);
    expect_code(
        as_admin.reject_escalation(reject(&id, "too late")).await,
        Code::FailedPrecondition,
        "rejecting an approved escalation",
    );
    expect_code(
        as_admin
            .assign_escalation(AssignEscalationRequest {
                escalation_id: id.clone(),
                reviewer_id: "manager_1".into(),
            })
            .await,
        Code::FailedPrecondition,
        "assigning a decided escalation",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_a_hundred_concurrent_approvals_rejections_and_claims_one_decision_wins() {
    let server = Server::start().await;
    let mut desk = server.desk();
    let response = create_refund_escalation(&mut desk, "cust_race").await;
    let id = response.escalation_id.clone();

    // Approvals, rejections and hand-overs between reviewers, all at once, over four
    // connections so they really race.
    let mut channels = Vec::new();
    for _ in 0..4 {
        channels.push(server.new_channel().await);
    }
    let mut tasks = Vec::new();
    for i in 0..100 {
        let mut escalations =
            servicedesk::proto::v1::escalation_service_client::EscalationServiceClient::with_interceptor(
                channels[i % 4].clone(),
                |mut r: tonic::Request<()>| {
                    r.metadata_mut()
                        .insert("x-api-key", ADMIN_KEY.parse().unwrap());
                    Ok(r)
                },
            );
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            match i % 3 {
                0 => (
                    Some(true),
                    escalations.approve_escalation(approve(&id)).await,
                ),
                1 => (
                    Some(false),
                    escalations
                        .reject_escalation(reject(&id, &format!("rejected by task {i}")))
                        .await,
                ),
                _ => {
                    let reviewer = ["supervisor_1", "manager_1"][i % 2];
                    let claim = escalations
                        .assign_escalation(AssignEscalationRequest {
                            escalation_id: id.clone(),
                            reviewer_id: reviewer.into(),
                        })
                        .await;
                    (None, claim)
                }
            }
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (decision, result) = task.await.unwrap();
        match (decision, result) {
            (Some(approving), Ok(escalation)) => winners.push((approving, escalation.into_inner())),
            // A hand-over before the decision succeeds; after it, it is too late.
            (None, Ok(_)) => {}
            (_, Err(status)) => assert_eq!(
                status.code(),
                Code::FailedPrecondition,
                "a losing call: {}",
                status.message()
            ),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one decision wins, got {}",
        winners.len()
    );
    let (approved, winner) = winners.pop().unwrap();

    let stored = escalation(&server, &id).await;
    let ticket = ok(
        desk.get_ticket(GetTicketRequest {
            ticket_id: response.ticket.unwrap().ticket_id,
        })
        .await,
        "GetTicket",
    );
    if approved {
        assert_eq!(stored.state(), EscalationState::Approved);
        assert_eq!(ticket.status(), TicketStatus::Resolved);
    } else {
        assert_eq!(stored.state(), EscalationState::Rejected);
        assert_eq!(ticket.status(), TicketStatus::Rejected);
    }
    assert_eq!(stored.state(), winner.state());

    let stats = ok(
        server
            .escalations()
            .get_escalation_stats(GetEscalationStatsRequest {})
            .await,
        "GetEscalationStats",
    );
    assert_eq!(stats.approved + stats.rejected, 1, "one decision counted");
    let sarah = stats
        .reviewers
        .iter()
        .find(|r| r.reviewer_id == "supervisor_1")
        .unwrap();
    assert_eq!(sarah.load, 0, "the slot is freed exactly once");
}

#[tokio::test]
async fn claim_and_hand_over() {
    let server = Server::start().await;
    let mut desk = server.desk();
    // Billing reviews go to supervisor_1 (3 slots), then the generalist manager_1 (5 slots);
    // supervisor_2 does not match billing, so the ninth stays unassigned.
    let mut assigned = Vec::new();
    for i in 0..8 {
        let id = create_refund_escalation(&mut desk, &format!("cust_fill_{i}"))
            .await
            .escalation_id;
        assigned.push(escalation(&server, &id).await.assigned_reviewer_id);
    }
    let want: Vec<String> = std::iter::repeat_n("supervisor_1", 3)
        .chain(std::iter::repeat_n("manager_1", 5))
        .map(String::from)
        .collect();
    assert_eq!(assigned, want, "specialty match first, then the generalist");
    let waiting = create_refund_escalation(&mut desk, "cust_waiting")
        .await
        .escalation_id;
    assert_eq!(escalation(&server, &waiting).await.assigned_reviewer_id, "");
    let stats = ok(
        server
            .escalations()
            .get_escalation_stats(GetEscalationStatsRequest {})
            .await,
        "GetEscalationStats",
    );
    assert_eq!(stats.unassigned, 1);
    assert_eq!(stats.active, 9);

    // supervisor_2 claims it.
    let mike = server.create_key("supervisor_2", &["escalation"]).await;
    let mut as_mike = server.escalations_as(&mike);
    let claimed = ok(
        as_mike
            .assign_escalation(AssignEscalationRequest {
                escalation_id: waiting.clone(),
                reviewer_id: String::new(),
            })
            .await,
        "supervisor_2 claiming an unassigned escalation",
    );
    assert_eq!(claimed.assigned_reviewer_id, "supervisor_2");
    assert_eq!(claimed.state(), EscalationState::Pending);

    // Handing it to a full reviewer fails.
    expect_code(
        as_mike
            .assign_escalation(AssignEscalationRequest {
                escalation_id: waiting.clone(),
                reviewer_id: "supervisor_1".into(),
            })
            .await,
        Code::FailedPrecondition,
        "handing over to a reviewer at capacity",
    );

    // A new reviewer with room takes the hand-over; then it is no longer Mike's.
    ok(
        server
            .admin()
            .create_reviewer(CreateReviewerRequest {
                reviewer_id: "supervisor_3".into(),
                name: "Ana Silva".into(),
                specialties: vec!["refunds".into()],
                max_concurrent: 2,
            })
            .await,
        "CreateReviewer",
    );
    let handed = ok(
        as_mike
            .assign_escalation(AssignEscalationRequest {
                escalation_id: waiting.clone(),
                reviewer_id: "supervisor_3".into(),
            })
            .await,
        "supervisor_2 handing over to supervisor_3",
    );
    assert_eq!(handed.assigned_reviewer_id, "supervisor_3");
    expect_code(
        as_mike.approve_escalation(approve(&waiting)).await,
        Code::PermissionDenied,
        "supervisor_2 approving after handing it over",
    );
    expect_code(
        as_mike
            .assign_escalation(AssignEscalationRequest {
                escalation_id: waiting.clone(),
                reviewer_id: String::new(),
            })
            .await,
        Code::PermissionDenied,
        "supervisor_2 claiming supervisor_3's escalation",
    );

    // An admin may move anyone's escalation.
    let moved = ok(
        server
            .escalations_as(ADMIN_KEY)
            .assign_escalation(AssignEscalationRequest {
                escalation_id: waiting.clone(),
                reviewer_id: "supervisor_2".into(),
            })
            .await,
        "admin handing over to supervisor_2",
    );
    assert_eq!(moved.assigned_reviewer_id, "supervisor_2");
    let approved = ok(
        as_mike.approve_escalation(approve(&waiting)).await,
        "supervisor_2 approving",
    );
    assert_eq!(approved.state(), EscalationState::Approved);
}

#[tokio::test]
async fn escalation_stats_count_decisions() {
    let server = Server::start().await;
    let mut desk = server.desk();
    let a = create_refund_escalation(&mut desk, "cust_s1")
        .await
        .escalation_id;
    let b = create_refund_escalation(&mut desk, "cust_s2")
        .await
        .escalation_id;
    let _c = create_refund_escalation(&mut desk, "cust_s3")
        .await
        .escalation_id;
    let mut as_admin = server.escalations_as(ADMIN_KEY);
    ok(
        as_admin
            .approve_escalation(ApproveEscalationRequest {
                reviewer_id: "supervisor_1".into(),
                ..approve(&a)
            })
            .await,
        "approve a",
    );
    ok(
        as_admin
            .reject_escalation(RejectEscalationRequest {
                reviewer_id: "supervisor_1".into(),
                ..reject(&b, "not eligible")
            })
            .await,
        "reject b",
    );

    let stats = ok(
        server
            .escalations()
            .get_escalation_stats(GetEscalationStatsRequest {})
            .await,
        "GetEscalationStats",
    );
    assert_eq!(stats.total, 3);
    assert_eq!(stats.active, 1);
    assert_eq!(stats.approved, 1);
    assert_eq!(stats.rejected, 1);
    assert_eq!(stats.expired, 0);
    assert_eq!(stats.unassigned, 0);
    assert!(
        (stats.approval_rate - 0.5).abs() < 1e-9,
        "approval rate {}",
        stats.approval_rate
    );
    assert!(stats.avg_time_to_decision.is_some());
    let mut ids: Vec<_> = stats
        .reviewers
        .iter()
        .map(|r| r.reviewer_id.as_str())
        .collect();
    ids.sort();
    assert_eq!(ids, vec!["manager_1", "supervisor_1", "supervisor_2"]);
    let sarah = stats
        .reviewers
        .iter()
        .find(|r| r.reviewer_id == "supervisor_1")
        .unwrap();
    assert_eq!(sarah.load, 1);
    assert_eq!(sarah.decided_count, 2);
}

#[tokio::test]
async fn assigning_to_an_unknown_reviewer_is_not_found() {
    let server = Server::start().await;
    let id = create_refund_escalation(&mut server.desk(), "cust_unknown_reviewer")
        .await
        .escalation_id;
    expect_code(
        server
            .escalations_as(ADMIN_KEY)
            .assign_escalation(AssignEscalationRequest {
                escalation_id: id.clone(),
                reviewer_id: "nobody_here".into(),
            })
            .await,
        Code::NotFound,
        "AssignEscalation to an unknown reviewer",
    );
    let unchanged = escalation(&server, &id).await;
    assert_eq!(unchanged.assigned_reviewer_id, "supervisor_1");
    assert_eq!(unchanged.state(), EscalationState::Pending);
}
