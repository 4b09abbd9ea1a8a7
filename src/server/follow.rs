//! Following the desk on a shared store while another server leads it: this server serves
//! reads and watches from the store (`runtime::Follower`), forwards the rest to the leader the
//! lease names (`api::ForwardLayer`), and takes the lease once it expired, which ends following.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tonic::transport::Endpoint;

use super::desk::{key_ring, runtime_options, triage};
use super::lease::{DeskLease, HeldLease};
use super::serving::{Role, Serving};
use crate::api::{Connections, Following, ForwardLayer, Route};
use crate::runtime::{FollowedDesk, Follower};
use crate::store::{self, SharedStore, Store};

/// How long a follower waits, after a forwarded call found no leader, before it reads the
/// lease again.
const STALE_PAUSE: Duration = Duration::from_millis(20);

/// How long a server about to follow waits for the store to answer its first read before it
/// serves anyway (unready until the store answers). A store in reach answers in milliseconds;
/// meanwhile the server answers nothing, not even a liveness probe (kubelet's default timeout
/// is 1 s).
const FIRST_READ: Duration = Duration::from_millis(250);

/// Follows the desk until shutdown (`None`) or until this server took the lease.
pub(super) async fn follow(
    serving: &Serving,
    store: &Arc<dyn Store>,
    lease: &DeskLease,
) -> anyhow::Result<Option<HeldLease>> {
    let config = &serving.config;
    let (keys, head) = first_read(store, &lease.shared).await?;
    let followed = FollowedDesk {
        store: store.clone(),
        shared: lease.shared.clone(),
        keys: key_ring(config, keys),
        head,
    };
    let follower = Follower::start(
        followed,
        triage(config)?,
        &runtime_options(config, &serving.metrics),
    );
    let handle = follower.handle.clone();
    let (route, routes) = watch::channel(Route::NoLeader);
    let stale = Arc::new(Notify::new());
    let watcher = tokio::spawn(
        LeaseWatch {
            lease: lease.clone(),
            per_connection: config.server.max_concurrent_streams as usize,
            route,
            stale: stale.clone(),
            following: handle.closing().clone(),
        }
        .run(),
    );
    let forward = ForwardLayer::new(Following {
        route: routes,
        name: &lease.holder.name,
        ending: handle.closing().clone(),
        stale,
        keys: Some(handle.keys()),
    });
    tracing::info!(head = ?head, "following the desk");
    let role = Role {
        desk: handle,
        forward,
        lease: None,
    };
    serving.serve(role).await?;
    watcher.abort();
    // Aborting a watch that already took the lease leaves its answer in place.
    let taken = watcher.await.ok().flatten();
    follower.stop().await;
    match taken {
        Some(held) if serving.stop.is_cancelled() => {
            // Taken as shutdown began: let it go rather than leave it to expire.
            held.release().await;
            Ok(None)
        }
        taken => Ok(taken),
    }
}

/// The stored keys and the log's head, read together; no keys and no head when the store
/// cannot be read or does not answer within [`FIRST_READ`].
async fn first_read(
    store: &Arc<dyn Store>,
    shared: &Arc<dyn SharedStore>,
) -> anyhow::Result<(Vec<store::KeyRecord>, Option<u64>)> {
    let (reading, listing) = (store.clone(), shared.clone());
    let read = tokio::time::timeout(
        FIRST_READ,
        tokio::task::spawn_blocking(move || anyhow::Ok((listing.keys()?, reading.head_seq()?))),
    )
    .await;
    // A store out of reach (the reason a leader may have stopped) is followed all the same:
    // the follower reads the keys and the head once it answers, and says NOT_SERVING until.
    // It does not wait for a store that does not answer (a partition waits out the connect
    // timeout): meanwhile the server would answer nothing, not even a liveness probe.
    Ok(match read {
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
    })
}

/// A follower's watch on the desk's lease: it routes forwarded calls to the leader the lease
/// names, and takes the lease once it expired.
struct LeaseWatch {
    lease: DeskLease,
    /// The calls one connection to the leader carries at most.
    per_connection: usize,
    /// Where forwarded calls go.
    route: watch::Sender<Route>,
    /// Told when a forwarded call could not reach the leader: the route may be stale.
    stale: Arc<Notify>,
    /// Cancelled to end following once the lease is taken.
    following: CancellationToken,
}

impl LeaseWatch {
    /// Reads the lease every fifth of its TTL, and at once when the route went stale; returns
    /// the lease once this server took it (having ended following), `None` when a read could
    /// not run at all (the runtime shutting down).
    async fn run(self) -> Option<HeldLease> {
        loop {
            let reading = self.lease.shared.clone();
            let read = tokio::task::spawn_blocking(move || reading.lease()).await;
            match read {
                Ok(Ok(Some(current)))
                    if current.expires_in_ms > 0 && current.holder != self.lease.holder.name =>
                {
                    self.route_to(current)
                }
                Ok(Ok(_)) => match self.lease.try_take().await {
                    Ok(Some(held)) => {
                        self.route.send_replace(Route::NoLeader);
                        self.following.cancel();
                        return Some(held);
                    }
                    // Taken already (by a faster server, or still ours while it runs out): read
                    // whom to follow on the next round.
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot take the desk's expired lease"),
                },
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot read the desk's lease"),
                Err(_) => return None,
            }
            tokio::select! {
                _ = tokio::time::sleep(self.lease.ttl / 5) => {}
                // A burst of failures reads the lease once, not once each.
                _ = self.stale.notified() => tokio::time::sleep(STALE_PAUSE).await,
            }
        }
    }

    /// Routes forwarded calls to the leader `current` names, unless they go there already.
    fn route_to(&self, current: store::Lease) {
        let same = matches!(&*self.route.borrow(), Route::Follows { leader, .. } if *leader == current.address);
        if same {
            return;
        }
        match Endpoint::from_shared(current.address.clone()) {
            Ok(endpoint) => {
                let endpoint = endpoint
                    .connect_timeout(Duration::from_secs(1))
                    .tcp_nodelay(true)
                    .http2_keep_alive_interval(Duration::from_secs(10));
                tracing::info!(leader = %current.address, holder = %current.holder, epoch = current.epoch, "following the desk's leader");
                self.route.send_replace(Route::Follows {
                    leader: current.address,
                    connections: Arc::new(Connections::new(endpoint, self.per_connection)),
                });
            }
            Err(e) => {
                tracing::error!(address = %current.address, error = %e, "the leader advertises an address that cannot be dialled");
                self.route.send_replace(Route::NoLeader);
            }
        }
    }
}
