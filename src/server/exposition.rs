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

use crate::domain::mesh::{AgentKind, Availability};
use crate::metrics::Metrics;
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
    if let Some(desk) = desk {
        match desk.status().await {
            Ok(status) => desk_gauges(&scrape.metrics, &status),
            Err(e) => tracing::debug!(error = %e, "no desk status for the metrics"),
        }
    }
    let (text, content_type) = scrape.metrics.render();
    ([(CONTENT_TYPE, content_type)], text)
}

/// Sets the gauges read from the desk.
fn desk_gauges(metrics: &Metrics, status: &DeskStatus) {
    let report = &status.report;
    metrics.open_tickets.set(report.open_tickets as i64);
    metrics.queued_tickets.set(report.queued_tickets as i64);
    let unassigned = report.reviews.unassigned as i64;
    let assigned = report.reviews.active as i64 - unassigned;
    metrics
        .pending_reviews
        .with_label_values(&["true"])
        .set(assigned);
    metrics
        .pending_reviews
        .with_label_values(&["false"])
        .set(unassigned);
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
