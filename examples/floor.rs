//! The floors the desk is measured against: the least any durable desk does, and nothing of the
//! desk.
//!
//! For the write path it serves `servicedesk.v1.DeskService/HandleInquiry` over the same tonic
//! stack as the server and, for each call, writes one row (the answered ticket, encoded as
//! protobuf) to SQLite from one writer thread that commits whatever has queued in one
//! transaction (group commit, WAL, `synchronous = FULL` by default: each commit is fsynced),
//! then replies with the ticket after its commit. No classification, routing, indexes beyond
//! the ticket id, or replay.
//!
//! For live streams it is the floor of fan-out: after each commit it publishes the five events
//! the desk publishes for a first-tier inquiry (created, classified, assigned, agent replied,
//! resolved) on one `tokio::sync::broadcast` channel, and `WatchTicket` streams every event of
//! that channel, whatever ticket it names, from the moment it subscribes. Each watcher gets its
//! own copy of each event, encoded for it, as a server built on the generated message types
//! does. A watcher that falls more than `--live-event-buffer` events behind is ended with
//! DATA_LOSS: the floor neither catches up nor stores events, so that counts as loss.
//!
//! The `load` example starts it with `--floor` and measures it in the same rounds as the desk,
//! answering with a ticket the desk itself answered (`--answer-hex`), so both send and store the
//! same bytes:
//!
//! ```text
//! cargo build --release --examples --bins
//! cargo run --release --example load -- --spawn --floor --mix first-tier --rounds 3
//! ```
//!
//! The `fanout` example starts it beside the desk and measures the delivery of events to many
//! watchers of both while inquiries arrive at a fixed rate.
//!
//! The other `DeskService` calls answer UNIMPLEMENTED.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;
use prost::Message;
use rand::Rng;
use rusqlite::Connection;
use servicedesk::proto::encoded;
use servicedesk::proto::v1::desk_service_server::{DeskService, DeskServiceServer};
use servicedesk::proto::v1::{
    CustomerHistory, GetCustomerHistoryRequest, GetTicketRequest, HandleInquiryRequest,
    HandleInquiryResponse, ListTicketsRequest, ListTicketsResponse, Ticket, TicketEvent,
    TicketEventType, TicketStatus, WatchTicketRequest,
};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

#[derive(Parser)]
#[command(
    about = "A bare tonic HandleInquiry that stores one row per call, group-committed, and \
             broadcasts its events to every WatchTicket"
)]
struct Args {
    /// Address to listen on; port 0 picks a free one (logged as `listening on ADDR`).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Directory for the SQLite file.
    #[arg(long)]
    data_dir: PathBuf,
    /// A `HandleInquiryResponse` the desk answered, as hex (`load --floor` passes one): every
    /// call gets it back with a fresh ticket id and the caller's customer and inquiry.
    #[arg(long)]
    answer_hex: String,
    /// SQLite `synchronous`: FULL (each commit fsynced) or NORMAL.
    #[arg(long, default_value = "FULL")]
    synchronous: String,
    /// Events the broadcast channel keeps for watchers (the desk's `live_event_buffer` by
    /// default); a watcher further behind is ended with DATA_LOSS.
    #[arg(long, default_value_t = 8192)]
    live_event_buffer: usize,
}

/// Why the calls the floor has no part of are refused.
const UNSERVED: &str = "the floor serves HandleInquiry and WatchTicket only";

/// Calls queued for the writer at most: the handlers wait for room beyond it.
const QUEUE: usize = 4096;

/// One ticket to store, and who to tell once it is committed.
struct Row {
    ticket_id: String,
    body: Vec<u8>,
    committed: oneshot::Sender<Result<(), String>>,
}

struct Floor {
    template: HandleInquiryResponse,
    rows: mpsc::Sender<Row>,
    /// Every event, to every watcher subscribed when it is sent.
    events: broadcast::Sender<Arc<TicketEvent>>,
    /// The sequence of the last event sent.
    sequence: Mutex<u64>,
}

impl Floor {
    /// Publishes the events of one answered first-tier inquiry, `handled` when it came in.
    fn publish(&self, answer: &HandleInquiryResponse, handled: SystemTime) {
        let answered = answer.ticket.clone().unwrap_or_default();
        let time = Some(to_the_millisecond(handled));
        let events: Vec<TicketEvent> = first_tier_events(answered)
            .into_iter()
            .map(|(kind, detail, ticket)| TicketEvent {
                sequence: 0,
                ticket_id: ticket.ticket_id.clone(),
                time,
                r#type: kind as i32,
                detail,
                ticket: Some(ticket),
            })
            .collect();
        // Numbered and sent under one lock, so that the sequences are consecutive in the
        // order every watcher receives them, as the desk's are.
        let mut last = self.sequence.lock().unwrap_or_else(PoisonError::into_inner);
        for mut event in events {
            *last += 1;
            event.sequence = *last;
            // No watchers is fine: the floor keeps no events.
            let _ = self.events.send(Arc::new(event));
        }
    }
}

/// What the desk publishes for an inquiry its first tier resolves, in its order, each with the
/// ticket as it stands after it, worked back from the `answered` ticket: the desk's events
/// carry these, so the floor's are the same size (most of them much smaller than the answer).
fn first_tier_events(answered: Ticket) -> [(TicketEventType, String, Ticket); 5] {
    let (agent, tier) = answered
        .resolution_path
        .first()
        .map(|step| (step.agent_name.clone(), step.tier.clone()))
        .unwrap_or_default();
    let replied = Ticket {
        status: TicketStatus::Assigned as i32,
        resolution: String::new(),
        resolve_time: None,
        ..answered.clone()
    };
    let assigned = Ticket {
        resolution_path: Vec::new(),
        ..replied.clone()
    };
    let classified = Ticket {
        status: TicketStatus::Queued as i32,
        assigned_agent_id: String::new(),
        ..assigned.clone()
    };
    let created = Ticket {
        topic: String::new(),
        ..classified.clone()
    };
    let topic = &answered.topic;
    [
        (TicketEventType::Created, "ticket created".into(), created),
        (
            TicketEventType::Classified,
            format!("topic {topic} (classified)"),
            classified,
        ),
        (
            TicketEventType::Assigned,
            format!("assigned to {agent} ({tier})"),
            assigned,
        ),
        (
            TicketEventType::AgentReplied,
            format!("{agent}: resolved"),
            replied,
        ),
        (
            TicketEventType::Resolved,
            format!("resolved by {agent}"),
            answered,
        ),
    ]
}

/// `at`, cut to the millisecond. The desk stamps an event when it happens, before its commit,
/// to the millisecond; stamped the same way, both servers' delivery latencies include the
/// commit and round alike.
fn to_the_millisecond(at: SystemTime) -> prost_types::Timestamp {
    let ms = at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64;
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

#[tonic::async_trait]
impl DeskService for Floor {
    async fn handle_inquiry(
        &self,
        request: Request<HandleInquiryRequest>,
    ) -> Result<Response<HandleInquiryResponse>, Status> {
        let asked = request.into_inner();
        let handled = SystemTime::now();
        let mut answer = self.template.clone();
        let ticket = answer.ticket.get_or_insert_with(Ticket::default);
        let now_ms = handled
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        ticket.ticket_id = format!(
            "tkt_{now_ms:011x}{:09x}",
            rand::thread_rng().gen_range(0..1u64 << 36)
        );
        ticket.customer_id = asked.customer_id;
        ticket.inquiry = asked.inquiry;
        let (committed, done) = oneshot::channel();
        let row = Row {
            ticket_id: ticket.ticket_id.clone(),
            body: ticket.encode_to_vec(),
            committed,
        };
        self.rows
            .send(row)
            .await
            .map_err(|_| Status::unavailable("the writer stopped"))?;
        match done.await {
            Ok(Ok(())) => {
                self.publish(&answer, handled);
                Ok(Response::new(answer))
            }
            Ok(Err(e)) => Err(Status::internal(e)),
            Err(_) => Err(Status::unavailable("the writer stopped")),
        }
    }

    async fn get_ticket(&self, _: Request<GetTicketRequest>) -> Result<Response<Ticket>, Status> {
        Err(Status::unimplemented(UNSERVED))
    }

    async fn list_tickets(
        &self,
        _: Request<ListTicketsRequest>,
    ) -> Result<Response<ListTicketsResponse>, Status> {
        Err(Status::unimplemented(UNSERVED))
    }

    type WatchTicketStream =
        Pin<Box<dyn Stream<Item = Result<encoded::TicketEvent, Status>> + Send>>;

    /// Every event from now on, whatever ticket is named. Each watcher converts and encodes
    /// its own copy of each event, as a server built on the generated message types must
    /// (tonic's codec takes the message by value). tonic ends the stream at its first error,
    /// the DATA_LOSS of a watcher that fell behind.
    async fn watch_ticket(
        &self,
        _: Request<WatchTicketRequest>,
    ) -> Result<Response<Self::WatchTicketStream>, Status> {
        let events = BroadcastStream::new(self.events.subscribe()).map(|sent| match sent {
            Ok(event) => Ok(encoded::TicketEvent::new(&TicketEvent::clone(&event))),
            Err(BroadcastStreamRecvError::Lagged(missed)) => Err(Status::data_loss(format!(
                "this watch fell {missed} events behind the live events; the floor does not \
                 catch up"
            ))),
        });
        Ok(Response::new(Box::pin(events)))
    }

    async fn get_customer_history(
        &self,
        _: Request<GetCustomerHistoryRequest>,
    ) -> Result<Response<CustomerHistory>, Status> {
        Err(Status::unimplemented(UNSERVED))
    }
}

/// Commits every row queued since the last commit in one transaction, then answers each.
fn write_rows(conn: &mut Connection, mut rows: mpsc::Receiver<Row>) {
    let mut batch = Vec::new();
    while let Some(first) = rows.blocking_recv() {
        batch.push(first);
        while batch.len() < QUEUE {
            match rows.try_recv() {
                Ok(row) => batch.push(row),
                Err(_) => break,
            }
        }
        let result = (|| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            {
                let mut insert =
                    tx.prepare_cached("INSERT INTO tickets (ticket_id, body) VALUES (?1, ?2)")?;
                for row in &batch {
                    insert.execute((&row.ticket_id, &row.body))?;
                }
            }
            tx.commit()
        })()
        .map_err(|e| e.to_string());
        for row in batch.drain(..) {
            let _ = row.committed.send(result.clone());
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.live_event_buffer > 0,
        "--live-event-buffer must be at least 1"
    );
    let template = HandleInquiryResponse::decode(hex::decode(&args.answer_hex)?.as_slice())?;
    let mut conn = Connection::open(args.data_dir.join("floor.db"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", &args.synchronous)?;
    // The desk's writer keeps 8 MiB of pages cached; so does the floor.
    conn.pragma_update(None, "cache_size", -8192)?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS tickets (
             id INTEGER PRIMARY KEY,
             ticket_id TEXT NOT NULL UNIQUE,
             body BLOB NOT NULL
         )",
    )?;
    let (rows, queued) = mpsc::channel(QUEUE);
    let (events, _) = broadcast::channel(args.live_event_buffer);
    let writer = std::thread::Builder::new()
        .name("floor-writer".into())
        .spawn(move || write_rows(&mut conn, queued))?;
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    println!("floor listening on {}", listener.local_addr()?);
    tonic::transport::Server::builder()
        .add_service(DeskServiceServer::new(Floor {
            template,
            rows,
            events,
            sequence: Mutex::new(0),
        }))
        .serve_with_incoming_shutdown(
            // As the desk does: replies go out at once, not after a delayed acknowledgement.
            tokio_stream::wrappers::TcpListenerStream::new(listener).map(|stream| {
                stream.inspect(|stream| {
                    let _ = stream.set_nodelay(true);
                })
            }),
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
        )
        .await?;
    let _ = writer.join();
    Ok(())
}
