//! Serving one role of this server, whichever it is: the socket bound once for the server's
//! life ([`Listening`]), health, the desk's services behind their layers, and
//! [`Serving::serve`]: listen, then shut down in order (health NOT_SERVING, stop accepting, end
//! streams, let in-flight calls finish within the grace period).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::Router;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;
use tower::layer::util::{Identity as Unlayered, Stack};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::api::connections::{self, ConnectionLimits};
use crate::api::{
    Api, ApiKeyCheck, CrossOriginLayer, EdgeLayer, EdgeLimits, ForwardLayer, FrontLayer,
    KeylessLimits, ObservedLayer, CLIENT_ID_HEADER,
};
use crate::config::{Config, ServerLimits, TlsSection};
use crate::keys;
use crate::metrics::Metrics;
use crate::proto::v1::admin_service_server::AdminServiceServer;
use crate::proto::v1::agent_service_server::AgentServiceServer;
use crate::proto::v1::desk_service_server::DeskServiceServer;
use crate::proto::v1::escalation_service_server::EscalationServiceServer;
use crate::runtime::DeskHandle;
use crate::store;

/// The layers in front of every service, outermost last: CORS for browsers on other origins,
/// the front door (gRPC, gRPC-Web, the console's pages), each call's span and metrics, the
/// edge (load, limits), forwarding.
type Layers = Stack<
    ForwardLayer,
    Stack<EdgeLayer, Stack<ObservedLayer, Stack<FrontLayer, Stack<CrossOriginLayer, Unlayered>>>>,
>;

/// How long no call may be in flight before the connections are dropped at shutdown: the
/// last responses leave, and no call accepted before the last GOAWAY is cut off.
const SHUTDOWN_FLUSH: Duration = Duration::from_millis(250);

/// The health entry of the store itself: NOT_SERVING while it refuses writes or cannot keep
/// itself in shape, even when the services still answer.
pub const STORE_HEALTH: &str = "servicedesk.store";

const SERVICES: [&str; 4] = [
    "servicedesk.v1.DeskService",
    "servicedesk.v1.EscalationService",
    "servicedesk.v1.AdminService",
    "servicedesk.v1.AgentService",
];

/// What every role of this server serves with, for the server's whole life.
pub(super) struct Serving {
    pub(super) config: Config,
    pub(super) listener: Listening,
    pub(super) metrics: Arc<Metrics>,
    /// The desk this server leads, while it does: its gauges are read from it at a scrape.
    pub(super) leading: watch::Sender<Option<DeskHandle>>,
    /// Cancelled when shutdown is asked for.
    pub(super) stop: CancellationToken,
}

/// One role of this server as it is served: the desk it answers from, and where the rest goes.
pub(super) struct Role {
    /// The desk led here, or the one followed.
    pub(super) desk: DeskHandle,
    /// Sends on the calls this role does not answer itself: none while it leads.
    pub(super) forward: ForwardLayer,
    /// The lease this server leads under, as status reports it; `None` when it follows or has
    /// the store to itself.
    pub(super) lease: Option<store::Lease>,
}

impl Serving {
    /// Serves `role` until shutdown is asked for or the role ends (its desk closing), then
    /// drains; the socket stays open for the next role unless the server shuts down.
    pub(super) async fn serve(&self, role: Role) -> anyhow::Result<()> {
        let desk = role.desk.clone();
        let (health, health_service) = health(&desk, &self.metrics).await;
        let edge = edge_layer(&self.config.server).authenticating(desk.keys());
        let router = self.services(role, health_service, edge.clone())?;
        self.listen(&desk, router, health, edge).await
    }

    /// The desk's four services behind their API-key interceptors, health and reflection,
    /// behind the edge layer (load shedding, oversized requests, per-call debug lines).
    fn services(
        &self,
        role: Role,
        health: tonic_health::pb::health_server::HealthServer<
            impl tonic_health::pb::health_server::Health,
        >,
        edge: EdgeLayer,
    ) -> anyhow::Result<Router<Layers>> {
        let (config, metrics) = (&self.config, &self.metrics);
        let api = Api::new(
            role.desk.clone(),
            config.limits.clone(),
            config.desk_name.clone(),
            &config.server,
        )
        .leading(role.lease)
        .counting_streams(
            metrics.open_streams.clone(),
            config.metrics_listen.map(|_| metrics.watch_lag.clone()),
        );
        let limits = &config.server;
        let max_message = limits.max_message_bytes;
        let check = |permission, service| ApiKeyCheck::new(role.desk.keys(), permission, service);
        let desk_service = InterceptedService::new(
            DeskServiceServer::new(api.clone()).max_decoding_message_size(max_message),
            check(keys::CUSTOMER_SERVICE, "DeskService"),
        );
        let escalation_service = InterceptedService::new(
            EscalationServiceServer::new(api.clone()).max_decoding_message_size(max_message),
            check(keys::ESCALATION, "EscalationService"),
        );
        let admin_service = InterceptedService::new(
            AdminServiceServer::new(api.clone()).max_decoding_message_size(max_message),
            check(keys::ADMIN, "AdminService"),
        );
        let agent_service = InterceptedService::new(
            AgentServiceServer::new(api).max_decoding_message_size(max_message),
            check(keys::AGENT, "AgentService"),
        );
        let descriptors = [
            crate::proto::FILE_DESCRIPTOR_SET,
            crate::proto::ERROR_DETAILS_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ];
        let observed = match config.metrics_listen {
            Some(_) => ObservedLayer::new(metrics.clone(), &descriptors),
            None => ObservedLayer::new(metrics.clone(), &descriptors).unmetered(),
        };
        let reflection = || {
            descriptors.iter().fold(
                tonic_reflection::server::Builder::configure(),
                |builder, set| builder.register_encoded_file_descriptor_set(set),
            )
        };
        let mut builder = Server::builder();
        if let Some(tls) = &config.tls {
            builder = builder
                .tls_config(tls_config(tls)?)
                .context("invalid TLS configuration")?;
        }
        Ok(builder
            // Browsers speak HTTP/1.1 to a plaintext port: the console's pages and gRPC-Web.
            .accept_http1(true)
            .max_concurrent_streams(limits.max_concurrent_streams)
            .http2_keepalive_interval(Some(Duration::from_secs(limits.keepalive_interval_secs)))
            .http2_keepalive_timeout(Some(Duration::from_secs(limits.keepalive_timeout_secs)))
            .http2_max_pending_accept_reset_streams(Some(100))
            .layer(CrossOriginLayer(cors(&limits.cors_allowed_origins)))
            .layer(FrontLayer)
            .layer(observed)
            .layer(edge.counting(metrics.shed.clone()))
            .layer(role.forward)
            .add_service(health)
            .add_service(reflection().build_v1()?)
            .add_service(reflection().build_v1alpha()?)
            .add_service(desk_service)
            .add_service(escalation_service)
            .add_service(admin_service)
            .add_service(agent_service))
    }

    /// Listens and serves `router` until shutdown is asked for or `desk` stops (itself, or as
    /// its role ends); then drains: health NOT_SERVING, no new connections, streams and
    /// waiting calls end, unary calls in flight get the grace period.
    async fn listen(
        &self,
        desk: &DeskHandle,
        router: Router<Layers>,
        health: HealthReporter,
        edge: EdgeLayer,
    ) -> anyhow::Result<()> {
        let config = &self.config;
        let listening = self.listener.clone();
        let listener = TcpListener::from_std(self.listener.clone_socket()?)?;
        let addr = listener.local_addr()?;
        let incoming = connections::incoming(listener, connection_limits(&config.server));
        let closing = desk.closing().clone();
        let draining = closing.clone();
        let shutdown = self.stop.clone();
        let signal = async move {
            let stopping = tokio::select! {
                _ = shutdown.cancelled() => {
                    tracing::info!("shutdown requested: draining");
                    // New connections are refused from now on, so that clients go elsewhere at
                    // once (a change of role keeps the socket: they wait for the next role).
                    listening.close();
                    true
                }
                _ = draining.cancelled() => {
                    tracing::info!("this server's part in the desk ended: draining");
                    false
                }
            };
            // The whole server's entry says the process is going away; a change of role is not
            // that (the next role's health answers on the same socket).
            let whole = stopping.then_some("");
            for service in SERVICES.into_iter().chain(whole) {
                health
                    .set_service_status(service, ServingStatus::NotServing)
                    .await;
            }
            // Streams and calls waiting on a ticket end now; unary calls in flight finish.
            draining.cancel();
        };
        let server = router.serve_with_incoming_shutdown(incoming, signal);
        let scheme = if config.tls.is_some() {
            "tls"
        } else {
            "plaintext h2c"
        };
        tracing::info!("listening on {addr} ({scheme})");
        let grace = config.shutdown_grace;
        let drained = async {
            closing.cancelled().await;
            // Quiet for a while: the last responses' bytes leave, and the connections' last
            // GOAWAY takes effect, before the connections are dropped.
            edge.drained(SHUTDOWN_FLUSH).await;
        };
        tokio::select! {
            result = server => result.context("the server failed")?,
            // Every call has its answer; what is left are streams nobody ends for us (a health
            // watch): they need not hold the shutdown for the whole grace period.
            _ = drained => tracing::debug!("every call finished; closing the connections left"),
            _ = async { closing.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(grace_secs = grace.as_secs(), "calls still in flight after the grace period; closing them");
            }
        }
        Ok(())
    }
}

/// The listening socket, bound once for the server's life and shared by each role's serving;
/// closed when shutdown begins.
#[derive(Clone)]
pub(super) struct Listening(Arc<std::sync::Mutex<Option<std::net::TcpListener>>>);

impl Listening {
    pub(super) fn bind(address: SocketAddr) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind(address)
            .with_context(|| format!("cannot listen on {address}"))?;
        listener.set_nonblocking(true)?;
        Ok(Listening(Arc::new(std::sync::Mutex::new(Some(listener)))))
    }

    /// Another handle on the socket, for one role's serving.
    fn clone_socket(&self) -> std::io::Result<std::net::TcpListener> {
        let held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match held.as_ref() {
            Some(listener) => listener.try_clone(),
            None => Err(std::io::Error::other("the server is shutting down")),
        }
    }

    pub(super) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        let held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match held.as_ref() {
            Some(listener) => listener.local_addr(),
            None => Err(std::io::Error::other("the server is shutting down")),
        }
    }

    /// Lets this handle go; the socket closes once the serving one goes too.
    fn close(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// Health for a server about to serve: every entry SERVING, then the services and the store's
/// entry kept in step with the store as `handle` reports it (and `servicedesk_store_serving`
/// with them).
///
/// The whole server's entry (service "") says only that the process serves: it turns
/// NOT_SERVING when the server drains, never for the store. It is what a liveness probe asks,
/// so that a store that cannot be written (a full disk, a database out of reach) makes the
/// server unready, which it recovers from by itself, and never has it restarted for it.
async fn health(
    handle: &DeskHandle,
    metrics: &Arc<Metrics>,
) -> (
    HealthReporter,
    tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
) {
    let (health, service) = tonic_health::server::health_reporter();
    for name in SERVICES.into_iter().chain([STORE_HEALTH, ""]) {
        health
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }
    tokio::spawn(report_store_health(
        handle.clone(),
        health.clone(),
        metrics.clone(),
    ));
    (health, service)
}

/// The edge layer of `[server]`'s limits.
fn edge_layer(limits: &ServerLimits) -> EdgeLayer {
    EdgeLayer::new(EdgeLimits {
        calls: limits.max_concurrent_requests,
        per_client: limits.per_client(),
        body_deadline: Duration::from_secs(limits.request_body_secs),
        keyless: KeylessLimits::for_connections(limits.max_connections.min(connections_allowed())),
    })
}

/// Lets pages from `origins` (none by default: the console is served from the port itself)
/// call the services with gRPC-Web, sending the key in a header (never a cookie) and reading
/// the gRPC status and the caller's id from the response.
fn cors(origins: &[String]) -> CorsLayer {
    use tonic::codegen::http::{header, HeaderName, HeaderValue, Method};
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| o.parse().ok()).collect();
    let names = |names: &[&'static str]| -> Vec<HeaderName> {
        names.iter().map(|n| HeaderName::from_static(n)).collect()
    };
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::POST])
        .allow_headers(
            [header::CONTENT_TYPE, header::AUTHORIZATION]
                .into_iter()
                .chain(names(&[
                    "x-api-key",
                    "x-grpc-web",
                    "x-user-agent",
                    "grpc-timeout",
                    "traceparent",
                    "tracestate",
                ]))
                .collect::<Vec<_>>(),
        )
        .expose_headers(names(&[
            "grpc-status",
            "grpc-message",
            "grpc-status-details-bin",
            CLIENT_ID_HEADER,
        ]))
        .max_age(Duration::from_secs(600))
}

/// Keeps health in step with the store: while it refuses writes the services are NOT_SERVING
/// (they refuse changes); while it only cannot keep itself in shape, just the store's entry is.
/// The whole server's entry is left alone (see [`health`]). Once draining starts, nothing turns
/// back to SERVING.
async fn report_store_health(
    desk: crate::runtime::DeskHandle,
    health: HealthReporter,
    metrics: Arc<Metrics>,
) {
    use crate::runtime::StoreHealth;
    let mut changes = desk.store_health();
    loop {
        let now = changes.borrow_and_update().clone();
        let (services, store) = match now {
            StoreHealth::Healthy => (ServingStatus::Serving, ServingStatus::Serving),
            StoreHealth::Degraded(_) => (ServingStatus::Serving, ServingStatus::NotServing),
            StoreHealth::Failing(_) => (ServingStatus::NotServing, ServingStatus::NotServing),
        };
        metrics
            .store_serving
            .set(i64::from(store == ServingStatus::Serving));
        // Draining may have begun meanwhile: it has the last word.
        if desk.closing().is_cancelled() {
            return;
        }
        for service in SERVICES {
            health.set_service_status(service, services).await;
        }
        health.set_service_status(STORE_HEALTH, store).await;
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// File descriptors kept for the store, the log and the runtime, out of the open-files limit.
const RESERVED_FILES: u64 = 128;

/// The connection limits of `[server]`, with `max_connections` kept below what the open-files
/// limit allows, so the store and health probes always find a descriptor.
fn connection_limits(server: &ServerLimits) -> ConnectionLimits {
    let allowed = connections_allowed();
    if allowed < server.max_connections {
        tracing::warn!(
            configured = server.max_connections,
            allowed,
            "the open-files limit allows fewer connections than configured; raise it (ulimit -n) to serve more"
        );
    }
    ConnectionLimits {
        max_connections: server.max_connections.min(allowed),
        first_request: Duration::from_secs(server.first_request_secs),
        idle: Duration::from_secs(server.idle_connection_secs),
    }
}

/// The connections the open-files limit leaves room for.
fn connections_allowed() -> usize {
    #[cfg(unix)]
    let allowed = crate::process::open_files_limit()
        .map(|files| files.saturating_sub(RESERVED_FILES).max(1) as usize)
        .unwrap_or(usize::MAX);
    #[cfg(not(unix))]
    let allowed = usize::MAX;
    allowed
}

/// Reads the PEM files of the `[tls]` section.
fn tls_config(tls: &TlsSection) -> anyhow::Result<ServerTlsConfig> {
    let read = |path: &Path| {
        std::fs::read(path).with_context(|| format!("cannot read TLS file {}", path.display()))
    };
    let mut config =
        ServerTlsConfig::new().identity(Identity::from_pem(read(&tls.cert)?, read(&tls.key)?));
    if let Some(ca) = &tls.client_ca {
        config = config.client_ca_root(Certificate::from_pem(read(ca)?));
    }
    Ok(config)
}
