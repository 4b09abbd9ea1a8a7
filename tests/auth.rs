//! API keys and permissions at the edge of every service: who gets UNAUTHENTICATED, who gets
//! PERMISSION_DENIED, bearer tokens, created and revoked keys, and health without a key.

mod common;

use common::*;
use servicedesk::proto::v1::reply_request::Outcome;
use servicedesk::proto::v1::{
    CreateApiKeyRequest, GetDeskStatusRequest, GetEscalationStatsRequest, ListApiKeysRequest,
    ListEscalationsRequest, ListTicketsRequest, ReplyRequest, Resolve, RevokeApiKeyRequest,
    WatchEventsRequest, WatchTicketRequest,
};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::HealthCheckRequest;

/// One call on each service with `credentials`, each expected to fail with `code`.
async fn expect_everywhere(server: &Server, credentials: Credentials, code: Code, what: &str) {
    expect_code(
        server
            .desk_with(credentials.clone())
            .list_tickets(ListTicketsRequest::default())
            .await,
        code,
        &format!("DeskService.ListTickets {what}"),
    );
    expect_code(
        server
            .escalations_with(credentials.clone())
            .get_escalation_stats(GetEscalationStatsRequest {})
            .await,
        code,
        &format!("EscalationService.GetEscalationStats {what}"),
    );
    expect_code(
        server
            .admin_with(credentials.clone())
            .get_desk_status(GetDeskStatusRequest {})
            .await,
        code,
        &format!("AdminService.GetDeskStatus {what}"),
    );
    expect_code(
        server
            .agents_with(credentials)
            .reply(ReplyRequest {
                assignment_id: "asg_whatever_1".into(),
                outcome: Some(Outcome::Resolve(Resolve {
                    response: "x".into(),
                })),
            })
            .await,
        code,
        &format!("AgentService.Reply {what}"),
    );
}

#[tokio::test]
async fn only_keys_with_the_agent_permission_reach_the_agent_service() {
    let server = Server::start().await;
    let reply = || ReplyRequest {
        assignment_id: "asg_whatever_1".into(),
        outcome: Some(Outcome::Resolve(Resolve {
            response: "x".into(),
        })),
    };
    let denied = expect_code(
        server.agents_as(TEST_KEY).reply(reply()).await,
        Code::PermissionDenied,
        "AgentService with a customer_service + escalation key",
    );
    assert!(denied.message().contains("agent"), "{}", denied.message());
    let agent_key = server.create_key("agent_host", &["agent"]).await;
    // Past authentication, the unknown assignment is the only problem.
    expect_code(
        server.agents_as(&agent_key).reply(reply()).await,
        Code::NotFound,
        "AgentService with an agent key",
    );
    expect_code(
        server
            .desk_as(&agent_key)
            .list_tickets(ListTicketsRequest::default())
            .await,
        Code::PermissionDenied,
        "DeskService with an agent key",
    );
}

#[tokio::test]
async fn calls_without_a_key_are_unauthenticated() {
    let server = Server::start().await;
    expect_everywhere(
        &server,
        Credentials::None,
        Code::Unauthenticated,
        "without a key",
    )
    .await;

    // Streams too.
    let mut admin = server.admin_with(Credentials::None);
    let status = expect_code(
        first_item(Watch::open("WatchEvents without a key", async move {
            admin.watch_events(WatchEventsRequest::default()).await
        }))
        .await,
        Code::Unauthenticated,
        "WatchEvents without a key",
    );
    assert!(!status.message().is_empty());
    let mut desk = server.desk_with(Credentials::None);
    expect_code(
        first_item(Watch::open("WatchTicket without a key", async move {
            desk.watch_ticket(WatchTicketRequest {
                ticket_id: "tkt_whatever".into(),
                after_sequence: 0,
            })
            .await
        }))
        .await,
        Code::Unauthenticated,
        "WatchTicket without a key",
    );
}

/// The first item of a stream: an error status, or a message (or `Ok(None)` for an empty stream).
async fn first_item<T: Send + std::fmt::Debug + 'static>(
    mut watch: Watch<T>,
) -> Result<Option<T>, tonic::Status> {
    match watch.next_result_within(STREAM_TIMEOUT).await {
        None => Ok(None),
        Some(Ok(message)) => Ok(Some(message)),
        Some(Err(status)) => Err(status),
    }
}

#[tokio::test]
async fn unknown_keys_are_unauthenticated_and_never_echoed() {
    let server = Server::start().await;
    let secret = "notarealsecretvalue";
    let fake = format!("sd_0123456789ab_{secret}");
    expect_everywhere(
        &server,
        Credentials::ApiKey(fake.clone()),
        Code::Unauthenticated,
        "with an unknown key",
    )
    .await;
    expect_everywhere(
        &server,
        Credentials::Bearer(fake.clone()),
        Code::Unauthenticated,
        "with an unknown bearer token",
    )
    .await;
    expect_everywhere(
        &server,
        Credentials::ApiKey("test-key-124".into()),
        Code::Unauthenticated,
        "with a near-miss dev key",
    )
    .await;

    let status = expect_code(
        server
            .desk_as(&fake)
            .list_tickets(ListTicketsRequest::default())
            .await,
        Code::Unauthenticated,
        "unknown key",
    );
    assert!(
        !status.message().contains(secret),
        "the error message echoes the key: {:?}",
        status.message()
    );
    assert!(
        !server.log_text().contains(secret),
        "the server log contains the presented key"
    );
}

#[tokio::test]
async fn the_desk_dev_key_cannot_use_the_admin_service() {
    let server = Server::start().await;
    let mut admin = server.admin_as(TEST_KEY);
    let status = expect_code(
        admin.get_desk_status(GetDeskStatusRequest {}).await,
        Code::PermissionDenied,
        "test-key-123 on GetDeskStatus",
    );
    assert!(
        !status.message().contains(TEST_KEY),
        "message echoes the key"
    );
    expect_code(
        admin
            .create_api_key(CreateApiKeyRequest {
                client_id: "sneaky".into(),
                client_name: "sneaky".into(),
                permissions: vec!["*".into()],
            })
            .await,
        Code::PermissionDenied,
        "test-key-123 on CreateApiKey",
    );

    // It holds customer_service and escalation.
    ok(
        server
            .desk()
            .list_tickets(ListTicketsRequest::default())
            .await,
        "test-key-123 on ListTickets",
    );
    ok(
        server
            .escalations()
            .list_escalations(ListEscalationsRequest::default())
            .await,
        "test-key-123 on ListEscalations",
    );
}

#[tokio::test]
async fn the_admin_dev_key_holds_every_permission() {
    let server = Server::start().await;
    ok(
        server
            .desk_as(ADMIN_KEY)
            .list_tickets(ListTicketsRequest::default())
            .await,
        "admin key on DeskService",
    );
    ok(
        server
            .escalations_as(ADMIN_KEY)
            .get_escalation_stats(GetEscalationStatsRequest {})
            .await,
        "admin key on EscalationService",
    );
    let status = ok(
        server
            .admin()
            .get_desk_status(GetDeskStatusRequest {})
            .await,
        "admin key on AdminService",
    );
    assert!(status.auth_enabled);
    assert!(
        status.registered_clients >= 2,
        "dev clients count: {}",
        status.registered_clients
    );
}

#[tokio::test]
async fn a_customer_service_key_works_on_the_desk_only() {
    let server = Server::start().await;
    let key = server
        .create_key("web-frontend", &["customer_service"])
        .await;

    let response = ask(
        &mut server.desk_as(&key),
        inquiry("cust_web", PASSWORD_RESET),
    )
    .await;
    assert!(!response.response.is_empty());
    ok(
        server
            .desk_as(&key)
            .list_tickets(ListTicketsRequest::default())
            .await,
        "customer_service key on ListTickets",
    );

    expect_code(
        server
            .escalations_as(&key)
            .list_escalations(ListEscalationsRequest::default())
            .await,
        Code::PermissionDenied,
        "customer_service key on ListEscalations",
    );
    expect_code(
        server
            .admin_as(&key)
            .get_desk_status(GetDeskStatusRequest {})
            .await,
        Code::PermissionDenied,
        "customer_service key on GetDeskStatus",
    );
}

#[tokio::test]
async fn an_escalation_key_cannot_use_the_desk() {
    let server = Server::start().await;
    let key = server.create_key("supervisor_2", &["escalation"]).await;
    ok(
        server
            .escalations_as(&key)
            .list_escalations(ListEscalationsRequest::default())
            .await,
        "escalation key on ListEscalations",
    );
    expect_code(
        server
            .desk_as(&key)
            .list_tickets(ListTicketsRequest::default())
            .await,
        Code::PermissionDenied,
        "escalation key on ListTickets",
    );
}

#[tokio::test]
async fn created_keys_have_the_documented_shape_and_are_listed_without_secrets() {
    let server = Server::start().await;
    let mut admin = server.admin();
    let created = ok(
        admin
            .create_api_key(CreateApiKeyRequest {
                client_id: "reporting".into(),
                client_name: "Reporting job".into(),
                permissions: vec!["customer_service".into(), "escalation".into()],
            })
            .await,
        "CreateApiKey",
    );
    let key = created.key.expect("the key's public record");
    assert_eq!(key.key_id.len(), 12, "key id {:?}", key.key_id);
    assert!(key.key_id.chars().all(|c| c.is_ascii_hexdigit()));
    let prefix = format!("sd_{}_", key.key_id);
    assert!(
        created.api_key.starts_with(&prefix) && created.api_key.len() > prefix.len(),
        "api key should look like sd_<key_id>_<secret>"
    );
    assert_eq!(key.client_id, "reporting");
    assert_eq!(key.client_name, "Reporting job");
    assert_eq!(
        key.permissions,
        vec!["customer_service".to_string(), "escalation".to_string()]
    );
    assert!(!key.revoked);
    assert!(key.create_time.is_some());

    let listed = ok(
        admin.list_api_keys(ListApiKeysRequest::default()).await,
        "ListApiKeys",
    );
    let found = listed
        .keys
        .iter()
        .find(|k| k.key_id == key.key_id)
        .expect("the new key is listed");
    assert_eq!(found.client_id, "reporting");
    let secret = &created.api_key[prefix.len()..];
    assert!(
        !format!("{listed:?}").contains(secret),
        "ListApiKeys must never return a secret"
    );
}

#[tokio::test]
async fn a_revoked_key_is_unauthenticated() {
    let server = Server::start().await;
    let mut admin = server.admin();
    let created = ok(
        admin
            .create_api_key(CreateApiKeyRequest {
                client_id: "temp-client".into(),
                client_name: "Temporary".into(),
                permissions: vec!["customer_service".into()],
            })
            .await,
        "CreateApiKey",
    );
    let key_id = created.key.unwrap().key_id;
    ok(
        server
            .desk_as(&created.api_key)
            .list_tickets(ListTicketsRequest::default())
            .await,
        "the new key before revocation",
    );

    let revoked = ok(
        admin
            .revoke_api_key(RevokeApiKeyRequest {
                key_id: key_id.clone(),
            })
            .await,
        "RevokeApiKey",
    );
    assert!(revoked.revoked);
    assert_eq!(revoked.key_id, key_id);

    expect_code(
        server
            .desk_as(&created.api_key)
            .list_tickets(ListTicketsRequest::default())
            .await,
        Code::Unauthenticated,
        "a revoked key",
    );
    expect_code(
        server
            .desk_with(Credentials::Bearer(created.api_key.clone()))
            .list_tickets(ListTicketsRequest::default())
            .await,
        Code::Unauthenticated,
        "a revoked key as bearer token",
    );

    let active = ok(
        admin.list_api_keys(ListApiKeysRequest::default()).await,
        "ListApiKeys",
    );
    assert!(
        active.keys.iter().all(|k| k.key_id != key_id),
        "revoked keys are hidden unless show_revoked"
    );
    let all = ok(
        admin
            .list_api_keys(ListApiKeysRequest {
                show_revoked: true,
                ..Default::default()
            })
            .await,
        "ListApiKeys show_revoked",
    );
    let listed = all
        .keys
        .iter()
        .find(|k| k.key_id == key_id)
        .expect("listed with show_revoked");
    assert!(listed.revoked);

    expect_code(
        admin
            .revoke_api_key(RevokeApiKeyRequest {
                key_id: "000000000000".into(),
            })
            .await,
        Code::NotFound,
        "RevokeApiKey(unknown)",
    );
}

#[tokio::test]
async fn bearer_tokens_authenticate_like_x_api_key() {
    let server = Server::start().await;
    let status = ok(
        server
            .admin_with(Credentials::Bearer(ADMIN_KEY.into()))
            .get_desk_status(GetDeskStatusRequest {})
            .await,
        "Bearer admin-key-456 on GetDeskStatus",
    );
    assert_eq!(status.tiers.len(), 3);
    let response = ask(
        &mut server.desk_with(Credentials::Bearer(TEST_KEY.into())),
        inquiry("cust_bearer", PASSWORD_RESET),
    )
    .await;
    assert!(!response.response.is_empty());
    expect_code(
        server
            .admin_with(Credentials::Bearer(TEST_KEY.into()))
            .get_desk_status(GetDeskStatusRequest {})
            .await,
        Code::PermissionDenied,
        "Bearer test-key-123 on GetDeskStatus",
    );
}

#[tokio::test]
async fn health_answers_serving_without_a_key() {
    let server = Server::start().await;
    let mut health = server.health();
    for service in [
        "",
        "servicedesk.v1.DeskService",
        "servicedesk.v1.EscalationService",
        "servicedesk.v1.AdminService",
        "servicedesk.v1.AgentService",
    ] {
        let response = ok(
            health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await,
            &format!("Health.Check({service:?})"),
        );
        assert_eq!(
            response.status(),
            ServingStatus::Serving,
            "health of {service:?}"
        );
    }
}
