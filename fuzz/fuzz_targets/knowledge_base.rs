//! Any text as a knowledge-base file: it loads or is refused, never panics; a loaded base
//! answers any question with a confidence within 0..=1.
#![no_main]

use libfuzzer_sys::fuzz_target;
use servicedesk::domain::knowledge::KnowledgeBase;

fuzz_target!(|text: &str| {
    let Ok(kb) = KnowledgeBase::from_toml(text) else {
        return;
    };
    for question in ["How do I reset my password?", text, ""] {
        if let Some(answer) = kb.best_answer(question, "account") {
            assert!(
                (0.0..=1.0).contains(&answer.confidence),
                "{}",
                answer.confidence
            );
        }
    }
});
