//! The desk runtime: the one owner of the desk's state.
//!
//! Callers hold a [`DeskHandle`] and call its commands (`handle_inquiry`, `decide`,
//! `create_agent`, ...). Each command is a job sent through a bounded channel to one task,
//! which applies jobs in batches, fires due timers, and hands each batch's effects to the
//! writer thread; the writer commits them in one transaction (group commit) and only then
//! publishes the events and sends the replies. So nobody ever hears about a change that is not
//! durable, and no lock is held across an await: the state has exactly one owner, and nothing
//! outside this module can reach it.
//!
//! - [`handle`]: the handle and its plumbing (jobs, store reads, streams' needs);
//! - [`commands`]: the desk's commands as typed methods of the handle;
//! - [`inquiry`]: a new inquiry, from idempotent admission to its settled answer;
//! - [`core`]: the state the task owns beyond the desk (waiters, agent feeds, pending writes);
//! - [`batches`]: the task's loop, one batch at a time;
//! - [`writer`]: the thread that commits.

mod batches;
mod commands;
mod core;
mod follower;
mod handle;
mod inquiry;
mod live;
#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
mod writer;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::domain::desk::{Desk, RemoteMessage};
use crate::domain::error::DomainError;
use crate::domain::triage::Triage;
use crate::keys::KeyRing;
use crate::store::{Store, StoreError};

pub use commands::{AgentSession, DeskStatus, Seed};
pub use follower::{FollowedDesk, Follower};
pub use handle::DeskHandle;
pub use inquiry::{Answer, Inquiry};
pub use live::{event_bytes, LiveEvent, LiveFeed, Published, FORMS};
pub use writer::StoreHealth;

/// Why the runtime could not answer.
#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("the desk is overloaded; retry with backoff")]
    Overloaded,
    #[error("the desk is shutting down or could not persist the change")]
    Unavailable,
    /// The store refuses writes; the desk refuses changes until it takes them again.
    #[error("the desk cannot write to its store ({0}); it refuses changes until the store takes writes again, and retries by itself; reads go on")]
    StoreFailing(String),
    /// The store stopped taking writes while this change waited for its commit: it was not
    /// acknowledged, and is committed if and when the store takes writes again.
    #[error("the desk could not write this change to its store ({0}); it is written if the store takes writes again, so read before you retry, or retry with the same idempotency key")]
    NotCommitted(String),
    /// The desk stopped before a new ticket settled; the ticket is kept and can be fetched.
    #[error(
        "{why}; ticket {ticket_id} is kept: fetch it with GetTicket or follow it with WatchTicket"
    )]
    TicketKept { ticket_id: String, why: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an attached remote agent's stream receives from the desk.
#[derive(Debug)]
pub enum AgentFeed {
    /// An assignment or a revocation.
    Message(RemoteMessage),
    /// The desk ended the stream: another Attach took the agent over, or it was deleted.
    Ended(String),
}

/// The running desk: its handle and the means to stop it.
pub struct Runtime {
    pub handle: DeskHandle,
    stop: CancellationToken,
    /// The loop's task itself, which `task` only watches.
    #[cfg(test)]
    run_abort: tokio::task::AbortHandle,
    task: tokio::task::JoinHandle<Result<(), tokio::task::JoinError>>,
    writer: std::thread::JoinHandle<Result<(), StoreError>>,
}

/// How the runtime keeps its event log and answers.
#[derive(Clone, Debug)]
pub struct RuntimeOptions {
    /// Events kept in memory for live subscribers; further behind, they read the store.
    pub live_event_buffer: usize,
    /// Bytes of events, about, kept for live subscribers; the oldest go first past it.
    pub live_event_bytes: usize,
    /// How long events are kept in the store; `None`: for ever.
    pub event_retention: Option<Duration>,
    /// How long calls in flight may take to finish once shutdown starts.
    pub shutdown_grace: Duration,
    /// Where the desk's time comes from.
    pub clock: Arc<dyn Clock>,
    /// What the runtime records its commits in.
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl RuntimeOptions {
    /// What the live feed keeps of the newest events.
    fn live_keeps(&self) -> live::Keeps {
        live::Keeps {
            events: self.live_event_buffer,
            bytes: self.live_event_bytes,
        }
    }
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            live_event_buffer: 8192,
            live_event_bytes: 64 << 20,
            event_retention: None,
            shutdown_grace: Duration::from_secs(10),
            clock: Arc::new(SystemClock),
            metrics: Arc::default(),
        }
    }
}

impl Runtime {
    /// Starts the runtime task and the writer thread around a restored desk.
    pub fn start(
        desk: Desk,
        keys: KeyRing,
        store: Arc<dyn Store>,
        triage: Arc<Triage>,
        options: RuntimeOptions,
    ) -> Runtime {
        let (jobs_tx, jobs_rx) = mpsc::channel(batches::JOB_QUEUE);
        let live = Arc::new(LiveFeed::new(options.live_keeps(), desk.last_seq()));
        let keys = Arc::new(RwLock::new(keys));
        let closing = CancellationToken::new();
        let stop = CancellationToken::new();
        let compaction_backlog = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (health, store_health) = watch::channel(StoreHealth::Healthy);
        let health = Arc::new(health);
        tokio::spawn(writer::keep_in_shape(
            store.clone(),
            health.clone(),
            closing.clone(),
        ));
        let (writer_tx, writer) = writer::spawn(
            store.clone(),
            writer::Shared {
                live: live.clone(),
                closing: closing.clone(),
                compaction_backlog: compaction_backlog.clone(),
                health,
                metrics: options.metrics.clone(),
            },
        );
        let handle = DeskHandle::new(handle::Parts {
            jobs: jobs_tx.clone(),
            store,
            live,
            keys: keys.clone(),
            closing: closing.clone(),
            triage: triage.clone(),
            clock: options.clock.clone(),
            answer_grace: options.shutdown_grace / 2,
            store_health,
        });
        let run = tokio::spawn(batches::run_loop(
            core::Core::new(desk, keys),
            batches::Channels {
                jobs: jobs_rx,
                jobs_tx,
                writer: writer_tx,
            },
            triage,
            options.clock,
            batches::Retention {
                keep: options.event_retention,
                backlog: compaction_backlog,
            },
            stop.clone(),
        ));
        #[cfg(test)]
        let run_abort = run.abort_handle();
        // Whatever ends the loop (a stop, a failed writer, a panic), the server must hear of
        // it: it drains and exits instead of answering UNAVAILABLE forever while healthy.
        let ended = closing.clone();
        let task = tokio::spawn(async move {
            let result = run.await;
            ended.cancel();
            result
        });
        Runtime {
            handle,
            stop,
            #[cfg(test)]
            run_abort,
            task,
            writer,
        }
    }

    /// Stops the runtime as a crash of the process would: the loop dies where it is, nothing
    /// queued is applied and nothing is flushed; what the writer already holds is committed
    /// whole or not at all. Returns once the store is let go of.
    #[cfg(test)]
    pub(super) async fn crash(self) {
        self.run_abort.abort();
        let _ = self.task.await;
        self.handle.closing().cancel();
        drop(self.handle);
        let _ = tokio::task::spawn_blocking(move || self.writer.join()).await;
    }

    /// Applies what is queued, commits it, and stops. Call after the server stopped taking calls.
    pub async fn shutdown(self) -> Result<(), StopError> {
        self.handle.closing().cancel();
        self.stop.cancel();
        let run = self.task.await;
        drop(self.handle);
        let writer = tokio::task::spawn_blocking(move || self.writer.join())
            .await
            .map_err(|e| StopError::Crashed(format!("the writer could not be joined: {e}")))?;
        match (run, writer) {
            (_, Ok(Err(store))) => Err(StopError::Store(store)),
            (_, Err(_)) => Err(StopError::Crashed("the store writer panicked".into())),
            (Ok(Err(e)) | Err(e), _) => {
                Err(StopError::Crashed(format!("the desk task failed: {e}")))
            }
            (Ok(Ok(())), Ok(Ok(()))) => Ok(()),
        }
    }
}

/// Why the runtime did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum StopError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Crashed(String),
}
