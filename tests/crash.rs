//! Crash safety: the real binary under concurrent load (16 clients asking, two reviewers
//! deciding) is killed with SIGKILL at random moments and restarted on the same data
//! directory, five times. After every restart, everything that was acknowledged is there with
//! at least the state it was acknowledged in, the event log has no gap and no repeat, and
//! every agent's and reviewer's load equals the work it holds.
//!
//! The random moments come from a seed printed at the start; `CRASH_SEED=N` replays a run.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use servicedesk::proto::v1::{
    ApproveEscalationRequest, DeskEvent, EscalationState, GetDeskStatusRequest,
    GetEscalationRequest, GetTicketRequest, HandleInquiryRequest, ListEscalationsRequest,
    ListTicketsRequest, RejectEscalationRequest, TicketStatus, WatchEventsRequest,
};

const CYCLES: usize = 5;
const ASKERS: usize = 16;

/// What the server acknowledged: it must survive any crash after the acknowledgement.
#[derive(Clone, Default)]
struct Ledger {
    /// Ticket id -> the status HandleInquiry returned.
    tickets: HashMap<String, TicketStatus>,
    /// Escalation id -> the state a decision returned (PENDING when only created).
    escalations: HashMap<String, EscalationState>,
}

/// A small deterministic generator: the run is reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn request(n: u64, asker: usize) -> HandleInquiryRequest {
    let customer = format!("cust_{asker}_{n}");
    match n % 4 {
        0 => refund_request(&customer),
        1 => vip_complaint(&customer),
        2 => inquiry(&customer, "The app crashes with an error when I export"),
        _ => inquiry(&customer, PASSWORD_RESET),
    }
}

fn is_final(status: TicketStatus) -> bool {
    matches!(
        status,
        TicketStatus::Resolved | TicketStatus::Rejected | TicketStatus::Failed
    )
}

async fn verify(server: &Server, ledger: &Ledger, cycle: usize) {
    let mut desk = server.desk_as(ADMIN_KEY);
    for (id, acknowledged) in &ledger.tickets {
        let ticket = ok(
            desk.get_ticket(GetTicketRequest {
                ticket_id: id.clone(),
            })
            .await,
            &format!("cycle {cycle}: acknowledged ticket {id}"),
        );
        let now = ticket.status();
        if is_final(*acknowledged) {
            assert_eq!(
                now, *acknowledged,
                "cycle {cycle}: a final ticket {id} changed"
            );
        } else {
            assert!(
                now == *acknowledged || is_final(now),
                "cycle {cycle}: ticket {id} went back from {acknowledged:?} to {now:?}"
            );
        }
    }
    let mut escalations = server.escalations_as(ADMIN_KEY);
    for (id, acknowledged) in &ledger.escalations {
        let escalation = ok(
            escalations
                .get_escalation(GetEscalationRequest {
                    escalation_id: id.clone(),
                })
                .await,
            &format!("cycle {cycle}: acknowledged escalation {id}"),
        );
        assert!(escalation.expire_time.is_some(), "{id} keeps its deadline");
        if *acknowledged != EscalationState::Pending {
            assert_eq!(
                escalation.state(),
                *acknowledged,
                "cycle {cycle}: decided escalation {id}"
            );
        }
    }

    // The log: 1..=head, each once.
    let head = ok(
        desk.list_tickets(ListTicketsRequest::default()).await,
        "ListTickets",
    )
    .sequence;
    let mut admin = server.admin();
    let mut watch: Watch<DeskEvent> = Watch::open("WatchEvents", async move {
        admin.watch_events(WatchEventsRequest::default()).await
    });
    let sequences: Vec<u64> = watch
        .until(|e| e.sequence >= head)
        .await
        .iter()
        .map(|e| e.sequence)
        .collect();
    assert_eq!(
        sequences,
        (1..=head).collect::<Vec<_>>(),
        "cycle {cycle}: the event log has a gap or a repeat"
    );

    // Loads equal open work.
    let mut assigned: HashMap<String, u32> = HashMap::new();
    let mut token = String::new();
    loop {
        let page = ok(
            desk.list_tickets(ListTicketsRequest {
                status: TicketStatus::Assigned as i32,
                page_size: 500,
                page_token: token.clone(),
                ..Default::default()
            })
            .await,
            "ListTickets(ASSIGNED)",
        );
        for t in page.tickets {
            *assigned.entry(t.assigned_agent_id).or_default() += 1;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut reviewing: HashMap<String, u32> = HashMap::new();
    let mut token = String::new();
    loop {
        let page = ok(
            escalations
                .list_escalations(ListEscalationsRequest {
                    state: EscalationState::Pending as i32,
                    page_size: 500,
                    page_token: token.clone(),
                    ..Default::default()
                })
                .await,
            "ListEscalations(PENDING)",
        );
        for e in page.escalations {
            if !e.assigned_reviewer_id.is_empty() {
                *reviewing.entry(e.assigned_reviewer_id).or_default() += 1;
            }
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let status = ok(
        server
            .admin()
            .get_desk_status(GetDeskStatusRequest {})
            .await,
        "GetDeskStatus",
    );
    for agent in status.tiers.iter().flat_map(|t| &t.agents) {
        let holds = assigned.get(&agent.agent_id).copied().unwrap_or(0);
        assert_eq!(agent.load, holds, "cycle {cycle}: load of {}", agent.name);
        assert!(agent.load <= agent.capacity);
    }
    for reviewer in &status.escalation_stats.as_ref().unwrap().reviewers {
        let holds = reviewing.get(&reviewer.reviewer_id).copied().unwrap_or(0);
        assert_eq!(
            reviewer.load, holds,
            "cycle {cycle}: load of reviewer {}",
            reviewer.reviewer_id
        );
        assert!(reviewer.load <= reviewer.max_concurrent);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_load_loses_nothing_that_was_acknowledged() {
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash test seed {seed} (CRASH_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut root = new_root();
    let mut acknowledged_total = 0;

    for cycle in 0..CYCLES {
        let server = Server::start_with(root, &[], None).await;
        let acknowledged = ledger.lock().unwrap().clone();
        verify(&server, &acknowledged, cycle).await;

        let running = Arc::new(AtomicBool::new(true));
        let mut tasks = Vec::new();
        for asker in 0..ASKERS {
            let mut desk = server.desk();
            let (running, ledger) = (running.clone(), ledger.clone());
            let base = (cycle * 100_000) as u64;
            tasks.push(tokio::spawn(async move {
                let mut n = base;
                while running.load(Ordering::Relaxed) {
                    n += 1;
                    let mut call = tonic::Request::new(request(n, asker));
                    call.set_timeout(Duration::from_secs(10));
                    let Ok(answer) = desk.handle_inquiry(call).await else {
                        continue;
                    };
                    let answer = answer.into_inner();
                    let ticket = answer.ticket.unwrap();
                    let mut ledger = ledger.lock().unwrap();
                    ledger
                        .tickets
                        .insert(ticket.ticket_id.clone(), ticket.status());
                    if !answer.escalation_id.is_empty() {
                        ledger
                            .escalations
                            .entry(answer.escalation_id)
                            .or_insert(EscalationState::Pending);
                    }
                }
            }));
        }
        for decider in 0..2 {
            let mut escalations = server.escalations_as(ADMIN_KEY);
            let (running, ledger) = (running.clone(), ledger.clone());
            tasks.push(tokio::spawn(async move {
                let mut decided = 0u64;
                while running.load(Ordering::Relaxed) {
                    let Ok(page) = escalations
                        .list_escalations(ListEscalationsRequest {
                            page_size: 10,
                            ..Default::default()
                        })
                        .await
                    else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    let pending = page.into_inner().escalations;
                    let Some(pick) = pending.get(decider % pending.len().max(1)) else {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    decided += 1;
                    let id = pick.escalation_id.clone();
                    let result = if decided.is_multiple_of(3) {
                        escalations
                            .reject_escalation(RejectEscalationRequest {
                                escalation_id: id.clone(),
                                reason: "outside policy".into(),
                                ..Default::default()
                            })
                            .await
                    } else {
                        escalations
                            .approve_escalation(ApproveEscalationRequest {
                                escalation_id: id.clone(),
                                ..Default::default()
                            })
                            .await
                    };
                    if let Ok(e) = result {
                        let e = e.into_inner();
                        ledger.lock().unwrap().escalations.insert(id, e.state());
                    }
                }
            }));
        }

        tokio::time::sleep(Duration::from_millis(300 + rng.below(1200))).await;
        root = server.kill().await;
        running.store(false, Ordering::Relaxed);
        for task in tasks {
            task.await.unwrap();
        }
        let size = ledger.lock().unwrap().tickets.len();
        assert!(
            size > acknowledged_total,
            "cycle {cycle}: the load got answers before the kill"
        );
        acknowledged_total = size;
    }

    let server = Server::start_with(root, &[], None).await;
    let acknowledged = ledger.lock().unwrap().clone();
    verify(&server, &acknowledged, CYCLES).await;
    let ledger = ledger.lock().unwrap();
    let decided: HashSet<_> = ledger
        .escalations
        .iter()
        .filter(|(_, s)| **s != EscalationState::Pending)
        .map(|(id, _)| id)
        .collect();
    eprintln!(
        "{} acknowledged tickets, {} reviews, {} decisions survived {CYCLES} SIGKILLs",
        ledger.tickets.len(),
        ledger.escalations.len(),
        decided.len()
    );
    assert!(!decided.is_empty(), "the reviewers decided something");
}
