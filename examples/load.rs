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

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::Parser;
use servicedesk::proto::v1::desk_service_client::DeskServiceClient;
use servicedesk::proto::v1::HandleInquiryRequest;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::Request;

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
    let key: AsciiMetadataValue = args.api_key.parse()?;
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        let channel: Channel = Endpoint::from_shared(args.target.clone())?
            .tcp_nodelay(true)
            .connect()
            .await?;
        channels.push(channel);
    }
    let warmup_end = Instant::now() + Duration::from_secs(1);
    let end = warmup_end + Duration::from_secs(args.seconds);
    let mut workers = Vec::new();
    for worker in 0..args.concurrency {
        let mut client = DeskServiceClient::new(channels[worker % channels.len()].clone());
        let key = key.clone();
        let mix = args.mix;
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut n = 0usize;
            while Instant::now() < end {
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
                let started = Instant::now();
                let result = client.handle_inquiry(request).await;
                samples.push(Sample {
                    latency: started.elapsed(),
                    error: result.err().map(|s| s.code()),
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
    println!(
        "HandleInquiry: concurrency {} over {} connection(s), {} s{}",
        args.concurrency,
        channels.len(),
        args.seconds,
        if args.mix { ", mixed inquiries" } else { "" }
    );
    println!(
        "ok {ok}  throughput {:.0}/s  latency ms p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        ok as f64 / args.seconds as f64,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0)
    );
    if errors.is_empty() {
        println!("errors: none");
    } else {
        println!("errors: {errors:?}");
    }
    Ok(())
}
