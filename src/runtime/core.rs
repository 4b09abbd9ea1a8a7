//! What the runtime task owns: the desk itself plus what only the runtime may touch: callers
//! waiting for a ticket to settle, recent idempotency keys, the open feeds of remote agents,
//! and the writes that are not desk events (keys, settings, the seeded mark, compaction).
//!
//! Methods of `Core` here: `new`, `attach`, `detach`, `wait_for`, `remember_idempotency`,
//! `take_key_changes`, `record_key_use`, `idempotent_ticket`, `add_key`, `revoke_key`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, oneshot};

use super::AgentFeed;
use crate::domain::desk::{Actor, AttachSpec, Desk, Settings};
use crate::domain::error::DomainError;
use crate::domain::mesh::Agent;
use crate::domain::ticket::Ticket;
use crate::keys::KeyRing;
use crate::store::{KeyChange, KeyRecord};

/// Idempotency keys remembered in memory (older ones are found in the store).
const IDEMPOTENCY_MEMORY: usize = 100_000;

/// Messages buffered for one agent stream beyond its capacity: an agent holds at most
/// `capacity` assignments, so a stream that fills this is not reading; its assignments then
/// reach their deadlines and move on.
const AGENT_FEED_SLACK: usize = 64;

/// The open Attach stream of a remote agent.
pub(super) struct AgentStream {
    pub(super) stream_id: u64,
    pub(super) feed: mpsc::Sender<AgentFeed>,
    /// The key the stream was opened with (`None`: a development key).
    key_id: Option<String>,
}

pub(super) struct Core {
    pub(super) desk: Desk,
    pub(super) keys: Arc<RwLock<KeyRing>>,
    pub(super) waiters: HashMap<String, Vec<oneshot::Sender<Ticket>>>,
    /// A B-tree, for the reason `Desk`'s open tickets are.
    idempotency: BTreeMap<(String, String), String>,
    idempotency_order: VecDeque<(String, String)>,
    key_changes: Vec<KeyChange>,
    pub(super) settings_change: Option<(Settings, String)>,
    pub(super) mark_seeded: bool,
    pub(super) agent_streams: HashMap<String, AgentStream>,
    /// Stream id -> the agent it feeds.
    stream_agents: HashMap<u64, String>,
    /// Set when the next commit should compact the event log.
    pub(super) compact_before_ms: Option<i64>,
    /// The spans of this batch's commands while traces are exported: each gets a child span
    /// for the commit it waits for.
    pub(super) traced: Vec<tracing::Span>,
}

impl Core {
    pub(super) fn new(desk: Desk, keys: Arc<RwLock<KeyRing>>) -> Self {
        Core {
            desk,
            keys,
            waiters: HashMap::new(),
            idempotency: BTreeMap::new(),
            idempotency_order: VecDeque::new(),
            key_changes: Vec::new(),
            settings_change: None,
            mark_seeded: false,
            agent_streams: HashMap::new(),
            stream_agents: HashMap::new(),
            compact_before_ms: None,
            traced: Vec::new(),
        }
    }

    /// Attaches a remote agent's process and opens its feed as stream `stream_id` (from
    /// [`super::DeskHandle::new_stream_id`]); a feed the agent already had ends ("taken
    /// over"). Returns the agent and the feed to forward.
    pub(super) fn attach(
        &mut self,
        spec: AttachSpec,
        actor: &Actor,
        key_id: Option<String>,
        stream_id: u64,
        now: i64,
    ) -> Result<(Agent, mpsc::Receiver<AgentFeed>), DomainError> {
        let agent = self.desk.attach_remote(spec, actor, now)?;
        let (feed, receiver) = mpsc::channel(agent.capacity as usize + AGENT_FEED_SLACK);
        self.stream_agents.insert(stream_id, agent.id.clone());
        let stream = AgentStream {
            stream_id,
            feed,
            key_id,
        };
        let previous = self.agent_streams.insert(agent.id.clone(), stream);
        if let Some(previous) = previous {
            self.stream_agents.remove(&previous.stream_id);
            let _ = previous.feed.try_send(AgentFeed::Ended(format!(
                "agent {} was attached again by a newer stream; this one is closed",
                agent.name
            )));
        }
        Ok((agent, receiver))
    }

    /// Stream `stream_id` closed: its agent goes offline. A stream that was taken over, or
    /// whose attach never happened, changes nothing.
    pub(super) fn detach(&mut self, stream_id: u64, now: i64) {
        let Some(agent_id) = self.stream_agents.remove(&stream_id) else {
            return;
        };
        if self
            .agent_streams
            .get(&agent_id)
            .is_some_and(|s| s.stream_id == stream_id)
        {
            self.agent_streams.remove(&agent_id);
            self.desk.detach_remote(&agent_id, now);
        }
    }

    /// Calls `waiter` with the ticket once it is settled (answered, in review or closed),
    /// after the commit that settled it.
    pub(super) fn wait_for(&mut self, ticket_id: &str, waiter: oneshot::Sender<Ticket>) {
        self.waiters
            .entry(ticket_id.to_string())
            .or_default()
            .push(waiter);
    }

    pub(super) fn remember_idempotency(&mut self, client_id: &str, key: &str, ticket_id: &str) {
        let k = (client_id.to_string(), key.to_string());
        if self
            .idempotency
            .insert(k.clone(), ticket_id.to_string())
            .is_none()
        {
            self.idempotency_order.push_back(k);
        }
        while self.idempotency_order.len() > IDEMPOTENCY_MEMORY {
            if let Some(old) = self.idempotency_order.pop_front() {
                self.idempotency.remove(&old);
            }
        }
    }

    /// The key changes of this batch, for its commit.
    pub(super) fn take_key_changes(&mut self) -> Vec<KeyChange> {
        std::mem::take(&mut self.key_changes)
    }

    /// Records keys' last use for this batch's commit.
    pub(super) fn record_key_use(&mut self, used: impl IntoIterator<Item = (String, i64)>) {
        self.key_changes.extend(
            used.into_iter()
                .map(|(key_id, time_ms)| KeyChange::Used { key_id, time_ms }),
        );
    }

    pub(super) fn idempotent_ticket(&self, client_id: &str, key: &str) -> Option<&String> {
        self.idempotency
            .get(&(client_id.to_string(), key.to_string()))
    }

    /// Adds a key to the ring (every call authenticated after this job accepts it) and to the
    /// batch's commit.
    pub(super) fn add_key(&mut self, record: KeyRecord) {
        self.keys
            .write()
            .expect("key ring poisoned")
            .insert(record.clone());
        self.key_changes.push(KeyChange::Created(record));
    }

    /// Revokes a key in the ring (every call authenticated after this job refuses it, and the
    /// watches opened with it end) and in the batch's commit; `None` for an unknown key. The
    /// agents attached with it go offline in this same job, their work handed on: no
    /// assignment reaches a process whose key was revoked.
    pub(super) fn revoke_key(&mut self, key_id: String, now: i64) -> Option<KeyRecord> {
        let record = self
            .keys
            .write()
            .expect("key ring poisoned")
            .revoke(&key_id)?;
        let attached: Vec<u64> = self
            .agent_streams
            .values()
            .filter(|s| s.key_id.as_deref() == Some(key_id.as_str()))
            .map(|s| s.stream_id)
            .collect();
        for stream_id in attached {
            // Its feed closes with it; the stream sees the key's revocation and says so.
            self.detach(stream_id, now);
        }
        self.key_changes.push(KeyChange::Revoked { key_id });
        Some(record)
    }
}
