//! The writer thread: commits each batch in one transaction, then sends its replies and
//! publishes its events, in batch order.
//!
//! A commit that fails (a full disk, a store gone read-only) is retried, with backoff, until it
//! succeeds: the state in memory is ahead of the disk by exactly that batch, and nobody heard of
//! it. Meanwhile [`StoreHealth::Failing`] tells the handle to refuse new changes and the server
//! to report NOT_SERVING; reads of the store go on. When the store takes writes again, the batch
//! commits, its replies go out, and the desk carries on by itself. Only a shutdown gives up on a
//! batch that cannot be committed, and then nothing of it was acknowledged.
//!
//! Beside it, [`keep_in_shape`] has the store maintain itself now and then ([`Store::maintain`]);
//! when that fails, writes still succeed but the store cannot stay healthy for long:
//! [`StoreHealth::Degraded`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::live::LiveFeed;
use crate::store::{CommitBatch, CommitReport, Store, StoreError};
use crate::telemetry::TRACES;

/// Batches committed ahead of the runtime: enough to overlap one commit with the next batch.
const PIPELINE: usize = 2;
/// First wait before a failed commit is tried again; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);
/// Longest wait between tries: also how long a shutdown may wait for a failing store.
const RETRY_MAX: Duration = Duration::from_secs(2);
/// How often a store that keeps failing is mentioned in the log again.
const REMIND_EVERY: Duration = Duration::from_secs(30);
/// How often the store is kept in shape while commits flow.
const MAINTAIN_EVERY: Duration = Duration::from_secs(1);

/// Whether the store takes the desk's writes.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum StoreHealth {
    #[default]
    Healthy,
    /// Commits succeed, but the store cannot keep itself in shape (for SQLite: the WAL cannot
    /// be checkpointed into the database, so it grows): an operator must look.
    Degraded(String),
    /// Commits fail: the desk refuses changes and retries until the store takes writes again.
    Failing(String),
}

pub(super) struct Batch {
    pub commit: CommitBatch,
    pub replies: Vec<Box<dyn FnOnce() + Send>>,
    /// The spans of the commands that wait for this commit (only while traces are exported).
    pub traced: Vec<tracing::Span>,
}

/// What the writer thread shares with the rest of the runtime.
pub(super) struct Shared {
    pub live: Arc<LiveFeed>,
    pub closing: CancellationToken,
    pub compaction_backlog: Arc<AtomicBool>,
    pub health: Arc<watch::Sender<StoreHealth>>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

pub(super) fn spawn(
    store: Arc<dyn Store>,
    shared: Shared,
) -> (
    mpsc::Sender<Batch>,
    std::thread::JoinHandle<Result<(), StoreError>>,
) {
    let (tx, mut rx) = mpsc::channel::<Batch>(PIPELINE);
    let thread = std::thread::Builder::new()
        .name("desk-writer".into())
        .spawn(move || {
            while let Some(batch) = rx.blocking_recv() {
                let started = Instant::now();
                let spans = commit_spans(&batch);
                let report = commit(store.as_ref(), &batch.commit, &shared)?;
                drop(spans);
                record(&shared.metrics, &batch.commit, started);
                if batch.commit.compact_before_ms.is_some() {
                    shared
                        .compaction_backlog
                        .store(report.compaction_backlog, Ordering::Relaxed);
                }
                // Replies first: a caller waiting on its commit is not queued behind every
                // watch the events wake.
                for reply in batch.replies {
                    reply();
                }
                for event in batch.commit.events {
                    shared.live.publish(event);
                }
            }
            Ok(())
        })
        .expect("spawn the writer thread");
    (tx, thread)
}

/// One `store.commit` span under each traced command of the batch, open while it commits.
fn commit_spans(batch: &Batch) -> Vec<tracing::Span> {
    let (events, replies) = (batch.commit.events.len() as i64, batch.replies.len() as i64);
    batch
        .traced
        .iter()
        .map(|command| {
            tracing::info_span!(
                target: TRACES,
                parent: command,
                "store.commit",
                servicedesk.commit.events = events,
                servicedesk.commit.replies = replies,
            )
        })
        .collect()
}

/// Puts a commit in the metrics: its time, its size, its events by kind, the log's head.
fn record(metrics: &crate::metrics::Metrics, batch: &CommitBatch, started: Instant) {
    metrics
        .commit_seconds
        .observe(started.elapsed().as_secs_f64());
    metrics.commit_events.observe(batch.events.len() as f64);
    for event in &batch.events {
        metrics
            .events
            .with_label_values(&[crate::metrics::event_name(event)])
            .inc();
    }
    if let Some(last) = batch.events.last() {
        metrics.log_head.set(last.seq as i64);
    }
}

/// Commits the batch, retrying until it succeeds, or until shutdown while it fails.
fn commit(
    store: &dyn Store,
    batch: &CommitBatch,
    shared: &Shared,
) -> Result<CommitReport, StoreError> {
    let mut failing_since: Option<(Instant, Instant)> = None;
    let mut wait = RETRY_FIRST;
    loop {
        let err = match store.commit(batch) {
            Ok(report) => {
                if let Some((since, _)) = failing_since {
                    tracing::info!(
                        failed_for_ms = since.elapsed().as_millis() as u64,
                        "the store takes writes again; the desk takes changes again"
                    );
                    shared.health.send_replace(StoreHealth::Healthy);
                }
                return Ok(report);
            }
            // Another server leads now, or another process wrote to the store: retrying can
            // only fail again, and nothing of this batch was acknowledged. The desk stops; its
            // callers hear UNAVAILABLE.
            Err(err @ (StoreError::Deposed(_) | StoreError::WrittenElsewhere(_))) => {
                tracing::error!(error = %err, events = batch.events.len(), "stopping without writing");
                shared.closing.cancel();
                return Err(err);
            }
            Err(err) => err,
        };
        match &mut failing_since {
            None => {
                tracing::error!(error = %err, "commit failed; the desk refuses changes and retries until the store takes writes again");
                shared
                    .health
                    .send_replace(StoreHealth::Failing(err.to_string()));
                let now = Instant::now();
                failing_since = Some((now, now));
            }
            Some((since, reminded)) if reminded.elapsed() >= REMIND_EVERY => {
                tracing::error!(error = %err, failing_secs = since.elapsed().as_secs(), "the store still refuses writes");
                *reminded = Instant::now();
            }
            Some(_) => {}
        }
        if shared.closing.is_cancelled() {
            tracing::error!(
                events = batch.events.len(),
                "stopping with a batch the store would not take; none of its changes was acknowledged"
            );
            return Err(err);
        }
        std::thread::sleep(wait);
        wait = (wait * 2).min(RETRY_MAX);
    }
}

/// Has the store keep itself in shape every [`MAINTAIN_EVERY`] until the desk closes, and says
/// so when it cannot (or can again). A failing store stays failing: that is the writer's call.
pub(super) async fn keep_in_shape(
    store: Arc<dyn Store>,
    health: Arc<watch::Sender<StoreHealth>>,
    closing: CancellationToken,
) {
    let mut every = tokio::time::interval(MAINTAIN_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = closing.cancelled() => return,
        }
        let maintaining = store.clone();
        let running = tokio::task::spawn_blocking(move || maintaining.maintain());
        let result = tokio::select! {
            result = running => match result {
                Ok(result) => result,
                Err(_) => return,
            },
            _ = closing.cancelled() => {
                store.interrupt_maintenance();
                return;
            }
        };
        match result {
            Ok(()) => {
                health.send_if_modified(|h| {
                    let recovered = matches!(h, StoreHealth::Degraded(_));
                    if recovered {
                        tracing::info!("the store keeps itself in shape again");
                        *h = StoreHealth::Healthy;
                    }
                    recovered
                });
            }
            Err(err) => {
                health.send_if_modified(|h| {
                    let first = matches!(h, StoreHealth::Healthy);
                    if !first {
                        return false;
                    }
                    if matches!(err, StoreError::Damaged(_)) {
                        tracing::error!(error = %err, "the store's check after start found damage; the desk goes on, but stop it and check the store");
                    } else {
                        tracing::error!(error = %err, "the store cannot keep itself in shape; writes still succeed, but it grows: check its files and disk");
                    }
                    *h = StoreHealth::Degraded(err.to_string());
                    true
                });
            }
        }
    }
}
