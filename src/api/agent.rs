//! AgentService: remote agents. `Attach` opens an agent's feed in the runtime and forwards it
//! as the response stream (first `attached`, then assignments and revocations); dropping the
//! stream, for whatever reason, detaches the agent so its tickets move on. `Reply` applies an
//! answer. Validation, conversion and error mapping only: the rules are in the domain.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::auth::client;
use super::validate::Violations;
use super::{admin, blocking, convert, status, Api};
use crate::domain::desk::{Actor, AgentReply, AttachSpec, RemoteMessage};
use crate::domain::error::DomainError;
use crate::domain::policy::ReviewPriority;
use crate::domain::ticket::ticket_of_assignment;
use crate::proto::v1 as pb;
use crate::proto::v1::agent_service_server::AgentService;
use crate::runtime::{AgentFeed, DeskError, DeskHandle};

/// Longest escalation or review reason, in bytes.
const REASON_BYTES: usize = 1024;

/// Detaches the agent of stream `stream_id` when dropped: taken before the attach, so an
/// Attach call cancelled at any point leaves no agent online without a process.
struct DetachOnDrop {
    desk: DeskHandle,
    stream_id: u64,
}

impl Drop for DetachOnDrop {
    fn drop(&mut self) {
        self.desk.detach(self.stream_id);
    }
}

/// The response stream of one Attach: `attached` first, then the agent's feed. Detaches the
/// agent when dropped (the client went away, the connection died, the server is stopping).
pub struct AttachStream {
    first: Option<pb::AttachResponse>,
    feed: mpsc::Receiver<AgentFeed>,
    closing: Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
    done: bool,
    _detach: DetachOnDrop,
    _slot: tokio::sync::OwnedSemaphorePermit,
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
        if self.closing.as_mut().poll(cx).is_ready() {
            self.done = true;
            return Poll::Ready(Some(Err(status::unavailable(
                "the server is shutting down; attach again to carry on",
            ))));
        }
        match self.feed.poll_recv(cx) {
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
                Poll::Ready(Some(Ok(attach_message(message))))
            }
        }
    }
}

fn attach_message(message: RemoteMessage) -> pb::AttachResponse {
    use pb::attach_response::Message;
    let message = match message {
        RemoteMessage::Assignment {
            agent_id,
            assignment_id,
            ticket,
            deadline_ms,
            draft,
            instructions,
        } => Message::Assignment(pb::Assignment {
            assignment_id,
            agent_id,
            ticket: Some(convert::ticket(&ticket)),
            deadline: Some(convert::timestamp(deadline_ms)),
            draft,
            instructions,
        }),
        RemoteMessage::Revoked {
            assignment_id,
            reason,
            ..
        } => Message::Revoked(pb::Revoked {
            assignment_id,
            reason,
        }),
    };
    pb::AttachResponse {
        message: Some(message),
    }
}

/// The reply's outcome in domain terms, validated into `v`.
fn agent_reply(v: &mut Violations, outcome: Option<pb::reply_request::Outcome>) -> AgentReply {
    use pb::reply_request::Outcome;
    const TEXT: usize = 16 * 1024;
    match outcome {
        Some(Outcome::Resolve(r)) => {
            v.text("resolve.response", &r.response, true, TEXT);
            // A remote agent reports no confidence: 0 means "not applicable" in the path.
            AgentReply::Resolve {
                response: r.response.trim().to_string(),
                confidence: 0.0,
            }
        }
        Some(Outcome::Escalate(e)) => {
            v.text("escalate.reason", &e.reason, true, REASON_BYTES);
            v.text("escalate.draft", &e.draft, false, TEXT);
            AgentReply::Escalate {
                reason: e.reason.trim().to_string(),
                draft: e.draft.trim().to_string(),
                confidence: 0.0,
            }
        }
        Some(Outcome::RequestReview(r)) => {
            v.text("request_review.reason", &r.reason, true, REASON_BYTES);
            v.text("request_review.draft", &r.draft, false, TEXT);
            let priority = match pb::EscalationPriority::try_from(r.priority) {
                Ok(pb::EscalationPriority::Unspecified) => None,
                Ok(pb::EscalationPriority::Low) => Some(ReviewPriority::Low),
                Ok(pb::EscalationPriority::Medium) => Some(ReviewPriority::Medium),
                Ok(pb::EscalationPriority::High) => Some(ReviewPriority::High),
                Ok(pb::EscalationPriority::Urgent) => Some(ReviewPriority::Urgent),
                Err(_) => {
                    v.add(
                        "request_review.priority",
                        format!("unknown EscalationPriority value {}", r.priority),
                    );
                    None
                }
            };
            AgentReply::RequestReview {
                reason: r.reason.trim().to_string(),
                draft: r.draft.trim().to_string(),
                priority,
                confidence: 0.0,
            }
        }
        None => {
            v.add(
                "outcome",
                "is required: set one of resolve, escalate or request_review",
            );
            AgentReply::Resolve {
                response: String::new(),
                confidence: 0.0,
            }
        }
    }
}

impl Api {
    /// An assignment that is not open was answered or handed on if its ticket exists.
    async fn reply_error(&self, assignment_id: &str, err: DeskError) -> Status {
        if let DeskError::Domain(DomainError::AssignmentNotOpen(_)) = &err {
            let Some(ticket_id) = ticket_of_assignment(assignment_id) else {
                return status::not_found(format!("assignment {assignment_id} not found"));
            };
            let open = self.desk.clone();
            return match blocking(&open, move |s| s.get_ticket(&ticket_id)).await {
                Ok(Some(_)) => status::failed_precondition(format!(
                    "assignment {assignment_id} was already answered or handed on \
                     (deadline passed, or the agent's stream closed)"
                )),
                Ok(None) => status::not_found(format!("assignment {assignment_id} not found")),
                Err(read_failed) => read_failed,
            };
        }
        status::desk(err)
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
        let r = request.into_inner();
        let mut v = Violations::default();
        let spec = if r.agent_id.is_empty() {
            let agent = admin::new_agent(&mut v, &r.name, &r.tier, &r.specialties, r.capacity);
            AttachSpec::New(agent)
        } else {
            v.resource_id("agent_id", &r.agent_id, "agt_");
            if !r.name.is_empty() || !r.tier.is_empty() || !r.specialties.is_empty() {
                v.add(
                    "agent_id",
                    "give agent_id to bind an existing agent, or name and tier to register \
                     one, not both",
                );
            }
            AttachSpec::Existing(r.agent_id.clone())
        };
        v.finish()?;
        let actor = Actor {
            client_id: caller.client_id.clone(),
            admin: caller.is_admin(),
        };
        let slot = self.stream_slot()?;
        let stream_id = self.desk.new_stream_id();
        let detach = DetachOnDrop {
            desk: self.desk.clone(),
            stream_id,
        };
        let (agent, feed, timeout_ms) = self
            .desk
            .run(move |core, now| {
                let (agent, feed) = core.attach(spec, &actor, stream_id, now)?;
                let timeout = core.desk.settings().assignment_timeout_ms;
                Ok((agent, feed, timeout))
            })
            .await
            .map_err(status::desk)?;
        tracing::info!(agent = %agent.name, by = %caller.client_id, "remote agent attached");
        let attached = pb::AttachResponse {
            message: Some(pb::attach_response::Message::Attached(pb::Attached {
                agent_id: agent.id.clone(),
                agent: Some(convert::agent(&agent)),
                assignment_timeout: Some(convert::duration_ms(timeout_ms)),
            })),
        };
        Ok(Response::new(AttachStream {
            first: Some(attached),
            feed,
            closing: Box::pin(self.desk.closing.clone().cancelled_owned()),
            done: false,
            _detach: detach,
            _slot: slot,
        }))
    }

    #[tracing::instrument(skip_all, name = "Reply")]
    async fn reply(
        &self,
        request: Request<pb::ReplyRequest>,
    ) -> Result<Response<pb::ReplyResponse>, Status> {
        let caller = client(&request)?;
        let r = request.into_inner();
        let mut v = Violations::default();
        v.resource_id("assignment_id", &r.assignment_id, "asg_");
        let reply = agent_reply(&mut v, r.outcome);
        v.finish()?;
        let actor = Actor {
            client_id: caller.client_id.clone(),
            admin: caller.is_admin(),
        };
        let assignment_id = r.assignment_id.clone();
        let result = self
            .desk
            .run(move |core, now| core.desk.remote_replied(&assignment_id, reply, &actor, now))
            .await;
        match result {
            Ok(ticket) => Ok(Response::new(pb::ReplyResponse {
                ticket: Some(convert::ticket(&ticket)),
            })),
            Err(err) => Err(self.reply_error(&r.assignment_id, err).await),
        }
    }
}
