//! The loaders under mutated input, in every `cargo test`: the README's config and the
//! built-in knowledge base, cut, spliced and sprinkled with junk, either load or are refused
//! with an error; they never panic, and what loads is usable. The coverage-guided fuzz targets
//! in `fuzz/` explore the same properties for as long as you let them.

use std::path::Path;

use proptest::prelude::*;
use servicedesk::config::{parse_file, Config, Overrides};
use servicedesk::domain::knowledge::KnowledgeBase;

fn readme_config() -> String {
    let readme = include_str!("../README.md");
    let start = readme.find("```toml\n").expect("a toml block") + 8;
    let len = readme[start..].find("```").expect("its end");
    readme[start..start + len].to_string()
}

/// One edit of a text: cut a range, insert junk, or repeat a slice.
#[derive(Clone, Debug)]
enum Edit {
    Cut { at: usize, len: usize },
    Insert { at: usize, junk: String },
    Repeat { at: usize, len: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0usize..200).prop_map(|(at, len)| Edit::Cut { at, len }),
        (any::<usize>(), "\\PC{0,40}|[\\[\\]=\"{},\\n#]{1,8}")
            .prop_map(|(at, junk)| Edit::Insert { at, junk }),
        (any::<usize>(), 0usize..300).prop_map(|(at, len)| Edit::Repeat { at, len }),
    ]
}

fn mutate(text: &str, edits: &[Edit]) -> String {
    let mut text = text.to_string();
    let boundary = |text: &str, at: usize| {
        let mut at = at % (text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        at
    };
    for e in edits {
        match e {
            Edit::Cut { at, len } => {
                let start = boundary(&text, *at);
                let end = boundary(&text, (start + len).min(text.len()));
                text.replace_range(start..end.max(start), "");
            }
            Edit::Insert { at, junk } => {
                let at = boundary(&text, *at);
                text.insert_str(at, junk);
            }
            Edit::Repeat { at, len } => {
                let start = boundary(&text, *at);
                let end = boundary(&text, (start + len).min(text.len()));
                let slice = text[start..end.max(start)].to_string();
                text.insert_str(start, &slice);
            }
        }
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn a_mutated_config_loads_or_is_refused(edits in proptest::collection::vec(edit(), 1..6)) {
        let text = mutate(&readme_config(), &edits);
        if let Ok(file) = parse_file(&text, Path::new("mutated.toml")) {
            if let Ok(config) = Config::resolve(file, Overrides::default()) {
                prop_assert!(!config.tiers.is_empty());
                prop_assert!(config.tiers.iter().all(|t| (0.0..=1.0).contains(&t.threshold)));
            }
        }
    }

    #[test]
    fn a_mutated_knowledge_base_loads_or_is_refused(edits in proptest::collection::vec(edit(), 1..6)) {
        let text = mutate(include_str!("../kb/default.toml"), &edits);
        if let Ok(kb) = KnowledgeBase::from_toml(&text) {
            for question in ["How do I reset my password?", "refund", ""] {
                if let Some(answer) = kb.best_answer(question, "account") {
                    prop_assert!((0.0..=1.0).contains(&answer.confidence));
                }
            }
        }
    }
}
