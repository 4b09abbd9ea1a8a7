//! The floor the write path is measured against: the least any durable desk does for one
//! `HandleInquiry`, and nothing of the desk. It serves `servicedesk.v1.DeskService/HandleInquiry`
//! over the same tonic stack as the server and, for each call, writes one row (the answered
//! ticket, encoded as protobuf) to SQLite from one writer thread that commits whatever has queued
//! in one transaction (group commit, WAL, `synchronous = FULL` by default: each commit is
//! fsynced), then replies with the ticket after its commit. No classification, routing,
//! events, indexes beyond the ticket id, or watchers.
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
//! The other `DeskService` calls answer UNIMPLEMENTED.

use std::path::PathBuf;
use std::pin::Pin;

use clap::Parser;
use prost::Message;
use rand::Rng;
use rusqlite::Connection;
use servicedesk::proto::v1::desk_service_server::{DeskService, DeskServiceServer};
use servicedesk::proto::v1::{
    CustomerHistory, GetCustomerHistoryRequest, GetTicketRequest, HandleInquiryRequest,
    HandleInquiryResponse, ListTicketsRequest, ListTicketsResponse, Ticket, TicketEvent,
    WatchTicketRequest,
};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

#[derive(Parser)]
#[command(about = "A bare tonic HandleInquiry that stores one row per call, group-committed")]
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
}

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
}

#[tonic::async_trait]
impl DeskService for Floor {
    async fn handle_inquiry(
        &self,
        request: Request<HandleInquiryRequest>,
    ) -> Result<Response<HandleInquiryResponse>, Status> {
        let asked = request.into_inner();
        let mut answer = self.template.clone();
        let ticket = answer.ticket.get_or_insert_with(Ticket::default);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
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
            Ok(Ok(())) => Ok(Response::new(answer)),
            Ok(Err(e)) => Err(Status::internal(e)),
            Err(_) => Err(Status::unavailable("the writer stopped")),
        }
    }

    async fn get_ticket(&self, _: Request<GetTicketRequest>) -> Result<Response<Ticket>, Status> {
        Err(Status::unimplemented("the floor serves HandleInquiry only"))
    }

    async fn list_tickets(
        &self,
        _: Request<ListTicketsRequest>,
    ) -> Result<Response<ListTicketsResponse>, Status> {
        Err(Status::unimplemented("the floor serves HandleInquiry only"))
    }

    type WatchTicketStream = Pin<Box<dyn Stream<Item = Result<TicketEvent, Status>> + Send>>;

    async fn watch_ticket(
        &self,
        _: Request<WatchTicketRequest>,
    ) -> Result<Response<Self::WatchTicketStream>, Status> {
        Err(Status::unimplemented("the floor serves HandleInquiry only"))
    }

    async fn get_customer_history(
        &self,
        _: Request<GetCustomerHistoryRequest>,
    ) -> Result<Response<CustomerHistory>, Status> {
        Err(Status::unimplemented("the floor serves HandleInquiry only"))
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
    let writer = std::thread::Builder::new()
        .name("floor-writer".into())
        .spawn(move || write_rows(&mut conn, queued))?;
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    println!("floor listening on {}", listener.local_addr()?);
    tonic::transport::Server::builder()
        .add_service(DeskServiceServer::new(Floor { template, rows }))
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
