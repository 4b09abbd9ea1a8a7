//! The default desk, for a configuration that leaves it out: tiers of 3, 2 and 1 agents, four
//! rotations of specialties, three reviewers; and the brief and threshold of a tier configured
//! without its own.

use super::{ReviewerSection, TierSection};

pub(super) fn default_rotation() -> Vec<Vec<String>> {
    [
        &["billing", "payments", "invoices"][..],
        &["technical", "bugs", "features"],
        &["account", "security", "privacy"],
        &["general", "how-to", "getting-started"],
    ]
    .iter()
    .map(|set| set.iter().map(|s| s.to_string()).collect())
    .collect()
}

pub(super) fn default_tiers() -> Vec<TierSection> {
    [("L1", 3), ("L2", 2), ("Expert", 1)]
        .iter()
        .map(|(name, agents)| TierSection {
            name: name.to_string(),
            agents: *agents,
            capacity: None,
            threshold: None,
            instructions: None,
        })
        .collect()
}

pub(super) fn default_reviewers() -> Vec<ReviewerSection> {
    let r = |id: &str, name: &str, specialties: &[&str], max: u32| ReviewerSection {
        id: id.into(),
        name: name.into(),
        specialties: specialties.iter().map(|s| s.to_string()).collect(),
        max_concurrent: Some(max),
    };
    vec![
        r(
            "supervisor_1",
            "Sarah Johnson",
            &["billing", "refunds", "complaints"],
            3,
        ),
        r(
            "supervisor_2",
            "Mike Chen",
            &["technical", "features", "bugs"],
            3,
        ),
        r("manager_1", "Lisa Rodriguez", &[], 5),
    ]
}

/// The default brief of a tier's agents, by its place among the tiers.
pub(super) fn default_instructions(tier: usize, tiers: usize) -> String {
    let role = if tier + 1 == tiers {
        "You are the desk's most senior tier. Resolve what you can answer with confidence; \
         escalate to a human reviewer (escalate or request_review) whatever needs a decision \
         about money, the law, account closure or an exception to policy."
    } else if tier == 0 {
        "You are a frontline support agent. Answer common questions clearly and briefly; \
         escalate to the next tier what needs a specialist or that you are unsure about, \
         with your best draft."
    } else {
        "You are a specialist support agent. The tier below could not resolve this ticket: \
         read its path and draft, answer precisely when you can, and escalate with your best \
         draft when you cannot."
    };
    format!("{role} Never promise refunds, compensation or legal outcomes yourself.")
}

/// Thresholds rise in leniency from the first tier (strict) to the top (lenient).
pub(super) fn default_threshold(tier: usize, tiers: usize) -> f64 {
    const FIRST: f64 = 0.70;
    const TOP: f64 = 0.30;
    if tiers <= 1 {
        return FIRST;
    }
    FIRST - (FIRST - TOP) * tier as f64 / (tiers - 1) as f64
}
