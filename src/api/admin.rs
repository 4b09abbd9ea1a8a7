//! AdminService: status, agents, reviewers, API keys, configuration and the whole event log.

use std::collections::BTreeSet;

use tonic::{Request, Response, Status};

use super::auth::client;
use super::convert;
use super::status;
use super::validate::{decode_offset, encode_offset, Violations};
use super::watch::{watch, Source, WatchSpec, WatchStream};
use super::Api;
use crate::auth::{generate_key, PERMISSIONS};
use crate::clock::now_ms;
use crate::domain::desk::{AgentChange, Desk, ReviewerChange};
use crate::domain::error::DomainError;
use crate::domain::mesh::{Agent, AgentKind, Availability};
use crate::domain::review::Reviewer;
use crate::proto::v1 as pb;
use crate::proto::v1::admin_service_server::AdminService;
use crate::store::KeyChange;

/// A new agent from the fields CreateAgent and Attach share, validated into `v`.
pub(super) fn new_agent(
    v: &mut Violations,
    name: &str,
    tier: &str,
    specialties: &[String],
    capacity: u32,
) -> Agent {
    v.identifier("name", name, 64);
    v.label("tier", tier, true, 64);
    let specialties = v.topics("specialties", specialties);
    v.check(
        capacity <= 1000,
        "capacity",
        "must be within 1..1000 (0 means the tier default)",
    );
    Agent {
        id: String::new(),
        name: name.to_string(),
        tier: tier.to_string(),
        specialties,
        capacity,
        load: 0,
        availability: Availability::Available,
        kind: AgentKind::Builtin,
        handled: 0,
        attached_by: None,
    }
}

fn mean_ms(total: u64, count: u64) -> i64 {
    total.checked_div(count).unwrap_or(0) as i64
}

pub fn escalation_stats(desk: &Desk) -> pb::EscalationStats {
    let s = desk.stats();
    let decided = s.approved + s.rejected;
    pb::EscalationStats {
        total: s.reviews_total,
        active: desk.reviews().pending_count() as u64,
        approved: s.approved,
        rejected: s.rejected,
        expired: s.expired,
        approval_rate: if decided == 0 {
            0.0
        } else {
            s.approved as f64 / decided as f64
        },
        avg_time_to_decision: Some(convert::duration_ms(mean_ms(s.decide_ms_total, decided))),
        reviewers: desk.reviews().reviewers().map(convert::reviewer).collect(),
        unassigned: desk.reviews().unassigned_count() as u64,
    }
}

/// One page of an in-memory list by offset tokens.
fn page<T: Clone>(items: &[T], size: usize, offset: usize) -> (Vec<T>, String) {
    let end = (offset + size).min(items.len());
    let slice = items.get(offset..end).unwrap_or_default().to_vec();
    let next = if end < items.len() {
        encode_offset(end)
    } else {
        String::new()
    };
    (slice, next)
}

fn offset(v: &mut Violations, token: &str) -> usize {
    if token.is_empty() {
        return 0;
    }
    decode_offset(token).unwrap_or_else(|| {
        v.add(
            "page_token",
            "is not a page token from this list; start again with an empty token",
        );
        0
    })
}

#[tonic::async_trait]
impl AdminService for Api {
    async fn get_desk_status(
        &self,
        _request: Request<pb::GetDeskStatusRequest>,
    ) -> Result<Response<pb::DeskStatus>, Status> {
        let name = self.desk_name.clone();
        let status = self
            .desk
            .run(move |core, _| {
                let desk = &core.desk;
                let s = desk.stats();
                let mut agents: Vec<&Agent> = desk.mesh().agents().collect();
                agents.sort_by(|a, b| a.id.cmp(&b.id));
                let (mut load, mut capacity) = (0u64, 0u64);
                for a in agents
                    .iter()
                    .filter(|a| a.availability == Availability::Available)
                {
                    load += u64::from(a.load);
                    capacity += u64::from(a.capacity);
                }
                let tiers = desk
                    .mesh()
                    .tiers()
                    .iter()
                    .map(|t| pb::TierStatus {
                        name: t.name.clone(),
                        agents: agents
                            .iter()
                            .filter(|a| a.tier == t.name)
                            .map(|a| convert::agent(a))
                            .collect(),
                        confidence_threshold: t.threshold,
                    })
                    .collect();
                let keys = core.keys.read().expect("key ring poisoned");
                Ok(pb::DeskStatus {
                    desk_name: name,
                    total_handled: s.handled,
                    escalation_rate: if s.handled == 0 {
                        0.0
                    } else {
                        s.escalated as f64 / s.handled as f64
                    },
                    avg_resolution_time: Some(convert::duration_ms(mean_ms(
                        s.resolution_ms_total,
                        s.handled,
                    ))),
                    utilization: if capacity == 0 {
                        0.0
                    } else {
                        load as f64 / capacity as f64
                    },
                    open_tickets: desk.open_tickets() as u64,
                    tiers,
                    escalation_stats: Some(escalation_stats(desk)),
                    auth_enabled: true,
                    registered_clients: keys.client_count() as u32,
                    queued_tickets: desk.queued_tickets() as u64,
                    sequence: desk.last_seq(),
                })
            })
            .await
            .map_err(status::desk)?;
        Ok(Response::new(status))
    }

    async fn create_agent(
        &self,
        request: Request<pb::CreateAgentRequest>,
    ) -> Result<Response<pb::Agent>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        let new = new_agent(&mut v, &r.name, &r.tier, &r.specialties, r.capacity);
        let kind = match pb::AgentKind::try_from(r.kind) {
            Ok(pb::AgentKind::Remote) => AgentKind::Remote,
            Ok(_) => AgentKind::Builtin,
            Err(_) => {
                v.add("kind", format!("unknown AgentKind value {}", r.kind));
                AgentKind::Builtin
            }
        };
        v.finish()?;
        let agent = Agent { kind, ..new };
        let agent = self
            .desk
            .run(move |core, now| core.desk.create_agent(agent, now))
            .await
            .map_err(status::desk)?;
        Ok(Response::new(convert::agent(&agent)))
    }

    async fn update_agent(
        &self,
        request: Request<pb::UpdateAgentRequest>,
    ) -> Result<Response<pb::Agent>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        v.identifier("agent_id", &r.agent_id, 64);
        let availability = match r.availability.map(pb::AgentAvailability::try_from) {
            None => None,
            Some(Ok(pb::AgentAvailability::Available)) => Some(Availability::Available),
            Some(Ok(pb::AgentAvailability::Paused)) => Some(Availability::Paused),
            Some(Ok(pb::AgentAvailability::Offline)) => {
                v.add(
                    "availability",
                    "OFFLINE is set by the desk when a remote agent detaches; use PAUSED",
                );
                None
            }
            Some(_) => {
                v.add("availability", "must be AVAILABLE or PAUSED");
                None
            }
        };
        if let Some(c) = r.capacity {
            v.check(
                (1..=1000).contains(&c),
                "capacity",
                "must be within 1..1000",
            );
        }
        let specialties = v.topics("specialties", &r.specialties);
        if !r.update_specialties && !r.specialties.is_empty() {
            v.add(
                "update_specialties",
                "set it to true to replace the specialties",
            );
        }
        v.finish()?;
        let change = AgentChange {
            availability,
            capacity: r.capacity,
            specialties: r.update_specialties.then_some(specialties),
        };
        let id = r.agent_id;
        let agent = self
            .desk
            .run(move |core, now| core.desk.update_agent(&id, change, now))
            .await
            .map_err(status::desk)?;
        Ok(Response::new(convert::agent(&agent)))
    }

    async fn delete_agent(
        &self,
        request: Request<pb::DeleteAgentRequest>,
    ) -> Result<Response<pb::Agent>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        v.identifier("agent_id", &r.agent_id, 64);
        v.finish()?;
        let id = r.agent_id;
        let agent = self
            .desk
            .run(move |core, now| core.desk.delete_agent(&id, now))
            .await
            .map_err(status::desk)?;
        Ok(Response::new(convert::agent(&agent)))
    }

    async fn list_agents(
        &self,
        request: Request<pb::ListAgentsRequest>,
    ) -> Result<Response<pb::ListAgentsResponse>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        v.label("tier", &r.tier, false, 64);
        let size = v.page_size("page_size", r.page_size, 100, 1000);
        let from = offset(&mut v, &r.page_token);
        v.finish()?;
        let tier = r.tier;
        let (agents, next, seq) = self
            .desk
            .run(move |core, _| {
                let mut all: Vec<&Agent> = core
                    .desk
                    .mesh()
                    .agents()
                    .filter(|a| tier.is_empty() || a.tier.eq_ignore_ascii_case(&tier))
                    .collect();
                all.sort_by(|a, b| a.id.cmp(&b.id));
                let all: Vec<pb::Agent> = all.into_iter().map(convert::agent).collect();
                let (items, next) = page(&all, size, from);
                Ok((items, next, core.desk.last_seq()))
            })
            .await
            .map_err(status::desk)?;
        Ok(Response::new(pb::ListAgentsResponse {
            agents,
            next_page_token: next,
            sequence: seq,
        }))
    }

    async fn create_reviewer(
        &self,
        request: Request<pb::CreateReviewerRequest>,
    ) -> Result<Response<pb::Reviewer>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        v.identifier("reviewer_id", &r.reviewer_id, 64);
        v.label("name", &r.name, true, 128);
        let specialties = v.topics("specialties", &r.specialties);
        v.check(
            r.max_concurrent <= 1000,
            "max_concurrent",
            "must be within 1..1000 (0 means 3)",
        );
        v.finish()?;
        let reviewer = Reviewer {
            id: r.reviewer_id,
            name: r.name,
            specialties,
            max_concurrent: if r.max_concurrent == 0 {
                3
            } else {
                r.max_concurrent
            },
            load: 0,
            decided: 0,
            order: 0,
        };
        let reviewer = self
            .desk
            .run(move |core, now| core.desk.create_reviewer(reviewer, now))
            .await
            .map_err(status::desk)?;
        Ok(Response::new(convert::reviewer(&reviewer)))
    }

    async fn update_reviewer(
        &self,
        request: Request<pb::UpdateReviewerRequest>,
    ) -> Result<Response<pb::Reviewer>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        v.identifier("reviewer_id", &r.reviewer_id, 64);
        if let Some(name) = &r.name {
            v.label("name", name, true, 128);
        }
        if let Some(m) = r.max_concurrent {
            v.check(
                (1..=1000).contains(&m),
                "max_concurrent",
                "must be within 1..1000",
            );
        }
        let specialties = v.topics("specialties", &r.specialties);
        if !r.update_specialties && !r.specialties.is_empty() {
            v.add(
                "update_specialties",
                "set it to true to replace the specialties",
            );
        }
        v.finish()?;
        let change = ReviewerChange {
            name: r.name,
            max_concurrent: r.max_concurrent,
            specialties: r.update_specialties.then_some(specialties),
        };
        let id = r.reviewer_id;
        let reviewer = self
            .desk
            .run(move |core, now| core.desk.update_reviewer(&id, change, now))
            .await
            .map_err(status::desk)?;
        Ok(Response::new(convert::reviewer(&reviewer)))
    }

    async fn delete_reviewer(
        &self,
        request: Request<pb::DeleteReviewerRequest>,
    ) -> Result<Response<pb::Reviewer>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        v.identifier("reviewer_id", &r.reviewer_id, 64);
        v.finish()?;
        let id = r.reviewer_id;
        let reviewer = self
            .desk
            .run(move |core, now| core.desk.delete_reviewer(&id, now))
            .await
            .map_err(status::desk)?;
        Ok(Response::new(convert::reviewer(&reviewer)))
    }

    async fn list_reviewers(
        &self,
        request: Request<pb::ListReviewersRequest>,
    ) -> Result<Response<pb::ListReviewersResponse>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        let size = v.page_size("page_size", r.page_size, 100, 1000);
        let from = offset(&mut v, &r.page_token);
        v.finish()?;
        let (reviewers, next, seq) = self
            .desk
            .run(move |core, _| {
                let all: Vec<pb::Reviewer> = core
                    .desk
                    .reviews()
                    .reviewers()
                    .map(convert::reviewer)
                    .collect();
                let (items, next) = page(&all, size, from);
                Ok((items, next, core.desk.last_seq()))
            })
            .await
            .map_err(status::desk)?;
        Ok(Response::new(pb::ListReviewersResponse {
            reviewers,
            next_page_token: next,
            sequence: seq,
        }))
    }

    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let caller = client(&request)?;
        let r = request.into_inner();
        let mut v = Violations::default();
        v.identifier("client_id", &r.client_id, 64);
        v.label("client_name", &r.client_name, false, 128);
        if r.permissions.is_empty() {
            v.add(
                "permissions",
                format!("name at least one of {}", PERMISSIONS.join(", ")),
            );
        }
        for p in &r.permissions {
            if !PERMISSIONS.contains(&p.as_str()) {
                v.add(
                    "permissions",
                    format!(
                        "unknown permission {:?}; use {}",
                        p.chars().take(32).collect::<String>(),
                        PERMISSIONS.join(", ")
                    ),
                );
            }
        }
        v.finish()?;
        let permissions: Vec<String> = r
            .permissions
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let name = if r.client_name.is_empty() {
            r.client_id.clone()
        } else {
            r.client_name
        };
        let (secret, record) = generate_key(&r.client_id, &name, permissions, now_ms());
        let stored = record.clone();
        self.desk
            .run(move |core, _| {
                core.keys
                    .write()
                    .expect("key ring poisoned")
                    .insert(stored.clone());
                core.record_key_change(KeyChange::Created(stored));
                Ok(())
            })
            .await
            .map_err(status::desk)?;
        tracing::info!(key_id = %record.key_id, client = %record.client_id, by = %caller.client_id, "api key created");
        Ok(Response::new(pb::CreateApiKeyResponse {
            api_key: secret,
            key: Some(convert::api_key(&record)),
        }))
    }

    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        let size = v.page_size("page_size", r.page_size, 100, 1000);
        let from = offset(&mut v, &r.page_token);
        v.finish()?;
        let all: Vec<pb::ApiKey> = self
            .desk
            .keys
            .read()
            .expect("key ring poisoned")
            .records()
            .iter()
            .filter(|k| r.show_revoked || !k.revoked)
            .map(convert::api_key)
            .collect();
        let (keys, next) = page(&all, size, from);
        Ok(Response::new(pb::ListApiKeysResponse {
            keys,
            next_page_token: next,
        }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::ApiKey>, Status> {
        let caller = client(&request)?;
        let r = request.into_inner();
        let mut v = Violations::default();
        v.check(
            r.key_id.len() == 12 && r.key_id.bytes().all(|b| b.is_ascii_hexdigit()),
            "key_id",
            "must be the 12 hex characters of a key id (from ListApiKeys)",
        );
        v.finish()?;
        let key_id = r.key_id.clone();
        let record = self
            .desk
            .run(move |core, _| {
                let record = core
                    .keys
                    .write()
                    .expect("key ring poisoned")
                    .revoke(&key_id)
                    .ok_or_else(|| DomainError::NotFound(format!("api key {key_id} not found")))?;
                core.record_key_change(KeyChange::Revoked { key_id });
                Ok(record)
            })
            .await
            .map_err(status::desk)?;
        tracing::info!(key_id = %record.key_id, by = %caller.client_id, "api key revoked");
        Ok(Response::new(convert::api_key(&record)))
    }

    async fn get_config(
        &self,
        _request: Request<pb::GetConfigRequest>,
    ) -> Result<Response<pb::DeskConfig>, Status> {
        let settings = self
            .desk
            .run(|core, _| Ok(core.desk.settings().clone()))
            .await
            .map_err(status::desk)?;
        Ok(Response::new(desk_config(&settings)))
    }

    async fn update_config(
        &self,
        request: Request<pb::UpdateConfigRequest>,
    ) -> Result<Response<pb::DeskConfig>, Status> {
        let caller = client(&request)?;
        let r = request.into_inner();
        let mut v = Violations::default();
        let config = r.config.unwrap_or_default();
        let paths: Vec<String> = r.update_mask.map(|m| m.paths).unwrap_or_default();
        const FIELDS: [&str; 5] = [
            "routing_strategy",
            "escalation_timeout",
            "max_review_reassignments",
            "queue_timeout",
            "assignment_timeout",
        ];
        for p in &paths {
            if !FIELDS.contains(&p.as_str()) {
                v.add(
                    "update_mask",
                    format!(
                        "unknown field {:?}; use {}",
                        p.chars().take(64).collect::<String>(),
                        FIELDS.join(", ")
                    ),
                );
            }
        }
        let wants = |field: &str, set: bool| {
            if paths.is_empty() {
                set
            } else {
                paths.iter().any(|p| p == field)
            }
        };
        let routing = if wants("routing_strategy", config.routing_strategy != 0) {
            match pb::RoutingStrategy::try_from(config.routing_strategy) {
                Ok(pb::RoutingStrategy::LeastLoaded) => {
                    Some(crate::domain::mesh::RoutingStrategy::LeastLoaded)
                }
                Ok(pb::RoutingStrategy::RoundRobin) => {
                    Some(crate::domain::mesh::RoutingStrategy::RoundRobin)
                }
                _ => {
                    v.add(
                        "config.routing_strategy",
                        "must be LEAST_LOADED or ROUND_ROBIN",
                    );
                    None
                }
            }
        } else {
            None
        };
        let mut duration = |field: &str, value: &Option<prost_types::Duration>| -> Option<i64> {
            if !wants(field, value.is_some()) {
                return None;
            }
            let ms = value.as_ref().map(convert::duration_to_ms).unwrap_or(0);
            if !(1000..=30 * 24 * 3600 * 1000).contains(&ms) {
                v.add(&format!("config.{field}"), "must be within 1 s..30 days");
                return None;
            }
            Some(ms)
        };
        let escalation_timeout = duration("escalation_timeout", &config.escalation_timeout);
        let queue_timeout = duration("queue_timeout", &config.queue_timeout);
        let assignment_timeout = duration("assignment_timeout", &config.assignment_timeout);
        let reassignments = if wants(
            "max_review_reassignments",
            config.max_review_reassignments != 0,
        ) {
            v.check(
                config.max_review_reassignments <= 10,
                "config.max_review_reassignments",
                "must be within 0..10",
            );
            Some(config.max_review_reassignments)
        } else {
            None
        };
        v.finish()?;
        let who = caller.client_id.clone();
        let settings = self
            .desk
            .run(move |core, _| {
                let mut s = core.desk.settings().clone();
                if let Some(r) = routing {
                    s.routing = r;
                }
                if let Some(ms) = escalation_timeout {
                    s.escalation_timeout_ms = ms;
                }
                if let Some(ms) = queue_timeout {
                    s.queue_timeout_ms = ms;
                }
                if let Some(ms) = assignment_timeout {
                    s.assignment_timeout_ms = ms;
                }
                if let Some(n) = reassignments {
                    s.max_review_reassignments = n;
                }
                core.desk.set_settings(s.clone());
                core.record_settings(s.clone(), &who);
                Ok(s)
            })
            .await
            .map_err(status::desk)?;
        tracing::info!(by = %caller.client_id, "configuration updated");
        Ok(Response::new(desk_config(&settings)))
    }

    type WatchEventsStream = WatchStream<pb::DeskEvent>;

    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        v.sequence("after_sequence", r.after_sequence);
        let mut kinds = std::collections::HashSet::new();
        for k in &r.kinds {
            match pb::DeskEventKind::try_from(*k)
                .ok()
                .and_then(convert::event_kind_from)
            {
                Some(kind) => {
                    kinds.insert(kind);
                }
                None => v.add("kinds", format!("unknown DeskEventKind value {k}")),
            }
        }
        v.finish()?;
        let spec = WatchSpec {
            after: r.after_sequence,
            source: Source::All,
            select: Box::new(move |e| {
                (kinds.is_empty() || kinds.contains(&e.kind())).then(|| convert::desk_event(e))
            }),
            ends: Box::new(|_| false),
            done_after_replay: None,
            stall: self.stalled_stream,
        };
        let slot = self.stream_slot()?;
        Ok(Response::new(watch(self.desk.clone(), spec, slot)))
    }
}

fn desk_config(s: &crate::domain::desk::Settings) -> pb::DeskConfig {
    pb::DeskConfig {
        routing_strategy: convert::routing(s.routing) as i32,
        escalation_timeout: Some(convert::duration_ms(s.escalation_timeout_ms)),
        max_review_reassignments: s.max_review_reassignments,
        queue_timeout: Some(convert::duration_ms(s.queue_timeout_ms)),
        assignment_timeout: Some(convert::duration_ms(s.assignment_timeout_ms)),
    }
}
