//! The knowledge base built-in agents answer from, and the ranking that turns an inquiry into
//! the best article and a confidence in 0..=1.
//!
//! Owns the article format (`[[article]]` tables in TOML), its validation and limits, the default
//! knowledge base shipped in the binary (`kb/default.toml`), the text analysis (tokens, stopwords,
//! light stemming) and the BM25F ranking over an inverted index. Loaders take text, never paths:
//! reading files is the caller's business.
//!
//! # Ranking
//!
//! Text is split into lowercase runs of letters and digits; one-character tokens and English
//! stopwords are dropped; the rest is lightly stemmed (plural `s`/`es`/`ies`, `ing`, `ed`,
//! doubled final consonants, final `e`), identically for articles and queries.
//!
//! Each article has three fields with weights `w`: title 3.0, keywords 3.0, answer body 1.0.
//! Title and keywords are written to say what the article is about; the body mentions much in
//! passing. For term `t` and article `d` the BM25F pseudo-frequency and score are
//!
//! ```text
//! tf~(t,d)   = sum over fields f of  w_f * tf_f(t,d) / (1 - b + b * len_f(d) / avglen_f)
//! sat(x)     = x * (k1 + 1) / (k1 + x)
//! score(q,d) = sum over distinct query terms t of  idf(t) * sat(tf~(t,d))
//! idf(t)     = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))
//! ```
//!
//! with `k1 = 1.2`, `b = 0.75`, `N` articles, `df(t)` articles containing `t`. Because nothing
//! in a term's contribution depends on the query, the index stores it precomputed per posting,
//! and a query only walks the postings of its own terms. The best article is the one with the
//! highest score.
//!
//! # Confidence
//!
//! A BM25 score has no scale of its own, so it is normalised by what the query could attain.
//! Each term's match is first given a strength in 0..=1:
//!
//! ```text
//! strength(t,d) = min(1, sat(tf~(t,d)) / sat(W))^2     W = w_title + w_keywords + w_body
//!               (0 when d does not contain t)
//! relevance     = sum over t of idf(t) * strength(t,d)  /  sum over t of idf(t)
//! coverage      = sum over t of strength(t,d)  /  (number of distinct query terms)
//! confidence    = 0.6 * relevance + 0.4 * coverage
//! ```
//!
//! `sat(W)` is what a term earns when it appears once in every field of an average-length
//! article: the most a query can expect per term. `relevance` is thus the BM25 score over the
//! maximum attainable for the query, per term. Squaring calibrates the strengths to where the
//! term sits: about 0.95 for a term in both title and keywords, 0.7 for title or keywords
//! alone, 0.3 for a passing mention in the body, so that a single common word met in passing
//! is never taken for an answer. Relevance weighs terms by rarity; coverage counts every term
//! alike, so a query of which only half is answered stays in the middle however rare its
//! answered half is. A term no article contains counts in both denominators, in relevance with
//! df = 0 (the highest idf), otherwise "reset password zebra giraffe" would look as certain as
//! "reset password". Queries with no searchable term, or none that any article contains, get no
//! answer.
//!
//! The ticket's topic only ranks: articles of that topic have their score multiplied by 1.15
//! when choosing the best one, but the confidence ignores it, since the topic says where to
//! look, not how well the article answers. Exact ties go to the earlier article.

use std::collections::HashMap;

/// Most articles a knowledge base may hold.
pub const MAX_ARTICLES: usize = 10_000;
/// Longest answer, in bytes.
pub const MAX_ANSWER_BYTES: usize = 8 * 1024;
/// Longest title, in bytes.
pub const MAX_TITLE_BYTES: usize = 200;
/// Longest id, in bytes.
pub const MAX_ID_BYTES: usize = 64;
/// Longest topic, in bytes.
pub const MAX_TOPIC_BYTES: usize = 64;
/// Most keywords on one article.
pub const MAX_KEYWORDS: usize = 64;
/// Longest keyword, in bytes.
pub const MAX_KEYWORD_BYTES: usize = 100;
/// Largest knowledge base file accepted, in bytes; enough for the article limits above.
pub const MAX_TOML_BYTES: usize = 128 * 1024 * 1024;

const K1: f64 = 1.2;
const B: f64 = 0.75;
const FIELD_WEIGHTS: [f64; FIELDS] = [3.0, 3.0, 1.0];
const FIELDS: usize = 3;
const TOPIC_BOOST: f64 = 1.15;
const RELEVANCE_SHARE: f64 = 0.6;
const STRENGTH_EXPONENT: f64 = 2.0;

const DEFAULT_KB: &str = include_str!("../../kb/default.toml");

/// One knowledge base article.
#[derive(Clone, Debug, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Article {
    pub id: String,
    pub topic: String,
    pub title: String,
    #[serde(default)]
    pub keywords: Vec<String>,
    pub answer: String,
}

/// The best article for an inquiry and how sure the ranking is that it answers it.
#[derive(Clone, Debug, PartialEq)]
pub struct KbAnswer {
    pub article_id: String,
    pub title: String,
    pub answer: String,
    /// 0..=1, see the module documentation for the formula.
    pub confidence: f64,
}

/// The knowledge base's answer to an inquiry, scored before the ticket reached the desk's
/// state (off the critical section), so a built-in agent answers in the same batch, and
/// commit, as the ticket's creation. Valid only for the topic it was scored for: the answer
/// of every built-in agent is the same for one inquiry and topic, whatever its tier.
#[derive(Clone, Debug, PartialEq)]
pub struct PreparedAnswer {
    pub topic: String,
    pub answer: Option<KbAnswer>,
}

#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    #[error("knowledge base is not valid toml: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("knowledge base is {bytes} bytes, more than the {max} allowed")]
    TooLarge { bytes: usize, max: usize },
    #[error("knowledge base has no articles")]
    Empty,
    #[error("knowledge base has {count} articles, more than the {max} allowed")]
    TooManyArticles { count: usize, max: usize },
    #[error("article #{index} has an empty id")]
    EmptyId { index: usize },
    #[error(
        "article #{index} has id {id:?}: ids are at most {max} letters, digits, '-', '_' or '.'"
    )]
    InvalidId {
        index: usize,
        id: String,
        max: usize,
    },
    #[error("article {id} appears more than once")]
    DuplicateId { id: String },
    #[error("article {id} has an empty {field}")]
    EmptyField { id: String, field: &'static str },
    #[error("the {field} of article {id} is {bytes} bytes, more than the {max} allowed")]
    FieldTooLong {
        id: String,
        field: &'static str,
        bytes: usize,
        max: usize,
    },
    #[error("article {id} has {count} keywords, more than the {max} allowed")]
    TooManyKeywords {
        id: String,
        count: usize,
        max: usize,
    },
    #[error("article {id} has no searchable words")]
    NothingSearchable { id: String },
}

/// Articles plus the inverted index that ranks them.
#[derive(Clone, Debug)]
pub struct KnowledgeBase {
    articles: Vec<Article>,
    /// Lowercased article topics, parallel to `articles`.
    topics: Vec<String>,
    index: HashMap<String, Term>,
    /// idf of a term no article contains (df = 0).
    unknown_idf: f64,
}

#[derive(Clone, Debug)]
struct Term {
    idf: f64,
    postings: Vec<Posting>,
}

#[derive(Clone, Copy, Debug)]
struct Posting {
    article: u32,
    /// idf * sat(tf~): the term's whole contribution to the article's score.
    contribution: f64,
    /// How well the term matched, 0..=1: see `strength`.
    strength: f64,
}

/// What a query has found in one article so far.
#[derive(Clone, Copy, Debug, Default)]
struct Hit {
    score: f64,
    /// sum of idf(t) * strength(t)
    weighted_strength: f64,
    /// sum of strength(t)
    strength: f64,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KbFile {
    #[serde(default)]
    article: Vec<Article>,
}

impl KnowledgeBase {
    /// The knowledge base shipped in the binary.
    pub fn default_kb() -> Self {
        Self::from_toml(DEFAULT_KB).expect("the embedded kb/default.toml is valid")
    }

    /// Parses `[[article]]` tables and validates them.
    pub fn from_toml(text: &str) -> Result<Self, KnowledgeError> {
        if text.len() > MAX_TOML_BYTES {
            return Err(KnowledgeError::TooLarge {
                bytes: text.len(),
                max: MAX_TOML_BYTES,
            });
        }
        let file: KbFile = toml::from_str(text)?;
        Self::from_articles(file.article)
    }

    /// Validates `articles` and builds the index. Topics are trimmed and lowercased, ids and
    /// the other fields are trimmed.
    pub fn from_articles(articles: Vec<Article>) -> Result<Self, KnowledgeError> {
        if articles.is_empty() {
            return Err(KnowledgeError::Empty);
        }
        if articles.len() > MAX_ARTICLES {
            return Err(KnowledgeError::TooManyArticles {
                count: articles.len(),
                max: MAX_ARTICLES,
            });
        }
        let mut seen = std::collections::HashSet::with_capacity(articles.len());
        let mut kept = Vec::with_capacity(articles.len());
        for (index, article) in articles.into_iter().enumerate() {
            let article = validate(index, article)?;
            if !seen.insert(article.id.clone()) {
                return Err(KnowledgeError::DuplicateId { id: article.id });
            }
            kept.push(article);
        }
        Self::build(kept)
    }

    fn build(articles: Vec<Article>) -> Result<Self, KnowledgeError> {
        // per article and field: term frequencies and field length, in analysed tokens
        let mut fields: Vec<[(HashMap<String, u32>, usize); FIELDS]> =
            Vec::with_capacity(articles.len());
        let mut total_len = [0usize; FIELDS];
        let mut with_field = [0usize; FIELDS];
        for article in &articles {
            let texts = [
                article.title.clone(),
                article.keywords.join(" "),
                article.answer.clone(),
            ];
            let analysed = texts.map(|text| {
                let terms = terms(&text);
                let len = terms.len();
                let mut tf: HashMap<String, u32> = HashMap::new();
                for term in terms {
                    *tf.entry(term).or_default() += 1;
                }
                (tf, len)
            });
            if analysed.iter().all(|(_, len)| *len == 0) {
                return Err(KnowledgeError::NothingSearchable {
                    id: article.id.clone(),
                });
            }
            for (f, (_, len)) in analysed.iter().enumerate() {
                total_len[f] += len;
                with_field[f] += usize::from(*len > 0);
            }
            fields.push(analysed);
        }
        let n = articles.len() as f64;
        // averaged over the articles that have the field: articles without keywords must not make
        // every other article's keywords look long
        let mut avg_len = [0.0; FIELDS];
        for f in 0..FIELDS {
            avg_len[f] = total_len[f] as f64 / with_field[f].max(1) as f64;
        }

        // pseudo-frequencies first; idf needs the document frequency of the finished postings
        let mut pseudo: HashMap<String, Vec<(u32, f64)>> = HashMap::new();
        for (a, analysed) in fields.iter().enumerate() {
            let mut per_term: HashMap<&str, f64> = HashMap::new();
            for (f, (tf, len)) in analysed.iter().enumerate() {
                // a field empty in every article has no average to normalise against
                let norm = if avg_len[f] > 0.0 {
                    1.0 - B + B * *len as f64 / avg_len[f]
                } else {
                    1.0
                };
                for (term, count) in tf {
                    *per_term.entry(term.as_str()).or_default() +=
                        FIELD_WEIGHTS[f] * f64::from(*count) / norm;
                }
            }
            for (term, tf) in per_term {
                pseudo
                    .entry(term.to_string())
                    .or_default()
                    .push((a as u32, tf));
            }
        }
        let index = pseudo
            .into_iter()
            .map(|(term, mut postings)| {
                postings.sort_by_key(|(a, _)| *a);
                let idf = idf(n, postings.len() as f64);
                let postings = postings
                    .into_iter()
                    .map(|(article, tf)| Posting {
                        article,
                        contribution: idf * saturate(tf),
                        strength: strength(tf),
                    })
                    .collect();
                (term, Term { idf, postings })
            })
            .collect();
        let topics = articles.iter().map(|a| a.topic.clone()).collect();
        Ok(KnowledgeBase {
            articles,
            topics,
            index,
            unknown_idf: idf(n, 0.0),
        })
    }

    pub fn len(&self) -> usize {
        self.articles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.articles.is_empty()
    }

    /// The articles in load order.
    pub fn articles(&self) -> &[Article] {
        &self.articles
    }

    /// best article for the inquiry; `topic` is the ticket's topic (articles of that topic get a
    /// modest boost)
    ///
    /// `None` when the inquiry has no searchable word that any article contains.
    pub fn best_answer(&self, inquiry: &str, topic: &str) -> Option<KbAnswer> {
        let mut query = terms(inquiry);
        let mut seen = std::collections::HashSet::with_capacity(query.len());
        query.retain(|t| seen.insert(t.clone()));
        if query.is_empty() {
            return None;
        }
        // a word no article contains still counts, as the rarest possible word
        let mut idf_total = 0.0;
        let mut hits: HashMap<u32, Hit> = HashMap::new();
        for term in &query {
            let Some(entry) = self.index.get(term) else {
                idf_total += self.unknown_idf;
                continue;
            };
            idf_total += entry.idf;
            for posting in &entry.postings {
                let hit = hits.entry(posting.article).or_default();
                hit.score += posting.contribution;
                hit.weighted_strength += entry.idf * posting.strength;
                hit.strength += posting.strength;
            }
        }
        let topic = topic.trim().to_lowercase();
        let mut best: Option<(u32, f64, Hit)> = None;
        for (&article, &hit) in &hits {
            let boost = if self.topics[article as usize] == topic {
                TOPIC_BOOST
            } else {
                1.0
            };
            let ranked = hit.score * boost;
            // the map's order is arbitrary, so an exact tie falls back to the article order
            let better = match best {
                None => true,
                Some((other, other_ranked, _)) => {
                    ranked > other_ranked || (ranked == other_ranked && article < other)
                }
            };
            if better {
                best = Some((article, ranked, hit));
            }
        }
        let (article, _, hit) = best?;
        let relevance = if idf_total > 0.0 {
            hit.weighted_strength / idf_total
        } else {
            0.0
        };
        let coverage = hit.strength / query.len() as f64;
        let confidence =
            (RELEVANCE_SHARE * relevance + (1.0 - RELEVANCE_SHARE) * coverage).clamp(0.0, 1.0);
        let article = &self.articles[article as usize];
        Some(KbAnswer {
            article_id: article.id.clone(),
            title: article.title.clone(),
            answer: article.answer.clone(),
            confidence: if confidence.is_finite() {
                confidence
            } else {
                0.0
            },
        })
    }
}

fn idf(articles: f64, df: f64) -> f64 {
    (1.0 + (articles - df + 0.5) / (df + 0.5)).ln()
}

/// How well a term with pseudo-frequency `tf` matched, 0..=1 (see the module documentation).
fn strength(tf: f64) -> f64 {
    let reference = saturate(FIELD_WEIGHTS.iter().sum());
    (saturate(tf) / reference).min(1.0).powf(STRENGTH_EXPONENT)
}

fn saturate(tf: f64) -> f64 {
    tf * (K1 + 1.0) / (K1 + tf)
}

fn validate(index: usize, article: Article) -> Result<Article, KnowledgeError> {
    let id = article.id.trim().to_string();
    if id.is_empty() {
        return Err(KnowledgeError::EmptyId { index });
    }
    let id_ok = id.len() <= MAX_ID_BYTES
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !id_ok {
        return Err(KnowledgeError::InvalidId {
            index,
            id,
            max: MAX_ID_BYTES,
        });
    }
    let field = |name: &'static str, value: &str, max: usize| -> Result<String, KnowledgeError> {
        let value = value.trim();
        if value.is_empty() {
            return Err(KnowledgeError::EmptyField {
                id: id.clone(),
                field: name,
            });
        }
        if value.len() > max {
            return Err(KnowledgeError::FieldTooLong {
                id: id.clone(),
                field: name,
                bytes: value.len(),
                max,
            });
        }
        Ok(value.to_string())
    };
    let topic = field("topic", &article.topic, MAX_TOPIC_BYTES)?.to_lowercase();
    let title = field("title", &article.title, MAX_TITLE_BYTES)?;
    let answer = field("answer", &article.answer, MAX_ANSWER_BYTES)?;
    if article.keywords.len() > MAX_KEYWORDS {
        return Err(KnowledgeError::TooManyKeywords {
            id,
            count: article.keywords.len(),
            max: MAX_KEYWORDS,
        });
    }
    let keywords = article
        .keywords
        .iter()
        .map(|k| field("keyword", k, MAX_KEYWORD_BYTES))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Article {
        id,
        topic,
        title,
        keywords,
        answer,
    })
}

/// Words that carry no meaning for retrieval, including the filler of support requests
/// ("please help, I need ...").
const STOPWORDS: &[&str] = &[
    "a", "about", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as", "at",
    "be", "because", "been", "before", "being", "but", "by", "can", "cannot", "cant", "could",
    "did", "didnt", "do", "does", "doesnt", "doing", "dont", "for", "from", "get", "gets",
    "getting", "got", "had", "has", "have", "having", "he", "hello", "help", "her", "here", "hey",
    "hi", "him", "his", "how", "i", "if", "im", "in", "into", "is", "isnt", "it", "its", "ive",
    "just", "keep", "keeps", "kept", "let", "like", "me", "might", "more", "most", "much", "must",
    "my", "need", "needs", "no", "not", "now", "of", "on", "one", "or", "our", "out", "please",
    "really", "she", "should", "so", "some", "still", "tell", "than", "thank", "thanks", "that",
    "the", "their", "them", "then", "there", "these", "they", "think", "this", "those", "to",
    "today", "too", "trying", "up", "us", "very", "want", "wants", "was", "way", "we", "were",
    "what", "when", "where", "which", "while", "who", "why", "will", "with", "wont", "would",
    "yes", "you", "your", "yours",
];

/// Analysed terms of `text`: lowercase words, stopwords and one-character tokens removed,
/// then stemmed.
fn terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| w.chars().nth(1).is_some() && STOPWORDS.binary_search(&w.as_str()).is_err())
        .map(|w| stem(&w))
        .collect()
}

/// A deliberately light English stemmer: enough that "charges", "charged" and "charging" meet
/// "charge", without the surprises of an aggressive one. Only ever shortens the word.
fn stem(word: &str) -> String {
    let chars: Vec<char> = word.chars().collect();
    let mut w: &[char] = &chars;
    let ends = |w: &[char], suffix: &str| {
        let s: Vec<char> = suffix.chars().collect();
        w.len() > s.len() && w.ends_with(&s)
    };
    let has_vowel = |w: &[char]| w.iter().any(|c| "aeiouy".contains(*c));
    let mut replaced: Option<Vec<char>> = None;

    // plurals
    if ends(w, "ies") && w.len() > 4 {
        let mut v = w[..w.len() - 3].to_vec();
        v.push('y');
        replaced = Some(v);
    } else if ends(w, "sses")
        || ends(w, "shes")
        || ends(w, "ches")
        || ends(w, "xes")
        || ends(w, "zes")
    {
        w = &w[..w.len() - 2];
    } else if ends(w, "s") && w.len() > 3 && !ends(w, "ss") && !ends(w, "us") && !ends(w, "is") {
        w = &w[..w.len() - 1];
    }
    let owned;
    if let Some(v) = replaced {
        owned = v;
        w = &owned;
    }

    // verb endings, only when a real stem with a vowel is left
    let mut cut = false;
    for suffix in ["ing", "ed"] {
        let n = suffix.len();
        if ends(w, suffix) && w.len() - n >= 3 && has_vowel(&w[..w.len() - n]) {
            w = &w[..w.len() - n];
            cut = true;
            break;
        }
    }
    if cut {
        // "resetting" -> "reset", "logged" -> "log"
        let n = w.len();
        if n >= 2 && w[n - 1] == w[n - 2] && "bdfgkmnprt".contains(w[n - 1]) {
            w = &w[..n - 1];
        }
    }
    // "charge" and "charg(ed)" meet at "charg"
    if w.len() > 3 && w[w.len() - 1] == 'e' {
        w = &w[..w.len() - 1];
    }
    w.iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
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
}
