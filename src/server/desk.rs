//! The desk as this server makes it from the configuration and the store: the key ring,
//! triage and runtime options a leader and a follower both start with, and a leader's desk
//! restored from the store ([`start_desk`]), seeded with its agents, reviewers and first admin
//! key when it is new.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use crate::clock::now_ms;
use crate::config::Config;
use crate::domain::desk::Desk;
use crate::domain::knowledge::KnowledgeBase;
use crate::domain::mesh::{Agent, AgentKind, Mesh};
use crate::domain::review::Reviewer;
use crate::domain::triage::Triage;
use crate::keys::{self, generate_key, KeyRing};
use crate::metrics::Metrics;
use crate::runtime::{Runtime, RuntimeOptions, Seed};
use crate::store;

/// Name of the file holding the first admin key of a store started without `--dev`.
pub const ADMIN_KEY_FILE: &str = "admin.key";

/// The key ring of the stored keys, with the development keys under `--dev`.
pub(super) fn key_ring(config: &Config, stored: Vec<store::KeyRecord>) -> KeyRing {
    if config.dev {
        tracing::warn!("development mode: the well-known keys test-key-123 and admin-key-456 are accepted; never use --dev in production");
    }
    KeyRing::new(stored, config.dev)
}

/// How the runtime keeps events and stops, from the configuration.
pub(super) fn runtime_options(config: &Config, metrics: &Arc<Metrics>) -> RuntimeOptions {
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
pub(super) fn triage(config: &Config) -> anyhow::Result<Arc<Triage>> {
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

/// Rebuilds the desk from the store, starts the runtime, and seeds a new desk.
pub(super) async fn start_desk(
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
            specialties: r.specialties.clone(),
            max_concurrent: r.max_concurrent,
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
