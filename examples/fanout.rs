//! The benchmark of live server streams: how well a server delivers its events to many
//! watchers while inquiries arrive at a fixed rate, measured on the desk and on the `floor`
//! example in the same run, so that one command compares them.
//!
//! ```text
//! cargo build --release --bins --examples
//! cargo run --release --example fanout -- --subscribers 1000 --connections 10 --rate 1000 --seconds 10
//! ```
//!
//! It starts the release server beside this example (or `--server-bin`) with `serve --dev` on a
//! fresh temporary data directory and a free port, asks it one first-tier inquiry, and starts
//! the `floor` example answering with that ticket, so both servers send events of about the
//! same size. Then, for each server in turn (`--target-only` picks one; `--rounds N`
//! alternates which goes first):
//!
//! 1. it opens `--subscribers` server streams spread round-robin over `--connections` HTTP/2
//!    connections: `AdminService/WatchEvents` from the desk's current head, or the floor's
//!    `WatchTicket`, which streams every event it publishes. Nothing is sent until every
//!    stream's response headers have arrived;
//! 2. a producer sends first-tier `HandleInquiry` calls, open loop, at `--rate / 5` calls a
//!    second (each makes 5 events) for `--seconds`, each call on its own task so that a slow
//!    answer does not slow the pace; a call's latency counts from when it was due;
//! 3. it waits until every stream has every event the server published (or has ended), at
//!    most `--drain-seconds`, then closes the streams and prints what each server did.
//!
//! Each watcher decodes only the sequence and time of each event (the client shares the
//! machine with the server, so it does as little as it can); the first decodes whole events,
//! to tell their average size. An event's delivery latency is the wall clock when it arrives
//! minus its `time`, which both servers stamp to the millisecond when the inquiry is handled,
//! before its commit. Sequences must be consecutive on every stream: a jump is a gap, a repeat
//! a duplicate; a stream that ends early is a stream error. "lossless" means every watcher got
//! every event, in order, once.
//!
//! Memory is the server's resident set (`VmRSS`) before the streams open, once they are open,
//! at its highest (sampled every 50 ms from the first inquiry on) and at the end with them
//! still open; the per-stream ratio is of the first round only, since later rounds run on the
//! same processes and reuse what the first freed. CPU is what the server used from the first
//! inquiry to the end of the drain (`utime + stime`).
//!
//! `--read-delay-ms` makes every watcher a slow reader: on the desk they fall behind the live
//! buffer and catch up from the store (the floor's broadcast drops them instead), and the
//! growth of the peak from 20 to 200 such streams is what one lagging stream costs.

#[path = "support/spawned.rs"]
mod spawned;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use prost::Message;
use prost_types::Timestamp;
use servicedesk::proto::v1::admin_service_client::AdminServiceClient;
use servicedesk::proto::v1::desk_service_client::DeskServiceClient;
use servicedesk::proto::v1::{
    DeskEvent, GetDeskStatusRequest, HandleInquiryRequest, TicketEvent, TicketStatus,
    WatchEventsRequest, WatchTicketRequest,
};
use spawned::Spawned;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status, Streaming};

#[derive(Parser)]
#[command(
    about = "Event fan-out to many watchers under a fixed inquiry rate: the desk and the floor"
)]
struct Args {
    /// Server streams to open on each server.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// HTTP/2 connections the streams are spread over, round-robin.
    #[arg(long, default_value_t = 10)]
    connections: usize,
    /// Events a second the producer causes (5 per first-tier inquiry).
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// How long the producer sends inquiries.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// How long, at most, to wait after the producer for every stream to have every event.
    #[arg(long, default_value_t = 30)]
    drain_seconds: u64,
    /// Measurements of each server, alternating which goes first.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Measure only this server (the desk is still started, for the floor's answer).
    #[arg(long, value_enum)]
    target_only: Option<Side>,
    /// The server binary to start, e.g. an older build to compare with (the release binary
    /// beside this example by default).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Further arguments for the desk's `serve`, e.g. `--server-arg=--config=x.toml`.
    #[arg(long = "server-arg")]
    server_args: Vec<String>,
    /// Milliseconds every watcher waits after each event it reads: slow readers, which fall
    /// behind a fast producer and, on the desk, catch up from the store (0: read at once).
    #[arg(long, default_value_t = 0.0)]
    read_delay_ms: f64,
}

/// Which server a measurement is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Side {
    Desk,
    Floor,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Desk => "desk",
            Side::Floor => "floor",
        }
    }
}

/// The first tier answers it from the knowledge base: 5 events on the desk.
const FIRST_TIER: &str = "How do I reset my password?";
/// Events the desk publishes for one first-tier inquiry; the floor publishes as many.
const EVENTS_PER_INQUIRY: u64 = 5;
/// The `--dev` key with `customer_service`.
const CUSTOMER_KEY: &str = "test-key-123";
/// The `--dev` key with `admin`, which `WatchEvents` needs.
const ADMIN_KEY: &str = "admin-key-456";
/// Streams being opened at once. The desk counts a stream among one client's calls in flight
/// until its response starts, a quarter of its 4096 by default; this stays well below.
const OPENING_AT_ONCE: usize = 128;
/// How long one stream may take to open. A connection with more streams than the server
/// allows on one waits for a free one for ever, so this is what reports it.
const OPEN_TIMEOUT: Duration = Duration::from_secs(60);
/// Connections of the producer, apart from the watchers'.
const PRODUCER_CONNECTIONS: usize = 2;
/// Deadline of one inquiry.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What a watcher reads of each event: its sequence and time.
trait Observed: Message + Default + Send + Sync + 'static {
    fn sequence(&self) -> u64;
    fn time(&self) -> Option<&Timestamp>;
}

/// The two fields of a `DeskEvent` the watchers read; prost skips the others without looking
/// inside them.
#[derive(Clone, PartialEq, Message)]
struct DeskEventProbe {
    #[prost(uint64, tag = "1")]
    sequence: u64,
    #[prost(message, optional, tag = "2")]
    time: Option<Timestamp>,
}

/// The two fields of a `TicketEvent` the watchers read.
#[derive(Clone, PartialEq, Message)]
struct TicketEventProbe {
    #[prost(uint64, tag = "1")]
    sequence: u64,
    #[prost(message, optional, tag = "3")]
    time: Option<Timestamp>,
}

macro_rules! observed {
    ($($message:ty),*) => {$(
        impl Observed for $message {
            fn sequence(&self) -> u64 {
                self.sequence
            }
            fn time(&self) -> Option<&Timestamp> {
                self.time.as_ref()
            }
        }
    )*};
}
observed!(DeskEventProbe, TicketEventProbe, DeskEvent, TicketEvent);

/// Latencies in microseconds, in buckets of at most 1/64 of their value (exact below 64 µs):
/// a fixed 7 KB per stream however many events it gets.
struct Histogram {
    counts: Vec<u32>,
    max: u32,
}

/// Sub-buckets per power of two.
const SUB_BUCKETS: usize = 64;
const SUB_BITS: u32 = SUB_BUCKETS.trailing_zeros();
/// Enough buckets for any `u32`.
const BUCKETS: usize = SUB_BUCKETS + (32 - SUB_BITS as usize) * SUB_BUCKETS;

impl Histogram {
    fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            max: 0,
        }
    }

    fn record(&mut self, micros: u32) {
        self.counts[bucket(micros)] += 1;
        self.max = self.max.max(micros);
    }
}

/// The bucket of `value`.
fn bucket(value: u32) -> usize {
    if (value as usize) < SUB_BUCKETS {
        return value as usize;
    }
    let power = 31 - value.leading_zeros();
    let sub = (value >> (power - SUB_BITS)) as usize - SUB_BUCKETS;
    SUB_BUCKETS + (power - SUB_BITS) as usize * SUB_BUCKETS + sub
}

/// The largest value in bucket `index`: percentiles are reported high, never low.
fn bucket_top(index: usize) -> u64 {
    if index < SUB_BUCKETS {
        return index as u64;
    }
    let shift = ((index - SUB_BUCKETS) / SUB_BUCKETS) as u32;
    let sub = ((index - SUB_BUCKETS) % SUB_BUCKETS) as u64;
    ((SUB_BUCKETS as u64 + sub + 1) << shift) - 1
}

/// Every stream's latencies together.
struct Latencies {
    counts: Vec<u64>,
    total: u64,
    max: u32,
}

impl Latencies {
    fn new() -> Self {
        Latencies {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }

    fn add(&mut self, stream: &Histogram) {
        for (sum, &count) in self.counts.iter_mut().zip(&stream.counts) {
            *sum += u64::from(count);
            self.total += u64::from(count);
        }
        self.max = self.max.max(stream.max);
    }

    /// The latency `p` of the events arrived within, in milliseconds.
    fn percentile_ms(&self, p: f64) -> f64 {
        if self.total == 0 {
            return f64::NAN;
        }
        if p >= 1.0 {
            return f64::from(self.max) / 1000.0;
        }
        let rank = ((self.total as f64 * p).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return bucket_top(index).min(u64::from(self.max)) as f64 / 1000.0;
            }
        }
        f64::from(self.max) / 1000.0
    }
}

/// A server this benchmark started, stopped (killed, if need be) when dropped, its data
/// directory with it.
/// The resident set of process `pid`, in KB.
fn rss_kb(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// The highest resident set of process `pid`, sampled every 50 ms until `stop`, in KB (0 if
/// it could not be read).
async fn peak_rss_kb(pid: u32, stop: CancellationToken) -> u64 {
    let mut peak = 0;
    while !stop.is_cancelled() {
        peak = peak.max(rss_kb(pid).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    peak
}

/// CPU seconds process `pid` has used, user and system.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name, in parentheses, may hold spaces; the fields after it are plain.
    // utime and stime are fields 14 and 15, the 12th and 13th after the name.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        let field = fields
            .get(i)
            .with_context(|| format!("/proc/{pid}/stat is too short"))?;
        Ok(field.parse::<u64>()? as f64)
    };
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    anyhow::ensure!(per_second > 0, "no clock tick rate");
    Ok((ticks(11)? + ticks(12)?) / per_second as f64)
}

/// `count` HTTP/2 connections to `target`, each its own channel.
async fn connect(target: &str, count: usize) -> anyhow::Result<Vec<Channel>> {
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count {
        let channel = Endpoint::from_shared(target.to_string())?
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("connecting to {target}"))?;
        channels.push(channel);
    }
    Ok(channels)
}

/// `message` with `key` as its `x-api-key`.
fn with_key<T>(message: T, key: &str) -> anyhow::Result<Request<T>> {
    let mut request = Request::new(message);
    let key: AsciiMetadataValue = key.parse().context("an API key as metadata")?;
    request.metadata_mut().insert("x-api-key", key);
    Ok(request)
}

/// The sequence of the desk's last event.
async fn desk_head(channel: &Channel) -> anyhow::Result<u64> {
    let request = with_key(GetDeskStatusRequest::default(), ADMIN_KEY)?;
    let status = AdminServiceClient::new(channel.clone())
        .get_desk_status(request)
        .await
        .context("GetDeskStatus on the desk")?
        .into_inner();
    Ok(status.sequence)
}

/// One first-tier answer of the desk, encoded: what the floor answers every inquiry with.
async fn first_tier_answer(desk: &Spawned) -> anyhow::Result<Vec<u8>> {
    let channel = connect(&desk.addr, 1).await?.remove(0);
    let request = with_key(
        HandleInquiryRequest {
            customer_id: "fanout_floor".into(),
            inquiry: FIRST_TIER.into(),
            priority: 5,
            ..Default::default()
        },
        CUSTOMER_KEY,
    )?;
    let answer = DeskServiceClient::new(channel)
        .handle_inquiry(request)
        .await
        .context("the first-tier inquiry the floor answers with")?
        .into_inner();
    Ok(answer.encode_to_vec())
}

/// Where the streams of a measurement stand, read while they run.
struct Progress {
    /// The highest sequence each stream has received.
    highest: Vec<AtomicU64>,
    /// Whether each stream has ended (or never opened).
    ended: Vec<AtomicBool>,
    /// The last sequence the measurement counts: unknown (`u64::MAX`) until the producer has
    /// stopped.
    last: AtomicU64,
}

impl Progress {
    fn new(streams: usize) -> Self {
        Progress {
            highest: (0..streams).map(|_| AtomicU64::new(0)).collect(),
            ended: (0..streams).map(|_| AtomicBool::new(false)).collect(),
            last: AtomicU64::new(u64::MAX),
        }
    }

    /// Whether every stream has every event up to `last`, or has ended.
    fn drained(&self, last: u64) -> bool {
        self.highest
            .iter()
            .zip(&self.ended)
            .all(|(highest, ended)| {
                ended.load(Ordering::Relaxed) || highest.load(Ordering::Relaxed) >= last
            })
    }
}

/// How a stream ended before the benchmark closed it.
enum Ending {
    /// It never opened.
    Refused(Status),
    /// It ended with an error.
    Failed(Status),
    /// The server ended it without an error.
    Closed,
}

/// What one stream received.
struct Delivery {
    /// Distinct events after the start and up to the last counted one.
    received: u64,
    /// Times the sequence jumped.
    gaps: u64,
    /// Events at or below a sequence already received.
    duplicates: u64,
    latency: Histogram,
    /// Encoded bytes and events decoded whole (the first stream only).
    bytes: u64,
    weighed: u64,
    ending: Option<Ending>,
}

impl Delivery {
    /// A stream that has received nothing yet, or never will (`ending`).
    fn nothing(ending: Option<Ending>) -> Self {
        Delivery {
            received: 0,
            gaps: 0,
            duplicates: 0,
            latency: Histogram::new(),
            bytes: 0,
            weighed: 0,
            ending,
        }
    }
}

/// What one stream needs to follow its events.
struct Watcher {
    index: usize,
    /// Waited after each event, to read slowly.
    read_delay: Option<Duration>,
    /// Events up to this sequence were published before the stream opened.
    after: u64,
    progress: Arc<Progress>,
    stop: CancellationToken,
}

impl Watcher {
    /// Reads events until the stream ends or `stop`, checking their order and timing them.
    async fn follow<M: Observed>(&self, mut stream: Streaming<M>, weigh: bool) -> Delivery {
        let mut delivery = Delivery::nothing(None);
        let mut next = self.after + 1;
        loop {
            let message = tokio::select! {
                biased;
                _ = self.stop.cancelled() => break,
                message = stream.message() => message,
            };
            let event = match message {
                Ok(Some(event)) => event,
                Ok(None) => {
                    delivery.ending = Some(Ending::Closed);
                    break;
                }
                Err(status) => {
                    delivery.ending = Some(Ending::Failed(status));
                    break;
                }
            };
            let arrived = micros_since_epoch(SystemTime::now());
            if let Some(time) = event.time() {
                let waited = arrived - time.seconds * 1_000_000 - i64::from(time.nanos) / 1000;
                delivery
                    .latency
                    .record(waited.clamp(0, i64::from(u32::MAX)) as u32);
            }
            if weigh {
                delivery.bytes += event.encoded_len() as u64;
                delivery.weighed += 1;
            }
            let sequence = event.sequence();
            if sequence < next {
                delivery.duplicates += 1;
                continue;
            }
            if sequence > next {
                delivery.gaps += 1;
            }
            next = sequence + 1;
            if sequence <= self.progress.last.load(Ordering::Relaxed) {
                delivery.received += 1;
            }
            self.progress.highest[self.index].store(sequence, Ordering::Relaxed);
            if let Some(delay) = self.read_delay {
                tokio::time::sleep(delay).await;
            }
        }
        self.progress.ended[self.index].store(true, Ordering::Relaxed);
        delivery
    }
}

fn micros_since_epoch(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as i64
}

/// Opens a server stream of `M` at `path`, with only its response headers awaited.
async fn open<Req, M>(
    channel: Channel,
    path: &'static str,
    request: Request<Req>,
) -> Result<Streaming<M>, Status>
where
    Req: Message + Send + Sync + 'static,
    M: Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("the connection is not ready: {e}")))?;
    let codec = tonic_prost::ProstCodec::<Req, M>::default();
    let response = grpc
        .server_streaming(request, PathAndQuery::from_static(path), codec)
        .await?;
    Ok(response.into_inner())
}

const WATCH_EVENTS: &str = "/servicedesk.v1.AdminService/WatchEvents";
const WATCH_TICKET: &str = "/servicedesk.v1.DeskService/WatchTicket";

/// Opens stream `watcher.index` of `side` (the first decodes whole events, to weigh them),
/// reports the open on `opened`, then follows it.
async fn watch(
    side: Side,
    channel: Channel,
    watcher: Watcher,
    opening: Arc<Semaphore>,
    opened: mpsc::UnboundedSender<Result<(), Status>>,
) -> Delivery {
    let weigh = watcher.index == 0;
    let slot = opening.acquire_owned().await;
    let ready = async {
        match side {
            Side::Desk => {
                let request = with_key(
                    WatchEventsRequest {
                        after_sequence: watcher.after,
                        kinds: Vec::new(),
                    },
                    ADMIN_KEY,
                )
                .map_err(|e| Status::internal(e.to_string()))?;
                Ok(if weigh {
                    Opened::Desk(open(channel, WATCH_EVENTS, request).await?)
                } else {
                    Opened::DeskProbe(open(channel, WATCH_EVENTS, request).await?)
                })
            }
            Side::Floor => {
                let request = Request::new(WatchTicketRequest::default());
                Ok(if weigh {
                    Opened::Floor(open(channel, WATCH_TICKET, request).await?)
                } else {
                    Opened::FloorProbe(open(channel, WATCH_TICKET, request).await?)
                })
            }
        }
    };
    let ready = match tokio::time::timeout(OPEN_TIMEOUT, ready).await {
        Ok(ready) => ready,
        Err(_) => Err(Status::deadline_exceeded(format!(
            "the stream did not open within {} s: more streams on one connection than the \
             server allows? (the desk allows 256; use more --connections)",
            OPEN_TIMEOUT.as_secs()
        ))),
    };
    drop(slot);
    let _ = opened.send(ready.as_ref().map(|_| ()).map_err(Clone::clone));
    match ready {
        Ok(Opened::Desk(stream)) => watcher.follow(stream, true).await,
        Ok(Opened::DeskProbe(stream)) => watcher.follow(stream, false).await,
        Ok(Opened::Floor(stream)) => watcher.follow(stream, true).await,
        Ok(Opened::FloorProbe(stream)) => watcher.follow(stream, false).await,
        Err(status) => {
            watcher.progress.ended[watcher.index].store(true, Ordering::Relaxed);
            Delivery::nothing(Some(Ending::Refused(status)))
        }
    }
}

/// An open stream, decoded whole or probed.
enum Opened {
    Desk(Streaming<DeskEvent>),
    DeskProbe(Streaming<DeskEventProbe>),
    Floor(Streaming<TicketEvent>),
    FloorProbe(Streaming<TicketEventProbe>),
}

/// The streams of one measurement, open (or refused) and being read.
struct Watchers {
    tasks: Vec<JoinHandle<Delivery>>,
    progress: Arc<Progress>,
    stop: CancellationToken,
    /// Streams refused, by code, with the first message of each.
    refused: BTreeMap<String, (usize, String)>,
}

/// Opens `args.subscribers` streams of `side` over `channels`, round-robin, of events after
/// `after`, and returns once every one is open or refused.
async fn open_watchers(
    args: &Args,
    side: Side,
    channels: &[Channel],
    after: u64,
) -> anyhow::Result<Watchers> {
    let progress = Arc::new(Progress::new(args.subscribers));
    let stop = CancellationToken::new();
    let opening = Arc::new(Semaphore::new(OPENING_AT_ONCE));
    let (opened_tx, mut opened) = mpsc::unbounded_channel();
    let mut tasks = Vec::with_capacity(args.subscribers);
    for index in 0..args.subscribers {
        let watcher = Watcher {
            index,
            read_delay: (args.read_delay_ms > 0.0)
                .then(|| Duration::from_secs_f64(args.read_delay_ms / 1000.0)),
            after,
            progress: progress.clone(),
            stop: stop.clone(),
        };
        let channel = channels[index % channels.len()].clone();
        tasks.push(tokio::spawn(watch(
            side,
            channel,
            watcher,
            opening.clone(),
            opened_tx.clone(),
        )));
    }
    drop(opened_tx);
    let mut refused: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for _ in 0..args.subscribers {
        let result = opened
            .recv()
            .await
            .context("a watcher ended before reporting its stream's opening")?;
        if let Err(status) = result {
            let entry = refused
                .entry(format!("{:?}", status.code()))
                .or_insert_with(|| (0, status.message().to_string()));
            entry.0 += 1;
        }
    }
    Ok(Watchers {
        tasks,
        progress,
        stop,
        refused,
    })
}

/// What the producer did.
struct Produced {
    /// Latencies of the inquiries answered, from when each was due.
    latencies: Vec<Duration>,
    /// Failed inquiries, by code.
    errors: BTreeMap<String, usize>,
    /// Inquiries answered with a ticket not resolved by the first tier (fewer events).
    unresolved: usize,
    /// From the first inquiry to the last answer.
    elapsed: Duration,
}

/// Sends first-tier inquiries open loop at `args.rate / 5` a second for `args.seconds`, each
/// on its own task, customers named after `label`.
async fn produce(args: &Args, channels: &[Channel], label: &str) -> anyhow::Result<Produced> {
    let per_second = f64::from(args.rate) / EVENTS_PER_INQUIRY as f64;
    let calls = (per_second * args.seconds as f64).round() as u64;
    let start = tokio::time::Instant::now();
    let mut answers = Vec::with_capacity(calls as usize);
    for n in 0..calls {
        // Deadlines from the start, not sleeps from the last call: a late wake-up sends the
        // calls it owes at once, and the rate holds.
        let due = start + Duration::from_secs_f64(n as f64 / per_second);
        tokio::time::sleep_until(due).await;
        let desk = DeskServiceClient::new(channels[n as usize % channels.len()].clone());
        let customer = format!("fanout_{label}_{n}");
        answers.push(tokio::spawn(async move {
            let answer = inquire(desk, customer).await;
            (due.elapsed(), answer)
        }));
    }
    let mut produced = Produced {
        latencies: Vec::with_capacity(answers.len()),
        errors: BTreeMap::new(),
        unresolved: 0,
        elapsed: Duration::ZERO,
    };
    for answer in answers {
        let (latency, answer) = answer.await.context("an inquiry's task")?;
        match answer {
            Ok(resolved) => {
                produced.latencies.push(latency);
                produced.unresolved += usize::from(!resolved);
            }
            Err(code) => *produced.errors.entry(code).or_default() += 1,
        }
    }
    produced.elapsed = start.elapsed();
    produced.latencies.sort();
    Ok(produced)
}

/// One first-tier inquiry: whether the first tier resolved it, or the failure's code.
async fn inquire(mut desk: DeskServiceClient<Channel>, customer: String) -> Result<bool, String> {
    let inquiry = HandleInquiryRequest {
        customer_id: customer,
        inquiry: FIRST_TIER.into(),
        priority: 5,
        ..Default::default()
    };
    let mut request = with_key(inquiry, CUSTOMER_KEY).map_err(|e| e.to_string())?;
    request.set_timeout(CALL_TIMEOUT);
    match desk.handle_inquiry(request).await {
        Ok(answer) => {
            let ticket = answer.into_inner().ticket.unwrap_or_default();
            Ok(ticket.status() == TicketStatus::Resolved)
        }
        Err(status) => Err(format!("{:?}", status.code())),
    }
}

/// The value at `p` of sorted `values`, in milliseconds.
fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

/// One measurement of one server.
struct Report {
    side: Side,
    round: usize,
    subscribers: usize,
    open: usize,
    /// Events each stream should have received.
    expected: u64,
    /// Events caused by the inquiries answered, 5 each.
    caused: u64,
    received: u64,
    gaps: u64,
    duplicates: u64,
    /// Streams that were refused or ended early, by code, with the first message of each.
    stream_errors: BTreeMap<String, (usize, String)>,
    latency: Latencies,
    bytes_per_event: f64,
    produced: Produced,
    /// How long after the producer every stream had everything, if they all did in time.
    drained_in: Option<Duration>,
    /// Events published per second of the producer.
    event_rate: f64,
    rss_before_kb: u64,
    rss_open_kb: u64,
    /// The highest resident set seen from the first inquiry to the end of the drain.
    rss_peak_kb: u64,
    rss_end_kb: u64,
    server_cpu: f64,
    client_cpu: f64,
    /// The highest sequence any stream received: where the next measurement of this server
    /// starts.
    head: u64,
}

impl Report {
    fn errors(&self) -> usize {
        self.stream_errors.values().map(|(n, _)| n).sum()
    }

    fn delivered(&self) -> f64 {
        self.received as f64 / (self.expected * self.subscribers as u64).max(1) as f64
    }

    fn lossless(&self) -> bool {
        self.expected > 0
            && self.received == self.expected * self.subscribers as u64
            && self.gaps == 0
            && self.duplicates == 0
            && self.errors() == 0
    }

    /// The growth of the resident set per stream, from before they opened to `kb`.
    fn kb_per_stream(&self, kb: u64) -> f64 {
        (kb as f64 - self.rss_before_kb as f64) / self.subscribers as f64
    }
}

/// Measures `side` on `server`: its streams, the producer, the drain. `after` is the floor's
/// last sequence (the desk's is asked of it).
async fn measure(
    args: &Args,
    side: Side,
    server: &Spawned,
    after: u64,
    round: usize,
) -> anyhow::Result<Report> {
    let pid = server.pid();
    let me = std::process::id();
    let channels = connect(&server.addr, args.connections).await?;
    let after = match side {
        Side::Desk => desk_head(&channels[0]).await?,
        Side::Floor => after,
    };
    let rss_before_kb = rss_kb(pid)?;
    let opening = Instant::now();
    let watchers = open_watchers(args, side, &channels, after).await?;
    let refused: usize = watchers.refused.values().map(|(n, _)| n).sum();
    let open = args.subscribers - refused;
    println!(
        "{} round {round}: {open} of {} streams open on {} connections in {:.1} s{}",
        side.name(),
        args.subscribers,
        channels.len(),
        opening.elapsed().as_secs_f64(),
        if refused > 0 {
            format!("; REFUSED {refused}: {:?}", watchers.refused)
        } else {
            String::new()
        }
    );
    let rss_open_kb = rss_kb(pid)?;
    let producers = connect(&server.addr, PRODUCER_CONNECTIONS).await?;
    let (server_cpu, client_cpu) = (cpu_seconds(pid)?, cpu_seconds(me)?);
    let sampling = CancellationToken::new();
    let peak = tokio::spawn(peak_rss_kb(pid, sampling.clone()));
    let produced = produce(args, &producers, &format!("{}{round}", side.name())).await?;
    let caused = produced.latencies.len() as u64 * EVENTS_PER_INQUIRY;
    let last = match side {
        Side::Desk => desk_head(&producers[0]).await?,
        Side::Floor => after + caused,
    };
    watchers.progress.last.store(last, Ordering::Relaxed);
    let drained_in = drain(&watchers.progress, last, args.drain_seconds).await;
    let rss_end_kb = rss_kb(pid)?;
    sampling.cancel();
    let rss_peak_kb = peak.await.context("the memory sampler")?.max(rss_end_kb);
    let server_cpu = cpu_seconds(pid)? - server_cpu;
    let client_cpu = cpu_seconds(me)? - client_cpu;
    watchers.stop.cancel();
    let highest = watchers.progress.highest.iter();
    let head = highest
        .map(|h| h.load(Ordering::Relaxed))
        .fold(last, u64::max);
    let mut report = Report {
        side,
        round,
        subscribers: args.subscribers,
        open,
        expected: last - after,
        caused,
        received: 0,
        gaps: 0,
        duplicates: 0,
        stream_errors: BTreeMap::new(),
        latency: Latencies::new(),
        bytes_per_event: f64::NAN,
        event_rate: (last - after) as f64 / produced.elapsed.as_secs_f64(),
        produced,
        drained_in,
        rss_before_kb,
        rss_open_kb,
        rss_peak_kb,
        rss_end_kb,
        server_cpu,
        client_cpu,
        head,
    };
    gather(&mut report, watchers.tasks).await?;
    Ok(report)
}

/// Waits until every stream has every event up to `last` (or has ended), at most `seconds`;
/// returns how long that took, or `None` if they did not in time.
async fn drain(progress: &Progress, last: u64, seconds: u64) -> Option<Duration> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    loop {
        if progress.drained(last) {
            return Some(started.elapsed());
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Adds every stream's delivery to `report`.
async fn gather(report: &mut Report, tasks: Vec<JoinHandle<Delivery>>) -> anyhow::Result<()> {
    let (mut bytes, mut weighed) = (0, 0);
    for task in tasks {
        let delivery = task.await.context("a watcher's task")?;
        report.received += delivery.received;
        report.gaps += delivery.gaps;
        report.duplicates += delivery.duplicates;
        report.latency.add(&delivery.latency);
        bytes += delivery.bytes;
        weighed += delivery.weighed;
        let status = match delivery.ending {
            None => continue,
            Some(Ending::Refused(status) | Ending::Failed(status)) => status,
            Some(Ending::Closed) => Status::ok("the server ended the stream"),
        };
        let entry = report
            .stream_errors
            .entry(format!("{:?}", status.code()))
            .or_insert_with(|| (0, status.message().to_string()));
        entry.0 += 1;
    }
    if weighed > 0 {
        report.bytes_per_event = bytes as f64 / weighed as f64;
    }
    Ok(())
}

/// Prints what one measurement saw, beyond the table.
fn print_report(r: &Report) {
    let p = &r.produced;
    let failed: usize = p.errors.values().sum();
    println!(
        "  producer: {} inquiries answered in {:.1} s, {failed} failed {:?}; latency ms p50 {:.2} p99 {:.2} max {:.2}",
        p.latencies.len(),
        p.elapsed.as_secs_f64(),
        p.errors,
        percentile_ms(&p.latencies, 0.50),
        percentile_ms(&p.latencies, 0.99),
        percentile_ms(&p.latencies, 1.0),
    );
    if r.expected != r.caused || p.unresolved > 0 {
        println!(
            "  note: the {} published {} events while the answered inquiries account for {} ({} not resolved by the first tier)",
            r.side.name(),
            r.expected,
            r.caused,
            p.unresolved
        );
    }
    match r.drained_in {
        Some(took) => println!(
            "  every stream had every event (or had ended) {:.2} s after the producer",
            took.as_secs_f64()
        ),
        None => println!("  NOT drained: some streams still lacked events when the drain ran out"),
    }
    for (code, (count, message)) in &r.stream_errors {
        println!("  stream errors: {count} x {code}: {message}");
    }
    println!(
        "  delivered {} of {} x {} events: {}",
        r.received,
        r.expected,
        r.subscribers,
        if r.lossless() { "lossless" } else { "LOSSY" }
    );
}

/// One row of the table: a name, then one cell per measurement.
fn row(name: &str, reports: &[Report], cell: impl Fn(&Report) -> String) {
    let mut line = format!("{name:<30}");
    for report in reports {
        line += &format!(" {:>16}", cell(report));
    }
    println!("{line}");
}

fn ms(value: f64) -> String {
    format!("{value:.2}")
}

fn mb(kb: u64) -> String {
    format!("{:.1}", kb as f64 / 1024.0)
}

/// Prints every measurement side by side.
fn print_table(reports: &[Report]) {
    println!();
    row("", reports, |r| format!("{} r{}", r.side.name(), r.round));
    row("streams open", reports, |r| {
        format!("{}/{}", r.open, r.subscribers)
    });
    row("events per stream", reports, |r| r.expected.to_string());
    row("delivered fraction", reports, |r| {
        format!("{:.6}", r.delivered())
    });
    row("gaps / duplicates", reports, |r| {
        format!("{} / {}", r.gaps, r.duplicates)
    });
    row("stream errors", reports, |r| r.errors().to_string());
    row("delivery p50 ms", reports, |r| {
        ms(r.latency.percentile_ms(0.50))
    });
    row("delivery p99 ms", reports, |r| {
        ms(r.latency.percentile_ms(0.99))
    });
    row("delivery p999 ms", reports, |r| {
        ms(r.latency.percentile_ms(0.999))
    });
    row("delivery max ms", reports, |r| {
        ms(r.latency.percentile_ms(1.0))
    });
    row("events/s published", reports, |r| {
        format!("{:.0}", r.event_rate)
    });
    row("HandleInquiry p50 ms", reports, |r| {
        ms(percentile_ms(&r.produced.latencies, 0.50))
    });
    row("HandleInquiry p99 ms", reports, |r| {
        ms(percentile_ms(&r.produced.latencies, 0.99))
    });
    row("HandleInquiry errors", reports, |r| {
        r.produced.errors.values().sum::<usize>().to_string()
    });
    row("bytes per event", reports, |r| {
        format!("{:.0}", r.bytes_per_event)
    });
    row("RSS MB before/open/peak/end", reports, |r| {
        format!(
            "{}/{}/{}/{}",
            mb(r.rss_before_kb),
            mb(r.rss_open_kb),
            mb(r.rss_peak_kb),
            mb(r.rss_end_kb)
        )
    });
    row("KB per stream (end-before)", reports, |r| {
        format!("{:.1}", r.kb_per_stream(r.rss_end_kb))
    });
    row("KB per stream (peak-before)", reports, |r| {
        format!("{:.1}", r.kb_per_stream(r.rss_peak_kb))
    });
    row("server CPU s", reports, |r| format!("{:.2}", r.server_cpu));
    row("benchmark CPU s", reports, |r| {
        format!("{:.2}", r.client_cpu)
    });
    row("verdict", reports, |r| {
        if r.lossless() { "lossless" } else { "LOSSY" }.to_string()
    });
}

/// Prints, for each round with both servers, desk / floor for the p99 delivery latency and
/// the memory per stream.
fn print_ratios(reports: &[Report]) {
    let ratio = |desk: f64, floor: f64| {
        if floor > 0.0 && desk.is_finite() {
            format!("{:.2}x", desk / floor)
        } else {
            "n/a".to_string()
        }
    };
    for desk in reports.iter().filter(|r| r.side == Side::Desk) {
        let Some(floor) = reports
            .iter()
            .find(|r| r.side == Side::Floor && r.round == desk.round)
        else {
            continue;
        };
        println!(
            "round {} desk/floor: p99 delivery latency {}, memory per stream {}",
            desk.round,
            ratio(
                desk.latency.percentile_ms(0.99),
                floor.latency.percentile_ms(0.99)
            ),
            if desk.round == 1 {
                ratio(
                    desk.kb_per_stream(desk.rss_end_kb),
                    floor.kb_per_stream(floor.rss_end_kb),
                )
            } else {
                // The same processes serve every round: from the second on, streams reuse
                // memory the first round's freed, and the growth says little.
                "n/a after the first round".to_string()
            },
        );
    }
}

/// Checks the flags make a measurement.
fn validate(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.subscribers > 0, "--subscribers must be at least 1");
    anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
    anyhow::ensure!(
        u64::from(args.rate) >= EVENTS_PER_INQUIRY,
        "--rate must be at least {EVENTS_PER_INQUIRY} (one inquiry a second)"
    );
    anyhow::ensure!(args.seconds > 0, "--seconds must be at least 1");
    anyhow::ensure!(args.rounds > 0, "--rounds must be at least 1");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    validate(&args)?;
    let sides: Vec<Side> = match args.target_only {
        Some(side) => vec![side],
        None => vec![Side::Desk, Side::Floor],
    };
    let mut desk = Some(Spawned::desk(
        args.server_bin.as_deref(),
        &args.server_args,
    )?);
    let floor = if sides.contains(&Side::Floor) {
        let answer = first_tier_answer(desk.as_ref().context("the desk")?).await?;
        Some(Spawned::floor(&[
            "--answer-hex".to_string(),
            hex::encode(answer),
        ])?)
    } else {
        None
    };
    if !sides.contains(&Side::Desk) {
        // Measured alone, the floor shares the machine with nothing.
        if let Some(mut desk) = desk.take() {
            desk.stop()?;
        }
    }
    println!(
        "{} streams on {} connections, {} events/s ({:.0} inquiries/s) for {} s, {} round(s)",
        args.subscribers,
        args.connections,
        args.rate,
        f64::from(args.rate) / EVENTS_PER_INQUIRY as f64,
        args.seconds,
        args.rounds
    );
    let mut reports = Vec::new();
    let mut floor_head = 0;
    for round in 1..=args.rounds {
        let mut order = sides.clone();
        if round % 2 == 0 {
            order.reverse();
        }
        for side in order {
            let server = match side {
                Side::Desk => desk.as_ref(),
                Side::Floor => floor.as_ref(),
            }
            .context("a server to measure")?;
            let report = measure(&args, side, server, floor_head, round).await?;
            if side == Side::Floor {
                floor_head = report.head;
            }
            print_report(&report);
            reports.push(report);
        }
    }
    print_table(&reports);
    print_ratios(&reports);
    for (name, server) in [("desk", desk), ("floor", floor)] {
        if let Some(Err(e)) = server.map(|mut server| server.stop()) {
            eprintln!("stopping the {name}: {e:#}");
        }
    }
    Ok(())
}
