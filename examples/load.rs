//! The desk's benchmark: a closed-loop load generator. N workers each send their next call as
//! soon as the previous one is answered, for a fixed time, and it prints throughput, latency
//! percentiles and errors by code.
//!
//! ```text
//! cargo build --release --examples
//! cargo run --release --example load -- --spawn --mix first-tier --rounds 3
//! cargo run --release --example load -- --target http://127.0.0.1:50051 --mix climb
//! ```
//!
//! `--spawn` starts the release binary beside this one (or `--server-bin`) with `serve --dev` on
//! a fresh temporary data directory and a free port, and stops it at the end; `--target` uses a
//! running server.
//!
//! `--mix` names what each worker does in a loop:
//! - `first-tier`: `HandleInquiry` that the first tier answers;
//! - `climb`: `HandleInquiry` that climbs the tiers and ends in a human review;
//! - `review`: `HandleInquiry` that policy sends straight to review;
//! - `decide`: a review (as `review`), then `ApproveEscalation` of it with the admin key: one
//!   loop is both calls;
//! - `read`: `GetTicket` and `ListTickets` of the worker's own tickets;
//! - `mixed`: the five above in turn.
//!
//! `--rounds N` measures `grpc.health.v1.Health/Check` on the same server, with the same
//! workers and connections, in rounds alternating with the mix, and prints the ratio of the two
//! throughputs: on a machine whose speed swings from run to run, the ratio to a no-op call of
//! the same server is the figure that compares.
//!
//! `--floor` (with `--spawn` and `--rounds`) also starts the `floor` example, a bare tonic
//! `HandleInquiry` that stores one row per call with group commit and does nothing of the desk,
//! answering with a ticket the desk answered; each round then measures it too, and prints the
//! mix's ratio to it: how far the desk is from the least a durable `HandleInquiry` costs here.
//!
//! `--traces` (with `--spawn`) has the server export its traces over OTLP/gRPC to a collector
//! inside this example, which counts the spans it receives, and sends a sampled W3C
//! `traceparent` with every call: what tracing costs, beside `--server-arg=--metrics-listen=...`
//! for what metrics cost.
//!
//! `--agents N` adds N built-in agents (spread over the tiers and topics) before measuring;
//! `--footprint` (with `--spawn`) stops the server cleanly after measuring and prints the bytes
//! its data directory holds per ticket.

#[path = "support/collector.rs"]
mod collector;
#[path = "support/spawned.rs"]
mod spawned;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use prost::Message;
use servicedesk::proto::v1::admin_service_client::AdminServiceClient;
use servicedesk::proto::v1::desk_service_client::DeskServiceClient;
use servicedesk::proto::v1::escalation_service_client::EscalationServiceClient;
use servicedesk::proto::v1::{
    ApproveEscalationRequest, CreateAgentRequest, GetDeskStatusRequest, GetTicketRequest,
    HandleInquiryRequest, ListTicketsRequest, TicketStatus,
};
use spawned::Spawned;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

#[derive(Parser)]
#[command(about = "Closed-loop load against a servicedesk, with the ratio to Health/Check")]
struct Args {
    /// Server address, e.g. http://127.0.0.1:50051 (ignored with --spawn).
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    target: String,
    /// Start the release binary beside this example on a fresh data directory, and stop it at
    /// the end.
    #[arg(long)]
    spawn: bool,
    /// With --spawn: the server binary to start, e.g. an older build to compare with (the
    /// release binary beside this example by default).
    #[arg(long)]
    server_bin: Option<std::path::PathBuf>,
    /// Further arguments for the spawned `servicedesk serve`, e.g. `--server-arg=--config=x.toml`.
    #[arg(long = "server-arg")]
    server_args: Vec<String>,
    /// What each worker does in a loop.
    #[arg(long, value_enum, default_value_t = Mix::FirstTier)]
    mix: Mix,
    /// An API key with customer_service and escalation (the dev key by default).
    #[arg(long, default_value = "test-key-123")]
    api_key: String,
    /// An API key with admin, for --agents (the dev key by default).
    #[arg(long, default_value = "admin-key-456")]
    admin_key: String,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long to measure, after a one-second warm-up.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// HTTP/2 connections the workers share (round-robin).
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Alternate this many rounds of Health/Check and the mix and print their ratio; 0
    /// measures the mix alone.
    #[arg(long, default_value_t = 0)]
    rounds: usize,
    /// Built-in agents to add before measuring.
    #[arg(long, default_value_t = 0)]
    agents: usize,
    /// With --spawn: stop the server after measuring and print its bytes on disk per ticket.
    #[arg(long)]
    footprint: bool,
    /// With --spawn and --rounds: also start the `floor` example beside this one and measure
    /// its first-tier `HandleInquiry` in every round.
    #[arg(long)]
    floor: bool,
    /// With --spawn: the server exports its traces to a collector in this example, and every
    /// call carries a sampled traceparent.
    #[arg(long)]
    traces: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mix {
    FirstTier,
    Climb,
    Review,
    Decide,
    Read,
    Mixed,
}

/// One kind of loop a worker runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Health,
    FirstTier,
    Climb,
    Review,
    Decide,
    Read,
}

impl Mix {
    fn ops(self) -> &'static [Op] {
        match self {
            Mix::FirstTier => &[Op::FirstTier],
            Mix::Climb => &[Op::Climb],
            Mix::Review => &[Op::Review],
            Mix::Decide => &[Op::Decide],
            Mix::Read => &[Op::Read],
            Mix::Mixed => &[Op::FirstTier, Op::Climb, Op::Review, Op::Decide, Op::Read],
        }
    }
}

/// The first tier answers it from the knowledge base.
const FIRST_TIER: &str = "How do I reset my password?";
/// No tier is sure enough: it climbs (for the default desk's `general` topic, L2 then the
/// Expert) and ends with a human.
const CLIMBS: &str = "Something odd happened with my thing yesterday";
/// Policy sends a refund request of priority 8 straight to review.
const REVIEWED: &str = "I was charged twice for my subscription this month and need a refund";

/// The clients one worker calls through, all on one connection, with the keys attached.
#[derive(Clone)]
struct Clients {
    desk: DeskServiceClient<Channel>,
    reviews: EscalationServiceClient<Channel>,
    health: HealthClient<Channel>,
    key: AsciiMetadataValue,
    /// The admin key: decisions are taken as an admin, who may decide any review.
    admin_key: AsciiMetadataValue,
    /// Every call carries a sampled traceparent of a trace of its own.
    traced: bool,
}

impl Clients {
    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.metadata_mut().insert("x-api-key", self.key.clone());
        if self.traced {
            let parent = format!(
                "00-{:032x}-{:016x}-01",
                rand::random::<u128>() | 1,
                rand::random::<u64>() | 1
            );
            if let Ok(parent) = parent.parse() {
                request.metadata_mut().insert("traceparent", parent);
            }
        }
        request.set_timeout(Duration::from_secs(30));
        request
    }

    /// Asks `inquiry` and checks it ended with the status `op` expects (a mix that silently did
    /// something else would measure the wrong thing). Returns the review's id, if any, and the
    /// outcome with the tiers the ticket went through, e.g. `AwaitingReview via L1>L2`.
    async fn ask(
        &mut self,
        customer: String,
        inquiry: &str,
        priority: i32,
        op: Op,
    ) -> Result<(String, String), Failure> {
        let request = self.request(HandleInquiryRequest {
            customer_id: customer,
            inquiry: inquiry.to_string(),
            priority,
            ..Default::default()
        });
        let answer = self.desk.handle_inquiry(request).await?.into_inner();
        let ticket = answer.ticket.unwrap_or_default();
        let tiers: Vec<&str> = ticket
            .resolution_path
            .iter()
            .map(|s| s.tier.as_str())
            .collect();
        let outcome = format!("{:?} via {}", ticket.status(), tiers.join(">"));
        let expected = match op {
            Op::FirstTier | Op::Read => TicketStatus::Resolved,
            _ => TicketStatus::AwaitingReview,
        };
        if ticket.status() != expected {
            return Err(Failure::Outcome(format!("{op:?} ended {outcome}")));
        }
        Ok((answer.escalation_id, outcome))
    }

    /// One loop of `op`; `n` numbers the worker's loops.
    async fn run(
        &mut self,
        op: Op,
        worker: usize,
        n: usize,
        own: &mut Vec<String>,
    ) -> Result<Option<String>, Failure> {
        let customer = format!("load_{worker}_{}", n % 64);
        match op {
            Op::Health => {
                let request = self.request(HealthCheckRequest {
                    service: "servicedesk.v1.DeskService".into(),
                });
                self.health.check(request).await?;
            }
            Op::FirstTier => return Ok(Some(self.ask(customer, FIRST_TIER, 5, op).await?.1)),
            Op::Climb => return Ok(Some(self.ask(customer, CLIMBS, 5, op).await?.1)),
            Op::Review => return Ok(Some(self.ask(customer, REVIEWED, 8, op).await?.1)),
            Op::Decide => {
                let (escalation_id, _) = self.ask(customer, REVIEWED, 8, op).await?;
                let mut request = self.request(ApproveEscalationRequest {
                    escalation_id,
                    comments: "approved under load".into(),
                    ..Default::default()
                });
                request
                    .metadata_mut()
                    .insert("x-api-key", self.admin_key.clone());
                self.reviews.approve_escalation(request).await?;
            }
            Op::Read => {
                if own.is_empty() {
                    let request = self.request(HandleInquiryRequest {
                        customer_id: customer.clone(),
                        inquiry: FIRST_TIER.into(),
                        ..Default::default()
                    });
                    let answer = self.desk.handle_inquiry(request).await?.into_inner();
                    own.push(answer.ticket.map(|t| t.ticket_id).unwrap_or_default());
                }
                if n.is_multiple_of(2) {
                    let request = self.request(GetTicketRequest {
                        ticket_id: own[n % own.len()].clone(),
                    });
                    self.desk.get_ticket(request).await?;
                } else {
                    let request = self.request(ListTicketsRequest {
                        customer_id: customer,
                        page_size: 10,
                        ..Default::default()
                    });
                    self.desk.list_tickets(request).await?;
                }
            }
        }
        Ok(None)
    }
}

/// Why one loop failed: the server's status, or an answer the mix did not expect.
enum Failure {
    Status(Code),
    Outcome(String),
}

impl From<Status> for Failure {
    fn from(status: Status) -> Self {
        Failure::Status(status.code())
    }
}

struct Sample {
    latency: Duration,
    /// What the call ended as, or why it failed.
    result: Result<Option<String>, Failure>,
    measured: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        !args.floor || (args.spawn && args.rounds > 0),
        "--floor needs --spawn and --rounds"
    );
    anyhow::ensure!(!args.traces || args.spawn, "--traces needs --spawn");
    let collector = if args.traces {
        Some(collector::Collector::start().await?)
    } else {
        None
    };
    let env: Vec<(String, String)> = collector
        .iter()
        .map(|c| {
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT".to_string(),
                format!("http://{}", c.addr),
            )
        })
        .collect();
    let mut spawned = if args.spawn {
        Some(Spawned::desk_with_env(
            args.server_bin.as_deref(),
            &args.server_args,
            &env,
        )?)
    } else {
        None
    };
    let target = spawned
        .as_ref()
        .map_or(args.target.clone(), |s| s.addr.clone());
    let channels = connect(&target, args.connections).await?;
    if args.agents > 0 {
        add_agents(&args, &channels[0]).await?;
    }
    println!(
        "mix {:?}, concurrency {} over {} connection(s), {} s per measurement",
        args.mix,
        args.concurrency,
        channels.len(),
        args.seconds,
    );
    let floor = if args.floor {
        let answer = first_tier_answer(&args, &channels[0]).await?;
        let floor = Spawned::floor(&["--answer-hex".to_string(), hex::encode(answer)])?;
        let channels = connect(&floor.addr, args.connections).await?;
        Some((floor, channels))
    } else {
        None
    };
    let mix_name = format!("{:?}", args.mix);
    if args.rounds == 0 {
        measure(&args, &channels, args.mix.ops(), &mix_name).await?;
    } else {
        let mut ratios = Vec::new();
        let mut floor_ratios = Vec::new();
        for round in 1..=args.rounds {
            println!("round {round}");
            let health = measure(&args, &channels, &[Op::Health], "Health/Check").await?;
            let mix = measure(&args, &channels, args.mix.ops(), &mix_name).await?;
            ratios.push(mix / health);
            let mut line = format!("  ratio {:.3}x", mix / health);
            if let Some((_, floor_channels)) = &floor {
                let least = measure(&args, floor_channels, &[Op::FirstTier], "floor").await?;
                floor_ratios.push((least / health, mix / least));
                line += &format!(
                    "; floor / Health/Check {:.3}x; {mix_name} / floor {:.3}x",
                    least / health,
                    mix / least
                );
            }
            println!("{line}");
        }
        summary(&format!("{mix_name} / Health/Check"), &ratios);
        if floor.is_some() {
            let (to_health, to_floor): (Vec<f64>, Vec<f64>) = floor_ratios.into_iter().unzip();
            summary("floor / Health/Check", &to_health);
            summary(&format!("{mix_name} / floor"), &to_floor);
        }
    }
    if args.footprint {
        let Some(server) = spawned.as_mut() else {
            anyhow::bail!("--footprint needs --spawn");
        };
        let mut admin = AdminServiceClient::new(channels[0].clone());
        let mut request = Request::new(GetDeskStatusRequest::default());
        request
            .metadata_mut()
            .insert("x-api-key", args.admin_key.parse()?);
        let status = admin.get_desk_status(request).await?.into_inner();
        let tickets = status.total_handled + status.open_tickets;
        drop(channels);
        server.stop()?;
        let bytes = server.bytes_on_disk()?;
        println!(
            "footprint: {bytes} bytes in the data directory after a clean stop, {tickets} tickets: {:.0} bytes per ticket",
            bytes as f64 / tickets.max(1) as f64
        );
    }
    if let (Some(collector), Some(server)) = (&collector, spawned.as_mut()) {
        // Stopping flushes what the server still buffers (--footprint stopped it already).
        if !args.footprint {
            server.stop()?;
        }
        println!("traces: the collector received {} spans", collector.spans());
    }
    Ok(())
}

/// `connections` HTTP/2 connections to `target`.
async fn connect(target: &str, connections: usize) -> anyhow::Result<Vec<Channel>> {
    let mut channels = Vec::new();
    for _ in 0..connections.max(1) {
        let channel: Channel = Endpoint::from_shared(target.to_string())?
            .tcp_nodelay(true)
            .connect()
            .await?;
        channels.push(channel);
    }
    Ok(channels)
}

/// Prints one ratio of every round and their mean.
fn summary(what: &str, ratios: &[f64]) {
    let mean = ratios.iter().sum::<f64>() / ratios.len().max(1) as f64;
    let listed: Vec<String> = ratios.iter().map(|r| format!("{r:.3}")).collect();
    println!(
        "{what} over {} rounds: {} (mean {mean:.3}x)",
        ratios.len(),
        listed.join(", ")
    );
}

/// One first-tier answer of the desk, encoded: what the floor answers and stores for every
/// call, so the two move the same bytes.
async fn first_tier_answer(args: &Args, channel: &Channel) -> anyhow::Result<Vec<u8>> {
    let mut request = Request::new(HandleInquiryRequest {
        customer_id: "load_floor".into(),
        inquiry: FIRST_TIER.into(),
        priority: 5,
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("x-api-key", args.api_key.parse()?);
    let answer = DeskServiceClient::new(channel.clone())
        .handle_inquiry(request)
        .await?
        .into_inner();
    Ok(answer.encode_to_vec())
}

/// Adds `args.agents` built-in agents, round-robin over the tiers and the default topics.
async fn add_agents(args: &Args, channel: &Channel) -> anyhow::Result<()> {
    const TIERS: [&str; 3] = ["L1", "L2", "Expert"];
    const TOPICS: [&str; 4] = ["billing", "technical", "account", "general"];
    let key: AsciiMetadataValue = args.admin_key.parse()?;
    let started = Instant::now();
    let mut admin = AdminServiceClient::new(channel.clone());
    for i in 0..args.agents {
        let mut request = Request::new(CreateAgentRequest {
            name: format!("Bench_{i}"),
            tier: TIERS[i % TIERS.len()].into(),
            specialties: vec![TOPICS[i % TOPICS.len()].into()],
            capacity: 5,
            ..Default::default()
        });
        request.metadata_mut().insert("x-api-key", key.clone());
        admin.create_agent(request).await?;
    }
    println!(
        "added {} agents in {:.1} s",
        args.agents,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One closed-loop measurement of `ops` in turn, printed as `name`; returns the loops
/// completed per second.
async fn measure(args: &Args, channels: &[Channel], ops: &[Op], name: &str) -> anyhow::Result<f64> {
    let key: AsciiMetadataValue = args.api_key.parse()?;
    let admin_key: AsciiMetadataValue = args.admin_key.parse()?;
    let warmup_end = Instant::now() + Duration::from_secs(1);
    let end = warmup_end + Duration::from_secs(args.seconds);
    let ops = ops.to_vec();
    let mut workers = Vec::new();
    for worker in 0..args.concurrency {
        let channel = channels[worker % channels.len()].clone();
        let mut clients = Clients {
            desk: DeskServiceClient::new(channel.clone()),
            reviews: EscalationServiceClient::new(channel.clone()),
            health: HealthClient::new(channel),
            key: key.clone(),
            admin_key: admin_key.clone(),
            traced: args.traces,
        };
        let ops = ops.clone();
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut own = Vec::new();
            let mut n = 0usize;
            while Instant::now() < end {
                let op = ops[(worker + n) % ops.len()];
                let started = Instant::now();
                let result = clients.run(op, worker, n, &mut own).await;
                samples.push(Sample {
                    latency: started.elapsed(),
                    result,
                    measured: started >= warmup_end,
                });
                n += 1;
            }
            samples
        }));
    }
    let mut latencies = Vec::new();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for worker in workers {
        for sample in worker.await? {
            if !sample.measured {
                continue;
            }
            match sample.result {
                Ok(outcome) => {
                    latencies.push(sample.latency);
                    if let Some(outcome) = outcome {
                        *outcomes.entry(outcome).or_default() += 1;
                    }
                }
                Err(Failure::Status(code)) => *errors.entry(format!("{code:?}")).or_default() += 1,
                Err(Failure::Outcome(what)) => *errors.entry(what).or_default() += 1,
            }
        }
    }
    latencies.sort();
    let ok = latencies.len();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((ok as f64 * p).ceil() as usize).clamp(1, ok) - 1;
        latencies[i].as_secs_f64() * 1000.0
    };
    let throughput = ok as f64 / args.seconds as f64;
    println!(
        "  {name:>12}: ok {ok}  {throughput:.0}/s  latency ms p50 {:.2}  p99 {:.2}  p999 {:.2}  max {:.2}",
        pct(0.50),
        pct(0.99),
        pct(0.999),
        pct(1.0)
    );
    if !outcomes.is_empty() {
        println!("  {name:>12}: outcomes {outcomes:?}");
    }
    if !errors.is_empty() {
        println!("  {name:>12}: errors {errors:?}");
    }
    Ok(throughput)
}
