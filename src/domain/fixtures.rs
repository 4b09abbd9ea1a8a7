//! Building blocks the tests share: the three default tiers, agents, reviewers, a ticket.

use std::collections::BTreeMap;

use super::mesh::{Agent, AgentKind, Tier};
use super::review::Reviewer;
use super::ticket::{Ticket, TicketStatus};

/// L1, L2 and Expert with the default desk's thresholds (0.7, 0.5, 0.3), two tickets each.
pub fn tiers() -> Vec<Tier> {
    ["L1", "L2", "Expert"]
        .iter()
        .enumerate()
        .map(|(i, name)| Tier {
            name: name.to_string(),
            threshold: 0.7 - 0.2 * i as f64,
            default_capacity: 2,
            instructions: String::new(),
        })
        .collect()
}

/// A built-in agent; `topics` are its specialties.
pub fn agent(name: &str, tier: &str, topics: &[&str], capacity: u32) -> Agent {
    let topics = topics.iter().map(|t| t.to_string()).collect();
    Agent::new(name, tier, topics, capacity, AgentKind::Builtin)
}

/// A reviewer who may hold `max` reviews at once; `topics` are its specialties.
pub fn reviewer(id: &str, topics: &[&str], max: u32) -> Reviewer {
    Reviewer {
        id: id.into(),
        name: id.into(),
        specialties: topics.iter().map(|t| t.to_string()).collect(),
        max_concurrent: max,
        load: 0,
        decided: 0,
        order: 0,
    }
}

/// A first-tier ticket as it is created: queued, not yet classified.
pub fn ticket() -> Ticket {
    Ticket {
        id: "tkt_1a2b3c4d5e6abcdefghi".into(),
        customer_id: "alice".into(),
        inquiry: "How do I reset my password?".into(),
        context: BTreeMap::new(),
        topic: String::new(),
        priority: 5,
        status: TicketStatus::Queued,
        agent_id: String::new(),
        agent_name: String::new(),
        agent_tier: String::new(),
        escalation_count: 0,
        resolution: String::new(),
        path: vec![],
        escalation_id: String::new(),
        created_ms: 1_796_000_000_000,
        updated_ms: 1_796_000_000_000,
        resolved_ms: None,
        policy_rules: vec![],
        policy_raise_to: None,
        min_tier: 0,
        assignment: None,
        assignments_made: 0,
        draft: String::new(),
        client_id: "app".into(),
        idempotency_key: String::new(),
        queued_ms: None,
        prepared: None,
    }
}
