//! Three servers sharing one desk in PostgreSQL: how fast a watch on a follower delivers
//! compared with one on the leader, and how long a failover takes from the leader's SIGKILL to
//! the first inquiry a new leader acknowledges.
//!
//! ```text
//! cargo build --release --bins --examples
//! target/release/examples/replicas --url postgres://postgres@127.0.0.1:5432/test
//! ```
//!
//! It works in a fresh schema of that database, dropped at the end.

#[path = "support/spawned.rs"]
mod spawned;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use servicedesk::proto::v1::admin_service_client::AdminServiceClient;
use servicedesk::proto::v1::desk_event::Event;
use servicedesk::proto::v1::desk_service_client::DeskServiceClient;
use servicedesk::proto::v1::{
    GetDeskStatusRequest, HandleInquiryRequest, ListTicketsRequest, WatchEventsRequest,
};
use servicedesk::store::postgres::Database;
use spawned::Spawned;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;

#[derive(Parser)]
struct Args {
    /// The PostgreSQL database (a fresh schema is made in it).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    url: String,
    /// The desk's lease TTL, seconds.
    #[arg(long, default_value_t = 5)]
    lease_ttl_secs: u64,
    /// Leaders killed, one after the other.
    #[arg(long, default_value_t = 3)]
    kills: usize,
    /// Inquiries per second while the watches are timed.
    #[arg(long, default_value_t = 100)]
    rate: u64,
    /// Seconds the watches are timed.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

const KEY: &str = "test-key-123";
const ADMIN: &str = "admin-key-456";

fn keyed<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let key: AsciiMetadataValue = key.parse().expect("an ASCII key");
    request.metadata_mut().insert("x-api-key", key);
    request.set_timeout(Duration::from_secs(5));
    request
}

async fn channel(addr: &str) -> anyhow::Result<Channel> {
    Ok(Channel::from_shared(addr.to_string())?.connect().await?)
}

/// The address of the server leading the desk, as `server` says.
async fn leader_of(server: &Spawned) -> anyhow::Result<String> {
    let mut admin = AdminServiceClient::new(channel(&server.addr).await?);
    let status = admin
        .get_desk_status(keyed(GetDeskStatusRequest {}, ADMIN))
        .await?
        .into_inner();
    Ok(status
        .leader
        .context("a shared desk names its leader")?
        .address)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// A fresh schema in `url`, and the URL of a desk in it.
fn new_schema(url: &str) -> anyhow::Result<(String, String)> {
    let schema = format!("sd_replicas_{:08x}", rand::random::<u32>());
    let mut client = Database::new(url)?.connect()?;
    client.batch_execute(&format!("CREATE SCHEMA {schema}"))?;
    let separator = if url.contains('?') { '&' } else { '?' };
    Ok((
        schema.clone(),
        format!("{url}{separator}options=-csearch_path%3D{schema}"),
    ))
}

fn drop_schema(url: &str, schema: &str) {
    if let Ok(mut client) = Database::new(url).and_then(|database| database.connect()) {
        let _ = client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let url = args.url.clone();
    let (schema, desk_url) = tokio::task::spawn_blocking(move || new_schema(&url)).await??;
    let result = run(&args, &desk_url).await;
    let (url, dropped) = (args.url.clone(), schema.clone());
    tokio::task::spawn_blocking(move || drop_schema(&url, &dropped)).await?;
    result
}

async fn run(args: &Args, desk_url: &str) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("servicedesk.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nurl = \"{desk_url}\"\nlease_ttl_secs = {}\n",
            args.lease_ttl_secs
        ),
    )?;
    let extra = vec!["--config".to_string(), config.display().to_string()];
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(Spawned::desk(None, &extra)?);
    }
    watch_latency(args, &servers).await?;

    let ttl = Duration::from_secs(args.lease_ttl_secs);
    let mut failovers = Vec::new();
    for kill in 0..args.kills {
        let leader = leader_of(&servers[0]).await?;
        let at = servers
            .iter()
            .position(|s| s.addr == leader)
            .context("the leader is one of ours")?;
        let survivor = servers[(at + 1) % servers.len()].addr.clone();
        let mut desk = DeskServiceClient::new(channel(&survivor).await?);
        let killed = Instant::now();
        drop(servers.remove(at));
        let mut n = 0;
        loop {
            n += 1;
            let inquiry = HandleInquiryRequest {
                customer_id: format!("failover_{kill}_{n}"),
                inquiry: "How do I reset my password?".into(),
                ..Default::default()
            };
            if desk.handle_inquiry(keyed(inquiry, KEY)).await.is_ok() {
                break;
            }
            anyhow::ensure!(
                killed.elapsed() < Duration::from_secs(60),
                "no failover within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let took = killed.elapsed();
        println!(
            "failover {}: {:.2} s from SIGKILL to the first acknowledged inquiry ({:.2}x the lease TTL)",
            kill + 1,
            took.as_secs_f64(),
            took.as_secs_f64() / ttl.as_secs_f64()
        );
        failovers.push(took);
        servers.push(Spawned::desk(None, &extra)?);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    if let Some(worst) = failovers.iter().max() {
        println!(
            "failover worst {:.2} s = {:.2}x the lease TTL of {} s (goal <= 2x)",
            worst.as_secs_f64(),
            worst.as_secs_f64() / ttl.as_secs_f64(),
            ttl.as_secs()
        );
    }
    for mut server in servers {
        server.stop()?;
    }
    Ok(())
}

/// Inquiries at a steady rate to the leader, watched from the leader and from a follower:
/// the time from each inquiry's sending to its ticket's first event on either watch.
async fn watch_latency(args: &Args, servers: &[Spawned]) -> anyhow::Result<()> {
    let leader = leader_of(&servers[0]).await?;
    let follower = servers
        .iter()
        .find(|s| s.addr != leader)
        .context("a follower")?
        .addr
        .clone();
    let head = DeskServiceClient::new(channel(&leader).await?)
        .list_tickets(keyed(ListTicketsRequest::default(), ADMIN))
        .await?
        .into_inner()
        .sequence;
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut watchers = Vec::new();
    let total = args.rate * args.seconds;
    for addr in [leader.clone(), follower.clone()] {
        let mut admin = AdminServiceClient::new(channel(&addr).await?);
        let mut stream = admin
            .watch_events(keyed(
                WatchEventsRequest {
                    after_sequence: head,
                    ..Default::default()
                },
                ADMIN,
            ))
            .await?
            .into_inner();
        let sent = sent.clone();
        watchers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while let Ok(Some(event)) = stream.message().await {
                if let Some(Event::Ticket(t)) = &event.event {
                    let customer = &t.ticket.as_ref().expect("a ticket").customer_id;
                    if let Some(at) = sent.lock().unwrap().get(customer) {
                        if latencies.len() < total as usize
                            && t.r#type == servicedesk::proto::v1::TicketEventType::Created as i32
                        {
                            latencies.push(at.elapsed());
                        }
                    }
                }
                if latencies.len() == total as usize {
                    break;
                }
            }
            latencies
        }));
    }
    let desk = DeskServiceClient::new(channel(&leader).await?);
    let every = Duration::from_secs_f64(1.0 / args.rate as f64);
    let started = Instant::now();
    let mut calls = Vec::new();
    for n in 0..total {
        tokio::time::sleep_until((started + every * n as u32).into()).await;
        let customer = format!("latency_{n}");
        sent.lock()
            .unwrap()
            .insert(customer.clone(), Instant::now());
        let mut desk = desk.clone();
        calls.push(tokio::spawn(async move {
            let inquiry = HandleInquiryRequest {
                customer_id: customer,
                inquiry: "How do I reset my password?".into(),
                ..Default::default()
            };
            desk.handle_inquiry(keyed(inquiry, KEY)).await.is_ok()
        }));
    }
    for call in calls {
        anyhow::ensure!(call.await?, "an inquiry failed");
    }
    let mut results = Vec::new();
    for watcher in watchers {
        let mut latencies = tokio::time::timeout(Duration::from_secs(30), watcher)
            .await
            .context("a watch fell behind")??;
        anyhow::ensure!(latencies.len() == total as usize, "a watch missed events");
        latencies.sort();
        results.push(latencies);
    }
    let (on_leader, on_follower) = (&results[0], &results[1]);
    for (name, l) in [("leader", on_leader), ("follower", on_follower)] {
        println!(
            "watch on the {name}: {} tickets, send to first event p50 {:.1} ms, p99 {:.1} ms",
            l.len(),
            percentile(l, 0.5).as_secs_f64() * 1e3,
            percentile(l, 0.99).as_secs_f64() * 1e3
        );
    }
    println!(
        "follower / leader: p50 {:.2}x, p99 {:.2}x",
        percentile(on_follower, 0.5).as_secs_f64() / percentile(on_leader, 0.5).as_secs_f64(),
        percentile(on_follower, 0.99).as_secs_f64() / percentile(on_leader, 0.99).as_secs_f64()
    );
    Ok(())
}
