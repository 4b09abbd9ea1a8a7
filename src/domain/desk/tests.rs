//! Examples of the desk's commands that the property tests do not pin down by value: the
//! messages a remote agent's stream carries, the log's head, and the words of refusals.

use super::*;
use crate::domain::error::DomainError;
use crate::domain::fixtures::{agent, tiers};
use crate::domain::mesh::AgentKind;

fn desk() -> Desk {
    Desk::new(
        Settings::default(),
        Mesh::new(tiers()).unwrap(),
        Policy::default_rules(),
    )
}

fn ask(id: &str, topic: &str) -> NewTicket {
    NewTicket {
        id: id.into(),
        customer_id: "c1".into(),
        inquiry: "Where is my invoice?".into(),
        context: BTreeMap::new(),
        priority: 5,
        topic: Topic::Given(topic.into()),
        client_id: "app".into(),
        idempotency_key: String::new(),
        prepared: None,
    }
}

#[test]
fn a_remote_agent_hears_its_assignments_and_their_revocation_under_its_own_id() {
    let mut desk = desk();
    let actor = Actor {
        client_id: "agents".into(),
        admin: false,
    };
    let remote = Agent {
        kind: AgentKind::Remote,
        ..agent("Remote_L1", "L1", &[], 1)
    };
    let remote = desk
        .attach_remote(AttachSpec::New(remote), &actor, 0)
        .unwrap();
    desk.take_output();

    desk.open_ticket(ask("tkt_1", "billing"), 10).unwrap();
    let sent = desk.take_output().remote;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(matches!(sent[0], RemoteMessage::Assignment { .. }));
    assert_eq!(sent[0].agent_id(), remote.id);

    let pause = AgentChange {
        availability: Some(Availability::Paused),
        ..AgentChange::default()
    };
    desk.update_agent(&remote.id, pause, 20).unwrap();
    let sent = desk.take_output().remote;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(matches!(sent[0], RemoteMessage::Revoked { .. }));
    assert_eq!(sent[0].agent_id(), remote.id);
}

#[test]
fn the_last_sequence_is_the_last_event_appended() {
    let mut desk = desk();
    assert_eq!(desk.last_seq(), 0);
    desk.create_agent(agent("a1", "L1", &[], 1), 0).unwrap();
    desk.open_ticket(ask("tkt_1", "billing"), 10).unwrap();
    let events = desk.take_output().events;
    assert!(events.len() >= 2, "{events:?}");
    assert_eq!(desk.last_seq(), events.last().unwrap().seq);
    assert_eq!(desk.last_seq(), events.len() as u64);
}

#[test]
fn an_agent_in_an_unknown_tier_is_refused_naming_the_tiers_there_are() {
    let mut desk = desk();
    let err = desk.create_agent(agent("a1", "L9", &[], 1), 0).unwrap_err();
    let DomainError::Invalid(violations) = &err else {
        panic!("expected Invalid, got {err:?}");
    };
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].field, "tier");
    assert_eq!(
        violations[0].reason,
        "unknown tier \"L9\"; the desk has L1, L2, Expert"
    );
}
