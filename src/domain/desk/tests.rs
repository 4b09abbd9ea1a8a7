//! Examples of the desk's commands that the property tests do not pin down by value: the
//! messages a remote agent's stream carries, the log's head, and the words of refusals.

use super::*;
use crate::domain::error::DomainError;
use crate::domain::fixtures::{agent, tiers};
use crate::domain::mesh::AgentKind;
use crate::domain::ticket::TicketStatus;

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

fn agents_client() -> Actor {
    Actor {
        client_id: "agents".into(),
        admin: false,
    }
}

/// A desk whose only agent is one attached remote agent in L1 with room for `capacity`.
fn desk_with_remote(capacity: u32) -> (Desk, String) {
    let mut desk = desk();
    let remote = Agent {
        kind: AgentKind::Remote,
        ..agent("Remote_L1", "L1", &[], capacity)
    };
    let remote = desk
        .attach_remote(AttachSpec::New(remote), &agents_client(), 0)
        .unwrap();
    desk.take_output();
    (desk, remote.id)
}

/// The assignment id of the one assignment sent since the last look.
fn sent_assignment(desk: &mut Desk) -> String {
    let sent = desk.take_output().remote;
    match sent.as_slice() {
        [RemoteMessage::Assignment { assignment_id, .. }] => assignment_id.clone(),
        other => panic!("expected one assignment, got {other:?}"),
    }
}

/// Opens `id` for the remote agent, which sends it to review; returns the review's id.
fn to_review(desk: &mut Desk, id: &str, inquiry: &str, now_ms: i64) -> String {
    let mut new = ask(id, "billing");
    new.inquiry = inquiry.into();
    desk.open_ticket(new, now_ms).unwrap();
    let assignment = sent_assignment(desk);
    let reply = AgentReply::RequestReview {
        reason: "needs a human".into(),
        draft: "draft".into(),
        priority: None,
        confidence: 0.5,
    };
    let ticket = desk
        .remote_replied(&assignment, reply, &agents_client(), now_ms)
        .unwrap();
    assert_eq!(ticket.status, TicketStatus::AwaitingReview);
    ticket.escalation_id
}

#[test]
fn every_closed_ticket_counts_as_handled_once() {
    let (mut desk, _) = desk_with_remote(1);
    for (n, id) in ["tkt_1", "tkt_2", "tkt_3"].into_iter().enumerate() {
        desk.open_ticket(ask(id, "billing"), 10).unwrap();
        let assignment = sent_assignment(&mut desk);
        let reply = AgentReply::Resolve {
            response: "done".into(),
            confidence: 0.9,
        };
        desk.remote_replied(&assignment, reply, &agents_client(), 20)
            .unwrap();
        assert_eq!(desk.stats().handled, n as u64 + 1);
    }
}

#[test]
fn a_review_expires_at_its_deadline_not_a_moment_before() {
    let (mut desk, _) = desk_with_remote(1);
    let review = to_review(&mut desk, "tkt_1", "Where is my invoice?", 100);
    let deadline = desk.reviews().pending(&review).unwrap().expire_ms;
    assert_eq!(deadline, 100 + desk.settings().escalation_timeout_ms);

    desk.fire_timers(deadline - 1);
    assert!(desk.reviews().pending(&review).is_some(), "expired early");
    desk.fire_timers(deadline);
    assert!(
        desk.reviews().pending(&review).is_none(),
        "pending at its deadline"
    );
    assert_eq!(desk.stats().expired, 1);
    assert_eq!(desk.next_deadline(), None, "no timer left behind");
}

#[test]
fn a_restored_queued_ticket_goes_to_review_when_its_queue_time_is_up() {
    let mut before = desk();
    before.open_ticket(ask("tkt_1", "billing"), 1_000).unwrap();
    let queued = before.ticket("tkt_1").unwrap().clone();
    assert_eq!(queued.status, TicketStatus::Queued);

    let mut desk = desk();
    let restore = Restore {
        agents: Vec::new(),
        reviewers: Vec::new(),
        open_tickets: vec![queued],
        pending_escalations: Vec::new(),
        stats: Stats::default(),
        last_seq: before.last_seq(),
    };
    desk.restore(restore, 2_000).unwrap();
    let due = 1_000 + desk.settings().queue_timeout_ms;
    assert_eq!(desk.next_deadline(), Some(due));
    desk.fire_timers(due - 1);
    assert_eq!(desk.ticket("tkt_1").unwrap().status, TicketStatus::Queued);
    desk.fire_timers(due);
    assert_eq!(
        desk.ticket("tkt_1").unwrap().status,
        TicketStatus::AwaitingReview
    );
}

#[test]
fn a_detached_remote_agent_goes_offline_and_its_work_moves_on() {
    let (mut desk, remote) = desk_with_remote(1);
    desk.open_ticket(ask("tkt_1", "billing"), 10).unwrap();
    sent_assignment(&mut desk);

    desk.detach_remote(&remote, 20);
    let agent = desk.mesh().agent(&remote).unwrap();
    assert_eq!(agent.availability, Availability::Offline);
    assert_eq!(agent.load, 0);
    assert!(agent.attached_by.is_none());
    assert_eq!(desk.ticket("tkt_1").unwrap().status, TicketStatus::Queued);
    desk.check_invariants().unwrap();
}

#[test]
fn a_review_title_is_the_inquiry_cut_at_80_characters() {
    let (mut desk, _) = desk_with_remote(3);
    let exact = "é".repeat(80);
    let long = "é".repeat(81);
    let short = to_review(&mut desk, "tkt_1", &exact, 10);
    let cut = to_review(&mut desk, "tkt_2", &long, 10);
    let title = |id: &str| desk.reviews().pending(id).unwrap().title.clone();
    assert_eq!(title(&short), format!("[billing] {exact}"));
    assert_eq!(title(&cut), format!("[billing] {exact}…"));
}
