//! The handle every caller holds: it submits jobs to the runtime task and waits for their
//! replies, reads committed state from the store off the async workers, and gives streams
//! what they need (the live events, the closing signal). Its fields are private: the desk's
//! state is reached only through the commands in [`super::commands`] and [`super::inquiry`].
//!
//! Methods of `DeskHandle` here: `new`, `run`, `store_refuses_writes`, `submit`, `read`,
//! `new_stream_id`, `detach`, `subscribe`, `head`, `closing`, `store_health`, `keys`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::core::Core;
use super::live::{LiveFeed, Published};
use super::writer::StoreHealth;
use super::DeskError;
use crate::clock::Clock;
use crate::domain::error::DomainError;
use crate::domain::triage::Triage;
use crate::keys::KeyRing;
use crate::store::{Store, StoreError};
use crate::telemetry::TRACES;

/// What a job sends back, run by the writer after the commit of the job's batch.
pub(super) type Reply = Box<dyn FnOnce() + Send>;
/// A change to the desk, applied by the runtime task with the batch's time.
pub(super) type Job = Box<dyn FnOnce(&mut Core, i64) -> Option<Reply> + Send>;

/// A cheap, cloneable handle to the running desk.
#[derive(Clone)]
pub struct DeskHandle {
    jobs: mpsc::Sender<Job>,
    store: Arc<dyn Store>,
    live: Arc<LiveFeed>,
    keys: Arc<RwLock<KeyRing>>,
    closing: CancellationToken,
    stream_ids: Arc<AtomicU64>,
    pub(super) triage: Arc<Triage>,
    pub(super) clock: Arc<dyn Clock>,
    /// How long a new ticket's answer is still awaited once shutdown starts.
    pub(super) answer_grace: Duration,
    store_health: watch::Receiver<StoreHealth>,
}

/// What [`DeskHandle::new`] is made of.
pub(super) struct Parts {
    pub jobs: mpsc::Sender<Job>,
    pub store: Arc<dyn Store>,
    pub live: Arc<LiveFeed>,
    pub keys: Arc<RwLock<KeyRing>>,
    pub closing: CancellationToken,
    pub triage: Arc<Triage>,
    pub clock: Arc<dyn Clock>,
    pub answer_grace: Duration,
    pub store_health: watch::Receiver<StoreHealth>,
}

impl DeskHandle {
    pub(super) fn new(parts: Parts) -> Self {
        DeskHandle {
            jobs: parts.jobs,
            store: parts.store,
            live: parts.live,
            keys: parts.keys,
            closing: parts.closing,
            stream_ids: Arc::default(),
            triage: parts.triage,
            clock: parts.clock,
            answer_grace: parts.answer_grace,
            store_health: parts.store_health,
        }
    }

    /// Runs `f` on the desk; the result comes back after the batch it was in is committed.
    /// While traces are exported, a call's command is a span (`desk.command`) with the commit
    /// as its child.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Core, i64) -> Result<T, DomainError> + Send + 'static,
    ) -> Result<T, DeskError> {
        // Only within a call: the metrics' scrapes and the server's own work start no trace.
        let span = match tracing::Span::current().is_none() {
            true => tracing::Span::none(),
            false => tracing::info_span!(target: TRACES, "desk.command"),
        };
        let traced = (!span.is_disabled()).then(|| span.clone());
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |core, now| {
            let result = match traced {
                Some(span) => {
                    let result = span.in_scope(|| f(core, now));
                    core.traced.push(span);
                    result
                }
                None => f(core, now),
            };
            Some(Box::new(move || {
                let _ = tx.send(result);
            }))
        });
        self.submit(job)?;
        tokio::select! {
            answer = rx.instrument(span) => match answer {
                Ok(result) => Ok(result?),
                Err(_) => Err(DeskError::Unavailable),
            },
            why = self.store_refuses_writes() => Err(DeskError::NotCommitted(why)),
        }
    }

    /// Resolves, with the reason, once the store refuses writes: a change waiting for its
    /// commit then waits no longer (the writer retries it, and the caller hears at once that
    /// it was not acknowledged, instead of waiting out its deadline).
    pub(super) async fn store_refuses_writes(&self) -> String {
        let mut health = self.store_health.clone();
        let failing = health
            .wait_for(|h| matches!(h, StoreHealth::Failing(_)))
            .await
            .map(|now| match &*now {
                StoreHealth::Failing(why) => why.clone(),
                _ => unreachable!("waited for a failing store"),
            });
        match failing {
            Ok(why) => why,
            // The runtime is gone: whatever else the caller waits on ends too.
            Err(_) => std::future::pending().await,
        }
    }

    pub(super) fn submit(&self, job: Job) -> Result<(), DeskError> {
        if let StoreHealth::Failing(why) = &*self.store_health.borrow() {
            return Err(DeskError::StoreFailing(why.clone()));
        }
        self.jobs.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => DeskError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => DeskError::Unavailable,
        })
    }

    /// Reads committed state from the store on the blocking pool.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, DeskError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|_| DeskError::Unavailable)?
            .map_err(DeskError::Store)
    }

    /// A fresh id for an agent stream, taken before the attach so that a call cancelled at
    /// any point still detaches what it attached.
    pub(super) fn new_stream_id(&self) -> u64 {
        self.stream_ids.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Tells the desk that an agent's stream closed. Called from a drop, so it never fails
    /// and never waits: the job is queued by a task, behind any load (it cannot be shed), and
    /// after the attach job of the same stream, since jobs run in order.
    pub(super) fn detach(&self, stream_id: u64) {
        let jobs = self.jobs.clone();
        let job: Job = Box::new(move |core, now| {
            core.detach(stream_id, now);
            None
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = jobs.send(job).await;
            });
        }
    }

    /// Committed events as they are published, for live watchers, and the sequence after
    /// which every event reaches them (see [`LiveFeed::subscribe`]).
    pub fn subscribe(&self) -> (broadcast::Receiver<Published>, u64) {
        self.live.subscribe()
    }

    /// The sequence of the last event published to live watchers.
    pub fn head(&self) -> u64 {
        self.live.head()
    }

    /// Cancelled when the server starts shutting down: streams and waiting calls end.
    pub fn closing(&self) -> &CancellationToken {
        &self.closing
    }

    /// Whether the store takes the desk's writes, as it changes.
    pub fn store_health(&self) -> watch::Receiver<StoreHealth> {
        self.store_health.clone()
    }

    /// The key ring every call is authenticated against; changed only by the runtime.
    pub fn keys(&self) -> Arc<RwLock<KeyRing>> {
        self.keys.clone()
    }
}
