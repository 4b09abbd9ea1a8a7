//! The desk runtime: the one owner of the desk's state.
//!
//! Callers send jobs (closures over [`Core`]) through a bounded channel. One task applies them
//! in batches, fires due timers, and hands each batch's effects to the writer thread, which
//! commits them in one transaction (group commit) and only then publishes the events and sends
//! the replies. So nobody ever hears about a change that is not durable, and no lock is held
//! across an await: the state has exactly one owner.

#[cfg(test)]
mod properties;
mod writer;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::auth::KeyRing;
use crate::clock::now_ms;
use crate::domain::desk::{Actor, AttachSpec, Desk, Dispatch, Output, RemoteMessage, Settings};
use crate::domain::error::DomainError;
use crate::domain::event::{Event, EventBody};
use crate::domain::knowledge::KnowledgeBase;
use crate::domain::mesh::Agent;
use crate::domain::ticket::Ticket;
use crate::store::{CommitBatch, KeyChange, Store};

/// Jobs waiting for the runtime; past this, calls are shed with RESOURCE_EXHAUSTED.
const JOB_QUEUE: usize = 8192;
/// Most jobs applied (and committed) together.
const MAX_BATCH: usize = 1024;
/// How soon an idle desk compacts again while old events are still waiting.
const COMPACTION_CATCH_UP: Duration = Duration::from_millis(50);
/// How often the keys' last-use times are written (and always on stop).
const KEY_USE_FLUSH: Duration = Duration::from_secs(10);
/// Idempotency keys remembered in memory (older ones are found in the store).
const IDEMPOTENCY_MEMORY: usize = 100_000;

/// Why the runtime could not answer.
#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("the desk is overloaded; retry with backoff")]
    Overloaded,
    #[error("the desk is shutting down or could not persist the change")]
    Unavailable,
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

type Reply = Box<dyn FnOnce() + Send>;
type Job = Box<dyn FnOnce(&mut Core, i64) -> Option<Reply> + Send>;

/// What an attached remote agent's stream receives from the desk.
#[derive(Debug)]
pub enum AgentFeed {
    /// An assignment or a revocation.
    Message(RemoteMessage),
    /// The desk ended the stream: another Attach took the agent over, or it was deleted.
    Ended(String),
}

/// Messages buffered for one agent stream beyond its capacity: an agent holds at most
/// `capacity` assignments, so a stream that fills this is not reading; its assignments then
/// reach their deadlines and move on.
const AGENT_FEED_SLACK: usize = 64;

/// The open Attach stream of a remote agent.
struct AgentStream {
    stream_id: u64,
    feed: mpsc::Sender<AgentFeed>,
}

/// What the runtime owns: the desk plus what only the runtime may touch.
pub struct Core {
    pub desk: Desk,
    pub keys: Arc<RwLock<KeyRing>>,
    waiters: HashMap<String, Vec<oneshot::Sender<Ticket>>>,
    idempotency: HashMap<(String, String), String>,
    idempotency_order: VecDeque<(String, String)>,
    key_changes: Vec<KeyChange>,
    settings_change: Option<(Settings, String)>,
    mark_seeded: bool,
    agent_streams: HashMap<String, AgentStream>,
    /// Stream id -> the agent it feeds.
    stream_agents: HashMap<u64, String>,
    /// Set when the next commit should compact the event log.
    compact_before_ms: Option<i64>,
}

impl Core {
    /// Attaches a remote agent's process and opens its feed as stream `stream_id` (from
    /// [`DeskHandle::new_stream_id`]); a feed the agent already had ends ("taken over").
    /// Returns the agent and the feed to forward.
    pub fn attach(
        &mut self,
        spec: AttachSpec,
        actor: &Actor,
        stream_id: u64,
        now: i64,
    ) -> Result<(Agent, mpsc::Receiver<AgentFeed>), DomainError> {
        let agent = self.desk.attach_remote(spec, actor, now)?;
        let (feed, receiver) = mpsc::channel(agent.capacity as usize + AGENT_FEED_SLACK);
        self.stream_agents.insert(stream_id, agent.id.clone());
        let previous = self
            .agent_streams
            .insert(agent.id.clone(), AgentStream { stream_id, feed });
        if let Some(previous) = previous {
            self.stream_agents.remove(&previous.stream_id);
            let _ = previous.feed.try_send(AgentFeed::Ended(format!(
                "agent {} was attached again by a newer stream; this one is closed",
                agent.name
            )));
        }
        Ok((agent, receiver))
    }

    /// Stream `stream_id` closed: its agent goes offline. A stream that was taken over, or
    /// whose attach never happened, changes nothing.
    pub fn detach(&mut self, stream_id: u64, now: i64) {
        let Some(agent_id) = self.stream_agents.remove(&stream_id) else {
            return;
        };
        if self
            .agent_streams
            .get(&agent_id)
            .is_some_and(|s| s.stream_id == stream_id)
        {
            self.agent_streams.remove(&agent_id);
            self.desk.detach_remote(&agent_id, now);
        }
    }

    /// Calls `waiter` with the ticket once it is settled (answered, in review or closed),
    /// after the commit that settled it.
    pub fn wait_for(&mut self, ticket_id: &str, waiter: oneshot::Sender<Ticket>) {
        self.waiters
            .entry(ticket_id.to_string())
            .or_default()
            .push(waiter);
    }

    pub fn remember_idempotency(&mut self, client_id: &str, key: &str, ticket_id: &str) {
        let k = (client_id.to_string(), key.to_string());
        if self
            .idempotency
            .insert(k.clone(), ticket_id.to_string())
            .is_none()
        {
            self.idempotency_order.push_back(k);
        }
        while self.idempotency_order.len() > IDEMPOTENCY_MEMORY {
            if let Some(old) = self.idempotency_order.pop_front() {
                self.idempotency.remove(&old);
            }
        }
    }

    pub fn idempotent_ticket(&self, client_id: &str, key: &str) -> Option<&String> {
        self.idempotency
            .get(&(client_id.to_string(), key.to_string()))
    }

    pub fn record_key_change(&mut self, change: KeyChange) {
        self.key_changes.push(change);
    }

    pub fn record_settings(&mut self, settings: Settings, changed_by: &str) {
        self.settings_change = Some((settings, changed_by.to_string()));
    }

    pub fn mark_seeded(&mut self) {
        self.mark_seeded = true;
    }
}

/// A cheap, cloneable handle to the running desk.
#[derive(Clone)]
pub struct DeskHandle {
    jobs: mpsc::Sender<Job>,
    pub store: Arc<dyn Store>,
    pub events: broadcast::Sender<Arc<Event>>,
    pub keys: Arc<RwLock<KeyRing>>,
    /// Cancelled when the server starts shutting down: streams and waiting calls end.
    pub closing: CancellationToken,
    stream_ids: Arc<std::sync::atomic::AtomicU64>,
}

impl DeskHandle {
    /// Runs `f` on the desk; the result comes back after the batch it was in is committed.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Core, i64) -> Result<T, DomainError> + Send + 'static,
    ) -> Result<T, DeskError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |core, now| {
            let result = f(core, now);
            Some(Box::new(move || {
                let _ = tx.send(result);
            }))
        });
        self.submit(job)?;
        match rx.await {
            Ok(result) => Ok(result?),
            Err(_) => Err(DeskError::Unavailable),
        }
    }

    /// Like [`DeskHandle::run`], for jobs that answer later themselves (e.g. a waiter).
    pub fn submit_raw(
        &self,
        f: impl FnOnce(&mut Core, i64) + Send + 'static,
    ) -> Result<(), DeskError> {
        self.submit(Box::new(move |core, now| {
            f(core, now);
            None
        }))
    }

    fn submit(&self, job: Job) -> Result<(), DeskError> {
        self.jobs.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => DeskError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => DeskError::Unavailable,
        })
    }

    /// A fresh id for an agent stream, taken before the attach so that a call cancelled at
    /// any point still detaches what it attached.
    pub fn new_stream_id(&self) -> u64 {
        self.stream_ids
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1
    }

    /// Tells the desk that an agent's stream closed. Called from a drop, so it never fails
    /// and never waits: the job is queued by a task, behind any load (it cannot be shed), and
    /// after the attach job of the same stream, since jobs run in order.
    pub fn detach(&self, stream_id: u64) {
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

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }
}

/// The running desk: its handle and the means to stop it.
pub struct Runtime {
    pub handle: DeskHandle,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), tokio::task::JoinError>>,
    writer: std::thread::JoinHandle<Result<(), crate::store::StoreError>>,
}

/// How the runtime keeps its event log.
#[derive(Clone, Debug)]
pub struct RuntimeOptions {
    /// Events kept in memory for live subscribers; further behind, they read the store.
    pub live_event_buffer: usize,
    /// How long events are kept in the store; `None`: for ever.
    pub event_retention: Option<Duration>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            live_event_buffer: 8192,
            event_retention: None,
        }
    }
}

impl Runtime {
    /// Starts the runtime task and the writer thread around a restored desk.
    pub fn start(
        desk: Desk,
        keys: KeyRing,
        store: Arc<dyn Store>,
        kb: Arc<KnowledgeBase>,
        options: RuntimeOptions,
    ) -> Runtime {
        let (jobs_tx, jobs_rx) = mpsc::channel(JOB_QUEUE);
        let (events_tx, _) = broadcast::channel(options.live_event_buffer.max(1));
        let keys = Arc::new(RwLock::new(keys));
        let closing = CancellationToken::new();
        let stop = CancellationToken::new();
        let compaction_backlog = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (writer_tx, writer) = writer::spawn(
            store.clone(),
            events_tx.clone(),
            closing.clone(),
            compaction_backlog.clone(),
        );
        let handle = DeskHandle {
            jobs: jobs_tx.clone(),
            store,
            events: events_tx,
            keys: keys.clone(),
            closing: closing.clone(),
            stream_ids: Arc::default(),
        };
        let core = Core {
            desk,
            keys,
            waiters: HashMap::new(),
            idempotency: HashMap::new(),
            idempotency_order: VecDeque::new(),
            key_changes: Vec::new(),
            settings_change: None,
            mark_seeded: false,
            agent_streams: HashMap::new(),
            stream_agents: HashMap::new(),
            compact_before_ms: None,
        };
        let run = tokio::spawn(run_loop(
            core,
            Channels {
                jobs: jobs_rx,
                jobs_tx,
                writer: writer_tx,
            },
            kb,
            Retention {
                keep: options.event_retention,
                backlog: compaction_backlog,
            },
            stop.clone(),
        ));
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
            task,
            writer,
        }
    }

    /// Applies what is queued, commits it, and stops. Call after the server stopped taking calls.
    pub async fn shutdown(self) -> Result<(), StopError> {
        self.handle.closing.cancel();
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
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Crashed(String),
}

/// The loop's ends of its channels.
struct Channels {
    jobs: mpsc::Receiver<Job>,
    jobs_tx: mpsc::Sender<Job>,
    writer: mpsc::Sender<writer::Batch>,
}

/// How long events are kept, and the writer's word that old ones are still waiting.
struct Retention {
    keep: Option<Duration>,
    backlog: Arc<std::sync::atomic::AtomicBool>,
}

async fn run_loop(
    mut core: Core,
    channels: Channels,
    kb: Arc<KnowledgeBase>,
    retention: Retention,
    stop: CancellationToken,
) {
    let Retention {
        keep: retention,
        backlog: compaction_backlog,
    } = retention;
    let Channels {
        mut jobs,
        jobs_tx,
        writer,
    } = channels;
    let weak_jobs = jobs_tx.downgrade();
    drop(jobs_tx);
    // Compaction runs a few times per retention window, at most every minute.
    let compact_every =
        retention.map(|r| (r / 4).clamp(Duration::from_millis(250), Duration::from_secs(60)));
    let housekeeping_every = compact_every.map_or(KEY_USE_FLUSH, |c| c.min(KEY_USE_FLUSH));
    let mut key_flush = tokio::time::interval(housekeeping_every);
    let mut last_key_flush = Instant::now();
    let mut last_compaction = Instant::now();
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    // The first pass commits what restore produced (re-dispatched work, handed-on tickets).
    let mut first = true;
    loop {
        let mut stopping = false;
        if !first {
            let deadline = core.desk.next_deadline();
            let sleep = async {
                match deadline {
                    Some(due) => {
                        let wait = (due - now_ms()).max(0) as u64;
                        tokio::time::sleep(Duration::from_millis(wait)).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = stop.cancelled() => stopping = true,
                job = jobs.recv() => match job {
                    Some(job) => batch.push(job),
                    None => stopping = true,
                },
                _ = sleep => {}
                // Wakes an idle desk; a busy one flushes below, since `biased` polls jobs first.
                _ = key_flush.tick() => {}
                // Old events still waiting: compact again soon even when nothing else happens.
                _ = tokio::time::sleep(COMPACTION_CATCH_UP), if compaction_backlog.load(std::sync::atomic::Ordering::Relaxed) => {}
            }
        }
        first = false;
        if let (Some(retention), Some(every)) = (retention, compact_every) {
            // Due, or the last compaction stopped at its cap: every batch compacts until the
            // backlog is gone, so retention keeps pace with any write rate.
            let behind = compaction_backlog.load(std::sync::atomic::Ordering::Relaxed);
            if behind || last_compaction.elapsed() >= every {
                last_compaction = Instant::now();
                core.compact_before_ms = Some(now_ms() - retention.as_millis() as i64);
            }
        }
        if stopping || last_key_flush.elapsed() >= KEY_USE_FLUSH {
            last_key_flush = Instant::now();
            let used = core.keys.read().expect("key ring poisoned").take_used();
            core.key_changes.extend(
                used.into_iter()
                    .map(|(key_id, time_ms)| KeyChange::Used { key_id, time_ms }),
            );
        }
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let now = now_ms();
        let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
        for job in batch.drain(..) {
            if let Some(reply) = job(&mut core, now) {
                replies.push(reply);
            }
        }
        core.desk.fire_timers(now);
        let mut output = answer_prepared(&mut core.desk, now);
        collect_waiters(&mut core, &output.events, &mut replies);
        feed_agents(&mut core, &mut output, &mut replies);
        let commit = commit_batch(&mut core, output.events);
        if !commit.is_empty() || !replies.is_empty() {
            let sent = writer.send(writer::Batch { commit, replies }).await;
            if sent.is_err() {
                tracing::error!("the store writer stopped; the desk stops taking work");
                break;
            }
        }
        if !stopping {
            if let Some(jobs_tx) = weak_jobs.upgrade() {
                for dispatch in output.dispatches {
                    spawn_builtin(dispatch, kb.clone(), jobs_tx.clone());
                }
            }
        }
        if stopping {
            break;
        }
    }
}

/// Drains the desk's output, first applying every built-in answer that was scored before its
/// ticket arrived, and the answers of the tiers it escalates to, which are the same: a ticket
/// that built-in agents settle settles in the batch that created it. What is left to score
/// goes out as dispatches.
fn answer_prepared(desk: &mut Desk, now: i64) -> Output {
    let mut output = desk.take_output();
    let mut later = Vec::new();
    loop {
        let mut answered = false;
        for dispatch in std::mem::take(&mut output.dispatches) {
            match &dispatch.prepared {
                Some(prepared) => {
                    // A stale assignment (handed on meanwhile) is not an error.
                    let _ = desk.builtin_answered(
                        &dispatch.assignment_id,
                        prepared.answer.clone(),
                        now,
                    );
                    answered = true;
                }
                None => later.push(dispatch),
            }
        }
        if !answered {
            break;
        }
        let more = desk.take_output();
        output.events.extend(more.events);
        // An escalation may land on a remote agent of the next tier: its assignment goes out
        // with this batch too.
        output.remote.extend(more.remote);
        output.dispatches = more.dispatches;
    }
    output.dispatches = later;
    output
}

/// Routes the batch's messages for remote agents to their streams, after the commit (they are
/// replies too), and ends the stream of a deleted agent. A full feed drops the message: the
/// assignment's deadline hands the ticket on.
fn feed_agents(core: &mut Core, output: &mut Output, replies: &mut Vec<Reply>) {
    for message in std::mem::take(&mut output.remote) {
        if let Some(stream) = core.agent_streams.get(message.agent_id()) {
            let feed = stream.feed.clone();
            replies.push(Box::new(move || {
                let _ = feed.try_send(AgentFeed::Message(message));
            }));
        }
    }
    for event in &output.events {
        if let EventBody::Agent {
            agent,
            deleted: true,
            ..
        } = &event.body
        {
            if let Some(stream) = core.agent_streams.remove(&agent.id) {
                let reason = format!("agent {} was deleted", agent.name);
                replies.push(Box::new(move || {
                    let _ = stream.feed.try_send(AgentFeed::Ended(reason));
                }));
            }
        }
    }
}

/// Moves the waiters of tickets that settled in this batch into its replies.
fn collect_waiters(core: &mut Core, events: &[Event], replies: &mut Vec<Reply>) {
    if core.waiters.is_empty() {
        return;
    }
    let mut settled: HashMap<&str, &Ticket> = HashMap::new();
    for event in events {
        if let EventBody::Ticket { ticket, .. } = &event.body {
            if ticket.status.is_settled() {
                settled.insert(&ticket.id, ticket);
            } else {
                settled.remove(ticket.id.as_str());
            }
        }
    }
    for (id, ticket) in settled {
        if let Some(waiters) = core.waiters.remove(id) {
            let ticket = ticket.clone();
            replies.push(Box::new(move || {
                for w in waiters {
                    let _ = w.send(ticket.clone());
                }
            }));
        }
    }
}

/// Builds the commit: the events, plus current snapshots of every agent and reviewer the
/// events touched (their counters live outside the events).
fn commit_batch(core: &mut Core, events: Vec<Event>) -> CommitBatch {
    // Upserts and deletes stay disjoint, the last event of an id deciding which it gets, so
    // deleting and re-creating an id in one batch keeps it.
    let mut agents = BTreeSet::new();
    let mut reviewers = BTreeSet::new();
    let mut deleted_agents = BTreeSet::new();
    let mut deleted_reviewers = BTreeSet::new();
    for event in &events {
        match &event.body {
            EventBody::Ticket { ticket, .. } => {
                if !ticket.agent_id.is_empty() {
                    agents.insert(ticket.agent_id.clone());
                }
                if let Some(prev) = ticket.path.last() {
                    agents.insert(prev.agent_id.clone());
                }
            }
            EventBody::Escalation {
                escalation,
                previous_reviewer,
                ..
            } => {
                reviewers.extend(escalation.reviewer_id.clone());
                reviewers.extend(previous_reviewer.clone());
            }
            EventBody::Agent { agent, deleted, .. } => {
                if *deleted {
                    agents.remove(&agent.id);
                    deleted_agents.insert(agent.id.clone());
                } else {
                    deleted_agents.remove(&agent.id);
                    agents.insert(agent.id.clone());
                }
            }
            EventBody::Reviewer {
                reviewer, deleted, ..
            } => {
                if *deleted {
                    reviewers.remove(&reviewer.id);
                    deleted_reviewers.insert(reviewer.id.clone());
                } else {
                    deleted_reviewers.remove(&reviewer.id);
                    reviewers.insert(reviewer.id.clone());
                }
            }
        }
    }
    let agents = agents
        .iter()
        .filter_map(|id| core.desk.mesh().agent(id).cloned())
        .collect();
    let reviewers = reviewers
        .iter()
        .filter_map(|id| core.desk.reviews().reviewer(id).cloned())
        .collect();
    CommitBatch {
        events,
        agents,
        deleted_agents: deleted_agents.into_iter().collect(),
        reviewers,
        deleted_reviewers: deleted_reviewers.into_iter().collect(),
        keys: std::mem::take(&mut core.key_changes),
        settings: core.settings_change.take(),
        mark_seeded: std::mem::take(&mut core.mark_seeded),
        compact_before_ms: core.compact_before_ms.take(),
    }
}

/// Scores the inquiry against the knowledge base off the runtime task, then reports back.
fn spawn_builtin(dispatch: Dispatch, kb: Arc<KnowledgeBase>, jobs: mpsc::Sender<Job>) {
    tokio::spawn(async move {
        let inquiry = dispatch.inquiry.clone();
        let topic = dispatch.topic.clone();
        let answer = tokio::task::spawn_blocking(move || kb.best_answer(&inquiry, &topic))
            .await
            .unwrap_or(None);
        let job: Job = Box::new(move |core, now| {
            // A stale assignment (handed on meanwhile) is not an error: the ticket moved on.
            let _ = core
                .desk
                .builtin_answered(&dispatch.assignment_id, answer, now);
            None
        });
        // Waits for room rather than shedding: this work was already accepted.
        let _ = jobs.send(job).await;
    });
}
