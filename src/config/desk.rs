//! The `[desk]` section, checked: the tiers and the agents seeded in them, the reviewers
//! seeded (names, ids and specialties as the desk keeps them), the run-time settings and how
//! long events are kept.

use std::collections::BTreeSet;

use super::defaults::{
    default_instructions, default_reviewers, default_rotation, default_threshold, default_tiers,
};
use super::{ConfigError, DeskSection, ReviewerSection, SeedAgent, TierSection};
use crate::domain::desk::Settings;
use crate::domain::limits::{self, is_name, CAPACITY, DISPLAY_NAME_BYTES};
use crate::domain::mesh::Tier;

/// A reviewer the desk seeds on its first start, as the desk keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedReviewer {
    pub id: String,
    pub name: String,
    /// Lower case, trimmed: topics are matched that way.
    pub specialties: BTreeSet<String>,
    pub max_concurrent: u32,
}

/// What the `[desk]` section gives the server.
pub(super) struct DeskConfig {
    pub name: String,
    pub tiers: Vec<Tier>,
    pub seed_agents: Vec<SeedAgent>,
    pub seed_reviewers: Vec<SeedReviewer>,
    pub settings: Settings,
    pub event_retention: Option<std::time::Duration>,
}

/// Reviewers take this many reviews at once unless they say otherwise.
const REVIEWER_MAX_CONCURRENT: u32 = 3;

pub(super) fn resolve(desk: DeskSection) -> Result<DeskConfig, ConfigError> {
    let settings = settings(&desk)?;
    let tier_sections = desk.tiers.unwrap_or_else(default_tiers);
    let tiers = tiers(&tier_sections)?;
    let rotation = desk.specialty_rotation.unwrap_or_else(default_rotation);
    let seed_agents = seed_agents(&tiers, &tier_sections, &rotation);
    let reviewers = desk.reviewers.unwrap_or_else(default_reviewers);
    validate_seed(&tiers, &seed_agents, &reviewers)?;
    Ok(DeskConfig {
        name: desk.name.unwrap_or_else(|| "servicedesk".into()),
        settings,
        event_retention: event_retention(desk.event_retention_secs)?,
        tiers,
        seed_agents,
        seed_reviewers: reviewers.into_iter().map(seed_reviewer).collect(),
    })
}

/// The tiers, lowest first, each with its threshold, capacity and instructions.
fn tiers(sections: &[TierSection]) -> Result<Vec<Tier>, ConfigError> {
    let invalid = |m: String| ConfigError::Invalid(m);
    if sections.is_empty() {
        return Err(invalid("desk.tiers must list at least one tier".into()));
    }
    let count = sections.len();
    let mut tiers = Vec::new();
    for (i, t) in sections.iter().enumerate() {
        let threshold = t.threshold.unwrap_or_else(|| default_threshold(i, count));
        if !(0.0..=1.0).contains(&threshold) {
            return Err(invalid(format!(
                "tier {} threshold {threshold} is not within 0..1",
                t.name
            )));
        }
        let capacity = t.capacity.unwrap_or(if i == 0 { 5 } else { 3 });
        if !CAPACITY.contains(&capacity) {
            return Err(invalid(format!(
                "tier {} capacity {capacity} is not within {}..{}",
                t.name,
                CAPACITY.start(),
                CAPACITY.end()
            )));
        }
        if t.agents > limits::MAX_SEEDED_AGENTS_PER_TIER {
            return Err(invalid(format!(
                "tier {} asks for {} agents; at most {}",
                t.name,
                t.agents,
                limits::MAX_SEEDED_AGENTS_PER_TIER
            )));
        }
        tiers.push(Tier {
            name: t.name.clone(),
            threshold,
            default_capacity: capacity,
            instructions: t
                .instructions
                .clone()
                .unwrap_or_else(|| default_instructions(i, count)),
        });
    }
    Ok(tiers)
}

/// The built-in agents of each tier, with specialty sets handed out in `rotation` across all
/// tiers in order.
fn seed_agents(
    tiers: &[Tier],
    sections: &[TierSection],
    rotation: &[Vec<String>],
) -> Vec<SeedAgent> {
    let mut seed_agents = Vec::new();
    for (tier, section) in tiers.iter().zip(sections) {
        for n in 1..=section.agents {
            let specialties = if rotation.is_empty() {
                BTreeSet::new()
            } else {
                rotation[seed_agents.len() % rotation.len()]
                    .iter()
                    .map(|s| s.trim().to_lowercase())
                    .collect()
            };
            seed_agents.push(SeedAgent {
                name: format!("{}_Agent_{n}", tier.name),
                tier: tier.name.clone(),
                specialties,
                capacity: tier.default_capacity,
            });
        }
    }
    seed_agents
}

fn seed_reviewer(r: ReviewerSection) -> SeedReviewer {
    SeedReviewer {
        specialties: r
            .specialties
            .iter()
            .map(|s| s.trim().to_lowercase())
            .collect(),
        max_concurrent: r.max_concurrent.unwrap_or(REVIEWER_MAX_CONCURRENT),
        id: r.id,
        name: r.name,
    }
}

/// The run-time settings the file sets, the rest default; each bound named by its key.
fn settings(desk: &DeskSection) -> Result<Settings, ConfigError> {
    let defaults = Settings::default();
    let ms = |secs: Option<u64>, default_ms: i64| {
        secs.map_or(default_ms, |s| {
            s.saturating_mul(1000).min(i64::MAX as u64) as i64
        })
    };
    let settings = Settings {
        routing: desk.routing_strategy.unwrap_or(defaults.routing),
        escalation_timeout_ms: ms(desk.escalation_timeout_secs, defaults.escalation_timeout_ms),
        max_review_reassignments: desk
            .max_review_reassignments
            .unwrap_or(defaults.max_review_reassignments),
        queue_timeout_ms: ms(desk.queue_timeout_secs, defaults.queue_timeout_ms),
        assignment_timeout_ms: ms(desk.assignment_timeout_secs, defaults.assignment_timeout_ms),
    };
    if let Some((name, reason)) = settings.violations().into_iter().next() {
        let key = match name {
            "max_review_reassignments" => name.to_string(),
            _ => format!("{name}_secs"),
        };
        return Err(ConfigError::Invalid(format!("desk.{key} {reason}")));
    }
    Ok(settings)
}

/// How long events are kept: 30 days unless set; 0 keeps them for ever.
fn event_retention(secs: Option<u64>) -> Result<Option<std::time::Duration>, ConfigError> {
    match secs.unwrap_or(30 * 24 * 3600) {
        0 => Ok(None),
        secs if secs <= 10 * 365 * 24 * 3600 => Ok(Some(std::time::Duration::from_secs(secs))),
        secs => Err(ConfigError::Invalid(format!(
            "desk.event_retention_secs {secs} is more than ten years; use 0 to keep events for \
             ever"
        ))),
    }
}

/// Names and ids the desk seeds must be unique and well-formed, or the first start would fail
/// half-way and every later start would try again.
fn validate_seed(
    tiers: &[Tier],
    agents: &[SeedAgent],
    reviewers: &[ReviewerSection],
) -> Result<(), ConfigError> {
    let well_formed = is_name;
    let mut tier_names = BTreeSet::new();
    for tier in tiers {
        if !well_formed(&tier.name) || !tier_names.insert(tier.name.to_lowercase()) {
            return Err(ConfigError::Invalid(format!(
                "tier name {:?} must be unique, 1..64 bytes of letters, digits, '_', '-', '.'",
                tier.name
            )));
        }
    }
    let mut agent_names = BTreeSet::new();
    for agent in agents {
        if !agent_names.insert(agent.name.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "two seeded agents would be named {}",
                agent.name
            )));
        }
    }
    let mut ids = BTreeSet::new();
    for reviewer in reviewers {
        if !well_formed(&reviewer.id) || !ids.insert(reviewer.id.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "reviewer id {:?} must be unique, 1..64 bytes of letters, digits, '_', '-', '.'",
                reviewer.id
            )));
        }
        if reviewer.name.trim().is_empty() || reviewer.name.len() > DISPLAY_NAME_BYTES {
            return Err(ConfigError::Invalid(format!(
                "reviewer {} needs a name of 1..{DISPLAY_NAME_BYTES} bytes",
                reviewer.id
            )));
        }
        if reviewer
            .max_concurrent
            .is_some_and(|m| !CAPACITY.contains(&m))
        {
            return Err(ConfigError::Invalid(format!(
                "reviewer {} max_concurrent must be within {}..{}",
                reviewer.id,
                CAPACITY.start(),
                CAPACITY.end()
            )));
        }
    }
    Ok(())
}
