//! The server's connections, from accept to close, with the limits a service facing an
//! unfriendly network needs beyond tonic's:
//!
//! - at most `max_connections` open at once: past it, the connection idle longest (no call or
//!   stream open) is closed to make room for the new one, so that a table filled with idle
//!   connections never keeps a health probe out; with none idle, the new connection is closed
//!   at once and the log says so (once a minute at most); an exhausted file-descriptor table is
//!   waited out instead of spun on;
//! - a connection must send its first request within `first_request_secs` (a port scanner, a
//!   client that speaks no HTTP/2, or one that only connects is closed);
//! - a connection with no call or stream open for `idle_connection_secs` is closed;
//! - a connection can be killed from inside: [`Connection::kill`], for a stream whose client
//!   stopped reading, whose buffers HTTP/2 flow control would otherwise hold for ever.
//!
//! Each accepted socket is wrapped in a [`Socket`] whose reads and writes fail once the
//! connection is killed, which makes hyper drop the connection and everything it holds. Its
//! [`Connection`] reaches every request as an extension (tonic inserts a `Connected` IO's
//! connect info), where the edge layer counts calls and streams.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::transport::server::Connected;

/// How often a connection's deadlines are looked at.
const WATCH_EVERY: Duration = Duration::from_millis(250);
/// How long to wait before accepting again when the process is out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How often a limit that keeps being hit is mentioned in the log again.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// Accepted connections waiting for the server to take them.
const ACCEPTED_BUFFER: usize = 64;
/// Connections past `max_connections` while those closed to make room for them are still
/// going: well within the file descriptors the server keeps in reserve.
const EVICTION_SLACK: usize = 32;
/// How long accepting waits for connections closed to make room to go.
const EVICTION_WAIT: Duration = Duration::from_secs(1);

/// The connection limits, from `[server]`.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub first_request: Duration,
    pub idle: Duration,
}

/// One connection's state, shared by its socket, its watchdog and its requests.
#[derive(Debug)]
struct State {
    kill: CancellationToken,
    opened: Instant,
    /// Calls and streams in progress.
    open_calls: AtomicUsize,
    seen_request: AtomicBool,
    /// When the last call or stream ended, in ms since `opened`.
    idle_since_ms: AtomicI64,
    remote: Option<SocketAddr>,
}

/// A handle on one connection, in every request's extensions.
#[derive(Clone, Debug)]
pub struct Connection(Arc<State>);

impl Connection {
    fn new(remote: Option<SocketAddr>) -> Self {
        Connection(Arc::new(State {
            kill: CancellationToken::new(),
            opened: Instant::now(),
            open_calls: AtomicUsize::new(0),
            seen_request: AtomicBool::new(false),
            idle_since_ms: AtomicI64::new(0),
            remote,
        }))
    }

    /// The address of the other end, when the socket knew it.
    pub fn remote(&self) -> Option<SocketAddr> {
        self.0.remote
    }

    /// Drops the connection with everything on it: its socket fails, hyper lets go.
    pub fn kill(&self) {
        self.0.kill.cancel();
    }

    /// A call or stream starts on the connection; it counts until the guard is dropped.
    pub fn call_started(&self) -> CallGuard {
        self.0.seen_request.store(true, Ordering::Relaxed);
        self.0.open_calls.fetch_add(1, Ordering::Relaxed);
        CallGuard(self.clone())
    }

    /// The address the connection comes from.
    pub fn remote_ip(&self) -> Option<std::net::IpAddr> {
        self.0.remote.map(|addr| addr.ip())
    }

    fn elapsed_ms(&self) -> i64 {
        self.0.opened.elapsed().as_millis() as i64
    }
}

impl State {
    /// Since when nothing has been open on the connection, in ms since `opened`; `None` while a
    /// call or stream is open.
    fn idle_since_ms(&self) -> Option<i64> {
        (self.open_calls.load(Ordering::Relaxed) == 0)
            .then(|| self.idle_since_ms.load(Ordering::Relaxed))
    }
}

/// The connections open, to find the one idle longest when the table is full.
#[derive(Default)]
struct Live(Vec<std::sync::Weak<State>>);

impl Live {
    fn add(&mut self, connection: &Connection) {
        self.0.push(Arc::downgrade(&connection.0));
    }

    /// Closes the connection that has been idle longest, if one is; forgets those gone.
    fn close_idlest(&mut self) -> bool {
        self.0.retain(|state| state.strong_count() > 0);
        let idlest = self
            .0
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .filter(|state| !state.kill.is_cancelled())
            .filter_map(|state| {
                let since = state.opened + Duration::from_millis(state.idle_since_ms()? as u64);
                Some((since, state))
            })
            .min_by_key(|(since, _)| *since);
        match idlest {
            Some((_, state)) => {
                tracing::debug!(remote = ?state.remote, "closing the connection idle longest to make room");
                state.kill.cancel();
                true
            }
            None => false,
        }
    }
}

/// Counts one call or stream on its connection while it lives.
#[derive(Debug)]
pub struct CallGuard(Connection);

impl Drop for CallGuard {
    fn drop(&mut self) {
        let state = &self.0 .0;
        state
            .idle_since_ms
            .store(self.0.elapsed_ms(), Ordering::Relaxed);
        state.open_calls.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An accepted socket whose reads and writes fail once its connection is killed.
pub struct Socket {
    stream: TcpStream,
    connection: Connection,
    killed: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Frees the connection's place among `max_connections`.
    _slot: SlotGuard,
}

impl Socket {
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.killed.as_mut().poll(cx).is_ready() {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the server closed the connection",
            ));
        }
        Ok(())
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl Connected for Socket {
    type ConnectInfo = Connection;

    fn connect_info(&self) -> Connection {
        self.connection.clone()
    }
}

/// One of the `max_connections` places, given back when the socket is dropped.
struct SlotGuard(Arc<AtomicUsize>);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Logs a limit that was hit, at most once per [`LOG_EVERY`].
struct RateLimitedLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    fn hit(&mut self, log: impl FnOnce(u64)) {
        if self.last.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
            log(self.suppressed);
            self.last = Some(Instant::now());
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
    }
}

/// Accepts connections on `listener` as [`Socket`]s for tonic's `serve_with_incoming`, each
/// watched for its deadlines. Accepting stops when the server drops the stream.
pub fn incoming(
    listener: TcpListener,
    limits: ConnectionLimits,
) -> ReceiverStream<io::Result<Socket>> {
    let (tx, rx) = mpsc::channel(ACCEPTED_BUFFER);
    tokio::spawn(accept_loop(listener, limits, tx));
    ReceiverStream::new(rx)
}

async fn accept_loop(
    listener: TcpListener,
    limits: ConnectionLimits,
    tx: mpsc::Sender<io::Result<Socket>>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    let mut live = Live::default();
    let mut full = RateLimitedLog {
        last: None,
        suppressed: 0,
    };
    let mut out_of_files = RateLimitedLog {
        last: None,
        suppressed: 0,
    };
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = tx.closed() => return,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors (or another resource): wait instead of spinning,
                // while connections close and give theirs back.
                out_of_files.hit(|suppressed| {
                    tracing::error!(error = %err, suppressed, "cannot accept connections");
                });
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // At the limit, an idle connection gives its place up (its socket closes moments
        // later: the file descriptors kept in reserve cover the overlap). Past the overlap
        // allowed, accepting waits a moment for those closing to go, while new connections
        // wait their turn in the listen backlog.
        if open.load(Ordering::Relaxed) >= limits.max_connections + EVICTION_SLACK {
            let waited = Instant::now();
            while open.load(Ordering::Relaxed) >= limits.max_connections + EVICTION_SLACK
                && waited.elapsed() < EVICTION_WAIT
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let now_open = open.load(Ordering::Relaxed);
        if now_open >= limits.max_connections
            && !(now_open < limits.max_connections + EVICTION_SLACK && live.close_idlest())
        {
            full.hit(|suppressed| {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    suppressed,
                    "connection limit reached with none idle; closing new connections until some close"
                );
            });
            drop(stream);
            continue;
        }
        open.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let connection = Connection::new(Some(remote));
        live.add(&connection);
        tokio::spawn(watch(connection.clone(), limits));
        let socket = Socket {
            stream,
            killed: Box::pin(connection.0.kill.clone().cancelled_owned()),
            connection,
            _slot: SlotGuard(open.clone()),
        };
        if tx.send(Ok(socket)).await.is_err() {
            return;
        }
    }
}

/// Closes the connection when it misses a deadline; ends when the connection is gone.
async fn watch(connection: Connection, limits: ConnectionLimits) {
    let mut tick = tokio::time::interval(WATCH_EVERY);
    loop {
        tokio::select! {
            _ = connection.0.kill.cancelled() => return,
            _ = tick.tick() => {}
        }
        // The socket is gone (closed by the client or hyper): nothing to watch.
        if Arc::strong_count(&connection.0) == 1 {
            return;
        }
        let state = &connection.0;
        let now_ms = connection.elapsed_ms();
        let seen = state.seen_request.load(Ordering::Relaxed);
        let open = state.open_calls.load(Ordering::Relaxed);
        let idle_ms = now_ms - state.idle_since_ms.load(Ordering::Relaxed);
        let why = if !seen && state.opened.elapsed() >= limits.first_request {
            Some("no request within the first-request deadline")
        } else if seen && open == 0 && idle_ms >= limits.idle.as_millis() as i64 {
            Some("idle")
        } else {
            None
        };
        if let Some(why) = why {
            tracing::debug!(remote = ?state.remote, why, "closing a connection");
            connection.kill();
            return;
        }
    }
}
