//! Whether a passage supports an answer: splits evidence into sentences, builds extractive
//! explanations (the passage's sentences closest to the question, cleaned and cut to fit),
//! measures the content-word overlap of a text with its source, and reads a sentence's
//! polarity (does it say the control is in place, absent, or not applicable). Pure functions:
//! no calls, no embeddings (the caller brings the vectors).

/// What a sentence says about the control it mentions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polarity {
    /// States that something is done or in place.
    Affirms,
    /// States that something is not done, not in place, or not yet.
    Denies,
    /// States that the matter does not apply (no data centre of one's own, say).
    NotApplicable,
}

impl Polarity {
    /// The legal choice this polarity points at, if the slot has one that means it.
    pub fn choice(self, choices: &[String]) -> Option<String> {
        let wanted: &[&str] = match self {
            Polarity::Affirms => &["yes", "y", "true", "compliant", "implemented", "verified"],
            Polarity::Denies => &["no", "n", "false", "noncompliant", "notimplemented"],
            Polarity::NotApplicable => &["na", "notapplicable", "n/a"],
        };
        choices
            .iter()
            .find(|c| wanted.contains(&normalize(c).as_str()))
            .cloned()
    }

    /// The polarity a legal choice means, when it is a plain yes, no or not-applicable value.
    pub fn of_choice(choice: &str) -> Option<Polarity> {
        match normalize(choice).as_str() {
            "yes" | "y" | "true" | "compliant" | "implemented" | "verified" => {
                Some(Polarity::Affirms)
            }
            "no" | "n" | "false" | "noncompliant" | "notimplemented" => Some(Polarity::Denies),
            "na" | "notapplicable" => Some(Polarity::NotApplicable),
            _ => None,
        }
    }
}

fn normalize(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Splits a passage into sentences: at `.`, `!`, `?` or `;` followed by a space and a capital,
/// digit or bullet, at line breaks, and at Markdown list items. Headings (`# …`) and table
/// rules are dropped; bullets and emphasis markers are removed. Sentences with fewer than four
/// words are dropped (labels, fragments).
pub fn sentences(passage: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in passage.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.chars().all(|c| "|-: ".contains(c)) {
            continue;
        }
        let line = line
            .trim_start_matches(['-', '*', '•', '>', ' '])
            .replace("**", "")
            .replace('`', "");
        let line = line.trim();
        let chars: Vec<char> = line.chars().collect();
        let mut start = 0;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let ends = matches!(c, '.' | '!' | '?' | ';')
                && chars.get(i + 1).is_some_and(|n| n.is_whitespace())
                && chars
                    .get(i + 2)
                    .is_some_and(|n| n.is_uppercase() || n.is_ascii_digit() || *n == '(')
                && !abbreviation(&chars[start..=i]);
            if ends {
                push_sentence(&mut out, chars[start..=i].iter().collect());
                start = i + 2;
                i += 2;
                continue;
            }
            i += 1;
        }
        if start < chars.len() {
            push_sentence(&mut out, chars[start..].iter().collect());
        }
    }
    out
}

/// Whether the text ends with a common abbreviation ("e.g.", "Inc.", "approx.").
fn abbreviation(text: &[char]) -> bool {
    let s: String = text.iter().collect();
    let last = s.split_whitespace().last().unwrap_or("").to_lowercase();
    matches!(
        last.as_str(),
        "e.g." | "i.e." | "etc." | "inc." | "ltd." | "approx." | "no." | "vs." | "dr." | "mr."
    )
}

fn push_sentence(out: &mut Vec<String>, s: String) {
    let s = s.trim().trim_end_matches(';').trim().to_string();
    if s.split_whitespace().count() >= 4 {
        out.push(s);
    }
}

/// A chunk's text without the Markdown heading it may start with: chunks begin with their
/// heading line ("# Encryption"), sometimes run into the first sentence when the chunker
/// joined lines; `heading` is the chunk's heading path, whose last part is cut there.
pub fn without_heading(text: &str, heading: Option<&str>) -> String {
    let trimmed = text.trim_start();
    if !trimmed.starts_with('#') {
        return text.to_string();
    }
    let rest = trimmed.trim_start_matches('#').trim_start();
    let last = heading
        .and_then(|h| h.rsplit(['>', '›']).next())
        .map(str::trim)
        .unwrap_or("");
    if !last.is_empty()
        && let Some(after) = rest.strip_prefix(last)
    {
        return after.trim_start().to_string();
    }
    // Unknown heading: keep the line (its words join the first sentence) without the marks.
    rest.to_string()
}

/// Words that carry no content for overlap (English function words and questionnaire filler).
const STOP_WORDS: &[&str] = &[
    "a",
    "an",
    "and",
    "are",
    "as",
    "at",
    "be",
    "been",
    "by",
    "can",
    "do",
    "does",
    "for",
    "from",
    "has",
    "have",
    "how",
    "if",
    "in",
    "is",
    "it",
    "its",
    "of",
    "on",
    "or",
    "our",
    "that",
    "the",
    "their",
    "there",
    "these",
    "this",
    "to",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "who",
    "will",
    "with",
    "you",
    "your",
    "all",
    "any",
    "per",
    "such",
    "than",
    "then",
    "they",
    "them",
    "us",
    "please",
    "describe",
    "provide",
    "explain",
    "company",
    "organization",
    "organisation",
    "yes",
    "no",
];

/// The content words of a text: lower case, alphanumeric, not stop words, crudely stemmed
/// (plural and common suffixes cut), so "encrypts" and "encryption" meet as "encrypt".
pub fn content_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| w.len() > 1 && !STOP_WORDS.contains(&w.as_str()))
        .map(|w| stem(&w))
        .collect()
}

fn stem(w: &str) -> String {
    for suffix in [
        "ations", "ation", "ions", "ion", "ments", "ment", "ing", "ied", "ies", "ed", "es", "s",
    ] {
        if let Some(base) = w.strip_suffix(suffix)
            && base.chars().count() >= 4
        {
            return base.to_string();
        }
    }
    w.to_string()
}

/// The share of `text`'s content words that occur in `source` (0 when `text` has none).
pub fn overlap(text: &str, source: &str) -> f32 {
    let words = content_words(text);
    if words.is_empty() {
        return 0.0;
    }
    let source: std::collections::HashSet<String> = content_words(source).into_iter().collect();
    let shared = words.iter().filter(|w| source.contains(*w)).count();
    shared as f32 / words.len() as f32
}

/// Negation cues that make a sentence deny what it mentions.
const DENIALS: &[&str] = &[
    " not ",
    " no ",
    " never ",
    "n't ",
    " none ",
    " neither ",
    " nor ",
    " without ",
    " lack ",
    " lacks ",
    " yet to ",
    " have no ",
    " has no ",
    " is no ",
    " are no ",
];

/// Cues that the matter does not apply to the company.
const NOT_APPLICABLE: &[&str] = &[
    "not applicable",
    "does not apply",
    "do not apply",
    "n/a",
    "out of scope",
    "responsibility of the provider",
    "provider's responsibility",
    "the provider's",
];

/// What the sentence says about what it mentions: not applicable, denied (a negation cue), or
/// affirmed. A crude reading: good enough to flag a "Yes" cited from a sentence that says "we
/// do not", not to decide alone.
pub fn polarity(sentence: &str) -> Polarity {
    let s = format!(
        " {} ",
        sentence.to_lowercase().replace(['.', ',', ';', ':'], " ")
    );
    if NOT_APPLICABLE.iter().any(|c| s.contains(c)) {
        return Polarity::NotApplicable;
    }
    if DENIALS.iter().any(|c| s.contains(c)) {
        return Polarity::Denies;
    }
    Polarity::Affirms
}

/// Cuts text to at most `max_chars` characters at a word boundary, with an ellipsis when cut.
pub fn cut(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let mut out = String::new();
    for w in text.split_whitespace() {
        if out.chars().count() + w.chars().count() + 2 > max_chars {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_split_at_ends_and_lines_and_drop_headings() {
        let s = sentences(
            "# Access control\n- All accounts require MFA. Passwords are at least 14 characters \
             long; Access reviews happen quarterly.\n**Note:** e.g. SSO covers most apps in use.\nShort bit",
        );
        assert_eq!(
            s,
            vec![
                "All accounts require MFA.",
                "Passwords are at least 14 characters long",
                "Access reviews happen quarterly.",
                "Note: e.g. SSO covers most apps in use.",
            ]
        );
    }

    #[test]
    fn a_heading_run_into_the_text_is_cut() {
        let t = "# Encryption All customer data is encrypted at rest with AES-256.";
        assert_eq!(
            without_heading(t, Some("Policy > Encryption")),
            "All customer data is encrypted at rest with AES-256."
        );
        assert_eq!(sentences(&without_heading(t, Some("Encryption"))).len(), 1);
        assert_eq!(without_heading("Plain text.", Some("X")), "Plain text.");
    }

    #[test]
    fn overlap_counts_shared_content_words() {
        let src = "All production data is encrypted at rest with AES-256 in AWS KMS.";
        assert!(overlap("Data is encrypted at rest (AES-256).", src) > 0.9);
        assert!(overlap("The company is one of the largest in Europe.", src) < 0.2);
        assert_eq!(overlap("", src), 0.0);
    }

    #[test]
    fn polarity_reads_denials_and_not_applicable() {
        assert_eq!(
            polarity("All employee accounts require multi-factor authentication."),
            Polarity::Affirms
        );
        assert_eq!(
            polarity("We do not currently hold SOC 2 certification."),
            Polarity::Denies
        );
        assert_eq!(
            polarity("Hardware security modules are not used."),
            Polarity::Denies
        );
        assert_eq!(
            polarity("Physical controls are the provider's responsibility, so not applicable."),
            Polarity::NotApplicable
        );
        let yn: Vec<String> = vec!["Yes".into(), "No".into(), "N/A".into()];
        assert_eq!(Polarity::Denies.choice(&yn).as_deref(), Some("No"));
        assert_eq!(Polarity::NotApplicable.choice(&yn).as_deref(), Some("N/A"));
        assert_eq!(Polarity::of_choice("Y"), Some(Polarity::Affirms));
        assert_eq!(Polarity::of_choice("Partial"), None);
    }

    #[test]
    fn cut_keeps_words_whole() {
        assert_eq!(cut("one two three four", 11), "one two…");
        assert_eq!(cut("short", 10), "short");
    }
}
