//! List-then-watch streams. A watcher subscribes to the live broadcast first, then replays the
//! committed log from `after_sequence`, then follows live events, skipping what it already
//! sent. A watcher that falls behind the broadcast (lagged) goes back to the store and catches
//! up, so it never silently skips an event. It works only when the client's connection asks
//! for its next message: a client that stops reading costs the desk nothing but its place in
//! the live feed, and is ended, resumable, once it has left a message unasked for too long.
//!
//! Every watch receives the same [`LiveEvent`]s. Whether a stream is about one is decided on the
//! event's own fields (its kind, ticket, reviewer); the message it sends is the event's
//! [`Form`], converted and encoded by the first watch that needs it and shared by the rest, so
//! a thousand watchers cost one encoding per event, not a thousand.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use tokio::sync::{broadcast, Notify, Semaphore, SemaphorePermit};

use page::{Page, PAGES_HELD, PAGE_BYTES, REPLAY_PAGE};
use tokio_stream::Stream;
use tokio_util::sync::{CancellationToken, DropGuard};
use tonic::Status;

use super::connections::Connection;
use super::convert;
use super::lag;
use super::status;
use crate::domain::event::Event;
use crate::proto::encoded::Encoded;
use crate::proto::v1 as pb;
use crate::runtime::{DeskHandle, LiveEvent, Published, FORMS};
use crate::store::{Retained, Store, StoreError};

mod page;

/// Store reads in flight at once, across every watch (catch-up pages, resume-point and
/// done checks). Each runs on the blocking pool: ten thousand watches opening or catching up
/// at once would otherwise start hundreds of threads (each with its stack, allocator cache
/// and store connection) and hold as many pages, for no faster a store.
static WATCH_READS: Semaphore = Semaphore::const_new(8);

/// What a stream replays from the store: the whole log or one ticket's events.
#[derive(Clone)]
pub enum Source {
    All,
    /// A ticket's events; created at `created_ms`, which tells whether retention may have
    /// taken some of them.
    Ticket {
        id: String,
        created_ms: i64,
    },
}

/// A stream's message type: how an event becomes it, and which of the [`LiveEvent`]'s slots
/// keeps it encoded for every watch that sends it.
pub struct Form<M> {
    slot: usize,
    convert: fn(&Event) -> Option<M>,
}

/// `WatchEvents`: every event is a `DeskEvent`.
pub const DESK_EVENT: Form<pb::DeskEvent> = Form {
    slot: 0,
    convert: |e| Some(convert::desk_event(e)),
};
/// `WatchTicket`: ticket events.
pub const TICKET_EVENT: Form<pb::TicketEvent> = Form {
    slot: 1,
    convert: convert::ticket_event,
};
/// `WatchEscalations`: escalation events.
pub const ESCALATION_EVENT: Form<pb::EscalationEvent> = Form {
    slot: 2,
    convert: convert::escalation_event,
};
// Each form has its own slot below FORMS: two forms sharing one would send one's bytes as the
// other's message.
const _: () = {
    let slots = [DESK_EVENT.slot, TICKET_EVENT.slot, ESCALATION_EVENT.slot];
    assert!(slots[0] < FORMS && slots[1] < FORMS && slots[2] < FORMS);
    assert!(slots[0] != slots[1] && slots[0] != slots[2] && slots[1] != slots[2]);
};

impl<M: prost::Message> Form<M> {
    /// `event` as this form's message, encoded once for every watch that sends it.
    fn message(&self, event: &LiveEvent) -> Option<Encoded<M>> {
        event
            .form(self.slot, |e| {
                (self.convert)(e).map(|m| m.encode_to_vec().into())
            })
            .map(Encoded::from_encoded)
    }
}

/// A question about an event, answered from its own fields.
pub type EventTest = dyn Fn(&Event) -> bool + Send + Sync;

/// Tells whether a stream is about an event.
pub type Keep = Arc<EventTest>;

/// Reads the store to tell whether a watch has nothing left to wait for.
pub type DoneCheck = Box<dyn Fn(&dyn Store) -> Result<bool, StoreError> + Send + Sync>;

pub struct WatchSpec<M> {
    pub after: u64,
    pub source: Source,
    /// Whether the stream is about an event; events of no `form` are skipped as well.
    pub keep: Keep,
    /// What the stream sends each event it keeps as.
    pub form: Form<M>,
    /// True for the event after which the stream ends (a ticket's final event).
    pub ends: Arc<EventTest>,
    /// Asked after the replay (and after subscribing to live events, so nothing can slip
    /// between): true ends the stream because the watched thing can no longer change.
    pub done_after_replay: Option<DoneCheck>,
    /// How long the client may leave the stream unread before it is ended with a resumable
    /// RESOURCE_EXHAUSTED.
    pub stall: Duration,
}

impl<M> WatchSpec<M> {
    /// A watch of the whole log from `after`, for as long as the client reads: each event
    /// that `keep` keeps, sent as `form`.
    pub fn whole_log(after: u64, stall: Duration, keep: Keep, form: Form<M>) -> Self {
        WatchSpec {
            after,
            source: Source::All,
            keep,
            form,
            ends: Arc::new(|_| false),
            done_after_replay: None,
            stall,
        }
    }
}

/// Starts a watch: it replays, then follows, until the client goes, the watched thing ends,
/// the server drains, or `revoked` (the caller's key) is cancelled. The stream holds `slot`,
/// one of the server's open streams, until hyper lets go of it.
///
/// The stream does its work when hyper asks it for a message, on hyper's task: no task of its
/// own and no buffer between it and the connection. A small [`watchdog`] task waits beside
/// it for what can end a stream that is not being asked: a client that stopped reading, a
/// revoked key, shutdown. A client that still takes nothing `reset_after` the stream ended
/// (ended for its stalling or not) is not reading at all; HTTP/2 flow control would keep the
/// stream's buffers for as long as its connection lives, so `connection` (when known) is
/// closed, with every other stream on it.
pub fn watch<M: prost::Message + 'static>(
    handle: DeskHandle,
    spec: WatchSpec<M>,
    slot: super::Slot,
    revoked: CancellationToken,
    connection: Option<Connection>,
    reset_after: Duration,
) -> WatchStream<Encoded<M>> {
    let shared = Arc::new(Shared::new(spec.after));
    // Cancelled when hyper drops the stream: its buffers are gone.
    let gone = CancellationToken::new();
    let ending = Ending {
        revoked,
        closing: handle.closing().clone(),
        gone: gone.clone(),
        stall: spec.stall,
        connection,
        reset_after,
    };
    tokio::spawn(watchdog(shared.clone(), ending));
    // Subscribed before the replay reads the store: nothing committed in between is missed.
    let (live, published) = handle.subscribe();
    let after = spec.after;
    let follow = Follow {
        live,
        published,
        last: spec.after,
        handle,
        spec,
        phase: Phase::Start,
        page: Vec::new().into_iter(),
        held: None,
        read_to: after,
        more: false,
    };
    let steps = futures_util::stream::unfold(follow, |mut follow| async move {
        let step = follow.next().await?;
        Some((step, follow))
    });
    WatchStream {
        steps: Box::pin(steps),
        steps_waker: Waker::from(shared.clone()),
        shared,
        done: false,
        slot,
        _gone: gone.drop_guard(),
    }
}

/// One message a watch hands to its client.
struct Step<T> {
    /// The sequence of the event it carries.
    seq: u64,
    /// Events in the log beyond it as it was made: how far behind the desk the watch is.
    behind: u64,
    message: T,
    /// The watched thing ended with it: nothing follows.
    last: bool,
}

type Steps<T> = Pin<Box<dyn Stream<Item = Result<Step<T>, Status>> + Send>>;

/// A watch as the client sees it: the events, then the error that ended it (if one did). It
/// counts among the server's open streams until hyper drops it, which is when its buffers
/// are gone.
pub struct WatchStream<T> {
    steps: Steps<T>,
    /// Wakes the stream through [`Shared`]'s [`Wake`].
    steps_waker: Waker,
    shared: Arc<Shared>,
    done: bool,
    slot: super::Slot,
    _gone: DropGuard,
}

impl<T> Stream for WatchStream<T> {
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        this.shared.asked();
        // Registered before looking, so that an end set in between still wakes this stream.
        this.shared.waker.register(cx.waker());
        if let Some(status) = this.shared.ended() {
            // Revoked, stalled or shutting down: nothing more goes out, not even what the
            // watch could send right now.
            this.done = true;
            return Poll::Ready(Some(Err(status)));
        }
        // The steps wake the stream through `shared`, which notes that the stream has work
        // before it wakes hyper.
        let mut steps_cx = Context::from_waker(&this.steps_waker);
        match this.steps.as_mut().poll_next(&mut steps_cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(step))) => {
                this.shared.handed(step.seq);
                this.slot.behind(step.behind);
                if step.last {
                    this.done = true;
                    this.shared.finished.notify_one();
                }
                Poll::Ready(Some(Ok(step.message)))
            }
            end => {
                this.done = true;
                this.shared.finished.notify_one();
                end.map(|end| end.map(|item| item.map(|step| step.message)))
            }
        }
    }
}

/// What a watch and its watchdog share. Only the stream writes `asks` and `sent`.
struct Shared {
    /// The stream's waker, for an end the watchdog sets.
    waker: AtomicWaker,
    /// Set once, by the watchdog; taken by the stream's next poll.
    end: Mutex<Option<Status>>,
    ending: AtomicBool,
    /// Times hyper asked for a message.
    asks: AtomicU64,
    /// The stream has work (it handed a message over, was woken by the desk, or was never
    /// asked) and hyper has not asked since: the stream waits on its client, not on the desk.
    owed: AtomicBool,
    /// The sequence of the last event handed over: where a resumed watch starts.
    sent: AtomicU64,
    /// The stream ended by itself (its last message, or an error).
    finished: Notify,
}

impl Shared {
    fn new(after: u64) -> Self {
        Shared {
            waker: AtomicWaker::new(),
            end: Mutex::new(None),
            ending: AtomicBool::new(false),
            asks: AtomicU64::new(0),
            owed: AtomicBool::new(true),
            sent: AtomicU64::new(after),
            finished: Notify::new(),
        }
    }

    fn asked(&self) {
        // A single writer: a load and a store, not a read-modify-write.
        let asks = self.asks.load(Ordering::Relaxed);
        self.asks.store(asks.wrapping_add(1), Ordering::Relaxed);
        self.owed.store(false, Ordering::Relaxed);
    }

    fn handed(&self, seq: u64) {
        self.sent.store(seq, Ordering::Relaxed);
        self.owed.store(true, Ordering::Relaxed);
    }

    fn ended(&self) -> Option<Status> {
        if !self.ending.load(Ordering::Acquire) {
            return None;
        }
        self.end.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Ends the stream with `status` at its next poll, and wakes it for that poll.
    fn end(&self, status: Status) {
        *self.end.lock().unwrap_or_else(|e| e.into_inner()) = Some(status);
        self.ending.store(true, Ordering::Release);
        self.waker.wake();
    }
}

impl Wake for Shared {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.owed.store(true, Ordering::Relaxed);
        self.waker.wake();
    }
}

/// What can end a watch from outside it, and what follows its end.
struct Ending {
    revoked: CancellationToken,
    closing: CancellationToken,
    gone: CancellationToken,
    stall: Duration,
    connection: Option<Connection>,
    reset_after: Duration,
}

/// Ends the watch when its key is revoked, the server closes, or its client leaves a message
/// unasked for `stall`; then, once the stream has ended for any reason, closes the client's
/// connection if hyper still holds the stream `reset_after` later.
async fn watchdog(shared: Arc<Shared>, ending: Ending) {
    // Looked at four times per `stall`: a stall is seen within 1.25 `stall`.
    let tick = (ending.stall / 4).max(Duration::from_millis(10));
    let mut seen = (shared.asks.load(Ordering::Relaxed), Instant::now());
    loop {
        tokio::select! {
            _ = ending.gone.cancelled() => return,
            _ = shared.finished.notified() => break,
            _ = ending.revoked.cancelled() => {
                shared.end(status::unauthenticated(
                    "the API key this stream was opened with was revoked",
                ));
                break;
            }
            _ = ending.closing.cancelled() => {
                shared.end(status::unavailable(
                    "the server is shutting down; resume from the last sequence you received",
                ));
                break;
            }
            _ = tokio::time::sleep(tick) => {
                let asks = shared.asks.load(Ordering::Relaxed);
                if asks != seen.0 {
                    seen = (asks, Instant::now());
                } else if shared.owed.load(Ordering::Relaxed) && seen.1.elapsed() >= ending.stall {
                    // The client stopped reading. It is dropped rather than held for ever;
                    // what it has not read is in the store.
                    let resume = shared.sent.load(Ordering::Relaxed);
                    lag::stopped_reading(resume);
                    shared.end(status::stalled(resume, ending.stall));
                    break;
                }
            }
        }
    }
    let Some(connection) = ending.connection else {
        return;
    };
    tokio::select! {
        _ = ending.gone.cancelled() => {}
        _ = tokio::time::sleep(ending.reset_after) => {
            lag::closed_unread(ending.reset_after.as_secs());
            connection.kill();
        }
    }
}

/// Whether retention took events the watcher still needs. The whole log is contiguous after
/// its compacted prefix, so a gap before the first event read (`first_seq`) shows it; a
/// ticket's events are not, so a ticket older than the compaction horizon watched from before
/// the oldest retained sequence does.
fn compacted_away(source: &Source, from: u64, first_seq: Option<u64>, retained: &Retained) -> bool {
    if from + 1 >= retained.oldest_seq {
        return false;
    }
    match source {
        // From 0 means "everything still kept": nothing was asked for that is gone.
        Source::All => from != 0 && first_seq.is_none_or(|seq| seq > from + 1),
        Source::Ticket { created_ms, .. } => retained
            .compacted_before_ms
            .is_some_and(|horizon| *created_ms < horizon),
    }
}

/// Where a watch is in its life.
#[derive(Clone, Copy)]
enum Phase {
    /// Checks the resume point against the log.
    Start,
    /// Reads the store page by page; then goes on as said.
    Replay(Then),
    /// Follows the live feed.
    Live,
    /// Sends nothing more.
    End,
}

/// What follows a replay.
#[derive(Clone, Copy)]
enum Then {
    /// Asks [`WatchSpec::done_after_replay`], then follows live events or replays once more.
    CheckDone,
    Live,
    End,
}

/// A watch's state, advanced one message at a time as the client asks.
struct Follow<M> {
    handle: DeskHandle,
    spec: WatchSpec<M>,
    live: broadcast::Receiver<Published>,
    /// Every event after this sequence reaches `live`.
    published: u64,
    /// The last sequence sent or passed over: anything at or before it is not sent again.
    last: u64,
    phase: Phase,
    /// The catch-up page being sent: the events of the stream's that the last read found.
    page: std::vec::IntoIter<Event>,
    /// The page's weight among every watch's ([`PAGES_HELD`]), given back once it is sent.
    held: Option<SemaphorePermit<'static>>,
    /// The last sequence the page's read looked at: passed over once the page is sent.
    read_to: u64,
    /// The store may hold more events after the page.
    more: bool,
}

impl<M: prost::Message> Follow<M> {
    /// The next message, the error that ends the watch, or `None` when it has ended.
    async fn next(&mut self) -> Option<Result<Step<Encoded<M>>, Status>> {
        loop {
            let step = match self.advance().await {
                Ok(Some(step)) => step,
                Ok(None) => continue,
                Err(status) => {
                    self.phase = Phase::End;
                    return Some(Err(status));
                }
            };
            match step {
                Advance::Send(step) => return Some(Ok(step)),
                Advance::Ended => return None,
            }
        }
    }

    /// One move: an event to send, the end, or `None` when there is more to do.
    async fn advance(&mut self) -> Result<Option<Advance<M>>, Status> {
        match self.phase {
            Phase::End => Ok(Some(Advance::Ended)),
            Phase::Start => {
                self.replay(Then::CheckDone);
                if self.last == self.published {
                    // Everything after the resume point comes live: nothing to read.
                    self.more = false;
                } else if self.last > self.published {
                    self.check_resume_point().await?;
                }
                Ok(None)
            }
            Phase::Replay(then) => {
                if let Some(event) = self.page.next() {
                    if self.page.len() == 0 {
                        self.held = None;
                    }
                    // Read back for this watch alone: encoded for it alone.
                    return Ok(self.offer(&LiveEvent::new(event)));
                }
                // What the read passed over (events the stream is not about) is passed over.
                self.last = self.last.max(self.read_to);
                if self.more {
                    self.read_page().await?;
                    return Ok(None);
                }
                self.phase = match then {
                    Then::Live => Phase::Live,
                    Then::End => Phase::End,
                    Then::CheckDone => match self.spec.done_after_replay.take() {
                        None => Phase::Live,
                        Some(check) => {
                            if self.read(move |store| check(store)).await? {
                                // Whatever ended it was committed before this read, so the
                                // replay has it, unless the watch started past it; either way
                                // a last pass delivers what is left.
                                self.replay(Then::End);
                                return Ok(None);
                            }
                            Phase::Live
                        }
                    },
                };
                Ok(None)
            }
            Phase::Live => match self.live.recv().await {
                // Sent or passed over already (a replay went past it): not even looked at.
                Ok(published) if published.seq <= self.last => Ok(None),
                Ok(published) => match published.event() {
                    Some(event) => Ok(self.offer(&event)),
                    None => {
                        // Let go of by the feed to stay within its bytes: the store has it.
                        lag::fell_behind(published.seq - self.last, self.last);
                        self.replay(Then::Live);
                        Ok(None)
                    }
                },
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    // Fell behind the live feed: the store has every committed event.
                    lag::fell_behind(missed, self.last);
                    self.replay(Then::Live);
                    Ok(None)
                }
                Err(broadcast::error::RecvError::Closed) => Err(status::unavailable(
                    "the desk stopped; resume from the last sequence you received",
                )),
            },
        }
    }

    /// A resume point past the log's end was never handed out by this desk: its store was
    /// replaced or wiped. Waiting would look like a quiet desk; say so instead.
    async fn check_resume_point(&self) -> Result<(), Status> {
        let last = self.last;
        let head = self.read(|s| s.head_seq()).await?;
        if last > head {
            return Err(status::out_of_range(format!(
                "after_sequence {last} is beyond the last event of this desk ({head}); its \
                 store may have been replaced: list again and watch from the list's sequence"
            )));
        }
        Ok(())
    }

    fn replay(&mut self, then: Then) {
        self.phase = Phase::Replay(then);
        self.more = true;
    }

    /// Reads the next page after the last event sent: of what the store holds next, the
    /// events this stream sends, within [`PAGE_BYTES`] and what [`PAGES_HELD`] has left.
    async fn read_page(&mut self) -> Result<(), Status> {
        let source = self.spec.source.clone();
        let from = self.last;
        let (keep, ends) = (self.spec.keep.clone(), self.spec.ends.clone());
        // A whole page's weight if it is there to take; else one event at a time.
        let held = PAGES_HELD.try_acquire_many((PAGE_BYTES / 1024) as u32).ok();
        let budget = if held.is_some() { PAGE_BYTES } else { 0 };
        let (read, retained) = self
            .read(move |store| {
                let raw = match &source {
                    Source::All => store.events_after(from, REPLAY_PAGE)?,
                    Source::Ticket { id, .. } => {
                        store.ticket_events_after(id, from, REPLAY_PAGE)?
                    }
                };
                let retained = store.retained()?;
                Ok((Page::of(raw, from, &*keep, &*ends, budget), retained))
            })
            .await?;
        if compacted_away(&self.spec.source, from, read.first_seq, &retained) {
            return Err(status::out_of_range(format!(
                "events after sequence {from} are no longer kept: the log was compacted, and \
                 the oldest sequence still available is {oldest}; list again, or watch with \
                 after_sequence {resume}",
                oldest = retained.oldest_seq,
                resume = retained.oldest_seq - 1
            )));
        }
        self.more = read.more;
        self.read_to = read.read_to;
        // The weight taken is given back as soon as less of it is needed.
        self.held = match held {
            Some(mut permit) if read.events.len() > 1 => {
                let kib = read.bytes.div_ceil(1024).clamp(1, PAGE_BYTES / 1024) as u32;
                let _ = permit.split(permit.num_permits() - kib as usize);
                Some(permit)
            }
            _ => None,
        };
        self.page = read.events.into_iter();
        Ok(())
    }

    /// Reads the store for this watch, taking a turn among every watch's reads.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, Status> {
        let _turn = WATCH_READS
            .acquire()
            .await
            .expect("the watch-read semaphore is never closed");
        // The turn covers the read only: sending waits on the client, after it is given back.
        self.handle.read(f).await.map_err(status::desk)
    }

    /// What `live` means to this watch: a message, the end, or nothing (`None`).
    fn offer(&mut self, live: &LiveEvent) -> Option<Advance<M>> {
        let event = &live.event;
        if event.seq <= self.last {
            return None;
        }
        self.last = event.seq;
        let message = (self.spec.keep)(event)
            .then(|| self.spec.form.message(live))
            .flatten();
        let last = (self.spec.ends)(event);
        if last {
            self.phase = Phase::End;
        }
        match message {
            Some(message) => Some(Advance::Send(Step {
                seq: event.seq,
                behind: self.handle.head().saturating_sub(event.seq),
                message,
                last,
            })),
            None if last => Some(Advance::Ended),
            None => None,
        }
    }
}

/// A watch's move that the client sees.
enum Advance<M> {
    Send(Step<Encoded<M>>),
    Ended,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::{EventBody, TicketEventKind};
    use crate::store::tests_support::any_ticket;
    use proptest::prelude::*;
    use prost::Message;

    proptest! {
        /// What a client decodes from the shared bytes is what converting the event for it
        /// alone gives, and every watch sends the very same bytes.
        #[test]
        fn a_shared_encoding_is_the_message_each_watch_would_have_sent(
            ticket in any_ticket(), seq in 1u64..u64::MAX, time_ms in 0i64..4_000_000_000_000,
        ) {
            let event = Event {
                seq,
                time_ms,
                body: EventBody::Ticket { kind: TicketEventKind::Assigned, detail: "d".into(), ticket },
            };
            let live = LiveEvent::new(event.clone());
            let sent = DESK_EVENT.message(&live).unwrap();
            prop_assert_eq!(pb::DeskEvent::decode(sent.bytes().clone())?, convert::desk_event(&event));
            let again = DESK_EVENT.message(&live).unwrap();
            prop_assert_eq!(sent.bytes().as_ptr(), again.bytes().as_ptr());
            let sent = TICKET_EVENT.message(&live).unwrap();
            prop_assert_eq!(Some(pb::TicketEvent::decode(sent.bytes().clone())?), convert::ticket_event(&event));
            prop_assert!(ESCALATION_EVENT.message(&live).is_none());
            // Decoding the encoded form keeps every field, in order.
            let decoded = Encoded::<pb::TicketEvent>::decode(sent.encode_to_vec().as_slice())?;
            prop_assert_eq!(decoded, sent);
        }
    }
}
