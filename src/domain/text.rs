//! What a word is, for every rule that reads an inquiry: the classifier's keywords, the
//! policy's phrases and the knowledge base's terms all split text here, so they can never
//! disagree about where one word ends and the next begins. The knowledge base goes one step
//! further, to [`terms`]: words without stopwords, stemmed.

/// Lowercase runs of letters and digits, in order; everything else separates words. "Can't
/// log-in!" is `["can", "t", "log", "in"]`.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Words that carry no meaning for retrieval, including the filler of support requests
/// ("please help, I need ...").
pub const STOPWORDS: &[&str] = &[
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
pub fn terms(text: &str) -> Vec<String> {
    words(text)
        .into_iter()
        .filter(|w| w.chars().nth(1).is_some() && STOPWORDS.binary_search(&w.as_str()).is_err())
        .map(|w| stem(&w))
        .collect()
}

/// A deliberately light English stemmer: enough that "charges", "charged" and "charging" meet
/// "charge", without the surprises of an aggressive one. Only ever shortens the word.
pub fn stem(word: &str) -> String {
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

    #[test]
    fn punctuation_and_case_separate_nothing_but_words() {
        assert_eq!(words("Can't log-in!"), ["can", "t", "log", "in"]);
        assert_eq!(words("Überweisung 2x"), ["überweisung", "2x"]);
        assert!(words(" ,.;  ").is_empty());
    }

    #[test]
    fn ies_becomes_y_only_when_a_stem_is_left() {
        assert_eq!(stem("flies"), "fly");
        assert_eq!(stem("queries"), "query");
        // Four letters leave too little to be a plural of a "-y" word.
        assert_eq!(stem("ties"), "tie");
        assert_eq!(stem("lies"), "lie");
    }

    #[test]
    fn verb_endings_go_only_when_three_letters_are_left() {
        assert_eq!(stem("charged"), "charg");
        assert_eq!(stem("exporting"), "export");
        assert_eq!(stem("feed"), "feed");
        assert_eq!(stem("doing"), "doing");
    }

    proptest! {
        #[test]
        fn words_are_nonempty_lowercase_alphanumeric_runs(text in "\\PC{0,64}") {
            for w in words(&text) {
                prop_assert!(!w.is_empty());
                prop_assert!(w.chars().all(char::is_alphanumeric));
                prop_assert_eq!(w.to_lowercase(), w.clone());
            }
        }
    }
}
