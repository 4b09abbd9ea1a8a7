//! The desk at a glance, for `GetDeskStatus`, `GetEscalationStats` and the metrics: derived
//! from the state in memory and the running totals, never stored.
//!
//! Methods of `Desk` here: `status`, `gauges`, `review_report`, `agents_in`.

use std::collections::{BTreeMap, HashMap};

use super::{Desk, Stats};
use crate::domain::mesh::{Agent, Availability, Tier};
use crate::domain::policy::ReviewPriority;
use crate::domain::review::Reviewer;
use crate::domain::ticket::TicketStatus;

/// What the metrics read from the desk beyond its status: counts that take a pass over the
/// open tickets, the queue and the pending reviews, so a scrape's work, never a request's.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Gauges {
    /// Open tickets by status (those not final).
    pub tickets: BTreeMap<TicketStatus, u64>,
    /// When the ticket that has waited longest in the queue was queued.
    pub oldest_queued_ms: Option<i64>,
    /// Pending reviews by priority and whether a reviewer has them.
    pub reviews: BTreeMap<(ReviewPriority, bool), u64>,
}

/// One tier and its agents, in id order.
#[derive(Clone, Debug, PartialEq)]
pub struct TierReport {
    pub tier: Tier,
    pub agents: Vec<Agent>,
}

/// How the desk is doing.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusReport {
    pub stats: Stats,
    /// Escalated tickets among those handled, 0..1.
    pub escalation_rate: f64,
    pub mean_resolution_ms: i64,
    /// Load over capacity of the available agents, 0..1.
    pub utilization: f64,
    pub open_tickets: u64,
    pub queued_tickets: u64,
    pub tiers: Vec<TierReport>,
    pub reviews: ReviewReport,
    /// The sequence of the last event, at which this report was read.
    pub sequence: u64,
}

/// How human review is doing.
#[derive(Clone, Debug, PartialEq)]
pub struct ReviewReport {
    pub total: u64,
    pub active: u64,
    pub unassigned: u64,
    pub approved: u64,
    pub rejected: u64,
    pub expired: u64,
    /// Approved among decided, 0..1.
    pub approval_rate: f64,
    pub mean_decision_ms: i64,
    /// In the order they were added.
    pub reviewers: Vec<Reviewer>,
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn mean_ms(total: u64, count: u64) -> i64 {
    total.checked_div(count).unwrap_or(0) as i64
}

impl Desk {
    pub fn status(&self) -> StatusReport {
        let s = &self.stats;
        let (mut load, mut capacity) = (0u64, 0u64);
        let mut by_tier: HashMap<&str, Vec<Agent>> = HashMap::new();
        for agent in self.mesh.agents() {
            if agent.availability == Availability::Available {
                load += u64::from(agent.load);
                capacity += u64::from(agent.capacity);
            }
            by_tier
                .entry(agent.tier.as_str())
                .or_default()
                .push(agent.clone());
        }
        let tiers = self
            .mesh
            .tiers()
            .iter()
            .map(|tier| {
                let mut agents = by_tier.remove(tier.name.as_str()).unwrap_or_default();
                agents.sort_by(|a, b| a.id.cmp(&b.id));
                TierReport {
                    tier: tier.clone(),
                    agents,
                }
            })
            .collect();
        StatusReport {
            stats: s.clone(),
            escalation_rate: ratio(s.escalated, s.handled),
            mean_resolution_ms: mean_ms(s.resolution_ms_total, s.handled),
            utilization: ratio(load, capacity),
            open_tickets: self.tickets.len() as u64,
            queued_tickets: self.queue.len() as u64,
            tiers,
            reviews: self.review_report(),
            sequence: self.last_seq(),
        }
    }

    pub fn gauges(&self) -> Gauges {
        let mut gauges = Gauges::default();
        for ticket in self.tickets.values() {
            *gauges.tickets.entry(ticket.status).or_default() += 1;
        }
        gauges.oldest_queued_ms = self.queue.waiting().map(|(queued_ms, _)| queued_ms).min();
        for review in self.reviews.pending_all() {
            let assigned = review.reviewer_id.is_some();
            *gauges
                .reviews
                .entry((review.priority, assigned))
                .or_default() += 1;
        }
        gauges
    }

    pub fn review_report(&self) -> ReviewReport {
        let s = &self.stats;
        let decided = s.approved + s.rejected;
        ReviewReport {
            total: s.reviews_total,
            active: self.reviews.pending_count() as u64,
            unassigned: self.reviews.unassigned_count() as u64,
            approved: s.approved,
            rejected: s.rejected,
            expired: s.expired,
            approval_rate: ratio(s.approved, decided),
            mean_decision_ms: mean_ms(s.decide_ms_total, decided),
            reviewers: self.reviews.reviewers().cloned().collect(),
        }
    }

    /// The agents of `tier` (any tier when empty; names compared without case), in id order.
    pub fn agents_in(&self, tier: &str) -> Vec<Agent> {
        let mut agents: Vec<Agent> = self
            .mesh
            .agents()
            .filter(|a| tier.is_empty() || a.tier.eq_ignore_ascii_case(tier))
            .cloned()
            .collect();
        agents.sort_by(|a, b| a.id.cmp(&b.id));
        agents
    }
}
