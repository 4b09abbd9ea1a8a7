//! The server: [`run`] opens the store (checking it), binds the address once, and leads the
//! desk, alone on a store it has to itself or as one of the servers sharing it; [`check_store`]
//! is the offline check.
//!
//! Its modules depend one way, from the role loop down to what every role serves with:
//! `replicas` (the roles on a shared store) uses `follow` and `lead`, which use `lease`, `desk`
//! (the desk made from the configuration) and `serving` (the socket, health, the services).

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::store;

mod desk;
mod exposition;
mod follow;
mod lead;
mod lease;
pub mod probe;
mod replicas;
mod serving;

pub use desk::ADMIN_KEY_FILE;
pub use serving::STORE_HEALTH;

use serving::{Listening, Serving};

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
    let listener = Listening::bind(config.listen)?;
    let (leading, led) = tokio::sync::watch::channel(None);
    let serving = Serving {
        config,
        listener,
        metrics: Arc::new(Metrics::new()),
        leading,
        stop,
    };
    if let Some(addr) = serving.config.metrics_listen {
        exposition::start(addr, serving.metrics.clone(), led, serving.stop.clone()).await?;
    }
    match opened.shared {
        None => {
            lead::lead(&serving, opened.store, None).await?;
            Ok(())
        }
        Some(shared) => replicas::run(&serving, opened.store, shared).await,
    }
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
