//! A new inquiry, from the caller's request to its settled answer: find an earlier ticket with
//! the same idempotency key, classify and score the inquiry once (before the runtime task sees
//! it), admit it (a new ticket, or the earlier one), and wait for it to settle: answered, in
//! review or closed, after the commit that settled it.
//!
//! Methods of `Core` here: `admit`.
//! Methods of `DeskHandle` here: `handle_inquiry`, `stored_ticket`.

use std::collections::BTreeMap;

use rand::Rng;
use tokio::sync::oneshot;

use super::core::Core;
use super::{DeskError, DeskHandle};
use crate::domain::classify::Topic;
use crate::domain::desk::NewTicket;
use crate::domain::error::DomainError;
use crate::domain::ticket::{Asked, Ticket};

/// Inquiries up to this size are classified and scored on the calling task: that takes a few
/// microseconds, less than the hand-off to the blocking pool and back. Longer ones (up to the
/// request limit, 16 KiB by default) go to the pool, so no worker thread stalls on one.
const SCORE_INLINE_BYTES: usize = 2048;

/// A customer's inquiry as the caller sent it, validated.
#[derive(Clone, Debug)]
pub struct Inquiry {
    pub customer_id: String,
    /// Trimmed.
    pub inquiry: String,
    pub context: BTreeMap<String, String>,
    /// 1..=10.
    pub priority: u8,
    /// The caller's topic; classified when `None`.
    pub topic: Option<String>,
    /// Empty: none. The same key from the same client returns the same ticket.
    pub idempotency_key: String,
}

impl Inquiry {
    fn asked(&self) -> Asked<'_> {
        Asked {
            customer_id: &self.customer_id,
            inquiry: &self.inquiry,
            context: &self.context,
            priority: self.priority,
            topic: self.topic.as_deref(),
        }
    }
}

fn asked(new: &NewTicket) -> Asked<'_> {
    Asked {
        customer_id: &new.customer_id,
        inquiry: &new.inquiry,
        context: &new.context,
        priority: new.priority,
        topic: match &new.topic {
            Topic::Given(t) => Some(t),
            Topic::Classified(_) => None,
        },
    }
}

/// The earlier ticket of an idempotency key, unless the retry asks something else.
fn same_request(ticket: &Ticket, asked: &Asked<'_>, key: &str) -> Result<(), DomainError> {
    if ticket.was_asked(asked) {
        return Ok(());
    }
    Err(DomainError::invalid(
        "idempotency_key",
        format!(
            "{key:?} was already used by this client for a different request (ticket {}); \
             send a new key with a new request",
            ticket.id
        ),
    ))
}

/// What the caller hears: the ticket as it settled, and whether an earlier call made it.
#[derive(Clone, Debug)]
pub struct Answer {
    pub ticket: Ticket,
    pub replayed: bool,
}

/// How the runtime admitted an inquiry.
#[derive(Debug)]
pub(super) enum Admission {
    /// Not settled yet: the waiter registered with the runtime will fire.
    Waiting {
        ticket_id: String,
        replayed: bool,
    },
    Settled(Box<Ticket>),
    /// An earlier ticket for the same idempotency key that is already closed: read the store.
    Closed(String),
}

/// A new ticket id: `tkt_`, 11 hex digits of the creation time (so ids sort by age), 9 random.
fn new_ticket_id(now_ms: i64) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::thread_rng();
    let random: String = (0..9)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("tkt_{:011x}{random}", now_ms.max(0))
}

impl Core {
    /// Opens the ticket, unless the client's idempotency key already names one (remembered
    /// here, or `stored` in the store): then that one is the answer.
    pub(super) fn admit(
        &mut self,
        new: NewTicket,
        stored: Option<String>,
        waiter: oneshot::Sender<Ticket>,
        now: i64,
    ) -> Result<Admission, DomainError> {
        let key = new.idempotency_key.clone();
        let client_id = new.client_id.clone();
        if !key.is_empty() {
            if let Some(existing) = self.idempotent_ticket(&client_id, &key).cloned().or(stored) {
                if let Some(t) = self.desk.ticket(&existing) {
                    same_request(t, &asked(&new), &key)?;
                }
                return Ok(match self.desk.ticket(&existing) {
                    Some(t) if t.status.is_settled() => Admission::Settled(Box::new(t.clone())),
                    Some(_) => {
                        self.wait_for(&existing, waiter);
                        Admission::Waiting {
                            ticket_id: existing,
                            replayed: true,
                        }
                    }
                    None => Admission::Closed(existing),
                });
            }
        }
        let ticket = self.desk.open_ticket(new, now)?;
        if !key.is_empty() {
            self.remember_idempotency(&client_id, &key, &ticket.id);
        }
        self.wait_for(&ticket.id, waiter);
        Ok(Admission::Waiting {
            ticket_id: ticket.id,
            replayed: false,
        })
    }
}

impl DeskHandle {
    /// Handles a customer's inquiry for `client_id` and answers once its ticket settled.
    /// A retry with the same idempotency key gets the same ticket (`replayed`), whether the
    /// first call is still running, settled, or long closed.
    pub async fn handle_inquiry(
        &self,
        inquiry: Inquiry,
        client_id: &str,
    ) -> Result<Answer, DeskError> {
        let key = inquiry.idempotency_key.clone();
        // A retry of a committed ticket is found in the store; a retry racing the first call
        // is found by the runtime, which remembers recent keys.
        let mut stored = None;
        if !key.is_empty() {
            let (c, k) = (client_id.to_string(), key.clone());
            if let Some(existing) = self.read(move |s| s.find_idempotent(&c, &k)).await? {
                let ticket = self.stored_ticket(&existing).await?;
                same_request(&ticket, &inquiry.asked(), &key)?;
                if ticket.status.is_settled() {
                    return Ok(Answer {
                        ticket,
                        replayed: true,
                    });
                }
                stored = Some(existing);
            }
        }
        let (topic, prepared) = if inquiry.inquiry.len() <= SCORE_INLINE_BYTES {
            self.triage
                .inquiry(&inquiry.inquiry, inquiry.topic.as_deref())
        } else {
            let triage = self.triage.clone();
            let (text, given) = (inquiry.inquiry.clone(), inquiry.topic.clone());
            tokio::task::spawn_blocking(move || triage.inquiry(&text, given.as_deref()))
                .await
                .map_err(|_| DeskError::Unavailable)?
        };
        // With a key: kept to compare with an earlier ticket that closed before it was read.
        let asked_again = (!key.is_empty()).then(|| inquiry.clone());
        let new = NewTicket {
            id: new_ticket_id(self.clock.now_ms()),
            customer_id: inquiry.customer_id,
            inquiry: inquiry.inquiry,
            context: inquiry.context,
            priority: inquiry.priority,
            topic,
            client_id: client_id.to_string(),
            idempotency_key: key,
            prepared: Some(prepared),
        };
        let (waiter, settled) = oneshot::channel();
        // The store may stop taking writes before the admission is committed (NotCommitted:
        // which ticket a racing retry joined is not known here), or while the ticket settles.
        let admission = self
            .run(move |core, now| core.admit(new, stored, waiter, now))
            .await?;
        let (ticket_id, replayed) = match admission {
            Admission::Settled(ticket) => {
                return Ok(Answer {
                    ticket: *ticket,
                    replayed: true,
                })
            }
            Admission::Closed(id) => {
                let ticket = self.stored_ticket(&id).await?;
                if let Some(again) = &asked_again {
                    same_request(&ticket, &again.asked(), &again.idempotency_key)?;
                }
                return Ok(Answer {
                    ticket,
                    replayed: true,
                });
            }
            Admission::Waiting {
                ticket_id,
                replayed,
            } => (ticket_id, replayed),
        };
        // On shutdown an answer that is moments away still goes out; past half the grace
        // period the caller learns where to pick the ticket up instead.
        let grace_over = async {
            self.closing().cancelled().await;
            tokio::time::sleep(self.answer_grace).await;
        };
        let kept = |why: &str| DeskError::TicketKept {
            ticket_id: ticket_id.clone(),
            why: why.to_string(),
        };
        let ticket = tokio::select! {
            t = settled => t.map_err(|_| kept("the desk stopped before answering"))?,
            _ = grace_over => return Err(kept("the server is shutting down")),
            why = self.store_refuses_writes() => {
                return Err(kept(&format!(
                    "the desk cannot write to its store ({why}); the ticket is answered once it \
                     can"
                )))
            }
        };
        Ok(Answer { ticket, replayed })
    }

    /// A ticket as the store holds it; NOT_FOUND when it does not exist.
    pub(super) async fn stored_ticket(&self, ticket_id: &str) -> Result<Ticket, DeskError> {
        let id = ticket_id.to_string();
        self.read(move |s| s.get_ticket(&id))
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("ticket {ticket_id} not found")).into())
    }
}
