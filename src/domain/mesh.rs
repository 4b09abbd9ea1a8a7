//! The mesh: tiers of agents and the routing index that picks one for a ticket.
//!
//! Owns every agent's load. The only way to change a load is [`Mesh::assign`] and
//! [`Mesh::release`], so "load equals open assignments, within 0..=capacity" is kept in one
//! place. Picking an agent costs O(tiers * log agents): each tier keeps ordered sets of the
//! agents that can take more work, one per specialty plus one for agents that take anything,
//! so a pick reads the first element of at most two sets per tier instead of scanning agents.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use super::error::DomainError;

/// How a new ticket picks among the eligible agents of a tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RoutingStrategy {
    /// Lowest load/capacity ratio; ties: fewer handled, then agent id.
    #[default]
    LeastLoaded,
    /// Rotate through the eligible agents of the tier in id order.
    RoundRobin,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    Available,
    Paused,
    Offline,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    Builtin,
    Remote,
}

/// One tier of the desk, lowest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tier {
    pub name: String,
    /// Confidence a built-in agent of this tier needs to resolve on its own.
    pub threshold: f64,
    /// Capacity given to agents created without one.
    pub default_capacity: u32,
    /// What the tier's agents are asked to do: sent to remote agents with each assignment
    /// (e.g. an LLM agent's system prompt).
    #[serde(default)]
    pub instructions: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    /// `agt_` and a zero-padded counter, so id order is creation order.
    pub id: String,
    pub name: String,
    pub tier: String,
    /// Lowercase topics.
    pub specialties: BTreeSet<String>,
    pub capacity: u32,
    /// Open assignments. Stored with the agent so replayed events show it, but never trusted
    /// on a restart: `Desk::restore` recounts it from the open tickets.
    #[serde(default)]
    pub load: u32,
    pub availability: Availability,
    pub kind: AgentKind,
    pub handled: u64,
    /// For a remote agent: the client whose key attached its process, while it is attached.
    /// Only that client (or an admin) may reply to its assignments.
    #[serde(default)]
    pub attached_by: Option<String>,
    /// For a remote agent: the client it belongs to, the one that registered it or first
    /// attached it. Only that client (or an admin) may attach it again; kept across restarts.
    #[serde(default)]
    pub owner: Option<String>,
}

impl Agent {
    /// A new agent before it joins a mesh: no id yet (the mesh mints it), no load, nothing
    /// handled, available, not attached.
    pub fn new(
        name: &str,
        tier: &str,
        specialties: BTreeSet<String>,
        capacity: u32,
        kind: AgentKind,
    ) -> Agent {
        Agent {
            id: String::new(),
            name: name.to_string(),
            tier: tier.to_string(),
            specialties,
            capacity,
            load: 0,
            availability: Availability::Available,
            kind,
            handled: 0,
            attached_by: None,
            owner: None,
        }
    }
}

/// Ordering of agents for least-loaded picks: ratio load/capacity (compared exactly by
/// cross-multiplying), then fewer handled, then id.
#[derive(Clone, Debug, PartialEq, Eq)]
struct LoadKey {
    load: u32,
    capacity: u32,
    handled: u64,
    id: String,
}

impl Ord for LoadKey {
    fn cmp(&self, other: &Self) -> Ordering {
        let left = u64::from(self.load) * u64::from(other.capacity);
        let right = u64::from(other.load) * u64::from(self.capacity);
        left.cmp(&right)
            .then(self.handled.cmp(&other.handled))
            .then_with(|| self.id.cmp(&other.id))
    }
}

impl PartialOrd for LoadKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The agents of one tier that can take another ticket right now.
#[derive(Default, Debug)]
struct TierIndex {
    by_topic: HashMap<String, BTreeSet<LoadKey>>,
    any: BTreeSet<LoadKey>,
    ids_by_topic: HashMap<String, BTreeSet<String>>,
    ids_any: BTreeSet<String>,
    /// Last agent picked by round-robin in this tier.
    cursor: Option<String>,
}

#[derive(Debug, Default)]
pub struct Mesh {
    tiers: Vec<Tier>,
    agents: HashMap<String, Agent>,
    names: HashMap<String, String>,
    index: Vec<TierIndex>,
    next_agent_number: u64,
}

impl Mesh {
    pub fn new(tiers: Vec<Tier>) -> Result<Self, DomainError> {
        if tiers.is_empty() {
            return Err(DomainError::invalid(
                "tiers",
                "the desk needs at least one tier",
            ));
        }
        let mut seen = BTreeSet::new();
        for tier in &tiers {
            if tier.name.trim().is_empty() || !seen.insert(tier.name.to_lowercase()) {
                return Err(DomainError::invalid(
                    "tiers",
                    format!("tier names must be non-empty and unique: {:?}", tier.name),
                ));
            }
            if !(0.0..=1.0).contains(&tier.threshold) {
                return Err(DomainError::invalid(
                    "tiers",
                    format!("tier {} threshold must be within 0..1", tier.name),
                ));
            }
        }
        let index = tiers.iter().map(|_| TierIndex::default()).collect();
        Ok(Mesh {
            tiers,
            agents: HashMap::new(),
            names: HashMap::new(),
            index,
            next_agent_number: 1,
        })
    }

    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    pub fn tier_index(&self, name: &str) -> Option<usize> {
        self.tiers
            .iter()
            .position(|t| t.name.eq_ignore_ascii_case(name))
    }

    pub fn top_tier(&self) -> usize {
        self.tiers.len() - 1
    }

    pub fn agent(&self, id: &str) -> Option<&Agent> {
        self.agents.get(id)
    }

    pub fn agent_by_name(&self, name: &str) -> Option<&Agent> {
        self.names.get(name).and_then(|id| self.agents.get(id))
    }

    pub fn agents(&self) -> impl Iterator<Item = &Agent> {
        self.agents.values()
    }

    pub fn agent_count(&self) -> usize {
        self.agents.len()
    }

    /// The id the next created agent gets.
    pub fn next_agent_id(&self) -> String {
        format!("agt_{:06}", self.next_agent_number)
    }

    /// Adds an agent (new, or restored from the store with load 0).
    pub fn insert(&mut self, agent: Agent) -> Result<(), DomainError> {
        let tier = self.tier_index(&agent.tier).ok_or_else(|| {
            DomainError::invalid("tier", format!("unknown tier {:?}", agent.tier))
        })?;
        if self.agents.contains_key(&agent.id) {
            return Err(DomainError::AlreadyExists(format!(
                "agent {} already exists",
                agent.id
            )));
        }
        if self.names.contains_key(&agent.name) {
            return Err(DomainError::AlreadyExists(format!(
                "an agent named {} already exists",
                agent.name
            )));
        }
        if let Some(number) = agent
            .id
            .strip_prefix("agt_")
            .and_then(|n| n.parse::<u64>().ok())
        {
            self.next_agent_number = self.next_agent_number.max(number + 1);
        }
        let mut agent = agent;
        agent.tier = self.tiers[tier].name.clone();
        self.names.insert(agent.name.clone(), agent.id.clone());
        self.index_add(&agent);
        self.agents.insert(agent.id.clone(), agent);
        Ok(())
    }

    /// Removes an agent; the caller hands its open work on first.
    pub fn remove(&mut self, id: &str) -> Option<Agent> {
        let agent = self.agents.remove(id)?;
        self.index_remove(&agent);
        self.names.remove(&agent.name);
        Some(agent)
    }

    /// Applies a change to an agent, keeping the index in step.
    pub fn update(&mut self, id: &str, change: impl FnOnce(&mut Agent)) -> Option<&Agent> {
        let mut agent = self.agents.remove(id)?;
        self.index_remove(&agent);
        change(&mut agent);
        debug_assert!(
            agent.load <= agent.capacity,
            "update left load above capacity"
        );
        self.index_add(&agent);
        self.agents.insert(id.to_string(), agent);
        self.agents.get(id)
    }

    /// Takes one slot of the agent for a new assignment.
    pub fn assign(&mut self, id: &str) -> Result<(), DomainError> {
        let agent = self
            .agents
            .get(id)
            .ok_or_else(|| DomainError::NotFound(format!("agent {id} not found")))?;
        if agent.load >= agent.capacity {
            return Err(DomainError::FailedPrecondition(format!(
                "agent {} is at capacity",
                agent.name
            )));
        }
        self.update(id, |a| a.load += 1);
        Ok(())
    }

    /// Gives back the slot of a finished assignment; `handled` counts it as work done.
    pub fn release(&mut self, id: &str, handled: bool) {
        let Some(agent) = self.agents.get(id) else {
            return;
        };
        debug_assert!(agent.load > 0, "release of an agent with no load");
        if agent.load == 0 {
            return;
        }
        self.update(id, |a| {
            a.load -= 1;
            if handled {
                a.handled += 1;
            }
        });
    }

    /// Whether the agent may take a ticket of this topic at all (capacity aside).
    pub fn eligible(&self, agent: &Agent, topic: &str) -> bool {
        self.takes_any_topic(agent) || agent.specialties.contains(topic)
    }

    /// The top tier handles anything; so does a first-tier agent without specialties.
    pub fn takes_any_topic(&self, agent: &Agent) -> bool {
        match self.tier_index(&agent.tier) {
            Some(tier) => tier == self.top_tier() || (tier == 0 && agent.specialties.is_empty()),
            None => false,
        }
    }

    /// Picks an agent for a ticket of `topic`: the lowest tier from `min_tier` up that has an
    /// eligible agent with spare capacity, then that tier's pick by `strategy`.
    pub fn pick(
        &mut self,
        topic: &str,
        min_tier: usize,
        strategy: RoutingStrategy,
    ) -> Option<String> {
        self.pick_excluding(topic, min_tier, strategy, None)
    }

    /// Like [`Mesh::pick`], passing over `exclude` (an agent that just failed to answer the
    /// ticket). At most one extra step per index set: still no scan.
    pub fn pick_excluding(
        &mut self,
        topic: &str,
        min_tier: usize,
        strategy: RoutingStrategy,
        exclude: Option<&str>,
    ) -> Option<String> {
        let allowed = |id: &str| Some(id) != exclude;
        for tier in min_tier..self.tiers.len() {
            let index = &mut self.index[tier];
            let picked = match strategy {
                RoutingStrategy::LeastLoaded => {
                    let specialist = first_allowed(index.by_topic.get(topic), exclude);
                    let anyone = first_allowed(Some(&index.any), exclude);
                    match (specialist, anyone) {
                        (Some(a), Some(b)) => Some(a.min(b).id.clone()),
                        (Some(a), None) | (None, Some(a)) => Some(a.id.clone()),
                        (None, None) => None,
                    }
                }
                RoutingStrategy::RoundRobin => {
                    let topical = index.ids_by_topic.get(topic);
                    let after = |set: Option<&BTreeSet<String>>, cursor: &Option<String>| {
                        let set = set?;
                        let mut candidates: Box<dyn Iterator<Item = &String>> = match cursor {
                            Some(c) => Box::new(
                                set.range::<String, _>((Bound::Excluded(c), Bound::Unbounded)),
                            ),
                            None => Box::new(set.iter()),
                        };
                        candidates.find(|id| allowed(id)).cloned()
                    };
                    let next = min_some(
                        after(topical, &index.cursor),
                        after(Some(&index.ids_any), &index.cursor),
                    )
                    .or_else(|| {
                        min_some(after(topical, &None), after(Some(&index.ids_any), &None))
                    });
                    if let Some(id) = &next {
                        index.cursor = Some(id.clone());
                    }
                    next
                }
            };
            if picked.is_some() {
                return picked;
            }
        }
        None
    }

    fn key(agent: &Agent) -> LoadKey {
        LoadKey {
            load: agent.load,
            capacity: agent.capacity,
            handled: agent.handled,
            id: agent.id.clone(),
        }
    }

    /// Index slots of the agent: `None` is the "takes anything" set.
    fn slots(&self, agent: &Agent) -> (usize, Vec<Option<String>>) {
        let tier = self.tier_index(&agent.tier).unwrap_or(0);
        let slots = if self.takes_any_topic(agent) {
            vec![None]
        } else {
            agent.specialties.iter().cloned().map(Some).collect()
        };
        (tier, slots)
    }

    fn takes_work(agent: &Agent) -> bool {
        agent.availability == Availability::Available && agent.load < agent.capacity
    }

    fn index_add(&mut self, agent: &Agent) {
        if !Self::takes_work(agent) {
            return;
        }
        let (tier, slots) = self.slots(agent);
        let index = &mut self.index[tier];
        for slot in slots {
            match slot {
                None => {
                    index.any.insert(Self::key(agent));
                    index.ids_any.insert(agent.id.clone());
                }
                Some(topic) => {
                    index
                        .by_topic
                        .entry(topic.clone())
                        .or_default()
                        .insert(Self::key(agent));
                    index
                        .ids_by_topic
                        .entry(topic)
                        .or_default()
                        .insert(agent.id.clone());
                }
            }
        }
    }

    fn index_remove(&mut self, agent: &Agent) {
        let (tier, slots) = self.slots(agent);
        let key = Self::key(agent);
        let index = &mut self.index[tier];
        for slot in slots {
            match slot {
                None => {
                    index.any.remove(&key);
                    index.ids_any.remove(&agent.id);
                }
                Some(topic) => {
                    if let Some(set) = index.by_topic.get_mut(&topic) {
                        set.remove(&key);
                        if set.is_empty() {
                            index.by_topic.remove(&topic);
                        }
                    }
                    if let Some(set) = index.ids_by_topic.get_mut(&topic) {
                        set.remove(&agent.id);
                        if set.is_empty() {
                            index.ids_by_topic.remove(&topic);
                        }
                    }
                }
            }
        }
    }
}

fn first_allowed<'a>(
    set: Option<&'a BTreeSet<LoadKey>>,
    exclude: Option<&str>,
) -> Option<&'a LoadKey> {
    set?.iter().find(|k| Some(k.id.as_str()) != exclude)
}

fn min_some(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn tiers() -> Vec<Tier> {
        ["L1", "L2", "Expert"]
            .iter()
            .enumerate()
            .map(|(i, name)| Tier {
                name: name.to_string(),
                threshold: 0.7 - 0.2 * i as f64,
                default_capacity: if i == 0 { 5 } else { 3 },
                instructions: String::new(),
            })
            .collect()
    }

    fn agent(mesh: &Mesh, name: &str, tier: &str, specialties: &[&str], capacity: u32) -> Agent {
        let topics = specialties.iter().map(|s| s.to_string()).collect();
        Agent {
            id: mesh.next_agent_id(),
            ..Agent::new(name, tier, topics, capacity, AgentKind::Builtin)
        }
    }

    fn add(mesh: &mut Mesh, name: &str, tier: &str, specialties: &[&str], capacity: u32) -> String {
        let a = agent(mesh, name, tier, specialties, capacity);
        let id = a.id.clone();
        mesh.insert(a).unwrap();
        id
    }

    #[test]
    fn lowest_tier_with_an_eligible_agent_wins() {
        let mut mesh = Mesh::new(tiers()).unwrap();
        let l1 = add(&mut mesh, "a", "L1", &["billing"], 1);
        let l2 = add(&mut mesh, "b", "L2", &["technical"], 1);
        let top = add(&mut mesh, "c", "Expert", &["billing"], 1);
        assert_eq!(
            mesh.pick("billing", 0, RoutingStrategy::LeastLoaded),
            Some(l1.clone())
        );
        assert_eq!(
            mesh.pick("technical", 0, RoutingStrategy::LeastLoaded),
            Some(l2)
        );
        // The top tier takes anything, whatever its specialties.
        assert_eq!(
            mesh.pick("legal", 0, RoutingStrategy::LeastLoaded),
            Some(top.clone())
        );
        mesh.assign(&l1).unwrap();
        assert_eq!(
            mesh.pick("billing", 0, RoutingStrategy::LeastLoaded),
            Some(top)
        );
    }

    #[test]
    fn generalists_of_the_first_tier_take_any_topic_but_not_above_it() {
        let mut mesh = Mesh::new(tiers()).unwrap();
        let general = add(&mut mesh, "g", "L1", &[], 1);
        add(&mut mesh, "l2", "L2", &[], 1);
        assert_eq!(
            mesh.pick("anything", 0, RoutingStrategy::LeastLoaded),
            Some(general.clone())
        );
        mesh.assign(&general).unwrap();
        assert_eq!(mesh.pick("anything", 0, RoutingStrategy::LeastLoaded), None);
    }

    /// `eligible` is what routing's indexes answer for one agent: a specialist takes its
    /// topics, the top tier and first-tier generalists take any.
    #[test]
    fn eligibility_is_specialty_or_taking_any_topic() {
        let mut mesh = Mesh::new(tiers()).unwrap();
        let ids = [
            add(&mut mesh, "specialist", "L2", &["billing"], 1),
            add(&mut mesh, "generalist", "L1", &[], 1),
            add(&mut mesh, "l1 specialist", "L1", &["billing"], 1),
            add(&mut mesh, "top", "Expert", &["billing"], 1),
            add(&mut mesh, "l2 without specialties", "L2", &[], 1),
        ];
        let eligible = |i: usize, topic: &str| mesh.eligible(mesh.agent(&ids[i]).unwrap(), topic);
        assert!(eligible(0, "billing") && !eligible(0, "technical"));
        assert!(eligible(1, "billing") && eligible(1, "technical"));
        assert!(eligible(2, "billing") && !eligible(2, "technical"));
        assert!(eligible(3, "billing") && eligible(3, "technical"));
        assert!(!eligible(4, "billing") && !eligible(4, "technical"));
    }

    #[test]
    fn specialties_match_case_insensitively_through_lowercase_storage() {
        let mut mesh = Mesh::new(tiers()).unwrap();
        let a = add(&mut mesh, "a", "L1", &["billing"], 1);
        assert_eq!(
            mesh.pick("billing", 0, RoutingStrategy::LeastLoaded),
            Some(a)
        );
    }

    #[test]
    fn least_loaded_compares_ratios_then_handled_then_id() {
        let mut mesh = Mesh::new(tiers()).unwrap();
        let big = add(&mut mesh, "big", "L1", &["billing"], 10);
        let small = add(&mut mesh, "small", "L1", &["billing"], 2);
        // 1/10 beats 1/2 once both hold one ticket.
        mesh.assign(&big).unwrap();
        mesh.assign(&small).unwrap();
        assert_eq!(
            mesh.pick("billing", 0, RoutingStrategy::LeastLoaded),
            Some(big.clone())
        );
        // Equal ratios: fewer handled wins.
        mesh.release(&big, true);
        mesh.release(&small, false);
        assert_eq!(
            mesh.pick("billing", 0, RoutingStrategy::LeastLoaded),
            Some(small.clone())
        );
        // Equal everything: lower id wins.
        mesh.assign(&small).unwrap();
        mesh.release(&small, true);
        assert_eq!(
            mesh.pick("billing", 0, RoutingStrategy::LeastLoaded),
            Some(big)
        );
    }

    #[test]
    fn round_robin_rotates_through_the_tier() {
        let mut mesh = Mesh::new(tiers()).unwrap();
        let a = add(&mut mesh, "a", "L1", &["billing"], 5);
        let b = add(&mut mesh, "b", "L1", &[], 5);
        let c = add(&mut mesh, "c", "L1", &["billing"], 5);
        add(&mut mesh, "d", "L1", &["technical"], 5);
        let picks: Vec<_> = (0..6)
            .map(|_| {
                mesh.pick("billing", 0, RoutingStrategy::RoundRobin)
                    .unwrap()
            })
            .collect();
        assert_eq!(picks, vec![a.clone(), b.clone(), c.clone(), a, b, c]);
    }

    #[test]
    fn paused_and_full_agents_are_not_picked() {
        let mut mesh = Mesh::new(tiers()).unwrap();
        let a = add(&mut mesh, "a", "L1", &["billing"], 1);
        mesh.update(&a, |a| a.availability = Availability::Paused);
        assert_eq!(mesh.pick("billing", 0, RoutingStrategy::LeastLoaded), None);
        mesh.update(&a, |a| a.availability = Availability::Available);
        mesh.assign(&a).unwrap();
        assert!(mesh.assign(&a).is_err(), "capacity is never exceeded");
        assert_eq!(mesh.pick("billing", 0, RoutingStrategy::RoundRobin), None);
    }

    #[test]
    fn min_tier_skips_lower_tiers() {
        let mut mesh = Mesh::new(tiers()).unwrap();
        add(&mut mesh, "a", "L1", &["billing"], 1);
        let b = add(&mut mesh, "b", "L2", &["billing"], 1);
        assert_eq!(
            mesh.pick("billing", 1, RoutingStrategy::LeastLoaded),
            Some(b)
        );
    }

    #[test]
    fn names_and_tiers_are_checked() {
        let mut mesh = Mesh::new(tiers()).unwrap();
        add(&mut mesh, "a", "L1", &[], 1);
        let dup = agent(&mesh, "a", "L1", &[], 1);
        assert!(matches!(
            mesh.insert(dup),
            Err(DomainError::AlreadyExists(_))
        ));
        let bad = agent(&mesh, "z", "Nope", &[], 1);
        assert!(matches!(mesh.insert(bad), Err(DomainError::Invalid(_))));
    }

    #[test]
    fn routing_10k_agents_reads_only_the_index() {
        let mut mesh = Mesh::new(tiers()).unwrap();
        for i in 0..10_000 {
            add(&mut mesh, &format!("a{i}"), "L1", &["billing"], 3);
        }
        for _ in 0..10_000 {
            let id = mesh
                .pick("billing", 0, RoutingStrategy::LeastLoaded)
                .unwrap();
            mesh.assign(&id).unwrap();
        }
        // Every agent got exactly one: least-loaded spreads evenly.
        assert!(mesh.agents().all(|a| a.load == 1));
    }
}
