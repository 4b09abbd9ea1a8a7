//! Building blocks the desk's tests share: the three default tiers, agents and reviewers.

use super::mesh::{Agent, AgentKind, Tier};
use super::review::Reviewer;

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
