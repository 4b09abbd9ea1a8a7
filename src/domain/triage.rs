//! Reading an inquiry before it becomes a ticket: its topic (the caller's, or the classifier's)
//! and the knowledge base's best answer for that topic. Done once per inquiry, off the
//! runtime's critical section, because scoring is the CPU-heavy part of an inquiry; the desk
//! then takes the topic as settled and applies the answer in the batch that creates the
//! ticket.

use super::classify::{Classifier, Topic};
use super::knowledge::{KbAnswer, KnowledgeBase, PreparedAnswer};

/// The classifier and the knowledge base, together.
#[derive(Debug)]
pub struct Triage {
    classifier: Classifier,
    kb: KnowledgeBase,
}

impl Triage {
    pub fn new(classifier: Classifier, kb: KnowledgeBase) -> Self {
        Triage { classifier, kb }
    }

    /// The topic of an inquiry (`given` wins when not blank) and the answer built-in agents
    /// would give for it.
    pub fn inquiry(&self, inquiry: &str, given: Option<&str>) -> (Topic, PreparedAnswer) {
        let topic = self.classifier.topic(inquiry, given);
        let (Topic::Given(name) | Topic::Classified(name)) = &topic;
        let answer = self.kb.best_answer(inquiry, name);
        (topic, PreparedAnswer { answer })
    }

    /// The knowledge base's answer for a ticket whose topic is already settled.
    pub fn score(&self, inquiry: &str, topic: &str) -> Option<KbAnswer> {
        self.kb.best_answer(inquiry, topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inquiry_is_classified_unless_its_topic_is_given_and_scored_for_that_topic() {
        let triage = Triage::new(Classifier::default_rules(), KnowledgeBase::default_kb());
        let (topic, prepared) = triage.inquiry("How do I reset my password?", None);
        assert_eq!(topic, Topic::Classified("account".into()));
        assert_eq!(
            prepared.answer,
            triage.score("How do I reset my password?", "account")
        );
        let (topic, _) = triage.inquiry("How do I reset my password?", Some(" Billing "));
        assert_eq!(topic, Topic::Given("billing".into()));
        let (topic, _) = triage.inquiry("How do I reset my password?", Some("  "));
        assert!(matches!(topic, Topic::Classified(_)));
    }
}
