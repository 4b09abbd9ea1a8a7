//! Any inquiry through the default classifier and knowledge base: a topic the rules know (or
//! the fallback), and a confidence within 0..=1, without panicking.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use servicedesk::domain::classify::Classifier;
use servicedesk::domain::knowledge::KnowledgeBase;

fn desk() -> &'static (Classifier, KnowledgeBase) {
    static DESK: OnceLock<(Classifier, KnowledgeBase)> = OnceLock::new();
    DESK.get_or_init(|| (Classifier::default_rules(), KnowledgeBase::default_kb()))
}

fuzz_target!(|inquiry: &str| {
    let (classifier, kb) = desk();
    let topic = classifier.classify(inquiry);
    assert!(!topic.is_empty());
    if let Some(answer) = kb.best_answer(inquiry, &topic) {
        assert!(
            (0.0..=1.0).contains(&answer.confidence),
            "{}",
            answer.confidence
        );
        assert!(!answer.answer.is_empty());
    }
});
