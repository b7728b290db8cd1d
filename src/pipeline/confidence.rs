//! Confidence of an answer, from its evidence: a library match, the similarity of the cited
//! source, how well the written answer agrees with the cited text, and whether the output
//! needed repair. Maps confidence to the bands reviewers sort by (library / high / review).
//! Does not call anything; thresholds come from `answering:` in the config.

use serde::{Deserialize, Serialize};

/// How much a reviewer should trust a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Band {
    /// Answered from a past answer to the same question (no generation).
    Library,
    /// Generated, grounded in a close source, at or above the review threshold.
    High,
    /// Below the review threshold, or an abstention: a person must look.
    Review,
}

impl Band {
    pub fn as_str(self) -> &'static str {
        match self {
            Band::Library => "library",
            Band::High => "high",
            Band::Review => "review",
        }
    }
}

/// What the confidence of a generated answer is computed from (kept with the row, so a
/// reviewer or an auditor can see why it got its band).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Signals {
    /// Cosine similarity of the question and the cited source (the best source when the
    /// model cited none).
    pub source_similarity: f32,
    /// The model cited a source.
    pub cited: bool,
    /// Cosine similarity of the written explanation and the cited source, when there is both.
    pub agreement: Option<f32>,
    /// The router had to re-prompt for valid structured output.
    pub repaired: bool,
    /// A choice slot got no legal value.
    pub missing_choice: bool,
    /// A text slot was left empty (the model's text was unusable).
    pub missing_text: bool,
    /// The model's own probability of the choice it made (when the backend gave it).
    pub choice_probability: Option<f32>,
    /// How many legal values that choice had (3 for Yes / No / N/A).
    pub choice_count: u32,
    /// The choice says the opposite of the sentence it rests on ("Yes" from "we do not…").
    pub polarity_conflict: bool,
    /// Generated text that its source does not support.
    pub text_unsupported: bool,
    /// The choice the supporting sentence's polarity points at (affirms → Yes, denies → No,
    /// not applicable → N/A), when the slot has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentence_choice: Option<String>,
}

/// Confidence of a library match: 0.9 at the threshold up to 1.0 for the same question.
pub fn library(similarity: f32, threshold: f32) -> f32 {
    let span = (1.0 - threshold).max(1e-3);
    (0.9 + 0.1 * ((similarity - threshold) / span)).clamp(0.9, 1.0)
}

/// Confidence of a generated answer, 0..1, from two measured signals, weighed on the
/// labelled set `fixtures/eval` (see BENCHMARKS.md): how close the sentence the answer rests on
/// is to the question (`source_similarity`: 0.45, the support floor, counts 0; 0.80 counts
/// fully) and how sure the model is of its choice (`choice_probability` above the uniform
/// `1/choice_count`: 0.6 counts fully). The model's certainty weighs more: on that set a
/// close sentence with an unsure model was wrong about as often as right. Without a
/// probability (a backend that gives none) the support alone counts, at most 0.6.
pub fn generated(s: &Signals) -> f32 {
    let support = ((s.source_similarity - 0.45) / 0.35).clamp(0.0, 1.0);
    let mut c = match s.choice_probability {
        Some(p) => {
            let uniform = 1.0 / s.choice_count.max(2) as f32;
            let sure = ((p - uniform) / (0.6 - uniform).max(0.05)).clamp(0.0, 1.0);
            0.4 * support + 0.6 * sure
        }
        None => 0.6 * support,
    };
    if s.polarity_conflict {
        c *= 0.5;
    }
    if s.text_unsupported {
        c *= 0.5;
    }
    if !s.cited {
        c *= 0.8;
    }
    if let Some(a) = s.agreement {
        // Explanations that restate the source (cosine ≥ 0.7) keep everything; unrelated
        // text (≤ 0.2) loses a quarter.
        c *= 0.75 + 0.25 * ((a - 0.2) / 0.5).clamp(0.0, 1.0);
    }
    if s.repaired {
        c *= 0.85;
    }
    if s.missing_choice {
        c *= 0.5;
    }
    if s.missing_text {
        c *= 0.6;
    }
    c.clamp(0.0, 1.0)
}

/// The band of a generated answer.
pub fn band(confidence: f32, review_threshold: f32) -> Band {
    if confidence >= review_threshold {
        Band::High
    } else {
        Band::Review
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_raises_and_doubt_lowers_confidence() {
        let strong = Signals {
            source_similarity: 0.75,
            cited: true,
            choice_probability: Some(0.6),
            choice_count: 3,
            ..Default::default()
        };
        let c = generated(&strong);
        assert!(c > 0.9, "{c}");
        assert_eq!(band(c, 0.5), Band::High);
        // A close sentence with a model at chance is not trusted.
        let unsure = Signals {
            choice_probability: Some(0.36),
            ..strong.clone()
        };
        assert_eq!(band(generated(&unsure), 0.5), Band::Review);
        // Without probabilities, support alone reaches at most 0.6.
        let no_probs = Signals {
            choice_probability: None,
            source_similarity: 1.0,
            ..strong.clone()
        };
        assert!((generated(&no_probs) - 0.6).abs() < 1e-6);
        let conflict = Signals {
            polarity_conflict: true,
            ..strong.clone()
        };
        assert_eq!(band(generated(&conflict), 0.5), Band::Review);
        let weak = Signals {
            source_similarity: 0.35,
            cited: false,
            choice_probability: Some(0.4),
            choice_count: 3,
            ..Default::default()
        };
        assert_eq!(band(generated(&weak), 0.5), Band::Review);
        let repaired = Signals {
            repaired: true,
            missing_choice: true,
            ..strong.clone()
        };
        assert!(generated(&repaired) < 0.5 * c);
        assert_eq!(library(0.86, 0.86), 0.9);
        assert_eq!(library(1.0, 0.86), 1.0);
    }
}
