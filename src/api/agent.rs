//! AgentService: remote agents. `Attach` opens an agent's session in the runtime and forwards
//! its feed as the response stream (first `attached`, then assignments and revocations);
//! dropping the stream, for whatever reason, ends the session, which detaches the agent so its
//! tickets move on. `Reply` applies an answer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio_stream::Stream;
use tokio_util::sync::WaitForCancellationFutureOwned;
use tonic::{Request, Response, Status};

use super::auth::client;
use super::{convert, requests, status, Api};
use crate::proto::v1 as pb;
use crate::proto::v1::agent_service_server::AgentService;
use crate::runtime::{AgentFeed, AgentSession};

/// The response stream of one Attach: `attached` first, then the agent's feed. Ends the
/// session (and detaches the agent) when dropped: the client went away, the connection died,
/// the server is stopping.
pub struct AttachStream {
    first: Option<pb::AttachResponse>,
    session: AgentSession,
    closing: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The revocation of the key the agent attached with (the runtime detaches it then).
    revoked: Pin<Box<WaitForCancellationFutureOwned>>,
    done: bool,
    _slot: super::Slot,
}

impl Stream for AttachStream {
    type Item = Result<pb::AttachResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        if self.revoked.as_mut().poll(cx).is_ready() {
            self.done = true;
            return Poll::Ready(Some(Err(status::unauthenticated(
                "the API key this agent attached with was revoked; the agent is offline",
            ))));
        }
        if self.closing.as_mut().poll(cx).is_ready() {
            self.done = true;
            return Poll::Ready(Some(Err(status::unavailable(
                "the server is shutting down; attach again to carry on",
            ))));
        }
        match self.session.feed.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(Some(Err(status::unavailable(
                    "the desk stopped; attach again to carry on",
                ))))
            }
            Poll::Ready(Some(AgentFeed::Ended(reason))) => {
                self.done = true;
                Poll::Ready(Some(Err(status::aborted(reason))))
            }

            Poll::Ready(Some(AgentFeed::Message(message))) => {
                Poll::Ready(Some(Ok(convert::attach_message(message))))
            }
        }
    }
}

#[tonic::async_trait]
impl AgentService for Api {
    type AttachStream = AttachStream;

    #[tracing::instrument(skip_all, name = "Attach")]
    async fn attach(
        &self,
        request: Request<pb::AttachRequest>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        let caller = client(&request)?;
        let spec = requests::attach_spec(request.into_inner())?;
        let slot = self.stream_slot()?;
        let key_id = caller.key_id.clone();
        let session = self.desk.attach(spec, caller.actor(), key_id).await;
        let session = session.map_err(status::desk)?;
        tracing::info!(agent = %session.agent.name, by = %caller.client_id, "remote agent attached");
        Ok(Response::new(AttachStream {
            first: Some(convert::attached(
                &session.agent,
                session.assignment_timeout_ms,
            )),
            session,
            closing: Box::pin(self.desk.closing().clone().cancelled_owned()),
            revoked: Box::pin(self.revocation(&caller).cancelled_owned()),
            done: false,
            _slot: slot,
        }))
    }

    #[tracing::instrument(skip_all, name = "Reply")]
    async fn reply(
        &self,
        request: Request<pb::ReplyRequest>,
    ) -> Result<Response<pb::ReplyResponse>, Status> {
        let actor = client(&request)?.actor();
        let (assignment_id, reply) = requests::agent_reply(request.into_inner())?;
        let ticket = self.desk.reply(assignment_id, reply, actor).await;
        Ok(Response::new(pb::ReplyResponse {
            ticket: Some(convert::ticket(&ticket.map_err(status::desk)?)),
        }))
    }
}
