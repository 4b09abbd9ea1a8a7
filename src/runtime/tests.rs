//! Examples of what the property test leaves loose: the memory of idempotency keys whose
//! ticket is not committed yet, and the cutoff retention compacts at.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::inquiry::Admission;
use super::{Runtime, RuntimeOptions};
use crate::clock::ManualClock;
use crate::domain::classify::{Classifier, Topic};
use crate::domain::desk::{Desk, NewTicket, Settings};
use crate::domain::fixtures::{reviewer, tiers};
use crate::domain::knowledge::KnowledgeBase;
use crate::domain::mesh::Mesh;
use crate::domain::policy::Policy;
use crate::domain::triage::Triage;
use crate::keys::KeyRing;
use crate::store::{Durability, SqliteStore, Store};

/// A runtime over an empty desk (no agents: every ticket waits in the queue) and its store.
fn start(dir: &std::path::Path, options: RuntimeOptions) -> (Runtime, Arc<dyn Store>) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir, Durability::Normal).unwrap());
    let desk = Desk::new(
        Settings::default(),
        Mesh::new(tiers()).unwrap(),
        Policy::default_rules(),
    );
    let triage = Arc::new(Triage::new(
        Classifier::default_rules(),
        KnowledgeBase::default_kb(),
    ));
    let runtime = Runtime::start(
        desk,
        KeyRing::new(Vec::new(), false),
        store.clone(),
        triage,
        options,
    );
    (runtime, store)
}

fn asking(id: &str, key: &str) -> NewTicket {
    NewTicket {
        id: id.into(),
        customer_id: "alice".into(),
        inquiry: "Where is my invoice?".into(),
        context: BTreeMap::new(),
        priority: 5,
        topic: Topic::Given("billing".into()),
        client_id: "app".into(),
        idempotency_key: key.into(),
        prepared: None,
    }
}

#[tokio::test]
async fn a_retry_before_the_first_call_committed_gets_the_first_ticket() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, _store) = start(dir.path(), RuntimeOptions::default());
    let (first, again, other) = runtime
        .handle
        .run(|core, now| {
            let waiter = || oneshot::channel().0;
            let first = core.admit(asking("tkt_1", "k1"), None, waiter(), now)?;
            let again = core.admit(asking("tkt_2", "k1"), None, waiter(), now)?;
            let other = core.admit(asking("tkt_3", "k2"), None, waiter(), now)?;
            Ok((first, again, other))
        })
        .await
        .unwrap();
    let waiting = |admission: Admission| match admission {
        Admission::Waiting {
            ticket_id,
            replayed,
        } => (ticket_id, replayed),
        other => panic!("a queued ticket waits, got {other:?}"),
    };
    assert_eq!(waiting(first), ("tkt_1".to_string(), false));
    assert_eq!(waiting(again), ("tkt_1".to_string(), true));
    assert_eq!(waiting(other), ("tkt_3".to_string(), false));
}

#[tokio::test]
async fn retention_compacts_before_the_desks_time_less_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let options = RuntimeOptions {
        event_retention: Some(Duration::from_secs(1)),
        clock: Arc::new(clock.clone()),
        ..RuntimeOptions::default()
    };
    let (runtime, store) = start(dir.path(), options);
    clock.advance(60_000);
    let expected = ManualClock::START_MS + 60_000 - 1_000;
    // Compaction runs a few times per retention window: commit until one has.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    loop {
        n += 1;
        runtime
            .handle
            .create_reviewer(reviewer(&format!("r{n}"), &[], 1))
            .await
            .unwrap();
        let compacted = store.retained().unwrap().compacted_before_ms;
        if compacted == Some(expected) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "compacted before {compacted:?}, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
