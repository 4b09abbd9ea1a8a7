//! A closed-loop load generator for `HandleInquiry`: N workers, each sending its next inquiry
//! as soon as the previous one is answered, for a fixed time. Prints throughput, latency
//! percentiles and errors by code.
//!
//! ```text
//! cargo run --release -- serve --dev --data-dir /tmp/desk-load &
//! cargo run --release --example load -- --target http://127.0.0.1:50051 \
//!     --api-key test-key-123 --concurrency 16 --seconds 20
//! ```
//!
//! `--mix` alternates the seed's inquiries (first-tier answers, tier escalations and policy
//! reviews) instead of sending only ones the first tier resolves.
//!
//! `--rounds N` measures `grpc.health.v1.Health/Check` on the same server, with the same
//! workers and connections, in rounds alternating with `HandleInquiry`, and prints the ratio
//! of the two throughputs: on a machine whose speed swings from run to run, the ratio to a
//! no-op call of the same server is the figure that compares.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::Parser;
use servicedesk::proto::v1::desk_service_client::DeskServiceClient;
use servicedesk::proto::v1::HandleInquiryRequest;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::Request;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

#[derive(Parser)]
#[command(about = "Closed-loop HandleInquiry load against a running servicedesk")]
struct Args {
    /// Server address, e.g. http://127.0.0.1:50051.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    target: String,
    /// An API key with the customer_service permission.
    #[arg(long, default_value = "test-key-123")]
    api_key: String,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// How long to measure, after a one-second warm-up.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// HTTP/2 connections the workers share (round-robin).
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Alternate inquiries that escalate and go to review, not only first-tier answers.
    #[arg(long)]
    mix: bool,
    /// Alternate this many rounds of Health/Check and HandleInquiry and print their ratio;
    /// 0 measures HandleInquiry alone.
    #[arg(long, default_value_t = 0)]
    rounds: usize,
}

/// What the workers call.
#[derive(Clone, Copy, PartialEq)]
enum Call {
    Inquiry,
    Health,
}

const RESOLVED_BY_L1: &str = "How do I reset my password?";
const MIX: &[(&str, i32)] = &[
    ("How do I reset my password?", 5),
    ("The app crashes with an error when I export a report", 5),
    ("How do I download my invoice?", 3),
    (
        "I was charged twice for my subscription this month and need a refund",
        8,
    ),
    ("What are your opening hours?", 2),
];

struct Sample {
    latency: Duration,
    error: Option<tonic::Code>,
    measured: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        let channel: Channel = Endpoint::from_shared(args.target.clone())?
            .tcp_nodelay(true)
            .connect()
            .await?;
        channels.push(channel);
    }
    println!(
        "concurrency {} over {} connection(s), {} s per measurement{}",
        args.concurrency,
        channels.len(),
        args.seconds,
        if args.mix { ", mixed inquiries" } else { "" }
    );
    if args.rounds == 0 {
        measure(&args, &channels, Call::Inquiry).await?;
        return Ok(());
    }
    let (mut inquiries, mut health) = (0.0, 0.0);
    for round in 1..=args.rounds {
        println!("round {round}");
        health += measure(&args, &channels, Call::Health).await?;
        inquiries += measure(&args, &channels, Call::Inquiry).await?;
    }
    println!(
        "HandleInquiry / Health/Check over {} rounds: {:.0}/s / {:.0}/s = {:.3}x",
        args.rounds,
        inquiries / args.rounds as f64,
        health / args.rounds as f64,
        inquiries / health
    );
    Ok(())
}

/// One closed-loop measurement of `call`; prints it and returns the calls answered per second.
async fn measure(args: &Args, channels: &[Channel], call: Call) -> anyhow::Result<f64> {
    let key: AsciiMetadataValue = args.api_key.parse()?;
    let warmup_end = Instant::now() + Duration::from_secs(1);
    let end = warmup_end + Duration::from_secs(args.seconds);
    let mut workers = Vec::new();
    for worker in 0..args.concurrency {
        let channel = channels[worker % channels.len()].clone();
        let mut client = DeskServiceClient::new(channel.clone());
        let mut health = HealthClient::new(channel);
        let key = key.clone();
        let mix = args.mix;
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut n = 0usize;
            while Instant::now() < end {
                let started = Instant::now();
                let error = if call == Call::Health {
                    let mut request = Request::new(HealthCheckRequest {
                        service: "servicedesk.v1.DeskService".into(),
                    });
                    request.set_timeout(Duration::from_secs(30));
                    health.check(request).await.err().map(|s| s.code())
                } else {
                    let (inquiry, priority) = if mix {
                        MIX[(worker + n) % MIX.len()]
                    } else {
                        (RESOLVED_BY_L1, 5)
                    };
                    let mut request = Request::new(HandleInquiryRequest {
                        customer_id: format!("load_{worker}_{n}"),
                        inquiry: inquiry.to_string(),
                        priority,
                        ..Default::default()
                    });
                    request.metadata_mut().insert("x-api-key", key.clone());
                    request.set_timeout(Duration::from_secs(30));
                    client.handle_inquiry(request).await.err().map(|s| s.code())
                };
                samples.push(Sample {
                    latency: started.elapsed(),
                    error,
                    measured: started >= warmup_end,
                });
                n += 1;
            }
            samples
        }));
    }
    let mut latencies = Vec::new();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for worker in workers {
        for sample in worker.await? {
            if !sample.measured {
                continue;
            }
            match sample.error {
                None => latencies.push(sample.latency),
                Some(code) => *errors.entry(format!("{code:?}")).or_default() += 1,
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
    let name = match call {
        Call::Inquiry => "HandleInquiry",
        Call::Health => "Health/Check",
    };
    let throughput = ok as f64 / args.seconds as f64;
    println!(
        "{name:>13}: ok {ok}  throughput {:.0}/s  latency ms p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        throughput,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0)
    );
    if !errors.is_empty() {
        println!("{name:>13}: errors {errors:?}");
    }
    Ok(throughput)
}
