//! Human review: reviewers, pending escalations and the order in which they are handed out.
//!
//! Owns every reviewer's load (pending escalations assigned to them). A pending escalation is
//! either assigned, counted in exactly one reviewer's load, or waiting in `unassigned`, ordered
//! by priority (urgent first) then age (oldest first).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::error::DomainError;
use super::policy::ReviewPriority;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscalationState {
    Pending,
    Approved,
    Rejected,
    Expired,
}

impl EscalationState {
    /// Every state, pending first.
    pub const ALL: [EscalationState; 4] = [
        EscalationState::Pending,
        EscalationState::Approved,
        EscalationState::Rejected,
        EscalationState::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EscalationState::Pending => "pending",
            EscalationState::Approved => "approved",
            EscalationState::Rejected => "rejected",
            EscalationState::Expired => "expired",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reviewer {
    pub id: String,
    pub name: String,
    pub specialties: BTreeSet<String>,
    pub max_concurrent: u32,
    /// Pending escalations assigned to them. Stored so replayed events show it, but never
    /// trusted on a restart: `Desk::restore` recounts it from the pending escalations.
    #[serde(default)]
    pub load: u32,
    pub decided: u64,
    /// Order in which reviewers were added: the last tie-break of assignment.
    pub order: u64,
}

impl Reviewer {
    pub fn matches(&self, topic: &str) -> bool {
        self.specialties.is_empty() || self.specialties.contains(topic)
    }

    pub fn has_room(&self) -> bool {
        self.load < self.max_concurrent
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Escalation {
    pub id: String,
    pub ticket_id: String,
    pub customer_id: String,
    pub title: String,
    pub description: String,
    pub topic: String,
    pub priority: ReviewPriority,
    pub state: EscalationState,
    pub reviewer_id: Option<String>,
    pub requested_by: String,
    pub proposed_response: String,
    pub created_ms: i64,
    pub expire_ms: i64,
    pub decided_ms: Option<i64>,
    pub decided_by: String,
    pub resolution: String,
    pub comments: String,
    pub reassign_count: u32,
}

type QueueKey = (Reverse<ReviewPriority>, i64, String);

fn queue_key(e: &Escalation) -> QueueKey {
    (Reverse(e.priority), e.created_ms, e.id.clone())
}

#[derive(Debug, Default)]
pub struct ReviewBoard {
    reviewers: HashMap<String, Reviewer>,
    by_order: BTreeMap<u64, String>,
    /// A B-tree, for the reason `Desk`'s open tickets are.
    pending: BTreeMap<String, Escalation>,
    unassigned: BTreeSet<QueueKey>,
    next_order: u64,
}

impl ReviewBoard {
    pub fn reviewer(&self, id: &str) -> Option<&Reviewer> {
        self.reviewers.get(id)
    }

    /// Reviewers in the order they were added.
    pub fn reviewers(&self) -> impl Iterator<Item = &Reviewer> {
        self.by_order
            .values()
            .filter_map(|id| self.reviewers.get(id))
    }

    pub fn pending(&self, id: &str) -> Option<&Escalation> {
        self.pending.get(id)
    }

    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    pub fn unassigned_count(&self) -> usize {
        self.unassigned.len()
    }

    pub fn add_reviewer(&mut self, mut reviewer: Reviewer) -> Result<(), DomainError> {
        if self.reviewers.contains_key(&reviewer.id) {
            return Err(DomainError::AlreadyExists(format!(
                "reviewer {} already exists",
                reviewer.id
            )));
        }
        if reviewer.order == 0 {
            self.next_order += 1;
            reviewer.order = self.next_order;
        } else {
            self.next_order = self.next_order.max(reviewer.order);
        }
        self.by_order.insert(reviewer.order, reviewer.id.clone());
        self.reviewers.insert(reviewer.id.clone(), reviewer);
        Ok(())
    }

    pub fn update_reviewer(
        &mut self,
        id: &str,
        change: impl FnOnce(&mut Reviewer),
    ) -> Option<&Reviewer> {
        let reviewer = self.reviewers.get_mut(id)?;
        change(reviewer);
        Some(reviewer)
    }

    /// Removes a reviewer; their pending escalations go back to the unassigned queue.
    /// Returns the reviewer and the ids of escalations that lost their reviewer.
    pub fn remove_reviewer(&mut self, id: &str) -> Option<(Reviewer, Vec<String>)> {
        let reviewer = self.reviewers.remove(id)?;
        self.by_order.remove(&reviewer.order);
        let mut orphaned: Vec<String> = self
            .pending
            .values()
            .filter(|e| e.reviewer_id.as_deref() == Some(id))
            .map(|e| e.id.clone())
            .collect();
        orphaned.sort();
        for esc in &orphaned {
            let e = self.pending.get_mut(esc).expect("listed above");
            e.reviewer_id = None;
            self.unassigned.insert(queue_key(e));
        }
        Some((reviewer, orphaned))
    }

    /// The best reviewer with room for a topic: a specialty match beats a generalist, then
    /// lowest load, then most decisions, then the order they were added. Scans reviewers:
    /// a desk has tens of them, not thousands.
    pub fn best_reviewer(&self, topic: &str, exclude: Option<&str>) -> Option<String> {
        self.reviewers
            .values()
            .filter(|r| r.has_room() && r.matches(topic) && Some(r.id.as_str()) != exclude)
            .min_by_key(|r| {
                (
                    !r.specialties.contains(topic),
                    r.load,
                    Reverse(r.decided),
                    r.order,
                )
            })
            .map(|r| r.id.clone())
    }

    /// The most urgent, then oldest, unassigned escalation this reviewer matches.
    pub fn next_for(&self, reviewer_id: &str) -> Option<String> {
        let reviewer = self.reviewers.get(reviewer_id)?;
        if !reviewer.has_room() {
            return None;
        }
        self.unassigned
            .iter()
            .find(|(_, _, id)| {
                self.pending
                    .get(id)
                    .is_some_and(|e| reviewer.matches(&e.topic))
            })
            .map(|(_, _, id)| id.clone())
    }

    /// Adds a new pending escalation, unassigned.
    pub fn open(&mut self, escalation: Escalation) {
        debug_assert_eq!(escalation.state, EscalationState::Pending);
        debug_assert!(escalation.reviewer_id.is_none());
        self.unassigned.insert(queue_key(&escalation));
        self.pending.insert(escalation.id.clone(), escalation);
    }

    /// Restores a pending escalation from the store, counting it in its reviewer's load.
    pub fn restore(&mut self, mut escalation: Escalation) {
        if let Some(r) = escalation.reviewer_id.as_deref() {
            match self.reviewers.get_mut(r) {
                Some(reviewer) => reviewer.load += 1,
                None => escalation.reviewer_id = None,
            }
        }
        if escalation.reviewer_id.is_none() {
            self.unassigned.insert(queue_key(&escalation));
        }
        self.pending.insert(escalation.id.clone(), escalation);
    }

    /// Assigns (or moves) a pending escalation to a reviewer. Capacity is checked by the caller
    /// when `force` is false; deciding an unassigned escalation assigns it even to a full reviewer
    /// because the decision frees the slot at once.
    pub fn assign(
        &mut self,
        esc_id: &str,
        reviewer_id: &str,
        force: bool,
    ) -> Result<Option<String>, DomainError> {
        let reviewer = self
            .reviewers
            .get(reviewer_id)
            .ok_or_else(|| DomainError::NotFound(format!("reviewer {reviewer_id} not found")))?;
        let escalation = self.pending.get(esc_id).ok_or_else(|| {
            DomainError::FailedPrecondition(format!("escalation {esc_id} is not pending"))
        })?;
        if escalation.reviewer_id.as_deref() == Some(reviewer_id) {
            return Ok(Some(reviewer_id.to_string()));
        }
        if !force && !reviewer.has_room() {
            return Err(DomainError::FailedPrecondition(format!(
                "reviewer {reviewer_id} already holds {} of {} escalations",
                reviewer.load, reviewer.max_concurrent
            )));
        }
        let escalation = self.pending.get_mut(esc_id).expect("checked above");
        let previous = escalation.reviewer_id.replace(reviewer_id.to_string());
        match &previous {
            Some(p) => {
                if let Some(r) = self.reviewers.get_mut(p) {
                    r.load = r.load.saturating_sub(1);
                }
            }
            None => {
                self.unassigned.remove(&queue_key(escalation));
            }
        }
        self.reviewers
            .get_mut(reviewer_id)
            .expect("checked above")
            .load += 1;
        Ok(previous)
    }

    /// Changes a pending escalation in place (deadline, reassign count); the queue key fields
    /// (priority, creation time, id) must not change.
    pub fn touch(
        &mut self,
        esc_id: &str,
        change: impl FnOnce(&mut Escalation),
    ) -> Option<&Escalation> {
        let e = self.pending.get_mut(esc_id)?;
        let key = queue_key(e);
        change(e);
        debug_assert_eq!(key, queue_key(e), "queue key fields changed");
        Some(e)
    }

    /// Ends a pending escalation: frees its reviewer's slot, counts the decision for
    /// `decided_by` when that is a reviewer (an admin deciding in nobody's name counts for
    /// nobody; an expiry passes `None`), and returns it. `None` if it is not pending: a review
    /// ends at most once.
    pub fn close(&mut self, esc_id: &str, decided_by: Option<&str>) -> Option<Escalation> {
        let escalation = self.pending.remove(esc_id)?;
        match escalation.reviewer_id.as_deref() {
            Some(r) => {
                if let Some(reviewer) = self.reviewers.get_mut(r) {
                    debug_assert!(reviewer.load > 0);
                    reviewer.load = reviewer.load.saturating_sub(1);
                }
            }
            None => {
                self.unassigned.remove(&queue_key(&escalation));
            }
        }
        if let Some(reviewer) = decided_by.and_then(|id| self.reviewers.get_mut(id)) {
            reviewer.decided += 1;
        }
        Some(escalation)
    }

    /// Ids of pending escalations, for invariant checks.
    pub fn pending_ids(&self) -> impl Iterator<Item = &String> {
        self.pending.keys()
    }

    pub fn pending_all(&self) -> impl Iterator<Item = &Escalation> {
        self.pending.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reviewer(id: &str, specialties: &[&str], max: u32) -> Reviewer {
        Reviewer {
            id: id.into(),
            name: id.into(),
            specialties: specialties.iter().map(|s| s.to_string()).collect(),
            max_concurrent: max,
            load: 0,
            decided: 0,
            order: 0,
        }
    }

    fn escalation(id: &str, topic: &str, priority: ReviewPriority, created_ms: i64) -> Escalation {
        Escalation {
            id: id.into(),
            ticket_id: format!("t-{id}"),
            customer_id: "c".into(),
            title: String::new(),
            description: String::new(),
            topic: topic.into(),
            priority,
            state: EscalationState::Pending,
            reviewer_id: None,
            requested_by: String::new(),
            proposed_response: String::new(),
            created_ms,
            expire_ms: created_ms + 1000,
            decided_ms: None,
            decided_by: String::new(),
            resolution: String::new(),
            comments: String::new(),
            reassign_count: 0,
        }
    }

    fn board() -> ReviewBoard {
        let mut b = ReviewBoard::default();
        b.add_reviewer(reviewer(
            "supervisor_1",
            &["billing", "refunds", "complaints"],
            3,
        ))
        .unwrap();
        b.add_reviewer(reviewer(
            "supervisor_2",
            &["technical", "features", "bugs"],
            3,
        ))
        .unwrap();
        b.add_reviewer(reviewer("manager_1", &[], 5)).unwrap();
        b
    }

    #[test]
    fn reviewers_are_listed_in_the_order_they_were_added() {
        let mut b = board();
        let ids = |b: &ReviewBoard| b.reviewers().map(|r| r.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&b), ["supervisor_1", "supervisor_2", "manager_1"]);
        b.remove_reviewer("supervisor_2").unwrap();
        b.add_reviewer(reviewer("supervisor_2", &[], 1)).unwrap();
        assert_eq!(ids(&b), ["supervisor_1", "manager_1", "supervisor_2"]);
    }

    #[test]
    fn specialty_match_beats_a_generalist() {
        let b = board();
        assert_eq!(
            b.best_reviewer("billing", None).as_deref(),
            Some("supervisor_1")
        );
        assert_eq!(
            b.best_reviewer("technical", None).as_deref(),
            Some("supervisor_2")
        );
        assert_eq!(
            b.best_reviewer("account", None).as_deref(),
            Some("manager_1")
        );
    }

    #[test]
    fn a_full_specialist_falls_back_to_a_generalist() {
        let mut b = board();
        for i in 0..3 {
            b.open(escalation(
                &format!("e{i}"),
                "billing",
                ReviewPriority::High,
                i,
            ));
            b.assign(&format!("e{i}"), "supervisor_1", false).unwrap();
        }
        assert_eq!(
            b.best_reviewer("billing", None).as_deref(),
            Some("manager_1")
        );
        assert!(b.assign("e9", "supervisor_1", false).is_err());
    }

    #[test]
    fn ties_go_to_lower_load_then_more_decisions_then_order_added() {
        let mut b = ReviewBoard::default();
        b.add_reviewer(reviewer("a", &[], 3)).unwrap();
        b.add_reviewer(reviewer("b", &[], 3)).unwrap();
        assert_eq!(b.best_reviewer("x", None).as_deref(), Some("a"));
        b.update_reviewer("b", |r| r.decided = 4);
        assert_eq!(b.best_reviewer("x", None).as_deref(), Some("b"));
        b.open(escalation("e1", "x", ReviewPriority::Low, 1));
        b.assign("e1", "b", false).unwrap();
        assert_eq!(b.best_reviewer("x", None).as_deref(), Some("a"));
        assert_eq!(b.best_reviewer("x", Some("a")).as_deref(), Some("b"));
    }

    #[test]
    fn unassigned_queue_is_priority_then_age() {
        let mut b = ReviewBoard::default();
        b.open(escalation("old_low", "x", ReviewPriority::Low, 1));
        b.open(escalation("new_urgent", "x", ReviewPriority::Urgent, 5));
        b.open(escalation("old_urgent", "x", ReviewPriority::Urgent, 2));
        b.add_reviewer(reviewer("r", &[], 1)).unwrap();
        assert_eq!(b.next_for("r").as_deref(), Some("old_urgent"));
    }

    #[test]
    fn closing_frees_the_slot_once() {
        let mut b = board();
        b.open(escalation("e", "billing", ReviewPriority::High, 1));
        b.assign("e", "supervisor_1", false).unwrap();
        assert_eq!(b.reviewer("supervisor_1").unwrap().load, 1);
        assert!(b.close("e", Some("supervisor_1")).is_some());
        assert!(
            b.close("e", Some("supervisor_1")).is_none(),
            "a review is decided at most once"
        );
        let r = b.reviewer("supervisor_1").unwrap();
        assert_eq!((r.load, r.decided), (0, 1));
    }

    #[test]
    fn removing_a_reviewer_requeues_their_work() {
        let mut b = board();
        b.open(escalation("e", "billing", ReviewPriority::High, 1));
        b.assign("e", "supervisor_1", false).unwrap();
        let (_, orphaned) = b.remove_reviewer("supervisor_1").unwrap();
        assert_eq!(orphaned, vec!["e".to_string()]);
        assert_eq!(b.unassigned_count(), 1);
        assert_eq!(b.next_for("manager_1").as_deref(), Some("e"));
    }
}
