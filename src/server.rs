//! Assembles and runs the server: opens the store, rebuilds the desk, seeds a new desk, starts
//! the runtime, serves gRPC, and shuts down in order (health NOT_SERVING, stop accepting, end
//! streams, let in-flight calls finish within the grace period, flush the store).

use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;

use crate::api::{Api, ApiKeyCheck, EdgeLayer};
use crate::auth::{self, generate_key, KeyRing};
use crate::clock::now_ms;
use crate::config::{Config, TlsSection};
use crate::domain::desk::Desk;
use crate::domain::knowledge::KnowledgeBase;
use crate::domain::mesh::{Agent, AgentKind, Availability, Mesh};
use crate::domain::review::Reviewer;
use crate::proto::v1::admin_service_server::AdminServiceServer;
use crate::proto::v1::agent_service_server::AgentServiceServer;
use crate::proto::v1::desk_service_server::DeskServiceServer;
use crate::proto::v1::escalation_service_server::EscalationServiceServer;
use crate::runtime::{Runtime, RuntimeOptions};
use crate::store::{KeyChange, SqliteStore, Store};

/// Name of the file holding the first admin key of a store started without `--dev`.
pub const ADMIN_KEY_FILE: &str = "admin.key";

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
    let store = Arc::new(
        SqliteStore::open(&config.data_dir, config.synchronous)
            .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))?,
    );
    let mut loaded = store.load().context("cannot read the store")?;
    let stored_keys = std::mem::take(&mut loaded.keys);
    let last_seq = loaded.last_seq;
    let kb = match &config.knowledge_base {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read knowledge base {}", path.display()))?;
            KnowledgeBase::from_toml(&text)
                .with_context(|| format!("knowledge base {}", path.display()))?
        }
        None => KnowledgeBase::default_kb(),
    };
    let mesh =
        Mesh::new(config.tiers.clone()).map_err(|e| anyhow::anyhow!("invalid tiers: {e}"))?;
    let settings = loaded
        .settings
        .clone()
        .unwrap_or_else(|| config.settings.clone());
    let mut desk = Desk::new(
        settings,
        mesh,
        config.classifier.clone(),
        config.policy.clone(),
    );
    let seeded = loaded.seeded;
    let open = loaded.open_tickets.len();
    let pending = loaded.pending_escalations.len();
    desk.restore(loaded.into_restore(), now_ms()).map_err(|e| {
        anyhow::anyhow!(
            "cannot restore the desk from {}: {e}",
            config.data_dir.display()
        )
    })?;
    tracing::info!(
        open_tickets = open,
        pending_reviews = pending,
        last_sequence = last_seq,
        "desk restored"
    );
    let keys = KeyRing::new(stored_keys, config.dev);
    if config.dev {
        tracing::warn!("development mode: the well-known keys test-key-123 and admin-key-456 are accepted; never use --dev in production");
    }
    let kb = Arc::new(kb);
    let options = RuntimeOptions {
        live_event_buffer: config.server.live_event_buffer,
        event_retention: config.event_retention,
    };
    let runtime = Runtime::start(desk, keys, store.clone(), kb.clone(), options);
    let handle = runtime.handle.clone();
    if !seeded {
        seed(&config, &runtime).await?;
    }

    let api = Api {
        desk: handle.clone(),
        limits: Arc::new(config.limits.clone()),
        desk_name: config.desk_name.clone(),
        shutdown_grace: config.shutdown_grace,
        stalled_stream: Duration::from_secs(config.server.stalled_stream_secs),
        classifier: Arc::new(config.classifier.clone()),
        kb,
        open_streams: Arc::new(tokio::sync::Semaphore::new(config.server.max_open_streams)),
    };
    let limits = &config.server;
    let max_message = limits.max_message_bytes;
    let check = |permission, service| ApiKeyCheck::new(handle.keys.clone(), permission, service);
    let desk_service = InterceptedService::new(
        DeskServiceServer::new(api.clone()).max_decoding_message_size(max_message),
        check(auth::CUSTOMER_SERVICE, "DeskService"),
    );
    let escalation_service = InterceptedService::new(
        EscalationServiceServer::new(api.clone()).max_decoding_message_size(max_message),
        check(auth::ESCALATION, "EscalationService"),
    );
    let admin_service = InterceptedService::new(
        AdminServiceServer::new(api.clone()).max_decoding_message_size(max_message),
        check(auth::ADMIN, "AdminService"),
    );
    let agent_service = InterceptedService::new(
        AgentServiceServer::new(api.clone()).max_decoding_message_size(max_message),
        check(auth::AGENT, "AgentService"),
    );
    let (health, health_service) = tonic_health::server::health_reporter();
    for service in SERVICES {
        health
            .set_service_status(service, ServingStatus::Serving)
            .await;
    }
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(crate::proto::ERROR_DETAILS_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(crate::proto::ERROR_DETAILS_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));

    let closing = handle.closing.clone();
    let draining = health.clone();
    let signal = async move {
        tokio::select! {
            _ = shutdown => tracing::info!("shutdown requested: draining"),
            _ = closing.cancelled() => tracing::error!("the desk stopped itself: draining"),
        }
        for service in SERVICES {
            draining
                .set_service_status(service, ServingStatus::NotServing)
                .await;
        }
        draining
            .set_service_status("", ServingStatus::NotServing)
            .await;
        // Streams and calls waiting on a ticket end now; unary calls in flight finish.
        closing.cancel();
    };
    let mut builder = Server::builder();
    let scheme = match &config.tls {
        Some(tls) => {
            builder = builder
                .tls_config(tls_config(tls)?)
                .context("invalid TLS configuration")?;
            "tls"
        }
        None => "plaintext h2c",
    };
    let server = builder
        .max_concurrent_streams(limits.max_concurrent_streams)
        .http2_keepalive_interval(Some(Duration::from_secs(limits.keepalive_interval_secs)))
        .http2_keepalive_timeout(Some(Duration::from_secs(limits.keepalive_timeout_secs)))
        .http2_max_pending_accept_reset_streams(Some(100))
        .layer(EdgeLayer::new(limits.max_concurrent_requests))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(desk_service)
        .add_service(escalation_service)
        .add_service(admin_service)
        .add_service(agent_service)
        .serve_with_incoming_shutdown(incoming, signal);
    tracing::info!("listening on {addr} ({scheme})");

    let grace = config.shutdown_grace;
    let closing = handle.closing.clone();
    let mut server = Box::pin(server);
    tokio::select! {
        result = &mut server => result.context("the server failed")?,
        _ = async { closing.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace_secs = grace.as_secs(), "calls still in flight after the grace period; closing them");
        }
    }
    drop(server);
    drop(api);
    drop(handle);
    runtime
        .shutdown()
        .await
        .context("the store could not be flushed")?;
    tracing::info!("stopped; every acknowledged change is on disk");
    Ok(())
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
/// admin key when not in development mode, in the desk's first commit.
async fn seed(config: &Config, runtime: &Runtime) -> anyhow::Result<()> {
    let handle = &runtime.handle;
    let first_key = if config.dev {
        None
    } else {
        let (secret, record) = generate_key(
            "admin",
            "First admin",
            vec![auth::ALL.to_string()],
            now_ms(),
        );
        write_admin_key(&config.data_dir, &secret)?;
        Some(record)
    };
    let agents: Vec<Agent> = config
        .seed_agents
        .iter()
        .map(|a| Agent {
            id: String::new(),
            name: a.name.clone(),
            tier: a.tier.clone(),
            specialties: a.specialties.clone(),
            capacity: a.capacity,
            load: 0,
            availability: Availability::Available,
            kind: AgentKind::Builtin,
            handled: 0,
            attached_by: None,
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
    handle
        .run(move |core, now| {
            for agent in agents {
                core.desk.create_agent(agent, now)?;
            }
            for reviewer in reviewers {
                core.desk.create_reviewer(reviewer, now)?;
            }
            if let Some(record) = first_key {
                core.keys
                    .write()
                    .expect("key ring poisoned")
                    .insert(record.clone());
                core.record_key_change(KeyChange::Created(record));
            }
            core.mark_seeded();
            Ok(())
        })
        .await
        .map_err(|e| anyhow::anyhow!("cannot seed the desk: {e}"))?;
    tracing::info!(
        agents = agent_count,
        reviewers = reviewer_count,
        "new desk seeded"
    );
    if !config.dev {
        let path = config.data_dir.join(ADMIN_KEY_FILE);
        tracing::info!(path = %path.display(), "created the first admin key; read it from this file (owner-only), then create your own keys");
    }
    Ok(())
}

/// Writes the secret to `dir/admin.key`, readable only by its owner.
fn write_admin_key(dir: &Path, secret: &str) -> anyhow::Result<()> {
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
    Ok(())
}
