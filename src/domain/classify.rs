//! Keyword topic classification: which topic an inquiry is about when the caller did not say.
//!
//! Owns the ordered topic rules (topic -> keywords), the fallback topic, their validation, and
//! the matching itself. Matching is case-insensitive on word tokens; a keyword matches any token
//! that starts with it, so one keyword covers its inflections ("charge" matches "charged" and
//! "charges"); a multi-word keyword matches consecutive tokens, each by the same prefix rule.
//! The topic with the most hits wins, ties go to the earlier rule, no hit at all gives the
//! fallback. An explicit topic in a request bypasses this module entirely.

use std::collections::HashMap;

use super::text::words;

/// Most rules a classifier accepts; a config with more is almost certainly a mistake.
pub const MAX_RULES: usize = 256;
/// Most keywords in one rule.
pub const MAX_KEYWORDS_PER_RULE: usize = 1_000;
/// Longest topic name, in bytes.
pub const MAX_TOPIC_BYTES: usize = 64;
/// Longest keyword, in bytes.
pub const MAX_KEYWORD_BYTES: usize = 100;

/// One classification rule as written in configuration.
#[derive(Clone, Debug, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TopicRule {
    pub topic: String,
    pub keywords: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClassifierError {
    #[error("{count} rules is more than the {max} allowed")]
    TooManyRules { count: usize, max: usize },
    #[error("rule #{index} has an empty topic")]
    EmptyTopic { index: usize },
    #[error("the fallback topic is empty")]
    EmptyFallback,
    #[error("topic {topic:?} is longer than {max} bytes")]
    TopicTooLong { topic: String, max: usize },
    #[error("topic {topic:?} contains control characters")]
    TopicControlChars { topic: String },
    #[error("topic {topic} appears in more than one rule")]
    DuplicateTopic { topic: String },
    #[error("topic {topic} has no keywords")]
    NoKeywords { topic: String },
    #[error("topic {topic} has {count} keywords, more than the {max} allowed")]
    TooManyKeywords {
        topic: String,
        count: usize,
        max: usize,
    },
    #[error("topic {topic} has a keyword {keyword:?} without any letters or digits")]
    EmptyKeyword { topic: String, keyword: String },
    #[error("topic {topic} has a keyword longer than {max} bytes")]
    KeywordTooLong { topic: String, max: usize },
}

/// A new ticket's topic, settled once before the ticket enters the desk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Topic {
    /// Named by the caller.
    Given(String),
    /// Chosen by the classifier from the inquiry.
    Classified(String),
}

/// A validated, indexed set of topic rules.
#[derive(Clone, Debug)]
pub struct Classifier {
    /// Normalised rules in configuration order; the order breaks ties.
    rules: Vec<TopicRule>,
    fallback: String,
    /// First word of every keyword -> (rule index, the keyword's remaining words). Looking up
    /// each prefix of a token here costs one hash probe per character instead of a scan of
    /// every keyword of every rule.
    by_first_word: HashMap<String, Vec<(usize, Vec<String>)>>,
    /// Longest first word in bytes, so prefixes longer than any keyword are never probed.
    longest_first_word: usize,
}

impl Classifier {
    /// billing: bill, payment, charge, refund, invoice; technical: bug, error, broken, crash,
    /// slow; account: account, password, login, security; how-to: how, tutorial, guide, help;
    /// else general
    pub fn default_rules() -> Self {
        let rule = |topic: &str, keywords: &[&str]| TopicRule {
            topic: topic.to_string(),
            keywords: keywords.iter().map(|k| k.to_string()).collect(),
        };
        Self::new(
            vec![
                rule(
                    "billing",
                    &["bill", "payment", "charge", "refund", "invoice"],
                ),
                rule("technical", &["bug", "error", "broken", "crash", "slow"]),
                rule("account", &["account", "password", "login", "security"]),
                rule("how-to", &["how", "tutorial", "guide", "help"]),
            ],
            "general".to_string(),
        )
        .expect("the default classifier rules are valid")
    }

    /// Validates and indexes `rules`. Topics are trimmed and lowercased (specialty matching
    /// downstream is case-insensitive, so "Billing" and "billing" must be one topic); keywords
    /// are reduced to their lowercase word tokens.
    pub fn new(rules: Vec<TopicRule>, fallback: String) -> Result<Self, ClassifierError> {
        if rules.len() > MAX_RULES {
            return Err(ClassifierError::TooManyRules {
                count: rules.len(),
                max: MAX_RULES,
            });
        }
        let fallback = normalise_topic(&fallback).ok_or(ClassifierError::EmptyFallback)?;
        check_topic(&fallback)?;
        let mut normalised: Vec<TopicRule> = Vec::with_capacity(rules.len());
        let mut by_first_word: HashMap<String, Vec<(usize, Vec<String>)>> = HashMap::new();
        let mut longest_first_word = 0;
        for (index, rule) in rules.into_iter().enumerate() {
            let topic =
                normalise_topic(&rule.topic).ok_or(ClassifierError::EmptyTopic { index })?;
            check_topic(&topic)?;
            if normalised.iter().any(|r| r.topic == topic) {
                return Err(ClassifierError::DuplicateTopic { topic });
            }
            if rule.keywords.is_empty() {
                return Err(ClassifierError::NoKeywords { topic });
            }
            if rule.keywords.len() > MAX_KEYWORDS_PER_RULE {
                return Err(ClassifierError::TooManyKeywords {
                    topic,
                    count: rule.keywords.len(),
                    max: MAX_KEYWORDS_PER_RULE,
                });
            }
            let mut keywords = Vec::with_capacity(rule.keywords.len());
            for keyword in &rule.keywords {
                if keyword.len() > MAX_KEYWORD_BYTES {
                    return Err(ClassifierError::KeywordTooLong {
                        topic,
                        max: MAX_KEYWORD_BYTES,
                    });
                }
                let mut words = words(keyword);
                if words.is_empty() {
                    return Err(ClassifierError::EmptyKeyword {
                        topic,
                        keyword: keyword.clone(),
                    });
                }
                keywords.push(words.join(" "));
                let first = words.remove(0);
                longest_first_word = longest_first_word.max(first.len());
                by_first_word.entry(first).or_default().push((index, words));
            }
            normalised.push(TopicRule { topic, keywords });
        }
        Ok(Classifier {
            rules: normalised,
            fallback,
            by_first_word,
            longest_first_word,
        })
    }

    /// The topic of `inquiry`: the rule with the most keyword hits (a token position counts
    /// once per rule however many of its keywords match there), the earlier rule on a tie,
    /// the fallback when nothing matches.
    pub fn classify(&self, inquiry: &str) -> String {
        let tokens = words(inquiry);
        let mut hits = vec![0usize; self.rules.len()];
        let mut last_hit_at = vec![usize::MAX; self.rules.len()];
        for (at, token) in tokens.iter().enumerate() {
            let prefix_ends = token
                .char_indices()
                .map(|(i, _)| i)
                .skip(1)
                .chain(std::iter::once(token.len()))
                .take_while(|&end| end <= self.longest_first_word);
            for end in prefix_ends {
                let Some(candidates) = self.by_first_word.get(&token[..end]) else {
                    continue;
                };
                for (rule, rest) in candidates {
                    if last_hit_at[*rule] == at {
                        continue;
                    }
                    let following = &tokens[at + 1..];
                    let phrase_holds = rest.len() <= following.len()
                        && rest
                            .iter()
                            .zip(following)
                            .all(|(word, token)| token.starts_with(word.as_str()));
                    if phrase_holds {
                        hits[*rule] += 1;
                        last_hit_at[*rule] = at;
                    }
                }
            }
        }
        let mut best: Option<(usize, usize)> = None;
        for (rule, &count) in hits.iter().enumerate() {
            // strictly greater keeps the earlier rule on a tie
            if count > 0 && best.is_none_or(|(_, top)| count > top) {
                best = Some((rule, count));
            }
        }
        match best {
            Some((rule, _)) => self.rules[rule].topic.clone(),
            None => self.fallback.clone(),
        }
    }

    /// The topic of a new ticket: the caller's when given (trimmed, lowercase), else the
    /// classifier's. Called once per inquiry, before the ticket enters the desk.
    pub fn topic(&self, inquiry: &str, given: Option<&str>) -> Topic {
        match given.map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) => Topic::Given(t.to_lowercase()),
            None => Topic::Classified(self.classify(inquiry)),
        }
    }

    /// Every topic `classify` can return: the rule topics in order, then the fallback unless a
    /// rule already has it.
    pub fn topics(&self) -> impl Iterator<Item = &str> + '_ {
        let fallback_is_rule = self.rules.iter().any(|r| r.topic == self.fallback);
        self.rules
            .iter()
            .map(|r| r.topic.as_str())
            .chain((!fallback_is_rule).then_some(self.fallback.as_str()))
    }

    /// The topic given to inquiries no rule matches.
    pub fn fallback(&self) -> &str {
        &self.fallback
    }

    /// The rules after normalisation, in matching order.
    pub fn rules(&self) -> &[TopicRule] {
        &self.rules
    }
}

fn normalise_topic(raw: &str) -> Option<String> {
    let topic = raw.trim().to_lowercase();
    (!topic.is_empty()).then_some(topic)
}

fn check_topic(topic: &str) -> Result<(), ClassifierError> {
    if topic.len() > MAX_TOPIC_BYTES {
        return Err(ClassifierError::TopicTooLong {
            topic: topic.to_string(),
            max: MAX_TOPIC_BYTES,
        });
    }
    if topic.chars().any(char::is_control) {
        return Err(ClassifierError::TopicControlChars {
            topic: topic.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(topic: &str, keywords: &[&str]) -> TopicRule {
        TopicRule {
            topic: topic.into(),
            keywords: keywords.iter().map(|k| k.to_string()).collect(),
        }
    }

    #[test]
    fn the_python_scenarios_classify_as_expected() {
        let c = Classifier::default_rules();
        // account: password=1, how-to: how=1; the tie goes to the earlier rule
        assert_eq!(c.classify("How do I reset my password?"), "account");
        assert_eq!(
            c.classify("I was charged twice for my subscription this month and need a refund"),
            "billing"
        );
        assert_eq!(
            c.classify("The app keeps crashing when I upload a file"),
            "technical"
        );
        assert_eq!(c.classify("Tell me about your company"), "general");
        assert_eq!(c.classify("How do I export my data to CSV?"), "how-to");
    }

    #[test]
    fn keywords_match_inflections_by_prefix() {
        let c = Classifier::default_rules();
        assert_eq!(c.classify("Why was I CHARGED"), "billing");
        assert_eq!(c.classify("more charges"), "billing");
        assert_eq!(c.classify("it crashes"), "technical");
        assert_eq!(c.classify("payments"), "billing");
        assert_eq!(c.classify("billing"), "billing");
        // a keyword must start the token, not merely occur inside it
        assert_eq!(c.classify("discharge"), "general");
    }

    #[test]
    fn the_most_hits_win() {
        let c = Classifier::default_rules();
        // how-to: how + guide = 2 beats account: password = 1
        assert_eq!(
            c.classify("how do I find the guide to change my password"),
            "how-to"
        );
        // repeated keywords count each time
        assert_eq!(c.classify("error error password"), "technical");
    }

    #[test]
    fn multi_word_keywords_match_as_phrases() {
        let c = Classifier::new(
            vec![
                rule("access", &["log in", "sign in"]),
                rule("other", &["in"]),
            ],
            "general".into(),
        )
        .unwrap();
        assert_eq!(c.classify("I cannot log in"), "access");
        assert_eq!(c.classify("signing in fails"), "access");
        assert_eq!(c.classify("log me in"), "other");
        assert_eq!(c.classify("the log"), "general");
    }

    #[test]
    fn one_position_counts_once_per_rule() {
        // "billing" matches both "bill" and "billing" but is one hit; "bug bug" is two
        let c = Classifier::new(
            vec![
                rule("billing", &["bill", "billing"]),
                rule("technical", &["bug"]),
            ],
            "general".into(),
        )
        .unwrap();
        assert_eq!(c.classify("billing bug bug"), "technical");
    }

    #[test]
    fn rules_are_normalised() {
        let c = Classifier::new(
            vec![rule("  Billing ", &["Refund", "Money-Back"])],
            " General ".into(),
        )
        .unwrap();
        assert_eq!(c.classify("money back please"), "billing");
        assert_eq!(c.topics().collect::<Vec<_>>(), ["billing", "general"]);
        assert_eq!(c.rules()[0].keywords, ["refund", "money back"]);
        assert_eq!(c.fallback(), "general");
    }

    #[test]
    fn topics_lists_rules_then_the_fallback_once() {
        let c = Classifier::default_rules();
        assert_eq!(
            c.topics().collect::<Vec<_>>(),
            ["billing", "technical", "account", "how-to", "general"]
        );
        let c = Classifier::new(vec![rule("general", &["x"])], "general".into()).unwrap();
        assert_eq!(c.topics().collect::<Vec<_>>(), ["general"]);
    }

    #[test]
    fn invalid_rules_are_rejected_with_clear_messages() {
        let err = |rules: Vec<TopicRule>, fallback: &str| {
            Classifier::new(rules, fallback.into())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(vec![rule(" ", &["x"])], "general"),
            "rule #0 has an empty topic"
        );
        assert_eq!(
            err(vec![rule("a", &["x"])], "  "),
            "the fallback topic is empty"
        );
        assert_eq!(
            err(vec![rule("a", &[])], "general"),
            "topic a has no keywords"
        );
        assert_eq!(
            err(vec![rule("a", &["x"]), rule("A", &["y"])], "general"),
            "topic a appears in more than one rule"
        );
        assert_eq!(
            err(vec![rule("a", &["x", "--"])], "general"),
            "topic a has a keyword \"--\" without any letters or digits"
        );
        assert_eq!(
            err(vec![rule("a\u{7}", &["x"])], "general"),
            "topic \"a\\u{7}\" contains control characters"
        );
        assert!(
            err(vec![rule(&"t".repeat(65), &["x"])], "general").contains("longer than 64 bytes")
        );
        // The limit itself is allowed, for a rule's topic and the fallback alike.
        let longest = "t".repeat(MAX_TOPIC_BYTES);
        assert!(Classifier::new(vec![rule(&longest, &["x"])], "general".into()).is_ok());
        assert!(Classifier::new(vec![rule("a", &["x"])], longest).is_ok());
        assert!(err(vec![rule("a", &[&"k".repeat(101)])], "general")
            .contains("keyword longer than 100 bytes"));
        let many = (0..=MAX_RULES)
            .map(|i| rule(&format!("t{i}"), &["x"]))
            .collect();
        assert_eq!(
            err(many, "general"),
            "257 rules is more than the 256 allowed"
        );
    }

    #[test]
    fn odd_text_classifies_without_trouble() {
        let c = Classifier::default_rules();
        assert_eq!(c.classify(""), "general");
        assert_eq!(c.classify("!!! ??? ..."), "general");
        assert_eq!(
            c.classify("Überweisung fehlgeschlagen, RÜCKERSTATTUNG"),
            "general"
        );
        assert_eq!(c.classify("ERROR: 500"), "technical");
    }

    proptest! {
        #[test]
        fn classify_never_panics_and_returns_a_configured_topic(inquiry in any::<String>()) {
            let c = Classifier::default_rules();
            let topic = c.classify(&inquiry);
            prop_assert!(c.topics().any(|t| t == topic));
        }

        #[test]
        fn any_valid_configuration_returns_one_of_its_topics(
            rules in prop::collection::vec(("[a-zA-Z -]{0,12}", prop::collection::vec("\\PC{0,12}", 0..5)), 0..6),
            fallback in "\\PC{0,10}",
            inquiry in "\\PC{0,80}",
        ) {
            let rules = rules.into_iter().map(|(topic, keywords)| TopicRule { topic, keywords }).collect();
            if let Ok(c) = Classifier::new(rules, fallback) {
                let topic = c.classify(&inquiry);
                prop_assert!(c.topics().any(|t| t == topic));
            }
        }

        #[test]
        fn a_keyword_in_the_inquiry_always_selects_a_rule(prefix in "[a-z ]{0,20}", suffix in "[a-z ]{0,20}") {
            let c = Classifier::default_rules();
            let topic = c.classify(&format!("{prefix} refund {suffix}"));
            prop_assert_ne!(topic, "general");
        }
    }
}
