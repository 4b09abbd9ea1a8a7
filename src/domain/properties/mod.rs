//! Property tests of the desk under arbitrary command sequences. Every command's answer is
//! checked against what the rules say it must be (who may decide or claim a review, what a
//! capacity or a reviewer's limit allows, which replies are still open, which settings are in
//! bounds), and after every step the invariants hold: agent and reviewer loads equal their
//! open work within their limits, nothing waits while someone may take it, every review and
//! its ticket agree, a review is decided at most once, events are numbered consecutively, and
//! queues hand out work by priority then age.

use std::collections::{BTreeSet, HashMap};

use proptest::prelude::*;

use crate::domain::classify::{Classifier, Topic};
use crate::domain::desk::{
    Actor, AgentChange, AgentReply, Desk, Dispatch, NewTicket, ReviewerChange, Settings,
    SettingsChange,
};
use crate::domain::event::{EscalationEventKind, EventBody, TicketEventKind};
use crate::domain::fixtures::{agent, reviewer, tiers};
use crate::domain::knowledge::KbAnswer;
use crate::domain::mesh::{Availability, Mesh, RoutingStrategy, Tier};
use crate::domain::policy::Policy;
use model::{assignment_open, expected_claim, expected_decision, outcome, Expected};

mod model;

const TOPICS: [&str; 4] = ["billing", "technical", "account", "general"];

fn desk(routing: RoutingStrategy) -> Desk {
    let settings = Settings {
        routing,
        escalation_timeout_ms: 1_000,
        queue_timeout_ms: 2_000,
        max_review_reassignments: 1,
        assignment_timeout_ms: 3_000,
    };
    let mut desk = Desk::new(
        settings,
        Mesh::new(tiers()).unwrap(),
        Policy::default_rules(),
    );
    desk.create_agent(agent("a1", "L1", &["billing"], 2), 0)
        .unwrap();
    desk.create_agent(agent("a2", "L1", &["technical", "account"], 1), 0)
        .unwrap();
    desk.create_agent(agent("a3", "L2", &["billing", "general"], 1), 0)
        .unwrap();
    desk.create_agent(agent("a4", "Expert", &[], 1), 0).unwrap();
    desk.create_reviewer(reviewer("r1", &["billing"], 1), 0)
        .unwrap();
    desk.create_reviewer(reviewer("r2", &[], 2), 0).unwrap();
    desk.take_output();
    desk
}

#[derive(Clone, Debug)]
enum Op {
    Open {
        topic: usize,
        priority: u8,
    },
    Answer {
        pick: usize,
        confidence: f64,
    },
    Reply {
        pick: usize,
        kind: u8,
    },
    Approve {
        pick: usize,
        actor: usize,
    },
    Reject {
        pick: usize,
        actor: usize,
    },
    Claim {
        pick: usize,
        actor: usize,
    },
    Pause {
        agent: usize,
    },
    Resume {
        agent: usize,
    },
    Delete {
        agent: usize,
    },
    Create {
        topic: usize,
        tier: usize,
    },
    Capacity {
        agent: usize,
        capacity: u32,
    },
    Tick {
        ms: i64,
    },
    AddReviewer {
        id: usize,
        topic: Option<usize>,
        max: u32,
    },
    ChangeReviewer {
        id: usize,
        max: u32,
    },
    RemoveReviewer {
        id: usize,
    },
    Settings {
        routing: bool,
        queue_ms: i64,
        review_ms: i64,
        reassignments: u32,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..TOPICS.len(), 1u8..=10).prop_map(|(topic, priority)| Op::Open { topic, priority }),
        4 => (any::<usize>(), 0.0f64..1.0).prop_map(|(pick, confidence)| Op::Answer { pick, confidence }),
        2 => (any::<usize>(), 0u8..3).prop_map(|(pick, kind)| Op::Reply { pick, kind }),
        2 => (any::<usize>(), 0usize..4).prop_map(|(pick, actor)| Op::Approve { pick, actor }),
        1 => (any::<usize>(), 0usize..4).prop_map(|(pick, actor)| Op::Reject { pick, actor }),
        1 => (any::<usize>(), 0usize..4).prop_map(|(pick, actor)| Op::Claim { pick, actor }),
        1 => (0usize..6).prop_map(|agent| Op::Pause { agent }),
        1 => (0usize..6).prop_map(|agent| Op::Resume { agent }),
        1 => (0usize..6).prop_map(|agent| Op::Delete { agent }),
        1 => (0..TOPICS.len(), 0usize..3).prop_map(|(topic, tier)| Op::Create { topic, tier }),
        1 => (0usize..6, 1u32..4).prop_map(|(agent, capacity)| Op::Capacity { agent, capacity }),
        2 => (1i64..1500).prop_map(|ms| Op::Tick { ms }),
        1 => (0usize..REVIEWERS.len(), proptest::option::of(0..TOPICS.len()), 1u32..3)
            .prop_map(|(id, topic, max)| Op::AddReviewer { id, topic, max }),
        1 => (0usize..REVIEWERS.len(), 1u32..3).prop_map(|(id, max)| Op::ChangeReviewer { id, max }),
        1 => (0usize..REVIEWERS.len()).prop_map(|id| Op::RemoveReviewer { id }),
        1 => (any::<bool>(), 0i64..4000, 0i64..4000, 0u32..12).prop_map(
            |(routing, queue_ms, review_ms, reassignments)| Op::Settings { routing, queue_ms, review_ms, reassignments }
        ),
    ]
}

/// Reviewer ids the reviewer ops pick from: two the desk starts with, and two it does not.
const REVIEWERS: [&str; 4] = ["r1", "r2", "r3", "r4"];

const ACTORS: [(&str, bool); 4] = [
    ("r1", false),
    ("r2", false),
    ("boss", true),
    ("stranger", false),
];

/// Drives a desk through `ops`, checking the invariants after every step.
fn drive(routing: RoutingStrategy, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut desk = desk(routing);
    let mut now = 1;
    let mut work: Vec<Dispatch> = Vec::new();
    let mut reviews: Vec<String> = Vec::new();
    let mut decisions: HashMap<String, u32> = HashMap::new();
    let mut next_ticket = 0;
    for op in ops {
        now += 1;
        match op {
            Op::Open { topic, priority } => {
                next_ticket += 1;
                let new = NewTicket {
                    id: format!("tkt_{next_ticket:06}"),
                    customer_id: "c".into(),
                    inquiry: "help me please".into(),
                    context: Default::default(),
                    priority,
                    topic: Topic::Given(TOPICS[topic].into()),
                    client_id: "client".into(),
                    idempotency_key: String::new(),
                    prepared: None,
                };
                desk.open_ticket(new, now).unwrap();
            }
            Op::Answer { pick, confidence } if !work.is_empty() => {
                let d = work.remove(pick % work.len());
                let answer = KbAnswer {
                    article_id: "a".into(),
                    title: "t".into(),
                    answer: "answer".into(),
                    confidence,
                };
                let expected = if assignment_open(&desk, &d.assignment_id) {
                    Expected::Ok
                } else {
                    Expected::AssignmentNotOpen
                };
                let result = desk.builtin_answered(&d.assignment_id, Some(answer), now);
                prop_assert_eq!(outcome(&result), expected, "answer to {}", d.assignment_id);
            }
            Op::Reply { pick, kind } if !work.is_empty() => {
                let d = work.remove(pick % work.len());
                let reply = match kind {
                    0 => AgentReply::Resolve {
                        response: "done".into(),
                        confidence: 1.0,
                    },
                    1 => AgentReply::Escalate {
                        reason: "hard".into(),
                        draft: "d".into(),
                        confidence: 0.1,
                    },
                    _ => AgentReply::RequestReview {
                        reason: "human".into(),
                        draft: "d".into(),
                        priority: None,
                        confidence: 0.1,
                    },
                };
                let expected = if assignment_open(&desk, &d.assignment_id) {
                    Expected::Ok
                } else {
                    Expected::AssignmentNotOpen
                };
                let result = desk.agent_replied(&d.assignment_id, reply, now);
                prop_assert_eq!(outcome(&result), expected, "reply to {}", d.assignment_id);
            }
            Op::Approve { pick, actor }
            | Op::Reject { pick, actor }
            | Op::Claim { pick, actor }
                if !reviews.is_empty() =>
            {
                let esc = reviews[pick % reviews.len()].clone();
                let (id, admin) = ACTORS[actor];
                let who = Actor {
                    client_id: id.into(),
                    admin,
                };
                let (expected, result) = match op {
                    Op::Approve { .. } => (
                        expected_decision(&desk, &esc, &who),
                        desk.approve(&esc, &who, None, String::new(), None, now),
                    ),
                    Op::Reject { .. } => (
                        expected_decision(&desk, &esc, &who),
                        desk.reject(&esc, &who, None, "no".into(), now),
                    ),
                    _ => (
                        expected_claim(&desk, &esc, &who),
                        desk.assign_escalation(&esc, &who, None, now),
                    ),
                };
                prop_assert_eq!(outcome(&result), expected, "{:?} of {} by {}", op, esc, id);
                if let (Op::Claim { .. }, Ok(e)) = (&op, &result) {
                    prop_assert_eq!(e.reviewer_id.as_deref(), Some(id), "a claim assigns");
                }
            }
            Op::Pause { agent }
            | Op::Resume { agent }
            | Op::Delete { agent }
            | Op::Capacity { agent, .. } => {
                let mut ids: Vec<String> = desk.mesh().agents().map(|a| a.id.clone()).collect();
                ids.sort();
                if let Some(id) = ids.get(agent % ids.len().max(1)).cloned() {
                    let _ = match op {
                        Op::Pause { .. } => desk
                            .update_agent(
                                &id,
                                AgentChange {
                                    availability: Some(Availability::Paused),
                                    ..Default::default()
                                },
                                now,
                            )
                            .map(|_| ()),
                        Op::Resume { .. } => desk
                            .update_agent(
                                &id,
                                AgentChange {
                                    availability: Some(Availability::Available),
                                    ..Default::default()
                                },
                                now,
                            )
                            .map(|_| ()),
                        Op::Capacity { capacity, .. } => {
                            let load = desk.mesh().agent(&id).map_or(0, |a| a.load);
                            let result = desk.update_agent(
                                &id,
                                AgentChange {
                                    capacity: Some(capacity),
                                    ..Default::default()
                                },
                                now,
                            );
                            let expected = if capacity < load {
                                Expected::FailedPrecondition
                            } else {
                                Expected::Ok
                            };
                            prop_assert_eq!(
                                outcome(&result),
                                expected,
                                "capacity {} of {}",
                                capacity,
                                id
                            );
                            result.map(|_| ())
                        }
                        _ => desk.delete_agent(&id, now).map(|_| ()),
                    };
                }
            }
            Op::Create { topic, tier } => {
                let name = format!("new{now}");
                let _ = desk.create_agent(
                    agent(&name, ["L1", "L2", "Expert"][tier], &[TOPICS[topic]], 1),
                    now,
                );
            }
            Op::Tick { ms } => {
                now += ms;
                desk.fire_timers(now);
            }
            Op::AddReviewer { id, topic, max } => {
                let id = REVIEWERS[id];
                let expected = if desk.reviews().reviewer(id).is_some() {
                    Expected::AlreadyExists
                } else {
                    Expected::Ok
                };
                let topics: Vec<&str> = topic.map(|t| TOPICS[t]).into_iter().collect();
                let result = desk.create_reviewer(reviewer(id, &topics, max), now);
                prop_assert_eq!(outcome(&result), expected, "create reviewer {}", id);
            }
            Op::ChangeReviewer { id, max } => {
                let id = REVIEWERS[id];
                let expected = match desk.reviews().reviewer(id) {
                    None => Expected::NotFound,
                    Some(r) if max < r.load => Expected::FailedPrecondition,
                    Some(_) => Expected::Ok,
                };
                let change = ReviewerChange {
                    max_concurrent: Some(max),
                    ..Default::default()
                };
                let result = desk.update_reviewer(id, change, now);
                prop_assert_eq!(
                    outcome(&result),
                    expected,
                    "max_concurrent {} of {}",
                    max,
                    id
                );
            }
            Op::RemoveReviewer { id } => {
                let id = REVIEWERS[id];
                let expected = if desk.reviews().reviewer(id).is_some() {
                    Expected::Ok
                } else {
                    Expected::NotFound
                };
                let result = desk.delete_reviewer(id, now);
                prop_assert_eq!(outcome(&result), expected, "delete reviewer {}", id);
            }
            Op::Settings {
                routing,
                queue_ms,
                review_ms,
                reassignments,
            } => {
                let change = SettingsChange {
                    routing: Some(if routing {
                        RoutingStrategy::RoundRobin
                    } else {
                        RoutingStrategy::LeastLoaded
                    }),
                    queue_timeout_ms: Some(queue_ms),
                    escalation_timeout_ms: Some(review_ms),
                    max_review_reassignments: Some(reassignments),
                    assignment_timeout_ms: None,
                };
                let before = desk.settings().clone();
                let valid = queue_ms >= 1000 && review_ms >= 1000 && reassignments <= 10;
                let result = desk.change_settings(&change);
                let expected = if valid {
                    Expected::Ok
                } else {
                    Expected::Invalid
                };
                prop_assert_eq!(outcome(&result), expected, "{:?}", change);
                if !valid {
                    prop_assert_eq!(desk.settings(), &before, "a refused change changes nothing");
                }
            }
            _ => {}
        }
        let out = desk.take_output();
        work.extend(out.dispatches);
        for event in &out.events {
            match &event.body {
                EventBody::Escalation {
                    kind: EscalationEventKind::Created,
                    escalation,
                    ..
                } => reviews.push(escalation.id.clone()),
                EventBody::Escalation {
                    kind:
                        EscalationEventKind::Approved
                        | EscalationEventKind::Rejected
                        | EscalationEventKind::Expired,
                    escalation,
                    ..
                } => {
                    *decisions.entry(escalation.id.clone()).or_default() += 1;
                }
                _ => {}
            }
        }
        let seqs: Vec<u64> = out.events.iter().map(|e| e.seq).collect();
        prop_assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "event sequences are consecutive"
        );
        if let Err(broken) = desk.check_invariants() {
            return Err(TestCaseError::fail(broken));
        }
        prop_assert!(
            decisions.values().all(|&n| n == 1),
            "a review is decided at most once"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn invariants_hold_least_loaded(ops in proptest::collection::vec(op(), 1..120)) {
        drive(RoutingStrategy::LeastLoaded, ops)?;
    }

    #[test]
    fn invariants_hold_round_robin(ops in proptest::collection::vec(op(), 1..120)) {
        drive(RoutingStrategy::RoundRobin, ops)?;
    }

    /// With one agent of capacity 1, queued tickets are served by priority, then age.
    #[test]
    fn queue_order_is_priority_then_age(priorities in proptest::collection::vec(1u8..=10, 1..30)) {
        let settings = Settings { queue_timeout_ms: i64::MAX / 4, ..Settings::default() };
        let tiers = vec![Tier { name: "Only".into(), threshold: 0.5, default_capacity: 1, instructions: String::new() }];
        let mut desk = Desk::new(settings, Mesh::new(tiers).unwrap(), Policy::default_rules());
        desk.create_agent(agent("solo", "Only", &[], 1), 0).unwrap();
        let mut opened = Vec::new();
        for (i, p) in std::iter::once(5).chain(priorities.iter().copied()).enumerate() {
            let id = format!("tkt_{i:04}");
            desk.open_ticket(NewTicket { id: id.clone(), customer_id: "c".into(), inquiry: "x".into(), context: Default::default(), priority: p, topic: Topic::Given("general".into()), client_id: "c".into(), idempotency_key: String::new(), prepared: None, }, i as i64 + 1).unwrap();
            opened.push((p, i, id));
        }
        let mut expected: Vec<_> = opened[1..].to_vec();
        expected.sort_by_key(|(p, i, _)| (std::cmp::Reverse(*p), *i));
        let mut served = Vec::new();
        let mut pending: Vec<Dispatch> = desk.take_output().dispatches;
        let mut now = 1000;
        while let Some(d) = pending.pop() {
            now += 1;
            if d.ticket_id != "tkt_0000" {
                served.push(d.ticket_id.clone());
            }
            desk.agent_replied(&d.assignment_id, AgentReply::Resolve { response: "ok".into(), confidence: 1.0 }, now).unwrap();
            pending.extend(desk.take_output().dispatches);
        }
        let expected: Vec<String> = expected.into_iter().map(|(_, _, id)| id).collect();
        prop_assert_eq!(served, expected);
    }

    /// Unassigned reviews go to a freed reviewer by priority, then age.
    #[test]
    fn review_queue_order_is_priority_then_age(priorities in proptest::collection::vec(1u8..=10, 1..20)) {
        let mut desk = desk(RoutingStrategy::LeastLoaded);
        desk.delete_reviewer("r2", 0).unwrap();
        desk.update_reviewer("r1", super::desk::ReviewerChange { specialties: Some(BTreeSet::new()), ..Default::default() }, 0).unwrap();
        let mut now = 10;
        let mut order = Vec::new();
        for (i, p) in priorities.iter().enumerate() {
            now += 1;
            let id = format!("tkt_{i:04}");
            desk.open_ticket(NewTicket { id: id.clone(), customer_id: "c".into(), inquiry: "I want a refund".into(), context: Default::default(), priority: *p, topic: Topic::Given("billing".into()), client_id: "c".into(), idempotency_key: String::new(), prepared: None, }, now).unwrap();
            for d in desk.take_output().dispatches {
                desk.builtin_answered(&d.assignment_id, None, now).unwrap();
            }
            order.push((super::policy::ReviewPriority::from_ticket_priority(*p), now, format!("esc_{i:04}")));
        }
        desk.take_output();
        // r1 holds the first; the rest wait. Deciding each hands out the next.
        let boss = Actor { client_id: "r1".into(), admin: false };
        let mut decided = Vec::new();
        loop {
            let held = desk.reviews().pending_all().find(|e| e.reviewer_id.as_deref() == Some("r1")).map(|e| e.id.clone());
            let Some(current) = held else { break };
            now += 1;
            decided.push(current.clone());
            desk.approve(&current, &boss, None, String::new(), None, now).unwrap();
        }
        let first = order.remove(0).2;
        order.sort_by_key(|(p, t, _)| (std::cmp::Reverse(*p), *t));
        let mut expected = vec![first];
        expected.extend(order.into_iter().map(|(_, _, id)| id));
        prop_assert_eq!(decided, expected);
    }
}

#[test]
fn load_never_goes_negative_when_the_top_tier_escalates() {
    // The Python original drove load negative here: escalate from the top, then resolve.
    let mut desk = desk(RoutingStrategy::LeastLoaded);
    desk.open_ticket(
        NewTicket {
            id: "tkt_1".into(),
            customer_id: "c".into(),
            inquiry: "x".into(),
            context: Default::default(),
            priority: 5,
            topic: Topic::Given("legal".into()),
            client_id: "c".into(),
            idempotency_key: String::new(),
            prepared: None,
        },
        1,
    )
    .unwrap();
    let d = desk.take_output().dispatches.pop().unwrap();
    desk.agent_replied(
        &d.assignment_id,
        AgentReply::Escalate {
            reason: "no".into(),
            draft: String::new(),
            confidence: 0.0,
        },
        2,
    )
    .unwrap();
    assert!(desk
        .agent_replied(
            &d.assignment_id,
            AgentReply::Resolve {
                response: "x".into(),
                confidence: 1.0
            },
            3
        )
        .is_err());
    desk.check_invariants().unwrap();
    assert!(desk.mesh().agents().all(|a| a.load == 0));
}

#[test]
fn six_concurrent_tickets_never_overfill_a_capacity_two_agent() {
    let tiers = vec![Tier {
        name: "Only".into(),
        threshold: 0.5,
        default_capacity: 2,
        instructions: String::new(),
    }];
    let mut desk = Desk::new(
        Settings::default(),
        Mesh::new(tiers).unwrap(),
        Policy::default_rules(),
    );
    desk.create_agent(agent("solo", "Only", &[], 2), 0).unwrap();
    for i in 0..6 {
        desk.open_ticket(
            NewTicket {
                id: format!("tkt_{i}"),
                customer_id: "c".into(),
                inquiry: "x".into(),
                context: Default::default(),
                priority: 5,
                topic: classified("x"),
                client_id: "c".into(),
                idempotency_key: String::new(),
                prepared: None,
            },
            1,
        )
        .unwrap();
    }
    assert_eq!(desk.mesh().agents().next().unwrap().load, 2);
    assert_eq!(desk.queued_tickets(), 4);
    desk.check_invariants().unwrap();
}

#[test]
fn rejection_frees_the_reviewer_slot() {
    let mut desk = desk(RoutingStrategy::LeastLoaded);
    desk.open_ticket(
        NewTicket {
            id: "tkt_1".into(),
            customer_id: "c".into(),
            inquiry: "I need a refund".into(),
            context: Default::default(),
            priority: 8,
            topic: classified("I need a refund"),
            client_id: "c".into(),
            idempotency_key: String::new(),
            prepared: None,
        },
        1,
    )
    .unwrap();
    let d = desk.take_output().dispatches.pop().unwrap();
    desk.builtin_answered(&d.assignment_id, None, 2).unwrap();
    let out = desk.take_output();
    assert!(out.events.iter().any(|e| matches!(
        &e.body,
        EventBody::Ticket {
            kind: TicketEventKind::ReviewRequested,
            ..
        }
    )));
    assert_eq!(desk.reviews().reviewer("r1").unwrap().load, 1);
    let r1 = Actor {
        client_id: "r1".into(),
        admin: false,
    };
    desk.reject(&format!("esc_{}", "1"), &r1, None, "policy".into(), 3)
        .unwrap();
    assert_eq!(desk.reviews().reviewer("r1").unwrap().load, 0);
}

#[test]
fn a_changed_queue_timeout_moves_the_deadlines_of_waiting_tickets() {
    let mut desk = desk(RoutingStrategy::LeastLoaded);
    for name in ["a1", "a2", "a3", "a4"] {
        let id = desk.mesh().agent_by_name(name).unwrap().id.clone();
        let pause = AgentChange {
            availability: Some(Availability::Paused),
            ..Default::default()
        };
        desk.update_agent(&id, pause, 0).unwrap();
    }
    let new = |id: &str| NewTicket {
        id: id.into(),
        customer_id: "c".into(),
        inquiry: "x".into(),
        context: Default::default(),
        priority: 5,
        topic: Topic::Given("billing".into()),
        client_id: "c".into(),
        idempotency_key: String::new(),
        prepared: None,
    };
    desk.open_ticket(new("tkt_1"), 100).unwrap();
    assert_eq!(desk.next_deadline(), Some(100 + 2_000));
    // Longer: the old deadline no longer fires.
    desk.set_settings(Settings {
        queue_timeout_ms: 10_000,
        ..desk.settings().clone()
    });
    assert_eq!(desk.next_deadline(), Some(100 + 10_000));
    desk.fire_timers(5_000);
    assert_eq!(desk.queued_tickets(), 1);
    // Shorter: it fires at once when already overdue.
    desk.set_settings(Settings {
        queue_timeout_ms: 1_000,
        ..desk.settings().clone()
    });
    desk.fire_timers(5_000);
    assert_eq!(desk.queued_tickets(), 0);
    assert_eq!(
        desk.ticket("tkt_1").unwrap().status,
        super::ticket::TicketStatus::AwaitingReview
    );
    desk.check_invariants().unwrap();
}

#[test]
fn the_decision_counts_for_the_reviewer_who_made_it() {
    let mut desk = desk(RoutingStrategy::LeastLoaded);
    desk.open_ticket(
        NewTicket {
            id: "tkt_1".into(),
            customer_id: "c".into(),
            inquiry: "I need a refund".into(),
            context: Default::default(),
            priority: 8,
            topic: classified("I need a refund"),
            client_id: "c".into(),
            idempotency_key: String::new(),
            prepared: None,
        },
        1,
    )
    .unwrap();
    let d = desk.take_output().dispatches.pop().unwrap();
    desk.builtin_answered(&d.assignment_id, None, 2).unwrap();
    assert_eq!(
        desk.reviews()
            .pending("esc_1")
            .unwrap()
            .reviewer_id
            .as_deref(),
        Some("r1")
    );
    // An admin decides in r2's name a review assigned to r1: r2 made the decision.
    let admin = Actor {
        client_id: "ops".into(),
        admin: true,
    };
    desk.approve("esc_1", &admin, Some("r2"), String::new(), None, 3)
        .unwrap();
    assert_eq!(desk.reviews().reviewer("r1").unwrap().decided, 0);
    assert_eq!(desk.reviews().reviewer("r2").unwrap().decided, 1);
    assert_eq!(desk.reviews().reviewer("r1").unwrap().load, 0);
    desk.check_invariants().unwrap();
}

/// The topic the default classifier gives an inquiry, as the runtime settles it.
fn classified(inquiry: &str) -> Topic {
    Classifier::default_rules().topic(inquiry, None)
}
