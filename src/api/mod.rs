//! The gRPC face of the desk: DeskService, EscalationService, AdminService and AgentService,
//! each behind an API-key interceptor with the permission it needs, plus health and
//! reflection.
//!
//! Only this module knows protos and `tonic::Status`. Handlers are thin: parse the request
//! ([`requests`]: validate and convert), call one runtime command, convert the answer back
//! ([`convert`]), map errors in [`status`].

mod admin;
mod agent;
mod auth;
mod convert;
mod desk;
mod edge;
mod escalation;
mod requests;
pub mod status;
mod validate;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{Response, Status};

use crate::config::Limits;
use crate::runtime::DeskHandle;
use watch::{WatchSpec, WatchStream};

pub use auth::ApiKeyCheck;
pub use edge::EdgeLayer;

/// The state every service handler shares.
#[derive(Clone)]
pub struct Api {
    desk: DeskHandle,
    limits: Arc<Limits>,
    desk_name: String,
    /// How long a server stream may go unread before it is closed with a resumable error.
    stalled_stream: Duration,
    /// One permit per server stream open (watches and agent streams), across connections.
    open_streams: Arc<Semaphore>,
}

impl Api {
    pub fn new(
        desk: DeskHandle,
        limits: Limits,
        desk_name: String,
        stalled_stream: Duration,
        max_open_streams: usize,
    ) -> Self {
        Api {
            desk,
            limits: Arc::new(limits),
            desk_name,
            stalled_stream,
            open_streams: Arc::new(Semaphore::new(max_open_streams)),
        }
    }

    /// Opens a watch, counted among the server's open streams until its task ends.
    fn watch<T: Send + 'static>(
        &self,
        spec: WatchSpec<T>,
    ) -> Result<Response<WatchStream<T>>, Status> {
        let slot = self.stream_slot()?;
        Ok(Response::new(watch::watch(self.desk.clone(), spec, slot)))
    }

    /// A slot for one more server stream, or RESOURCE_EXHAUSTED when all are taken: open
    /// streams are bounded across connections, like calls in flight.
    fn stream_slot(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.open_streams.clone().try_acquire_owned().map_err(|_| {
            status::overloaded(
                "the server has as many streams open as it allows; close one or retry later",
            )
        })
    }
}
