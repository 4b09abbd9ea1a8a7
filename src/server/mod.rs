//! Assembles and runs the server in three steps: [`open_desk`] (open the store, rebuild the
//! desk, start the runtime, seed a new desk), [`services`] (the gRPC services behind their
//! interceptors, health and reflection) and [`serve`] (listen, then shut down in order: health
//! NOT_SERVING, stop accepting, end streams, let in-flight calls finish within the grace
//! period, flush the store).

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
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
use crate::clock::now_ms;
use crate::config::{Config, ServerLimits, TlsSection};
use crate::domain::desk::Desk;
use crate::domain::knowledge::KnowledgeBase;
use crate::domain::mesh::{Agent, AgentKind, Mesh};
use crate::domain::review::Reviewer;
use crate::domain::triage::Triage;
use crate::keys::{self, generate_key, KeyRing};
use crate::metrics::Metrics;
use crate::proto::v1::admin_service_server::AdminServiceServer;
use crate::proto::v1::agent_service_server::AgentServiceServer;
use crate::proto::v1::desk_service_server::DeskServiceServer;
use crate::proto::v1::escalation_service_server::EscalationServiceServer;
use crate::runtime::{DeskHandle, Runtime, RuntimeOptions, Seed, StopError};
use crate::store;

mod exposition;
mod lease;
pub mod probe;
mod replicas;

/// The layers in front of every service, outermost last: CORS for browsers on other origins,
/// the front door (gRPC, gRPC-Web, the console's pages), each call's span and metrics, the
/// edge (load, limits), forwarding.
type Layers = Stack<
    ForwardLayer,
    Stack<EdgeLayer, Stack<ObservedLayer, Stack<FrontLayer, Stack<CrossOriginLayer, Unlayered>>>>,
>;

/// Name of the file holding the first admin key of a store started without `--dev`.
pub const ADMIN_KEY_FILE: &str = "admin.key";

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

/// Runs the server until `shutdown` resolves (or the store fails), then stops gracefully.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let stop = CancellationToken::new();
    let stopping = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopping.cancel();
    });
    let opened = open_store(&config).await?;
    // Bound once: a server that changes role keeps its address and the connections waiting.
    let listener = std::net::TcpListener::bind(config.listen)
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    listener.set_nonblocking(true)?;
    let listener = Listening::new(listener);
    let (leading, led) = tokio::sync::watch::channel(None);
    let observed = Observed {
        metrics: Arc::new(Metrics::new()),
        leading,
    };
    if let Some(addr) = config.metrics_listen {
        exposition::start(addr, observed.metrics.clone(), led, stop.clone()).await?;
    }
    match opened.shared {
        None => {
            lead(&config, opened.store, &listener, (None, &observed), &stop).await?;
            Ok(())
        }
        Some(shared) => {
            replicas::run(&config, (opened.store, shared), &listener, &observed, &stop).await
        }
    }
}

/// The listening socket, bound once for the server's life and shared by each role's serving;
/// closed when shutdown begins.
#[derive(Clone)]
struct Listening(Arc<std::sync::Mutex<Option<std::net::TcpListener>>>);

impl Listening {
    fn new(listener: std::net::TcpListener) -> Self {
        Listening(Arc::new(std::sync::Mutex::new(Some(listener))))
    }

    /// Another handle on the socket, for one role's serving.
    fn clone_socket(&self) -> std::io::Result<std::net::TcpListener> {
        let held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match held.as_ref() {
            Some(listener) => listener.try_clone(),
            None => Err(std::io::Error::other("the server is shutting down")),
        }
    }

    fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
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

/// What the metrics read from the running server.
struct Observed {
    metrics: Arc<Metrics>,
    /// The desk this server leads, while it does: its gauges are read from it at a scrape.
    leading: tokio::sync::watch::Sender<Option<DeskHandle>>,
}

/// How a leader's term ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// Shutdown was asked for (or the desk stopped itself).
    Stopped,
    /// Another server took the desk's lease: this one wrote nothing after.
    Deposed,
}

/// Runs the desk in this server until shutdown or, with a lease, until the lease is lost:
/// restore it from the store, serve, then flush the store.
async fn lead(
    config: &Config,
    store: Arc<dyn store::Store>,
    listener: &Listening,
    (lease, observed): (Option<lease::HeldLease>, &Observed),
    stop: &CancellationToken,
) -> anyhow::Result<Ended> {
    // Renewed from the start: restoring a large desk may take longer than the lease.
    let keeper = lease.map(lease::HeldLease::start_renewing);
    let runtime = start_desk(config, store, &observed.metrics).await?;
    let handle = runtime.handle.clone();
    observed.leading.send_replace(Some(handle.clone()));
    if let Some(keeper) = &keeper {
        let (lost, closing) = (keeper.lost().clone(), handle.closing().clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = lost.cancelled() => closing.cancel(),
                _ = closing.cancelled() => {}
            }
        });
    }
    let (health, health_service) = health(&handle, &observed.metrics).await;
    let edge = edge_layer(&config.server).authenticating(handle.keys());
    let leading = keeper.as_ref().map(|k| k.lease());
    let router = services(
        config,
        &handle,
        health_service,
        (edge.clone(), ForwardLayer::leads(), &observed.metrics),
        leading,
    )?;
    let served = serve(config, &handle, listener, router, (health, edge), stop).await;
    observed.leading.send_replace(None);
    served?;
    // A server that lost the lease acknowledged nothing it could not commit: what it held
    // unwritten is not lost, and the store may well be out of its reach, so its writer may take
    // a while to give up. It does so in the background while this server follows (and answers
    // health) at once; fencing refuses whatever it still tries to write under the lost epoch.
    if keeper.as_ref().is_some_and(|k| k.lost().is_cancelled()) {
        tokio::spawn(async move {
            if let Err(e) = runtime.shutdown().await {
                tracing::warn!(error = %e, "stopped leading without writing what was left");
            }
        });
        return Ok(Ended::Deposed);
    }
    let stopped = runtime.shutdown().await;
    match stopped {
        Err(StopError::Store(store::StoreError::Deposed(why))) => {
            tracing::warn!("{why}");
            return Ok(Ended::Deposed);
        }
        Err(StopError::Store(err @ store::StoreError::WrittenElsewhere(_))) => {
            return Err(anyhow::Error::new(err).context("the desk stopped"))
        }
        result => result.context("the store could not be flushed")?,
    }
    if let Some(keeper) = keeper {
        keeper.release().await;
    }
    tracing::info!("stopped; every acknowledged change is on disk");
    Ok(Ended::Stopped)
}

/// The key ring of the stored keys, with the development keys under `--dev`.
fn key_ring(config: &Config, stored: Vec<store::KeyRecord>) -> KeyRing {
    if config.dev {
        tracing::warn!("development mode: the well-known keys test-key-123 and admin-key-456 are accepted; never use --dev in production");
    }
    KeyRing::new(stored, config.dev)
}

/// How the runtime keeps events and stops, from the configuration.
fn runtime_options(config: &Config, metrics: &Arc<Metrics>) -> RuntimeOptions {
    RuntimeOptions {
        metrics: metrics.clone(),
        live_event_buffer: config.server.live_event_buffer,
        live_event_bytes: config.server.live_event_bytes,
        event_retention: config.event_retention,
        shutdown_grace: config.shutdown_grace,
        ..RuntimeOptions::default()
    }
}

/// The classifier and knowledge base the configuration names.
fn triage(config: &Config) -> anyhow::Result<Arc<Triage>> {
    let kb = match &config.knowledge_base {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read knowledge base {}", path.display()))?;
            KnowledgeBase::from_toml(&text)
                .with_context(|| format!("knowledge base {}", path.display()))?
        }
        None => KnowledgeBase::default_kb(),
    };
    Ok(Arc::new(Triage::new(config.classifier.clone(), kb)))
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

/// Opens the store and checks it.
async fn open_store(config: &Config) -> anyhow::Result<store::Opened> {
    let settings = config.store.clone();
    let depth = if config.full_check {
        store::CheckDepth::Full
    } else {
        store::CheckDepth::Start
    };
    // Off the async workers: a PostgreSQL store's client blocks.
    tokio::task::spawn_blocking(move || {
        let opened = store::open(&settings)
            .with_context(|| format!("cannot open the store in {}", settings.describe()))?;
        let started = std::time::Instant::now();
        opened
            .store
            .check(depth)
            .context("the store failed its check at start; the server did not start")?;
        tracing::info!(
            store = %settings.describe(),
            full = depth == store::CheckDepth::Full,
            ms = started.elapsed().as_millis() as u64,
            "store checked"
        );
        anyhow::Ok(opened)
    })
    .await
    .context("opening the store stopped short")?
}

/// Rebuilds the desk from the store, starts the runtime, and seeds a new desk.
async fn start_desk(
    config: &Config,
    store: Arc<dyn store::Store>,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Runtime> {
    let reading = store.clone();
    let mut loaded = tokio::task::spawn_blocking(move || reading.load())
        .await
        .context("reading the store stopped short")?
        .context("cannot read the store")?;
    let stored_keys = std::mem::take(&mut loaded.keys);
    let last_seq = loaded.last_seq;
    let mesh =
        Mesh::new(config.tiers.clone()).map_err(|e| anyhow::anyhow!("invalid tiers: {e}"))?;
    let settings = loaded
        .settings
        .clone()
        .unwrap_or_else(|| config.settings.clone());
    let mut desk = Desk::new(settings, mesh, config.policy.clone());
    let seeded = loaded.seeded;
    let open = loaded.open_tickets.len();
    let pending = loaded.pending_escalations.len();
    desk.restore(loaded.into_restore(), now_ms()).map_err(|e| {
        anyhow::anyhow!(
            "cannot restore the desk from {}: {e}",
            config.store.describe()
        )
    })?;
    tracing::info!(
        open_tickets = open,
        pending_reviews = pending,
        last_sequence = last_seq,
        "desk restored"
    );
    if let (true, Some(chosen)) = (seeded, &config.first_admin_key) {
        if !chosen.is_among(&stored_keys) {
            tracing::warn!(
                key_id = %chosen.key_id,
                "the admin key file holds no key of this desk (revoked, or the desk began with \
                 another): it was not added; a desk takes its first admin key only when it is new"
            );
        }
    }
    let keys = key_ring(config, stored_keys);
    let options = runtime_options(config, metrics);
    let runtime = Runtime::start(desk, keys, store, triage(config)?, options);
    if !seeded {
        seed(config, &runtime).await?;
    }
    Ok(runtime)
}

/// The desk's four services behind their API-key interceptors, health and reflection, behind
/// the edge layer (load shedding, oversized requests, per-call debug lines).
fn services(
    config: &Config,
    handle: &DeskHandle,
    health: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
    (edge, forward, metrics): (EdgeLayer, ForwardLayer, &Arc<Metrics>),
    leading: Option<store::Lease>,
) -> anyhow::Result<Router<Layers>> {
    let api = Api::new(
        handle.clone(),
        config.limits.clone(),
        config.desk_name.clone(),
        &config.server,
    )
    .leading(leading)
    .counting_streams(
        metrics.open_streams.clone(),
        config.metrics_listen.map(|_| metrics.watch_lag.clone()),
    );
    let limits = &config.server;
    let max_message = limits.max_message_bytes;
    let check = |permission, service| ApiKeyCheck::new(handle.keys(), permission, service);
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
        .layer(forward)
        .add_service(health)
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?)
        .add_service(desk_service)
        .add_service(escalation_service)
        .add_service(admin_service)
        .add_service(agent_service))
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

/// Listens and serves until `shutdown` resolves or the desk stops itself; then drains: health
/// NOT_SERVING, no new connections, streams and waiting calls end, unary calls in flight get
/// the grace period.
async fn serve(
    config: &Config,
    handle: &DeskHandle,
    listener: &Listening,
    router: Router<Layers>,
    (health, edge): (HealthReporter, EdgeLayer),
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let listening = listener.clone();
    let listener = TcpListener::from_std(listener.clone_socket()?)?;
    let addr = listener.local_addr()?;
    let incoming = connections::incoming(listener, connection_limits(&config.server));
    let closing = handle.closing().clone();
    let draining = closing.clone();
    let shutdown = stop.clone();
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

/// Opens the store in `data_dir` (taking its lock, so never under a running server) and checks
/// it; returns how long the check took.
pub fn check_store(data_dir: &Path, thorough: bool) -> anyhow::Result<Duration> {
    let settings = store::StoreSettings {
        data_dir: data_dir.to_path_buf(),
        durability: store::Durability::Full,
        url: None,
    };
    let store = store::open_existing(&settings)
        .with_context(|| format!("cannot open the store in {}", data_dir.display()))?;
    let started = std::time::Instant::now();
    store.check(if thorough {
        store::CheckDepth::Full
    } else {
        store::CheckDepth::Structure
    })?;
    Ok(started.elapsed())
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

/// Creates the default (or configured) agents and reviewers of a new desk, and its first
/// admin key (the chosen one, or a generated one written to `admin.key` when not in
/// development mode), in the desk's first commit.
async fn seed(config: &Config, runtime: &Runtime) -> anyhow::Result<()> {
    // Where a generated first admin key was written, for the log once the desk has it.
    let mut written = None;
    let first_key = match &config.first_admin_key {
        Some(chosen) => Some(chosen.admin_record(now_ms())),
        None if config.dev => None,
        None => {
            let (client_id, client_name) = keys::FIRST_ADMIN;
            let (secret, record) = generate_key(
                client_id,
                client_name,
                vec![keys::ALL.to_string()],
                now_ms(),
            );
            written = Some(write_admin_key(&config.store.data_dir, &secret)?);
            Some(record)
        }
    };
    let agents: Vec<Agent> = config
        .seed_agents
        .iter()
        .map(|a| {
            let specialties = a.specialties.clone();
            Agent::new(
                &a.name,
                &a.tier,
                specialties,
                a.capacity,
                AgentKind::Builtin,
            )
        })
        .collect();
    let reviewers: Vec<Reviewer> = config
        .seed_reviewers
        .iter()
        .map(|r| Reviewer {
            id: r.id.clone(),
            name: r.name.clone(),
            specialties: r
                .specialties
                .iter()
                .map(|s| s.trim().to_lowercase())
                .collect(),
            max_concurrent: r.max_concurrent.unwrap_or(3),
            load: 0,
            decided: 0,
            order: 0,
        })
        .collect();
    let (agent_count, reviewer_count) = (agents.len(), reviewers.len());
    let seed = Seed {
        agents,
        reviewers,
        first_key,
    };
    runtime
        .handle
        .seed(seed)
        .await
        .map_err(|e| anyhow::anyhow!("cannot seed the desk: {e}"))?;
    tracing::info!(
        agents = agent_count,
        reviewers = reviewer_count,
        "new desk seeded"
    );
    if let Some(chosen) = &config.first_admin_key {
        tracing::info!(key_id = %chosen.key_id, "the first admin key is the one the admin key file holds");
    }
    if let Some(path) = written {
        tracing::info!(path = %path.display(), "created the first admin key; read it from this file (owner-only), then create your own keys");
    }
    Ok(())
}

/// Writes the secret to `dir/admin.key`, readable only by its owner; returns that path.
fn write_admin_key(dir: &Path, secret: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(ADMIN_KEY_FILE);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    writeln!(file, "{secret}")?;
    file.sync_all()?;
    Ok(path)
}
