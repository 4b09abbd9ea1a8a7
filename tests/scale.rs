//! What the desk promises at scale and under pressure, against the real binary: a desk of
//! 10,000 agents routes and lists them; during a burst no agent ever holds more than its
//! capacity, at any moment; and an agent whose connection stops answering HTTP/2 PINGs is
//! lost by keepalive, its work handed on.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use servicedesk::proto::v1::attach_response::Message;
use servicedesk::proto::v1::reply_request::Outcome;
use servicedesk::proto::v1::{
    AgentAvailability, AttachRequest, ListAgentsRequest, ReplyRequest, Resolve, TicketStatus,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desk_of_ten_thousand_agents_routes_and_lists_them() {
    let config = "[[desk.tiers]]\nname = \"L1\"\nagents = 6000\n\
                  [[desk.tiers]]\nname = \"L2\"\nagents = 3000\n\
                  [[desk.tiers]]\nname = \"Expert\"\nagents = 1000\n";
    let server = Server::start_with_config(config).await;
    // Every agent is listed, page by page.
    let mut listed = 0;
    let mut token = String::new();
    loop {
        let page = ok(
            server
                .admin()
                .list_agents(ListAgentsRequest {
                    page_size: 1000,
                    page_token: token.clone(),
                    ..Default::default()
                })
                .await,
            "ListAgents",
        );
        listed += page.agents.len();
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(listed, 10_000);
    // Routing through ten thousand agents answers as it does through six.
    let mut desk = server.desk();
    for n in 0..50 {
        let answer = ask(&mut desk, inquiry(&format!("cust_{n}"), PASSWORD_RESET)).await;
        let ticket = answer.ticket.unwrap();
        assert_eq!(ticket.status(), TicketStatus::Resolved);
        assert_eq!(answer.tier, "L1");
    }
}

/// An agent process that answers each assignment after `delay`.
fn slow_agent(server: &Server, channel: tonic::transport::Channel, delay: Duration) {
    let _ = server;
    tokio::spawn(async move {
        let mut client =
            servicedesk::proto::v1::agent_service_client::AgentServiceClient::new(channel);
        let mut attach = tonic::Request::new(AttachRequest {
            name: "Slow".into(),
            tier: "L1".into(),
            capacity: 3,
            ..Default::default()
        });
        attach
            .metadata_mut()
            .insert("x-api-key", ADMIN_KEY.parse().unwrap());
        let mut stream = client.attach(attach).await.expect("Attach").into_inner();
        while let Ok(Some(message)) = stream.message().await {
            if let Some(Message::Assignment(a)) = message.message {
                let mut client = client.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let mut reply = tonic::Request::new(ReplyRequest {
                        assignment_id: a.assignment_id,
                        outcome: Some(Outcome::Resolve(Resolve {
                            response: "done".into(),
                        })),
                    });
                    reply
                        .metadata_mut()
                        .insert("x-api-key", ADMIN_KEY.parse().unwrap());
                    let _ = client.reply(reply).await;
                });
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_burst_no_agent_ever_holds_more_than_its_capacity() {
    // The remote agent is the first tier's only one; what it cannot take waits in the queue.
    let config = "[[desk.tiers]]\nname = \"L1\"\nagents = 0\n\
                  [[desk.tiers]]\nname = \"Expert\"\nagents = 0\n";
    let server = Server::start_with_config(config).await;
    slow_agent(
        &server,
        server.new_channel().await,
        Duration::from_millis(50),
    );
    let server_ref = &server;
    poll_until(
        Duration::from_secs(30),
        "the agent is online",
        || async move {
            let agents = ok(
                server_ref
                    .admin()
                    .list_agents(ListAgentsRequest::default())
                    .await,
                "ListAgents",
            )
            .agents;
            agents
                .iter()
                .any(|a| a.name == "Slow" && a.availability() == AgentAvailability::Available)
                .then_some(())
        },
    )
    .await;

    // A sampler watches the agent's load for as long as the burst lasts.
    let bursting = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(AtomicU32::new(0));
    let sampler = {
        let (bursting, peak) = (bursting.clone(), peak.clone());
        let mut admin = server.admin();
        tokio::spawn(async move {
            let mut samples = 0;
            while bursting.load(Ordering::Relaxed) {
                let agents = admin
                    .list_agents(ListAgentsRequest::default())
                    .await
                    .expect("ListAgents")
                    .into_inner()
                    .agents;
                for a in agents {
                    assert!(
                        a.load <= a.capacity,
                        "agent {} holds {} of {}",
                        a.name,
                        a.load,
                        a.capacity
                    );
                    peak.fetch_max(a.load, Ordering::Relaxed);
                }
                samples += 1;
            }
            samples
        })
    };
    let mut calls = Vec::new();
    for n in 0..30 {
        let mut desk = server.desk();
        calls.push(tokio::spawn(async move {
            ask(
                &mut desk,
                inquiry(&format!("cust_burst_{n}"), PASSWORD_RESET),
            )
            .await
        }));
    }
    for call in calls {
        let answer = call.await.unwrap();
        assert_eq!(answer.ticket.unwrap().status(), TicketStatus::Resolved);
    }
    bursting.store(false, Ordering::Relaxed);
    let samples = sampler.await.expect("every sample within capacity");
    assert!(
        samples > 1,
        "the sampler ran during the burst ({samples} samples)"
    );
    assert_eq!(
        peak.load(Ordering::Relaxed),
        3,
        "the burst filled the agent to its capacity, and no further"
    );
}

/// A TCP relay between a client and the server that can be frozen: it then passes nothing
/// either way but keeps both sockets open, like a network path that went dark.
async fn relay(server: &Server) -> (std::net::SocketAddr, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let frozen = Arc::new(AtomicBool::new(false));
    let target = server.addr();
    let dark = frozen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = TcpStream::connect(target).await.unwrap();
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = upstream.into_split();
            for (mut from, mut to) in [
                (
                    Box::new(client_read) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                    Box::new(server_write) as Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
                ),
                (Box::new(server_read), Box::new(client_write)),
            ] {
                let dark = dark.clone();
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 16 * 1024];
                    while let Ok(n) = from.read(&mut buffer).await {
                        if n == 0 {
                            break;
                        }
                        // Dark: swallowed; the sockets stay open, nothing gets through.
                        if !dark.load(Ordering::Relaxed)
                            && to.write_all(&buffer[..n]).await.is_err()
                        {
                            break;
                        }
                    }
                });
            }
        }
    });
    (addr, frozen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_connection_stops_answering_pings_is_lost_and_its_work_handed_on() {
    let config = "[[desk.tiers]]\nname = \"L1\"\nagents = 0\n\
                  [[desk.tiers]]\nname = \"L2\"\nagents = 1\n\
                  [[desk.tiers]]\nname = \"Expert\"\nagents = 1\n\
                  [desk]\nassignment_timeout_secs = 600\n\
                  [server]\nkeepalive_interval_secs = 1\nkeepalive_timeout_secs = 1\n";
    let server = Server::start_with_config(config).await;
    let (addr, frozen) = relay(&server).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = servicedesk::proto::v1::agent_service_client::AgentServiceClient::new(channel);
    let mut attach = tonic::Request::new(AttachRequest {
        name: "Faraway".into(),
        tier: "L1".into(),
        capacity: 1,
        ..Default::default()
    });
    attach
        .metadata_mut()
        .insert("x-api-key", ADMIN_KEY.parse().unwrap());
    let mut stream = client.attach(attach).await.expect("Attach").into_inner();
    stream
        .message()
        .await
        .expect("attached")
        .expect("a first message");
    let mut desk = server.desk();
    let waiting =
        tokio::spawn(async move { ask(&mut desk, inquiry("cust_far", PASSWORD_RESET)).await });
    let assignment = stream
        .message()
        .await
        .expect("an assignment")
        .expect("a message");
    assert!(matches!(assignment.message, Some(Message::Assignment(_))));

    // The path goes dark: PINGs go unanswered; the server gives up on the connection, the
    // agent goes offline and the ticket moves on, long before its assignment deadline.
    frozen.store(true, Ordering::Relaxed);
    let answer = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("the ticket moves on once keepalive fails")
        .unwrap();
    let ticket = answer.ticket.unwrap();
    assert_eq!(ticket.status(), TicketStatus::Resolved);
    assert!(
        ticket
            .resolution_path
            .iter()
            .any(|s| s.agent_name == "Faraway"),
        "{:?}",
        ticket.resolution_path
    );
    let agents = all_agents(&server).await;
    let faraway = agents.iter().find(|a| a.name == "Faraway").unwrap();
    assert_eq!(faraway.availability(), AgentAvailability::Offline);
}
