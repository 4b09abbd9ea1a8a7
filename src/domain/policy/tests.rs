//! Tests of the policy: loading, validation and what each rule matches.

use super::*;
use proptest::prelude::*;

fn evaluate(
    policy: &Policy,
    inquiry: &str,
    priority: u8,
    context: &[(&str, &str)],
) -> PolicyVerdict {
    let context: BTreeMap<String, String> = context
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    policy.evaluate(&PolicyInput {
        inquiry,
        topic: "general",
        priority,
        context: &context,
    })
}

fn names(verdict: &PolicyVerdict) -> Vec<&str> {
    verdict.matched.iter().map(String::as_str).collect()
}

fn rule(name: &str) -> PolicyRule {
    PolicyRule {
        name: name.into(),
        phrases: Vec::new(),
        context: Vec::new(),
        min_priority: None,
        topics: Vec::new(),
        raise_to: None,
    }
}

#[test]
fn ticket_priorities_map_to_review_priorities() {
    use ReviewPriority::*;
    let expected = [
        Low, Low, Low, Low, Medium, Medium, Medium, High, High, Urgent, Urgent, Urgent,
    ];
    for (p, want) in (0u8..=11).zip(expected) {
        assert_eq!(
            ReviewPriority::from_ticket_priority(p),
            want,
            "priority {p}"
        );
    }
    assert_eq!(ReviewPriority::from_ticket_priority(255), Urgent);
    assert!(Urgent > High && High > Medium && Medium > Low);
}

#[test]
fn review_priority_reads_and_writes_lowercase() {
    #[derive(serde::Deserialize)]
    struct Doc {
        p: ReviewPriority,
    }
    let doc: Doc = toml::from_str("p = \"urgent\"").unwrap();
    assert_eq!(doc.p, ReviewPriority::Urgent);
    assert!(toml::from_str::<Doc>("p = \"Urgent\"").is_err());
    assert_eq!(ReviewPriority::Medium.to_string(), "medium");
}

#[test]
fn an_angry_vip_matches_four_rules_and_is_urgent() {
    let v = evaluate(
        &Policy::default_rules(),
        "This is unacceptable, I want to speak to a manager and I expect compensation",
        10,
        &[("vip", "true")],
    );
    assert_eq!(
        names(&v),
        [
            "refund_or_compensation",
            "manager_request",
            "vip_customer",
            "high_priority_complaint"
        ]
    );
    assert_eq!(v.raise_to, Some(ReviewPriority::Urgent));
    assert!(v.forces_review());
}

#[test]
fn a_plain_question_matches_nothing() {
    let v = evaluate(
        &Policy::default_rules(),
        "How do I reset my password?",
        5,
        &[],
    );
    assert_eq!(v, PolicyVerdict::default());
    assert!(!v.forces_review());
}

#[test]
fn the_double_charge_scenario_forces_review_without_raising() {
    let inquiry = "I was charged twice for my subscription this month and need a refund";
    let v = evaluate(&Policy::default_rules(), inquiry, 8, &[]);
    assert_eq!(names(&v), ["refund_or_compensation"]);
    assert_eq!(v.raise_to, None);
}

#[test]
fn phrases_respect_word_boundaries() {
    let p = Policy::default_rules();
    for inquiry in [
        "I have an issue with my invoice",
        "I will pursue this",
        "Issues everywhere",
        "the courtyard",
    ] {
        assert!(!evaluate(&p, inquiry, 5, &[]).forces_review(), "{inquiry}");
    }
    for inquiry in [
        "I will sue you",
        "we are suing",
        "SUE!",
        "see you in court",
        "my lawyers will call",
    ] {
        assert_eq!(
            names(&evaluate(&p, inquiry, 5, &[])),
            ["legal_threat"],
            "{inquiry}"
        );
    }
}

#[test]
fn phrases_match_common_inflections() {
    let p = Policy::default_rules();
    assert_eq!(
        names(&evaluate(&p, "was it refunded?", 5, &[])),
        ["refund_or_compensation"]
    );
    assert_eq!(
        names(&evaluate(&p, "I want my MONEY-BACK", 5, &[])),
        ["refund_or_compensation"]
    );
    assert_eq!(
        names(&evaluate(&p, "please close   my account", 5, &[])),
        ["account_closure"]
    );
    assert_eq!(
        names(&evaluate(&p, "I am closing my account", 5, &[])),
        ["account_closure"]
    );
    assert_eq!(
        names(&evaluate(&p, "talk to a managers", 5, &[])),
        ["manager_request"]
    );
    // the short words of a phrase must match exactly
    assert!(!evaluate(&p, "speak to as manager", 5, &[]).forces_review());
    assert!(!evaluate(&p, "close your account", 5, &[]).forces_review());
}

#[test]
fn complaints_need_a_high_priority() {
    let p = Policy::default_rules();
    assert!(!evaluate(&p, "this is terrible", 8, &[]).forces_review());
    let v = evaluate(&p, "this is terrible", 9, &[]);
    assert_eq!(names(&v), ["high_priority_complaint"]);
    assert_eq!(v.raise_to, Some(ReviewPriority::Urgent));
}

#[test]
fn vip_context_is_matched_case_insensitively() {
    let p = Policy::default_rules();
    for ctx in [
        ("vip", "true"),
        ("VIP", " TRUE "),
        ("customer_tier", "VIP"),
        ("tier", "vip"),
        ("vip", "yes"),
    ] {
        let v = evaluate(&p, "hello", 3, &[ctx]);
        assert_eq!(names(&v), ["vip_customer"], "{ctx:?}");
        assert_eq!(v.raise_to, Some(ReviewPriority::High));
    }
    for ctx in [
        ("vip", "false"),
        ("tier", "gold"),
        ("plan", "vip"),
        ("vip", ""),
    ] {
        assert!(!evaluate(&p, "hello", 3, &[ctx]).forces_review(), "{ctx:?}");
    }
}

#[test]
fn a_star_value_means_any_non_empty_value() {
    let mut r = rule("has_account_manager");
    r.context = vec![ContextMatch {
        key: "account_manager".into(),
        value: "*".into(),
    }];
    let p = Policy::new(vec![r]).unwrap();
    assert!(evaluate(&p, "x", 1, &[("account_manager", "dana")]).forces_review());
    assert!(!evaluate(&p, "x", 1, &[("account_manager", "  ")]).forces_review());
    assert!(!evaluate(&p, "x", 1, &[("other", "dana")]).forces_review());
}

#[test]
fn every_set_condition_must_hold() {
    let mut r = rule("billing_urgent_refund");
    r.phrases = vec!["refund".into()];
    r.topics = vec!["Billing".into()];
    r.min_priority = Some(7);
    r.raise_to = Some(ReviewPriority::Medium);
    let p = Policy::new(vec![r]).unwrap();
    let ctx = BTreeMap::new();
    let input = |inquiry, topic, priority| PolicyInput {
        inquiry,
        topic,
        priority,
        context: &ctx,
    };
    assert!(p.evaluate(&input("a refund", "BILLING", 7)).forces_review());
    assert!(!p
        .evaluate(&input("a refund", "technical", 7))
        .forces_review());
    assert!(!p.evaluate(&input("a refund", "billing", 6)).forces_review());
    assert!(!p
        .evaluate(&input("a question", "billing", 7))
        .forces_review());
}

#[test]
fn raise_to_is_the_highest_of_the_matched_rules() {
    let mut a = rule("a");
    a.min_priority = Some(1);
    a.raise_to = Some(ReviewPriority::Medium);
    let mut b = rule("b");
    b.min_priority = Some(5);
    b.raise_to = Some(ReviewPriority::High);
    let mut c = rule("c");
    c.min_priority = Some(1);
    let p = Policy::new(vec![a, b, c]).unwrap();
    let v = evaluate(&p, "x", 5, &[]);
    assert_eq!(names(&v), ["a", "b", "c"]);
    assert_eq!(v.raise_to, Some(ReviewPriority::High));
    assert_eq!(
        evaluate(&p, "x", 4, &[]).raise_to,
        Some(ReviewPriority::Medium)
    );
}

#[test]
fn invalid_rules_are_rejected_with_clear_messages() {
    let err = |rules: Vec<PolicyRule>| Policy::new(rules).unwrap_err().to_string();
    assert_eq!(
        err(vec![rule("empty")]),
        "rule empty has no condition: set phrases, context, min_priority or topics"
    );
    let mut r = rule(" ");
    r.min_priority = Some(1);
    assert_eq!(err(vec![r.clone()]), "rule #0 has an empty name");
    r.name = "dup".into();
    assert_eq!(
        err(vec![r.clone(), r.clone()]),
        "rule dup appears more than once"
    );
    r.min_priority = Some(11);
    assert_eq!(
        err(vec![r.clone()]),
        "rule dup has min_priority 11, not within 1..10"
    );
    r.min_priority = Some(0);
    assert_eq!(
        err(vec![r.clone()]),
        "rule dup has min_priority 0, not within 1..10"
    );
    let mut r = rule("p");
    r.phrases = vec!["ok".into(), "  ".into()];
    assert_eq!(err(vec![r.clone()]), "rule p has an empty entry in phrases");
    r.phrases = vec!["?!".into()];
    assert_eq!(
        err(vec![r.clone()]),
        "rule p has a phrase \"?!\" without any letters or digits"
    );
    r.phrases = vec!["x".repeat(201)];
    assert_eq!(
        err(vec![r.clone()]),
        "rule p has an entry in phrases longer than 200 bytes"
    );
    let mut r = rule("c");
    r.context = vec![ContextMatch {
        key: "vip".into(),
        value: "".into(),
    }];
    assert_eq!(err(vec![r]), "rule c has an empty entry in context");
    let mut r = rule("t");
    r.topics = vec!["".into()];
    assert_eq!(err(vec![r]), "rule t has an empty entry in topics");
}

#[test]
fn rules_read_from_toml() {
    #[derive(serde::Deserialize)]
    struct Doc {
        rules: Vec<PolicyRule>,
    }
    let doc: Doc = toml::from_str(
        r#"
        [[rules]]
        name = "gold"
        context = [{ key = "tier", value = "gold" }]
        raise_to = "high"

        [[rules]]
        name = "outage"
        phrases = ["outage", "down for everyone"]
        min_priority = 6
        "#,
    )
    .unwrap();
    let p = Policy::new(doc.rules).unwrap();
    assert_eq!(p.rules().len(), 2);
    let v = evaluate(&p, "the site is down for everyone", 6, &[("tier", "Gold")]);
    assert_eq!(names(&v), ["gold", "outage"]);
    assert_eq!(v.raise_to, Some(ReviewPriority::High));
    assert!(toml::from_str::<Doc>("[[rules]]\nname = \"x\"\nphrase = [\"typo\"]").is_err());
}

proptest! {
    #[test]
    fn evaluate_never_panics_and_raise_to_is_the_max(
        inquiry in any::<String>(),
        topic in "\\PC{0,12}",
        priority in any::<u8>(),
        context in prop::collection::btree_map("\\PC{0,8}", "\\PC{0,8}", 0..4),
    ) {
        let p = Policy::default_rules();
        let v = p.evaluate(&PolicyInput { inquiry: &inquiry, topic: &topic, priority, context: &context });
        let expected = p.rules().iter().filter(|r| v.matched.contains(&r.name)).filter_map(|r| r.raise_to).max();
        prop_assert_eq!(v.raise_to, expected);
        let order: Vec<&String> = p.rules().iter().map(|r| &r.name).filter(|n| v.matched.contains(n)).collect();
        prop_assert_eq!(order, v.matched.iter().collect::<Vec<_>>());
    }

    #[test]
    fn new_never_panics_on_arbitrary_rules(
        rules in prop::collection::vec(
            ("\\PC{0,6}", prop::collection::vec("\\PC{0,6}", 0..3), prop::option::of(any::<u8>())),
            0..5,
        ),
        inquiry in "\\PC{0,40}",
    ) {
        let rules = rules
            .into_iter()
            .map(|(name, phrases, min_priority)| PolicyRule { min_priority, phrases, ..rule(&name) })
            .collect();
        if let Ok(p) = Policy::new(rules) {
            let ctx = BTreeMap::new();
            let _ = p.evaluate(&PolicyInput { inquiry: &inquiry, topic: "x", priority: 5, context: &ctx });
        }
    }

    #[test]
    fn sue_never_matches_inside_a_longer_word(prefix in "[a-z]{1,6}", suffix in "[a-z]{0,3}") {
        let word = format!("{prefix}sue{suffix}");
        let p = Policy::default_rules();
        let v = evaluate(&p, &format!("about the {word} today"), 5, &[]);
        prop_assert!(!v.matched.contains(&"legal_threat".to_string()), "{word}");
    }
}
