//! Hostile and malformed requests across every service, one table: each gets its documented
//! code (INVALID_ARGUMENT with a BadRequest naming the field where a field is at fault), and
//! the server goes on serving. Then the explicit limits: the largest message, the streams one
//! connection may open, and the calls in flight, past which a call is refused at once.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use common::*;
use servicedesk::proto::v1::{
    AgentAvailability, ApproveEscalationRequest, AssignEscalationRequest, AttachRequest,
    CreateAgentRequest, CreateApiKeyRequest, CreateReviewerRequest, DeskConfig,
    GetCustomerHistoryRequest, GetEscalationRequest, GetTicketRequest, HandleInquiryRequest,
    ListAgentsRequest, ListEscalationsRequest, ListTicketsRequest, RejectEscalationRequest,
    ReplyRequest, RevokeApiKeyRequest, TicketStatus, UpdateAgentRequest, UpdateConfigRequest,
    WatchEscalationsRequest, WatchEventsRequest, WatchTicketRequest,
};
use tonic::metadata::AsciiMetadataValue;
use tonic::{Code, Request, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::HealthCheckRequest;

type Call = Pin<Box<dyn Future<Output = Result<(), Status>> + Send>>;

/// One hostile request: what it is, what it must get, the field a BadRequest must name.
struct Case {
    what: String,
    code: Code,
    field: Option<&'static str>,
    call: Call,
}

fn call<T, F>(future: F) -> Call
where
    F: Future<Output = Result<tonic::Response<T>, Status>> + Send + 'static,
    T: Send + 'static,
{
    Box::pin(async move { future.await.map(|_| ()) })
}

/// A server stream's first item: its error, or OK when it starts normally (a message, or
/// nothing for as long as a loaded machine could take to send an error).
fn stream<T, F>(future: F) -> Call
where
    F: Future<Output = Result<tonic::Response<tonic::Streaming<T>>, Status>> + Send + 'static,
    T: Send + 'static,
{
    Box::pin(async move {
        let mut stream = future.await?.into_inner();
        match tokio::time::timeout(STREAM_TIMEOUT, stream.message()).await {
            Ok(Err(status)) => Err(status),
            _ => Ok(()),
        }
    })
}

fn bad(what: impl Into<String>, field: &'static str, call: Call) -> Case {
    Case {
        what: what.into(),
        code: Code::InvalidArgument,
        field: Some(field),
        call,
    }
}

fn refused(what: impl Into<String>, code: Code, call: Call) -> Case {
    Case {
        what: what.into(),
        code,
        field: None,
        call,
    }
}

fn asking(f: impl FnOnce(&mut HandleInquiryRequest)) -> HandleInquiryRequest {
    let mut request = inquiry("cust_abuse", PASSWORD_RESET);
    f(&mut request);
    request
}

async fn cases(server: &Server) -> Vec<Case> {
    let review = create_refund_escalation(&mut server.desk(), "cust_abuse_review")
        .await
        .escalation_id;
    let mike = server.create_key("supervisor_2", &["escalation"]).await;
    let revoked = server.create_key("gone", &["*"]).await;
    let revoked_id = revoked.split('_').nth(1).unwrap().to_string();
    ok(
        server
            .admin()
            .revoke_api_key(RevokeApiKeyRequest { key_id: revoked_id })
            .await,
        "RevokeApiKey",
    );

    let desk = || server.desk();
    let esc = || server.escalations();
    let admin = || server.admin();
    let agents = || server.agents_as(ADMIN_KEY);
    let hi = |f: fn(&mut HandleInquiryRequest)| {
        let mut d = desk();
        let request = asking(f);
        call(async move { d.handle_inquiry(request).await })
    };

    let mut cases = vec![
        bad(
            "empty customer_id",
            "customer_id",
            hi(|r| r.customer_id.clear()),
        ),
        bad(
            "customer_id of 129 bytes",
            "customer_id",
            hi(|r| r.customer_id = "c".repeat(129)),
        ),
        bad(
            "customer_id with a bell",
            "customer_id",
            hi(|r| r.customer_id = "a\u{7}b".into()),
        ),
        bad(
            "customer_id with a newline",
            "customer_id",
            hi(|r| r.customer_id = "a\nb".into()),
        ),
        bad("empty inquiry", "inquiry", hi(|r| r.inquiry.clear())),
        bad(
            "blank inquiry",
            "inquiry",
            hi(|r| r.inquiry = " \t\n ".into()),
        ),
        bad(
            "inquiry of 16 KiB + 1",
            "inquiry",
            hi(|r| r.inquiry = "x".repeat(16 * 1024 + 1)),
        ),
        bad(
            "inquiry with a NUL",
            "inquiry",
            hi(|r| r.inquiry = "reset\0password".into()),
        ),
        bad(
            "33 context entries",
            "context",
            hi(|r| {
                r.context = (0..33)
                    .map(|i| (format!("k{i}"), "v".to_string()))
                    .collect()
            }),
        ),
        bad(
            "context key of 65 bytes",
            "context",
            hi(|r| {
                r.context.insert("k".repeat(65), "v".into());
            }),
        ),
        bad(
            "empty context key",
            "context",
            hi(|r| {
                r.context.insert(String::new(), "v".into());
            }),
        ),
        bad(
            "context value of 1 KiB + 1",
            "context",
            hi(|r| {
                r.context.insert("note".into(), "v".repeat(1025));
            }),
        ),
        bad(
            "context value with an escape",
            "context",
            hi(|r| {
                r.context.insert("note".into(), "\u{1b}[31mred".into());
            }),
        ),
        bad("priority 11", "priority", hi(|r| r.priority = 11)),
        bad("priority -1", "priority", hi(|r| r.priority = -1)),
        bad(
            "priority i32::MAX",
            "priority",
            hi(|r| r.priority = i32::MAX),
        ),
        bad(
            "topic with spaces and punctuation",
            "topic",
            hi(|r| r.topic = "bill ing!".into()),
        ),
        bad(
            "topic of 65 bytes",
            "topic",
            hi(|r| r.topic = "t".repeat(65)),
        ),
        bad(
            "idempotency_key of 129 bytes",
            "idempotency_key",
            hi(|r| r.idempotency_key = "k".repeat(129)),
        ),
        bad(
            "idempotency_key with a tab",
            "idempotency_key",
            hi(|r| r.idempotency_key = "a\tb".into()),
        ),
        refused(
            "a 5 MiB message",
            Code::ResourceExhausted,
            hi(|r| r.inquiry = "x".repeat(5 * 1024 * 1024)),
        ),
        bad("empty ticket_id", "ticket_id", {
            let mut d = desk();
            call(async move { d.get_ticket(GetTicketRequest::default()).await })
        }),
        bad("a path as ticket_id", "ticket_id", {
            let mut d = desk();
            call(async move {
                d.get_ticket(GetTicketRequest {
                    ticket_id: "../../etc/passwd".into(),
                })
                .await
            })
        }),
        refused("an unknown ticket", Code::NotFound, {
            let mut d = desk();
            call(async move {
                d.get_ticket(GetTicketRequest {
                    ticket_id: "tkt_00000000000000000000".into(),
                })
                .await
            })
        }),
        bad("negative page_size", "page_size", {
            let mut d = desk();
            call(async move {
                d.list_tickets(ListTicketsRequest {
                    page_size: -1,
                    ..Default::default()
                })
                .await
            })
        }),
        refused("page_size of 10^9 is clamped, not refused", Code::Ok, {
            let mut d = desk();
            call(async move {
                d.list_tickets(ListTicketsRequest {
                    page_size: 1_000_000_000,
                    ..Default::default()
                })
                .await
            })
        }),
        bad("unknown TicketStatus 99", "status", {
            let mut d = desk();
            call(async move {
                d.list_tickets(ListTicketsRequest {
                    status: 99,
                    ..Default::default()
                })
                .await
            })
        }),
        bad("a forged page_token", "page_token", {
            let mut d = desk();
            call(async move {
                d.list_tickets(ListTicketsRequest {
                    page_token: "'; DROP TABLE tickets; --".into(),
                    ..Default::default()
                })
                .await
            })
        }),
        bad("WatchTicket of a malformed id", "ticket_id", {
            let mut d = desk();
            stream(async move {
                d.watch_ticket(WatchTicketRequest {
                    ticket_id: "nope".into(),
                    after_sequence: 0,
                })
                .await
            })
        }),
        bad("negative history limit", "limit", {
            let mut d = desk();
            call(async move {
                d.get_customer_history(GetCustomerHistoryRequest {
                    customer_id: "c".into(),
                    limit: -5,
                })
                .await
            })
        }),
        bad("history of nobody", "customer_id", {
            let mut d = desk();
            call(async move {
                d.get_customer_history(GetCustomerHistoryRequest::default())
                    .await
            })
        }),
        bad("unknown EscalationState 42", "state", {
            let mut e = esc();
            call(async move {
                e.list_escalations(ListEscalationsRequest {
                    state: 42,
                    ..Default::default()
                })
                .await
            })
        }),
        bad("a malformed escalation_id", "escalation_id", {
            let mut e = esc();
            call(async move {
                e.get_escalation(GetEscalationRequest {
                    escalation_id: "esc".into(),
                })
                .await
            })
        }),
        refused("approving an unknown escalation", Code::NotFound, {
            let mut e = esc();
            call(async move {
                e.approve_escalation(ApproveEscalationRequest {
                    escalation_id: "esc_00000000000000000000".into(),
                    ..Default::default()
                })
                .await
            })
        }),
        bad("rejecting without a reason", "reason", {
            let mut e = esc();
            let id = review.clone();
            call(async move {
                e.reject_escalation(RejectEscalationRequest {
                    escalation_id: id,
                    ..Default::default()
                })
                .await
            })
        }),
        refused(
            "deciding another reviewer's escalation without admin",
            Code::PermissionDenied,
            {
                let mut e = server.escalations_as(&mike);
                let id = review.clone();
                call(async move {
                    e.approve_escalation(ApproveEscalationRequest {
                        escalation_id: id,
                        ..Default::default()
                    })
                    .await
                })
            },
        ),
        refused(
            "deciding as another reviewer without admin",
            Code::PermissionDenied,
            {
                let mut e = server.escalations_as(&mike);
                let id = review.clone();
                call(async move {
                    e.approve_escalation(ApproveEscalationRequest {
                        escalation_id: id,
                        reviewer_id: "supervisor_1".into(),
                        ..Default::default()
                    })
                    .await
                })
            },
        ),
        bad("assigning to a malformed reviewer_id", "reviewer_id", {
            let mut e = esc();
            let id = review.clone();
            call(async move {
                e.assign_escalation(AssignEscalationRequest {
                    escalation_id: id,
                    reviewer_id: "<script>".into(),
                })
                .await
            })
        }),
        bad("watching a malformed reviewer_id", "reviewer_id", {
            let mut e = esc();
            stream(async move {
                e.watch_escalations(WatchEscalationsRequest {
                    reviewer_id: "a b".into(),
                    after_sequence: 0,
                })
                .await
            })
        }),
        bad("an agent name with spaces", "name", {
            let mut a = admin();
            call(async move {
                a.create_agent(CreateAgentRequest {
                    name: "Bobby Tables".into(),
                    tier: "L1".into(),
                    ..Default::default()
                })
                .await
            })
        }),
        bad("an unknown tier", "tier", {
            let mut a = admin();
            call(async move {
                a.create_agent(CreateAgentRequest {
                    name: "Ghost".into(),
                    tier: "L9".into(),
                    ..Default::default()
                })
                .await
            })
        }),
        bad("capacity 5000", "capacity", {
            let mut a = admin();
            call(async move {
                a.create_agent(CreateAgentRequest {
                    name: "Huge".into(),
                    tier: "L1".into(),
                    capacity: 5000,
                    ..Default::default()
                })
                .await
            })
        }),
        bad("unknown AgentKind 7", "kind", {
            let mut a = admin();
            call(async move {
                a.create_agent(CreateAgentRequest {
                    name: "Odd".into(),
                    tier: "L1".into(),
                    kind: 7,
                    ..Default::default()
                })
                .await
            })
        }),
        bad("unknown AgentAvailability 9", "availability", {
            let mut a = admin();
            call(async move {
                a.update_agent(UpdateAgentRequest {
                    agent_id: "agt_000001".into(),
                    availability: Some(9),
                    ..Default::default()
                })
                .await
            })
        }),
        refused("updating an unknown agent", Code::NotFound, {
            let mut a = admin();
            call(async move {
                a.update_agent(UpdateAgentRequest {
                    agent_id: "agt_999999".into(),
                    availability: Some(AgentAvailability::Paused as i32),
                    ..Default::default()
                })
                .await
            })
        }),
        bad("a reviewer that can hold nothing", "max_concurrent", {
            let mut a = admin();
            call(async move {
                a.create_reviewer(CreateReviewerRequest {
                    reviewer_id: "zero".into(),
                    name: "Zero".into(),
                    max_concurrent: 100_000,
                    ..Default::default()
                })
                .await
            })
        }),
        bad("a permission that does not exist", "permissions", {
            let mut a = admin();
            call(async move {
                a.create_api_key(CreateApiKeyRequest {
                    client_id: "x".into(),
                    client_name: "X".into(),
                    permissions: vec!["root".into()],
                })
                .await
            })
        }),
        refused("revoking an unknown key", Code::NotFound, {
            let mut a = admin();
            call(async move {
                a.revoke_api_key(RevokeApiKeyRequest {
                    key_id: "000000000000".into(),
                })
                .await
            })
        }),
        bad("a zero escalation timeout", "config.escalation_timeout", {
            let mut a = admin();
            call(async move {
                a.update_config(UpdateConfigRequest {
                    config: Some(DeskConfig {
                        escalation_timeout: Some(prost_types::Duration::default()),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["escalation_timeout".into()],
                    }),
                })
                .await
            })
        }),
        bad("an update_mask naming nothing known", "update_mask", {
            let mut a = admin();
            call(async move {
                a.update_config(UpdateConfigRequest {
                    config: Some(DeskConfig::default()),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["admin_password".into()],
                    }),
                })
                .await
            })
        }),
        bad("after_sequence of u64::MAX", "after_sequence", {
            let mut a = admin();
            stream(async move {
                a.watch_events(WatchEventsRequest {
                    after_sequence: u64::MAX,
                    kinds: vec![],
                })
                .await
            })
        }),
        bad("unknown DeskEventKind 9", "kinds", {
            let mut a = admin();
            stream(async move {
                a.watch_events(WatchEventsRequest {
                    after_sequence: 0,
                    kinds: vec![9],
                })
                .await
            })
        }),
        bad("an Attach with neither id nor name", "name", {
            let mut g = agents();
            stream(async move { g.attach(AttachRequest::default()).await })
        }),
        bad("an Attach with both id and name", "agent_id", {
            let mut g = agents();
            stream(async move {
                g.attach(AttachRequest {
                    agent_id: "agt_000001".into(),
                    name: "Twice".into(),
                    ..Default::default()
                })
                .await
            })
        }),
        refused("attaching a built-in agent", Code::FailedPrecondition, {
            let mut g = agents();
            stream(async move {
                g.attach(AttachRequest {
                    agent_id: "agt_000001".into(),
                    ..Default::default()
                })
                .await
            })
        }),
        bad("a Reply without an outcome", "outcome", {
            let mut g = agents();
            call(async move {
                g.reply(ReplyRequest {
                    assignment_id: "asg_x_1".into(),
                    outcome: None,
                })
                .await
            })
        }),
        refused("a revoked key", Code::Unauthenticated, {
            let mut d = server.desk_as(&revoked);
            call(async move { d.list_tickets(ListTicketsRequest::default()).await })
        }),
        refused("a key that was never issued", Code::Unauthenticated, {
            let mut d = server.desk_as("sd_000000000000_0000");
            call(async move { d.list_tickets(ListTicketsRequest::default()).await })
        }),
    ];

    // Keys in malformed metadata.
    let raw = |header: &'static str, value: &'static str| {
        let mut client =
            servicedesk::proto::v1::desk_service_client::DeskServiceClient::new(server.channel());
        call(async move {
            let mut request = Request::new(ListTicketsRequest::default());
            request
                .metadata_mut()
                .insert(header, AsciiMetadataValue::from_static(value));
            client.list_tickets(request).await
        })
    };
    cases.push(refused(
        "an empty x-api-key",
        Code::Unauthenticated,
        raw("x-api-key", ""),
    ));
    cases.push(refused(
        "authorization: Basic",
        Code::Unauthenticated,
        raw("authorization", "Basic dGVzdDp0ZXN0"),
    ));
    cases.push(refused(
        "authorization: Bearer without a token",
        Code::Unauthenticated,
        raw("authorization", "Bearer"),
    ));
    cases.push(refused(
        "a dev key with trailing junk",
        Code::Unauthenticated,
        raw("x-api-key", "test-key-123 OR 1=1"),
    ));
    cases
}

#[tokio::test]
async fn hostile_requests_get_their_documented_code_and_the_server_goes_on() {
    let server = Server::start().await;
    let cases = cases(&server).await;
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let result = case.call.await;
        let code = match &result {
            Ok(()) => Code::Ok,
            Err(status) => status.code(),
        };
        if code != case.code {
            failures.push(format!(
                "{}: expected {:?}, got {:?} ({:?})",
                case.what,
                case.code,
                code,
                result.err().map(|s| s.message().to_string())
            ));
            continue;
        }
        if let (Some(field), Err(status)) = (case.field, &result) {
            let fields = bad_request_fields(status);
            if !fields.iter().any(|f| names_field(f, field)) {
                failures.push(format!(
                    "{}: the BadRequest names {fields:?}, not {field}",
                    case.what
                ));
            }
        }
        if let Err(status) = &result {
            if status.message().is_empty() {
                failures.push(format!("{}: an empty message", case.what));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Still serving, and nothing bad got in.
    let health = ok(
        server
            .health()
            .check(HealthCheckRequest {
                service: "servicedesk.v1.DeskService".into(),
            })
            .await,
        "Health",
    );
    assert_eq!(health.status(), ServingStatus::Serving);
    let answer = ask(
        &mut server.desk(),
        inquiry("cust_after_abuse", PASSWORD_RESET),
    )
    .await;
    assert_eq!(answer.ticket.unwrap().status(), TicketStatus::Resolved);
    let agents = ok(
        server
            .admin()
            .list_agents(ListAgentsRequest::default())
            .await,
        "ListAgents",
    );
    assert_eq!(agents.agents.len(), 6, "no hostile agent was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_calls_in_flight_limit_a_call_is_refused_at_once() {
    // One client may fill the whole server here: this is about the limit across clients.
    let config = "[server]\nmax_concurrent_requests = 4\nmax_requests_per_client = 4\n\
                  max_concurrent_streams = 64\n";
    let server = Server::start_with_config(config).await;
    // Four calls that wait: nobody can take their tickets.
    set_every_agent(&server, AgentAvailability::Paused).await;
    let mut waiting = Vec::new();
    for n in 0..4 {
        let mut desk = server.desk();
        waiting.push(tokio::spawn(async move {
            // Nobody will answer them: once in, they wait until the test lets them go. A probe
            // below may take a place first; then they try again, as a client would.
            loop {
                let mut request = Request::new(inquiry(&format!("cust_wait_{n}"), PASSWORD_RESET));
                request.set_timeout(Duration::from_secs(600));
                match desk.handle_inquiry(request).await {
                    Err(s) if s.code() == Code::ResourceExhausted => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    other => return other,
                }
            }
        }));
    }
    let server_ref = &server;
    // The fifth is refused at once, not queued.
    let refused = poll_until(
        Duration::from_secs(10),
        "the limit is reached",
        || async move {
            match server_ref
                .desk()
                .get_ticket(GetTicketRequest {
                    ticket_id: "tkt_00000000000000000000".into(),
                })
                .await
            {
                Err(status) if status.code() == Code::ResourceExhausted => Some(status),
                _ => None,
            }
        },
    )
    .await;
    // Refused while all four still wait: not queued behind them, which would have taken
    // until one of them ended.
    assert!(
        waiting.iter().all(|w| !w.is_finished()),
        "the four calls still wait"
    );
    assert!(refused.message().contains("retry"), "{}", refused.message());
    // Probes still answer.
    ok(
        server.health().check(HealthCheckRequest::default()).await,
        "Health at the limit",
    );
    // The four give up; once the server has seen them go, calls are served again.
    for call in &waiting {
        call.abort();
    }
    poll_until(
        Duration::from_secs(30),
        "a call served after the load went away",
        || async move {
            let answer = server_ref
                .desk()
                .get_ticket(GetTicketRequest {
                    ticket_id: "tkt_00000000000000000000".into(),
                })
                .await;
            matches!(answer, Err(s) if s.code() == Code::NotFound).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn one_connection_cannot_open_more_streams_than_allowed() {
    let server = Server::start_with_config("[server]\nmax_concurrent_streams = 8\n").await;
    // Twelve watches on one connection: eight open; the rest are refused (REFUSED_STREAM,
    // UNAVAILABLE to the caller) or held back by the client until a slot frees. The server
    // never runs more than eight streams of one connection.
    let channel = server.new_channel().await;
    let mut watches = Vec::new();
    for _ in 0..12 {
        let mut admin =
            servicedesk::proto::v1::admin_service_client::AdminServiceClient::new(channel.clone());
        watches.push(tokio::spawn(async move {
            let mut request = Request::new(WatchEventsRequest::default());
            request
                .metadata_mut()
                .insert("x-api-key", ADMIN_KEY.parse().unwrap());
            // A held-back stream never opens; one the server took opens well within this.
            tokio::time::timeout(STREAM_TIMEOUT, admin.watch_events(request)).await
        }));
    }
    // Hold every opened stream open while counting.
    let mut open_streams = Vec::new();
    let mut held_back = 0;
    for watch in watches {
        match watch.await.unwrap() {
            Ok(Ok(stream)) => open_streams.push(stream),
            Ok(Err(status)) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
            Err(_) => held_back += 1,
        }
    }
    assert_eq!(
        open_streams.len(),
        8,
        "exactly the allowed streams opened on one connection ({held_back} held back)"
    );
    // Another connection is not held back by the first.
    let answer = ask(&mut server.desk(), inquiry("cust_streams", PASSWORD_RESET)).await;
    assert_eq!(answer.ticket.unwrap().status(), TicketStatus::Resolved);
}

#[tokio::test]
async fn open_streams_are_bounded_across_connections() {
    let server = Server::start_with_config("[server]\nmax_open_streams = 2\n").await;
    let open = |server: &Server| {
        let mut admin = server.admin();
        async move { admin.watch_events(WatchEventsRequest::default()).await }
    };
    let first = open(&server).await.expect("the first stream opens");
    // Another connection counts against the same limit.
    let mut other = servicedesk::proto::v1::admin_service_client::AdminServiceClient::new(
        server.new_channel().await,
    );
    let mut request = Request::new(WatchEventsRequest::default());
    request
        .metadata_mut()
        .insert("x-api-key", ADMIN_KEY.parse().unwrap());
    let second = other
        .watch_events(request)
        .await
        .expect("the second stream opens");
    let refused = open(&server)
        .await
        .expect_err("a third stream is one too many");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    // Closing one frees its slot.
    drop(first);
    let server_ref = &server;
    poll_until(Duration::from_secs(10), "a slot frees up", || async move {
        open(server_ref).await.ok()
    })
    .await;
    drop(second);
}
