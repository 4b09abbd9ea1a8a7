//! The gRPC face of the desk: DeskService, EscalationService, AdminService and AgentService,
//! each behind an API-key interceptor with the permission it needs, plus health and
//! reflection; gRPC-Web for browsers and the web console's pages on the same port.
//!
//! Only this module knows protos and `tonic::Status`. Handlers are thin: parse the request
//! ([`requests`]: validate and convert), call one runtime command, convert the answer back
//! ([`convert`]), map errors in [`status`].

mod admin;
mod agent;
mod auth;
pub mod connections;
mod convert;
mod desk;
mod edge;
mod escalation;
mod forward;
mod front;
mod keyless;
mod lag;
mod observed;
mod requests;
pub mod status;
mod validate;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tonic::{Response, Status};

use crate::config::Limits;
use crate::keys::Client;
use crate::proto::encoded::Encoded;
use crate::runtime::DeskHandle;
use connections::Connection;
use watch::{WatchSpec, WatchStream};

pub use auth::ApiKeyCheck;
pub use edge::{EdgeLayer, EdgeLimits};
pub use escalation::CLIENT_ID_HEADER;
pub use forward::{Connections, Following, ForwardLayer, Route, FORWARDED};
pub use front::{CrossOriginLayer, FrontLayer};
pub use keyless::KeylessLimits;
pub use observed::ObservedLayer;

/// The state every service handler shares.
#[derive(Clone)]
pub struct Api {
    desk: DeskHandle,
    limits: Arc<Limits>,
    desk_name: String,
    /// How long a server stream may go unread before it is closed with a resumable error.
    stalled_stream: Duration,
    /// How long after that a client that still reads nothing keeps its connection.
    stalled_connection: Duration,
    /// One permit per server stream open (watches and agent streams), across connections.
    open_streams: Arc<Semaphore>,
    /// This server's lease, when it leads a desk several servers share.
    leader: Option<Arc<crate::store::Lease>>,
    /// Server streams open, as the metrics show them.
    streams_gauge: prometheus::IntGauge,
    /// How far behind the watches are, when metered.
    watch_lag: Option<prometheus::Histogram>,
}

/// One of the server's stream slots, counted in the metrics while held.
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
    gauge: prometheus::IntGauge,
    lag: Option<prometheus::Histogram>,
}

impl Slot {
    /// A watch on this slot handed over an event `events` behind the log's head.
    pub(crate) fn behind(&self, events: u64) {
        if let Some(lag) = &self.lag {
            lag.observe(events as f64);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

impl Api {
    pub fn new(
        desk: DeskHandle,
        limits: Limits,
        desk_name: String,
        streams: &crate::config::ServerLimits,
    ) -> Self {
        Api {
            desk,
            limits: Arc::new(limits),
            desk_name,
            stalled_stream: Duration::from_secs(streams.stalled_stream_secs),
            stalled_connection: Duration::from_secs(streams.stalled_connection_secs),
            open_streams: Arc::new(Semaphore::new(streams.max_open_streams)),
            leader: None,
            streams_gauge: prometheus::IntGauge::new("open_streams", "unregistered")
                .expect("a valid gauge"),
            watch_lag: None,
        }
    }

    /// The same API, counting its open streams in `gauge` and, when given, how far behind the
    /// log's head its watches are in `lag`.
    pub fn counting_streams(
        mut self,
        gauge: prometheus::IntGauge,
        lag: Option<prometheus::Histogram>,
    ) -> Self {
        self.streams_gauge = gauge;
        self.watch_lag = lag;
        self
    }

    /// The same API on a server that leads a shared desk under `lease`: status says so.
    pub fn leading(mut self, lease: Option<crate::store::Lease>) -> Self {
        self.leader = lease.map(Arc::new);
        self
    }

    /// Opens a watch for a request's `caller` on its `connection`, counted among the server's
    /// open streams while it lives, and ended when the caller's key is revoked.
    fn watch<M: prost::Message + 'static>(
        &self,
        caller: &Client,
        connection: Option<Connection>,
        spec: WatchSpec<M>,
    ) -> Result<Response<WatchStream<Encoded<M>>>, Status> {
        let slot = self.stream_slot()?;
        let revoked = self.revocation(caller);
        let stream = watch::watch(
            self.desk.clone(),
            spec,
            slot,
            revoked,
            connection,
            self.stalled_connection,
        );
        Ok(Response::new(stream))
    }

    /// Cancelled when the key `caller` authenticated with is revoked.
    fn revocation(&self, caller: &Client) -> CancellationToken {
        let keys = self.desk.keys();
        let ring = keys.read().expect("key ring poisoned");
        ring.revocation(caller.key_id.as_deref())
    }

    /// A slot for one more server stream, or RESOURCE_EXHAUSTED when all are taken: open
    /// streams are bounded across connections, like calls in flight.
    fn stream_slot(&self) -> Result<Slot, Status> {
        let permit = self.open_streams.clone().try_acquire_owned().map_err(|_| {
            status::overloaded(
                "the server has as many streams open as it allows; close one or retry later",
            )
        })?;
        self.streams_gauge.inc();
        Ok(Slot {
            _permit: permit,
            gauge: self.streams_gauge.clone(),
            lag: self.watch_lag.clone(),
        })
    }
}
