//! The contract every [`Store`] implementation must meet, written once and run against each
//! backend: SQLite, and PostgreSQL when a server is reachable (see
//! [`postgres::scratch::ScratchSchema`]; each test works in a schema of its own).

use std::collections::BTreeSet;

use super::postgres::scratch::ScratchSchema;
use super::postgres::PostgresStore;
use super::*;
use crate::domain::desk::{Settings, Stats};
use crate::domain::event::{EscalationEventKind, EventBody, TicketEventKind};
use crate::domain::mesh::{AgentKind, Availability, RoutingStrategy};
use crate::domain::policy::ReviewPriority;

fn ticket(id: &str, customer: &str, created_ms: i64, status: TicketStatus) -> Ticket {
    Ticket {
        id: id.into(),
        customer_id: customer.into(),
        inquiry: format!("inquiry of {id}"),
        topic: "billing".into(),
        status,
        created_ms,
        updated_ms: created_ms,
        resolved_ms: status.is_final().then_some(created_ms + 10),
        client_id: "client".into(),
        ..crate::domain::fixtures::ticket()
    }
}

fn escalation(
    id: &str,
    priority: ReviewPriority,
    created_ms: i64,
    state: EscalationState,
) -> Escalation {
    Escalation {
        id: id.into(),
        ticket_id: format!("tkt_{id}"),
        customer_id: "c".into(),
        title: "t".into(),
        description: "d".into(),
        topic: "billing".into(),
        priority,
        state,
        reviewer_id: Some("r1".into()),
        requested_by: "a".into(),
        proposed_response: String::new(),
        created_ms,
        expire_ms: created_ms + 1000,
        decided_ms: (state != EscalationState::Pending).then_some(created_ms + 500),
        decided_by: String::new(),
        resolution: String::new(),
        comments: String::new(),
        reassign_count: 0,
    }
}

fn ticket_event(seq: u64, t: &Ticket) -> Event {
    Event {
        seq,
        time_ms: t.updated_ms,
        body: EventBody::Ticket {
            kind: TicketEventKind::Created,
            detail: String::new(),
            ticket: t.clone(),
        },
    }
}

fn escalation_event(seq: u64, e: &Escalation) -> Event {
    Event {
        seq,
        time_ms: e.created_ms,
        body: EventBody::Escalation {
            kind: EscalationEventKind::Created,
            escalation: e.clone(),
            previous_reviewer: None,
        },
    }
}

/// Runs the whole contract against a fresh, empty store.
fn contract(store: &dyn Store) {
    let empty = store.load().unwrap();
    assert!(!empty.seeded);
    assert_eq!(empty.last_seq, 0);

    // Tickets: the last snapshot in a batch wins; open ones come back on load.
    let mut open = ticket("tkt_b", "alice", 2, TicketStatus::Queued);
    let done = ticket("tkt_a", "alice", 1, TicketStatus::Resolved);
    let mut other = ticket("tkt_c", "bob", 3, TicketStatus::Resolved);
    other.client_id = "other-app".into();
    let first = ticket_event(1, &open);
    open.status = TicketStatus::Assigned;
    open.idempotency_key = "key-1".into();
    let batch = CommitBatch {
        events: vec![
            first,
            ticket_event(2, &open),
            ticket_event(3, &done),
            ticket_event(4, &other),
        ],
        mark_seeded: true,
        ..CommitBatch::default()
    };
    store.commit(&batch).unwrap();
    assert_eq!(store.head_seq().unwrap(), 4);
    assert_eq!(
        store.get_ticket("tkt_b").unwrap().unwrap().status,
        TicketStatus::Assigned
    );
    assert!(store.get_ticket("tkt_zz").unwrap().is_none());
    assert_eq!(
        store.find_idempotent("client", "key-1").unwrap().as_deref(),
        Some("tkt_b")
    );
    assert_eq!(store.find_idempotent("other", "key-1").unwrap(), None);

    // Lists: newest first, filters, keyset pages, the sequence they were read at.
    let all = TicketFilter::default();
    let page = store.list_tickets(&all, 2, None).unwrap();
    let ids: Vec<_> = page.items.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["tkt_c", "tkt_b"]);
    assert_eq!(page.seq, 4);
    let rest = store.list_tickets(&all, 2, page.next.as_ref()).unwrap();
    assert_eq!(rest.items.len(), 1);
    assert!(rest.next.is_none());
    let alice = TicketFilter {
        customer_id: Some("alice".into()),
        status: Some(TicketStatus::Resolved),
        client_id: None,
    };
    let page = store.list_tickets(&alice, 10, None).unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(store.count_customer_tickets("alice", None).unwrap(), 2);

    // A client sees only the tickets created through it.
    let through = |client: &str| TicketFilter {
        client_id: Some(client.into()),
        ..TicketFilter::default()
    };
    let ids = |filter: &TicketFilter| -> Vec<String> {
        let page = store.list_tickets(filter, 10, None).unwrap();
        page.items.into_iter().map(|t| t.id).collect()
    };
    assert_eq!(ids(&through("client")), ["tkt_b", "tkt_a"]);
    assert_eq!(ids(&through("other-app")), ["tkt_c"]);
    assert!(ids(&through("nobody")).is_empty());
    assert_eq!(
        store.count_customer_tickets("bob", Some("client")).unwrap(),
        0
    );
    assert_eq!(
        store
            .count_customer_tickets("bob", Some("other-app"))
            .unwrap(),
        1
    );

    // Events: in order, per ticket, paged.
    let events = store.events_after(1, 2).unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
    let mine = store.ticket_events_after("tkt_b", 0, 10).unwrap();
    assert_eq!(mine.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);

    // Escalations: priority first, then oldest.
    let e1 = escalation("esc_1", ReviewPriority::High, 10, EscalationState::Pending);
    let e2 = escalation(
        "esc_2",
        ReviewPriority::Urgent,
        20,
        EscalationState::Pending,
    );
    let e3 = escalation("esc_3", ReviewPriority::High, 5, EscalationState::Pending);
    let e4 = escalation("esc_4", ReviewPriority::Low, 1, EscalationState::Approved);
    store
        .commit(&CommitBatch {
            events: vec![
                escalation_event(5, &e1),
                escalation_event(6, &e2),
                escalation_event(7, &e3),
                escalation_event(8, &e4),
            ],
            ..CommitBatch::default()
        })
        .unwrap();
    let pending = EscalationFilter {
        state: EscalationState::Pending,
        reviewer_id: None,
    };
    let page = store.list_escalations(&pending, 2, None).unwrap();
    let ids: Vec<_> = page.items.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["esc_2", "esc_3"]);
    let rest = store
        .list_escalations(&pending, 2, page.next.as_ref())
        .unwrap();
    assert_eq!(
        rest.items.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["esc_1"]
    );
    let mine = EscalationFilter {
        state: EscalationState::Pending,
        reviewer_id: Some("nobody".into()),
    };
    assert!(store
        .list_escalations(&mine, 10, None)
        .unwrap()
        .items
        .is_empty());
    assert_eq!(
        store.get_escalation("esc_4").unwrap().unwrap().state,
        EscalationState::Approved
    );

    // Agents, reviewers, keys and settings.
    let agent = Agent {
        id: "agt_000001".into(),
        name: "A".into(),
        tier: "L1".into(),
        specialties: BTreeSet::from(["billing".to_string()]),
        capacity: 3,
        load: 0,
        availability: Availability::Available,
        kind: AgentKind::Builtin,
        handled: 7,
        attached_by: None,
        owner: Some("agent-host".into()),
    };
    let reviewer = Reviewer {
        id: "r1".into(),
        name: "R".into(),
        specialties: BTreeSet::new(),
        max_concurrent: 2,
        load: 0,
        decided: 1,
        order: 1,
    };
    let key = KeyRecord {
        key_id: "0123456789ab".into(),
        client_id: "c".into(),
        client_name: "C".into(),
        permissions: vec!["admin".into()],
        secret_sha256: [7; 32],
        created_ms: 1,
        last_used_ms: None,
        revoked: false,
    };
    let settings = Settings {
        routing: RoutingStrategy::RoundRobin,
        ..Settings::default()
    };
    let totals = Stats {
        handled: 2,
        approved: 1,
        decide_ms_total: 500,
        ..Stats::default()
    };
    store
        .commit(&CommitBatch {
            agents: vec![agent.clone()],
            reviewers: vec![reviewer.clone()],
            keys: vec![
                KeyChange::Created(key.clone()),
                KeyChange::Used {
                    key_id: key.key_id.clone(),
                    time_ms: 99,
                },
            ],
            settings: Some((settings.clone(), "admin".into())),
            stats: Some(totals.clone()),
            ..CommitBatch::default()
        })
        .unwrap();
    let loaded = store.load().unwrap();
    assert!(loaded.seeded);
    assert_eq!(loaded.last_seq, 8);
    assert_eq!(loaded.agents, vec![agent.clone()]);
    assert_eq!(loaded.reviewers, vec![reviewer]);
    assert_eq!(loaded.keys.len(), 1);
    assert_eq!(loaded.keys[0].last_used_ms, Some(99));
    assert_eq!(loaded.settings, Some(settings));
    assert_eq!(
        loaded
            .open_tickets
            .iter()
            .map(|t| t.id.as_str())
            .collect::<Vec<_>>(),
        ["tkt_b"]
    );
    assert_eq!(loaded.pending_escalations.len(), 3);
    assert_eq!(loaded.stats, totals);

    store
        .commit(&CommitBatch {
            deleted_agents: vec![agent.id],
            deleted_reviewers: vec!["r1".into()],
            keys: vec![KeyChange::Revoked { key_id: key.key_id }],
            ..CommitBatch::default()
        })
        .unwrap();
    let loaded = store.load().unwrap();
    assert!(loaded.agents.is_empty() && loaded.reviewers.is_empty());
    assert!(loaded.keys[0].revoked);
    assert_eq!(
        loaded.stats, totals,
        "a commit without totals keeps the last ones"
    );

    compaction(store);
}

/// Retention drops a contiguous prefix of the log and never its newest event.
fn compaction(store: &dyn Store) {
    let head = store.head_seq().unwrap();
    assert_eq!(
        store.retained().unwrap(),
        Retained {
            oldest_seq: 1,
            compacted_before_ms: None
        }
    );
    // Three more events at times 1_000, 2_000 and 3_000.
    let events: Vec<Event> = (1..=3)
        .map(|i| {
            let mut t = ticket(&format!("tkt_r{i}"), "c", 1, TicketStatus::Queued);
            t.updated_ms = i * 1_000;
            ticket_event(head + i as u64, &t)
        })
        .collect();
    store
        .commit(&CommitBatch {
            events,
            ..CommitBatch::default()
        })
        .unwrap();
    // Everything before 2_000 goes: the earlier events and the first of the three.
    store
        .commit(&CommitBatch {
            compact_before_ms: Some(2_000),
            ..CommitBatch::default()
        })
        .unwrap();
    let retained = store.retained().unwrap();
    assert_eq!(retained.oldest_seq, head + 2);
    assert_eq!(retained.compacted_before_ms, Some(2_000));
    let rest: Vec<u64> = store
        .events_after(0, 100)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(rest, [head + 2, head + 3]);
    // Even when every event is older, the newest stays: it carries the head sequence.
    store
        .commit(&CommitBatch {
            compact_before_ms: Some(i64::MAX),
            ..CommitBatch::default()
        })
        .unwrap();
    assert_eq!(store.head_seq().unwrap(), head + 3);
    assert_eq!(store.retained().unwrap().oldest_seq, head + 3);
    assert_eq!(store.load().unwrap().last_seq, head + 3);

    // A backlog larger than one commit compacts is reported until it is gone.
    let head = head + 3;
    let many: Vec<Event> = (1..=12_000u64)
        .map(|i| {
            let mut t = ticket("tkt_many", "c", 1, TicketStatus::Queued);
            t.updated_ms = 5_000;
            ticket_event(head + i, &t)
        })
        .collect();
    store
        .commit(&CommitBatch {
            events: many,
            ..CommitBatch::default()
        })
        .unwrap();
    let mut commits = 0;
    loop {
        commits += 1;
        let report = store
            .commit(&CommitBatch {
                compact_before_ms: Some(i64::MAX),
                ..CommitBatch::default()
            })
            .unwrap();
        if !report.compaction_backlog {
            break;
        }
        assert!(commits < 100, "compaction never catches up");
    }
    assert!(
        commits > 1,
        "one commit does not compact 12,000 events at once"
    );
    assert_eq!(store.retained().unwrap().oldest_seq, head + 12_000);
}

#[test]
fn sqlite_meets_the_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), Durability::Full).unwrap();
    contract(&store);
}

#[test]
fn sqlite_keeps_everything_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
        let t = ticket("tkt_x", "c", 1, TicketStatus::Queued);
        store
            .commit(&CommitBatch {
                events: vec![ticket_event(1, &t)],
                ..CommitBatch::default()
            })
            .unwrap();
    }
    let store = SqliteStore::open(dir.path(), Durability::Full).unwrap();
    let loaded = store.load().unwrap();
    assert_eq!(loaded.last_seq, 1);
    assert_eq!(loaded.open_tickets.len(), 1);
}

#[test]
fn postgres_meets_the_store_contract() {
    let Some(schema) = ScratchSchema::new("postgres_meets_the_store_contract") else {
        return;
    };
    let store = schema.connect();
    contract(&store);
    store.check(CheckDepth::Full).unwrap();
}

#[test]
fn postgres_keeps_everything_across_reopen() {
    let Some(schema) = ScratchSchema::new("postgres_keeps_everything_across_reopen") else {
        return;
    };
    let t = ticket("tkt_x", "c", 1, TicketStatus::Queued);
    let committed = ticket_event(1, &t);
    {
        let store = schema.connect();
        store
            .commit(&CommitBatch {
                events: vec![committed.clone()],
                mark_seeded: true,
                stats: Some(Stats {
                    handled: 3,
                    ..Stats::default()
                }),
                ..CommitBatch::default()
            })
            .unwrap();
    }
    let store = schema.connect();
    let loaded = store.load().unwrap();
    assert!(loaded.seeded);
    assert_eq!(loaded.last_seq, 1);
    assert_eq!(loaded.open_tickets, vec![t]);
    assert_eq!(loaded.stats.handled, 3);
    assert_eq!(store.events_after(0, 10).unwrap(), vec![committed]);
    store.check(CheckDepth::Start).unwrap();
}

#[test]
fn postgres_takes_a_batch_it_committed_before_a_lost_answer_as_committed() {
    let Some(schema) = ScratchSchema::new("postgres_lost_commit_answer") else {
        return;
    };
    let store = schema.connect();
    let t = ticket("tkt_lost", "c", 1, TicketStatus::Queued);
    let batch = CommitBatch {
        events: vec![ticket_event(1, &t)],
        ..CommitBatch::default()
    };
    store.commit(&batch).unwrap();
    // Committed again for no reason: a duplicate, refused.
    assert!(store.commit(&batch).is_err());
    // Committed again after a failure that may have been a lost answer: already there.
    store.doubt_the_last_commit();
    store.commit(&batch).unwrap();
    assert_eq!(store.head_seq().unwrap(), 1);
    assert_eq!(store.events_after(0, 10).unwrap(), batch.events);
    // A batch that is not there is written as usual after a doubt.
    store.doubt_the_last_commit();
    let next = CommitBatch {
        events: vec![ticket_event(2, &t)],
        ..CommitBatch::default()
    };
    store.commit(&next).unwrap();
    assert_eq!(store.head_seq().unwrap(), 2);
}

#[test]
fn postgres_lets_one_server_lead_and_fences_the_one_it_replaced() {
    use crate::store::SharedStore;
    let Some(schema) = ScratchSchema::new("postgres_lease_fences") else {
        return;
    };
    // Two servers starting on one desk at once: both open it, each migration is applied once.
    let opened: Vec<PostgresStore> = std::thread::scope(|scope| {
        let connecting: Vec<_> = (0..2).map(|_| scope.spawn(|| schema.connect())).collect();
        connecting.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let [first, second]: [PostgresStore; 2] = opened.try_into().ok().unwrap();
    let ttl = std::time::Duration::from_millis(300);
    let epoch = first.try_lead("first", "http://127.0.0.1:1", ttl).unwrap();
    assert_eq!(epoch, Some(1));
    assert_eq!(
        second
            .try_lead("second", "http://127.0.0.1:2", ttl)
            .unwrap(),
        None
    );
    let lease = second.lease().unwrap().unwrap();
    assert_eq!(
        (lease.holder.as_str(), lease.address.as_str()),
        ("first", "http://127.0.0.1:1")
    );
    assert!(lease.expires_in_ms > 0, "{lease:?}");
    first.commit(&batch_at(1)).unwrap();
    assert!(first.renew(1, ttl).unwrap());

    // The first stops renewing; once its lease expired, the second takes it, and from then on
    // every commit of the first fails as deposed, whatever it believes.
    std::thread::sleep(ttl * 2);
    assert_eq!(
        second
            .try_lead("second", "http://127.0.0.1:2", ttl)
            .unwrap(),
        Some(2)
    );
    match first.commit(&batch_at(2)) {
        Err(StoreError::Deposed(why)) => assert!(why.contains("no longer leads"), "{why}"),
        other => panic!("a deposed leader's commit was not refused: {other:?}"),
    }
    assert!(!first.renew(1, ttl).unwrap(), "a deposed leader renewed");
    assert_eq!(
        second.head_seq().unwrap(),
        1,
        "the deposed commit left nothing"
    );
    second.commit(&batch_at(2)).unwrap();
    assert_eq!(first.head_seq().unwrap(), 2);

    // A leader stopping lets the lease go at once.
    second.release(2).unwrap();
    assert_eq!(
        first.try_lead("first", "http://127.0.0.1:1", ttl).unwrap(),
        Some(3)
    );

    let mut client = schema.client();
    let applied: i64 = client
        .query_one(
            &format!(
                "SELECT COUNT(*) FROM \"{}\".schema_migrations",
                schema.name()
            ),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(applied, 2, "each migration is applied once");
}

/// A commit of one event with sequence `seq`.
fn batch_at(seq: u64) -> CommitBatch {
    let t = ticket(
        &format!("tkt_{seq}"),
        "cust",
        1_000 + seq as i64,
        TicketStatus::Queued,
    );
    CommitBatch {
        events: vec![ticket_event(seq, &t)],
        ..CommitBatch::default()
    }
}

/// One change in a generated commit: the new state of ticket `n` or escalation `n`.
#[derive(Clone, Debug)]
enum Step {
    Ticket(usize, Ticket),
    Escalation(usize, Escalation),
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use crate::store::tests_support::{any_escalation, any_ticket};
    use proptest::prelude::*;
    prop_oneof![
        3 => (0usize..4, any_ticket()).prop_map(|(n, t)| Step::Ticket(n, t)),
        1 => (0usize..3, any_escalation()).prop_map(|(n, e)| Step::Escalation(n, e)),
    ]
}

/// Commits `commits` (events of one commit at different times, so retention can cut a commit
/// in two), then checks that the log reads back exactly as committed: whole, from every
/// point, in pages, per ticket, and after compaction at `cut`.
fn replays_what_was_committed(
    store: &dyn Store,
    commits: Vec<Vec<Step>>,
    cut: usize,
) -> Result<(), proptest::test_runner::TestCaseError> {
    use proptest::prelude::*;
    let mut all: Vec<Event> = Vec::new();
    let mut tickets = BTreeSet::new();
    for (c, steps) in commits.into_iter().enumerate() {
        let mut events = Vec::new();
        for step in steps {
            let seq = all.len() as u64 + events.len() as u64 + 1;
            let time_ms = (c * 100 + events.len()) as i64;
            let body = match step {
                Step::Ticket(n, mut ticket) => {
                    ticket.id = format!("tkt_{n}");
                    // Keys are unique per client: one ticket's key is its own.
                    if !ticket.idempotency_key.is_empty() {
                        ticket.idempotency_key = format!("key-{n}");
                    }
                    tickets.insert(ticket.id.clone());
                    EventBody::Ticket {
                        kind: TicketEventKind::AgentReplied,
                        detail: format!("step {seq}"),
                        ticket,
                    }
                }
                // An escalation is of a ticket the desk already has.
                Step::Escalation(n, mut escalation) => {
                    let Some(ticket_id) = tickets.iter().nth(n % tickets.len().max(1)) else {
                        continue;
                    };
                    escalation.id = format!("esc_{n}");
                    escalation.ticket_id = ticket_id.clone();
                    EventBody::Escalation {
                        kind: EscalationEventKind::Assigned,
                        escalation,
                        previous_reviewer: seq.is_multiple_of(2).then(|| "r0".to_string()),
                    }
                }
            };
            events.push(Event { seq, time_ms, body });
        }
        store
            .commit(&CommitBatch {
                events: events.clone(),
                ..CommitBatch::default()
            })
            .unwrap();
        all.extend(events);
    }
    let n = all.len();
    prop_assert_eq!(store.head_seq().unwrap(), n as u64);
    prop_assert_eq!(&store.events_after(0, n + 1).unwrap(), &all);
    for after in 0..n {
        let page = store.events_after(after as u64, 3).unwrap();
        prop_assert_eq!(&page[..], &all[after..(after + 3).min(n)]);
    }
    for id in &tickets {
        let mine: Vec<Event> = all
            .iter()
            .filter(|e| e.ticket_id() == Some(id.as_str()))
            .cloned()
            .collect();
        prop_assert_eq!(&store.ticket_events_after(id, 0, n + 1).unwrap(), &mine);
        if let Some(middle) = mine.get(mine.len() / 2) {
            let rest: Vec<Event> = mine
                .iter()
                .filter(|e| e.seq > middle.seq)
                .cloned()
                .collect();
            prop_assert_eq!(
                &store.ticket_events_after(id, middle.seq, n + 1).unwrap(),
                &rest
            );
        }
    }
    if n > 0 {
        let cutoff = all[cut % n].time_ms;
        store
            .commit(&CommitBatch {
                compact_before_ms: Some(cutoff),
                ..CommitBatch::default()
            })
            .unwrap();
        let oldest = store.retained().unwrap().oldest_seq;
        prop_assert!(all[oldest as usize - 1].time_ms >= cutoff || oldest == n as u64);
        prop_assert_eq!(
            &store.events_after(oldest - 1, n + 1).unwrap(),
            &all[oldest as usize - 1..]
        );
    }
    Ok(())
}

/// The commits `replays_what_was_committed` generates.
fn commits() -> impl proptest::strategy::Strategy<Value = (Vec<Vec<Step>>, usize)> {
    (
        proptest::collection::vec(proptest::collection::vec(step(), 0..12), 1..6),
        0usize..80,
    )
}

/// The replay property on PostgreSQL, as many cases as on SQLite, each in a fresh schema
/// (created, migrated and dropped: a few milliseconds on a local server). Written with a
/// runner rather than `proptest!`, so that a missing server skips it once, not per case.
#[test]
fn postgres_replays_every_event_as_committed() {
    use proptest::test_runner::{Config, TestRunner};
    let Some(first) = ScratchSchema::new("postgres_replays_every_event_as_committed") else {
        return;
    };
    drop(first);
    let mut runner = TestRunner::new(Config::with_cases(64));
    runner
        .run(&commits(), |(commits, cut)| {
            let schema = ScratchSchema::new("postgres_replays_every_event_as_committed")
                .expect("the server answered before");
            let store = schema.connect();
            replays_what_was_committed(&store, commits, cut)
        })
        .unwrap();
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    #[test]
    fn sqlite_replays_every_event_as_committed(
        commits in proptest::collection::vec(proptest::collection::vec(step(), 0..12), 1..6),
        cut in 0usize..80,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
        replays_what_was_committed(&store, commits, cut)?;
    }
}
