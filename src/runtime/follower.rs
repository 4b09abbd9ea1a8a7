//! A desk this server follows without leading it: another server (the lease's holder) runs
//! the desk and commits to the shared store; this one serves reads and watches from the store.
//!
//! A follower has no desk in memory and no job queue: its [`DeskHandle`] reads the store, and
//! a command sent to it fails as unavailable (the API forwards commands to the leader before
//! they get here). The tail thread follows the committed log by sequence, woken by the store's
//! commit notifications or a short poll, and publishes each event on a [`LiveFeed`] exactly
//! as a leader's writer does: watches on a follower see every event once, in order, and
//! resume by sequence as anywhere else. It also keeps the key ring in step with the stored
//! keys (a key revoked on the leader ends its streams here too), and reports a store it cannot
//! read as failing, and one that leaves a read unanswered (frozen, or cut off without a word)
//! once it has for [`UNANSWERED`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::handle::{self, DeskHandle};
use super::live::LiveFeed;
use super::{RuntimeOptions, StoreHealth};
use crate::domain::triage::Triage;
use crate::keys::KeyRing;
use crate::store::{SharedStore, Store};

/// The longest a follower waits for a commit notification before it reads the log anyway
/// (engines without notifications, a notification lost with its connection).
const POLL: Duration = Duration::from_millis(250);
/// Events read from the log at a time.
const TAIL_PAGE: usize = 512;
/// How often the key ring is read again from the store.
const KEYS_EVERY: Duration = Duration::from_secs(1);
/// The longest wait between two attempts on a store that fails.
const RETRY_MAX: Duration = Duration::from_secs(2);
/// How long one read of the log may go unanswered before the store counts as failing: a
/// database that is frozen, or cut off without a word, fails no read, it just never answers.
const UNANSWERED: Duration = Duration::from_secs(3);

/// A followed desk: its handle, and the tail thread feeding it.
pub struct Follower {
    pub handle: DeskHandle,
    tail: std::thread::JoinHandle<()>,
}

/// The desk a follower follows, as first read from the store the servers share.
pub struct FollowedDesk {
    /// The store, read for pages and the log.
    pub store: Arc<dyn Store>,
    /// The same store as the servers share it: commit notifications and the stored keys.
    pub shared: Arc<dyn SharedStore>,
    /// The stored keys as first read; when the store could not be read, none but the
    /// development keys under `--dev`.
    pub keys: KeyRing,
    /// The store's head when the keys were read; `None` when the store could not be read.
    pub head: Option<u64>,
}

impl Follower {
    /// Starts following the log after the desk's `head`, or, when the store could not be read,
    /// after its head once it answers.
    pub fn start(desk: FollowedDesk, triage: Arc<Triage>, options: &RuntimeOptions) -> Follower {
        let FollowedDesk {
            store,
            shared,
            keys,
            head,
        } = desk;
        let live = Arc::new(LiveFeed::new(options.live_keeps(), head.unwrap_or(0)));
        let keys = Arc::new(RwLock::new(keys));
        let closing = CancellationToken::new();
        // Unready until the store has been read once: a store that does not answer (a
        // partition) may hold the first read for as long as its connect timeout.
        let (health, store_health) = watch::channel(match head {
            Some(_) => StoreHealth::Healthy,
            None => StoreHealth::Failing("the shared store has not been read yet".into()),
        });
        // No task takes jobs: a command sent here fails as unavailable.
        let (jobs, _) = mpsc::channel(1);
        let handle = DeskHandle::new(handle::Parts {
            jobs,
            store: store.clone(),
            live: live.clone(),
            keys: keys.clone(),
            closing: closing.clone(),
            triage,
            clock: options.clock.clone(),
            answer_grace: options.shutdown_grace / 2,
            store_health,
        });
        let reading = Arc::new(Reading::default());
        tokio::spawn(watch_reads(
            reading.clone(),
            health.clone(),
            closing.clone(),
        ));
        let tail = Tail {
            reading,
            metrics: options.metrics.clone(),
            store,
            shared,
            live,
            keys,
            health,
            closing,
            head,
        };
        let tail = std::thread::Builder::new()
            .name("desk-follower".into())
            .spawn(move || tail.run())
            .expect("spawn the follower thread");
        Follower { handle, tail }
    }

    /// Ends the follower's streams and its tail thread.
    pub async fn stop(self) {
        self.handle.closing().cancel();
        let tail = self.tail;
        let _ = tokio::task::spawn_blocking(move || tail.join()).await;
    }
}

/// When the tail's read in progress began, if one is: ms since `since`, plus one (0: none).
#[derive(Debug)]
struct Reading {
    since: Instant,
    began: AtomicU64,
}

impl Default for Reading {
    fn default() -> Self {
        Reading {
            since: Instant::now(),
            began: AtomicU64::new(0),
        }
    }
}

impl Reading {
    fn begin(&self) {
        let now = self.since.elapsed().as_millis() as u64 + 1;
        self.began.store(now, Ordering::Relaxed);
    }

    fn end(&self) {
        self.began.store(0, Ordering::Relaxed);
    }

    /// How long the read in progress has waited, if one is.
    fn waited(&self) -> Option<Duration> {
        match self.began.load(Ordering::Relaxed) {
            0 => None,
            began => Some(
                self.since
                    .elapsed()
                    .saturating_sub(Duration::from_millis(began - 1)),
            ),
        }
    }
}

/// Reports the store as failing while a read of it goes unanswered past [`UNANSWERED`]: the
/// tail thread, waiting on it, cannot. The tail reports it healthy again once a read returns.
async fn watch_reads(
    reading: Arc<Reading>,
    health: watch::Sender<StoreHealth>,
    closing: CancellationToken,
) {
    let mut every = tokio::time::interval(UNANSWERED / 8);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = closing.cancelled() => return,
        }
        let Some(waited) = reading.waited().filter(|w| *w >= UNANSWERED) else {
            continue;
        };
        if matches!(*health.borrow(), StoreHealth::Healthy) {
            let why = format!(
                "the shared store has not answered a read for {} ms",
                waited.as_millis()
            );
            tracing::error!("{why}; this server stays unready until it does");
            health.send_replace(StoreHealth::Failing(why));
        }
    }
}

struct Tail {
    reading: Arc<Reading>,
    metrics: Arc<crate::metrics::Metrics>,
    store: Arc<dyn Store>,
    shared: Arc<dyn SharedStore>,
    live: Arc<LiveFeed>,
    keys: Arc<RwLock<KeyRing>>,
    health: watch::Sender<StoreHealth>,
    closing: CancellationToken,
    /// The last event published; `None` until the store was read once.
    head: Option<u64>,
}

impl Tail {
    fn run(mut self) {
        // Keys are read at once when the start could not read them.
        let mut keys_read = match self.head {
            Some(_) => Instant::now(),
            None => Instant::now()
                .checked_sub(KEYS_EVERY)
                .unwrap_or_else(Instant::now),
        };
        let mut wait = Duration::ZERO;
        let mut full_page = false;
        while !self.closing.is_cancelled() {
            self.reading.begin();
            let step = self.step(&mut keys_read, full_page);
            self.reading.end();
            match step {
                Ok(full) => {
                    full_page = full;
                    wait = Duration::ZERO;
                    if !matches!(*self.health.borrow(), StoreHealth::Healthy) {
                        tracing::info!("the store answers again; following the log");
                        self.health.send_replace(StoreHealth::Healthy);
                    }
                }
                Err(err) => {
                    if matches!(*self.health.borrow(), StoreHealth::Healthy) {
                        tracing::error!(error = %err, "cannot read the shared store; retrying");
                    }
                    self.health
                        .send_replace(StoreHealth::Failing(err.to_string()));
                    wait = (wait * 2).clamp(Duration::from_millis(50), RETRY_MAX);
                    std::thread::sleep(wait);
                }
            }
        }
    }

    /// Waits for a commit (unless the last page was full), publishes what was committed,
    /// and reads the keys when due; true when a full page was read (more may wait).
    fn step(
        &mut self,
        keys_read: &mut Instant,
        full_page: bool,
    ) -> Result<bool, crate::store::StoreError> {
        if !full_page {
            self.shared.wait_for_commits(POLL)?;
        }
        let head = match self.head {
            Some(head) => head,
            None => {
                let head = self.store.head_seq()?;
                self.head = Some(head);
                head
            }
        };
        let events = self.store.events_after(head, TAIL_PAGE)?;
        let full = events.len() == TAIL_PAGE;
        let mut last = head;
        for event in events {
            if event.seq != last + 1 {
                tracing::warn!(
                    expected = last + 1,
                    found = event.seq,
                    "the followed log skips sequences (compacted past this follower)"
                );
            }
            last = event.seq;
            self.live.publish(event);
        }
        self.head = Some(last);
        self.metrics.log_head.set(last as i64);
        if keys_read.elapsed() >= KEYS_EVERY {
            let stored = self.shared.keys()?;
            self.keys
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .follow(stored);
            *keys_read = Instant::now();
        }
        Ok(full)
    }
}
