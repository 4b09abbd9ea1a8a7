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

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tonic::transport::Endpoint;

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

/// This server as the others see it.
#[derive(Clone, Debug)]
struct Me {
    /// Unique per process: the lease's holder.
    name: String,
    /// What the others dial to forward to it.
    address: String,
}

/// Runs this server as one of the desk's servers until shutdown.
pub(super) async fn run(
    config: &Config,
    (store, shared): (Arc<dyn Store>, Arc<dyn SharedStore>),
    listener: &Listening,
    observed: &Observed,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let me = Me {
        name: holder_name(),
        address: advertised(config, listener.local_addr()?),
    };
    let ttl = config.replication.lease_ttl;
    tracing::info!(name = %me.name, address = %me.address, lease_ttl_secs = ttl.as_secs(), "one of the servers sharing the desk");
    let mut term = take_lease(&shared, &me, ttl).await?;
    loop {
        let now = match term.take() {
            Some(term) => term,
            None => match follow(config, (&store, &shared), listener, (&me, observed), stop).await?
            {
                Some(term) => term,
                None => return Ok(()),
            },
        };
        tracing::info!(epoch = now.epoch, address = %me.address, "this server leads the desk");
        match lead(config, store.clone(), listener, (Some(now), observed), stop).await? {
            Ended::Stopped => return Ok(()),
            Ended::Deposed if stop.is_cancelled() => return Ok(()),
            Ended::Deposed => {
                tracing::warn!("this server no longer leads the desk; it follows the new leader")
            }
        }
    }
}

/// The lease, if it is free.
async fn take_lease(
    shared: &Arc<dyn SharedStore>,
    me: &Me,
    ttl: Duration,
) -> anyhow::Result<Option<Term>> {
    let (asking, name, address) = (shared.clone(), me.name.clone(), me.address.clone());
    let epoch = tokio::task::spawn_blocking(move || asking.try_lead(&name, &address, ttl))
        .await?
        .context("cannot read the desk's lease")?;
    Ok(epoch.map(|epoch| Term {
        shared: shared.clone(),
        epoch,
        ttl,
        me: me.clone(),
    }))
}

/// A name no other process has: the host, the process id and a random part.
fn holder_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "servicedesk".into());
    format!(
        "{host}/{}/{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

/// The address the configuration advertises, else the one listened on (loopback for every
/// interface, which only servers on the same machine can dial: a warning says so).
fn advertised(config: &Config, listening: SocketAddr) -> String {
    if let Some(address) = &config.replication.advertise_address {
        return address.clone();
    }
    let mut address = listening;
    if address.ip().is_unspecified() {
        address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        tracing::warn!(%address, "listening on every interface without [store] advertise_address: the other servers of the desk can forward to this one only from this machine");
    }
    format!("http://{address}")
}

/// A lease this server holds.
pub(super) struct Term {
    shared: Arc<dyn SharedStore>,
    epoch: u64,
    ttl: Duration,
    me: Me,
}

impl Term {
    /// Renews the lease at once (taking office may have used part of it), then every fifth of
    /// its TTL. Once a renewal finds it taken, or none succeeded for a whole TTL, cancels
    /// [`Keeper::lost`]: the desk must stop taking work (its commits would be refused anyway).
    ///
    /// Renewals keep their cadence from when each was asked, not from when it was answered: a
    /// renewal the store was slow to answer (a long fsync, a commit holding the row) is followed
    /// at once by the next. So a single stall shorter than four fifths of the TTL costs
    /// nothing, nor do stalls of every renewal each shorter than half of it. The keeper never
    /// believes in the lease past the TTL after the ask of its last renewal answered (before
    /// the first answer, after taking office).
    pub(super) fn keep(self) -> Keeper {
        let lost = CancellationToken::new();
        let (shared, epoch, ttl) = (self.shared.clone(), self.epoch, self.ttl);
        let losing = lost.clone();
        let task = tokio::spawn(async move {
            let mut valid_until = Instant::now() + ttl;
            let mut next = Instant::now();
            let mut failed = None;
            let why = loop {
                tokio::time::sleep_until(next.min(valid_until).into()).await;
                let asked = Instant::now();
                if asked >= valid_until {
                    break match failed.take() {
                        Some(e) => format!("the lease could not be renewed for a whole TTL ({e})"),
                        None => "no renewal succeeded for a whole TTL".to_string(),
                    };
                }
                next = asked + ttl / 5;
                let renewing = shared.clone();
                // A store that does not answer (a partition) must not hold the keeper past
                // the lease: it is deposed then, answer or not.
                let renewed = tokio::time::timeout_at(
                    valid_until.into(),
                    tokio::task::spawn_blocking(move || renewing.renew(epoch, ttl)),
                )
                .await;
                match renewed {
                    Ok(Ok(Ok(true))) => {
                        valid_until = asked + ttl;
                        failed = None;
                    }
                    Ok(Ok(Ok(false))) => break "another server took the desk's lease".to_string(),
                    Ok(Ok(Err(e))) => {
                        tracing::warn!(error = %e, "cannot renew the desk's lease; retrying");
                        failed = Some(e);
                    }
                    Ok(Err(e)) => break format!("the lease renewal failed ({e})"),
                    Err(_) => {
                        break format!(
                            "the store did not answer a renewal asked {} ms ago before the lease \
                             ran out",
                            asked.elapsed().as_millis()
                        )
                    }
                }
            };
            tracing::error!(epoch, "{why}: this server stops leading the desk");
            losing.cancel();
        });
        Keeper {
            term: self,
            lost,
            task,
        }
    }
}

/// The renewal of a lease held; stops renewing when dropped.
pub(super) struct Keeper {
    term: Term,
    lost: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Keeper {
    /// The lease held, as status reports it.
    pub(super) fn lease(&self) -> crate::store::Lease {
        crate::store::Lease {
            holder: self.term.me.name.clone(),
            address: self.term.me.address.clone(),
            epoch: self.term.epoch,
            expires_in_ms: self.term.ttl.as_millis() as i64,
        }
    }

    /// Cancelled when the lease is lost.
    pub(super) fn lost(&self) -> &CancellationToken {
        &self.lost
    }

    /// Lets the lease go now (the desk stopped and flushed): another server takes over at
    /// once instead of after the TTL.
    pub(super) async fn release(self) {
        self.task.abort();
        let (shared, epoch) = (self.term.shared.clone(), self.term.epoch);
        match tokio::task::spawn_blocking(move || shared.release(epoch)).await {
            Ok(Ok(())) => tracing::info!(epoch, "let the desk's lease go"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not let the lease go; it expires by itself")
            }
            Err(_) => {}
        }
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Follows the desk until shutdown (`None`) or until this server took the lease.
async fn follow(
    config: &Config,
    (store, shared): (&Arc<dyn Store>, &Arc<dyn SharedStore>),
    listener: &Listening,
    (me, observed): (&Me, &Observed),
    stop: &CancellationToken,
) -> anyhow::Result<Option<Term>> {
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
        shared: shared.clone(),
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
        (shared.clone(), config.replication.lease_ttl),
        (me.clone(), config.server.max_concurrent_streams as usize),
        (route, stale.clone()),
        handle.closing().clone(),
        promoted.clone(),
    ));
    let (health, health_service) = health(&handle, &observed.metrics).await;
    let edge = edge_layer(&config.server).authenticating(handle.keys());
    let forward = ForwardLayer::new(
        routes,
        &me.name,
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
            term.keep().release().await;
            Ok(None)
        }
        term => Ok(term),
    }
}

/// Reads the lease every fifth of its TTL, and at once when a forwarded call could not reach
/// the leader (`stale`): routes to the leader it names, and takes it once it expired, which
/// ends following (`closing`) with the term in `promoted`.
async fn watch_lease(
    (shared, ttl): (Arc<dyn SharedStore>, Duration),
    (me, per_connection): (Me, usize),
    (route, stale): (watch::Sender<Route>, Arc<Notify>),
    closing: CancellationToken,
    promoted: Arc<Mutex<Option<Term>>>,
) {
    loop {
        let reading = shared.clone();
        let lease = tokio::task::spawn_blocking(move || reading.lease()).await;
        match lease {
            Ok(Ok(Some(lease))) if lease.expires_in_ms > 0 && lease.holder != me.name => {
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
            Ok(Ok(_)) => match take_lease(&shared, &me, ttl).await {
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
