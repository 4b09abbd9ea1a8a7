//! The desk's commands, as typed methods of [`DeskHandle`]: each runs one domain command (or
//! reads the state) in the runtime task and answers after the commit. Where the domain can only
//! say "not open" or "not pending", the store tells whether the thing was already settled
//! (FAILED_PRECONDITION) or never existed (NOT_FOUND).
//!
//! Methods of `Core` here: `status`.
//! Methods of `DeskHandle` here: `decide`, `assign_escalation`, `settled_review`, `review_report`,
//! `status`, `measure`, `create_agent`, `update_agent`, `delete_agent`, `agents`,
//! `create_reviewer`, `update_reviewer`, `delete_reviewer`, `reviewers`, `create_key`,
//! `revoke_key`, `key_records`, `settings`, `change_settings`, `attach`, `reply`, `ticket_for`,
//! `seed`.

use tokio::sync::mpsc;

use super::core::Core;
use super::{AgentFeed, DeskError, DeskHandle};
use crate::domain::desk::{
    Actor, AgentChange, AgentReply, AttachSpec, Decision, Gauges, ReviewReport, ReviewerChange,
    Settings, SettingsChange, StatusReport,
};
use crate::domain::error::DomainError;
use crate::domain::mesh::Agent;
use crate::domain::review::{Escalation, Reviewer};
use crate::domain::ticket::{ticket_of_assignment, Ticket};
use crate::store::KeyRecord;

/// The desk at a glance, with what only the runtime knows.
#[derive(Clone, Debug)]
pub struct DeskStatus {
    pub report: StatusReport,
    /// Clients holding a key that is not revoked.
    pub registered_clients: usize,
}

/// What a brand-new desk starts with, committed in its first batch.
#[derive(Clone, Debug, Default)]
pub struct Seed {
    pub agents: Vec<Agent>,
    pub reviewers: Vec<Reviewer>,
    /// The first admin key, when not in development mode.
    pub first_key: Option<KeyRecord>,
}

/// An attached remote agent's process: its agent, its feed of assignments, and the lease that
/// keeps it attached. Dropping the session (the stream closed, for whatever reason) detaches
/// the agent, so its tickets move on.
pub struct AgentSession {
    pub agent: Agent,
    pub feed: mpsc::Receiver<AgentFeed>,
    /// How long the agent has to answer each assignment.
    pub assignment_timeout_ms: i64,
    _lease: AttachLease,
}

/// Detaches the agent of stream `stream_id` when dropped: taken before the attach, so an
/// Attach call cancelled at any point leaves no agent online without a process.
struct AttachLease {
    desk: DeskHandle,
    stream_id: u64,
}

impl Drop for AttachLease {
    fn drop(&mut self) {
        self.desk.detach(self.stream_id);
    }
}

impl Core {
    fn status(&self) -> DeskStatus {
        DeskStatus {
            report: self.desk.status(),
            registered_clients: self.keys.read().expect("key ring poisoned").client_count(),
        }
    }
}

impl DeskHandle {
    /// A reviewer's decision. A race has one winner; the others learn the review was already
    /// decided.
    pub async fn decide(
        &self,
        escalation_id: String,
        actor: Actor,
        on_behalf_of: Option<String>,
        decision: Decision,
    ) -> Result<Escalation, DeskError> {
        let id = escalation_id.clone();
        let result = self
            .run(move |core, now| {
                core.desk
                    .decide(&id, &actor, on_behalf_of.as_deref(), decision, now)
            })
            .await;
        self.settled_review(&escalation_id, result).await
    }

    /// Claims a review (`reviewer_id` `None` or the caller) or hands it to another reviewer.
    pub async fn assign_escalation(
        &self,
        escalation_id: String,
        actor: Actor,
        reviewer_id: Option<String>,
    ) -> Result<Escalation, DeskError> {
        let id = escalation_id.clone();
        let result = self
            .run(move |core, now| {
                core.desk
                    .assign_escalation(&id, &actor, reviewer_id.as_deref(), now)
            })
            .await;
        self.settled_review(&escalation_id, result).await
    }

    /// Turns "not pending" into FAILED_PRECONDITION when the escalation exists but was already
    /// decided (the reply comes after the winner's commit, so the store already shows it).
    async fn settled_review(
        &self,
        escalation_id: &str,
        result: Result<Escalation, DeskError>,
    ) -> Result<Escalation, DeskError> {
        let Err(DeskError::Domain(DomainError::NotPending(_))) = &result else {
            return result;
        };
        let id = escalation_id.to_string();
        Err(match self.read(move |s| s.get_escalation(&id)).await? {
            Some(e) => DomainError::FailedPrecondition(format!(
                "escalation {} is already {}; only pending escalations can be decided or assigned",
                e.id,
                e.state.as_str()
            )),
            None => DomainError::NotFound(format!("escalation {escalation_id} not found")),
        }
        .into())
    }

    pub async fn review_report(&self) -> Result<ReviewReport, DeskError> {
        self.run(|core, _| Ok(core.desk.review_report())).await
    }

    pub async fn status(&self) -> Result<DeskStatus, DeskError> {
        self.run(|core, _| Ok(core.status())).await
    }

    /// The status, the gauges that take a pass over the open work, and the desk's time, all
    /// read at one moment: what a metrics scrape shows.
    pub async fn measure(&self) -> Result<(DeskStatus, Gauges, i64), DeskError> {
        self.run(|core, now| Ok((core.status(), core.desk.gauges(), now)))
            .await
    }

    pub async fn create_agent(&self, agent: Agent) -> Result<Agent, DeskError> {
        self.run(move |core, now| core.desk.create_agent(agent, now))
            .await
    }

    pub async fn update_agent(
        &self,
        agent_id: String,
        change: AgentChange,
    ) -> Result<Agent, DeskError> {
        self.run(move |core, now| core.desk.update_agent(&agent_id, change, now))
            .await
    }

    pub async fn delete_agent(&self, agent_id: String) -> Result<Agent, DeskError> {
        self.run(move |core, now| core.desk.delete_agent(&agent_id, now))
            .await
    }

    /// The agents of a tier (every tier when empty) in id order, and the sequence they were
    /// read at.
    pub async fn agents(&self, tier: String) -> Result<(Vec<Agent>, u64), DeskError> {
        self.run(move |core, _| Ok((core.desk.agents_in(&tier), core.desk.last_seq())))
            .await
    }

    pub async fn create_reviewer(&self, reviewer: Reviewer) -> Result<Reviewer, DeskError> {
        self.run(move |core, now| core.desk.create_reviewer(reviewer, now))
            .await
    }

    pub async fn update_reviewer(
        &self,
        reviewer_id: String,
        change: ReviewerChange,
    ) -> Result<Reviewer, DeskError> {
        self.run(move |core, now| core.desk.update_reviewer(&reviewer_id, change, now))
            .await
    }

    pub async fn delete_reviewer(&self, reviewer_id: String) -> Result<Reviewer, DeskError> {
        self.run(move |core, now| core.desk.delete_reviewer(&reviewer_id, now))
            .await
    }

    /// The reviewers in the order they were added, and the sequence they were read at.
    pub async fn reviewers(&self) -> Result<(Vec<Reviewer>, u64), DeskError> {
        self.run(|core, _| {
            let reviewers = core.desk.reviews().reviewers().cloned().collect();
            Ok((reviewers, core.desk.last_seq()))
        })
        .await
    }

    /// Adds a key: it authenticates calls as soon as this returns, and survives restarts.
    pub async fn create_key(&self, record: KeyRecord) -> Result<(), DeskError> {
        self.run(move |core, _| {
            core.add_key(record);
            Ok(())
        })
        .await
    }

    /// Revokes a key: no call is authenticated with it once this returns.
    pub async fn revoke_key(&self, key_id: String) -> Result<KeyRecord, DeskError> {
        self.run(move |core, now| {
            let unknown = DomainError::NotFound(format!("api key {key_id} not found"));
            core.revoke_key(key_id, now).ok_or(unknown)
        })
        .await
    }

    /// Every key (never a secret), in the key ring's order.
    pub fn key_records(&self) -> Vec<KeyRecord> {
        self.keys().read().expect("key ring poisoned").records()
    }

    pub async fn settings(&self) -> Result<Settings, DeskError> {
        self.run(|core, _| Ok(core.desk.settings().clone())).await
    }

    /// Changes the settings at run time; the change is kept across restarts with who made it.
    pub async fn change_settings(
        &self,
        change: SettingsChange,
        changed_by: String,
    ) -> Result<Settings, DeskError> {
        self.run(move |core, _| {
            let settings = core.desk.change_settings(&change)?;
            core.settings_change = Some((settings.clone(), changed_by));
            Ok(settings)
        })
        .await
    }

    /// Attaches a remote agent's process (see [`AgentSession`]) for `actor`, whose key is
    /// `key_id` (`None`: a development key): revoking that key detaches the agent.
    pub async fn attach(
        &self,
        spec: AttachSpec,
        actor: Actor,
        key_id: Option<String>,
    ) -> Result<AgentSession, DeskError> {
        let stream_id = self.new_stream_id();
        let lease = AttachLease {
            desk: self.clone(),
            stream_id,
        };
        let (agent, feed, assignment_timeout_ms) = self
            .run(move |core, now| {
                let (agent, feed) = core.attach(spec, &actor, key_id, stream_id, now)?;
                Ok((agent, feed, core.desk.settings().assignment_timeout_ms))
            })
            .await?;
        Ok(AgentSession {
            agent,
            feed,
            assignment_timeout_ms,
            _lease: lease,
        })
    }

    /// A remote agent's answer to an assignment; the ticket as it stands after it.
    pub async fn reply(
        &self,
        assignment_id: String,
        reply: AgentReply,
        actor: Actor,
    ) -> Result<Ticket, DeskError> {
        let id = assignment_id.clone();
        let result = self
            .run(move |core, now| core.desk.remote_replied(&id, reply, &actor, now))
            .await;
        let Err(DeskError::Domain(DomainError::AssignmentNotOpen(_))) = &result else {
            return result;
        };
        // An assignment that is not open was answered or handed on if its ticket exists.
        let not_found = || DomainError::NotFound(format!("assignment {assignment_id} not found"));
        let Some(ticket_id) = ticket_of_assignment(&assignment_id) else {
            return Err(not_found().into());
        };
        Err(match self.read(move |s| s.get_ticket(&ticket_id)).await? {
            Some(_) => DomainError::FailedPrecondition(format!(
                "assignment {assignment_id} was already answered or handed on \
                 (deadline passed, or the agent's stream closed)"
            )),
            None => not_found(),
        }
        .into())
    }

    /// A ticket the actor may read; another client's ticket is NOT_FOUND, as if it did not
    /// exist, so ids cannot be probed.
    pub async fn ticket_for(&self, actor: &Actor, ticket_id: &str) -> Result<Ticket, DeskError> {
        let ticket = self.stored_ticket(ticket_id).await?;
        if actor.may_read(&ticket.client_id) {
            Ok(ticket)
        } else {
            Err(DomainError::NotFound(format!("ticket {ticket_id} not found")).into())
        }
    }

    /// Creates the agents, reviewers and first key of a brand-new desk, and marks it seeded,
    /// in one commit: a restart never seeds twice, and never half.
    pub async fn seed(&self, seed: Seed) -> Result<(), DeskError> {
        self.run(move |core, now| {
            for agent in seed.agents {
                core.desk.create_agent(agent, now)?;
            }
            for reviewer in seed.reviewers {
                core.desk.create_reviewer(reviewer, now)?;
            }
            if let Some(record) = seed.first_key {
                core.add_key(record);
            }
            core.mark_seeded = true;
            Ok(())
        })
        .await
    }
}
