//! Log lines against the real binary: `--log-format json` writes one object per line with the
//! message and, inside a call, the call's method and trace id at the top level; an access line
//! per call ends when asked for (`--access-log`, `[log] access`, `SERVICEDESK_ACCESS_LOG`), for
//! the failures or for every call, never for health checks; and `SERVICEDESK_LOG=debug` leaves
//! the transport's frames out unless it names them.

mod common;

use std::time::Duration;

use common::*;
use prost_types::FieldMask;
use serde_json::Value;
use servicedesk::proto::v1::{
    DeskConfig, GetDeskStatusRequest, GetTicketRequest, RoutingStrategy, UpdateConfigRequest,
    WatchEscalationsRequest,
};
use tonic::Code;

const ACCESS: &str = "servicedesk::access";

/// Every line the server wrote so far, each parsed as JSON.
fn json_lines(server: &Server) -> Vec<Value> {
    server
        .log_text()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

/// The lines `wanted` holds of, once there are at least `count`; panics after 10 s.
async fn lines_until(server: &Server, count: usize, wanted: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found: Vec<Value> = json_lines(server).into_iter().filter(&wanted).collect();
        if found.len() >= count {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {count} lines: {found:?}\n{}",
            found.len(),
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The access lines written so far.
fn access_lines(server: &Server) -> Vec<Value> {
    json_lines(server)
        .into_iter()
        .filter(|l| l["target"] == ACCESS)
        .collect()
}

fn with_traceparent<T>(message: T, trace_id: &str, parent: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{parent}-01").parse().unwrap(),
    );
    request
}

fn routing(strategy: RoutingStrategy) -> UpdateConfigRequest {
    UpdateConfigRequest {
        config: Some(DeskConfig {
            routing_strategy: strategy as i32,
            ..Default::default()
        }),
        update_mask: Some(FieldMask {
            paths: vec!["routing_strategy".into()],
        }),
    }
}

fn no_ticket() -> GetTicketRequest {
    GetTicketRequest {
        ticket_id: "tkt_00000000000nothere0".into(),
    }
}

async fn health_check(server: &Server) {
    ok(
        server
            .health()
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await,
        "Health/Check",
    );
}

async fn json_server(args: &[&str], config_toml: Option<&str>, env: &[(&str, &str)]) -> Server {
    let launch = Launch {
        extra_args: ["--log-format", "json"]
            .iter()
            .chain(args)
            .map(|a| a.to_string())
            .collect(),
        config_toml: config_toml.map(str::to_string),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Launch::default()
    };
    Server::launch(new_root(), launch).await
}

#[tokio::test]
async fn json_lines_carry_the_message_and_the_calls_trace_at_the_top_level() {
    let server = json_server(&[], None, &[]).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let mut admin = server.admin();
    ok(
        admin
            .update_config(with_traceparent(
                routing(RoutingStrategy::RoundRobin),
                trace_id,
                caller_span,
            ))
            .await,
        "UpdateConfig",
    );
    ok(
        admin
            .update_config(routing(RoutingStrategy::LeastLoaded))
            .await,
        "UpdateConfig",
    );
    let updated = lines_until(&server, 2, |l| l["message"] == "configuration updated").await;
    let first = &updated[0];
    assert_eq!(first["trace_id"], trace_id, "{first}");
    assert_eq!(first["method"], "/servicedesk.v1.AdminService/UpdateConfig");
    assert_eq!(first["level"], "INFO");
    assert_eq!(first["target"], "servicedesk::api::admin");
    assert_eq!(
        first["by"], "admin-client",
        "the event's own fields: {first}"
    );
    let timestamp = first["timestamp"].as_str().unwrap();
    assert!(
        timestamp.len() >= 20 && timestamp.ends_with('Z') && timestamp.as_bytes()[10] == b'T',
        "RFC 3339 in UTC: {timestamp}"
    );
    assert!(first.get("fields").is_none() && first.get("spans").is_none());
    // Nothing is exported: the call has no span of its own in any trace, and the caller's
    // span is the caller's.
    assert!(first.get("span_id").is_none(), "{first}");
    assert!(!first.to_string().contains(caller_span), "{first}");
    // Without a traceparent and without export, a call has no trace.
    let second = &updated[1];
    assert_eq!(
        second["method"],
        "/servicedesk.v1.AdminService/UpdateConfig"
    );
    assert!(second.get("trace_id").is_none(), "{second}");
    // Lines outside any call carry none of the call's fields.
    let listening = json_lines(&server)
        .into_iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("listening on"))
        })
        .unwrap();
    for field in ["method", "trace_id", "span_id"] {
        assert!(listening.get(field).is_none(), "{listening}");
    }
    server.terminate().await;
}

#[tokio::test]
async fn under_errors_each_failed_call_has_an_access_line_and_a_call_that_succeeded_none() {
    let server = json_server(&["--access-log", "errors"], None, &[]).await;
    ask(&mut server.desk(), inquiry("cust-access", PASSWORD_RESET)).await;
    health_check(&server).await;
    let trace_id = "5b8aa5a2d2c872e8321cf37308d69df2";
    let missing = server
        .desk()
        .get_ticket(with_traceparent(no_ticket(), trace_id, "051581bf3cb55c13"))
        .await;
    expect_code(missing, Code::NotFound, "GetTicket of no ticket");
    // A key without the permission: the line names who was refused.
    let refused = server
        .admin_as(TEST_KEY)
        .get_desk_status(GetDeskStatusRequest {})
        .await;
    expect_code(
        refused,
        Code::PermissionDenied,
        "GetDeskStatus with a desk key",
    );
    let unknown = server.desk_as("no-such-key").get_ticket(no_ticket()).await;
    expect_code(
        unknown,
        Code::Unauthenticated,
        "GetTicket with an unknown key",
    );

    let lines = lines_until(&server, 3, |l| l["target"] == ACCESS).await;
    let codes: Vec<&str> = lines.iter().map(|l| l["code"].as_str().unwrap()).collect();
    assert_eq!(
        codes,
        ["NotFound", "PermissionDenied", "Unauthenticated"],
        "only the failures, in order: {lines:?}"
    );
    let not_found = &lines[0];
    assert_eq!(not_found["level"], "INFO");
    assert_eq!(not_found["method"], "/servicedesk.v1.DeskService/GetTicket");
    assert_eq!(not_found["trace_id"], trace_id);
    assert_eq!(not_found["client"], "test-client");
    assert!(not_found["duration_ms"]
        .as_f64()
        .is_some_and(|ms| ms >= 0.0));
    let peer: std::net::SocketAddr = not_found["peer"].as_str().unwrap().parse().unwrap();
    assert!(peer.ip().is_loopback(), "{not_found}");
    assert_eq!(lines[1]["client"], "test-client", "{}", lines[1]);
    assert_eq!(
        lines[1]["method"],
        "/servicedesk.v1.AdminService/GetDeskStatus"
    );
    assert!(lines[2].get("client").is_none(), "nobody was identified");
    // A key is never in a line.
    assert!(!server.log_text().contains("no-such-key"));
    server.terminate().await;
}

#[tokio::test]
async fn under_all_every_call_has_an_access_line_but_health_checks() {
    let server = json_server(&[], Some("[log]\naccess = \"all\"\n"), &[]).await;
    health_check(&server).await;
    ask(&mut server.desk(), inquiry("cust-all", PASSWORD_RESET)).await;
    expect_code(
        server.desk().get_ticket(no_ticket()).await,
        Code::NotFound,
        "GetTicket of no ticket",
    );
    let lines = lines_until(&server, 2, |l| l["target"] == ACCESS).await;
    let calls: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| (l["method"].as_str().unwrap(), l["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        calls,
        [
            ("/servicedesk.v1.DeskService/HandleInquiry", "OK"),
            ("/servicedesk.v1.DeskService/GetTicket", "NotFound")
        ],
        "every call but the health check: {lines:?}"
    );
    assert_eq!(lines[0]["client"], "test-client");
    server.terminate().await;
}

#[tokio::test]
async fn a_sample_of_none_keeps_only_the_failures() {
    let server = json_server(
        &[],
        Some("[log]\naccess_sample = 0.0\n"),
        &[("SERVICEDESK_ACCESS_LOG", "all")],
    )
    .await;
    for n in 0..5 {
        ask(
            &mut server.desk(),
            inquiry(&format!("cust-sampled-{n}"), PASSWORD_RESET),
        )
        .await;
    }
    expect_code(
        server.desk().get_ticket(no_ticket()).await,
        Code::NotFound,
        "GetTicket of no ticket",
    );
    let lines = lines_until(&server, 1, |l| l["target"] == ACCESS).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["code"], "NotFound");
    server.terminate().await;
}

#[tokio::test]
async fn a_streams_access_line_is_written_when_the_stream_ends() {
    let server = json_server(&["--access-log", "all"], None, &[]).await;
    let watch_method = "/servicedesk.v1.EscalationService/WatchEscalations";
    let mut escalations = server.escalations();
    let watch = ok(
        escalations
            .watch_escalations(WatchEscalationsRequest::default())
            .await,
        "WatchEscalations",
    );
    // A later call's line is the barrier: the watch, still open, has none.
    expect_code(
        server.desk().get_ticket(no_ticket()).await,
        Code::NotFound,
        "GetTicket of no ticket",
    );
    lines_until(&server, 1, |l| l["code"] == "NotFound").await;
    assert!(
        access_lines(&server)
            .iter()
            .all(|l| l["method"] != watch_method),
        "a line for a stream still open"
    );
    drop(watch);
    let ended = lines_until(&server, 1, |l| {
        l["target"] == ACCESS && l["method"] == watch_method
    })
    .await;
    assert_eq!(ended[0]["code"], "Canceled", "{}", ended[0]);
    server.terminate().await;
}

#[tokio::test]
async fn access_lines_are_off_unless_asked_for() {
    let server = json_server(&[], None, &[]).await;
    ask(&mut server.desk(), inquiry("cust-quiet", PASSWORD_RESET)).await;
    expect_code(
        server.desk().get_ticket(no_ticket()).await,
        Code::NotFound,
        "GetTicket of no ticket",
    );
    // The barrier: a line the server writes after the calls above ended.
    ok(
        server
            .admin()
            .update_config(routing(RoutingStrategy::RoundRobin))
            .await,
        "UpdateConfig",
    );
    lines_until(&server, 1, |l| l["message"] == "configuration updated").await;
    assert_eq!(access_lines(&server), Vec::<Value>::new());
    server.terminate().await;
}

#[tokio::test]
async fn debug_logs_leave_the_transports_frames_out_unless_the_filter_names_them() {
    let frames = |lines: &[Value]| {
        lines
            .iter()
            .filter(|l| {
                l["target"]
                    .as_str()
                    .is_some_and(|t| t == "h2" || t.starts_with("h2::"))
            })
            .count()
    };
    let mut seen = Vec::new();
    for filter in ["debug", "debug,h2=debug"] {
        let server = json_server(&[], None, &[("SERVICEDESK_LOG", filter)]).await;
        ask(&mut server.desk(), inquiry("cust-debug", PASSWORD_RESET)).await;
        // The call's own debug line shows the filter is at debug.
        lines_until(&server, 1, |l| {
            l["level"] == "DEBUG" && l["target"] == "servicedesk::api::edge"
        })
        .await;
        seen.push(frames(&json_lines(&server)));
        server.terminate().await;
    }
    assert_eq!(seen[0], 0, "SERVICEDESK_LOG=debug wrote HTTP/2 frames");
    assert!(
        seen[1] > 0,
        "SERVICEDESK_LOG=debug,h2=debug wrote no h2 line"
    );
}
