//! Log lines against the real binary: `--log-format json` writes one object per line with the
//! message and, inside a call, the call's method and trace id at the top level; and
//! `SERVICEDESK_LOG=debug` leaves the transport's frames out unless it names them.

mod common;

use std::time::Duration;

use common::*;
use prost_types::FieldMask;
use serde_json::Value;
use servicedesk::proto::v1::{DeskConfig, RoutingStrategy, UpdateConfigRequest};

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
