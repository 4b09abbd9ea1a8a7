//! Remote agents over AgentService against the real binary: the example agent process, agents
//! that die or fall silent mid-assignment, reply rules, take-over, pause, policy, restarts,
//! and a burst of 5,000 inquiries over 100 agents.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use servicedesk::proto::v1::attach_response::Message;
use servicedesk::proto::v1::reply_request::Outcome;
use servicedesk::proto::v1::{
    AgentAvailability, Assignment, AttachRequest, AttachResponse, EscalationPriority,
    GetDeskStatusRequest, GetEscalationRequest, ListAgentsRequest, PathOutcome, ReplyRequest,
    Resolve, Revoked, TicketStatus, UpdateAgentRequest,
};
use tonic::Code;

/// L1 has no built-in agents, so L1 work goes to the remote agents under test; L2 and Expert
/// have built-in ones to hand tickets on to.
const REMOTE_FIRST_TIER: &str = "[[desk.tiers]]\nname = \"L1\"\nagents = 0\n\
[[desk.tiers]]\nname = \"L2\"\nagents = 2\n[[desk.tiers]]\nname = \"Expert\"\nagents = 1\n";

/// An agent process played by the test: its own connection, its Attach stream.
struct TestAgent {
    agent_id: String,
    client: AgentClient,
    stream: Watch<AttachResponse>,
}

impl TestAgent {
    async fn attach(server: &Server, key: &str, request: AttachRequest) -> TestAgent {
        let client = server.agents_on_own_connection(key).await;
        let mut opener = client.clone();
        let mut stream = Watch::open("Attach", async move { opener.attach(request).await });
        let first = stream.expect_next().await;
        let Some(Message::Attached(attached)) = first.message else {
            panic!("the first message of Attach must be `attached`, got {first:?}");
        };
        TestAgent {
            agent_id: attached.agent_id,
            client,
            stream,
        }
    }

    async fn register(server: &Server, name: &str, tier: &str, capacity: u32) -> TestAgent {
        let request = AttachRequest {
            name: name.into(),
            tier: tier.into(),
            capacity,
            ..Default::default()
        };
        TestAgent::attach(server, ADMIN_KEY, request).await
    }

    async fn next_message(&mut self) -> Message {
        self.stream
            .expect_next()
            .await
            .message
            .expect("a message body")
    }

    async fn next_assignment(&mut self) -> Assignment {
        match self.next_message().await {
            Message::Assignment(a) => a,
            other => panic!("expected an assignment, got {other:?}"),
        }
    }

    async fn next_revoked(&mut self) -> Revoked {
        match self.next_message().await {
            Message::Revoked(r) => r,
            other => panic!("expected a revocation, got {other:?}"),
        }
    }

    async fn resolve(
        &mut self,
        assignment_id: &str,
        text: &str,
    ) -> Result<tonic::Response<servicedesk::proto::v1::ReplyResponse>, tonic::Status> {
        self.client
            .reply(ReplyRequest {
                assignment_id: assignment_id.into(),
                outcome: Some(Outcome::Resolve(Resolve {
                    response: text.into(),
                })),
            })
            .await
    }
}

/// Sends an inquiry in the background; the answer comes when the ticket settles.
fn ask_later(
    server: &Server,
    request: servicedesk::proto::v1::HandleInquiryRequest,
) -> tokio::task::JoinHandle<servicedesk::proto::v1::HandleInquiryResponse> {
    let mut desk = server.desk();
    tokio::spawn(async move { ask(&mut desk, request).await })
}

/// Waits until the agent called `name` is listed OFFLINE.
async fn goes_offline(server: &Server, name: &str) {
    poll_until(
        Duration::from_secs(20),
        &format!("{name} goes offline"),
        || async move {
            let agent = agent_named(server, name).await;
            (agent.availability() == AgentAvailability::Offline).then_some(())
        },
    )
    .await;
}

async fn agent_named(server: &Server, name: &str) -> servicedesk::proto::v1::Agent {
    find_agent(server, name)
        .await
        .unwrap_or_else(|| panic!("agent {name} is listed"))
}

async fn find_agent(server: &Server, name: &str) -> Option<servicedesk::proto::v1::Agent> {
    ok(
        server
            .admin()
            .list_agents(ListAgentsRequest {
                page_size: 500,
                ..Default::default()
            })
            .await,
        "ListAgents",
    )
    .agents
    .into_iter()
    .find(|a| a.name == name)
}

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_example_agent_answers_what_routing_sends_it() {
    let server = Server::start_with_config(REMOTE_FIRST_TIER).await;
    let mut example = Process(
        Command::new(example_binary("remote_agent"))
            .args(["--target", &format!("http://{}", server.addr())])
            .args([
                "--api-key",
                ADMIN_KEY,
                "--name",
                "Example_L1",
                "--tier",
                "L1",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the example agent"),
    );
    let server_ref = &server;
    poll_until(
        Duration::from_secs(20),
        "the example attaches",
        || async move {
            let agent = find_agent(server_ref, "Example_L1").await?;
            (agent.availability() == AgentAvailability::Available).then_some(())
        },
    )
    .await;

    let answer = ask(&mut server.desk(), inquiry("cust_example", PASSWORD_RESET)).await;
    let ticket = answer.ticket.unwrap();
    assert_eq!(ticket.status(), TicketStatus::Resolved);
    assert_eq!(answer.agent, "Example_L1");
    assert!(
        answer
            .response
            .starts_with("Thanks for asking about account"),
        "{}",
        answer.response
    );

    // It sends money matters to a person: a HIGH review for the billing supervisor.
    let refund = ask(&mut server.desk(), refund_request("cust_example_refund")).await;
    assert_eq!(
        refund.ticket.as_ref().unwrap().status(),
        TicketStatus::AwaitingReview
    );
    let review = ok(
        server
            .escalations()
            .get_escalation(GetEscalationRequest {
                escalation_id: refund.escalation_id.clone(),
            })
            .await,
        "GetEscalation",
    );
    assert_eq!(review.requested_by, "Example_L1");
    assert_eq!(review.priority(), EscalationPriority::High);
    assert_eq!(review.assigned_reviewer_id, "supervisor_1");

    // Killed, it goes offline.
    example.0.kill().unwrap();
    example.0.wait().unwrap();
    goes_offline(server_ref, "Example_L1").await;
}

#[tokio::test]
async fn an_agent_that_dies_mid_assignment_loses_the_ticket_to_another_agent() {
    let server = Server::start_with_config(REMOTE_FIRST_TIER).await;
    let mut agent = TestAgent::register(&server, "Doomed", "L1", 2).await;
    let waiting = ask_later(&server, inquiry("cust_doomed", PASSWORD_RESET));
    let assignment = agent.next_assignment().await;
    assert_eq!(assignment.ticket.as_ref().unwrap().inquiry, PASSWORD_RESET);
    assert!(
        !assignment.instructions.is_empty(),
        "the tier's brief comes along"
    );
    // The process dies: its connection closes with the stream.
    drop(agent);

    let answer = waiting.await.unwrap();
    let ticket = answer.ticket.unwrap();
    assert_eq!(ticket.status(), TicketStatus::Resolved);
    let steps: Vec<(String, PathOutcome)> = ticket
        .resolution_path
        .iter()
        .map(|s| (s.agent_name.clone(), s.outcome()))
        .collect();
    assert_eq!(steps[0], ("Doomed".to_string(), PathOutcome::HandedOn));
    assert!(ticket.resolution_path[0].detail.contains("offline"));
    assert_eq!(steps.last().unwrap().1, PathOutcome::Resolved);
    // No other agent in L1; the L2 agents' specialties do not cover account: the top tier,
    // which takes anything, answers.
    assert_eq!(ticket.resolution_path.last().unwrap().tier, "Expert");
    let doomed = agent_named(&server, "Doomed").await;
    assert_eq!(doomed.availability(), AgentAvailability::Offline);
    assert_eq!(doomed.load, 0);
}

#[tokio::test]
async fn a_silent_agent_loses_the_ticket_at_its_deadline() {
    let config = format!("[desk]\nassignment_timeout_secs = 1\n{REMOTE_FIRST_TIER}");
    let server = Server::start_with_config(&config).await;
    let mut silent = TestAgent::register(&server, "Silent", "L1", 1).await;
    let started = Instant::now();
    let waiting = ask_later(&server, inquiry("cust_silent", PASSWORD_RESET));
    let assignment = silent.next_assignment().await;
    let revoked = silent.next_revoked().await;
    assert_eq!(revoked.assignment_id, assignment.assignment_id);
    let answer = waiting.await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "handed on at the 1 s deadline, not before"
    );
    let ticket = answer.ticket.unwrap();
    assert_eq!(ticket.status(), TicketStatus::Resolved);
    assert_eq!(ticket.resolution_path[0].agent_name, "Silent");
    assert_eq!(ticket.resolution_path[0].outcome(), PathOutcome::HandedOn);
    assert!(ticket.resolution_path[0].detail.contains("deadline"));

    // Too late now.
    expect_code(
        silent
            .resolve(&assignment.assignment_id, "sorry, I was away")
            .await,
        Code::FailedPrecondition,
        "a reply after the deadline",
    );
    let agent = agent_named(&server, "Silent").await;
    assert_eq!(agent.load, 0);
    assert_eq!(agent.availability(), AgentAvailability::Available);
}

#[tokio::test]
async fn replies_are_checked() {
    let server = Server::start_with_config(REMOTE_FIRST_TIER).await;
    let key = server.create_key("agent_host_a", &["agent"]).await;
    let other_key = server.create_key("agent_host_b", &["agent"]).await;
    let mut agent = TestAgent::attach(
        &server,
        &key,
        AttachRequest {
            name: "Careful".into(),
            tier: "L1".into(),
            capacity: 2,
            ..Default::default()
        },
    )
    .await;
    let waiting = ask_later(&server, inquiry("cust_careful", PASSWORD_RESET));
    let assignment = agent.next_assignment().await;
    let id = assignment.assignment_id.clone();

    let mut stranger = server.agents_as(&other_key);
    expect_code(
        stranger
            .reply(ReplyRequest {
                assignment_id: id.clone(),
                outcome: Some(Outcome::Resolve(Resolve {
                    response: "not mine to answer".into(),
                })),
            })
            .await,
        Code::PermissionDenied,
        "a reply from another client",
    );
    expect_bad_field(
        agent
            .client
            .reply(ReplyRequest {
                assignment_id: id.clone(),
                outcome: None,
            })
            .await,
        "outcome",
        "a reply without an outcome",
    );
    expect_bad_field(
        agent.resolve(&id, "   ").await,
        "resolve.response",
        "an empty answer",
    );
    expect_code(
        agent.resolve("asg_nosuchticket_1", "hello").await,
        Code::NotFound,
        "an unknown assignment",
    );
    expect_bad_field(
        agent.resolve("tkt_wrongkind", "hello").await,
        "assignment_id",
        "a malformed assignment id",
    );

    let applied = ok(agent.resolve(&id, "Use the reset link.").await, "Reply");
    assert_eq!(applied.ticket.unwrap().status(), TicketStatus::Resolved);
    expect_code(
        agent.resolve(&id, "again").await,
        Code::FailedPrecondition,
        "a second reply",
    );
    let answer = waiting.await.unwrap();
    assert_eq!(answer.response, "Use the reset link.");
    assert_eq!(answer.agent, "Careful");
}

#[tokio::test]
async fn a_second_attach_takes_the_agent_over_with_its_open_work() {
    let server = Server::start_with_config(REMOTE_FIRST_TIER).await;
    let key = server.create_key("agent_host", &["agent"]).await;
    let mut first = TestAgent::attach(
        &server,
        &key,
        AttachRequest {
            name: "Phoenix".into(),
            tier: "L1".into(),
            capacity: 2,
            ..Default::default()
        },
    )
    .await;
    let waiting = ask_later(&server, inquiry("cust_phoenix", PASSWORD_RESET));
    let assignment = first.next_assignment().await;

    let stranger = server.create_key("someone_else", &["agent"]).await;
    let mut hijack = server.agents_as(&stranger);
    let refused = Watch::open("Attach by another client", {
        let agent_id = first.agent_id.clone();
        async move {
            hijack
                .attach(AttachRequest {
                    agent_id,
                    ..Default::default()
                })
                .await
        }
    });
    let mut refused = refused;
    match refused.next_result_within(STREAM_TIMEOUT).await {
        Some(Err(status)) => assert_eq!(status.code(), Code::PermissionDenied),
        other => panic!("another client's Attach: expected PERMISSION_DENIED, got {other:?}"),
    }

    let mut second = TestAgent::attach(
        &server,
        &key,
        AttachRequest {
            agent_id: first.agent_id.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(second.agent_id, first.agent_id);
    match first.stream.next_result_within(STREAM_TIMEOUT).await {
        Some(Err(status)) => assert_eq!(status.code(), Code::Aborted, "{status:?}"),
        other => panic!("the older stream must end ABORTED, got {other:?}"),
    }
    let resent = second.next_assignment().await;
    assert_eq!(resent.assignment_id, assignment.assignment_id);
    assert_eq!(resent.deadline, assignment.deadline);
    ok(
        second
            .resolve(&resent.assignment_id, "Back online: use the reset link.")
            .await,
        "Reply on the new stream",
    );
    let answer = waiting.await.unwrap();
    assert_eq!(answer.response, "Back online: use the reset link.");
    // The old stream's end did not take the agent offline.
    let agent = agent_named(&server, "Phoenix").await;
    assert_eq!(agent.availability(), AgentAvailability::Available);
}

#[tokio::test]
async fn pausing_a_remote_agent_revokes_its_work_and_hands_it_on() {
    let server = Server::start_with_config(REMOTE_FIRST_TIER).await;
    let mut agent = TestAgent::register(&server, "Paused_Remote", "L1", 2).await;
    let waiting = ask_later(&server, inquiry("cust_pause", PASSWORD_RESET));
    let assignment = agent.next_assignment().await;
    let paused = ok(
        server
            .admin()
            .update_agent(UpdateAgentRequest {
                agent_id: agent.agent_id.clone(),
                availability: Some(AgentAvailability::Paused as i32),
                ..Default::default()
            })
            .await,
        "UpdateAgent(paused)",
    );
    assert_eq!(paused.availability(), AgentAvailability::Paused);
    let revoked = agent.next_revoked().await;
    assert_eq!(revoked.assignment_id, assignment.assignment_id);
    let answer = waiting.await.unwrap();
    assert_eq!(answer.ticket.unwrap().status(), TicketStatus::Resolved);
    assert_ne!(answer.agent, "Paused_Remote");

    // Resumed while attached, it takes work again.
    let resumed = ok(
        server
            .admin()
            .update_agent(UpdateAgentRequest {
                agent_id: agent.agent_id.clone(),
                availability: Some(AgentAvailability::Available as i32),
                ..Default::default()
            })
            .await,
        "UpdateAgent(available)",
    );
    assert_eq!(resumed.availability(), AgentAvailability::Available);
    let waiting = ask_later(&server, inquiry("cust_resumed", PASSWORD_RESET));
    let again = agent.next_assignment().await;
    ok(
        agent.resolve(&again.assignment_id, "Resumed answer.").await,
        "Reply",
    );
    assert_eq!(waiting.await.unwrap().agent, "Paused_Remote");
}

#[tokio::test]
async fn policy_sends_a_remote_agents_answer_to_a_human() {
    let server = Server::start_with_config(REMOTE_FIRST_TIER).await;
    let mut agent = TestAgent::register(&server, "Eager", "L1", 2).await;
    let waiting = ask_later(&server, refund_request("cust_policy"));
    let assignment = agent.next_assignment().await;
    assert_eq!(
        assignment.ticket.as_ref().unwrap().policy_rules,
        ["refund_or_compensation"],
        "the agent sees why a human will look"
    );
    let applied = ok(
        agent
            .resolve(&assignment.assignment_id, "Refund issued!")
            .await,
        "Reply",
    );
    assert_eq!(
        applied.ticket.unwrap().status(),
        TicketStatus::AwaitingReview
    );
    let answer = waiting.await.unwrap();
    let review = ok(
        server
            .escalations()
            .get_escalation(GetEscalationRequest {
                escalation_id: answer.escalation_id.clone(),
            })
            .await,
        "GetEscalation",
    );
    assert_eq!(review.proposed_response, "Refund issued!");
    assert_eq!(review.requested_by, "Eager");
}

#[tokio::test]
async fn after_a_restart_a_remote_agent_is_offline_until_it_attaches_again() {
    let server = Server::start_with_config(REMOTE_FIRST_TIER).await;
    let agent = TestAgent::register(&server, "Sleeper", "L1", 2).await;
    let agent_id = agent.agent_id.clone();
    drop(agent);
    let root = server.terminate().await;
    let server = Server::start_with(root, &[], Some(REMOTE_FIRST_TIER)).await;
    let sleeper = agent_named(&server, "Sleeper").await;
    assert_eq!(sleeper.availability(), AgentAvailability::Offline);
    let mut agent = TestAgent::attach(
        &server,
        ADMIN_KEY,
        AttachRequest {
            agent_id: agent_id.clone(),
            ..Default::default()
        },
    )
    .await;
    let waiting = ask_later(&server, inquiry("cust_sleeper", PASSWORD_RESET));
    let assignment = agent.next_assignment().await;
    ok(
        agent.resolve(&assignment.assignment_id, "Awake.").await,
        "Reply",
    );
    assert_eq!(waiting.await.unwrap().agent, "Sleeper");
}

#[tokio::test]
async fn a_hundred_remote_agents_answer_a_burst_of_five_thousand_inquiries() {
    const AGENTS: usize = 100;
    const INQUIRIES: usize = 5_000;
    const IN_FLIGHT: usize = 200;
    let config = "[[desk.tiers]]\nname = \"L1\"\nagents = 0\n\
                  [[desk.tiers]]\nname = \"Expert\"\nagents = 0\n";
    let server = Server::start_with_config(config).await;

    // Agents share a few connections, as agent hosts would.
    let mut connections = Vec::new();
    for _ in 0..4 {
        connections.push(server.new_channel().await);
    }
    let mut agents = Vec::new();
    for i in 0..AGENTS {
        let channel = connections[i % connections.len()].clone();
        let mut client =
            servicedesk::proto::v1::agent_service_client::AgentServiceClient::new(channel);
        let mut attach = tonic::Request::new(AttachRequest {
            name: format!("Burst_{i:03}"),
            tier: "L1".into(),
            capacity: 5,
            ..Default::default()
        });
        attach
            .metadata_mut()
            .insert("x-api-key", ADMIN_KEY.parse().unwrap());
        let mut stream = client.attach(attach).await.expect("Attach").into_inner();
        agents.push(tokio::spawn(async move {
            let mut answered = 0usize;
            while let Ok(Some(message)) = stream.message().await {
                if let Some(Message::Assignment(a)) = message.message {
                    let mut reply = tonic::Request::new(ReplyRequest {
                        assignment_id: a.assignment_id,
                        outcome: Some(Outcome::Resolve(Resolve {
                            response: format!("answered by agent {i}"),
                        })),
                    });
                    reply
                        .metadata_mut()
                        .insert("x-api-key", ADMIN_KEY.parse().unwrap());
                    client.reply(reply).await.expect("Reply");
                    answered += 1;
                }
            }
            answered
        }));
    }
    let server_ref = &server;
    poll_until(
        Duration::from_secs(30),
        "all agents online",
        || async move {
            let status = ok(
                server_ref
                    .admin()
                    .get_desk_status(GetDeskStatusRequest {})
                    .await,
                "GetDeskStatus",
            );
            let online = status.tiers[0]
                .agents
                .iter()
                .filter(|a| a.availability() == AgentAvailability::Available)
                .count();
            (online == AGENTS).then_some(())
        },
    )
    .await;

    let started = Instant::now();
    let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut calls = Vec::new();
    for n in 0..INQUIRIES {
        let permit = semaphore.clone().acquire_owned().await.unwrap();
        let channel = connections[n % connections.len()].clone();
        calls.push(tokio::spawn(async move {
            let mut desk =
                servicedesk::proto::v1::desk_service_client::DeskServiceClient::new(channel);
            let mut request = tonic::Request::new(inquiry(&format!("burst_{n}"), PASSWORD_RESET));
            request
                .metadata_mut()
                .insert("x-api-key", TEST_KEY.parse().unwrap());
            request.set_timeout(Duration::from_secs(120));
            let answer = desk.handle_inquiry(request).await;
            drop(permit);
            answer.map(|r| r.into_inner())
        }));
    }
    let mut resolved = 0;
    for call in calls {
        let answer = call.await.unwrap().expect("every inquiry is answered");
        assert_eq!(answer.ticket.unwrap().status(), TicketStatus::Resolved);
        assert!(answer.agent.starts_with("Burst_"));
        resolved += 1;
    }
    let took = started.elapsed();
    assert_eq!(resolved, INQUIRIES);
    eprintln!("{INQUIRIES} inquiries over {AGENTS} remote agents in {took:?}");

    let status = ok(
        server
            .admin()
            .get_desk_status(GetDeskStatusRequest {})
            .await,
        "GetDeskStatus",
    );
    assert_eq!(status.open_tickets, 0, "none lost, none left open");
    assert_eq!(status.total_handled, INQUIRIES as u64);
    for agent in &status.tiers[0].agents {
        assert_eq!(agent.load, 0, "{} holds nothing afterwards", agent.name);
    }
    let handled: u64 = status.tiers[0].agents.iter().map(|a| a.handled_count).sum();
    assert_eq!(handled, INQUIRIES as u64);
    let busy = status.tiers[0]
        .agents
        .iter()
        .filter(|a| a.handled_count > 0)
        .count();
    assert!(
        busy > AGENTS / 2,
        "least-loaded spreads the burst: {busy} agents worked"
    );
    drop(connections);
    for agent in agents {
        agent.abort();
    }
}

#[tokio::test]
async fn remote_and_built_in_agents_share_a_tier_and_routing_treats_them_alike() {
    // Least-loaded: ratio, then fewer handled, then id; a remote agent is one more candidate.
    let server = Server::start().await;
    let mut remote = TestAgent::attach(
        &server,
        ADMIN_KEY,
        AttachRequest {
            name: "Remote_Account".into(),
            tier: "L1".into(),
            specialties: vec!["account".into()],
            capacity: 5,
            ..Default::default()
        },
    )
    .await;
    let first = ask(&mut server.desk(), inquiry("cust_mix_1", PASSWORD_RESET)).await;
    assert_eq!(first.agent, "L1_Agent_3", "a tie goes to the lower id");
    let second = ask_later(&server, inquiry("cust_mix_2", PASSWORD_RESET));
    let held = remote.next_assignment().await;
    // The remote agent holds one ticket (load 1/5): the idle built-in agent is less loaded.
    let third = ask(&mut server.desk(), inquiry("cust_mix_3", PASSWORD_RESET)).await;
    assert_eq!(third.agent, "L1_Agent_3");
    ok(
        remote.resolve(&held.assignment_id, "Remote answer.").await,
        "Reply",
    );
    assert_eq!(
        second.await.unwrap().agent,
        "Remote_Account",
        "fewer handled wins a tie"
    );

    // Round-robin rotates through the eligible agents of the tier, remote ones included.
    let server = Server::start_with_config("[desk]\nrouting_strategy = \"round_robin\"\n").await;
    let mut remote = TestAgent::attach(
        &server,
        ADMIN_KEY,
        AttachRequest {
            name: "Remote_Account".into(),
            tier: "L1".into(),
            specialties: vec!["account".into()],
            capacity: 5,
            ..Default::default()
        },
    )
    .await;
    let mut agents = Vec::new();
    for n in 0..4 {
        let waiting = ask_later(&server, inquiry(&format!("cust_rr_{n}"), PASSWORD_RESET));
        if n % 2 == 1 {
            let assignment = remote.next_assignment().await;
            ok(
                remote
                    .resolve(&assignment.assignment_id, "Remote answer.")
                    .await,
                "Reply",
            );
        }
        agents.push(waiting.await.unwrap().agent);
    }
    assert_eq!(
        agents,
        [
            "L1_Agent_3",
            "Remote_Account",
            "L1_Agent_3",
            "Remote_Account"
        ]
    );
}

#[tokio::test]
async fn deleting_a_remote_agent_that_holds_work_hands_it_on_and_ends_its_stream() {
    let server = Server::start_with_config(REMOTE_FIRST_TIER).await;
    let mut agent = TestAgent::register(&server, "Doomed_Too", "L1", 2).await;
    let waiting = ask_later(&server, inquiry("cust_deleted", PASSWORD_RESET));
    let assignment = agent.next_assignment().await;
    ok(
        server
            .admin()
            .delete_agent(servicedesk::proto::v1::DeleteAgentRequest {
                agent_id: agent.agent_id.clone(),
            })
            .await,
        "DeleteAgent",
    );
    let revoked = agent.next_revoked().await;
    assert_eq!(revoked.assignment_id, assignment.assignment_id);
    match agent.stream.next_result_within(STREAM_TIMEOUT).await {
        Some(Err(status)) => assert_eq!(status.code(), Code::Aborted, "{status:?}"),
        other => panic!("the deleted agent's stream must end ABORTED, got {other:?}"),
    }
    let answer = waiting.await.unwrap();
    assert_eq!(answer.ticket.unwrap().status(), TicketStatus::Resolved);
    assert_ne!(answer.agent, "Doomed_Too");
    assert!(find_agent(&server, "Doomed_Too").await.is_none());
}

#[tokio::test]
async fn a_ticket_escalated_by_a_built_in_tier_reaches_a_remote_agent_of_the_next() {
    // One built-in generalist in L1 that never feels sure enough, a remote technical
    // specialist in L2: the first tier escalates in the batch that creates the ticket, and the
    // assignment must still reach the remote agent.
    let config = "[desk]\nspecialty_rotation = []\n\
                  [[desk.tiers]]\nname = \"L1\"\nagents = 1\nthreshold = 1.0\n\
                  [[desk.tiers]]\nname = \"L2\"\nagents = 0\n\
                  [[desk.tiers]]\nname = \"Expert\"\nagents = 1\n";
    let server = Server::start_with_config(config).await;
    let mut remote = TestAgent::attach(
        &server,
        ADMIN_KEY,
        AttachRequest {
            name: "Remote_Technical".into(),
            tier: "L2".into(),
            specialties: vec!["technical".into()],
            capacity: 2,
            ..Default::default()
        },
    )
    .await;
    let waiting = ask_later(
        &server,
        inquiry(
            "cust_up",
            "The app crashes with an error when I export a report",
        ),
    );
    let assignment = remote.next_assignment().await;
    let ticket = assignment.ticket.as_ref().unwrap();
    assert_eq!(ticket.resolution_path[0].outcome(), PathOutcome::Escalated);
    assert!(
        !assignment.draft.is_empty(),
        "the first tier's draft comes along"
    );
    ok(
        remote
            .resolve(&assignment.assignment_id, "Fixed in 4.2; update the app.")
            .await,
        "Reply",
    );
    let answer = waiting.await.unwrap();
    assert_eq!(answer.agent, "Remote_Technical");
    assert_eq!(answer.tier, "L2");
}

#[tokio::test]
async fn the_assignment_timeout_can_be_changed_at_run_time() {
    let server = Server::start_with_config(REMOTE_FIRST_TIER).await;
    let updated = ok(
        server
            .admin()
            .update_config(servicedesk::proto::v1::UpdateConfigRequest {
                config: Some(servicedesk::proto::v1::DeskConfig {
                    assignment_timeout: Some(prost_types::Duration {
                        seconds: 1,
                        nanos: 0,
                    }),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["assignment_timeout".into()],
                }),
            })
            .await,
        "UpdateConfig(assignment_timeout)",
    );
    assert_eq!(updated.assignment_timeout.unwrap().seconds, 1);
    // The next assignment has one second, not the default minute.
    let mut silent = TestAgent::register(&server, "Slow", "L1", 1).await;
    let started = Instant::now();
    let waiting = ask_later(&server, inquiry("cust_slow", PASSWORD_RESET));
    let assignment = silent.next_assignment().await;
    assert_eq!(
        silent.next_revoked().await.assignment_id,
        assignment.assignment_id
    );
    let answer = waiting.await.unwrap();
    assert_ne!(answer.agent, "Slow");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "handed on after the new timeout, not the old one"
    );
}

/// An Attach of an existing agent with `key` that must be refused with PERMISSION_DENIED.
async fn attach_refused(server: &Server, key: &str, agent_id: &str) {
    let mut client = server.agents_on_own_connection(key).await;
    let agent_id = agent_id.to_string();
    let mut refused = Watch::open("Attach by another client", async move {
        client
            .attach(AttachRequest {
                agent_id,
                ..Default::default()
            })
            .await
    });
    match refused.next_result_within(STREAM_TIMEOUT).await {
        Some(Err(status)) => assert_eq!(status.code(), Code::PermissionDenied, "{status:?}"),
        other => panic!("another client's Attach: expected PERMISSION_DENIED, got {other:?}"),
    }
}

#[tokio::test]
async fn a_detached_agent_still_belongs_to_its_client_across_a_restart() {
    let server = Server::start_with_config(REMOTE_FIRST_TIER).await;
    let owner = server.create_key("agent_host", &["agent"]).await;
    let stranger = server.create_key("someone_else", &["agent"]).await;
    let first = TestAgent::attach(
        &server,
        &owner,
        AttachRequest {
            name: "Phoenix".into(),
            tier: "L1".into(),
            capacity: 2,
            ..Default::default()
        },
    )
    .await;
    let agent_id = first.agent_id.clone();
    // The owner's process goes away; the agent waits, offline, for it to come back.
    drop(first);
    goes_offline(&server, "Phoenix").await;
    attach_refused(&server, &stranger, &agent_id).await;

    let root = server.terminate().await;
    let server = Server::start_with(root, &[], Some(REMOTE_FIRST_TIER)).await;
    attach_refused(&server, &stranger, &agent_id).await;

    // The owner takes it back; an admin may too (for the operator's sake).
    let mut back = TestAgent::attach(
        &server,
        &owner,
        AttachRequest {
            agent_id: agent_id.clone(),
            ..Default::default()
        },
    )
    .await;
    let waiting = ask_later(&server, inquiry("cust_phoenix", PASSWORD_RESET));
    let assignment = back.next_assignment().await;
    assert_eq!(assignment.agent_id, agent_id);
    drop(waiting);
    let admin = TestAgent::attach(
        &server,
        ADMIN_KEY,
        AttachRequest {
            agent_id: agent_id.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(admin.agent_id, agent_id);
}
