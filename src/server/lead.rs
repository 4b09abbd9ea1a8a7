//! Leading the desk: this server restores it from the store, runs it in memory, serves it and
//! commits, either with the store to itself or, on a shared store, for as long as it holds
//! the desk's lease; then it flushes what is left.

use std::sync::Arc;

use anyhow::Context;

use super::desk::start_desk;
use super::lease::{HeldLease, LeaseRenewal};
use super::serving::{Role, Serving};
use crate::api::ForwardLayer;
use crate::runtime::StopError;
use crate::store::{Store, StoreError};

/// How this server's leading of the desk ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum LeadEnded {
    /// Shutdown was asked for (or the desk stopped itself).
    Stopped,
    /// Another server took the desk's lease: this one wrote nothing after.
    Deposed,
}

/// Runs the desk in this server until shutdown or, under `lease`, until the lease is lost:
/// restore it from the store, serve, then flush the store.
pub(super) async fn lead(
    serving: &Serving,
    store: Arc<dyn Store>,
    lease: Option<HeldLease>,
) -> anyhow::Result<LeadEnded> {
    // Renewed from the start: restoring a large desk may take longer than the lease.
    let renewal = lease.map(HeldLease::start_renewing);
    let runtime = start_desk(&serving.config, store, &serving.metrics).await?;
    let handle = runtime.handle.clone();
    serving.leading.send_replace(Some(handle.clone()));
    if let Some(renewal) = &renewal {
        let (lost, closing) = (renewal.lost().clone(), handle.closing().clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = lost.cancelled() => closing.cancel(),
                _ = closing.cancelled() => {}
            }
        });
    }
    let role = Role {
        desk: handle,
        forward: ForwardLayer::leads(),
        lease: renewal.as_ref().map(LeaseRenewal::lease),
    };
    let served = serving.serve(role).await;
    serving.leading.send_replace(None);
    served?;
    // A server that lost the lease acknowledged nothing it could not commit: what it held
    // unwritten is not lost, and the store may well be out of its reach, so its writer may take
    // a while to give up. It does so in the background while this server follows (and answers
    // health) at once; fencing refuses whatever it still tries to write under the lost epoch.
    if renewal.as_ref().is_some_and(|r| r.lost().is_cancelled()) {
        tokio::spawn(async move {
            if let Err(e) = runtime.shutdown().await {
                tracing::warn!(error = %e, "stopped leading without writing what was left");
            }
        });
        return Ok(LeadEnded::Deposed);
    }
    let stopped = runtime.shutdown().await;
    match stopped {
        Err(StopError::Store(StoreError::Deposed(why))) => {
            tracing::warn!("{why}");
            return Ok(LeadEnded::Deposed);
        }
        Err(StopError::Store(err @ StoreError::WrittenElsewhere(_))) => {
            return Err(anyhow::Error::new(err).context("the desk stopped"))
        }
        result => result.context("the store could not be flushed")?,
    }
    if let Some(renewal) = renewal {
        renewal.release().await;
    }
    tracing::info!("stopped; every acknowledged change is on disk");
    Ok(LeadEnded::Stopped)
}
