//! Servers sharing one desk in PostgreSQL: each either leads it (holds the desk's lease, runs
//! the desk in memory and commits) or follows it (serves reads and watches from the store,
//! forwards the rest to the leader), and changes role as the lease changes hands.
//!
//! A server starts by trying to take the lease. The leader renews it every fifth of its TTL;
//! when a renewal finds the lease taken (it was paused or cut off for longer than the TTL), or
//! no renewal succeeded for a whole TTL, the desk stops at once, and the server follows. A
//! follower reads the lease as often, dials the leader it names, and takes the lease once it
//! expired: it stops serving as a follower, restores the desk from the store and leads. The
//! listening socket stays open throughout, so connections that arrive during a change wait
//! for the new role instead of being refused.
//!
//! [`run`] is that loop: each turn, [`follow`] until the lease is taken, then [`lead`] until it
//! is lost; the [`DeskLease`] is what passes from one to the other.

use std::sync::Arc;

use super::follow::follow;
use super::lead::{lead, LeadEnded};
use super::lease::{DeskLease, ThisServer};
use super::serving::Serving;
use crate::store::{SharedStore, Store};

/// Runs this server as one of the desk's servers until shutdown.
pub(super) async fn run(
    serving: &Serving,
    store: Arc<dyn Store>,
    shared: Arc<dyn SharedStore>,
) -> anyhow::Result<()> {
    let config = &serving.config;
    let lease = DeskLease {
        shared,
        ttl: config.replication.lease_ttl,
        holder: ThisServer::new(config, serving.listener.local_addr()?),
    };
    let this = &lease.holder;
    tracing::info!(name = %this.name, address = %this.address, lease_ttl_secs = lease.ttl.as_secs(), "one of the servers sharing the desk");
    let mut taken = lease.try_take().await?;
    loop {
        let held = match taken.take() {
            Some(held) => held,
            None => match follow(serving, &store, &lease).await? {
                Some(held) => held,
                None => return Ok(()),
            },
        };
        tracing::info!(epoch = held.epoch(), address = %this.address, "this server leads the desk");
        match lead(serving, store.clone(), Some(held)).await? {
            LeadEnded::Stopped => return Ok(()),
            LeadEnded::Deposed if serving.stop.is_cancelled() => return Ok(()),
            LeadEnded::Deposed => {
                tracing::warn!("this server no longer leads the desk; it follows the new leader")
            }
        }
    }
}
