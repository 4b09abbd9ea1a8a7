//! A remote agent in a few lines of Rust: attaches to the desk over `AgentService`, takes the
//! tickets routing sends it and answers each by rule: tickets about money or the law go to a
//! human, questions the agent's specialties cover are answered, the rest escalate to the next
//! tier. Replace `decide` with a call to your model, your CRM, or a person's screen.
//!
//! ```text
//! cargo run --example remote_agent -- --target http://127.0.0.1:50051 --api-key KEY \
//!     --name Remote_L1 --tier L1 --specialties billing,account
//! ```
//!
//! The key needs the `agent` permission (`admin-key-456` holds it under `serve --dev`). Stop
//! it with Ctrl-C: its open tickets are handed on to other agents.

use std::time::Duration;

use clap::Parser;
use servicedesk::proto::v1::agent_service_client::AgentServiceClient;
use servicedesk::proto::v1::attach_response::Message;
use servicedesk::proto::v1::reply_request::Outcome;
use servicedesk::proto::v1::{
    AttachRequest, Escalate, ReplyRequest, RequestReview, Resolve, Ticket,
};
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Endpoint;
use tonic::Request;

#[derive(Parser)]
#[command(about = "A rule-based remote agent for servicedesk")]
struct Args {
    /// Server address.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    target: String,
    /// An API key with the `agent` permission.
    #[arg(long)]
    api_key: String,
    /// Bind this existing REMOTE agent instead of registering a new one.
    #[arg(long)]
    agent_id: Option<String>,
    /// Name of a new agent.
    #[arg(long, default_value = "Remote_Agent")]
    name: String,
    /// Tier of a new agent.
    #[arg(long, default_value = "L1")]
    tier: String,
    /// Comma-separated topics a new agent specialises in (empty: a generalist).
    #[arg(long, default_value = "", value_delimiter = ',')]
    specialties: Vec<String>,
    /// How many tickets it works on at once.
    #[arg(long, default_value_t = 4)]
    capacity: u32,
    /// Stop after answering this many assignments.
    #[arg(long)]
    max_assignments: Option<u64>,
}

/// What the agent does with a ticket.
fn decide(ticket: &Ticket, draft: &str, specialties: &[String]) -> Outcome {
    let text = ticket.inquiry.to_lowercase();
    let sensitive = [
        "refund",
        "compensation",
        "lawyer",
        "lawsuit",
        "close my account",
    ];
    if let Some(word) = sensitive.iter().find(|w| text.contains(*w)) {
        return Outcome::RequestReview(RequestReview {
            reason: format!("mentions {word:?}: a person decides"),
            draft: draft.to_string(),
            priority: 0,
        });
    }
    let covered = specialties.is_empty() || specialties.contains(&ticket.topic);
    if covered {
        let response = if draft.is_empty() {
            format!(
                "Thanks for asking about {}. We have looked into it: {}",
                ticket.topic,
                "please check the steps in our help centre, and reply here if they do not work."
            )
        } else {
            draft.to_string()
        };
        return Outcome::Resolve(Resolve { response });
    }
    Outcome::Escalate(Escalate {
        reason: format!("topic {} is outside this agent's specialties", ticket.topic),
        draft: draft.to_string(),
    })
}

fn outcome_name(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Resolve(_) => "resolve",
        Outcome::Escalate(_) => "escalate",
        Outcome::RequestReview(_) => "request_review",
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let key: AsciiMetadataValue = args.api_key.parse()?;
    let channel = Endpoint::from_shared(args.target.clone())?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(20))
        .connect()
        .await?;
    let mut client = AgentServiceClient::new(channel);
    let mut attach = Request::new(AttachRequest {
        agent_id: args.agent_id.clone().unwrap_or_default(),
        name: if args.agent_id.is_some() {
            String::new()
        } else {
            args.name.clone()
        },
        tier: if args.agent_id.is_some() {
            String::new()
        } else {
            args.tier.clone()
        },
        specialties: if args.agent_id.is_some() {
            Vec::new()
        } else {
            args.specialties
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect()
        },
        capacity: if args.agent_id.is_some() {
            0
        } else {
            args.capacity
        },
    });
    attach.metadata_mut().insert("x-api-key", key.clone());
    let mut stream = client.attach(attach).await?.into_inner();
    let mut specialties = Vec::new();
    let mut answered = 0u64;
    while let Some(message) = stream.message().await? {
        match message.message {
            Some(Message::Attached(attached)) => {
                let agent = attached.agent.unwrap_or_default();
                specialties = agent.specialties.clone();
                println!(
                    "attached as {} ({}, tier {})",
                    agent.name, attached.agent_id, agent.tier
                );
            }
            Some(Message::Assignment(assignment)) => {
                let ticket = assignment.ticket.unwrap_or_default();
                let outcome = decide(&ticket, &assignment.draft, &specialties);
                let name = outcome_name(&outcome);
                let mut reply = Request::new(ReplyRequest {
                    assignment_id: assignment.assignment_id.clone(),
                    outcome: Some(outcome),
                });
                reply.metadata_mut().insert("x-api-key", key.clone());
                match client.reply(reply).await {
                    Ok(_) => println!("{} {}: {name}", assignment.assignment_id, ticket.ticket_id),
                    // Taken back meanwhile (deadline, pause): nothing to do.
                    Err(status) => println!(
                        "{} {}: {name} refused: {}",
                        assignment.assignment_id,
                        ticket.ticket_id,
                        status.message()
                    ),
                }
                answered += 1;
                if args.max_assignments.is_some_and(|max| answered >= max) {
                    println!("answered {answered} assignments; stopping");
                    return Ok(());
                }
            }
            Some(Message::Revoked(revoked)) => {
                println!("{} revoked: {}", revoked.assignment_id, revoked.reason);
            }
            None => {}
        }
    }
    println!("the desk closed the stream");
    Ok(())
}
