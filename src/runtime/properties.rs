//! Property tests of the runtime with its real SQLite store. Arbitrary rounds of commands run
//! concurrently (several callers, so group commit batches them as in production): inquiries
//! scored before they arrive or by the runtime's own dispatch, pauses, review decisions, and a
//! clock the test moves so queue timeouts, review deadlines and assignment deadlines fire
//! exactly when it says; between rounds, remote agents attach, answer and vanish. After every
//! round the desk's invariants hold in memory. At the end the runtime crashes (its task is
//! killed with changes in flight, nothing flushed), a desk is restored from the store, and it
//! holds every open ticket and pending review exactly as they stood, the log runs 1..=head,
//! and nothing closed reopens.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use tokio::sync::mpsc;

use super::core::Core;
use super::{AgentFeed, DeskHandle, Runtime, RuntimeOptions};
use crate::clock::{Clock, ManualClock};
use crate::domain::classify::Classifier;
use crate::domain::desk::{
    Actor, AgentChange, AgentReply, AttachSpec, Desk, NewTicket, RemoteMessage, Settings,
};
use crate::domain::fixtures::{self, tiers};
use crate::domain::knowledge::KnowledgeBase;
use crate::domain::mesh::{Agent, AgentKind, Availability, Mesh};
use crate::domain::policy::Policy;
use crate::domain::review::{Escalation, Reviewer};
use crate::domain::ticket::Ticket;
use crate::domain::triage::Triage;
use crate::keys::KeyRing;
use crate::store::{Durability, SqliteStore, Store};

const INQUIRIES: [&str; 4] = [
    "How do I reset my password?",
    "I was charged twice and need a refund",
    "The app crashes with an error when I export",
    "Where can I download my invoice?",
];

/// A command one caller sends; a round's commands run at once.
#[derive(Clone, Debug)]
enum Call {
    Ask {
        inquiry: usize,
        priority: u8,
        prepared: bool,
    },
    Pause {
        agent: usize,
    },
    Resume {
        agent: usize,
    },
    Decide {
        pick: usize,
        approve: bool,
    },
}

/// What happens between rounds: remote agents' processes, and time.
#[derive(Clone, Debug)]
enum Step {
    Round(Vec<Call>),
    Attach { remote: usize },
    Answer { remote: usize, outcome: u8 },
    Vanish { remote: usize },
    Advance { ms: i64 },
}

fn call() -> impl Strategy<Value = Call> {
    prop_oneof![
        4 => (0..INQUIRIES.len(), 1u8..=10, any::<bool>())
            .prop_map(|(inquiry, priority, prepared)| Call::Ask { inquiry, priority, prepared }),
        1 => (0..4usize).prop_map(|agent| Call::Pause { agent }),
        1 => (0..4usize).prop_map(|agent| Call::Resume { agent }),
        2 => (0..8usize, any::<bool>()).prop_map(|(pick, approve)| Call::Decide { pick, approve }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => proptest::collection::vec(call(), 1..6).prop_map(Step::Round),
        1 => (0..2usize).prop_map(|remote| Step::Attach { remote }),
        3 => (0..2usize, 0u8..3).prop_map(|(remote, outcome)| Step::Answer { remote, outcome }),
        1 => (0..2usize).prop_map(|remote| Step::Vanish { remote }),
        2 => (1i64..2_500).prop_map(|ms| Step::Advance { ms }),
    ]
}

/// Short deadlines, so the moves of the clock make every kind of timer fire.
fn settings() -> Settings {
    Settings {
        escalation_timeout_ms: 1_500,
        queue_timeout_ms: 2_000,
        assignment_timeout_ms: 3_000,
        max_review_reassignments: 1,
        ..Settings::default()
    }
}

fn new_desk() -> Desk {
    Desk::new(
        settings(),
        Mesh::new(tiers()).unwrap(),
        Policy::default_rules(),
    )
}

fn builtin(name: &str, tier: &str, topics: &[&str]) -> Agent {
    fixtures::agent(name, tier, topics, 2)
}

/// A remote agent process played by the test: its stream id and its feed.
struct Remote {
    agent_id: Option<String>,
    stream: Option<(u64, mpsc::Receiver<AgentFeed>)>,
}

async fn run<T: Send + 'static>(
    handle: &DeskHandle,
    f: impl FnOnce(&mut Core, i64) -> T + Send + 'static,
) -> T {
    handle
        .run(move |core, now| Ok(f(core, now)))
        .await
        .expect("the runtime answers")
}

const ADMIN: fn() -> Actor = || Actor {
    client_id: "ops".into(),
    admin: true,
};

/// One caller's command; returns the ticket it closed, if any.
async fn call_once(
    handle: DeskHandle,
    triage: Arc<Triage>,
    agent_ids: Arc<Vec<String>>,
    id: String,
    call: Call,
) -> Option<String> {
    match call {
        Call::Ask {
            inquiry,
            priority,
            prepared,
        } => {
            let text = INQUIRIES[inquiry].to_string();
            let (topic, answer) = triage.inquiry(&text, None);
            let new = NewTicket {
                id,
                customer_id: "c".into(),
                inquiry: text,
                context: Default::default(),
                priority,
                topic,
                client_id: "client".into(),
                idempotency_key: String::new(),
                prepared: prepared.then_some(answer),
            };
            run(&handle, move |core, now| {
                core.desk.open_ticket(new, now).unwrap();
            })
            .await;
            None
        }
        Call::Pause { agent } | Call::Resume { agent } => {
            let id = agent_ids[agent].clone();
            let availability = if matches!(call, Call::Pause { .. }) {
                Availability::Paused
            } else {
                Availability::Available
            };
            run(&handle, move |core, now| {
                let change = AgentChange {
                    availability: Some(availability),
                    ..Default::default()
                };
                core.desk.update_agent(&id, change, now).unwrap();
            })
            .await;
            None
        }
        Call::Decide { pick, approve } => {
            run(&handle, move |core, now| {
                let mut pending: Vec<String> = core
                    .desk
                    .reviews()
                    .pending_all()
                    .map(|e| e.id.clone())
                    .collect();
                pending.sort();
                let id = pending.get(pick % pending.len().max(1))?.clone();
                let escalation = if approve {
                    core.desk
                        .approve(&id, &ADMIN(), None, String::new(), None, now)
                } else {
                    core.desk.reject(&id, &ADMIN(), None, "no".into(), now)
                };
                escalation.ok().map(|e| e.ticket_id)
            })
            .await
        }
    }
}

/// The open work as it stands: every open ticket (without what is kept in memory only) and
/// every pending review.
#[derive(Debug, PartialEq)]
struct Snapshot {
    tickets: BTreeMap<String, Ticket>,
    reviews: BTreeMap<String, Escalation>,
}

fn snapshot(desk: &Desk) -> Snapshot {
    Snapshot {
        tickets: desk
            .tickets()
            .map(|t| {
                let mut t = t.clone();
                t.prepared = None;
                (t.id.clone(), t)
            })
            .collect(),
        reviews: desk
            .reviews()
            .pending_all()
            .map(|e| (e.id.clone(), e.clone()))
            .collect(),
    }
}

/// Whether a ticket waits for a built-in agent's scoring, which arrives on its own.
fn scoring(desk: &Desk) -> bool {
    desk.tickets().any(|t| {
        t.assignment.as_ref().is_some_and(|a| {
            desk.mesh()
                .agent(&a.agent_id)
                .is_some_and(|agent| agent.kind == AgentKind::Builtin)
        })
    })
}

async fn apply(steps: Vec<Step>, dir: &std::path::Path) -> Result<(), TestCaseError> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir, Durability::Normal).unwrap());
    let triage = Arc::new(Triage::new(
        Classifier::default_rules(),
        KnowledgeBase::default_kb(),
    ));
    let clock = ManualClock::new();
    let options = RuntimeOptions {
        clock: Arc::new(clock.clone()),
        ..RuntimeOptions::default()
    };
    let runtime = Runtime::start(
        new_desk(),
        KeyRing::new(Vec::new(), false),
        store.clone(),
        triage.clone(),
        options,
    );
    let handle = runtime.handle.clone();
    let agent_ids: Vec<String> = run(&handle, |core, now| {
        let agents = [
            builtin("a1", "L1", &["billing"]),
            builtin("a2", "L1", &["account", "technical"]),
            builtin("a3", "L2", &["billing", "technical"]),
            builtin("a4", "Expert", &[]),
        ];
        let ids = agents
            .into_iter()
            .map(|a| core.desk.create_agent(a, now).unwrap().id)
            .collect();
        for (id, topics) in [("r1", vec!["billing"]), ("r2", vec![])] {
            let reviewer = Reviewer {
                id: id.into(),
                name: id.into(),
                specialties: topics.into_iter().map(String::from).collect(),
                max_concurrent: 2,
                load: 0,
                decided: 0,
                order: 0,
            };
            core.desk.create_reviewer(reviewer, now).unwrap();
        }
        ids
    })
    .await;
    let agent_ids = Arc::new(agent_ids);
    let host = Actor {
        client_id: "agent-host".into(),
        admin: false,
    };
    let mut remotes: Vec<Remote> = (0..2)
        .map(|_| Remote {
            agent_id: None,
            stream: None,
        })
        .collect();
    let mut closed: BTreeSet<String> = BTreeSet::new();
    let mut next_ticket = 0u32;

    for step in steps {
        match step {
            Step::Round(calls) => {
                let mut callers = tokio::task::JoinSet::new();
                for call in calls {
                    next_ticket += 1;
                    callers.spawn(call_once(
                        handle.clone(),
                        triage.clone(),
                        agent_ids.clone(),
                        format!("tkt_{next_ticket:08}"),
                        call,
                    ));
                }
                while let Some(done) = callers.join_next().await {
                    closed.extend(done.expect("a caller panicked"));
                }
            }
            Step::Attach { remote } => {
                let spec = match &remotes[remote].agent_id {
                    Some(id) => AttachSpec::Existing(id.clone()),
                    None => {
                        let mut agent = builtin(&format!("remote{remote}"), "L1", &[]);
                        agent.kind = AgentKind::Remote;
                        AttachSpec::New(agent)
                    }
                };
                let stream_id = handle.new_stream_id();
                let host = host.clone();
                let (agent, feed) = run(&handle, move |core, now| {
                    core.attach(spec, &host, None, stream_id, now).unwrap()
                })
                .await;
                remotes[remote].agent_id = Some(agent.id);
                // A take-over: the older stream is simply dropped by the process.
                remotes[remote].stream = Some((stream_id, feed));
            }
            Step::Answer { remote, outcome } => {
                let Some((_, feed)) = &mut remotes[remote].stream else {
                    continue;
                };
                let Ok(AgentFeed::Message(RemoteMessage::Assignment { assignment_id, .. })) =
                    feed.try_recv()
                else {
                    continue;
                };
                let reply = match outcome {
                    0 => AgentReply::Resolve {
                        response: "done".into(),
                        confidence: 0.0,
                    },
                    1 => AgentReply::Escalate {
                        reason: "not mine".into(),
                        draft: String::new(),
                        confidence: 0.0,
                    },
                    _ => AgentReply::RequestReview {
                        reason: "a person decides".into(),
                        draft: "draft".into(),
                        priority: None,
                        confidence: 0.0,
                    },
                };
                let host = host.clone();
                // Revoked meanwhile is fine: the reply is refused and changes nothing.
                let _ = run(&handle, move |core, now| {
                    core.desk.remote_replied(&assignment_id, reply, &host, now)
                })
                .await;
            }
            Step::Vanish { remote } => {
                if let Some((stream_id, feed)) = remotes[remote].stream.take() {
                    drop(feed);
                    run(&handle, move |core, now| core.detach(stream_id, now)).await;
                }
            }
            Step::Advance { ms } => {
                clock.advance(ms);
                // A job after the move: its batch fires every timer due by now.
                run(&handle, |_, _| ()).await;
            }
        }
        let broken = run(&handle, |core, _| core.desk.check_invariants().err()).await;
        prop_assert!(broken.is_none(), "{}", broken.unwrap_or_default());
    }

    // Quiet: every built-in agent's scoring has come back (it needs no clock).
    let mut waited = Duration::ZERO;
    while run(&handle, |core, _| scoring(&core.desk)).await {
        prop_assert!(waited < Duration::from_secs(10), "scoring never came back");
        tokio::time::sleep(Duration::from_millis(5)).await;
        waited += Duration::from_millis(5);
    }
    let before = run(&handle, |core, _| snapshot(&core.desk)).await;
    let remote_ids: BTreeSet<String> = remotes.iter().filter_map(|r| r.agent_id.clone()).collect();

    // A crash with changes in flight: their callers never hear back.
    for (n, text) in INQUIRIES.iter().enumerate() {
        let new = NewTicket {
            id: format!("tkt_crash_{n}"),
            customer_id: "c".into(),
            inquiry: text.to_string(),
            context: Default::default(),
            priority: 5,
            topic: Classifier::default_rules().topic(text, None),
            client_id: "client".into(),
            idempotency_key: String::new(),
            prepared: None,
        };
        let _ = handle.submit(Box::new(move |core, now| {
            core.desk.open_ticket(new, now).unwrap();
            None
        }));
    }
    drop(handle);
    runtime.crash().await;
    drop(store);

    // Reopened as a new process would, once the crashed one's last task let go of it.
    let mut waited = Duration::ZERO;
    let store: Arc<dyn Store> = loop {
        match SqliteStore::open(dir, Durability::Normal) {
            Ok(store) => break Arc::new(store),
            Err(crate::store::StoreError::InUse(_)) if waited < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                waited += Duration::from_millis(10);
            }
            Err(err) => return Err(TestCaseError::fail(format!("reopen the store: {err}"))),
        }
    };

    // The log: 1..=head, each once.
    let head = store.head_seq().unwrap();
    let sequences: Vec<u64> = store
        .events_after(0, usize::MAX >> 1)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    prop_assert_eq!(sequences, (1..=head).collect::<Vec<_>>());

    // A restart holds the same open work, exactly, but for what a restart itself moves: the
    // tickets of remote agents (offline now) are handed on.
    let loaded = store.load().unwrap();
    let mut desk = new_desk();
    desk.restore(loaded.into_restore(), clock.now_ms()).unwrap();
    desk.check_invariants().map_err(TestCaseError::fail)?;
    let after = snapshot(&desk);
    // The changes in flight at the crash were committed whole, or not at all.
    let in_flight = |ticket_id: &str| ticket_id.starts_with("tkt_crash_");
    let kept_reviews: BTreeMap<String, Escalation> = after
        .reviews
        .iter()
        .filter(|(_, e)| !in_flight(&e.ticket_id))
        .map(|(id, e)| (id.clone(), e.clone()))
        .collect();
    prop_assert_eq!(
        &kept_reviews,
        &before.reviews,
        "pending reviews, deadlines included"
    );
    for (id, ticket) in &before.tickets {
        let Some(restored) = after.tickets.get(id) else {
            return Err(TestCaseError::fail(format!("open ticket {id} lost")));
        };
        let with_remote = ticket
            .assignment
            .as_ref()
            .is_some_and(|a| remote_ids.contains(&a.agent_id));
        if with_remote {
            let offline_holder = restored
                .assignment
                .as_ref()
                .is_some_and(|a| remote_ids.contains(&a.agent_id));
            prop_assert!(!offline_holder, "{} stays with an offline agent", id);
        } else {
            prop_assert_eq!(restored, ticket, "ticket {} as it stood", id);
        }
    }
    for (id, ticket) in &after.tickets {
        prop_assert!(
            before.tickets.contains_key(id) || in_flight(id),
            "ticket {} ({:?}) appeared from nowhere",
            id,
            ticket.status
        );
    }
    for id in &closed {
        prop_assert!(desk.ticket(id).is_none(), "decided ticket {} reopened", id);
    }
    Ok(())
}

/// 256 cases in every `cargo test`; `SERVICEDESK_PROPERTY_CASES` asks for more (a soak run).
fn cases() -> u32 {
    std::env::var("SERVICEDESK_PROPERTY_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn the_runtime_keeps_the_invariants_and_a_crash_loses_no_open_work(
        steps in proptest::collection::vec(step(), 1..40)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(apply(steps, dir.path()))?;
    }
}
