//! The server's Prometheus metrics: one registry, the metrics every part records into, and
//! their text exposition. Names follow the ecosystem's: the gRPC server metrics are those of
//! go-grpc-middleware (`grpc_server_*`), the process metrics those of the Prometheus clients
//! (`process_*`), the desk's own start with `servicedesk_`. No label carries a ticket,
//! customer or key id: every label set is bounded (methods, codes, event kinds, tiers).
//!
//! Recording is a few atomic operations; a scrape renders what the registry holds after
//! [`Metrics::refresh`] has set the gauges read from the desk at that moment.

#[cfg(target_os = "linux")]
mod process;

use crate::domain::event::{EscalationEventKind, Event, EventBody, TicketEventKind};
use crate::domain::policy::ReviewPriority;
use crate::domain::ticket::TicketStatus;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// Buckets of call handling times, seconds: 1 ms to 60 s.
const HANDLING_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Buckets of commit times, seconds: 100 µs to 10 s.
const COMMIT_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 10.0,
];
/// Buckets of events per commit.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0];
/// Buckets of how many events a watch is behind the log's head.
const LAG_BUCKETS: &[f64] = &[
    0.0, 1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0,
];
/// The statuses of open tickets, as `servicedesk_tickets` labels them.
pub const OPEN_STATUSES: [TicketStatus; 3] = [
    TicketStatus::Queued,
    TicketStatus::Assigned,
    TicketStatus::AwaitingReview,
];
/// Review priorities, as `servicedesk_pending_reviews` labels them.
pub const REVIEW_PRIORITIES: [ReviewPriority; 4] = [
    ReviewPriority::Low,
    ReviewPriority::Medium,
    ReviewPriority::High,
    ReviewPriority::Urgent,
];

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    /// `grpc_server_*`, labelled `grpc_type`, `grpc_service`, `grpc_method` (and `grpc_code`).
    pub grpc_started: IntCounterVec,
    pub grpc_handled: IntCounterVec,
    pub grpc_received: IntCounterVec,
    pub grpc_sent: IntCounterVec,
    pub grpc_handling: HistogramVec,
    /// Calls refused by a load limit, by `limit` (`server`, `client`).
    pub shed: IntCounterVec,
    /// Events committed by this server, by `event` (`ticket_created`, `escalation_expired`,
    /// ...).
    pub events: IntCounterVec,
    pub commit_seconds: Histogram,
    pub commit_events: Histogram,
    /// The sequence of the last event this server committed or followed.
    pub log_head: IntGauge,
    /// The oldest sequence the log retains, read from the store at each scrape.
    pub log_oldest: IntGauge,
    /// Read from the desk at each scrape (on the server that leads it).
    pub open_tickets: IntGauge,
    /// Open tickets by `status`.
    pub tickets: IntGaugeVec,
    pub queued_tickets: IntGauge,
    pub queue_oldest_seconds: Gauge,
    /// By `assigned` and `priority`.
    pub pending_reviews: IntGaugeVec,
    pub agent_load: IntGaugeVec,
    pub agent_capacity: IntGaugeVec,
    pub remote_agents: IntGauge,
    pub leading: IntGauge,
    /// 1 while the store takes writes and keeps itself in shape, as the `servicedesk.store`
    /// health entry says; 0 otherwise.
    pub store_serving: IntGauge,
    /// Server streams open (watches and agent streams).
    pub open_streams: IntGauge,
    /// How far behind the log's head each event a watch hands over is.
    pub watch_lag: Histogram,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid counter");
    registry
        .register(Box::new(metric.clone()))
        .expect("registered once");
    metric
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let metric = IntGauge::new(name, help).expect("a valid gauge");
    registry
        .register(Box::new(metric.clone()))
        .expect("registered once");
    metric
}

fn gauges(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid gauge");
    registry
        .register(Box::new(metric.clone()))
        .expect("registered once");
    metric
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let metric = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        .expect("a valid histogram");
    registry
        .register(Box::new(metric.clone()))
        .expect("registered once");
    metric
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry of its own with every metric at zero, and the process's own metrics.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(process::ProcessCollector::new()))
            .expect("the process collector registers once");
        let call = &["grpc_type", "grpc_service", "grpc_method"];
        let grpc_handling = HistogramVec::new(
            HistogramOpts::new(
                "grpc_server_handling_seconds",
                "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
            )
            .buckets(HANDLING_BUCKETS.to_vec()),
            call,
        )
        .expect("a valid histogram");
        registry
            .register(Box::new(grpc_handling.clone()))
            .expect("registered once");
        let metrics = Metrics {
            grpc_started: counter(
                &registry,
                "grpc_server_started_total",
                "Total number of RPCs started on the server.",
                call,
            ),
            grpc_handled: counter(
                &registry,
                "grpc_server_handled_total",
                "Total number of RPCs completed on the server, regardless of success or failure.",
                &["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
            ),
            grpc_received: counter(
                &registry,
                "grpc_server_msg_received_total",
                "Total number of RPC stream messages received on the server.",
                call,
            ),
            grpc_sent: counter(
                &registry,
                "grpc_server_msg_sent_total",
                "Total number of gRPC stream messages sent by the server.",
                call,
            ),
            grpc_handling,
            shed: counter(
                &registry,
                "servicedesk_calls_shed_total",
                "Calls refused with RESOURCE_EXHAUSTED by a load limit: the server's calls in flight, one client's share, or the streams that need no key (health watches, reflection).",
                &["limit"],
            ),
            events: counter(
                &registry,
                "servicedesk_events_total",
                "Events this server committed, by kind (tickets created, escalated, resolved; reviews decided, expired; ...).",
                &["event"],
            ),
            commit_seconds: histogram(
                &registry,
                "servicedesk_commit_seconds",
                "Time of each group commit to the store.",
                COMMIT_BUCKETS,
            ),
            commit_events: histogram(
                &registry,
                "servicedesk_commit_events",
                "Events per group commit.",
                BATCH_BUCKETS,
            ),
            log_head: gauge(
                &registry,
                "servicedesk_event_log_head",
                "Sequence of the last event this server committed or, following, read.",
            ),
            log_oldest: gauge(
                &registry,
                "servicedesk_event_log_oldest",
                "Sequence of the oldest event the log retains: a watch resumed before it gets OUT_OF_RANGE.",
            ),
            open_tickets: gauge(
                &registry,
                "servicedesk_open_tickets",
                "Tickets not in a final state (on the server leading the desk).",
            ),
            tickets: gauges(
                &registry,
                "servicedesk_tickets",
                "Open tickets by status: queued, assigned, awaiting_review (on the server leading the desk).",
                &["status"],
            ),
            queued_tickets: gauge(
                &registry,
                "servicedesk_queued_tickets",
                "Tickets waiting in the queue for an agent (on the server leading the desk).",
            ),
            queue_oldest_seconds: {
                let metric = Gauge::new(
                    "servicedesk_queue_oldest_seconds",
                    "How long the ticket waiting longest in the queue has waited; 0 when none waits (on the server leading the desk).",
                )
                .expect("a valid gauge");
                registry
                    .register(Box::new(metric.clone()))
                    .expect("registered once");
                metric
            },
            pending_reviews: gauges(
                &registry,
                "servicedesk_pending_reviews",
                "Reviews waiting for a decision, by whether a reviewer has them and by priority (on the server leading the desk).",
                &["assigned", "priority"],
            ),
            agent_load: gauges(
                &registry,
                "servicedesk_agent_load",
                "Tickets the agents of a tier hold (on the server leading the desk).",
                &["tier"],
            ),
            agent_capacity: gauges(
                &registry,
                "servicedesk_agent_capacity",
                "Tickets the available agents of a tier can hold at once (on the server leading the desk).",
                &["tier"],
            ),
            remote_agents: gauge(
                &registry,
                "servicedesk_remote_agents_attached",
                "Remote agents with a stream attached (on the server leading the desk).",
            ),
            leading: gauge(
                &registry,
                "servicedesk_leading",
                "1 on the server that leads the desk (runs it and writes), 0 on a follower.",
            ),
            store_serving: gauge(
                &registry,
                "servicedesk_store_serving",
                "1 while this server's store takes writes and keeps itself in shape (health servicedesk.store SERVING), 0 while it refuses writes, cannot be reached or cannot keep itself in shape.",
            ),
            open_streams: gauge(
                &registry,
                "servicedesk_open_streams",
                "Server streams open on this server: watches and remote agents' streams.",
            ),
            watch_lag: histogram(
                &registry,
                "servicedesk_watch_lag_events",
                "Events already in the log beyond each event a watch hands to its client: how far behind the desk its reader is.",
                LAG_BUCKETS,
            ),
            registry,
        };
        // The bounded label sets known beforehand, at zero: a rate over them is never absent.
        for event in EVENTS {
            metrics.events.with_label_values(&[event]);
        }
        for limit in ["server", "client", "anonymous"] {
            metrics.shed.with_label_values(&[limit]);
        }
        for assigned in ["true", "false"] {
            for priority in REVIEW_PRIORITIES {
                metrics
                    .pending_reviews
                    .with_label_values(&[assigned, priority.as_str()]);
            }
        }
        for status in OPEN_STATUSES {
            metrics.tickets.with_label_values(&[status.as_str()]);
        }
        metrics
    }

    /// Zeroes what only the leading server knows of the desk (tickets, queue, reviews, agents):
    /// a server that stopped leading must not go on exporting its last view of it.
    pub fn forget_desk(&self) {
        for gauge in [
            &self.open_tickets,
            &self.queued_tickets,
            &self.remote_agents,
            &self.log_oldest,
        ] {
            gauge.set(0);
        }
        self.queue_oldest_seconds.set(0.0);
        // Tiers come and go: their label values are dropped, not zeroed.
        self.agent_load.reset();
        self.agent_capacity.reset();
        for status in OPEN_STATUSES {
            self.tickets.with_label_values(&[status.as_str()]).set(0);
        }
        for assigned in ["true", "false"] {
            for priority in REVIEW_PRIORITIES {
                self.pending_reviews
                    .with_label_values(&[assigned, priority.as_str()])
                    .set(0);
            }
        }
    }

    /// The registry in the Prometheus text format, and its content type.
    pub fn render(&self) -> (String, String) {
        let encoder = TextEncoder::new();
        let mut text = Vec::new();
        // Encoding what the registry gathered cannot fail: every family was built by it.
        let _ = encoder.encode(&self.registry.gather(), &mut text);
        (
            String::from_utf8_lossy(&text).into_owned(),
            encoder.format_type().to_string(),
        )
    }
}

/// Every value of `servicedesk_events_total`'s `event` label, exported at zero from the start
/// so that a rate over it is never absent.
const EVENTS: &[&str] = &[
    "ticket_created",
    "ticket_classified",
    "ticket_assigned",
    "ticket_queued",
    "ticket_agent_replied",
    "ticket_tier_escalated",
    "ticket_review_requested",
    "ticket_reviewer_assigned",
    "ticket_approved",
    "ticket_rejected",
    "ticket_expired",
    "ticket_resolved",
    "ticket_failed",
    "escalation_created",
    "escalation_assigned",
    "escalation_approved",
    "escalation_rejected",
    "escalation_expired",
    "escalation_reassigned",
    "agent_changed",
    "reviewer_changed",
];

/// An event's kind as the `event` label of `servicedesk_events_total` names it.
pub fn event_name(event: &Event) -> &'static str {
    match &event.body {
        EventBody::Ticket { kind, .. } => match kind {
            TicketEventKind::Created => "ticket_created",
            TicketEventKind::Classified => "ticket_classified",
            TicketEventKind::Assigned => "ticket_assigned",
            TicketEventKind::Queued => "ticket_queued",
            TicketEventKind::AgentReplied => "ticket_agent_replied",
            TicketEventKind::TierEscalated => "ticket_tier_escalated",
            TicketEventKind::ReviewRequested => "ticket_review_requested",
            TicketEventKind::ReviewerAssigned => "ticket_reviewer_assigned",
            TicketEventKind::Approved => "ticket_approved",
            TicketEventKind::Rejected => "ticket_rejected",
            TicketEventKind::Expired => "ticket_expired",
            TicketEventKind::Resolved => "ticket_resolved",
            TicketEventKind::Failed => "ticket_failed",
        },
        EventBody::Escalation { kind, .. } => match kind {
            EscalationEventKind::Created => "escalation_created",
            EscalationEventKind::Assigned => "escalation_assigned",
            EscalationEventKind::Approved => "escalation_approved",
            EscalationEventKind::Rejected => "escalation_rejected",
            EscalationEventKind::Expired => "escalation_expired",
            EscalationEventKind::Reassigned => "escalation_reassigned",
        },
        EventBody::Agent { .. } => "agent_changed",
        EventBody::Reviewer { .. } => "reviewer_changed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of every sample of `name` in the exposition text.
    fn samples(text: &str, name: &str) -> Vec<f64> {
        text.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter(|l| l[name.len()..].starts_with(['{', ' ']))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse().ok())
            .collect()
    }

    #[test]
    fn a_server_that_stops_leading_exports_nothing_of_the_desk_it_led() {
        let metrics = Metrics::new();
        metrics.open_tickets.set(7);
        metrics.queued_tickets.set(3);
        metrics.queue_oldest_seconds.set(42.5);
        metrics.log_oldest.set(100);
        metrics.remote_agents.set(2);
        metrics.tickets.with_label_values(&["queued"]).set(3);
        metrics
            .pending_reviews
            .with_label_values(&["false", "urgent"])
            .set(5);
        metrics.agent_load.with_label_values(&["L1"]).set(4);
        metrics.agent_capacity.with_label_values(&["L1"]).set(9);
        metrics.forget_desk();
        let (text, _) = metrics.render();
        for name in [
            "servicedesk_open_tickets",
            "servicedesk_queued_tickets",
            "servicedesk_queue_oldest_seconds",
            "servicedesk_event_log_oldest",
            "servicedesk_remote_agents_attached",
            "servicedesk_tickets",
            "servicedesk_pending_reviews",
        ] {
            let values = samples(&text, name);
            assert!(!values.is_empty(), "{name} is still exported");
            assert!(values.iter().all(|v| *v == 0.0), "{name}: {values:?}");
        }
        assert!(samples(&text, "servicedesk_agent_load").is_empty());
        assert!(samples(&text, "servicedesk_agent_capacity").is_empty());
    }
}
