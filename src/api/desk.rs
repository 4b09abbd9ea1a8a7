//! DeskService: the customers' side.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::auth::client;
use super::connections::Connection;
use super::validate::encode_token;
use super::watch::{self, Source, WatchSpec, WatchStream};
use super::{convert, requests, status, Api};
use crate::domain::event::{Event, EventBody};
use crate::proto::encoded;
use crate::proto::v1 as pb;
use crate::proto::v1::desk_service_server::DeskService;
use crate::store::TicketFilter;

#[tonic::async_trait]
impl DeskService for Api {
    #[tracing::instrument(skip_all, name = "HandleInquiry")]
    async fn handle_inquiry(
        &self,
        request: Request<pb::HandleInquiryRequest>,
    ) -> Result<Response<pb::HandleInquiryResponse>, Status> {
        let caller = client(&request)?;
        let inquiry = requests::inquiry(request.into_inner(), &self.limits)?;
        let answer = self
            .desk
            .handle_inquiry(inquiry, &caller.client_id)
            .await
            .map_err(status::desk)?;
        let t = &answer.ticket;
        tracing::debug!(ticket = %t.id, status = t.status.as_str(), "inquiry answered");
        Ok(Response::new(convert::inquiry_answer(&answer)))
    }

    #[tracing::instrument(skip_all, name = "GetTicket")]
    async fn get_ticket(
        &self,
        request: Request<pb::GetTicketRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let actor = client(&request)?.actor();
        let r = request.into_inner();
        requests::resource_id("ticket_id", &r.ticket_id, "tkt_")?;
        let ticket = self.desk.ticket_for(&actor, &r.ticket_id).await;
        Ok(Response::new(convert::ticket(
            &ticket.map_err(status::desk)?,
        )))
    }

    #[tracing::instrument(skip_all, name = "ListTickets")]
    async fn list_tickets(
        &self,
        request: Request<pb::ListTicketsRequest>,
    ) -> Result<Response<pb::ListTicketsResponse>, Status> {
        let actor = client(&request)?.actor();
        let q = requests::ticket_list(request.into_inner(), &self.limits, actor.scope())?;
        let page = self
            .desk
            .read(move |s| s.list_tickets(&q.filter, q.limit, q.after.as_ref()))
            .await
            .map_err(status::desk)?;
        Ok(Response::new(pb::ListTicketsResponse {
            tickets: page.items.iter().map(convert::ticket).collect(),
            next_page_token: page.next.as_ref().map(encode_token).unwrap_or_default(),
            sequence: page.seq,
        }))
    }

    type WatchTicketStream = WatchStream<encoded::TicketEvent>;

    #[tracing::instrument(skip_all, name = "WatchTicket")]
    async fn watch_ticket(
        &self,
        request: Request<pb::WatchTicketRequest>,
    ) -> Result<Response<Self::WatchTicketStream>, Status> {
        let caller = client(&request)?;
        let connection = request.extensions().get::<Connection>().cloned();
        let actor = caller.actor();
        let r = request.into_inner();
        requests::watch_ticket(&r)?;
        let ticket = self.desk.ticket_for(&actor, &r.ticket_id).await;
        let ticket = ticket.map_err(status::desk)?;
        let (id, watched) = (ticket.id.clone(), ticket.id.clone());
        let spec = WatchSpec {
            after: r.after_sequence,
            source: Source::Ticket {
                id: ticket.id,
                created_ms: ticket.created_ms,
            },
            keep: Arc::new(
                move |e: &Event| matches!(&e.body, EventBody::Ticket { ticket, .. } if ticket.id == id),
            ),
            form: watch::TICKET_EVENT,
            ends: Arc::new(
                |e: &Event| matches!(&e.body, EventBody::Ticket { ticket, .. } if ticket.status.is_final()),
            ),
            done_after_replay: Some(Box::new(move |store| {
                let ticket = store.get_ticket(&watched)?;
                Ok(ticket.is_some_and(|t| t.status.is_final()))
            })),
            stall: self.stalled_stream,
        };
        self.watch(&caller, connection, spec)
    }

    #[tracing::instrument(skip_all, name = "GetCustomerHistory")]
    async fn get_customer_history(
        &self,
        request: Request<pb::GetCustomerHistoryRequest>,
    ) -> Result<Response<pb::CustomerHistory>, Status> {
        let actor = client(&request)?.actor();
        let r = request.into_inner();
        let limit = requests::history(&r, &self.limits)?;
        let filter = TicketFilter {
            customer_id: Some(r.customer_id.clone()),
            status: None,
            client_id: actor.scope().map(str::to_string),
        };
        let (page, total) = self
            .desk
            .read(move |s| {
                let customer = filter.customer_id.as_deref().unwrap_or_default();
                let total = s.count_customer_tickets(customer, filter.client_id.as_deref())?;
                Ok((s.list_tickets(&filter, limit, None)?, total))
            })
            .await
            .map_err(status::desk)?;
        Ok(Response::new(pb::CustomerHistory {
            customer_id: r.customer_id,
            entries: page.items.iter().map(convert::history_entry).collect(),
            total_tickets: total,
        }))
    }
}
