//! List-then-watch streams. A watcher subscribes to the live broadcast first, then replays the
//! committed log from `after_sequence`, then follows live events, skipping what it already
//! sent. A watcher that falls behind the broadcast (lagged) goes back to the store and catches
//! up, so it never silently skips an event. Its outgoing buffer is bounded: a client that stops
//! reading stalls only its own task, never the desk's memory.
//!
//! Every watch receives the same [`LiveEvent`]s. Whether a stream is about one is decided on the
//! event's own fields (its kind, ticket, reviewer); the message it sends is the event's
//! [`Form`], converted and encoded by the first watch that needs it and shared by the rest, so
//! a thousand watchers cost one encoding per event, not a thousand.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_stream::Stream;
use tokio_util::sync::{CancellationToken, DropGuard, WaitForCancellationFutureOwned};
use tonic::Status;

use super::connections::Connection;
use super::convert;
use super::lag;
use super::status;
use crate::domain::event::Event;
use crate::proto::encoded::Encoded;
use crate::proto::v1 as pb;
use crate::runtime::{DeskHandle, LiveEvent, FORMS};
use crate::store::{Retained, Store, StoreError};

/// Events read from the store per catch-up query. A watch holds one page at a time, decoded
/// (a ticket event is a few KB in memory): a watch that fell behind costs the store a query per
/// page, not memory, however far behind it is.
const REPLAY_PAGE: usize = 32;
/// Catch-up reads in flight at once, across every watch. Each runs on the blocking pool: a
/// thousand watches catching up at once would otherwise start hundreds of threads (each with
/// its stack and allocator cache) and hold as many pages, for no faster a store.
static CATCH_UP_READS: Semaphore = Semaphore::const_new(8);
/// Messages buffered per stream before the watcher waits for the client.
const STREAM_BUFFER: usize = 64;

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

/// Tells whether a stream is about an event, from the event's own fields.
pub type Keep = Box<dyn Fn(&Event) -> bool + Send + Sync>;

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
    pub ends: Box<dyn Fn(&Event) -> bool + Send + Sync>,
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
            ends: Box::new(|_| false),
            done_after_replay: None,
            stall,
        }
    }
}

/// Starts a watch: its task replays, then follows, until the client goes, the watched thing
/// ends, the server drains, or `revoked` (the caller's key) is cancelled. The stream holds
/// `slot`, one of the server's open streams, until hyper lets go of it.
///
/// A client that still takes nothing `reset_after` the task ended (ended for its stalling or
/// not) is not reading at all; HTTP/2 flow control would keep the stream's buffers for as
/// long as its connection lives, so `connection` (when known) is closed, with every other
/// stream on it.
pub fn watch<M: prost::Message + 'static>(
    handle: DeskHandle,
    spec: WatchSpec<M>,
    slot: OwnedSemaphorePermit,
    revoked: CancellationToken,
    (connection, reset_after): (Option<Connection>, Duration),
) -> WatchStream<Encoded<M>> {
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    let (end_tx, end_rx) = oneshot::channel();
    let live = handle.subscribe();
    let revoked_stream = revoked.clone();
    // Cancelled when hyper drops the stream: its buffers are gone.
    let gone = CancellationToken::new();
    let gone_guard = gone.clone().drop_guard();
    tokio::spawn(async move {
        let ended = tokio::select! {
            ended = pump(&handle, spec, live, &tx) => ended,
            _ = revoked.cancelled() => Err(status::unauthenticated(
                "the API key this stream was opened with was revoked",
            )),
        };
        drop(handle);
        let end_tx = match ended {
            // Never waits: the client reads it after what is buffered, or never.
            Err(status) => {
                let _ = end_tx.send(status);
                None
            }
            Ok(()) => Some(end_tx),
        };
        // The client's side ends once it has what was buffered: nothing more will come.
        drop(tx);
        drop(end_tx);
        let Some(connection) = connection else {
            return;
        };
        tokio::select! {
            _ = gone.cancelled() => {}
            _ = tokio::time::sleep(reset_after) => {
                tracing::info!(after_secs = reset_after.as_secs(), "a watch's client takes nothing; closing its connection to free its buffers");
                connection.kill();
            }
        }
    });
    WatchStream {
        data: rx,
        end: Some(end_rx),
        revoked: Box::pin(revoked_stream.cancelled_owned()),
        done: false,
        _slot: slot,
        _gone: gone_guard,
    }
}

/// A watch as the client sees it: the buffered events, then the error that ended it (if
/// one did). It counts among the server's open streams until hyper drops it, which is when
/// its buffers are gone.
pub struct WatchStream<T> {
    data: mpsc::Receiver<Result<T, Status>>,
    end: Option<oneshot::Receiver<Status>>,
    /// The caller's key was revoked: nothing more goes out, not even what is buffered.
    revoked: Pin<Box<WaitForCancellationFutureOwned>>,
    done: bool,
    _slot: OwnedSemaphorePermit,
    _gone: DropGuard,
}

impl<T> Stream for WatchStream<T> {
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.revoked.as_mut().poll(cx).is_ready() {
            self.done = true;
            return Poll::Ready(Some(Err(status::unauthenticated(
                "the API key this stream was opened with was revoked",
            ))));
        }
        match self.data.poll_recv(cx) {
            Poll::Ready(None) => {}
            other => return other,
        }
        let Some(end) = self.end.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(end).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                self.done = true;
                Poll::Ready(result.ok().map(Err))
            }
        }
    }
}

/// Whether retention took events the watcher still needs. The whole log is contiguous after
/// its compacted prefix, so a gap before the first event read shows it; a ticket's events are
/// not, so a ticket older than the compaction horizon watched from before the oldest retained
/// sequence does.
fn compacted_away(source: &Source, from: u64, page: &[Event], retained: &Retained) -> bool {
    if from + 1 >= retained.oldest_seq {
        return false;
    }
    match source {
        // From 0 means "everything still kept": nothing was asked for that is gone.
        Source::All => from != 0 && page.first().is_none_or(|e| e.seq > from + 1),
        Source::Ticket { created_ms, .. } => retained
            .compacted_before_ms
            .is_some_and(|horizon| *created_ms < horizon),
    }
}

enum Flow {
    Continue,
    Done,
}

/// The messages a watch has ready for its client.
type Outbox<M> = mpsc::Sender<Result<Encoded<M>, Status>>;

async fn deliver<M: prost::Message>(
    handle: &DeskHandle,
    spec: &WatchSpec<M>,
    live: &LiveEvent,
    last: &mut u64,
    tx: &Outbox<M>,
) -> Result<Flow, Status> {
    let event = &live.event;
    if event.seq <= *last {
        return Ok(Flow::Continue);
    }
    *last = event.seq;
    let message = (spec.keep)(event)
        .then(|| spec.form.message(live))
        .flatten();
    if let Some(message) = message {
        tokio::select! {
            sent = tx.send(Ok(message)) => if sent.is_err() { return Ok(Flow::Done) },
            _ = handle.closing().cancelled() => return Err(status::unavailable("the server is shutting down; resume from the last sequence you received")),
            // The buffer stayed full: the client stopped reading. It is dropped rather than
            // held for ever; what it has not read is in the store.
            _ = tokio::time::sleep(spec.stall) => {
                let resume = event.seq - 1;
                tracing::info!(resume_after = resume, "a watch's client stopped reading; its stream ends, resumable");
                return Err(status::stalled(resume, spec.stall));
            }
        }
    }
    Ok(if (spec.ends)(event) {
        Flow::Done
    } else {
        Flow::Continue
    })
}

async fn replay<M: prost::Message>(
    handle: &DeskHandle,
    spec: &WatchSpec<M>,
    last: &mut u64,
    tx: &Outbox<M>,
) -> Result<Flow, Status> {
    loop {
        if tx.is_closed() {
            // The client went away: stop reading the store for it.
            return Ok(Flow::Done);
        }
        let source = spec.source.clone();
        let from = *last;
        let turn = CATCH_UP_READS
            .acquire()
            .await
            .expect("the catch-up semaphore is never closed");
        let (page, retained) = handle
            .read(move |store| {
                let page = match &source {
                    Source::All => store.events_after(from, REPLAY_PAGE)?,
                    Source::Ticket { id, .. } => {
                        store.ticket_events_after(id, from, REPLAY_PAGE)?
                    }
                };
                Ok((page, store.retained()?))
            })
            .await
            .map_err(status::desk)?;
        // Held for the read only: delivering may wait on a slow client.
        drop(turn);
        if compacted_away(&spec.source, from, &page, &retained) {
            return Err(status::out_of_range(format!(
                "events after sequence {from} are no longer kept: the log was compacted, and \
                 the oldest sequence still available is {oldest}; list again, or watch with \
                 after_sequence {resume}",
                oldest = retained.oldest_seq,
                resume = retained.oldest_seq - 1
            )));
        }
        let full = page.len() == REPLAY_PAGE;
        for event in page {
            // Read back for this watch alone: encoded for it alone.
            let event = LiveEvent::new(event);
            if let Flow::Done = deliver(handle, spec, &event, last, tx).await? {
                return Ok(Flow::Done);
            }
        }
        if !full {
            return Ok(Flow::Continue);
        }
    }
}

async fn pump<M: prost::Message>(
    handle: &DeskHandle,
    mut spec: WatchSpec<M>,
    mut live: broadcast::Receiver<Arc<LiveEvent>>,
    tx: &Outbox<M>,
) -> Result<(), Status> {
    let mut last = spec.after;
    // A resume point past the log's end was never handed out by this desk: its store was
    // replaced or wiped. Waiting would look like a quiet desk; say so instead.
    let head = handle.read(|s| s.head_seq()).await.map_err(status::desk)?;
    if last > head {
        return Err(status::out_of_range(format!(
            "after_sequence {last} is beyond the last event of this desk ({head}); its store \
             may have been replaced: list again and watch from the list's sequence"
        )));
    }
    if let Flow::Done = replay(handle, &spec, &mut last, tx).await? {
        return Ok(());
    }
    if let Some(check) = spec.done_after_replay.take() {
        let done = handle.read(move |store| check(store)).await;
        let done = done.map_err(status::desk)?;
        if done {
            // Whatever ended it was committed before this read, so the replay has it, unless
            // the watch started past it; either way a last pass delivers what is left.
            replay(handle, &spec, &mut last, tx).await?;
            return Ok(());
        }
    }
    loop {
        let received = tokio::select! {
            r = live.recv() => r,
            _ = handle.closing().cancelled() => {
                return Err(status::unavailable("the server is shutting down; resume from the last sequence you received"));
            }
            _ = tx.closed() => return Ok(()),
        };
        match received {
            Ok(event) => {
                if let Flow::Done = deliver(handle, &spec, &event, &mut last, tx).await? {
                    return Ok(());
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                // Fell behind the live feed: the store has every committed event.
                lag::fell_behind(missed, last);
                if let Flow::Done = replay(handle, &spec, &mut last, tx).await? {
                    return Ok(());
                }
            }
            Err(broadcast::error::RecvError::Closed) => {
                return Err(status::unavailable(
                    "the desk stopped; resume from the last sequence you received",
                ));
            }
        }
    }
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
