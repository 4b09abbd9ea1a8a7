//! Any inquiry through the default classifier and knowledge base, as the desk reads one before
//! it becomes a ticket: a topic the rules know (or the fallback), and a confidence within
//! 0..=1, without panicking.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use servicedesk::domain::classify::{Classifier, Topic};
use servicedesk::domain::knowledge::KnowledgeBase;
use servicedesk::domain::triage::Triage;

fn triage() -> &'static Triage {
    static TRIAGE: OnceLock<Triage> = OnceLock::new();
    TRIAGE.get_or_init(|| Triage::new(Classifier::default_rules(), KnowledgeBase::default_kb()))
}

fuzz_target!(|inquiry: &str| {
    let (topic, prepared) = triage().inquiry(inquiry, None);
    let Topic::Classified(topic) = topic else {
        panic!("no topic was given, so it is classified");
    };
    assert!(!topic.is_empty());
    if let Some(answer) = prepared.answer {
        assert!(
            (0.0..=1.0).contains(&answer.confidence),
            "{}",
            answer.confidence
        );
        assert!(!answer.answer.is_empty());
    }
});
