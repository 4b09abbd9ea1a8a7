//! The gRPC face of the desk: DeskService, EscalationService, AdminService and AgentService,
//! each behind an API-key interceptor with the permission it needs, plus health and
//! reflection.
//!
//! Only this module knows protos and `tonic::Status`. Handlers are thin: validate, convert,
//! call the runtime (changes, open work) or the store (committed reads), map errors in
//! [`status`].

mod admin;
mod agent;
mod auth;
mod convert;
mod desk;
mod edge;
mod escalation;
pub mod status;
mod validate;
mod watch;

use std::sync::Arc;

use tonic::Status;

use crate::config::Limits;
use crate::domain::classify::Classifier;
use crate::domain::knowledge::KnowledgeBase;
use crate::runtime::DeskHandle;
use crate::store::{Store, StoreError};

pub use auth::ApiKeyCheck;
pub use edge::EdgeLayer;

/// The state every service handler shares.
#[derive(Clone)]
pub struct Api {
    pub desk: DeskHandle,
    pub limits: Arc<Limits>,
    pub desk_name: String,
    /// How long unary calls in flight may take to finish once shutdown starts.
    pub shutdown_grace: std::time::Duration,
    /// How long a server stream may go unread before it is closed with a resumable error.
    pub stalled_stream: std::time::Duration,
    /// The classifier and knowledge base the desk uses, so a handler can score an inquiry
    /// before it enters the desk (see [`crate::domain::knowledge::PreparedAnswer`]).
    pub classifier: Arc<Classifier>,
    pub kb: Arc<KnowledgeBase>,
    /// One permit per server stream open (watches and agent streams), across connections.
    pub open_streams: Arc<tokio::sync::Semaphore>,
}

impl Api {
    /// A slot for one more server stream, or RESOURCE_EXHAUSTED when all are taken: open
    /// streams are bounded across connections, like calls in flight.
    fn stream_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Status> {
        self.open_streams.clone().try_acquire_owned().map_err(|_| {
            status::overloaded(
                "the server has as many streams open as it allows; close one or retry later",
            )
        })
    }
}

/// Runs a store read on the blocking pool.
async fn blocking<T: Send + 'static>(
    desk: &DeskHandle,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Status> {
    let store: Arc<dyn Store> = desk.store.clone();
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|_| status::unavailable("the server is shutting down"))?
        .map_err(status::store)
}
