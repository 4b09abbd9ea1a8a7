//! EscalationService: the reviewers' side.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::auth::client;
use super::connections::Connection;
use super::requests::DecisionRequest;
use super::validate::encode_token;
use super::watch::{self, WatchSpec, WatchStream};
use super::{convert, requests, status, Api};
use crate::domain::event::Event;
use crate::keys::Client;
use crate::proto::encoded;
use crate::proto::v1 as pb;
use crate::proto::v1::escalation_service_server::EscalationService;

/// Response metadata of `GetEscalationStats`: the caller's client id, which is the reviewer id
/// its key acts as.
pub const CLIENT_ID_HEADER: &str = "servicedesk-client-id";

impl Api {
    /// Approve and Reject: one decision, one winner.
    async fn decide(
        &self,
        caller: Client,
        r: DecisionRequest,
    ) -> Result<Response<pb::Escalation>, Status> {
        let decided = self
            .desk
            .decide(r.escalation_id, caller.actor(), r.on_behalf_of, r.decision)
            .await;
        Ok(Response::new(convert::escalation(
            &decided.map_err(status::desk)?,
        )))
    }
}

#[tonic::async_trait]
impl EscalationService for Api {
    #[tracing::instrument(skip_all, name = "ListEscalations")]
    async fn list_escalations(
        &self,
        request: Request<pb::ListEscalationsRequest>,
    ) -> Result<Response<pb::ListEscalationsResponse>, Status> {
        let q = requests::escalation_list(request.into_inner())?;
        let page = self
            .desk
            .read(move |s| s.list_escalations(&q.filter, q.limit, q.after.as_ref()))
            .await
            .map_err(status::desk)?;
        Ok(Response::new(pb::ListEscalationsResponse {
            escalations: page.items.iter().map(convert::escalation).collect(),
            next_page_token: page.next.as_ref().map(encode_token).unwrap_or_default(),
            sequence: page.seq,
        }))
    }

    #[tracing::instrument(skip_all, name = "GetEscalation")]
    async fn get_escalation(
        &self,
        request: Request<pb::GetEscalationRequest>,
    ) -> Result<Response<pb::Escalation>, Status> {
        let id = request.into_inner().escalation_id;
        requests::resource_id("escalation_id", &id, "esc_")?;
        let wanted = id.clone();
        let found = self.desk.read(move |s| s.get_escalation(&wanted)).await;
        let e = found
            .map_err(status::desk)?
            .ok_or_else(|| status::not_found(format!("escalation {id} not found")))?;
        Ok(Response::new(convert::escalation(&e)))
    }

    #[tracing::instrument(skip_all, name = "ApproveEscalation")]
    async fn approve_escalation(
        &self,
        request: Request<pb::ApproveEscalationRequest>,
    ) -> Result<Response<pb::Escalation>, Status> {
        let caller = client(&request)?;
        let r = requests::approval(request.into_inner(), &self.limits)?;
        self.decide(caller, r).await
    }

    #[tracing::instrument(skip_all, name = "RejectEscalation")]
    async fn reject_escalation(
        &self,
        request: Request<pb::RejectEscalationRequest>,
    ) -> Result<Response<pb::Escalation>, Status> {
        let caller = client(&request)?;
        let r = requests::rejection(request.into_inner())?;
        self.decide(caller, r).await
    }

    #[tracing::instrument(skip_all, name = "AssignEscalation")]
    async fn assign_escalation(
        &self,
        request: Request<pb::AssignEscalationRequest>,
    ) -> Result<Response<pb::Escalation>, Status> {
        let actor = client(&request)?.actor();
        let (id, reviewer) = requests::assignment(request.into_inner())?;
        let assigned = self.desk.assign_escalation(id, actor, reviewer).await;
        Ok(Response::new(convert::escalation(
            &assigned.map_err(status::desk)?,
        )))
    }

    type WatchEscalationsStream = WatchStream<encoded::EscalationEvent>;

    #[tracing::instrument(skip_all, name = "WatchEscalations")]
    async fn watch_escalations(
        &self,
        request: Request<pb::WatchEscalationsRequest>,
    ) -> Result<Response<Self::WatchEscalationsStream>, Status> {
        let caller = client(&request)?;
        let connection = request.extensions().get::<Connection>().cloned();
        let w = requests::watch_escalations(request.into_inner())?;
        let reviewer = w.select;
        let keep = Arc::new(move |e: &Event| match &reviewer {
            Some(id) => e.concerns_reviewer(id),
            None => true,
        });
        let form = watch::ESCALATION_EVENT;
        let spec = WatchSpec::whole_log(w.after, self.stalled_stream, keep, form);
        self.watch(&caller, connection, spec)
    }

    #[tracing::instrument(skip_all, name = "GetEscalationStats")]
    async fn get_escalation_stats(
        &self,
        request: Request<pb::GetEscalationStatsRequest>,
    ) -> Result<Response<pb::EscalationStats>, Status> {
        let caller = client(&request)?;
        let report = self.desk.review_report().await.map_err(status::desk)?;
        let mut response = Response::new(convert::escalation_stats(&report));
        // Who the key says the caller is: the reviewer id a console acts as.
        if let Ok(id) = caller.client_id.parse() {
            response.metadata_mut().insert(CLIENT_ID_HEADER, id);
        }
        Ok(response)
    }
}
