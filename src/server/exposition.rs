//! The metrics listener (`--metrics-listen`): `GET /metrics` in the Prometheus text format over
//! plain HTTP, apart from the gRPC port so that a scrape never competes with the desk's calls
//! for their limits. The desk's gauges are read from the desk at each scrape, on the server
//! that leads it; a follower exports its own calls, streams, log head and process.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::domain::desk::Gauges;
use crate::domain::mesh::{AgentKind, Availability};
use crate::metrics::{Metrics, OPEN_STATUSES, REVIEW_PRIORITIES};
use crate::runtime::{DeskHandle, DeskStatus};

#[derive(Clone)]
struct Scrape {
    metrics: Arc<Metrics>,
    leading: watch::Receiver<Option<DeskHandle>>,
}

/// Listens on `addr` and serves `/metrics` until `stop`.
pub(super) async fn start(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    leading: watch::Receiver<Option<DeskHandle>>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr}"))?;
    tracing::info!(address = %listener.local_addr()?, "serving metrics at /metrics");
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .with_state(Scrape { metrics, leading });
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the metrics listener failed");
        }
    });
    Ok(())
}

async fn scrape(State(scrape): State<Scrape>) -> impl IntoResponse {
    let desk = scrape.leading.borrow().clone();
    scrape.metrics.leading.set(i64::from(desk.is_some()));
    match desk {
        Some(desk) => measure(&scrape.metrics, &desk).await,
        // A follower, or a server that stopped leading: the leader's scrape shows the desk.
        None => scrape.metrics.forget_desk(),
    }
    let (text, content_type) = scrape.metrics.render();
    ([(CONTENT_TYPE, content_type)], text)
}

/// Sets the gauges read from the desk this server leads.
async fn measure(metrics: &Metrics, desk: &DeskHandle) {
    match desk.measure().await {
        Ok((status, gauges, now_ms)) => {
            desk_gauges(metrics, &status);
            work_gauges(metrics, &gauges, now_ms);
        }
        Err(e) => {
            tracing::debug!(error = %e, "no desk status for the metrics");
            metrics.forget_desk();
        }
    }
    match desk.read(|store| store.retained()).await {
        Ok(retained) => metrics.log_oldest.set(retained.oldest_seq as i64),
        Err(e) => tracing::debug!(error = %e, "no retained log for the metrics"),
    }
}

/// Sets the gauges counted over the open work: every label value, zero where none is.
fn work_gauges(metrics: &Metrics, gauges: &Gauges, now_ms: i64) {
    for status in OPEN_STATUSES {
        let count = gauges.tickets.get(&status).copied().unwrap_or(0);
        metrics
            .tickets
            .with_label_values(&[status.as_str()])
            .set(count as i64);
    }
    let waited_ms = gauges
        .oldest_queued_ms
        .map_or(0, |queued| (now_ms - queued).max(0));
    metrics.queue_oldest_seconds.set(waited_ms as f64 / 1000.0);
    for priority in REVIEW_PRIORITIES {
        for (assigned, label) in [(true, "true"), (false, "false")] {
            let count = gauges
                .reviews
                .get(&(priority, assigned))
                .copied()
                .unwrap_or(0);
            metrics
                .pending_reviews
                .with_label_values(&[label, priority.as_str()])
                .set(count as i64);
        }
    }
}

/// Sets the gauges read from the desk's status.
fn desk_gauges(metrics: &Metrics, status: &DeskStatus) {
    let report = &status.report;
    metrics.open_tickets.set(report.open_tickets as i64);
    metrics.queued_tickets.set(report.queued_tickets as i64);
    let mut remote = 0;
    for tier in &report.tiers {
        let name = tier.tier.name.as_str();
        let load: u32 = tier.agents.iter().map(|a| a.load).sum();
        let capacity: u32 = tier
            .agents
            .iter()
            .filter(|a| a.availability == Availability::Available)
            .map(|a| a.capacity)
            .sum();
        metrics
            .agent_load
            .with_label_values(&[name])
            .set(i64::from(load));
        metrics
            .agent_capacity
            .with_label_values(&[name])
            .set(i64::from(capacity));
        remote += tier
            .agents
            .iter()
            .filter(|a| a.kind == AgentKind::Remote && a.attached_by.is_some())
            .count() as i64;
    }
    metrics.remote_agents.set(remote);
}
