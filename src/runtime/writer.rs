//! The writer thread: commits each batch in one transaction, then publishes its events and
//! sends its replies, in batch order. A failed commit stops the desk: the state in memory is
//! ahead of the disk, so the only safe move is to stop and rebuild from the store on restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::domain::event::Event;
use crate::store::{CommitBatch, Store, StoreError};

/// Batches committed ahead of the runtime: enough to overlap one commit with the next batch.
const PIPELINE: usize = 2;

pub(super) struct Batch {
    pub commit: CommitBatch,
    pub replies: Vec<Box<dyn FnOnce() + Send>>,
}

pub(super) fn spawn(
    store: Arc<dyn Store>,
    events: broadcast::Sender<Arc<Event>>,
    closing: CancellationToken,
    compaction_backlog: Arc<AtomicBool>,
) -> (
    mpsc::Sender<Batch>,
    std::thread::JoinHandle<Result<(), StoreError>>,
) {
    let (tx, mut rx) = mpsc::channel::<Batch>(PIPELINE);
    let thread = std::thread::Builder::new()
        .name("desk-writer".into())
        .spawn(move || {
            while let Some(batch) = rx.blocking_recv() {
                match store.commit(&batch.commit) {
                    Ok(report) => {
                        if batch.commit.compact_before_ms.is_some() {
                            compaction_backlog.store(report.compaction_backlog, Ordering::Relaxed);
                        }
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "commit failed; stopping the desk to protect the data");
                        closing.cancel();
                        // Dropping the replies tells every caller the change did not happen.
                        return Err(err);
                    }
                }
                for event in batch.commit.events {
                    // No subscribers is fine: the event is in the store.
                    let _ = events.send(Arc::new(event));
                }
                for reply in batch.replies {
                    reply();
                }
            }
            Ok(())
        })
        .expect("spawn the writer thread");
    (tx, thread)
}
