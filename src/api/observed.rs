//! Every call, observed by one tower layer in front of every service (so calls the edge sheds
//! and calls a follower forwards are seen too): its span and its metrics.
//!
//! - The span is what the call's log lines are written in: its method and the trace id
//!   ([`CALLS`]). When traces are exported it is also the call's SERVER span
//!   ([`TRACED_CALLS`]), named `service/method` with the OpenTelemetry RPC conventions'
//!   attributes (`rpc.system`, `rpc.service`, `rpc.method`, `rpc.grpc.status_code`), continuing
//!   the caller's W3C `traceparent`, and lasting until the answer (a stream, maybe) ends; the
//!   codes the conventions call server errors mark it failed.
//! - The metrics, when a metrics listener is configured, under go-grpc-middleware's names and
//!   labels: started, handled by code, messages received and sent, handling time.
//! - The access line, when asked for ([`crate::config::AccessLog`]): one INFO line
//!   ([`ACCESS`]) in the call's span as the call ends (a stream: as it ends), with the code
//!   under go-grpc-middleware's name, the time taken, the client the API-key check
//!   identified and the peer's address.
//!
//! Health checks have spans in the logs but neither traces nor access lines: probes would
//! drown the calls.
//!
//! A call's type and names come from the services' descriptors; a path no service has counts
//! (and is named) `unknown`, so that no client can grow the label sets. Messages are counted
//! from the gRPC framing of the bodies (a flag byte and a length before each message); the code
//! from `grpc-status` in the trailers, or in the headers of an answer without a body. A call
//! whose answer the client dropped before its end counts as `Canceled`.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Body, Frame, SizeHint};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use prometheus::{Histogram, IntCounter};
use prost::Message;
use tonic::codegen::http;
use tower::{Layer, Service};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::connections::Connection;
use crate::config::{Access, AccessLog};
use crate::metrics::Metrics;
use crate::telemetry::{self, ACCESS, CALLS, TRACED_CALLS};

/// The health service's paths.
const HEALTH: &str = "/grpc.health.v1.Health/";

/// The names go-grpc-middleware gives the codes, by number.
const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// One method's labels and its metrics with those labels, resolved once.
struct Method {
    labels: [String; 3],
    /// Its span's name in traces: `service/method`.
    span_name: String,
    started: IntCounter,
    /// `grpc_server_handled_total` for each code, by number: all exported from the start, as
    /// go-grpc-middleware does, so that a rate or an alert over a code never finds it absent.
    handled: [IntCounter; 17],
    received: IntCounter,
    sent: IntCounter,
    handling: Histogram,
}

impl Method {
    fn new(metrics: &Metrics, labels: [String; 3]) -> Method {
        let l = [labels[0].as_str(), labels[1].as_str(), labels[2].as_str()];
        Method {
            started: metrics.grpc_started.with_label_values(&l),
            handled: CODES.map(|code| {
                metrics
                    .grpc_handled
                    .with_label_values(&[l[0], l[1], l[2], code])
            }),
            received: metrics.grpc_received.with_label_values(&l),
            sent: metrics.grpc_sent.with_label_values(&l),
            handling: metrics.grpc_handling.with_label_values(&l),
            span_name: format!("{}/{}", labels[1], labels[2]),
            labels,
        }
    }

    /// Counts the call as handled with `code` (by number; a number past the known codes counts
    /// as `Unknown`), `started` ago.
    fn handled(&self, code: usize, started: Instant) {
        self.handled.get(code).unwrap_or(&self.handled[2]).inc();
        self.handling.observe(started.elapsed().as_secs_f64());
    }
}

/// The layer; built once per server from the descriptors of the services it serves.
#[derive(Clone)]
pub struct ObservedLayer {
    metrics: Arc<Metrics>,
    methods: Arc<HashMap<String, Arc<Method>>>,
    unknown: Arc<Method>,
    /// False when nobody scrapes the metrics: nothing is recorded, at no cost.
    recording: bool,
    /// Which calls get an access line.
    access: Access,
}

impl ObservedLayer {
    /// Knows every method of the services in `descriptor_sets` (encoded
    /// `FileDescriptorSet`s), and the reflection services.
    pub fn new(metrics: Arc<Metrics>, descriptor_sets: &[&[u8]]) -> ObservedLayer {
        let mut methods = HashMap::new();
        for set in descriptor_sets {
            let Ok(set) = prost_types::FileDescriptorSet::decode(*set) else {
                continue;
            };
            for file in &set.file {
                for service in &file.service {
                    let full = format!("{}.{}", file.package(), service.name());
                    for method in &service.method {
                        let kind = match (method.client_streaming(), method.server_streaming()) {
                            (false, false) => "unary",
                            (true, false) => "client_stream",
                            (false, true) => "server_stream",
                            (true, true) => "bidi_stream",
                        };
                        let labels = [kind.to_string(), full.clone(), method.name().to_string()];
                        methods.insert(
                            format!("/{full}/{}", method.name()),
                            Arc::new(Method::new(&metrics, labels)),
                        );
                    }
                }
            }
        }
        for service in [
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ] {
            let labels = [
                "bidi_stream".to_string(),
                service.to_string(),
                "ServerReflectionInfo".to_string(),
            ];
            methods.insert(
                format!("/{service}/ServerReflectionInfo"),
                Arc::new(Method::new(&metrics, labels)),
            );
        }
        let unknown = ["unknown", "unknown", "unknown"].map(str::to_string);
        ObservedLayer {
            unknown: Arc::new(Method::new(&metrics, unknown)),
            metrics,
            methods: Arc::new(methods),
            recording: true,
            access: telemetry::access(),
        }
    }

    /// The same layer recording no metrics (no metrics listener); calls still have spans.
    pub fn unmetered(mut self) -> ObservedLayer {
        self.recording = false;
        self
    }
}

impl<S> Layer<S> for ObservedLayer {
    type Service = Observed<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observed {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Observed<S> {
    inner: S,
    layer: ObservedLayer,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Observed<S>
where
    S: Service<http::Request<Counted<ReqBody>>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Body<Data = bytes::Bytes> + Send + Unpin + 'static,
    ResBody: Body<Data = bytes::Bytes> + Send + Unpin + 'static,
{
    type Response = http::Response<Finished<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let method = self
            .layer
            .methods
            .get(request.uri().path())
            .unwrap_or(&self.layer.unknown)
            .clone();
        // Health checks, which probes send every few seconds, are neither traced nor logged.
        let probe = request.uri().path().starts_with(HEALTH);
        let traced = telemetry::exporting() && !probe;
        let span = call_span(&method, &request, traced);
        let access = match self.layer.access.log {
            AccessLog::Off => None,
            _ if probe => None,
            _ => Some(AccessLine::of(&mut request, self.layer.access)),
        };
        let metrics = self.layer.recording.then(|| self.layer.metrics.clone());
        if metrics.is_none() && !traced && access.is_none() {
            let call = span.in_scope(|| self.inner.call(request.map(Counted::idle)));
            let answered = async move { Ok(call.await?.map(Finished::idle)) };
            return Box::pin(tracing::Instrument::instrument(answered, span));
        }
        let received = metrics.as_ref().map(|_| {
            method.started.inc();
            method.received.clone()
        });
        let request = request.map(|body| Counted {
            body,
            frames: Frames::default(),
            counter: received,
        });
        let call = span.in_scope(|| self.inner.call(request));
        let end = End {
            metrics,
            method,
            started: Instant::now(),
            span: (traced || access.is_some()).then(|| span.clone()),
            traced,
            access,
        };
        let answered = async move {
            let response = call.await?;
            // An answer without a body carries its code in its headers.
            let pending = match grpc_status(response.headers()) {
                Some(code) => {
                    end.record(code);
                    None
                }
                None => Some(end),
            };
            Ok(response.map(|body| Finished {
                body,
                frames: Frames::default(),
                end: pending,
            }))
        };
        Box::pin(tracing::Instrument::instrument(answered, span))
    }
}

/// The code in a `grpc-status` header or trailer.
fn grpc_status(headers: &http::HeaderMap) -> Option<usize> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
}

/// The span a call's log lines are written in, and its trace's SERVER span when `traced`.
fn call_span<B>(method: &Method, request: &http::Request<B>, traced: bool) -> tracing::Span {
    let path = request.uri().path();
    if !traced {
        // The trace id the caller sent, so its lines are found by the id its own traces use.
        let trace_id = request
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(trace_id_of);
        return tracing::info_span!(
            target: CALLS,
            "call",
            method = %path,
            trace_id = trace_id.unwrap_or_default()
        );
    }
    let [_, service, name] = &method.labels;
    let span = tracing::info_span!(
        target: TRACED_CALLS,
        "call",
        method = %path,
        trace_id = tracing::field::Empty,
        otel.name = %method.span_name,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %name,
    );
    let parent = TraceContextPropagator::new().extract(&Headers(request.headers()));
    // Only a span already entered refuses a parent; this one is new.
    let _ = span.set_parent(parent);
    let trace_id = span.context().span().span_context().trace_id();
    span.record("trace_id", tracing::field::display(trace_id));
    span
}

/// Puts the current span's context in `headers` as its W3C `traceparent` (and `tracestate`),
/// so that the server a call is forwarded to continues its trace; nothing unless traced.
pub(super) fn continue_trace_in(headers: &mut http::HeaderMap) {
    if telemetry::exporting() {
        let context = tracing::Span::current().context();
        TraceContextPropagator::new().inject_context(&context, &mut HeadersMut(headers));
    }
}

/// The trace id of a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`, lowercase); `None` for
/// one that is malformed or all zeros (invalid by the standard, and so for the propagator).
fn trace_id_of(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.trim().split('-');
    let (version, id) = (parts.next()?, parts.next()?);
    let hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    (version.len() == 2
        && hex(version)
        && id.len() == 32
        && hex(id)
        && id.bytes().any(|b| b != b'0'))
    .then_some(id)
}

/// A request's metadata as the propagator reads it.
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// A request's metadata as the propagator writes it.
struct HeadersMut<'a>(&'a mut http::HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Who made a call, once the API-key check knows, for its access line.
#[derive(Clone, Default)]
pub(super) struct Caller(Arc<OnceLock<String>>);

impl Caller {
    pub(super) fn identified(&self, client_id: &str) {
        let _ = self.0.set(client_id.to_string());
    }
}

/// What a call's access line says besides its code and time.
struct AccessLine {
    caller: Caller,
    peer: Option<SocketAddr>,
    access: Access,
}

impl AccessLine {
    /// Leaves a [`Caller`] in the request for the API-key check to fill.
    fn of<B>(request: &mut http::Request<B>, access: Access) -> AccessLine {
        let caller = Caller::default();
        request.extensions_mut().insert(caller.clone());
        let extensions = request.extensions();
        // Over TLS too: tonic puts the connection's own info beside its TLS info.
        let connection = extensions.get::<Connection>();
        AccessLine {
            caller,
            peer: connection.and_then(Connection::remote),
            access,
        }
    }

    /// Writes the line, in `span`, if the call's code asks for one.
    fn write(&self, span: &tracing::Span, code: usize, name: &str, started: Instant) {
        let logged = match self.access.log {
            AccessLog::Off => false,
            AccessLog::Errors => code != 0,
            AccessLog::All => {
                code != 0 || self.access.sample >= 1.0 || rand::random::<f64>() < self.access.sample
            }
        };
        if logged {
            let micros = started.elapsed().as_micros() as f64;
            span.in_scope(|| {
                tracing::info!(
                    target: ACCESS,
                    code = %name,
                    duration_ms = micros / 1000.0,
                    client = self.caller.0.get().map(tracing::field::display),
                    peer = self.peer.map(tracing::field::display),
                    "call finished"
                )
            });
        }
    }
}

/// What is recorded when a call ends: its metrics, its span's code, its access line.
struct End {
    /// `None`: no metrics listener.
    metrics: Option<Arc<Metrics>>,
    method: Arc<Method>,
    started: Instant,
    /// The call's span, while traces are exported or access lines written; ends when this does.
    span: Option<tracing::Span>,
    /// Whether the span is exported.
    traced: bool,
    /// `None`: no access line.
    access: Option<AccessLine>,
}

impl End {
    fn record(&self, code: usize) {
        let name = CODES.get(code).copied().unwrap_or("Unknown");
        if self.metrics.is_some() {
            self.method.handled(code, self.started);
        }
        let Some(span) = &self.span else {
            return;
        };
        if self.traced {
            span.set_attribute("rpc.grpc.status_code", code as i64);
            // The RPC conventions' server errors: the server failed, not the caller.
            if matches!(code, 2 | 4 | 12 | 13 | 14 | 15) {
                span.set_status(opentelemetry::trace::Status::error(name));
            }
        }
        if let Some(access) = &self.access {
            access.write(span, code, name, self.started);
        }
    }
}

/// Counts gRPC messages in a stream of bytes: each is a flag byte, a four-byte big-endian
/// length, and that many bytes.
#[derive(Default)]
struct Frames {
    /// Bytes of the current message's prefix read so far.
    prefix: [u8; 5],
    have: usize,
    /// Bytes of the current message's payload still to come.
    left: usize,
}

impl Frames {
    /// Reads `data`; returns how many messages began in it.
    fn feed(&mut self, mut data: &[u8]) -> u64 {
        let mut began = 0;
        while !data.is_empty() {
            if self.left > 0 {
                let skip = self.left.min(data.len());
                self.left -= skip;
                data = &data[skip..];
                continue;
            }
            let take = (5 - self.have).min(data.len());
            self.prefix[self.have..self.have + take].copy_from_slice(&data[..take]);
            self.have += take;
            data = &data[take..];
            if self.have == 5 {
                began += 1;
                self.have = 0;
                let length = [
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ];
                self.left = u32::from_be_bytes(length) as usize;
            }
        }
        began
    }
}

/// A request body whose messages are counted as they are read.
pub struct Counted<B> {
    body: B,
    frames: Frames,
    /// `None`: nothing is counted.
    counter: Option<IntCounter>,
}

impl<B> Counted<B> {
    fn idle(body: B) -> Self {
        Counted {
            body,
            frames: Frames::default(),
            counter: None,
        }
    }
}

impl<B: Body<Data = bytes::Bytes> + Unpin> Body for Counted<B> {
    type Data = bytes::Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let (Poll::Ready(Some(Ok(frame))), Some(_)) = (&polled, &self.counter) {
            if let Some(data) = frame.data_ref() {
                let began = self.frames.feed(data);
                if let Some(counter) = &self.counter {
                    counter.inc_by(began);
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A response body whose messages are counted as they leave, and whose trailers (or drop)
/// end the call's record.
pub struct Finished<B> {
    body: B,
    frames: Frames,
    /// `None` once recorded (or when nothing is).
    end: Option<End>,
}

impl<B> Finished<B> {
    fn idle(body: B) -> Self {
        Finished {
            body,
            frames: Frames::default(),
            end: None,
        }
    }
}

impl<B: Body<Data = bytes::Bytes> + Unpin> Body for Finished<B> {
    type Data = bytes::Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if self.end.is_none() {
            return polled;
        }
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                let this = &mut *self;
                if let (Some(data), Some(end)) = (frame.data_ref(), &this.end) {
                    if end.metrics.is_some() {
                        end.method.sent.inc_by(this.frames.feed(data));
                    }
                }
                if let Some(trailers) = frame.trailers_ref() {
                    let code = grpc_status(trailers).unwrap_or(2);
                    if let Some(end) = self.end.take() {
                        end.record(code);
                    }
                }
            }
            // Ended without trailers: no code was given.
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => {
                if let Some(end) = self.end.take() {
                    end.record(2);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl<B> Drop for Finished<B> {
    fn drop(&mut self) {
        // The client went away before the answer ended.
        if let Some(end) = self.end.take() {
            end.record(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_well_formed_traceparent_gives_a_trace_id() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(
            trace_id_of(&format!("00-{id}-00f067aa0ba902b7-01")),
            Some(id)
        );
        for bad in [
            "",
            "00",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(trace_id_of(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn messages_are_counted_across_any_split_of_the_bytes() {
        let mut stream = Vec::new();
        for length in [0u32, 3, 70_000, 1] {
            stream.push(0);
            stream.extend_from_slice(&length.to_be_bytes());
            stream.extend(std::iter::repeat_n(7u8, length as usize));
        }
        for split in [1, 2, 5, 6, 1000, stream.len()] {
            let mut frames = Frames::default();
            let counted: u64 = stream.chunks(split).map(|chunk| frames.feed(chunk)).sum();
            assert_eq!(counted, 4, "split every {split} bytes");
        }
    }
}
