//! The runtime task's loop: wait for a job, a due timer or housekeeping; take every job
//! queued (up to a batch); apply them to the desk; fire due timers; apply built-in answers
//! scored beforehand; hand the batch's events, snapshots and replies to the writer; dispatch
//! what is left to score. One batch, one commit.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::core::Core;
use super::handle::{Job, Reply};
use super::{writer, AgentFeed};
use crate::clock::Clock;
use crate::domain::desk::{Desk, Dispatch, Output};
use crate::domain::event::{Event, EventBody};
use crate::domain::ticket::Ticket;
use crate::domain::triage::Triage;
use crate::store::CommitBatch;

/// Jobs waiting for the runtime; past this, calls are shed with RESOURCE_EXHAUSTED.
pub(super) const JOB_QUEUE: usize = 8192;
/// Most jobs applied (and committed) together.
const MAX_BATCH: usize = 1024;
/// How soon an idle desk compacts again while old events are still waiting.
const COMPACTION_CATCH_UP: Duration = Duration::from_millis(50);
/// How often the keys' last-use times are written (and always on stop).
const KEY_USE_FLUSH: Duration = Duration::from_secs(10);

/// The loop's ends of its channels.
pub(super) struct Channels {
    pub(super) jobs: mpsc::Receiver<Job>,
    pub(super) jobs_tx: mpsc::Sender<Job>,
    pub(super) writer: mpsc::Sender<writer::Batch>,
}

/// How long events are kept, and the writer's word that old ones are still waiting.
pub(super) struct Retention {
    pub(super) keep: Option<Duration>,
    pub(super) backlog: Arc<AtomicBool>,
}

pub(super) async fn run_loop(
    mut core: Core,
    channels: Channels,
    triage: Arc<Triage>,
    clock: Arc<dyn Clock>,
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
                    Some(due) => clock.sleep_until(due).await,
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
                _ = tokio::time::sleep(COMPACTION_CATCH_UP), if compaction_backlog.load(Ordering::Relaxed) => {}
            }
        }
        first = false;
        if let (Some(retention), Some(every)) = (retention, compact_every) {
            // Due, or the last compaction stopped at its cap: every batch compacts until the
            // backlog is gone, so retention keeps pace with any write rate.
            let behind = compaction_backlog.load(Ordering::Relaxed);
            if behind || last_compaction.elapsed() >= every {
                last_compaction = Instant::now();
                core.compact_before_ms = Some(clock.now_ms() - retention.as_millis() as i64);
            }
        }
        if stopping || last_key_flush.elapsed() >= KEY_USE_FLUSH {
            last_key_flush = Instant::now();
            let used = core.keys.read().expect("key ring poisoned").take_used();
            core.record_key_use(used);
        }
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let now = clock.now_ms();
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
            let traced = std::mem::take(&mut core.traced);
            let sent = writer
                .send(writer::Batch {
                    commit,
                    replies,
                    traced,
                })
                .await;
            if sent.is_err() {
                tracing::error!("the store writer stopped; the desk stops taking work");
                break;
            }
        }
        if !stopping {
            if let Some(jobs_tx) = weak_jobs.upgrade() {
                for dispatch in output.dispatches {
                    spawn_builtin(dispatch, triage.clone(), jobs_tx.clone());
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
    // Totals change only with tickets and reviews; any event is a cheap enough trigger.
    let stats = (!events.is_empty()).then(|| core.desk.stats().clone());
    CommitBatch {
        events,
        agents,
        deleted_agents: deleted_agents.into_iter().collect(),
        reviewers,
        deleted_reviewers: deleted_reviewers.into_iter().collect(),
        keys: core.take_key_changes(),
        settings: core.settings_change.take(),
        mark_seeded: std::mem::take(&mut core.mark_seeded),
        compact_before_ms: core.compact_before_ms.take(),
        stats,
    }
}

/// Scores the inquiry against the knowledge base off the runtime task, then reports back.
fn spawn_builtin(dispatch: Dispatch, triage: Arc<Triage>, jobs: mpsc::Sender<Job>) {
    tokio::spawn(async move {
        let inquiry = dispatch.inquiry.clone();
        let topic = dispatch.topic.clone();
        let answer = tokio::task::spawn_blocking(move || triage.score(&inquiry, &topic))
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
