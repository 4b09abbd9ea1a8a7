//! Forwarding to the leader: on a server that follows the desk, every call that changes it
//! (and every read only the desk in memory answers: agents, reviewers, keys, status) goes to
//! the server holding the desk's lease, whole: its metadata (the caller's key), its deadline
//! (`grpc-timeout`) and its messages, streams included, with the leader's answer coming back
//! as it is. Reads the store answers (tickets, escalations, histories) and every watch are
//! served where they arrive.
//!
//! A forwarded call carries [`FORWARDED`]; a server that receives one without leading (the
//! lease changed hands on the way) answers UNAVAILABLE rather than forward it again, and so
//! does a follower that knows no leader (during a failover). A call waiting on a leader that
//! stopped answering (paused, cut off) ends UNAVAILABLE as soon as the lease names another, not
//! at its deadline. Clients retry, with their idempotency key where the call has one.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::task::{Context, Poll};

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tonic::codegen::http;
use tonic::transport::{Channel, Endpoint};
use tower::{Layer, Service};

use super::status;
use crate::keys::KeyRing;

/// The header a forwarded call carries: the forwarding server's name.
pub const FORWARDED: &str = "servicedesk-forwarded-by";

/// The calls a follower answers itself: reads of the store, and watches of the log.
const SERVED_HERE: &[&str] = &[
    "/servicedesk.v1.DeskService/GetTicket",
    "/servicedesk.v1.DeskService/ListTickets",
    "/servicedesk.v1.DeskService/WatchTicket",
    "/servicedesk.v1.DeskService/GetCustomerHistory",
    "/servicedesk.v1.EscalationService/GetEscalation",
    "/servicedesk.v1.EscalationService/ListEscalations",
    "/servicedesk.v1.EscalationService/WatchEscalations",
    "/servicedesk.v1.AdminService/WatchEvents",
];

/// Services every server answers itself, whatever its role.
const LOCAL_SERVICES: &[&str] = &["/grpc.health.v1.", "/grpc.reflection."];

/// Connections to the leader, as many as the calls forwarded at once need: each carries at
/// most `per_connection` calls (the streams a server runs on one connection), and a call that
/// finds every connection full opens another, so long streams (attached agents) never hold up
/// the calls behind them.
#[derive(Debug)]
pub struct Connections {
    endpoint: Endpoint,
    per_connection: usize,
    open: Mutex<Vec<Arc<Connection>>>,
}

#[derive(Debug)]
struct Connection {
    channel: Channel,
    /// Calls on it whose answer has not ended.
    calls: AtomicUsize,
}

/// One call on a connection, until its answer ends.
struct OnConnection(Arc<Connection>);

impl Drop for OnConnection {
    fn drop(&mut self) {
        self.0.calls.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Connections {
    pub fn new(endpoint: Endpoint, per_connection: usize) -> Self {
        Connections {
            endpoint,
            per_connection: per_connection.max(1),
            open: Mutex::new(Vec::new()),
        }
    }

    /// A connection with room for one more call.
    fn take(&self) -> (Channel, OnConnection) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let roomy = open
            .iter()
            .find(|c| c.calls.load(Ordering::Relaxed) < self.per_connection)
            .cloned();
        let connection = roomy.unwrap_or_else(|| {
            let connection = Arc::new(Connection {
                channel: self.endpoint.connect_lazy(),
                calls: AtomicUsize::new(0),
            });
            open.push(connection.clone());
            connection
        });
        connection.calls.fetch_add(1, Ordering::Relaxed);
        (connection.channel.clone(), OnConnection(connection))
    }
}

/// Where a server sends the calls it does not answer itself.
#[derive(Clone, Debug)]
pub enum Route {
    /// This server leads: it answers everything.
    Leads,
    /// Another server leads, at this address.
    Follows {
        leader: String,
        connections: Arc<Connections>,
    },
    /// Nobody leads right now (the lease expired and is not taken yet).
    NoLeader,
}

/// The tower layer that forwards: a pass-through while the route says this server leads.
#[derive(Clone)]
pub struct ForwardLayer {
    route: watch::Receiver<Route>,
    /// This server's name, sent with what it forwards.
    name: http::HeaderValue,
    /// Cancelled when this server stops following: calls still forwarded end UNAVAILABLE at
    /// once (their leader is gone) instead of holding the change of role up.
    ending: CancellationToken,
    /// Told when the leader could not be reached: the route may be stale, read the lease now.
    stale: Arc<Notify>,
    /// The keys this server knows: a call with a key it does not know yet (one just created on
    /// the leader) is forwarded whatever it asks, and the leader authenticates it.
    keys: Option<Arc<RwLock<KeyRing>>>,
}

/// What a following server forwards with.
pub struct Following<'a> {
    /// Where the lease says the leader is, as it changes.
    pub route: watch::Receiver<Route>,
    /// This server's name, sent with what it forwards.
    pub name: &'a str,
    /// Cancelled when this server stops following.
    pub ending: CancellationToken,
    /// Told when the leader could not be reached.
    pub stale: Arc<Notify>,
    /// The keys this server knows, if any.
    pub keys: Option<Arc<RwLock<KeyRing>>>,
}

impl ForwardLayer {
    pub fn new(following: Following<'_>) -> Self {
        ForwardLayer {
            route: following.route,
            name: http::HeaderValue::from_str(following.name)
                .unwrap_or_else(|_| http::HeaderValue::from_static("servicedesk")),
            ending: following.ending,
            stale: following.stale,
            keys: following.keys,
        }
    }

    /// A layer for a server that leads: it forwards nothing.
    pub fn leads() -> Self {
        Self::new(Following {
            route: watch::channel(Route::Leads).1,
            name: "servicedesk",
            ending: CancellationToken::new(),
            stale: Arc::default(),
            keys: None,
        })
    }
}

impl<S> Layer<S> for ForwardLayer {
    type Service = Forward<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Forward {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Forward<S> {
    inner: S,
    layer: ForwardLayer,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Whether a follower answers `path` itself.
fn served_here(path: &str) -> bool {
    SERVED_HERE.contains(&path) || LOCAL_SERVICES.iter().any(|s| path.starts_with(s))
}

impl<S, ResBody> Service<http::Request<tonic::body::Body>> for Forward<S>
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<tonic::codegen::StdError>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        let route = self.layer.route.borrow().clone();
        let here = matches!(route, Route::Leads)
            || (served_here(request.uri().path()) && !self.unknown_key(&request));
        if here {
            let call = self.inner.call(request);
            return Box::pin(async move { Ok(call.await?.map(tonic::body::Body::new)) });
        }
        let (channel, leader) = match route {
            _ if request.headers().contains_key(FORWARDED) => {
                return refuse(
                    "this server does not lead the desk (the lease changed hands); retry",
                )
            }
            Route::Follows {
                connections,
                leader,
            } => (connections.take(), leader),
            Route::Leads | Route::NoLeader => {
                return refuse(
                    "no server leads the desk right now (a failover is under way); retry in a \
                     moment",
                )
            }
        };
        request
            .headers_mut()
            .insert(FORWARDED, self.layer.name.clone());
        super::observed::continue_trace_in(request.headers_mut());
        let (ending, stale) = (self.layer.ending.clone(), self.layer.stale.clone());
        let mut routes = self.layer.route.clone();
        let (mut channel, on) = channel;
        Box::pin(async move {
            let forwarded = async {
                std::future::poll_fn(|cx| channel.poll_ready(cx)).await?;
                channel.call(request).await
            };
            // The leader it went to may stop answering (paused, cut off): once the lease names
            // another, or this server stops following, the call ends instead of waiting out
            // its deadline for a server that no longer leads.
            let moved = async {
                let _ = routes
                    .wait_for(
                        |now| !matches!(now, Route::Follows { leader: l, .. } if *l == leader),
                    )
                    .await;
            };
            let answer = tokio::select! {
                answer = forwarded => answer,
                _ = ending.cancelled() => return Ok(leader_changed()),
                _ = moved => return Ok(leader_changed()),
            };
            Ok(match answer {
                // The connection counts the call until its answer (a stream, maybe) ends.
                Ok(response) => {
                    response.map(|body| tonic::body::Body::new(Counted { body, _on: on }))
                }
                Err(e) => {
                    tracing::debug!(error = %e, "forwarding to the leader failed");
                    stale.notify_one();
                    status::unavailable(&format!(
                        "the server leading the desk cannot be reached ({e}); retry"
                    ))
                    .into_http()
                }
            })
        })
    }
}

/// A forwarded answer's body, counted on its connection while it lasts.
struct Counted {
    body: tonic::body::Body,
    _on: OnConnection,
}

impl http_body::Body for Counted {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl<S> Forward<S> {
    /// Whether the request presents a generated key this server does not know yet.
    fn unknown_key<B>(&self, request: &http::Request<B>) -> bool {
        let Some(keys) = &self.layer.keys else {
            return false;
        };
        let headers = request.headers();
        let presented = super::auth::key_in(|name| headers.get(name).map(|v| v.as_bytes())).ok();
        presented.is_some_and(|key| {
            keys.read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .lacks(&key)
        })
    }
}

/// UNAVAILABLE: the leader changed under a forwarded call.
fn leader_changed() -> http::Response<tonic::body::Body> {
    status::unavailable(
        "the server leading the desk changed while this call was forwarded to it; retry",
    )
    .into_http()
}

/// UNAVAILABLE at once, saying why.
fn refuse<E: Send + 'static>(
    message: &str,
) -> BoxFuture<Result<http::Response<tonic::body::Body>, E>> {
    let refused = status::unavailable(message).into_http();
    Box::pin(async move { Ok(refused) })
}
