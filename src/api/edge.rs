//! The edge of every call, in front of every service:
//!
//! - load shedding across every connection: at most `limit` calls in flight at once, the next
//!   one answered RESOURCE_EXHAUSTED at once instead of queueing without bound; and at most
//!   `per_client` of them from one client (the client its key authenticates, however the key
//!   is spelled and whichever of the client's keys it is), so one caller cannot take them all.
//!   Health checks are never shed, so probes keep telling the truth under load. A
//!   streaming call counts until its response starts, like a unary call until it returns;
//! - a request's body must arrive within `body_deadline` (one message, sent at once by any
//!   client): a caller that announces a large message and trickles it cannot hold a place;
//! - every call and stream counts on its [`Connection`] until its response body is gone, so an
//!   idle connection can be told from a busy one;
//! - an oversized request gets the code the gRPC ecosystem uses for it, RESOURCE_EXHAUSTED
//!   (tonic's decoder says OUT_OF_RANGE, which this API keeps for a watch resumed before what
//!   retention kept), and a body that is not the method's message INVALID_ARGUMENT (tonic says
//!   INTERNAL, which counts a client's garbage among the server's errors);
//! - one log line per call at debug level: method, code, time, never metadata.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::future::Future;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use tokio::sync::Semaphore;
use tonic::codegen::http;
use tower::{Layer, Service};

use super::connections::{CallGuard, Connection};
use super::keyless::{self, KeylessLimits, KeylessStream, KeylessStreams};
use super::{auth, status};
use crate::clock::now_ms;
use crate::keys::KeyRing;

/// Paths never shed.
const HEALTH: &str = "/grpc.health.v1.Health/";

/// The edge's limits, from `[server]`.
#[derive(Clone, Copy, Debug)]
pub struct EdgeLimits {
    /// Calls in flight across every connection.
    pub calls: usize,
    /// Calls in flight from one client.
    pub per_client: usize,
    /// How long a request's body may take to arrive.
    pub body_deadline: Duration,
    /// Streams that need no key (health watches, reflection).
    pub keyless: KeylessLimits,
}

#[derive(Clone)]
pub struct EdgeLayer {
    /// The keys calls are authenticated with, to count each client's calls; without them
    /// (tests of the edge alone) every call counts as one client's.
    keys: Option<Arc<RwLock<KeyRing>>>,
    permits: Arc<Semaphore>,
    /// Calls ever given a permit: whether any came in while the edge looked idle.
    admitted: Arc<AtomicU64>,
    clients: Arc<ClientCalls>,
    keyless: Arc<KeylessStreams>,
    limits: EdgeLimits,
    /// Calls shed, by the limit that shed them.
    shed: Option<prometheus::IntCounterVec>,
}

impl EdgeLayer {
    pub fn new(limits: EdgeLimits) -> Self {
        EdgeLayer {
            keys: None,
            permits: Arc::new(Semaphore::new(limits.calls)),
            admitted: Arc::default(),
            clients: Arc::new(ClientCalls::default()),
            keyless: Arc::new(KeylessStreams::new(limits.keyless)),
            limits,
            shed: None,
        }
    }

    /// Tells clients apart by the client `keys` authenticate a call's key as.
    pub fn authenticating(mut self, keys: Arc<RwLock<KeyRing>>) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Counts the calls it sheds in `shed`, labelled by `limit` (`server`, `client`,
    /// `anonymous`: streams that need no key).
    pub fn counting(mut self, shed: prometheus::IntCounterVec) -> Self {
        self.shed = Some(shed);
        self
    }

    fn count_shed(&self, limit: &str) {
        if let Some(shed) = &self.shed {
            shed.with_label_values(&[limit]).inc();
        }
    }

    /// Resolves once no call has held a permit for `quiet`: every unary call has its response
    /// and its bytes had `quiet` to leave, every stream has started. Long-lived streams
    /// (watches, health watches) do not keep it waiting. The quiet time matters while
    /// connections drain: they take new calls until their last GOAWAY, a round trip after the
    /// first, and a call that came in just as the edge looked idle must be answered, not cut
    /// off with its connection.
    pub async fn drained(&self, quiet: Duration) {
        const POLL: Duration = Duration::from_millis(20);
        loop {
            while self.permits.available_permits() < self.limits.calls {
                tokio::time::sleep(POLL).await;
            }
            let admitted = self.admitted.load(Ordering::Relaxed);
            tokio::time::sleep(quiet).await;
            if self.permits.available_permits() == self.limits.calls
                && self.admitted.load(Ordering::Relaxed) == admitted
            {
                return;
            }
        }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    layer: EdgeLayer,
}

/// Calls in flight per client, by a keyed hash of the client's id.
#[derive(Default)]
struct ClientCalls {
    counts: Mutex<HashMap<u64, usize>>,
    hasher: RandomState,
}

impl ClientCalls {
    /// A place for one more call of `client`, unless it has `limit` in flight.
    fn enter(self: &Arc<Self>, client: &str, limit: usize) -> Option<ClientCall> {
        let client = self.hasher.hash_one(client);
        let mut counts = self.counts.lock().expect("client calls poisoned");
        let count = counts.entry(client).or_default();
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(ClientCall {
            calls: self.clone(),
            client,
        })
    }
}

/// One call counted against its client until dropped.
struct ClientCall {
    calls: Arc<ClientCalls>,
    client: u64,
}

impl Drop for ClientCall {
    fn drop(&mut self) {
        let mut counts = self.calls.counts.lock().expect("client calls poisoned");
        if let Some(count) = counts.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.client);
            }
        }
    }
}

/// The client a request's key authenticates, as the interceptor will: keys spelled apart
/// (spaces, the case of `Bearer`) and a client's several keys are one client. A key that
/// authenticates nobody counts as the client "" (such calls are refused as soon as the
/// interceptor sees them), and so does every call when the edge has no keys.
fn client_of<B>(keys: Option<&RwLock<KeyRing>>, request: &http::Request<B>) -> String {
    let headers = request.headers();
    let key = auth::key_in(|name| headers.get(name).map(|v| v.as_bytes()));
    match (keys, key) {
        (Some(keys), Ok(key)) => keys
            .read()
            .expect("key ring poisoned")
            .authenticate(&key, now_ms())
            .map(|client| client.client_id)
            .unwrap_or_default(),
        _ => String::new(),
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Edge<S>
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Body<Data = bytes::Bytes> + Send + Unpin + 'static,
    ReqBody::Error: Into<tonic::codegen::StdError>,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<Tracked<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        // The method, for the debug line: copied only when that line is written.
        let path =
            // The global level, not `tracing::enabled!`, which with per-layer filters leaves its
            // answer behind for the next span this thread makes (the call's, in traces).
            (tracing::level_filters::LevelFilter::current() >= tracing::Level::DEBUG)
                .then(|| request.uri().path().to_owned());
        let connection = request.extensions().get::<Connection>();
        let peer = connection.and_then(Connection::remote_ip);
        let mut guard = Held {
            _call: connection.map(Connection::call_started),
            _keyless: None,
        };
        if keyless::is_keyless_stream(request.uri().path()) {
            match self.layer.keyless.enter(peer) {
                Ok(stream) => guard._keyless = Some(stream),
                Err(why) => {
                    self.layer.count_shed("anonymous");
                    return refuse(path, guard, why);
                }
            }
        }
        let deadline = self.layer.limits.body_deadline;
        if request.uri().path().starts_with(HEALTH) {
            let call = self.inner.call(with_body_deadline(request, deadline));
            return Box::pin(async move {
                let response = call.await;
                if let Some(path) = path {
                    tracing::debug!(method = %path, "call");
                }
                response.map(|r| r.map(|body| Tracked { body, _held: guard }))
            });
        }
        let limits = &self.layer.limits;
        let client = self.layer.clients.enter(
            &client_of(self.layer.keys.as_deref(), &request),
            limits.per_client,
        );
        let Some(client) = client else {
            self.layer.count_shed("client");
            return refuse(
                path,
                guard,
                format!(
                    "this client has {} calls in flight, its share of the server; retry with \
                     backoff",
                    limits.per_client
                ),
            );
        };
        match self.layer.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                self.layer.admitted.fetch_add(1, Ordering::Relaxed);
                let started = std::time::Instant::now();
                let call = self.inner.call(with_body_deadline(request, deadline));
                Box::pin(async move {
                    let response = call.await;
                    drop(permit);
                    drop(client);
                    response.map(|response| {
                        finish(response, path, started).map(|body| Tracked { body, _held: guard })
                    })
                })
            }
            Err(_) => {
                self.layer.count_shed("server");
                refuse(
                    path,
                    guard,
                    format!(
                        "the server is at its limit of {} calls in flight; retry with backoff",
                        limits.calls
                    ),
                )
            }
        }
    }
}

/// RESOURCE_EXHAUSTED at once: load was shed.
fn refuse<B: Default + Send + 'static, E: Send + 'static>(
    path: Option<String>,
    guard: Held,
    message: String,
) -> BoxFuture<Result<http::Response<Tracked<B>>, E>> {
    if let Some(path) = path {
        tracing::debug!(method = %path, "call shed");
    }
    let refused = status::overloaded(&message).into_http::<B>();
    Box::pin(async move { Ok(refused.map(|body| Tracked { body, _held: guard })) })
}

fn with_body_deadline<B>(
    request: http::Request<B>,
    limit: Duration,
) -> http::Request<tonic::body::Body>
where
    B: Body<Data = bytes::Bytes> + Send + Unpin + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    request.map(|body| {
        tonic::body::Body::new(Deadline {
            body,
            sleep: Box::pin(tokio::time::sleep(limit)),
            limit,
        })
    })
}

/// A request body that must end within `limit` of the request's start.
struct Deadline<B> {
    body: B,
    sleep: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

impl<B> Body for Deadline<B>
where
    B: Body<Data = bytes::Bytes> + Unpin,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Data = bytes::Bytes;
    type Error = tonic::codegen::StdError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(status::body_too_slow(self.limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A response body that keeps its call counted on its connection until it is gone.
pub struct Tracked<B> {
    body: B,
    /// Dropping it ends the call on its connection.
    _held: Held,
}

/// What a call holds until its response body is gone: its place on its connection, and a
/// key-less stream's place among those.
pub struct Held {
    _call: Option<CallGuard>,
    _keyless: Option<KeylessStream>,
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Reads the status a response carries in its headers once: to give an oversized request
/// RESOURCE_EXHAUSTED, and for the call's debug line (method, code, time; never metadata:
/// that is where keys travel).
fn finish<B: Default>(
    response: http::Response<B>,
    path: Option<String>,
    started: std::time::Instant,
) -> http::Response<B> {
    let status = tonic::Status::from_header_map(response.headers());
    if let Some(path) = path {
        let code = status
            .as_ref()
            .map_or("OK (or streaming)".to_string(), |s| {
                format!("{:?}", s.code())
            });
        tracing::debug!(
            method = %path,
            code = %code,
            ms = started.elapsed().as_millis() as u64,
            "call"
        );
    }
    match status {
        Some(status) => decoder_errors_as_the_api_says(response, status),
        None => response,
    }
}

/// Rewrites what tonic's decoder answers for a request it cannot take into this API's codes:
/// OUT_OF_RANGE for a request over the decoding limit is RESOURCE_EXHAUSTED (OUT_OF_RANGE is
/// for a watch resumed before what retention kept), INTERNAL for a body that is not the
/// method's message is INVALID_ARGUMENT (the client's fault, not the server's).
fn decoder_errors_as_the_api_says<B: Default>(
    response: http::Response<B>,
    status: tonic::Status,
) -> http::Response<B> {
    match status.code() {
        tonic::Code::OutOfRange if status.message().contains("message length too large") => {
            status::too_large(status.message()).into_http()
        }
        tonic::Code::Internal
            if status
                .message()
                .starts_with("failed to decode Protobuf message") =>
        {
            status::undecodable(status.message()).into_http()
        }
        _ => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers every call after `takes`, noting when it did.
    #[derive(Clone)]
    struct Slow {
        takes: Duration,
        answered: Arc<Mutex<Option<std::time::Instant>>>,
    }

    impl Service<http::Request<tonic::body::Body>> for Slow {
        type Response = http::Response<tonic::body::Body>;
        type Error = std::convert::Infallible;
        type Future = BoxFuture<Result<Self::Response, Self::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<tonic::body::Body>) -> Self::Future {
            let (takes, answered) = (self.takes, self.answered.clone());
            Box::pin(async move {
                tokio::time::sleep(takes).await;
                *answered.lock().expect("not poisoned") = Some(std::time::Instant::now());
                Ok(http::Response::new(tonic::body::Body::default()))
            })
        }
    }

    /// While connections drain they take calls until their last GOAWAY: a call that comes in
    /// just as the edge looked idle holds the drain until it is answered and all is quiet again.
    #[tokio::test]
    async fn a_call_admitted_while_the_edge_looked_idle_holds_the_drain() {
        let layer = EdgeLayer::new(EdgeLimits {
            calls: 4,
            per_client: 4,
            body_deadline: Duration::from_secs(5),
            keyless: KeylessLimits::for_connections(16),
        });
        let slow = Slow {
            takes: Duration::from_millis(300),
            answered: Arc::default(),
        };
        let mut edge = layer.layer(slow.clone());
        let quiet = Duration::from_millis(250);
        let drained = tokio::spawn({
            let layer = layer.clone();
            async move {
                layer.drained(quiet).await;
                std::time::Instant::now()
            }
        });
        // Idle so far; the call comes in within the quiet time.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let request = http::Request::builder()
            .uri("/servicedesk.v1.DeskService/GetTicket")
            .body(tonic::body::Body::default())
            .expect("a request");
        assert!(edge.call(request).await.is_ok());
        let drained = drained.await.expect("the drain ends");
        let answered = slow
            .answered
            .lock()
            .unwrap()
            .expect("the call was answered");
        assert!(
            drained >= answered + quiet,
            "drained {:?} after the call was answered, before {quiet:?} of quiet",
            drained.saturating_duration_since(answered)
        );
    }
}
