//! Tests of the knowledge base: loading, validation and the ranking.

use super::*;
use crate::domain::text::{stem, STOPWORDS};
use proptest::prelude::*;

fn answer(kb: &KnowledgeBase, inquiry: &str, topic: &str) -> KbAnswer {
    let a = kb
        .best_answer(inquiry, topic)
        .unwrap_or_else(|| panic!("no answer for {inquiry:?}"));
    println!(
        "{inquiry:?} ({topic}) -> {} {:.3}",
        a.article_id, a.confidence
    );
    a
}

fn article(id: &str, topic: &str, title: &str, keywords: &[&str], body: &str) -> Article {
    Article {
        id: id.into(),
        topic: topic.into(),
        title: title.into(),
        keywords: keywords.iter().map(|k| k.to_string()).collect(),
        answer: body.into(),
    }
}

#[test]
fn the_shipped_knowledge_base_loads() {
    let kb = KnowledgeBase::default_kb();
    assert!((25..=40).contains(&kb.len()), "{} articles", kb.len());
    assert!(!kb.is_empty());
    let topics: std::collections::BTreeSet<&str> =
        kb.articles().iter().map(|a| a.topic.as_str()).collect();
    for topic in [
        "billing",
        "payments",
        "invoices",
        "technical",
        "bugs",
        "features",
        "account",
        "security",
        "privacy",
        "general",
        "how-to",
        "getting-started",
    ] {
        assert!(topics.contains(topic), "no article for {topic}");
    }
}

#[test]
fn every_default_article_is_found_by_its_own_title() {
    let kb = KnowledgeBase::default_kb();
    for a in kb.articles() {
        let found = answer(&kb, &a.title, &a.topic);
        assert_eq!(found.article_id, a.id, "title {:?}", a.title);
        assert!(
            found.confidence >= 0.75,
            "title {:?} scored {}",
            a.title,
            found.confidence
        );
    }
}

#[test]
fn password_reset_is_answered_with_high_confidence() {
    let a = answer(
        &KnowledgeBase::default_kb(),
        "How do I reset my password?",
        "account",
    );
    assert_eq!(a.article_id, "password-reset");
    assert!(a.confidence >= 0.75, "{}", a.confidence);
}

#[test]
fn a_double_charge_finds_a_billing_article() {
    let kb = KnowledgeBase::default_kb();
    let a = answer(
        &kb,
        "I was charged twice for my subscription this month and need a refund",
        "billing",
    );
    assert!(
        ["duplicate-charge", "refund-policy"].contains(&a.article_id.as_str()),
        "{}",
        a.article_id
    );
}

#[test]
fn data_export_is_answered_with_confidence() {
    let a = answer(
        &KnowledgeBase::default_kb(),
        "How do I export my data to CSV?",
        "how-to",
    );
    assert_eq!(a.article_id, "data-export");
    assert!(a.confidence >= 0.7, "{}", a.confidence);
}

#[test]
fn crashing_uploads_find_troubleshooting() {
    let kb = KnowledgeBase::default_kb();
    let a = answer(
        &kb,
        "The app keeps crashing when I upload a large file",
        "technical",
    );
    assert!(
        ["app-crashes", "upload-problems"].contains(&a.article_id.as_str()),
        "{}",
        a.article_id
    );
}

#[test]
fn gibberish_finds_nothing() {
    let kb = KnowledgeBase::default_kb();
    for inquiry in ["qwzx blorf", "", "???", "the a and of"] {
        let a = kb.best_answer(inquiry, "general");
        assert!(
            a.as_ref().is_none_or(|a| a.confidence < 0.2),
            "{inquiry:?} -> {a:?}"
        );
    }
}

#[test]
fn off_topic_questions_score_low() {
    let kb = KnowledgeBase::default_kb();
    for inquiry in [
        "what is the weather like in lisbon tomorrow",
        "recommend a good pizza recipe",
    ] {
        let a = kb.best_answer(inquiry, "general");
        println!("{inquiry:?} -> {a:?}");
        assert!(
            a.as_ref().is_none_or(|a| a.confidence < 0.3),
            "{inquiry:?} -> {a:?}"
        );
    }
}

#[test]
fn a_partly_covered_question_scores_in_the_middle() {
    let kb = KnowledgeBase::default_kb();
    let a = answer(
        &kb,
        "my invoice shows the wrong VAT number for my company in Belgium",
        "billing",
    );
    assert!(
        ["invoice-vat", "invoices-download"].contains(&a.article_id.as_str()),
        "{}",
        a.article_id
    );
    assert!((0.3..0.75).contains(&a.confidence), "{}", a.confidence);
}

#[test]
fn more_of_the_query_matched_means_more_confidence() {
    let kb = KnowledgeBase::default_kb();
    let full = answer(&kb, "reset password", "account").confidence;
    let half = answer(&kb, "reset password zebra giraffe", "account").confidence;
    assert!(full > half, "{full} <= {half}");
    assert!((0.3..0.75).contains(&half), "{half}");
}

#[test]
fn where_a_word_matched_sets_the_confidence() {
    let kb = KnowledgeBase::from_articles(vec![
        article("both", "t", "Refunds", &["refund"], "How refunds work."),
        article("title", "t", "Invoices", &[], "Where to find them."),
        article(
            "keywords",
            "t",
            "Payment plans",
            &["instalment"],
            "Pay over time.",
        ),
        article(
            "body",
            "t",
            "Pricing",
            &[],
            "Plans are priced per seat; a company discount exists.",
        ),
    ])
    .unwrap();
    let confidence = |q: &str, id: &str| {
        let a = kb.best_answer(q, "t").unwrap();
        assert_eq!(a.article_id, id, "{q}");
        println!("{q:?} -> {id} {:.3}", a.confidence);
        a.confidence
    };
    assert!(confidence("refund", "both") >= 0.9);
    assert!((0.6..0.9).contains(&confidence("invoices", "title")));
    assert!((0.6..0.9).contains(&confidence("instalments", "keywords")));
    // a passing mention is not an answer
    assert!(confidence("company", "body") < 0.35);
}

#[test]
fn the_topic_breaks_close_calls() {
    let kb = KnowledgeBase::from_articles(vec![
        article("a", "billing", "Plans", &["plan"], "About plans."),
        article("b", "account", "Plans", &["plan"], "About plans."),
    ])
    .unwrap();
    assert_eq!(kb.best_answer("plan", "general").unwrap().article_id, "a");
    assert_eq!(kb.best_answer("plan", "Account").unwrap().article_id, "b");
    // the boost ranks, it does not change the confidence
    assert_eq!(
        kb.best_answer("plan", "account").unwrap().confidence,
        kb.best_answer("plan", "x").unwrap().confidence
    );
}

#[test]
fn a_query_only_touches_its_terms() {
    let kb = KnowledgeBase::from_articles(vec![
        article("one", "t", "Alpha", &[], "alpha beta"),
        article("two", "t", "Gamma", &[], "gamma delta"),
    ])
    .unwrap();
    assert_eq!(kb.best_answer("delta", "t").unwrap().article_id, "two");
    assert!(kb.best_answer("epsilon", "t").is_none());
}

#[test]
fn the_title_and_keywords_outweigh_the_body() {
    let kb = KnowledgeBase::from_articles(vec![
        article(
            "body",
            "t",
            "Something else",
            &[],
            "Mentions refunds in passing.",
        ),
        article("title", "t", "Refunds", &[], "All about it."),
    ])
    .unwrap();
    assert_eq!(kb.best_answer("refund", "t").unwrap().article_id, "title");
}

#[test]
fn stemming_joins_inflections() {
    for (a, b) in [
        ("charged", "charge"),
        ("charges", "charging"),
        ("crashes", "crash"),
        ("crashing", "crashed"),
        ("resetting", "reset"),
        ("invoices", "invoice"),
        ("uploads", "uploading"),
        ("companies", "company"),
        ("logged", "log"),
        ("settings", "setting"),
        ("passwords", "password"),
    ] {
        assert_eq!(stem(a), stem(b), "{a} / {b}");
    }
    for word in ["access", "status", "analysis", "bus"] {
        assert_eq!(stem(word), word);
    }
}

#[test]
fn stopwords_are_sorted_for_binary_search() {
    assert!(STOPWORDS.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn articles_are_validated_with_clear_messages() {
    let err = |articles: Vec<Article>| {
        KnowledgeBase::from_articles(articles)
            .unwrap_err()
            .to_string()
    };
    let ok = || article("a", "billing", "Title", &["k"], "Answer.");
    assert_eq!(err(vec![]), "knowledge base has no articles");
    assert_eq!(err(vec![ok(), ok()]), "article a appears more than once");
    assert_eq!(
        err(vec![Article {
            id: " ".into(),
            ..ok()
        }]),
        "article #0 has an empty id"
    );
    assert_eq!(
        err(vec![
            ok(),
            Article {
                id: "a b".into(),
                ..ok()
            }
        ]),
        "article #1 has id \"a b\": ids are at most 64 letters, digits, '-', '_' or '.'"
    );
    assert_eq!(
        err(vec![Article {
            topic: "".into(),
            ..ok()
        }]),
        "article a has an empty topic"
    );
    assert_eq!(
        err(vec![Article {
            title: "\n".into(),
            ..ok()
        }]),
        "article a has an empty title"
    );
    assert_eq!(
        err(vec![Article {
            answer: "".into(),
            ..ok()
        }]),
        "article a has an empty answer"
    );
    assert_eq!(
        err(vec![Article {
            keywords: vec!["".into()],
            ..ok()
        }]),
        "article a has an empty keyword"
    );
    assert_eq!(
        err(vec![Article {
            answer: "x".repeat(8193),
            ..ok()
        }]),
        "the answer of article a is 8193 bytes, more than the 8192 allowed"
    );
    assert_eq!(
        err(vec![Article {
            keywords: vec!["k".into(); 65],
            ..ok()
        }]),
        "article a has 65 keywords, more than the 64 allowed"
    );
    assert_eq!(
        err(vec![article("a", "t", "The", &[], "to the a")]),
        "article a has no searchable words"
    );
    let many = (0..=MAX_ARTICLES)
        .map(|i| Article {
            id: format!("a{i}"),
            ..ok()
        })
        .collect();
    assert_eq!(
        err(many),
        "knowledge base has 10001 articles, more than the 10000 allowed"
    );
}

#[test]
fn the_toml_format_is_strict() {
    let kb = KnowledgeBase::from_toml(
        r#"
        [[article]]
        id = "x"
        topic = " Billing "
        title = "Refunds"
        answer = "We refund within 14 days."
        "#,
    )
    .unwrap();
    assert_eq!(kb.articles()[0].topic, "billing");
    assert!(kb.articles()[0].keywords.is_empty());
    let err = |text: &str| KnowledgeBase::from_toml(text).unwrap_err().to_string();
    assert_eq!(err(""), "knowledge base has no articles");
    assert!(
        err("[[article]]\nid = \"x\"").starts_with("knowledge base is not valid toml"),
        "{}",
        err("[[article]]")
    );
    assert!(
        err("[[article]]\nid=\"x\"\ntopic=\"t\"\ntitle=\"t\"\nanswer=\"a\"\nbody=\"b\"")
            .contains("unknown field")
    );
    assert!(err("[[articles]]\nid=\"x\"").contains("unknown field"));
    assert!(err("not toml at all").starts_with("knowledge base is not valid toml"));
}

#[test]
fn results_are_deterministic() {
    let kb = KnowledgeBase::from_articles(vec![
        article("first", "t", "Same", &[], "Same text."),
        article("second", "t", "Same", &[], "Same text."),
        article("third", "t", "Same", &[], "Same text."),
    ])
    .unwrap();
    for _ in 0..20 {
        assert_eq!(
            kb.best_answer("same text", "t").unwrap().article_id,
            "first"
        );
    }
}

proptest! {
    #[test]
    fn confidence_is_always_within_0_and_1(inquiry in any::<String>(), topic in "\\PC{0,12}") {
        let kb = KnowledgeBase::default_kb();
        if let Some(a) = kb.best_answer(&inquiry, &topic) {
            prop_assert!((0.0..=1.0).contains(&a.confidence), "{}", a.confidence);
        }
    }

    #[test]
    fn confidence_stays_in_range_for_words_the_index_knows(words in prop::collection::vec(
        prop::sample::select(vec![
            "password", "reset", "refund", "refund", "invoice", "crash", "upload", "export", "csv",
            "vat", "the", "xyzzy", "billing", "billing billing billing", "api", "key", "2fa",
        ]),
        0..12,
    )) {
        let kb = KnowledgeBase::default_kb();
        if let Some(a) = kb.best_answer(&words.join(" "), "billing") {
            prop_assert!((0.0..=1.0).contains(&a.confidence), "{}", a.confidence);
        }
    }

    #[test]
    fn from_toml_never_panics(text in any::<String>()) {
        let _ = KnowledgeBase::from_toml(&text);
    }

    #[test]
    fn from_toml_never_panics_on_near_valid_files(
        id in "\\PC{0,10}", topic in "\\PC{0,10}", title in "\\PC{0,20}", answer in "\\PC{0,40}",
    ) {
        let text = format!(
            "[[article]]\nid = {id:?}\ntopic = {topic:?}\ntitle = {title:?}\nanswer = {answer:?}\n"
        );
        if let Ok(kb) = KnowledgeBase::from_toml(&text) {
            prop_assert_eq!(kb.len(), 1);
            let _ = kb.best_answer(&title, &topic);
        }
    }

    #[test]
    fn stem_never_panics_and_never_grows(word in "\\PC{0,20}") {
        prop_assert!(stem(&word).chars().count() <= word.chars().count());
    }
}

/// The confidence is the module documentation's formula, computed here independently on a
/// knowledge base where every article's fields have the same length (so no length
/// normalisation): one query term in every title (df = N, a low idf), one in a single body
/// (df = 1, a high idf).
#[test]
fn the_confidence_is_the_documented_formula() {
    let bodies = [
        "tango foxtrot golf",
        "hotel india juliet",
        "mango nectar oxford",
        "quartz radar salmon",
    ];
    let titles = ["kilo lima", "kilo oscar", "kilo papa", "kilo romeo"];
    let keywords = ["sierra", "victor", "whisky", "delta"];
    let articles = (0..4)
        .map(|i| article(&format!("a{i}"), "t", titles[i], &[keywords[i]], bodies[i]))
        .collect();
    let kb = KnowledgeBase::from_articles(articles).unwrap();

    let n = 4.0;
    let idf = |df: f64| (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
    let sat = |x: f64| x * (1.2 + 1.0) / (1.2 + x);
    let strength = |tf: f64| (sat(tf) / sat(3.0 + 3.0 + 1.0)).min(1.0).powi(2);
    // "kilo": once in the title (weight 3) of every article; "tango": once in a0's body.
    let (idf_kilo, idf_tango) = (idf(4.0), idf(1.0));
    let (s_kilo, s_tango) = (strength(3.0), strength(1.0));
    let relevance = (idf_kilo * s_kilo + idf_tango * s_tango) / (idf_kilo + idf_tango);
    let coverage = (s_kilo + s_tango) / 2.0;
    let expected = 0.6 * relevance + 0.4 * coverage;

    let got = answer(&kb, "kilo tango", "t");
    assert_eq!(got.article_id, "a0");
    assert!(
        (got.confidence - expected).abs() < 1e-9,
        "confidence {} but the formula gives {expected}",
        got.confidence
    );
    // A term only one article has is worth more than one all of them have.
    assert!(idf_tango > 5.0 * idf_kilo);
}

#[test]
fn a_file_past_the_size_limit_is_refused_before_parsing() {
    let text = "#".repeat(MAX_TOML_BYTES + 1);
    match KnowledgeBase::from_toml(&text) {
        Err(KnowledgeError::TooLarge { bytes, max }) => {
            assert_eq!((bytes, max), (MAX_TOML_BYTES + 1, MAX_TOML_BYTES));
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}
