//! AdminService: status, agents, reviewers, API keys, configuration and the whole event log.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::auth::client;
use super::connections::Connection;
use super::watch::{self, WatchSpec, WatchStream};
use super::{convert, requests, status, Api};
use crate::clock::now_ms;
use crate::domain::event::Event;
use crate::keys::generate_key;
use crate::proto::encoded;
use crate::proto::v1 as pb;
use crate::proto::v1::admin_service_server::AdminService;

#[tonic::async_trait]
impl AdminService for Api {
    #[tracing::instrument(skip_all, name = "GetDeskStatus")]
    async fn get_desk_status(
        &self,
        _request: Request<pb::GetDeskStatusRequest>,
    ) -> Result<Response<pb::DeskStatus>, Status> {
        let status = self.desk.status().await.map_err(status::desk)?;
        Ok(Response::new(convert::desk_status(
            &self.desk_name,
            &status,
            self.leader.as_deref(),
        )))
    }

    #[tracing::instrument(skip_all, name = "CreateAgent")]
    async fn create_agent(
        &self,
        request: Request<pb::CreateAgentRequest>,
    ) -> Result<Response<pb::Agent>, Status> {
        let agent = requests::new_agent(request.into_inner())?;
        let agent = self.desk.create_agent(agent).await.map_err(status::desk)?;
        Ok(Response::new(convert::agent(&agent)))
    }

    #[tracing::instrument(skip_all, name = "UpdateAgent")]
    async fn update_agent(
        &self,
        request: Request<pb::UpdateAgentRequest>,
    ) -> Result<Response<pb::Agent>, Status> {
        let (id, change) = requests::agent_change(request.into_inner())?;
        let agent = self.desk.update_agent(id, change).await;
        Ok(Response::new(convert::agent(&agent.map_err(status::desk)?)))
    }

    #[tracing::instrument(skip_all, name = "DeleteAgent")]
    async fn delete_agent(
        &self,
        request: Request<pb::DeleteAgentRequest>,
    ) -> Result<Response<pb::Agent>, Status> {
        let id = request.into_inner().agent_id;
        requests::roster_id("agent_id", &id)?;
        let agent = self.desk.delete_agent(id).await.map_err(status::desk)?;
        Ok(Response::new(convert::agent(&agent)))
    }

    #[tracing::instrument(skip_all, name = "ListAgents")]
    async fn list_agents(
        &self,
        request: Request<pb::ListAgentsRequest>,
    ) -> Result<Response<pb::ListAgentsResponse>, Status> {
        let r = request.into_inner();
        let window = requests::agent_list(&r)?;
        let (agents, seq) = self.desk.agents(r.tier).await.map_err(status::desk)?;
        let (agents, next) = window.page(agents);
        Ok(Response::new(pb::ListAgentsResponse {
            agents: agents.iter().map(convert::agent).collect(),
            next_page_token: next,
            sequence: seq,
        }))
    }

    #[tracing::instrument(skip_all, name = "CreateReviewer")]
    async fn create_reviewer(
        &self,
        request: Request<pb::CreateReviewerRequest>,
    ) -> Result<Response<pb::Reviewer>, Status> {
        let reviewer = requests::new_reviewer(request.into_inner())?;
        let reviewer = self.desk.create_reviewer(reviewer).await;
        Ok(Response::new(convert::reviewer(
            &reviewer.map_err(status::desk)?,
        )))
    }

    #[tracing::instrument(skip_all, name = "UpdateReviewer")]
    async fn update_reviewer(
        &self,
        request: Request<pb::UpdateReviewerRequest>,
    ) -> Result<Response<pb::Reviewer>, Status> {
        let (id, change) = requests::reviewer_change(request.into_inner())?;
        let reviewer = self.desk.update_reviewer(id, change).await;
        Ok(Response::new(convert::reviewer(
            &reviewer.map_err(status::desk)?,
        )))
    }

    #[tracing::instrument(skip_all, name = "DeleteReviewer")]
    async fn delete_reviewer(
        &self,
        request: Request<pb::DeleteReviewerRequest>,
    ) -> Result<Response<pb::Reviewer>, Status> {
        let id = request.into_inner().reviewer_id;
        requests::roster_id("reviewer_id", &id)?;
        let reviewer = self.desk.delete_reviewer(id).await;
        Ok(Response::new(convert::reviewer(
            &reviewer.map_err(status::desk)?,
        )))
    }

    #[tracing::instrument(skip_all, name = "ListReviewers")]
    async fn list_reviewers(
        &self,
        request: Request<pb::ListReviewersRequest>,
    ) -> Result<Response<pb::ListReviewersResponse>, Status> {
        let r = request.into_inner();
        let window = requests::window(r.page_size, &r.page_token)?;
        let (reviewers, seq) = self.desk.reviewers().await.map_err(status::desk)?;
        let (reviewers, next) = window.page(reviewers);
        Ok(Response::new(pb::ListReviewersResponse {
            reviewers: reviewers.iter().map(convert::reviewer).collect(),
            next_page_token: next,
            sequence: seq,
        }))
    }

    #[tracing::instrument(skip_all, name = "CreateApiKey")]
    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let caller = client(&request)?;
        let k = requests::new_key(request.into_inner())?;
        let (secret, record) = generate_key(&k.client_id, &k.client_name, k.permissions, now_ms());
        self.desk
            .create_key(record.clone())
            .await
            .map_err(status::desk)?;
        tracing::info!(key_id = %record.key_id, client = %record.client_id, by = %caller.client_id, "api key created");
        Ok(Response::new(pb::CreateApiKeyResponse {
            api_key: secret,
            key: Some(convert::api_key(&record)),
        }))
    }

    #[tracing::instrument(skip_all, name = "ListApiKeys")]
    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let r = request.into_inner();
        let window = requests::window(r.page_size, &r.page_token)?;
        let mut records = self.desk.key_records();
        records.retain(|k| r.show_revoked || !k.revoked);
        let (keys, next) = window.page(records);
        Ok(Response::new(pb::ListApiKeysResponse {
            keys: keys.iter().map(convert::api_key).collect(),
            next_page_token: next,
        }))
    }

    #[tracing::instrument(skip_all, name = "RevokeApiKey")]
    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::ApiKey>, Status> {
        let caller = client(&request)?;
        let key_id = request.into_inner().key_id;
        requests::key_id(&key_id)?;
        let record = self.desk.revoke_key(key_id).await.map_err(status::desk)?;
        tracing::info!(key_id = %record.key_id, by = %caller.client_id, "api key revoked");
        Ok(Response::new(convert::api_key(&record)))
    }

    #[tracing::instrument(skip_all, name = "GetConfig")]
    async fn get_config(
        &self,
        _request: Request<pb::GetConfigRequest>,
    ) -> Result<Response<pb::DeskConfig>, Status> {
        let settings = self.desk.settings().await.map_err(status::desk)?;
        Ok(Response::new(convert::desk_config(&settings)))
    }

    #[tracing::instrument(skip_all, name = "UpdateConfig")]
    async fn update_config(
        &self,
        request: Request<pb::UpdateConfigRequest>,
    ) -> Result<Response<pb::DeskConfig>, Status> {
        let caller = client(&request)?;
        let change = requests::settings_change(request.into_inner())?;
        let who = caller.client_id.clone();
        let settings = self.desk.change_settings(change, who).await;
        let settings = settings.map_err(status::desk)?;
        tracing::info!(by = %caller.client_id, "configuration updated");
        Ok(Response::new(convert::desk_config(&settings)))
    }

    type WatchEventsStream = WatchStream<encoded::DeskEvent>;

    #[tracing::instrument(skip_all, name = "WatchEvents")]
    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let caller = client(&request)?;
        let connection = request.extensions().get::<Connection>().cloned();
        let w = requests::watch_events(request.into_inner())?;
        let kinds = w.select;
        let keep = Arc::new(move |e: &Event| kinds.is_empty() || kinds.contains(&e.kind()));
        let spec = WatchSpec::whole_log(w.after, self.stalled_stream, keep, watch::DESK_EVENT);
        self.watch(&caller, connection, spec)
    }
}
