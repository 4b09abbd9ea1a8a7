//! The desk's lease on a shared store, which names the one server that leads: [`DeskLease`]
//! is the lease as this server contends for it, [`HeldLease`] one it took, and
//! [`LeaseRenewal`] keeps it while this server leads and says when it is lost.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::store::{self, SharedStore};

/// This server as the others see it.
#[derive(Clone, Debug)]
pub(super) struct ThisServer {
    /// Unique per process: the lease's holder.
    pub(super) name: String,
    /// What the others dial to forward to it.
    pub(super) address: String,
}

impl ThisServer {
    /// This process, named afresh, at the address the configuration advertises or else the
    /// one it listens on.
    pub(super) fn new(config: &Config, listening: SocketAddr) -> Self {
        ThisServer {
            name: holder_name(),
            address: advertised(config, listening),
        }
    }
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

/// The desk's lease as this server contends for it: the store that keeps it, how long it
/// lasts unrenewed, and the holder this server takes it as.
#[derive(Clone)]
pub(super) struct DeskLease {
    pub(super) shared: Arc<dyn SharedStore>,
    pub(super) ttl: Duration,
    pub(super) holder: ThisServer,
}

impl DeskLease {
    /// Takes the lease unless another server holds it (`None` then).
    pub(super) async fn try_take(&self) -> anyhow::Result<Option<HeldLease>> {
        let (asking, ttl) = (self.shared.clone(), self.ttl);
        let (name, address) = (self.holder.name.clone(), self.holder.address.clone());
        let epoch = tokio::task::spawn_blocking(move || asking.try_lead(&name, &address, ttl))
            .await?
            .context("cannot read the desk's lease")?;
        Ok(epoch.map(|epoch| HeldLease {
            lease: self.clone(),
            epoch,
        }))
    }
}

/// The desk's lease while this server holds it: it leads the desk, and every commit it makes
/// is fenced by `epoch`.
pub(super) struct HeldLease {
    lease: DeskLease,
    epoch: u64,
}

impl HeldLease {
    pub(super) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Renews the lease at once (taking office may have used part of it), then every fifth of
    /// its TTL. Once a renewal finds it taken, or none succeeded for a whole TTL, cancels
    /// [`LeaseRenewal::lost`]: the desk must stop taking work (its commits would be refused
    /// anyway).
    ///
    /// Renewals keep their cadence from when each was asked, not from when it was answered: a
    /// renewal the store was slow to answer (a long fsync, a commit holding the row) is followed
    /// at once by the next. So a single stall shorter than four fifths of the TTL costs
    /// nothing, nor do stalls of every renewal each shorter than half of it. The renewal never
    /// believes in the lease past the TTL after the ask of its last renewal answered (before
    /// the first answer, after taking office).
    pub(super) fn start_renewing(self) -> LeaseRenewal {
        let lost = CancellationToken::new();
        let (shared, epoch, ttl) = (self.lease.shared.clone(), self.epoch, self.lease.ttl);
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
                // A store that does not answer (a partition) must not hold the renewal past
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
        LeaseRenewal {
            held: self,
            lost,
            task,
        }
    }

    /// Lets the lease go now (the desk stopped and flushed, or was never led): another server
    /// takes over at once instead of after the TTL.
    pub(super) async fn release(&self) {
        let (shared, epoch) = (self.lease.shared.clone(), self.epoch);
        match tokio::task::spawn_blocking(move || shared.release(epoch)).await {
            Ok(Ok(())) => tracing::info!(epoch, "let the desk's lease go"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not let the lease go; it expires by itself")
            }
            Err(_) => {}
        }
    }
}

/// The renewal of a lease held, for as long as this server leads; stops renewing when
/// dropped.
pub(super) struct LeaseRenewal {
    held: HeldLease,
    lost: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl LeaseRenewal {
    /// The lease held, as status reports it.
    pub(super) fn lease(&self) -> store::Lease {
        let held = &self.held;
        store::Lease {
            holder: held.lease.holder.name.clone(),
            address: held.lease.holder.address.clone(),
            epoch: held.epoch,
            expires_in_ms: held.lease.ttl.as_millis() as i64,
        }
    }

    /// Cancelled when the lease is lost.
    pub(super) fn lost(&self) -> &CancellationToken {
        &self.lost
    }

    /// Stops renewing and lets the lease go (see [`HeldLease::release`]).
    pub(super) async fn release(self) {
        self.task.abort();
        self.held.release().await;
    }
}

impl Drop for LeaseRenewal {
    fn drop(&mut self) {
        self.task.abort();
    }
}
