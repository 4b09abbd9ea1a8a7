//! Revoking a key takes back what it opened: its watches end with UNAUTHENTICATED (nothing
//! buffered goes out after), and an agent attached with it goes offline at once, its work
//! handed on instead of waiting for an assignment deadline.

mod common;

use std::time::Duration;

use common::*;
use servicedesk::proto::v1::attach_response::Message;
use servicedesk::proto::v1::desk_event::Event;
use servicedesk::proto::v1::{
    AgentAvailability, AttachRequest, PathOutcome, RevokeApiKeyRequest, TicketStatus,
    WatchEscalationsRequest, WatchEventsRequest, WatchTicketRequest,
};
use tonic::Code;

/// L1 has no built-in agent: the remote one gets the first tier's tickets.
const REMOTE_FIRST_TIER: &str = "[[desk.tiers]]\nname = \"L1\"\nagents = 0\n\
[[desk.tiers]]\nname = \"L2\"\nagents = 2\n[[desk.tiers]]\nname = \"Expert\"\nagents = 1\n";

async fn revoke(server: &Server, secret: &str) {
    let key_id = secret.split('_').nth(1).expect("sd_<key id>_<secret>");
    ok(
        server
            .admin()
            .revoke_api_key(RevokeApiKeyRequest {
                key_id: key_id.to_string(),
            })
            .await,
        "RevokeApiKey",
    );
}

/// The stream ends with UNAUTHENTICATED; returns what it delivered before (sent before the
/// revocation, or on their way then).
async fn ends_unauthenticated<T: std::fmt::Debug + Send + 'static>(
    watch: &mut Watch<T>,
    what: &str,
) -> Vec<T> {
    let mut before = Vec::new();
    loop {
        match watch.next_result_within(STREAM_TIMEOUT).await {
            Some(Ok(item)) => before.push(item),
            Some(Err(status)) => {
                assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
                return before;
            }
            None => panic!("{what}: expected UNAUTHENTICATED, the stream went quiet or ended"),
        }
    }
}

#[tokio::test]
async fn revoking_a_key_ends_every_watch_it_opened() {
    let server = Server::start().await;
    let reviewer = server
        .create_key("console", &["customer_service", "escalation"])
        .await;
    let ops = server.create_key("ops_board", &["admin"]).await;
    // A ticket of the console's own, waiting for a person: its watch stays open.
    let review = create_refund_escalation(&mut server.desk_as(&reviewer), "cust_own").await;
    let ticket_id = review.ticket.unwrap().ticket_id;

    let mut desk = server.desk_as(&reviewer);
    let mut ticket = Watch::open("WatchTicket", async move {
        desk.watch_ticket(WatchTicketRequest {
            ticket_id,
            after_sequence: 0,
        })
        .await
    });
    let mut escalations = server.escalations_as(&reviewer);
    let mut queue = Watch::open("WatchEscalations", async move {
        escalations
            .watch_escalations(WatchEscalationsRequest::default())
            .await
    });
    let mut admin = server.admin_as(&ops);
    let mut events = Watch::open("WatchEvents", async move {
        admin.watch_events(WatchEventsRequest::default()).await
    });
    // Each is established and has replayed something.
    queue.expect_next().await;
    ticket.expect_next().await;
    events.expect_next().await;

    revoke(&server, &reviewer).await;
    // Another customer's review right after: the revoked console must not see it.
    let other = create_refund_escalation(&mut server.desk(), "cust_other").await;
    let seen = ends_unauthenticated(&mut queue, "WatchEscalations").await;
    assert!(
        seen.iter()
            .all(|e| e.escalation.as_ref().unwrap().customer_id != "cust_other"),
        "a revoked key saw a review created after its revocation: {seen:?}"
    );
    ends_unauthenticated(&mut ticket, "WatchTicket").await;
    // The other key's watch goes on, and sees it.
    events
        .until(|e| {
            matches!(&e.event, Some(Event::Escalation(x))
                if x.escalation.as_ref().unwrap().escalation_id == other.escalation_id)
        })
        .await;

    revoke(&server, &ops).await;
    create_refund_escalation(&mut server.desk(), "cust_third").await;
    let seen = ends_unauthenticated(&mut events, "WatchEvents").await;
    assert!(
        seen.iter()
            .all(|e| !format!("{e:?}").contains("cust_third")),
        "a revoked key saw an event after its revocation"
    );
}

#[tokio::test]
async fn revoking_an_agents_key_takes_it_offline_and_hands_its_work_on_at_once() {
    // The assignment deadline is far away: only the revocation can move the ticket in time.
    let config = format!("{REMOTE_FIRST_TIER}[desk]\nassignment_timeout_secs = 600\n");
    let server = Server::start_with_config(&config).await;
    let host = server.create_key("agent_host", &["agent"]).await;
    let mut agents = server.agents_on_own_connection(&host).await;
    let mut stream = Watch::open("Attach", async move {
        agents
            .attach(AttachRequest {
                name: "Remote_L1".into(),
                tier: "L1".into(),
                capacity: 2,
                ..Default::default()
            })
            .await
    });
    let Some(Message::Attached(_)) = stream.expect_next().await.message else {
        panic!("the first message of Attach is `attached`");
    };
    let mut desk = server.desk();
    let waiting =
        tokio::spawn(async move { ask(&mut desk, inquiry("cust_remote", PASSWORD_RESET)).await });
    let Some(Message::Assignment(assignment)) = stream.expect_next().await.message else {
        panic!("the inquiry is assigned to the remote agent");
    };

    revoke(&server, &host).await;
    ends_unauthenticated(&mut stream, "Attach").await;
    // The caller is answered by the next tier, long before the assignment's deadline.
    let answer = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the ticket moves on at once")
        .unwrap();
    let ticket = answer.ticket.unwrap();
    assert_eq!(ticket.ticket_id, assignment.ticket.unwrap().ticket_id);
    assert_ne!(ticket.status(), TicketStatus::Assigned);
    assert!(
        ticket
            .resolution_path
            .iter()
            .any(|s| s.agent_name == "Remote_L1" && s.outcome() == PathOutcome::HandedOn),
        "the path shows the hand-on: {:?}",
        ticket.resolution_path
    );
    let agents = servicedesk::proto::v1::ListAgentsResponse {
        agents: all_agents(&server).await,
        ..Default::default()
    };
    let remote = agents
        .agents
        .iter()
        .find(|a| a.name == "Remote_L1")
        .unwrap();
    assert_eq!(remote.availability(), AgentAvailability::Offline);
    assert_eq!(remote.load, 0);
}
