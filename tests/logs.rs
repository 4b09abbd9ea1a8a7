//! JSON logs against the real binary: `--log-format json` writes one JSON object per line, and
//! the lines a call writes carry the trace id its caller sent in a W3C `traceparent`.

mod common;

use std::time::Duration;

use common::*;
use prost_types::FieldMask;
use servicedesk::proto::v1::{DeskConfig, RoutingStrategy, UpdateConfigRequest};

#[tokio::test]
async fn json_log_lines_parse_and_a_calls_lines_carry_its_trace_id() {
    let server = Server::start_with(new_root(), &["--log-format", "json"], None).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut request = tonic::Request::new(UpdateConfigRequest {
        config: Some(DeskConfig {
            routing_strategy: RoutingStrategy::RoundRobin as i32,
            ..Default::default()
        }),
        update_mask: Some(FieldMask {
            paths: vec!["routing_strategy".into()],
        }),
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01")
            .parse()
            .unwrap(),
    );
    ok(server.admin().update_config(request).await, "UpdateConfig");
    server
        .until_logged("configuration updated", Duration::from_secs(10))
        .await;
    let lines: Vec<serde_json::Value> = server
        .log_text()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    assert!(lines.len() >= 3, "{lines:?}");
    let updated = lines
        .iter()
        .find(|l| l["fields"]["message"] == "configuration updated")
        .expect("the line of the call");
    let spans = updated["spans"].as_array().expect("the spans of the line");
    assert!(
        spans.iter().any(|span| span["trace_id"] == trace_id
            && span["method"] == "/servicedesk.v1.AdminService/UpdateConfig"),
        "the call's line carries its trace id: {updated}"
    );
    // Lines outside any call carry none.
    let listening = lines
        .iter()
        .find(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("listening on"))
        })
        .unwrap();
    assert!(listening
        .get("spans")
        .is_none_or(|s| s.as_array().is_some_and(|a| a.is_empty())));
}
