//! Review policy: rules that send a ticket to human review whatever the agents' confidence, and
//! may raise the priority of that review.
//!
//! Owns [`ReviewPriority`] (shared with the review queue), the rule format read from
//! configuration, its validation, the default rules, and their evaluation against one inquiry.
//! A rule matches when every condition it sets holds; each condition is an "any of" list.

use std::collections::BTreeMap;

use super::text::words;

/// Most rules a policy accepts.
pub const MAX_RULES: usize = 256;
/// Most phrases (or context matches, or topics) in one rule.
pub const MAX_ITEMS_PER_RULE: usize = 1_000;
/// Longest rule name, phrase, context key or value, or topic, in bytes.
pub const MAX_TEXT_BYTES: usize = 200;

/// How urgently a human review should be handled. The order is the queue's order: `Urgent`
/// reviews come first.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ReviewPriority {
    Low,
    Medium,
    High,
    Urgent,
}

impl ReviewPriority {
    /// 1-3 low, 4-6 medium, 7-8 high, 9-10 urgent; values outside 1..=10 are clamped rather
    /// than rejected because the ticket's own validation is the place to refuse them.
    pub fn from_ticket_priority(p: u8) -> Self {
        match p {
            0..=3 => ReviewPriority::Low,
            4..=6 => ReviewPriority::Medium,
            7..=8 => ReviewPriority::High,
            _ => ReviewPriority::Urgent,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReviewPriority::Low => "low",
            ReviewPriority::Medium => "medium",
            ReviewPriority::High => "high",
            ReviewPriority::Urgent => "urgent",
        }
    }
}

impl std::fmt::Display for ReviewPriority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One policy rule as written in configuration. Every condition that is set (non-empty or
/// `Some`) must hold for the rule to match; within a condition any entry suffices.
#[derive(Clone, Debug, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    pub name: String,
    /// Any phrase found in the inquiry, case-insensitive, on word boundaries.
    #[serde(default)]
    pub phrases: Vec<String>,
    /// Any entry: the context value under `key` equals `value` case-insensitively; `"*"` means
    /// the key is present with any non-empty value.
    #[serde(default)]
    pub context: Vec<ContextMatch>,
    /// The ticket priority is at least this.
    #[serde(default)]
    pub min_priority: Option<u8>,
    /// The ticket's topic is one of these, case-insensitive.
    #[serde(default)]
    pub topics: Vec<String>,
    /// The review priority is raised to at least this when the rule matches.
    #[serde(default)]
    pub raise_to: Option<ReviewPriority>,
}

#[derive(Clone, Debug, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ContextMatch {
    pub key: String,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{count} rules is more than the {max} allowed")]
    TooManyRules { count: usize, max: usize },
    #[error("rule #{index} has an empty name")]
    EmptyName { index: usize },
    #[error("rule name {name:?} is longer than {max} bytes")]
    NameTooLong { name: String, max: usize },
    #[error("rule {name} appears more than once")]
    DuplicateName { name: String },
    #[error("rule {name} has no condition: set phrases, context, min_priority or topics")]
    NoCondition { name: String },
    #[error("rule {name} has min_priority {value}, not within 1..10")]
    MinPriorityOutOfRange { name: String, value: u8 },
    #[error("rule {name} has {count} {field}, more than the {max} allowed")]
    TooManyItems {
        name: String,
        field: &'static str,
        count: usize,
        max: usize,
    },
    #[error("rule {name} has an empty entry in {field}")]
    EmptyItem { name: String, field: &'static str },
    #[error("rule {name} has an entry in {field} longer than {max} bytes")]
    ItemTooLong {
        name: String,
        field: &'static str,
        max: usize,
    },
    #[error("rule {name} has a phrase {phrase:?} without any letters or digits")]
    PhraseWithoutWords { name: String, phrase: String },
}

/// What a policy needs to know about a ticket.
#[derive(Clone, Copy, Debug)]
pub struct PolicyInput<'a> {
    pub inquiry: &'a str,
    pub topic: &'a str,
    pub priority: u8,
    pub context: &'a BTreeMap<String, String>,
}

/// The outcome of evaluating a policy against one ticket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyVerdict {
    /// Names of the matched rules, in rule order.
    pub matched: Vec<String>,
    /// The highest `raise_to` among the matched rules.
    pub raise_to: Option<ReviewPriority>,
}

impl PolicyVerdict {
    /// Any matched rule sends the ticket to human review.
    pub fn forces_review(&self) -> bool {
        !self.matched.is_empty()
    }
}

/// A validated set of policy rules.
#[derive(Clone, Debug)]
pub struct Policy {
    rules: Vec<PolicyRule>,
    compiled: Vec<Compiled>,
}

/// A rule with its text pre-normalised so evaluation does not lowercase the rules every time.
#[derive(Clone, Debug)]
struct Compiled {
    phrases: Vec<Vec<String>>,
    /// (lowercased key, lowercased value or `None` for "any non-empty value")
    context: Vec<(String, Option<String>)>,
    min_priority: Option<u8>,
    topics: Vec<String>,
}

impl Policy {
    /// refunds and compensation, legal threats, asking for a manager, account closure, VIP
    /// customers, and priority 9-10 complaints
    pub fn default_rules() -> Self {
        let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let phrases = |name: &str, items: &[&str], raise_to: Option<ReviewPriority>| PolicyRule {
            name: name.into(),
            phrases: strings(items),
            context: Vec::new(),
            min_priority: None,
            topics: Vec::new(),
            raise_to,
        };
        let vip = |key: &str, value: &str| ContextMatch {
            key: key.into(),
            value: value.into(),
        };
        Self::new(vec![
            phrases(
                "refund_or_compensation",
                &[
                    "refund",
                    "compensation",
                    "compensate",
                    "reimburse",
                    "money back",
                    "chargeback",
                ],
                None,
            ),
            phrases(
                "legal_threat",
                &[
                    "lawyer",
                    "attorney",
                    "legal action",
                    "lawsuit",
                    "sue",
                    "court",
                ],
                Some(ReviewPriority::Urgent),
            ),
            phrases(
                "manager_request",
                &[
                    "speak to a manager",
                    "talk to a manager",
                    "speak to your manager",
                    "talk to your manager",
                    "speak with a manager",
                    "supervisor",
                    "escalate this",
                ],
                Some(ReviewPriority::High),
            ),
            phrases(
                "account_closure",
                &[
                    "close my account",
                    "delete my account",
                    "cancel my account",
                    "account closure",
                ],
                None,
            ),
            PolicyRule {
                name: "vip_customer".into(),
                phrases: Vec::new(),
                context: vec![
                    vip("vip", "true"),
                    vip("vip", "yes"),
                    vip("vip", "1"),
                    vip("customer_tier", "vip"),
                    vip("tier", "vip"),
                ],
                min_priority: None,
                topics: Vec::new(),
                raise_to: Some(ReviewPriority::High),
            },
            PolicyRule {
                name: "high_priority_complaint".into(),
                phrases: strings(&[
                    "complaint",
                    "complain",
                    "unacceptable",
                    "terrible",
                    "disappointed",
                    "furious",
                    "worst",
                ]),
                context: Vec::new(),
                min_priority: Some(9),
                topics: Vec::new(),
                raise_to: Some(ReviewPriority::Urgent),
            },
        ])
        .expect("the default policy rules are valid")
    }

    pub fn new(rules: Vec<PolicyRule>) -> Result<Self, PolicyError> {
        if rules.len() > MAX_RULES {
            return Err(PolicyError::TooManyRules {
                count: rules.len(),
                max: MAX_RULES,
            });
        }
        let mut kept: Vec<PolicyRule> = Vec::with_capacity(rules.len());
        let mut compiled = Vec::with_capacity(rules.len());
        for (index, mut rule) in rules.into_iter().enumerate() {
            rule.name = rule.name.trim().to_string();
            let name = rule.name.clone();
            if name.is_empty() {
                return Err(PolicyError::EmptyName { index });
            }
            if name.len() > MAX_TEXT_BYTES {
                return Err(PolicyError::NameTooLong {
                    name,
                    max: MAX_TEXT_BYTES,
                });
            }
            if kept.iter().any(|r| r.name == name) {
                return Err(PolicyError::DuplicateName { name });
            }
            if rule.phrases.is_empty()
                && rule.context.is_empty()
                && rule.min_priority.is_none()
                && rule.topics.is_empty()
            {
                return Err(PolicyError::NoCondition { name });
            }
            if let Some(value) = rule.min_priority {
                if !(1..=10).contains(&value) {
                    return Err(PolicyError::MinPriorityOutOfRange { name, value });
                }
            }
            let texts = rule.phrases.iter().map(String::as_str);
            check_items(&name, "phrases", rule.phrases.len(), texts)?;
            let texts = rule
                .context
                .iter()
                .flat_map(|c| [c.key.as_str(), c.value.as_str()]);
            check_items(&name, "context", rule.context.len(), texts)?;
            check_items(
                &name,
                "topics",
                rule.topics.len(),
                rule.topics.iter().map(String::as_str),
            )?;
            let mut phrases = Vec::with_capacity(rule.phrases.len());
            for phrase in &rule.phrases {
                let words = words(phrase);
                if words.is_empty() {
                    return Err(PolicyError::PhraseWithoutWords {
                        name,
                        phrase: phrase.clone(),
                    });
                }
                phrases.push(words);
            }
            let context = rule
                .context
                .iter()
                .map(|c| {
                    let value = c.value.trim();
                    (
                        c.key.trim().to_lowercase(),
                        (value != "*").then(|| value.to_lowercase()),
                    )
                })
                .collect();
            let topics = rule
                .topics
                .iter()
                .map(|t| t.trim().to_lowercase())
                .collect();
            compiled.push(Compiled {
                phrases,
                context,
                min_priority: rule.min_priority,
                topics,
            });
            kept.push(rule);
        }
        Ok(Policy {
            rules: kept,
            compiled,
        })
    }

    /// Every rule whose conditions all hold, and the highest priority they raise to.
    pub fn evaluate(&self, input: &PolicyInput) -> PolicyVerdict {
        let tokens = words(input.inquiry);
        let topic = input.topic.trim().to_lowercase();
        let mut verdict = PolicyVerdict::default();
        for (rule, compiled) in self.rules.iter().zip(&self.compiled) {
            if compiled.matches(&tokens, &topic, input) {
                verdict.matched.push(rule.name.clone());
                verdict.raise_to = verdict.raise_to.max(rule.raise_to);
            }
        }
        verdict
    }

    /// The rules after normalisation, in evaluation order.
    pub fn rules(&self) -> &[PolicyRule] {
        &self.rules
    }
}

impl Compiled {
    fn matches(&self, tokens: &[String], topic: &str, input: &PolicyInput) -> bool {
        let phrases =
            self.phrases.is_empty() || self.phrases.iter().any(|p| contains_phrase(tokens, p));
        let context = self.context.is_empty()
            || self.context.iter().any(|(key, wanted)| {
                input.context.iter().any(|(k, v)| {
                    let v = v.trim();
                    k.trim().to_lowercase() == *key
                        && match wanted {
                            Some(wanted) => v.to_lowercase() == *wanted,
                            None => !v.is_empty(),
                        }
                })
            });
        let priority = self.min_priority.is_none_or(|min| input.priority >= min);
        let topics = self.topics.is_empty() || self.topics.iter().any(|t| t == topic);
        phrases && context && priority && topics
    }
}

fn check_items<'a>(
    name: &str,
    field: &'static str,
    count: usize,
    texts: impl Iterator<Item = &'a str>,
) -> Result<(), PolicyError> {
    if count > MAX_ITEMS_PER_RULE {
        return Err(PolicyError::TooManyItems {
            name: name.into(),
            field,
            count,
            max: MAX_ITEMS_PER_RULE,
        });
    }
    for text in texts {
        if text.trim().is_empty() {
            return Err(PolicyError::EmptyItem {
                name: name.into(),
                field,
            });
        }
        if text.len() > MAX_TEXT_BYTES {
            return Err(PolicyError::ItemTooLong {
                name: name.into(),
                field,
                max: MAX_TEXT_BYTES,
            });
        }
    }
    Ok(())
}

fn contains_phrase(tokens: &[String], phrase: &[String]) -> bool {
    tokens.windows(phrase.len()).any(|window| {
        window
            .iter()
            .zip(phrase)
            .all(|(token, word)| word_matches(word, token))
    })
}

/// Inflections a phrase word also matches, so "refund" catches "refunded" and "lawyer" catches
/// "lawyers", while matching whole tokens keeps "sue" away from "issue" and "pursue".
const SUFFIXES: &[&str] = &["s", "es", "d", "ed", "ing", "er", "ers", "ment", "ments"];

fn word_matches(word: &str, token: &str) -> bool {
    if token == word {
        return true;
    }
    // short words ("a", "to", "my") would pick up unrelated words through their suffixes
    if word.chars().count() < 3 {
        return false;
    }
    if let Some(rest) = token.strip_prefix(word) {
        return SUFFIXES.contains(&rest);
    }
    // "sue" -> "suing", "close" -> "closing"
    word.strip_suffix('e')
        .and_then(|stem| token.strip_prefix(stem))
        == Some("ing")
}

#[cfg(test)]
mod tests;
