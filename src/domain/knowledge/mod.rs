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

use super::text::terms;

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

const DEFAULT_KB: &str = include_str!("../../../kb/default.toml");

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

/// The knowledge base's answer to an inquiry for the ticket's topic, scored before the ticket
/// reached the desk's state (off the critical section), so a built-in agent answers in the
/// same batch, and commit, as the ticket's creation. The answer of every built-in agent is the
/// same for one inquiry and topic, whatever its tier, so one scoring serves every tier.
#[derive(Clone, Debug, PartialEq)]
pub struct PreparedAnswer {
    /// `None`: no article matches; the agent escalates.
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

#[cfg(test)]
mod tests;
