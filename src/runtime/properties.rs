//! Property tests of the runtime with its real SQLite store: arbitrary sequences of inquiries
//! (scored before they arrive or by the runtime's own dispatch), pauses, remote agents that
//! attach, answer, vanish, and review decisions. After each sequence the desk's invariants
//! hold in memory; the log in the store runs 1..=head; and a desk restored from the store
//! holds the same open work, with every invariant, and never reopens a closed ticket.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use tokio::sync::mpsc;

use super::core::Core;
use super::{AgentFeed, DeskHandle, Runtime, RuntimeOptions};
use crate::domain::classify::Classifier;
use crate::domain::desk::{
    Actor, AgentChange, AgentReply, AttachSpec, Desk, NewTicket, RemoteMessage, Settings,
};
use crate::domain::knowledge::KnowledgeBase;
use crate::domain::mesh::{Agent, AgentKind, Availability, Mesh, Tier};
use crate::domain::policy::Policy;
use crate::domain::review::Reviewer;
use crate::domain::ticket::TicketStatus;
use crate::domain::triage::Triage;
use crate::keys::KeyRing;
use crate::store::{Durability, SqliteStore, Store};

const INQUIRIES: [&str; 4] = [
    "How do I reset my password?",
    "I was charged twice and need a refund",
    "The app crashes with an error when I export",
    "Where can I download my invoice?",
];

#[derive(Clone, Debug)]
enum Op {
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
    Attach {
        remote: usize,
    },
    Answer {
        remote: usize,
        outcome: u8,
    },
    Vanish {
        remote: usize,
    },
    Decide {
        pick: usize,
        approve: bool,
    },
    Settle,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..INQUIRIES.len(), 1u8..=10, any::<bool>())
            .prop_map(|(inquiry, priority, prepared)| Op::Ask { inquiry, priority, prepared }),
        1 => (0..4usize).prop_map(|agent| Op::Pause { agent }),
        1 => (0..4usize).prop_map(|agent| Op::Resume { agent }),
        1 => (0..2usize).prop_map(|remote| Op::Attach { remote }),
        3 => (0..2usize, 0u8..3).prop_map(|(remote, outcome)| Op::Answer { remote, outcome }),
        1 => (0..2usize).prop_map(|remote| Op::Vanish { remote }),
        2 => (0..8usize, any::<bool>()).prop_map(|(pick, approve)| Op::Decide { pick, approve }),
        1 => Just(Op::Settle),
    ]
}

fn tiers() -> Vec<Tier> {
    ["L1", "L2", "Expert"]
        .iter()
        .enumerate()
        .map(|(i, name)| Tier {
            name: name.to_string(),
            threshold: 0.7 - 0.2 * i as f64,
            default_capacity: 2,
            instructions: String::new(),
        })
        .collect()
}

fn new_desk() -> Desk {
    Desk::new(
        Settings::default(),
        Mesh::new(tiers()).unwrap(),
        Policy::default_rules(),
    )
}

fn builtin(name: &str, tier: &str, topics: &[&str]) -> Agent {
    let topics = topics.iter().map(|t| t.to_string()).collect();
    Agent::new(name, tier, topics, 2, AgentKind::Builtin)
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

/// What must survive: the open work and where every ticket stands.
#[derive(Debug, PartialEq)]
struct Snapshot {
    open: BTreeMap<String, TicketStatus>,
    pending_reviews: BTreeSet<String>,
}

async fn apply(ops: Vec<Op>, dir: &std::path::Path) -> Result<(), TestCaseError> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir, Durability::Normal).unwrap());
    let triage = Arc::new(Triage::new(
        Classifier::default_rules(),
        KnowledgeBase::default_kb(),
    ));
    let runtime = Runtime::start(
        new_desk(),
        KeyRing::new(Vec::new(), false),
        store.clone(),
        triage.clone(),
        RuntimeOptions::default(),
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
    let admin = Actor {
        client_id: "ops".into(),
        admin: true,
    };
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

    for op in ops {
        match op {
            Op::Ask {
                inquiry,
                priority,
                prepared,
            } => {
                next_ticket += 1;
                let text = INQUIRIES[inquiry].to_string();
                let (topic, answer) = triage.inquiry(&text, None);
                let prepared = prepared.then_some(answer);
                let new = NewTicket {
                    id: format!("tkt_{next_ticket:08}"),
                    customer_id: "c".into(),
                    inquiry: text,
                    context: Default::default(),
                    priority,
                    topic,
                    client_id: "client".into(),
                    idempotency_key: String::new(),
                    prepared,
                };
                run(&handle, move |core, now| {
                    core.desk.open_ticket(new, now).unwrap();
                })
                .await;
            }
            Op::Pause { agent } | Op::Resume { agent } => {
                let id = agent_ids[agent].clone();
                let availability = if matches!(op, Op::Pause { .. }) {
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
            }
            Op::Attach { remote } => {
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
                    core.attach(spec, (&host, None), stream_id, now).unwrap()
                })
                .await;
                remotes[remote].agent_id = Some(agent.id);
                // A take-over: the older stream is simply dropped by the process.
                remotes[remote].stream = Some((stream_id, feed));
            }
            Op::Answer { remote, outcome } => {
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
            Op::Vanish { remote } => {
                if let Some((stream_id, feed)) = remotes[remote].stream.take() {
                    drop(feed);
                    run(&handle, move |core, now| core.detach(stream_id, now)).await;
                }
            }
            Op::Decide { pick, approve } => {
                let admin = admin.clone();
                let decided = run(&handle, move |core, now| {
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
                            .approve(&id, &admin, None, String::new(), None, now)
                    } else {
                        core.desk.reject(&id, &admin, None, "no".into(), now)
                    };
                    escalation.ok().map(|e| e.ticket_id)
                })
                .await;
                closed.extend(decided);
            }
            Op::Settle => tokio::time::sleep(Duration::from_millis(5)).await,
        }
        let broken = run(&handle, |core, _| core.desk.check_invariants().err()).await;
        prop_assert!(broken.is_none(), "{}", broken.unwrap_or_default());
    }

    // Let dispatched scoring land, then take the picture.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = run(&handle, |core, _| Snapshot {
        open: core
            .desk
            .tickets()
            .map(|t| (t.id.clone(), t.status))
            .collect(),
        pending_reviews: core
            .desk
            .reviews()
            .pending_all()
            .map(|e| e.id.clone())
            .collect(),
    })
    .await;
    drop(handle);
    runtime.shutdown().await.unwrap();

    // The log: 1..=head, each once.
    let head = store.head_seq().unwrap();
    let sequences: Vec<u64> = store
        .events_after(0, usize::MAX >> 1)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    prop_assert_eq!(sequences, (1..=head).collect::<Vec<_>>());

    // A restart holds the same open work.
    let loaded = store.load().unwrap();
    let mut desk = new_desk();
    desk.restore(loaded.into_restore(), crate::clock::now_ms())
        .unwrap();
    desk.check_invariants().map_err(TestCaseError::fail)?;
    let after_open: BTreeSet<&String> = desk.tickets().map(|t| &t.id).collect();
    let before_open: BTreeSet<&String> = before.open.keys().collect();
    prop_assert_eq!(after_open, before_open, "the same tickets are open");
    let after_reviews: BTreeSet<String> =
        desk.reviews().pending_all().map(|e| e.id.clone()).collect();
    prop_assert_eq!(after_reviews, before.pending_reviews);
    for id in &closed {
        prop_assert!(desk.ticket(id).is_none(), "decided ticket {} reopened", id);
    }
    for t in desk.tickets() {
        // Remote agents are offline after a restart: their tickets moved on.
        prop_assert!(
            !(t.status == TicketStatus::Assigned
                && t.assignment.as_ref().is_some_and(|a| desk
                    .mesh()
                    .agent(&a.agent_id)
                    .unwrap()
                    .kind
                    == AgentKind::Remote)),
            "ticket {} still with an offline remote agent",
            t.id
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_runtime_keeps_the_invariants_and_the_store_agrees(
        ops in proptest::collection::vec(op(), 1..60)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(apply(ops, dir.path()))?;
    }
}
