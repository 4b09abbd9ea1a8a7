//! The operators' side: the default desk as seeded, agents and reviewers (create, update,
//! delete, list), desk status and the runtime configuration, which survives a restart.

mod common;

use common::*;
use prost_types::{Duration as ProtoDuration, FieldMask};
use servicedesk::proto::v1::{
    Agent, AgentAvailability, AgentKind, CreateAgentRequest, CreateReviewerRequest,
    DeleteAgentRequest, DeleteReviewerRequest, DeskConfig, GetConfigRequest, GetDeskStatusRequest,
    GetEscalationRequest, ListAgentsRequest, ListReviewersRequest, Reviewer, RoutingStrategy,
    TicketStatus, UpdateAgentRequest, UpdateConfigRequest, UpdateReviewerRequest,
};
use tonic::Code;

fn sorted(items: &[String]) -> Vec<String> {
    let mut items = items.to_vec();
    items.sort();
    items
}

fn strings(items: &[&str]) -> Vec<String> {
    let mut items: Vec<String> = items.iter().map(|s| s.to_string()).collect();
    items.sort();
    items
}

async fn agents(server: &Server) -> Vec<Agent> {
    ok(
        server
            .admin()
            .list_agents(ListAgentsRequest::default())
            .await,
        "ListAgents",
    )
    .agents
}

async fn agent_named(server: &Server, name: &str) -> Agent {
    agents(server)
        .await
        .into_iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no agent named {name}"))
}

async fn reviewers(server: &Server) -> Vec<Reviewer> {
    ok(
        server
            .admin()
            .list_reviewers(ListReviewersRequest::default())
            .await,
        "ListReviewers",
    )
    .reviewers
}

#[tokio::test]
async fn the_default_desk_is_seeded_as_documented() {
    let server = Server::start().await;
    let status = ok(
        server
            .admin()
            .get_desk_status(GetDeskStatusRequest {})
            .await,
        "GetDeskStatus",
    );
    assert!(!status.desk_name.is_empty());
    assert!(status.auth_enabled);
    assert!(
        status.registered_clients >= 2,
        "registered_clients {}",
        status.registered_clients
    );
    assert_eq!(status.open_tickets, 0);
    assert_eq!(status.total_handled, 0);
    assert_eq!(status.utilization, 0.0);

    let billing = ["billing", "payments", "invoices"];
    let technical = ["technical", "bugs", "features"];
    let account = ["account", "security", "privacy"];
    let general = ["general", "how-to", "getting-started"];
    let want = [
        ("L1", "L1_Agent_1", &billing, 5),
        ("L1", "L1_Agent_2", &technical, 5),
        ("L1", "L1_Agent_3", &account, 5),
        ("L2", "L2_Agent_1", &general, 3),
        ("L2", "L2_Agent_2", &billing, 3),
        ("Expert", "Expert_Agent_1", &technical, 3),
    ];
    let got: Vec<(String, Agent)> = status
        .tiers
        .iter()
        .flat_map(|tier| {
            tier.agents
                .iter()
                .map(move |a| (tier.name.clone(), a.clone()))
        })
        .collect();
    assert_eq!(got.len(), want.len(), "agents by tier: {got:#?}");
    for ((tier, agent), (want_tier, want_name, want_specialties, want_capacity)) in
        got.iter().zip(want)
    {
        assert_eq!(tier, want_tier);
        assert_eq!(agent.name, want_name);
        assert_eq!(agent.tier, want_tier);
        assert_eq!(
            sorted(&agent.specialties),
            strings(want_specialties),
            "specialties of {want_name}"
        );
        assert_eq!(agent.capacity, want_capacity, "capacity of {want_name}");
        assert_eq!(agent.load, 0);
        assert_eq!(agent.availability(), AgentAvailability::Available);
        assert_eq!(agent.kind(), AgentKind::Builtin);
        assert!(
            agent.agent_id.starts_with("agt_"),
            "agent id {:?}",
            agent.agent_id
        );
    }
    let thresholds: Vec<f64> = status
        .tiers
        .iter()
        .map(|t| t.confidence_threshold)
        .collect();
    assert!(
        thresholds.iter().all(|t| (0.0..=1.0).contains(t)),
        "{thresholds:?}"
    );
    assert!(
        thresholds[0] >= thresholds[1]
            && thresholds[1] >= thresholds[2]
            && thresholds[0] > thresholds[2],
        "L1 strictest, Expert most lenient: {thresholds:?}"
    );

    // ListAgents: the same agents in creation order; filtered by tier.
    let listed: Vec<String> = agents(&server).await.into_iter().map(|a| a.name).collect();
    assert_eq!(
        listed,
        want.iter().map(|w| w.1.to_string()).collect::<Vec<_>>()
    );
    let l2 = ok(
        server
            .admin()
            .list_agents(ListAgentsRequest {
                tier: "L2".into(),
                ..Default::default()
            })
            .await,
        "ListAgents tier L2",
    );
    let names: Vec<_> = l2.agents.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, vec!["L2_Agent_1", "L2_Agent_2"]);

    // Reviewers.
    let reviewers = reviewers(&server).await;
    let got: Vec<(String, String, Vec<String>, u32, u32)> = reviewers
        .iter()
        .map(|r| {
            (
                r.reviewer_id.clone(),
                r.name.clone(),
                sorted(&r.specialties),
                r.max_concurrent,
                r.load,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "supervisor_1".into(),
                "Sarah Johnson".into(),
                strings(&["billing", "refunds", "complaints"]),
                3,
                0
            ),
            (
                "supervisor_2".into(),
                "Mike Chen".into(),
                strings(&["technical", "features", "bugs"]),
                3,
                0
            ),
            ("manager_1".into(), "Lisa Rodriguez".into(), vec![], 5, 0),
        ]
    );

    // Configuration.
    let config = ok(
        server.admin().get_config(GetConfigRequest {}).await,
        "GetConfig",
    );
    assert_eq!(config.routing_strategy(), RoutingStrategy::LeastLoaded);
    assert_eq!(
        config.escalation_timeout,
        Some(ProtoDuration {
            seconds: 900,
            nanos: 0
        }),
        "15 minutes"
    );
}

#[tokio::test]
async fn agents_can_be_created_paused_resumed_updated_and_deleted() {
    let server = Server::start().await;
    let mut admin = server.admin();

    let created = ok(
        admin
            .create_agent(CreateAgentRequest {
                name: "L1_Refunds".into(),
                tier: "L1".into(),
                specialties: vec!["Refunds".into(), "BILLING".into()],
                capacity: 0,
                kind: AgentKind::Unspecified as i32,
            })
            .await,
        "CreateAgent",
    );
    assert!(created.agent_id.starts_with("agt_"));
    assert_eq!(created.name, "L1_Refunds");
    assert_eq!(created.tier, "L1");
    assert_eq!(
        sorted(&created.specialties),
        strings(&["billing", "refunds"]),
        "stored lowercase"
    );
    assert_eq!(created.capacity, 5, "0 means the first tier's default");
    assert_eq!(created.load, 0);
    assert_eq!(created.availability(), AgentAvailability::Available);
    assert_eq!(created.kind(), AgentKind::Builtin);

    let upper = ok(
        admin
            .create_agent(CreateAgentRequest {
                name: "L2_Extra".into(),
                tier: "L2".into(),
                ..Default::default()
            })
            .await,
        "CreateAgent in L2",
    );
    assert_eq!(upper.capacity, 3, "0 means 3 above the first tier");

    for name in ["L1_Refunds", "L1_Agent_1"] {
        expect_code(
            admin
                .create_agent(CreateAgentRequest {
                    name: name.into(),
                    tier: "L1".into(),
                    ..Default::default()
                })
                .await,
            Code::AlreadyExists,
            &format!("CreateAgent with the taken name {name}"),
        );
    }

    let names: Vec<_> = agents(&server).await.into_iter().map(|a| a.name).collect();
    assert_eq!(names.len(), 8);
    assert_eq!(
        &names[6..],
        &["L1_Refunds".to_string(), "L2_Extra".to_string()],
        "creation order"
    );

    let paused = ok(
        admin
            .update_agent(UpdateAgentRequest {
                agent_id: created.agent_id.clone(),
                availability: Some(AgentAvailability::Paused as i32),
                ..Default::default()
            })
            .await,
        "UpdateAgent pause",
    );
    assert_eq!(paused.availability(), AgentAvailability::Paused);
    assert_eq!(
        agent_named(&server, "L1_Refunds").await.availability(),
        AgentAvailability::Paused
    );
    let resumed = ok(
        admin
            .update_agent(UpdateAgentRequest {
                agent_id: created.agent_id.clone(),
                availability: Some(AgentAvailability::Available as i32),
                ..Default::default()
            })
            .await,
        "UpdateAgent resume",
    );
    assert_eq!(resumed.availability(), AgentAvailability::Available);

    let changed = ok(
        admin
            .update_agent(UpdateAgentRequest {
                agent_id: created.agent_id.clone(),
                capacity: Some(2),
                specialties: vec!["chargebacks".into()],
                update_specialties: true,
                ..Default::default()
            })
            .await,
        "UpdateAgent capacity and specialties",
    );
    assert_eq!(changed.capacity, 2);
    assert_eq!(changed.specialties, vec!["chargebacks".to_string()]);
    let capacity_only = ok(
        admin
            .update_agent(UpdateAgentRequest {
                agent_id: created.agent_id.clone(),
                capacity: Some(3),
                ..Default::default()
            })
            .await,
        "UpdateAgent capacity only",
    );
    assert_eq!(capacity_only.capacity, 3);
    assert_eq!(
        capacity_only.specialties,
        vec!["chargebacks".to_string()],
        "unset fields stay as they are"
    );
    assert_eq!(capacity_only.availability(), AgentAvailability::Available);

    let deleted = ok(
        admin
            .delete_agent(DeleteAgentRequest {
                agent_id: created.agent_id.clone(),
            })
            .await,
        "DeleteAgent",
    );
    assert_eq!(deleted.agent_id, created.agent_id);
    assert_eq!(deleted.name, "L1_Refunds");
    assert!(agents(&server)
        .await
        .iter()
        .all(|a| a.agent_id != created.agent_id));

    expect_code(
        admin
            .delete_agent(DeleteAgentRequest {
                agent_id: created.agent_id.clone(),
            })
            .await,
        Code::NotFound,
        "DeleteAgent of a deleted agent",
    );
    expect_code(
        admin
            .update_agent(UpdateAgentRequest {
                agent_id: "agt_999999".into(),
                capacity: Some(4),
                ..Default::default()
            })
            .await,
        Code::NotFound,
        "UpdateAgent(unknown)",
    );
}

#[tokio::test]
async fn a_paused_agent_takes_no_new_tickets_until_resumed() {
    let server = Server::start().await;
    let mut admin = server.admin();
    let mut desk = server.desk();
    let account_agent = agent_named(&server, "L1_Agent_3").await;

    ok(
        admin
            .update_agent(UpdateAgentRequest {
                agent_id: account_agent.agent_id.clone(),
                availability: Some(AgentAvailability::Paused as i32),
                ..Default::default()
            })
            .await,
        "pause L1_Agent_3",
    );
    let response = ask(&mut desk, inquiry("cust_paused", PASSWORD_RESET)).await;
    assert_ne!(response.agent, "L1_Agent_3", "a paused agent took a ticket");
    let ticket = response.ticket.unwrap();
    assert!(
        ticket
            .resolution_path
            .iter()
            .all(|s| s.agent_name != "L1_Agent_3"),
        "{:#?}",
        ticket.resolution_path
    );

    ok(
        admin
            .update_agent(UpdateAgentRequest {
                agent_id: account_agent.agent_id.clone(),
                availability: Some(AgentAvailability::Available as i32),
                ..Default::default()
            })
            .await,
        "resume L1_Agent_3",
    );
    let response = ask(&mut desk, inquiry("cust_resumed", PASSWORD_RESET)).await;
    assert_eq!(response.agent, "L1_Agent_3");
    assert_eq!(response.ticket.unwrap().status(), TicketStatus::Resolved);
}

#[tokio::test]
async fn reviewers_can_be_created_updated_and_deleted() {
    let server = Server::start().await;
    let mut admin = server.admin();
    let created = ok(
        admin
            .create_reviewer(CreateReviewerRequest {
                reviewer_id: "supervisor_3".into(),
                name: "Ana Silva".into(),
                specialties: vec!["privacy".into()],
                max_concurrent: 0,
            })
            .await,
        "CreateReviewer",
    );
    assert_eq!(created.reviewer_id, "supervisor_3");
    assert_eq!(created.name, "Ana Silva");
    assert_eq!(created.specialties, vec!["privacy".to_string()]);
    assert_eq!(created.max_concurrent, 3, "0 means 3");
    assert_eq!(created.load, 0);

    for id in ["supervisor_3", "supervisor_1"] {
        expect_code(
            admin
                .create_reviewer(CreateReviewerRequest {
                    reviewer_id: id.into(),
                    name: "Somebody".into(),
                    ..Default::default()
                })
                .await,
            Code::AlreadyExists,
            &format!("CreateReviewer with the taken id {id}"),
        );
    }
    let ids: Vec<_> = reviewers(&server)
        .await
        .into_iter()
        .map(|r| r.reviewer_id)
        .collect();
    assert_eq!(
        ids,
        vec!["supervisor_1", "supervisor_2", "manager_1", "supervisor_3"]
    );

    let updated = ok(
        admin
            .update_reviewer(UpdateReviewerRequest {
                reviewer_id: "supervisor_3".into(),
                name: Some("Ana M. Silva".into()),
                max_concurrent: Some(7),
                specialties: vec!["privacy".into(), "security".into()],
                update_specialties: true,
            })
            .await,
        "UpdateReviewer",
    );
    assert_eq!(updated.name, "Ana M. Silva");
    assert_eq!(updated.max_concurrent, 7);
    assert_eq!(
        sorted(&updated.specialties),
        strings(&["privacy", "security"])
    );
    let listed = reviewers(&server)
        .await
        .into_iter()
        .find(|r| r.reviewer_id == "supervisor_3")
        .unwrap();
    assert_eq!(listed, updated);

    let deleted = ok(
        admin
            .delete_reviewer(DeleteReviewerRequest {
                reviewer_id: "supervisor_3".into(),
            })
            .await,
        "DeleteReviewer",
    );
    assert_eq!(deleted.reviewer_id, "supervisor_3");
    assert!(reviewers(&server)
        .await
        .iter()
        .all(|r| r.reviewer_id != "supervisor_3"));
    expect_code(
        admin
            .delete_reviewer(DeleteReviewerRequest {
                reviewer_id: "supervisor_3".into(),
            })
            .await,
        Code::NotFound,
        "DeleteReviewer of a deleted reviewer",
    );
    expect_code(
        admin
            .update_reviewer(UpdateReviewerRequest {
                reviewer_id: "nobody".into(),
                name: Some("x".into()),
                ..Default::default()
            })
            .await,
        Code::NotFound,
        "UpdateReviewer(unknown)",
    );
}

#[tokio::test]
async fn deleting_a_reviewer_hands_their_escalations_to_another() {
    let server = Server::start().await;
    let response = create_refund_escalation(&mut server.desk(), "cust_orphan").await;
    let get = GetEscalationRequest {
        escalation_id: response.escalation_id.clone(),
    };
    let before = ok(
        server.escalations().get_escalation(get.clone()).await,
        "GetEscalation",
    );
    assert_eq!(before.assigned_reviewer_id, "supervisor_1");
    ok(
        server
            .admin()
            .delete_reviewer(DeleteReviewerRequest {
                reviewer_id: "supervisor_1".into(),
            })
            .await,
        "DeleteReviewer supervisor_1",
    );
    let after = ok(
        server.escalations().get_escalation(get).await,
        "GetEscalation",
    );
    assert_eq!(
        after.assigned_reviewer_id, "manager_1",
        "the generalist takes the billing review"
    );
}

#[tokio::test]
async fn a_new_reviewer_takes_waiting_escalations_at_once() {
    let server = Server::start().await;
    let mut desk = server.desk();
    // Fill supervisor_1 (3) and manager_1 (5); the ninth billing review waits unassigned.
    for i in 0..8 {
        create_refund_escalation(&mut desk, &format!("cust_busy_{i}")).await;
    }
    let waiting = create_refund_escalation(&mut desk, "cust_waits")
        .await
        .escalation_id;
    let get = GetEscalationRequest {
        escalation_id: waiting.clone(),
    };
    assert_eq!(
        ok(
            server.escalations().get_escalation(get.clone()).await,
            "GetEscalation"
        )
        .assigned_reviewer_id,
        ""
    );
    ok(
        server
            .admin()
            .create_reviewer(CreateReviewerRequest {
                reviewer_id: "billing_lead".into(),
                name: "Billing Lead".into(),
                specialties: vec!["billing".into()],
                max_concurrent: 2,
            })
            .await,
        "CreateReviewer",
    );
    let escalation = ok(
        server.escalations().get_escalation(get).await,
        "GetEscalation",
    );
    assert_eq!(escalation.assigned_reviewer_id, "billing_lead");
    let lead = reviewers(&server)
        .await
        .into_iter()
        .find(|r| r.reviewer_id == "billing_lead")
        .unwrap();
    assert_eq!(lead.load, 1);
}

#[tokio::test]
async fn desk_status_follows_the_tickets() {
    let server = Server::start().await;
    let mut desk = server.desk();
    ask(&mut desk, inquiry("cust_st1", PASSWORD_RESET)).await;
    ask(&mut desk, inquiry("cust_st2", PASSWORD_RESET)).await;
    create_refund_escalation(&mut desk, "cust_st3").await;

    let status = ok(
        server
            .admin()
            .get_desk_status(GetDeskStatusRequest {})
            .await,
        "GetDeskStatus",
    );
    assert_eq!(status.total_handled, 2);
    assert_eq!(status.open_tickets, 1);
    assert_eq!(status.queued_tickets, 0);
    assert!(status.avg_resolution_time.is_some());
    assert!((0.0..=1.0).contains(&status.escalation_rate));
    assert!((0.0..=1.0).contains(&status.utilization));
    assert!(status.sequence > 0);
    let stats = status.escalation_stats.expect("escalation stats");
    assert_eq!(stats.total, 1);
    assert_eq!(stats.active, 1);
}

#[tokio::test]
async fn routing_strategy_update_round_trips_and_survives_a_restart() {
    let server = Server::start().await;
    let mut admin = server.admin();
    let updated = ok(
        admin
            .update_config(UpdateConfigRequest {
                config: Some(DeskConfig {
                    routing_strategy: RoutingStrategy::RoundRobin as i32,
                    ..Default::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["routing_strategy".into()],
                }),
            })
            .await,
        "UpdateConfig routing_strategy",
    );
    assert_eq!(updated.routing_strategy(), RoutingStrategy::RoundRobin);
    assert_eq!(
        updated.escalation_timeout,
        Some(ProtoDuration {
            seconds: 900,
            nanos: 0
        }),
        "fields outside the mask stay"
    );
    let fetched = ok(admin.get_config(GetConfigRequest {}).await, "GetConfig");
    assert_eq!(fetched, updated);

    // An out-of-range timeout is refused and changes nothing.
    expect_code(
        admin
            .update_config(UpdateConfigRequest {
                config: Some(DeskConfig {
                    escalation_timeout: Some(ProtoDuration {
                        seconds: 0,
                        nanos: 0,
                    }),
                    ..Default::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["escalation_timeout".into()],
                }),
            })
            .await,
        Code::InvalidArgument,
        "UpdateConfig escalation_timeout 0 s",
    );

    // Round-robin: three first-tier agents take account questions, each in turn, in id order.
    for name in ["RR_1", "RR_2"] {
        ok(
            admin
                .create_agent(CreateAgentRequest {
                    name: name.into(),
                    tier: "L1".into(),
                    specialties: vec!["account".into()],
                    ..Default::default()
                })
                .await,
            "CreateAgent",
        );
    }
    let mut desk = server.desk();
    let mut answered_by = Vec::new();
    for n in 0..6 {
        let response = ask(&mut desk, inquiry(&format!("cust_rr_{n}"), PASSWORD_RESET)).await;
        assert_eq!(response.ticket.unwrap().status(), TicketStatus::Resolved);
        answered_by.push(response.agent);
    }
    assert_eq!(
        answered_by,
        ["L1_Agent_3", "RR_1", "RR_2", "L1_Agent_3", "RR_1", "RR_2"],
        "each in turn"
    );

    let root = server.terminate().await;
    let server = Server::start_with(root, &[], None).await;
    let after = ok(
        server.admin().get_config(GetConfigRequest {}).await,
        "GetConfig after restart",
    );
    assert_eq!(
        after.routing_strategy(),
        RoutingStrategy::RoundRobin,
        "kept across restarts"
    );
    assert_eq!(after, updated);
}
