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

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tonic::transport::Endpoint;

use super::lease::{DeskLease, HeldLease, ThisServer};
use super::{edge_layer, health, key_ring, lead, runtime_options, serve, services, triage, Ended};
use super::{Listening, Observed};
use crate::api::{Connections, ForwardLayer, Route};
use crate::config::Config;
use crate::runtime::{FollowedDesk, Follower};
use crate::store::{SharedStore, Store};

/// How long a follower waits, after a forwarded call found no leader, before it reads the
/// lease again.
const STALE_PAUSE: Duration = Duration::from_millis(20);

/// How long a server about to follow waits for the store to answer its first read before it
/// serves anyway (unready until the store answers). A store in reach answers in milliseconds;
/// meanwhile the server answers nothing, not even a liveness probe (kubelet's default timeout
/// is 1 s).
const FIRST_READ: Duration = Duration::from_millis(250);

/// Runs this server as one of the desk's servers until shutdown.
pub(super) async fn run(
    config: &Config,
    (store, shared): (Arc<dyn Store>, Arc<dyn SharedStore>),
    listener: &Listening,
    observed: &Observed,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let lease = DeskLease {
        shared: shared.clone(),
        ttl: config.replication.lease_ttl,
        holder: ThisServer::new(config, listener.local_addr()?),
    };
    let me = &lease.holder;
    tracing::info!(name = %me.name, address = %me.address, lease_ttl_secs = lease.ttl.as_secs(), "one of the servers sharing the desk");
    let mut term = lease.take().await?;
    loop {
        let now = match term.take() {
            Some(term) => term,
            None => match follow(config, &store, listener, (&lease, observed), stop).await? {
                Some(term) => term,
                None => return Ok(()),
            },
        };
        tracing::info!(epoch = now.epoch(), address = %me.address, "this server leads the desk");
        match lead(config, store.clone(), listener, (Some(now), observed), stop).await? {
            Ended::Stopped => return Ok(()),
            Ended::Deposed if stop.is_cancelled() => return Ok(()),
            Ended::Deposed => {
                tracing::warn!("this server no longer leads the desk; it follows the new leader")
            }
        }
    }
}

/// Follows the desk until shutdown (`None`) or until this server took the lease.
async fn follow(
    config: &Config,
    store: &Arc<dyn Store>,
    listener: &Listening,
    (lease, observed): (&DeskLease, &Observed),
    stop: &CancellationToken,
) -> anyhow::Result<Option<HeldLease>> {
    let (reading, listing) = (store.clone(), lease.shared.clone());
    let read = tokio::time::timeout(
        FIRST_READ,
        tokio::task::spawn_blocking(move || anyhow::Ok((listing.keys()?, reading.head_seq()?))),
    )
    .await;
    // A store out of reach (the reason a leader may have stopped) is followed all the same:
    // the follower reads the keys and the head once it answers, and says NOT_SERVING until.
    // It does not wait for a store that does not answer (a partition waits out the connect
    // timeout): meanwhile the server would answer nothing, not even a liveness probe.
    let (keys, head) = match read {
        Ok(read) => match read? {
            Ok((keys, head)) => (keys, Some(head)),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the shared store; following it once it answers");
                (Vec::new(), None)
            }
        },
        Err(_) => {
            tracing::error!(
                waited_ms = FIRST_READ.as_millis() as u64,
                "the shared store does not answer; following it once it answers"
            );
            (Vec::new(), None)
        }
    };
    let followed = FollowedDesk {
        store: store.clone(),
        shared: lease.shared.clone(),
        keys: key_ring(config, keys),
        head,
    };
    let follower = Follower::start(
        followed,
        triage(config)?,
        &runtime_options(config, &observed.metrics),
    );
    let handle = follower.handle.clone();
    let (route, routes) = watch::channel(Route::NoLeader);
    let promoted = Arc::new(Mutex::new(None));
    let stale = Arc::new(Notify::new());
    let watcher = tokio::spawn(watch_lease(
        lease.clone(),
        config.server.max_concurrent_streams as usize,
        (route, stale.clone()),
        handle.closing().clone(),
        promoted.clone(),
    ));
    let (health, health_service) = health(&handle, &observed.metrics).await;
    let edge = edge_layer(&config.server).authenticating(handle.keys());
    let forward = ForwardLayer::new(
        routes,
        &lease.holder.name,
        (handle.closing().clone(), stale),
        Some(handle.keys()),
    );
    let router = services(
        config,
        &handle,
        health_service,
        (edge.clone(), forward, &observed.metrics),
        None,
    )?;
    tracing::info!(head = ?head, "following the desk");
    serve(config, &handle, listener, router, (health, edge), stop).await?;
    watcher.abort();
    let _ = watcher.await;
    follower.stop().await;
    let term = promoted.lock().unwrap_or_else(|e| e.into_inner()).take();
    match term {
        Some(term) if stop.is_cancelled() => {
            // Taken as shutdown began: let it go rather than leave it to expire.
            term.release().await;
            Ok(None)
        }
        term => Ok(term),
    }
}

/// Reads the lease every fifth of its TTL, and at once when a forwarded call could not reach
/// the leader (`stale`): routes to the leader it names, and takes it once it expired, which
/// ends following (`closing`) with the term in `promoted`.
async fn watch_lease(
    desk_lease: DeskLease,
    per_connection: usize,
    (route, stale): (watch::Sender<Route>, Arc<Notify>),
    closing: CancellationToken,
    promoted: Arc<Mutex<Option<HeldLease>>>,
) {
    let ttl = desk_lease.ttl;
    loop {
        let reading = desk_lease.shared.clone();
        let lease = tokio::task::spawn_blocking(move || reading.lease()).await;
        match lease {
            Ok(Ok(Some(lease)))
                if lease.expires_in_ms > 0 && lease.holder != desk_lease.holder.name =>
            {
                let same = matches!(&*route.borrow(), Route::Follows { leader, .. } if *leader == lease.address);
                if !same {
                    match Endpoint::from_shared(lease.address.clone()) {
                        Ok(endpoint) => {
                            let endpoint = endpoint
                                .connect_timeout(Duration::from_secs(1))
                                .tcp_nodelay(true)
                                .http2_keep_alive_interval(Duration::from_secs(10));
                            tracing::info!(leader = %lease.address, holder = %lease.holder, epoch = lease.epoch, "following the desk's leader");
                            route.send_replace(Route::Follows {
                                leader: lease.address,
                                connections: Arc::new(Connections::new(endpoint, per_connection)),
                            });
                        }
                        Err(e) => {
                            tracing::error!(address = %lease.address, error = %e, "the leader advertises an address that cannot be dialled");
                            route.send_replace(Route::NoLeader);
                        }
                    }
                }
            }
            Ok(Ok(_)) => match desk_lease.take().await {
                Ok(Some(term)) => {
                    *promoted.lock().unwrap_or_else(|e| e.into_inner()) = Some(term);
                    route.send_replace(Route::NoLeader);
                    closing.cancel();
                    return;
                }
                // Taken already (by a faster server, or still ours while it runs out): read
                // whom to follow on the next round.
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot take the desk's expired lease"),
            },
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot read the desk's lease"),
            Err(_) => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(ttl / 5) => {}
            // A burst of failures reads the lease once, not once each.
            _ = stale.notified() => tokio::time::sleep(STALE_PAUSE).await,
        }
    }
}
