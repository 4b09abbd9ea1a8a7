//! EscalationService: the reviewers' side.

use tonic::{Request, Response, Status};

use super::auth::client;
use super::convert;
use super::status;
use super::validate::{encode_token, TokenKind, Violations};
use super::watch::{watch, Source, WatchSpec, WatchStream};
use super::{blocking, Api};
use crate::domain::desk::Actor;
use crate::domain::error::DomainError;
use crate::domain::review::Escalation;
use crate::proto::v1 as pb;
use crate::proto::v1::escalation_service_server::EscalationService;
use crate::runtime::DeskError;
use crate::store::EscalationFilter;

const COMMENT_BYTES: usize = 4 * 1024;

impl Api {
    /// Turns "not pending" into FAILED_PRECONDITION when the escalation exists but was already
    /// decided (the reply comes after the winner's commit, so the store already shows it).
    async fn decision_error(&self, esc_id: &str, err: DeskError) -> Status {
        if let DeskError::Domain(DomainError::NotPending(_)) = &err {
            let id = esc_id.to_string();
            return match blocking(&self.desk, move |s| s.get_escalation(&id)).await {
                Ok(Some(e)) => status::failed_precondition(format!(
                    "escalation {} is already {}; only pending escalations can be decided or assigned",
                    e.id,
                    e.state.as_str()
                )),
                Ok(None) => status::not_found(format!("escalation {esc_id} not found")),
                Err(read_failed) => read_failed,
            };
        }
        status::desk(err)
    }
}

fn escalation_response(e: &Escalation) -> Response<pb::Escalation> {
    Response::new(convert::escalation(e))
}

#[tonic::async_trait]
impl EscalationService for Api {
    async fn list_escalations(
        &self,
        request: Request<pb::ListEscalationsRequest>,
    ) -> Result<Response<pb::ListEscalationsResponse>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        let state = match pb::EscalationState::try_from(r.state) {
            Ok(s) => convert::escalation_state_from(s),
            Err(_) => {
                v.add(
                    "state",
                    format!("unknown EscalationState value {}", r.state),
                );
                crate::domain::review::EscalationState::Pending
            }
        };
        if !r.reviewer_id.is_empty() {
            v.identifier("reviewer_id", &r.reviewer_id, 64);
        }
        let limit = v.page_size("page_size", r.page_size, 50, 500);
        let after = v.page_token("page_token", &r.page_token, TokenKind::Escalation);
        v.finish()?;
        let filter = EscalationFilter {
            state,
            reviewer_id: Some(r.reviewer_id).filter(|r| !r.is_empty()),
        };
        let page = blocking(&self.desk, move |s| {
            s.list_escalations(&filter, limit, after.as_ref())
        })
        .await?;
        Ok(Response::new(pb::ListEscalationsResponse {
            escalations: page.items.iter().map(convert::escalation).collect(),
            next_page_token: page.next.as_ref().map(encode_token).unwrap_or_default(),
            sequence: page.seq,
        }))
    }

    async fn get_escalation(
        &self,
        request: Request<pb::GetEscalationRequest>,
    ) -> Result<Response<pb::Escalation>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        v.resource_id("escalation_id", &r.escalation_id, "esc_");
        v.finish()?;
        let id = r.escalation_id.clone();
        let e = blocking(&self.desk, move |s| s.get_escalation(&id))
            .await?
            .ok_or_else(|| {
                status::not_found(format!("escalation {} not found", r.escalation_id))
            })?;
        Ok(escalation_response(&e))
    }

    #[tracing::instrument(skip_all, name = "ApproveEscalation")]
    async fn approve_escalation(
        &self,
        request: Request<pb::ApproveEscalationRequest>,
    ) -> Result<Response<pb::Escalation>, Status> {
        let caller = client(&request)?;
        let r = request.into_inner();
        let mut v = Violations::default();
        v.resource_id("escalation_id", &r.escalation_id, "esc_");
        v.text("comments", &r.comments, false, COMMENT_BYTES);
        v.text("response", &r.response, false, self.limits.text_bytes);
        if !r.reviewer_id.is_empty() {
            v.identifier("reviewer_id", &r.reviewer_id, 64);
        }
        v.finish()?;
        let actor = Actor {
            client_id: caller.client_id.clone(),
            admin: caller.is_admin(),
        };
        let esc_id = r.escalation_id.clone();
        let on_behalf = Some(r.reviewer_id).filter(|x| !x.is_empty());
        let response = Some(r.response.trim().to_string()).filter(|x| !x.is_empty());
        let comments = r.comments.trim().to_string();
        let result = self
            .desk
            .run(move |core, now| {
                core.desk.approve(
                    &esc_id,
                    &actor,
                    on_behalf.as_deref(),
                    comments,
                    response,
                    now,
                )
            })
            .await;
        match result {
            Ok(e) => Ok(escalation_response(&e)),
            Err(err) => Err(self.decision_error(&r.escalation_id, err).await),
        }
    }

    #[tracing::instrument(skip_all, name = "RejectEscalation")]
    async fn reject_escalation(
        &self,
        request: Request<pb::RejectEscalationRequest>,
    ) -> Result<Response<pb::Escalation>, Status> {
        let caller = client(&request)?;
        let r = request.into_inner();
        let mut v = Violations::default();
        v.resource_id("escalation_id", &r.escalation_id, "esc_");
        v.text("reason", &r.reason, true, COMMENT_BYTES);
        if !r.reviewer_id.is_empty() {
            v.identifier("reviewer_id", &r.reviewer_id, 64);
        }
        v.finish()?;
        let actor = Actor {
            client_id: caller.client_id.clone(),
            admin: caller.is_admin(),
        };
        let esc_id = r.escalation_id.clone();
        let on_behalf = Some(r.reviewer_id).filter(|x| !x.is_empty());
        let reason = r.reason.trim().to_string();
        let result = self
            .desk
            .run(move |core, now| {
                core.desk
                    .reject(&esc_id, &actor, on_behalf.as_deref(), reason, now)
            })
            .await;
        match result {
            Ok(e) => Ok(escalation_response(&e)),
            Err(err) => Err(self.decision_error(&r.escalation_id, err).await),
        }
    }

    async fn assign_escalation(
        &self,
        request: Request<pb::AssignEscalationRequest>,
    ) -> Result<Response<pb::Escalation>, Status> {
        let caller = client(&request)?;
        let r = request.into_inner();
        let mut v = Violations::default();
        v.resource_id("escalation_id", &r.escalation_id, "esc_");
        if !r.reviewer_id.is_empty() {
            v.identifier("reviewer_id", &r.reviewer_id, 64);
        }
        v.finish()?;
        let actor = Actor {
            client_id: caller.client_id.clone(),
            admin: caller.is_admin(),
        };
        let esc_id = r.escalation_id.clone();
        let target = Some(r.reviewer_id).filter(|x| !x.is_empty());
        let result = self
            .desk
            .run(move |core, now| {
                core.desk
                    .assign_escalation(&esc_id, &actor, target.as_deref(), now)
            })
            .await;
        match result {
            Ok(e) => Ok(escalation_response(&e)),
            Err(err) => Err(self.decision_error(&r.escalation_id, err).await),
        }
    }

    type WatchEscalationsStream = WatchStream<pb::EscalationEvent>;

    async fn watch_escalations(
        &self,
        request: Request<pb::WatchEscalationsRequest>,
    ) -> Result<Response<Self::WatchEscalationsStream>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        v.sequence("after_sequence", r.after_sequence);
        if !r.reviewer_id.is_empty() {
            v.identifier("reviewer_id", &r.reviewer_id, 64);
        }
        v.finish()?;
        let reviewer = Some(r.reviewer_id).filter(|x| !x.is_empty());
        let spec = WatchSpec {
            after: r.after_sequence,
            source: Source::All,
            select: Box::new(move |e| match &reviewer {
                Some(id) if !e.concerns_reviewer(id) => None,
                _ => convert::escalation_event(e),
            }),
            ends: Box::new(|_| false),
            done_after_replay: None,
            stall: self.stalled_stream,
        };
        let slot = self.stream_slot()?;
        Ok(Response::new(watch(self.desk.clone(), spec, slot)))
    }

    async fn get_escalation_stats(
        &self,
        _request: Request<pb::GetEscalationStatsRequest>,
    ) -> Result<Response<pb::EscalationStats>, Status> {
        let stats = self
            .desk
            .run(|core, _| Ok(super::admin::escalation_stats(&core.desk)))
            .await
            .map_err(status::desk)?;
        Ok(Response::new(stats))
    }
}
