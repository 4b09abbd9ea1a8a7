//! OpenTelemetry traces against the real binary: with the standard `OTEL_EXPORTER_OTLP_*`
//! environment naming a collector (here, one served by the test itself, over OTLP/gRPC or
//! OTLP/HTTP, plaintext or TLS), a call continues the trace its caller sent in `traceparent`: a
//! SERVER span with the RPC conventions' attributes, the runtime command beneath it and the
//! store commit beneath that; its JSON log lines carry the trace and span ids. A setting the
//! server cannot honour is a warning, and the desk serves without traces.

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as SpanStatus;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use prost_types::FieldMask;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use servicedesk::proto::v1::{DeskConfig, GetTicketRequest, RoutingStrategy, UpdateConfigRequest};
use tonic::Code;

/// A span as the collector received it, with its service's name.
#[derive(Clone, Debug)]
struct Received {
    service: String,
    span: Span,
}

/// An OTLP trace collector: keeps every span it is sent, and each export's path and headers.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Received>>>,
    exports: Arc<Mutex<Vec<(String, HeaderMap)>>>,
    /// TLS handshakes that failed: a client that refused the collector, or was refused.
    refused: Arc<AtomicUsize>,
}

impl Collector {
    fn keep(&self, path: &str, headers: HeaderMap, request: ExportTraceServiceRequest) {
        // The export first: whoever sees its spans finds it.
        self.exports
            .lock()
            .unwrap()
            .push((path.to_string(), headers));
        let mut spans = self.spans.lock().unwrap();
        for resource in request.resource_spans {
            let service = resource
                .resource
                .as_ref()
                .and_then(|r| string_attribute(&r.attributes, "service.name"))
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    spans.push(Received {
                        service: service.clone(),
                        span,
                    });
                }
            }
        }
    }
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let headers = request.metadata().clone().into_headers();
        self.keep(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            headers,
            request.into_inner(),
        );
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// An OTLP/HTTP export: protobuf or JSON, maybe gzipped, to any path.
async fn http_export(
    State(collector): State<Collector>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = match headers.get(header::CONTENT_ENCODING) {
        Some(encoding) if encoding == "gzip" => {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut plain)
                .expect("a gzip body");
            plain
        }
        _ => body.to_vec(),
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let (request, answer) = match content_type.as_str() {
        "application/x-protobuf" => (
            ExportTraceServiceRequest::decode(&body[..]).expect("a protobuf export"),
            ExportTraceServiceResponse::default().encode_to_vec(),
        ),
        "application/json" => (
            serde_json::from_slice(&body).expect("a JSON export"),
            b"{}".to_vec(),
        ),
        _ => return (StatusCode::UNSUPPORTED_MEDIA_TYPE, content_type).into_response(),
    };
    collector.keep(uri.path(), headers, request);
    ([(header::CONTENT_TYPE, content_type)], answer).into_response()
}

impl Collector {
    /// Serves an OTLP/gRPC collector on a free port of 127.0.0.1; over TLS with `tls`.
    async fn start_grpc(tls: Option<tonic::transport::ServerTlsConfig>) -> (Collector, SocketAddr) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let collector = Collector::default();
        let service = TraceServiceServer::new(collector.clone())
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
        let mut server = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            server = server.tls_config(tls).unwrap();
        }
        tokio::spawn(async move {
            server
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
        (collector, addr)
    }

    async fn start() -> (Collector, SocketAddr) {
        Collector::start_grpc(None).await
    }

    /// Serves an OTLP/HTTP collector on a free port of 127.0.0.1; over TLS with `tls`.
    async fn start_http(tls: Option<Arc<rustls::ServerConfig>>) -> (Collector, SocketAddr) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let collector = Collector::default();
        let router = axum::Router::new()
            .fallback(http_export)
            .with_state(collector.clone());
        let Some(tls) = tls else {
            tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
            return (collector, addr);
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let refused = collector.refused.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let (acceptor, router, refused) =
                    (acceptor.clone(), router.clone(), refused.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        refused.fetch_add(1, Ordering::Relaxed);
                        return;
                    };
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(
                            hyper_util::rt::TokioIo::new(tls),
                            hyper_util::service::TowerToHyperService::new(router),
                        )
                        .await;
                });
            }
        });
        (collector, addr)
    }

    /// Whether any span of `trace_id` has arrived.
    fn has(&self, trace_id: &[u8]) -> bool {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.span.trace_id == trace_id)
    }

    /// The spans of `trace_id` once `wanted` holds of them; panics after 20 s.
    async fn until(&self, trace_id: &[u8], wanted: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let spans: Vec<Received> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|r| r.span.trace_id == trace_id)
                .cloned()
                .collect();
            if wanted(&spans) {
                return spans;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the trace never arrived complete; it has: {}",
                listed(&spans)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A CA made for a test, and the certificates it signs.
struct TestCa(rcgen::CertifiedIssuer<'static, rcgen::KeyPair>);

impl TestCa {
    fn new(name: &str) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().unwrap();
        TestCa(rcgen::CertifiedIssuer::self_signed(params, key).unwrap())
    }

    fn pem(&self) -> String {
        self.0.pem()
    }

    /// A certificate for 127.0.0.1 that it signed, for a server or a client, and its key (PEM).
    fn issue(&self, usage: rcgen::ExtendedKeyUsagePurpose) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        params.extended_key_usages = vec![usage];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.0).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// TLS for an HTTP collector with a certificate it signed; with `clients`, asking each
    /// client for a certificate that CA signed.
    fn http_server(&self, clients: Option<&TestCa>) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (cert, key) = self.issue(rcgen::ExtendedKeyUsagePurpose::ServerAuth);
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match clients {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots
                    .add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).unwrap())
                    .unwrap();
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    roots.into(),
                    provider,
                )
                .build()
                .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
        };
        Arc::new(builder.with_single_cert(chain, key).unwrap())
    }

    /// TLS for a gRPC collector with a certificate it signed.
    fn grpc_server(&self) -> tonic::transport::ServerTlsConfig {
        let (cert, key) = self.issue(rcgen::ExtendedKeyUsagePurpose::ServerAuth);
        tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(cert, key))
    }
}

/// Writes `text` to `dir/name`, for a variable naming a file.
fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn string_attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    match attribute(attributes, key)? {
        Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn int_attribute(attributes: &[KeyValue], key: &str) -> Option<i64> {
    match attribute(attributes, key)? {
        Value::IntValue(i) => Some(*i),
        _ => None,
    }
}

/// The spans, one per line (name, id, parent, attributes), for a failure's message.
fn listed(spans: &[Received]) -> String {
    spans
        .iter()
        .map(|r| {
            let attrs: Vec<String> = r
                .span
                .attributes
                .iter()
                .map(|kv| {
                    format!(
                        "{}={:?}",
                        kv.key,
                        kv.value.as_ref().and_then(|v| v.value.as_ref())
                    )
                })
                .collect();
            format!(
                "{} {} <- {} {}",
                r.span.name,
                hex::encode(&r.span.span_id),
                hex::encode(&r.span.parent_span_id),
                attrs.join(" ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn named<'a>(spans: &'a [Received], name: &str) -> Vec<&'a Span> {
    spans
        .iter()
        .map(|r| &r.span)
        .filter(|s| s.name == name)
        .collect()
}

/// A request carrying the W3C `traceparent` of a caller's span.
fn traced<T>(message: T, trace_id: &str, parent_span_id: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{parent_span_id}-01")
            .parse()
            .unwrap(),
    );
    request
}

async fn traced_server(collector: SocketAddr) -> Server {
    traced_server_with(collector, None).await
}

/// A server exporting to `collector` over plaintext gRPC, with `config_toml` when given.
async fn traced_server_with(collector: SocketAddr, config_toml: Option<String>) -> Server {
    let endpoint = format!("http://{collector}");
    exporting_server(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)], config_toml).await
}

/// Scrapes the server's metrics once (the address its log names), for the desk commands a
/// scrape runs.
async fn scrape_metrics(server: &Server) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    server
        .until_logged("serving metrics at /metrics", Duration::from_secs(10))
        .await;
    let log = server.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("serving metrics at /metrics"))
        .unwrap();
    let addr: serde_json::Value = serde_json::from_str(line).unwrap();
    let addr = addr["address"].as_str().unwrap().to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.contains("servicedesk_open_tickets"), "{answer}");
}

/// A server with JSON logs and metrics, exporting as `otel` (the `OTEL_*` variables) says, with
/// `config_toml` when given.
async fn exporting_server(otel: &[(&str, &str)], config_toml: Option<String>) -> Server {
    let launch = Launch {
        config_toml,
        extra_args: ["--log-format", "json", "--metrics-listen", "127.0.0.1:0"]
            .map(String::from)
            .to_vec(),
        env: [
            ("OTEL_SERVICE_NAME", "desk-under-test"),
            // Export within a tenth of a second rather than the standard five.
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ]
        .iter()
        .chain(otel)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        ..Launch::default()
    };
    Server::launch(new_root(), launch).await
}

/// Sends an inquiry in the trace `trace_id` as the caller's span `caller_span`, and checks
/// the tree `collector` receives: the call's SERVER span under the caller's, the runtime
/// command under it, the store commit under that, nothing orphaned.
async fn inquiry_traced(
    server: &Server,
    collector: &Collector,
    trace_id: &str,
    caller_span: &str,
) -> Vec<Received> {
    let answered = server
        .desk()
        .handle_inquiry(traced(
            inquiry("cust-traced", "How do I reset my password?"),
            trace_id,
            caller_span,
        ))
        .await;
    ok(answered, "HandleInquiry");
    let trace = hex::decode(trace_id).unwrap();
    let spans = collector
        .until(&trace, |spans| {
            !named(spans, "store.commit").is_empty()
                && !named(spans, "servicedesk.v1.DeskService/HandleInquiry").is_empty()
        })
        .await;
    assert!(
        spans.iter().all(|r| r.service == "desk-under-test"),
        "OTEL_SERVICE_NAME names the service: {}",
        listed(&spans)
    );
    let call = named(&spans, "servicedesk.v1.DeskService/HandleInquiry");
    assert_eq!(call.len(), 1, "one span for the call: {}", listed(&spans));
    let call = call[0];
    assert_eq!(call.kind, SpanKind::Server as i32);
    assert_eq!(
        call.parent_span_id,
        hex::decode(caller_span).unwrap(),
        "the caller's span is the call's parent"
    );
    let attrs = &call.attributes;
    assert_eq!(
        string_attribute(attrs, "rpc.system").as_deref(),
        Some("grpc")
    );
    assert_eq!(
        string_attribute(attrs, "rpc.service").as_deref(),
        Some("servicedesk.v1.DeskService")
    );
    assert_eq!(
        string_attribute(attrs, "rpc.method").as_deref(),
        Some("HandleInquiry")
    );
    assert_eq!(int_attribute(attrs, "rpc.grpc.status_code"), Some(0));
    assert_ne!(
        call.status.as_ref().map(|s| s.code),
        Some(SpanStatus::Error as i32)
    );

    let commands = named(&spans, "desk.command");
    assert!(
        commands.iter().any(|c| c.parent_span_id == call.span_id),
        "the runtime command is the call's child: {}",
        listed(&spans)
    );
    let commits = named(&spans, "store.commit");
    let command_ids: Vec<&Vec<u8>> = commands.iter().map(|c| &c.span_id).collect();
    assert!(
        commits
            .iter()
            .any(|c| command_ids.contains(&&c.parent_span_id)
                && int_attribute(&c.attributes, "servicedesk.commit.events")
                    .is_some_and(|n| n >= 1)),
        "the commit is the command's child and wrote the ticket's events: {}",
        listed(&spans)
    );
    // Every span of the trace hangs from the caller's: a tree, nothing orphaned.
    let ids: Vec<&Vec<u8>> = spans.iter().map(|r| &r.span.span_id).collect();
    let caller = hex::decode(caller_span).unwrap();
    for r in &spans {
        assert!(
            r.span.parent_span_id == caller || ids.contains(&&r.span.parent_span_id),
            "{} has a parent outside the trace: {}",
            listed(&spans),
            r.span.name
        );
        assert!(r.span.end_time_unix_nano >= r.span.start_time_unix_nano);
    }
    spans
}

#[tokio::test]
async fn an_inquiry_continues_its_callers_trace_down_to_the_store_commit() {
    let (collector, addr) = Collector::start().await;
    let server = traced_server(addr).await;
    // A scrape reads the desk through the runtime too, but outside any call: no trace.
    scrape_metrics(&server).await;
    inquiry_traced(
        &server,
        &collector,
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
    )
    .await;
    // Exported in order: the scrape's command, had it been traced, arrived before the call's.
    let roots: Vec<String> = collector
        .spans
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.span.parent_span_id.is_empty() && r.span.kind != SpanKind::Server as i32)
        .map(|r| r.span.name.clone())
        .collect();
    assert!(roots.is_empty(), "traces begun outside a call: {roots:?}");
    server.terminate().await;
}

#[tokio::test]
async fn a_call_a_follower_forwards_is_one_trace_across_both_servers() {
    let Some(scratch) = common::database::ScratchDesk::new("a_forwarded_call_is_one_trace") else {
        return;
    };
    let (collector, addr) = Collector::start().await;
    let leader = traced_server_with(addr, Some(scratch.config())).await;
    let follower = traced_server_with(addr, Some(scratch.config())).await;
    follower
        .until_logged("following the desk's leader", Duration::from_secs(10))
        .await;
    let trace_id = "c1d2e3f4a5b60718293a4b5c6d7e8f90";
    let caller_span = "0123456789abcdef";
    ok(
        follower
            .desk()
            .handle_inquiry(traced(
                inquiry("cust-forwarded", "How do I reset my password?"),
                trace_id,
                caller_span,
            ))
            .await,
        "HandleInquiry through the follower",
    );
    let spans = collector
        .until(&hex::decode(trace_id).unwrap(), |spans| {
            named(spans, "servicedesk.v1.DeskService/HandleInquiry").len() == 2
                && !named(spans, "store.commit").is_empty()
        })
        .await;
    let calls = named(&spans, "servicedesk.v1.DeskService/HandleInquiry");
    let caller = hex::decode(caller_span).unwrap();
    let on_follower = calls
        .iter()
        .find(|s| s.parent_span_id == caller)
        .unwrap_or_else(|| {
            panic!(
                "the follower continues the caller's span: {}",
                listed(&spans)
            )
        });
    let on_leader = calls
        .iter()
        .find(|s| s.parent_span_id == on_follower.span_id)
        .unwrap_or_else(|| {
            panic!(
                "the leader continues the follower's span: {}",
                listed(&spans)
            )
        });
    assert!(
        named(&spans, "desk.command")
            .iter()
            .any(|c| c.parent_span_id == on_leader.span_id),
        "the command runs under the leader's span: {}",
        listed(&spans)
    );
    follower.terminate().await;
    leader.terminate().await;
}

#[tokio::test]
async fn a_calls_code_and_log_lines_carry_its_trace() {
    let (collector, addr) = Collector::start().await;
    let server = traced_server(addr).await;

    // A caller's mistake is the span's code, not a server error.
    let missing = "5b8aa5a2d2c872e8321cf37308d69df2";
    let refused = server
        .desk()
        .get_ticket(traced(
            GetTicketRequest {
                ticket_id: "tkt_00000000000nothere0".into(),
            },
            missing,
            "051581bf3cb55c13",
        ))
        .await;
    expect_code(refused, Code::NotFound, "GetTicket of no ticket");
    let spans = collector
        .until(&hex::decode(missing).unwrap(), |spans| !spans.is_empty())
        .await;
    let call = named(&spans, "servicedesk.v1.DeskService/GetTicket")[0];
    assert_eq!(
        int_attribute(&call.attributes, "rpc.grpc.status_code"),
        Some(5)
    );
    assert_ne!(
        call.status.as_ref().map(|s| s.code),
        Some(SpanStatus::Error as i32),
        "NOT_FOUND is the caller's error, not the server's"
    );

    // Health checks, which probes send every few seconds, are not traced.
    let probe = "8d9c5f3b0c7d4e6fa1b2c3d4e5f60718";
    let mut health = server.health();
    ok(
        health
            .check(traced(
                tonic_health::pb::HealthCheckRequest::default(),
                probe,
                "1111111111111111",
            ))
            .await,
        "Health/Check",
    );

    // The lines a call writes carry its trace id; a call sent without one starts a trace of
    // its own, and its lines carry that one.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let update = |routing: RoutingStrategy| UpdateConfigRequest {
        config: Some(DeskConfig {
            routing_strategy: routing as i32,
            ..Default::default()
        }),
        update_mask: Some(FieldMask {
            paths: vec!["routing_strategy".into()],
        }),
    };
    let mut admin = server.admin();
    ok(
        admin
            .update_config(traced(
                update(RoutingStrategy::RoundRobin),
                trace_id,
                "00f067aa0ba902b7",
            ))
            .await,
        "UpdateConfig",
    );
    ok(
        admin
            .update_config(update(RoutingStrategy::LeastLoaded))
            .await,
        "UpdateConfig",
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let updated = loop {
        let lines: Vec<serde_json::Value> = server
            .log_text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .filter(|l: &serde_json::Value| l["message"] == "configuration updated")
            .collect();
        if lines.len() == 2 {
            break lines;
        }
        assert!(tokio::time::Instant::now() < deadline, "{lines:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // A line's trace and span ids, top level, lowercase hex, and the exported call span of
    // that trace, whose id is the line's span id.
    let ids_of = async |line: &serde_json::Value| -> (String, Span) {
        let id = |name: &str, len: usize| -> String {
            let id = line[name]
                .as_str()
                .unwrap_or_else(|| panic!("no {name} on {line}"));
            assert!(
                id.len() == len
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{name} of {line}"
            );
            id.to_string()
        };
        let (trace, span_id) = (id("trace_id", 32), id("span_id", 16));
        let spans = collector
            .until(&hex::decode(&trace).unwrap(), |spans| !spans.is_empty())
            .await;
        let call = named(&spans, "servicedesk.v1.AdminService/UpdateConfig")[0].clone();
        assert_eq!(
            hex::encode(&call.span_id),
            span_id,
            "{line}: {}",
            listed(&spans)
        );
        (trace, call)
    };
    let (continued, call) = ids_of(&updated[0]).await;
    assert_eq!(continued, trace_id);
    assert_eq!(
        call.parent_span_id,
        hex::decode("00f067aa0ba902b7").unwrap()
    );
    let (own, root) = ids_of(&updated[1]).await;
    assert!(own != trace_id && own.bytes().any(|b| b != b'0'), "{own}");
    assert!(
        root.parent_span_id.is_empty(),
        "a trace of its own: {root:?}"
    );
    // Exported in order: what was sent before the last call has arrived by now.
    let probe = hex::decode(probe).unwrap();
    assert!(
        !collector.has(&probe),
        "a health check continued its caller's trace"
    );
    let health: Vec<String> = collector
        .spans
        .lock()
        .unwrap()
        .iter()
        .filter(|r| {
            r.span.name.contains("Health")
                || string_attribute(&r.span.attributes, "method")
                    .is_some_and(|m| m.starts_with("/grpc.health"))
        })
        .map(|r| r.span.name.clone())
        .collect();
    assert!(health.is_empty(), "health checks were exported: {health:?}");
    server.terminate().await;
}

#[tokio::test]
async fn spans_still_buffered_are_exported_when_the_server_stops() {
    let (collector, addr) = Collector::start().await;
    let launch = Launch {
        env: vec![
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
                format!("http://{collector}", collector = addr),
            ),
            // Longer than the test: only the flush at shutdown exports.
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "600000".into()),
        ],
        ..Launch::default()
    };
    let server = Server::launch(new_root(), launch).await;
    let trace_id = "6e0c63257de34c92bf9efcd03927272e";
    ok(
        server
            .desk()
            .handle_inquiry(traced(
                inquiry("cust-flush", "Where is my order?"),
                trace_id,
                "a3ce929d0e0e4736",
            ))
            .await,
        "HandleInquiry",
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let trace = hex::decode(trace_id).unwrap();
    assert!(
        !collector.has(&trace),
        "nothing exported before the schedule"
    );
    server.terminate().await;
    let spans = collector
        .until(&trace, |spans| !named(spans, "store.commit").is_empty())
        .await;
    let services: HashMap<&str, usize> = spans.iter().fold(HashMap::new(), |mut m, r| {
        *m.entry(r.service.as_str()).or_default() += 1;
        m
    });
    assert_eq!(
        services.keys().copied().collect::<Vec<_>>(),
        vec!["servicedesk"],
        "unnamed by the environment, the service is servicedesk"
    );
}

#[tokio::test]
async fn a_collector_out_of_reach_costs_the_desk_nothing() {
    // A port nobody listens on.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = gone.local_addr().unwrap();
    drop(gone);
    let launch = Launch {
        env: vec![
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
                format!("http://{addr}"),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "50".into()),
        ],
        ..Launch::default()
    };
    let mut server = Server::launch(new_root(), launch).await;
    let mut desk = server.desk();
    for n in 0..20 {
        let answer = ask(
            &mut desk,
            inquiry(&format!("cust-{n}"), "Where is my order?"),
        )
        .await;
        assert!(answer.ticket.is_some());
    }
    // Shutdown flushes what is left, but waits for no collector longer than its bound.
    server.send_sigterm();
    let started = std::time::Instant::now();
    let status = server
        .exit_within(Duration::from_secs(15))
        .await
        .expect("the server exits though its collector is gone");
    assert!(status.success(), "{status}");
    assert!(started.elapsed() < Duration::from_secs(15));
}

/// The WARN lines of a server's log, each parsed.
fn warnings(server: &Server) -> Vec<serde_json::Value> {
    server
        .log_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["level"] == "WARN" && l["target"] == "servicedesk::telemetry")
        .collect()
}

#[tokio::test]
async fn an_otlp_setting_the_server_cannot_use_is_a_warning_and_the_desk_serves_untraced() {
    let (collector, grpc) = Collector::start().await;
    let (http_collector, http) = Collector::start_http(None).await;
    let dir = tempfile::tempdir().unwrap();
    let not_pem = file(dir.path(), "ca.pem", "not a certificate");
    let grpc_tls = format!("https://{grpc}");
    let grpc = format!("http://{grpc}");
    let http = format!("http://{http}");
    let secret = "s3cr3t-collector-key";
    let header = format!("x-api-key={secret}%zz");
    // The variables, the one the warning names, and a word of what it says to set.
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &http),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/xml"),
            ],
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "http/protobuf",
        ),
        (
            vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "http://[not-an-address")],
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://HOST:PORT",
        ),
        (
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &grpc),
                ("OTEL_EXPORTER_OTLP_HEADERS", &header),
            ],
            "OTEL_EXPORTER_OTLP_HEADERS",
            "percent-encode",
        ),
        (
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &grpc_tls),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
                    not_pem.to_str().unwrap(),
                ),
            ],
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
            "no certificate",
        ),
        (
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &grpc),
                ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
            ],
            "OTEL_EXPORTER_OTLP_COMPRESSION",
            "gzip",
        ),
    ];
    for (otel, variable, advice) in cases {
        let server = exporting_server(&otel, None).await;
        // It serves, and says once why it exports nothing.
        let trace_id = "e4d3c2b1a09f8e7d6c5b4a3928170615";
        ok(
            server
                .desk()
                .handle_inquiry(traced(
                    inquiry("cust-untraced", PASSWORD_RESET),
                    trace_id,
                    "0102030405060708",
                ))
                .await,
            "HandleInquiry",
        );
        let said = warnings(&server);
        assert_eq!(said.len(), 1, "{otel:?}: {said:?}");
        let message = said[0]["message"].as_str().unwrap();
        assert_eq!(said[0]["variable"], variable, "{message}");
        assert!(
            message.contains(advice) && message.contains("without exporting traces"),
            "{message}"
        );
        let log = server.log_text();
        assert!(!log.contains(secret), "a header's value in the log: {log}");
        assert!(!log.contains("exporting traces over"), "{log}");
        // Stopping flushes whatever was exported: nothing was.
        server.terminate().await;
        let trace = hex::decode(trace_id).unwrap();
        assert!(
            !collector.has(&trace) && !http_collector.has(&trace),
            "{otel:?}"
        );
    }
}

#[tokio::test]
async fn over_http_protobuf_the_collector_gets_the_inquirys_trace_with_the_headers() {
    let (collector, addr) = Collector::start_http(None).await;
    let endpoint = format!("http://{addr}");
    let server = exporting_server(
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "x-collector-key=s3cr%3Dt%2C1, X-Tenant=desk",
            ),
        ],
        None,
    )
    .await;
    server
        .until_logged("exporting traces over OTLP", Duration::from_secs(10))
        .await;
    inquiry_traced(
        &server,
        &collector,
        "7f0c6e5a4b3d2c1e0f9a8b7c6d5e4f30",
        "1a2b3c4d5e6f7081",
    )
    .await;
    let exports = collector.exports.lock().unwrap().clone();
    assert!(!exports.is_empty());
    for (path, headers) in &exports {
        // The general endpoint is a base: the traces' path is added.
        assert_eq!(path, "/v1/traces");
        assert_eq!(headers[header::CONTENT_TYPE], "application/x-protobuf");
        assert_eq!(headers["x-collector-key"], "s3cr=t,1", "percent-decoded");
        assert_eq!(headers["x-tenant"], "desk");
    }
    server.terminate().await;
}

#[tokio::test]
async fn over_http_json_gzipped_to_the_traces_own_endpoint() {
    let (collector, addr) = Collector::start_http(None).await;
    let endpoint = format!("http://{addr}/otlp/ingest");
    let server = exporting_server(
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ],
        None,
    )
    .await;
    inquiry_traced(
        &server,
        &collector,
        "2c3d4e5f60718293a4b5c6d7e8f90a1b",
        "99aabbccddeeff00",
    )
    .await;
    let exports = collector.exports.lock().unwrap().clone();
    assert!(!exports.is_empty());
    for (path, headers) in &exports {
        // The traces' own endpoint is used as it is.
        assert_eq!(path, "/otlp/ingest");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
    }
    server.terminate().await;
}

#[tokio::test]
async fn over_https_the_collectors_ca_is_trusted_the_desks_certificate_shown_and_no_other_ca() {
    let ca = TestCa::new("collector ca");
    let clients = TestCa::new("client ca");
    let (collector, addr) = Collector::start_http(Some(ca.http_server(Some(&clients)))).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = file(dir.path(), "ca.pem", &ca.pem());
    let (cert, key) = clients.issue(rcgen::ExtendedKeyUsagePurpose::ClientAuth);
    let cert_file = file(dir.path(), "desk.pem", &cert);
    let key_file = file(dir.path(), "desk.key", &key);
    let endpoint = format!("https://{addr}");
    let identity = [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        (
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            cert_file.to_str().unwrap(),
        ),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", key_file.to_str().unwrap()),
    ];
    let trusting = [
        &identity[..],
        &[("OTEL_EXPORTER_OTLP_CERTIFICATE", ca_file.to_str().unwrap())],
    ]
    .concat();
    let server = exporting_server(&trusting, None).await;
    inquiry_traced(
        &server,
        &collector,
        "3d4e5f60718293a4b5c6d7e8f90a1b2c",
        "0011223344556677",
    )
    .await;
    server.terminate().await;

    // Trusting another CA, the desk refuses the collector, says so, and serves on.
    let other = TestCa::new("another ca");
    let other_file = file(dir.path(), "other.pem", &other.pem());
    let wrong = [
        &identity[..],
        &[(
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            other_file.to_str().unwrap(),
        )],
    ]
    .concat();
    let server = exporting_server(&wrong, None).await;
    let trace_id = "4e5f60718293a4b5c6d7e8f90a1b2c3d";
    ok(
        server
            .desk()
            .handle_inquiry(traced(
                inquiry("cust-refused", PASSWORD_RESET),
                trace_id,
                "8877665544332211",
            ))
            .await,
        "HandleInquiry",
    );
    server
        .until_logged(
            "name the CA that signed it in OTEL_EXPORTER_OTLP_CERTIFICATE",
            Duration::from_secs(20),
        )
        .await;
    assert!(collector.refused.load(Ordering::Relaxed) > 0);
    ask(
        &mut server.desk(),
        inquiry("cust-still-served", PASSWORD_RESET),
    )
    .await;
    server.terminate().await;
    assert!(!collector.has(&hex::decode(trace_id).unwrap()));

    // Without its certificate, the collector refuses the desk, and the desk says what to set.
    let server = exporting_server(&[trusting[0], trusting[1], trusting[4]], None).await;
    ask(
        &mut server.desk(),
        inquiry("cust-anonymous", PASSWORD_RESET),
    )
    .await;
    server
        .until_logged(
            "set OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY",
            Duration::from_secs(20),
        )
        .await;
    server.terminate().await;
}

#[tokio::test]
async fn grpc_over_tls_trusts_the_ca_named_and_sends_the_headers() {
    let ca = TestCa::new("collector ca");
    let (collector, addr) = Collector::start_grpc(Some(ca.grpc_server())).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = file(dir.path(), "ca.pem", &ca.pem());
    let endpoint = format!("https://{addr}");
    let server = exporting_server(
        &[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
            (
                "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
                ca_file.to_str().unwrap(),
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                "x-collector-key=k%20ey",
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip"),
        ],
        None,
    )
    .await;
    inquiry_traced(
        &server,
        &collector,
        "5f60718293a4b5c6d7e8f90a1b2c3d4e",
        "1122334455667788",
    )
    .await;
    let exports = collector.exports.lock().unwrap().clone();
    assert!(!exports.is_empty());
    for (_, headers) in &exports {
        assert_eq!(headers["x-collector-key"], "k ey");
        assert_eq!(headers["grpc-encoding"], "gzip");
    }
    server.terminate().await;
}

#[tokio::test]
async fn an_endpoint_left_empty_exports_nothing() {
    // As the Kubernetes manifests ship it: the variable present, naming no collector.
    let launch = Launch {
        env: vec![("OTEL_EXPORTER_OTLP_ENDPOINT".into(), String::new())],
        ..Launch::default()
    };
    let server = Server::launch(new_root(), launch).await;
    ask(
        &mut server.desk(),
        inquiry("cust-untraced", "Where is my order?"),
    )
    .await;
    assert!(
        !server.log_text().contains("exporting traces"),
        "{}",
        server.log_text()
    );
    server.terminate().await;
}
