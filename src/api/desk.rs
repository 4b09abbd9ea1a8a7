//! DeskService: the customers' side. Validate, convert, call the runtime or the store, map
//! errors; nothing else.

use std::collections::BTreeMap;

use rand::Rng;
use tokio::sync::oneshot;
use tonic::{Request, Response, Status};

use super::auth::client;
use super::convert;
use super::status;
use super::validate::{encode_token, TokenKind, Violations};
use super::watch::{watch, Source, WatchSpec, WatchStream};
use super::{blocking, Api};
use crate::auth::Client;
use crate::clock::now_ms;
use crate::domain::desk::NewTicket;
use crate::domain::event::EventBody;
use crate::domain::knowledge::PreparedAnswer;
use crate::domain::ticket::Ticket;
use crate::proto::v1 as pb;
use crate::proto::v1::desk_service_server::DeskService;
use crate::store::TicketFilter;

/// A new ticket id: `tkt_`, 11 hex digits of the creation time (so ids sort by age), 9 random.
fn new_ticket_id(now_ms: i64) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::thread_rng();
    let random: String = (0..9)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("tkt_{:011x}{random}", now_ms.max(0))
}

/// How the runtime admitted an inquiry.
enum Admission {
    /// Not settled yet: the waiter registered with the runtime will fire.
    Waiting {
        ticket_id: String,
        replayed: bool,
    },
    Settled(Box<Ticket>),
    /// An earlier ticket for the same idempotency key that is already closed: read the store.
    Closed(String),
}

impl Api {
    fn validate_inquiry(&self, r: &pb::HandleInquiryRequest) -> Result<(), Status> {
        let limits = &self.limits;
        let mut v = Violations::default();
        v.label(
            "customer_id",
            &r.customer_id,
            true,
            limits.customer_id_bytes,
        );
        v.text("inquiry", &r.inquiry, true, limits.inquiry_bytes);
        if r.context.len() > limits.context_entries {
            v.add(
                "context",
                format!(
                    "has {} entries; at most {} allowed",
                    r.context.len(),
                    limits.context_entries
                ),
            );
        }
        for (key, value) in &r.context {
            if key.is_empty()
                || key.len() > limits.context_key_bytes
                || key.chars().any(char::is_control)
            {
                v.add(
                    "context",
                    format!(
                        "key {:?} must be 1..{} bytes without control characters",
                        truncate(key),
                        limits.context_key_bytes
                    ),
                );
            }
            if value.len() > limits.context_value_bytes || value.chars().any(char::is_control) {
                v.add(
                    "context",
                    format!(
                        "value of {:?} must be at most {} bytes without control characters",
                        truncate(key),
                        limits.context_value_bytes
                    ),
                );
            }
        }
        v.check(
            (0..=10).contains(&r.priority),
            "priority",
            "must be within 1..10 (0 means 5)",
        );
        if !r.topic.is_empty() {
            v.identifier("topic", r.topic.trim(), limits.topic_bytes);
        }
        v.label(
            "idempotency_key",
            &r.idempotency_key,
            false,
            limits.idempotency_key_bytes,
        );
        v.finish()
    }

    fn answer(&self, ticket: Ticket, replayed: bool) -> pb::HandleInquiryResponse {
        let end = ticket.resolved_ms.unwrap_or_else(now_ms);
        pb::HandleInquiryResponse {
            response: ticket.resolution.clone(),
            agent: ticket.agent_name.clone(),
            escalated: ticket.escalated(),
            resolution_time: Some(convert::duration_ms((end - ticket.created_ms).max(0))),
            escalation_id: if ticket.status == crate::domain::ticket::TicketStatus::AwaitingReview {
                ticket.escalation_id.clone()
            } else {
                String::new()
            },
            tier: ticket.agent_tier.clone(),
            replayed,
            ticket: Some(convert::ticket(&ticket)),
        }
    }

    /// Classifies and scores the inquiry on the blocking pool, in parallel with other calls,
    /// so the desk applies the built-in agents' answers in the batch that creates the ticket:
    /// one commit per inquiry instead of one per tier.
    async fn prepare_answer(
        &self,
        inquiry: String,
        topic: Option<String>,
    ) -> Option<PreparedAnswer> {
        let (classifier, kb) = (self.classifier.clone(), self.kb.clone());
        tokio::task::spawn_blocking(move || {
            let topic = topic.unwrap_or_else(|| classifier.classify(&inquiry));
            let answer = kb.best_answer(&inquiry, &topic);
            PreparedAnswer { topic, answer }
        })
        .await
        .ok()
    }

    /// A ticket the caller may read; another client's ticket is NOT_FOUND, as if it did not
    /// exist, so ids cannot be probed.
    async fn visible_ticket(&self, caller: &Client, ticket_id: String) -> Result<Ticket, Status> {
        let ticket = self.stored_ticket(ticket_id.clone()).await?;
        match scope(caller) {
            Some(client_id) if ticket.client_id != client_id => {
                Err(status::not_found(format!("ticket {ticket_id} not found")))
            }
            _ => Ok(ticket),
        }
    }

    async fn stored_ticket(&self, ticket_id: String) -> Result<Ticket, Status> {
        let id = ticket_id.clone();
        blocking(&self.desk, move |s| s.get_ticket(&id))
            .await?
            .ok_or_else(|| status::not_found(format!("ticket {ticket_id} not found")))
    }
}

/// Which client's tickets a caller may read: their own client's, or everyone's with `admin`.
/// One customer-facing application cannot read the customers of another.
fn scope(caller: &Client) -> Option<String> {
    (!caller.is_admin()).then(|| caller.client_id.clone())
}

fn truncate(s: &str) -> String {
    s.chars().take(32).collect()
}

#[tonic::async_trait]
impl DeskService for Api {
    #[tracing::instrument(skip_all, name = "HandleInquiry")]
    async fn handle_inquiry(
        &self,
        request: Request<pb::HandleInquiryRequest>,
    ) -> Result<Response<pb::HandleInquiryResponse>, Status> {
        let caller = client(&request)?;
        let r = request.into_inner();
        self.validate_inquiry(&r)?;
        let key = r.idempotency_key.clone();
        // A retry of a committed ticket is found in the store; a retry racing the first call
        // is found by the runtime, which remembers recent keys.
        let mut stored = None;
        if !key.is_empty() {
            let (c, k) = (caller.client_id.clone(), key.clone());
            if let Some(existing) = blocking(&self.desk, move |s| s.find_idempotent(&c, &k)).await?
            {
                let ticket = self.stored_ticket(existing.clone()).await?;
                if ticket.status.is_settled() {
                    return Ok(Response::new(self.answer(ticket, true)));
                }
                stored = Some(existing);
            }
        }
        let inquiry = r.inquiry.trim().to_string();
        let topic = Some(r.topic.trim().to_lowercase()).filter(|t| !t.is_empty());
        let prepared = self.prepare_answer(inquiry.clone(), topic.clone()).await;
        let now = now_ms();
        let new = NewTicket {
            id: new_ticket_id(now),
            customer_id: r.customer_id.clone(),
            inquiry,
            context: r.context.into_iter().collect::<BTreeMap<_, _>>(),
            priority: if r.priority == 0 { 5 } else { r.priority as u8 },
            topic,
            client_id: caller.client_id.clone(),
            idempotency_key: key.clone(),
            prepared,
        };
        let (waiter, settled) = oneshot::channel();
        let client_id = caller.client_id.clone();
        let admission = self
            .desk
            .run(move |core, now| {
                if !key.is_empty() {
                    if let Some(existing) =
                        core.idempotent_ticket(&client_id, &key).cloned().or(stored)
                    {
                        return Ok(match core.desk.ticket(&existing) {
                            Some(t) if t.status.is_settled() => {
                                Admission::Settled(Box::new(t.clone()))
                            }
                            Some(_) => {
                                core.wait_for(&existing, waiter);
                                Admission::Waiting {
                                    ticket_id: existing,
                                    replayed: true,
                                }
                            }
                            None => Admission::Closed(existing),
                        });
                    }
                }
                let ticket = core.desk.open_ticket(new, now)?;
                if !key.is_empty() {
                    core.remember_idempotency(&client_id, &key, &ticket.id);
                }
                core.wait_for(&ticket.id, waiter);
                Ok(Admission::Waiting {
                    ticket_id: ticket.id,
                    replayed: false,
                })
            })
            .await
            .map_err(status::desk)?;
        let (ticket, replayed) = match admission {
            Admission::Settled(t) => (*t, true),
            Admission::Closed(id) => (self.stored_ticket(id).await?, true),
            Admission::Waiting {
                ticket_id,
                replayed,
            } => {
                // On shutdown an answer that is moments away still goes out; past half the
                // grace period the caller learns where to pick the ticket up instead.
                let grace_over = async {
                    self.desk.closing.cancelled().await;
                    tokio::time::sleep(self.shutdown_grace / 2).await;
                };
                let kept = |why: &str| {
                    status::unavailable(&format!(
                        "{why}; ticket {ticket_id} is kept: fetch it with GetTicket or follow it with WatchTicket"
                    ))
                };
                let ticket = tokio::select! {
                    t = settled => t.map_err(|_| kept("the desk stopped before answering"))?,
                    _ = grace_over => return Err(kept("the server is shutting down")),
                };
                (ticket, replayed)
            }
        };
        tracing::debug!(ticket = %ticket.id, status = ticket.status.as_str(), "inquiry answered");
        Ok(Response::new(self.answer(ticket, replayed)))
    }

    async fn get_ticket(
        &self,
        request: Request<pb::GetTicketRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let caller = client(&request)?;
        let r = request.into_inner();
        let mut v = Violations::default();
        v.resource_id("ticket_id", &r.ticket_id, "tkt_");
        v.finish()?;
        let ticket = self.visible_ticket(&caller, r.ticket_id).await?;
        Ok(Response::new(convert::ticket(&ticket)))
    }

    async fn list_tickets(
        &self,
        request: Request<pb::ListTicketsRequest>,
    ) -> Result<Response<pb::ListTicketsResponse>, Status> {
        let caller = client(&request)?;
        let r = request.into_inner();
        let mut v = Violations::default();
        v.label(
            "customer_id",
            &r.customer_id,
            false,
            self.limits.customer_id_bytes,
        );
        let status_filter = match pb::TicketStatus::try_from(r.status) {
            Ok(s) => convert::ticket_status_from(s),
            Err(_) => {
                v.add("status", format!("unknown TicketStatus value {}", r.status));
                None
            }
        };
        let limit = v.page_size("page_size", r.page_size, 50, 500);
        let after = v.page_token("page_token", &r.page_token, TokenKind::Ticket);
        v.finish()?;
        let filter = TicketFilter {
            customer_id: Some(r.customer_id).filter(|c| !c.is_empty()),
            status: status_filter,
            client_id: scope(&caller),
        };
        let page = blocking(&self.desk, move |s| {
            s.list_tickets(&filter, limit, after.as_ref())
        })
        .await?;
        Ok(Response::new(pb::ListTicketsResponse {
            tickets: page.items.iter().map(convert::ticket).collect(),
            next_page_token: page.next.as_ref().map(encode_token).unwrap_or_default(),
            sequence: page.seq,
        }))
    }

    type WatchTicketStream = WatchStream<pb::TicketEvent>;

    async fn watch_ticket(
        &self,
        request: Request<pb::WatchTicketRequest>,
    ) -> Result<Response<Self::WatchTicketStream>, Status> {
        let caller = client(&request)?;
        let r = request.into_inner();
        let mut v = Violations::default();
        v.sequence("after_sequence", r.after_sequence);
        v.resource_id("ticket_id", &r.ticket_id, "tkt_");
        v.finish()?;
        let ticket = self.visible_ticket(&caller, r.ticket_id.clone()).await?;
        let id = ticket.id.clone();
        let watched = ticket.id.clone();
        let spec = WatchSpec {
            after: r.after_sequence,
            source: Source::Ticket {
                id: id.clone(),
                created_ms: ticket.created_ms,
            },
            select: Box::new(move |e| match &e.body {
                EventBody::Ticket { ticket, .. } if ticket.id == id => convert::ticket_event(e),
                _ => None,
            }),
            ends: Box::new(
                |e| matches!(&e.body, EventBody::Ticket { ticket, .. } if ticket.status.is_final()),
            ),
            done_after_replay: Some(Box::new(move |store| {
                Ok(store
                    .get_ticket(&watched)?
                    .is_some_and(|t| t.status.is_final()))
            })),
            stall: self.stalled_stream,
        };
        let slot = self.stream_slot()?;
        Ok(Response::new(watch(self.desk.clone(), spec, slot)))
    }

    async fn get_customer_history(
        &self,
        request: Request<pb::GetCustomerHistoryRequest>,
    ) -> Result<Response<pb::CustomerHistory>, Status> {
        let caller = client(&request)?;
        let r = request.into_inner();
        let mut v = Violations::default();
        v.label(
            "customer_id",
            &r.customer_id,
            true,
            self.limits.customer_id_bytes,
        );
        let limit = v.page_size("limit", r.limit, 20, 500);
        v.finish()?;
        let customer = r.customer_id.clone();
        let client_id = scope(&caller);
        let (page, total) = blocking(&self.desk, move |s| {
            let filter = TicketFilter {
                customer_id: Some(customer.clone()),
                status: None,
                client_id: client_id.clone(),
            };
            Ok((
                s.list_tickets(&filter, limit, None)?,
                s.count_customer_tickets(&customer, client_id.as_deref())?,
            ))
        })
        .await?;
        Ok(Response::new(pb::CustomerHistory {
            customer_id: r.customer_id,
            entries: page
                .items
                .iter()
                .map(|t| pb::CustomerHistoryEntry {
                    ticket_id: t.id.clone(),
                    inquiry: t.inquiry.clone(),
                    response: t.resolution.clone(),
                    agent: t.agent_name.clone(),
                    status: convert::ticket_status(t.status) as i32,
                    topic: t.topic.clone(),
                    create_time: Some(convert::timestamp(t.created_ms)),
                    resolve_time: t.resolved_ms.map(convert::timestamp),
                })
                .collect(),
            total_tickets: total,
        }))
    }
}
