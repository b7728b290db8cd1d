//! Scoring compared slots: tallies of agreement, coverage and text similarity per group of
//! rows, and the choice figures (written, drafts, recall of each true value) beside the
//! always-majority baseline and, when computed, the copy-nearest one. Pure arithmetic over
//! `SlotComparison`s; reads no workbook and embeds nothing.

use super::{
    BaselineScores, CopyBaseline, MajorityChoice, Quality, Score, SlotComparison, Tally,
    ValueRecall,
};
use crate::pipeline::answer::legal_choice;
use std::collections::{BTreeMap, BTreeSet};

impl Score {
    pub(super) fn new(answered: usize, right: usize, labelled: usize) -> Self {
        let ratio = |a: usize, b: usize| (b > 0).then(|| a as f64 / b as f64);
        Self {
            answered,
            right,
            precision: ratio(right, answered),
            coverage: ratio(answered, labelled),
            accuracy: ratio(right, labelled),
        }
    }
}

/// The confidence range a row falls in.
pub(super) fn confidence_range(c: f64) -> &'static str {
    match c {
        c if c < 0.4 => "0.00-0.40",
        c if c < 0.6 => "0.40-0.60",
        c if c < 0.8 => "0.60-0.80",
        c if c < 0.9 => "0.80-0.90",
        _ => "0.90-1.00",
    }
}

impl Tally {
    pub(super) fn add(&mut self, s: &SlotComparison, similar_at: f32) {
        if let Some(agrees) = s.agrees {
            self.choice_slots += 1;
            if s.filled.is_some() {
                self.choice_answered += 1;
                self.choice_agree += usize::from(agrees);
            }
        } else {
            self.text_slots += 1;
            if s.filled.is_some() {
                self.text_answered += 1;
                self.text_similar += usize::from(s.similarity.unwrap_or(0.0) >= similar_at);
            }
        }
    }

    pub(super) fn finish(&mut self, similarities: &[f32], confidences: &[f64]) {
        let ratio = |a: usize, b: usize| (b > 0).then(|| a as f64 / b as f64);
        self.choice_agreement = ratio(self.choice_agree, self.choice_answered);
        self.choice_accuracy = ratio(self.choice_agree, self.choice_slots);
        self.coverage = ratio(
            self.choice_answered + self.text_answered,
            self.choice_slots + self.text_slots,
        );
        self.text_mean_similarity = (!similarities.is_empty()).then(|| {
            similarities.iter().map(|s| f64::from(*s)).sum::<f64>() / similarities.len() as f64
        });
        self.mean_confidence = (!confidences.is_empty())
            .then(|| confidences.iter().sum::<f64>() / confidences.len() as f64);
    }
}

/// A value as one of `options` (synonyms mapped: "NA" → "N/A"), or as written.
fn canonical(value: &str, options: &[String]) -> String {
    legal_choice(value, options).unwrap_or_else(|| value.trim().to_string())
}

/// `value` agrees with the true value `truth` (synonyms such as N/A ↔ NA agree).
pub(super) fn agrees_with(value: &str, truth: &str) -> bool {
    legal_choice(value, &[truth.to_string()]).is_some()
}

/// The choice figures of compared slots, each beside its baselines on the same slots.
/// `copy`: (past questions, cut-off) when the copy-nearest baseline was computed.
pub(super) fn quality(
    slots: &[SlotComparison],
    review: bool,
    copy: Option<(usize, f32)>,
) -> Quality {
    let choices: Vec<&SlotComparison> = slots.iter().filter(|s| s.agrees.is_some()).collect();
    let labelled = choices.len();
    // The majority value of each list of legal values (ties: the earlier in the list).
    let mut groups: BTreeMap<Vec<String>, BTreeMap<String, usize>> = BTreeMap::new();
    for s in &choices {
        *groups
            .entry(s.options.clone())
            .or_default()
            .entry(canonical(&s.truth, &s.options))
            .or_default() += 1;
    }
    let majority: Vec<MajorityChoice> = groups
        .iter()
        .filter_map(|(options, counts)| {
            let position = |v: &str| options.iter().position(|o| o == v).unwrap_or(usize::MAX);
            let (value, count) = counts.iter().max_by(|a, b| {
                a.1.cmp(b.1)
                    .then_with(|| position(b.0).cmp(&position(a.0)))
                    .then_with(|| b.0.cmp(a.0))
            })?;
            Some(MajorityChoice {
                options: options.clone(),
                value: value.clone(),
                count: *count,
                slots: counts.values().sum(),
            })
        })
        .collect();
    let majority_of = |s: &SlotComparison| -> &str {
        majority
            .iter()
            .find(|m| m.options == s.options)
            .map_or("", |m| m.value.as_str())
    };
    let majority_right = |s: &SlotComparison| agrees_with(majority_of(s), &s.truth);

    // A score over the slots `pick` selects: (answered, right) for each slot.
    let score = |pick: &dyn Fn(&SlotComparison) -> Option<bool>| {
        let (mut answered, mut right) = (0, 0);
        for s in &choices {
            if let Some(r) = pick(s) {
                answered += 1;
                right += usize::from(r);
            }
        }
        Score::new(answered, right, labelled)
    };
    let is_written = |s: &SlotComparison| s.filled.is_some();
    let is_draft = |s: &SlotComparison| review && s.draft.is_some() && !is_written(s);
    let baseline = |right: &dyn Fn(&SlotComparison) -> Option<bool>| BaselineScores {
        all: score(&|s| right(s)),
        on_written: score(&|s| if is_written(s) { right(s) } else { None }),
        on_drafts: review.then(|| score(&|s| if is_draft(s) { right(s) } else { None })),
    };

    let mut written_by_band: BTreeMap<String, Score> = BTreeMap::new();
    if review {
        let bands: BTreeSet<String> = choices
            .iter()
            .filter(|s| is_written(s))
            .map(|s| s.band.clone().unwrap_or_else(|| "unlisted".into()))
            .collect();
        for band in bands {
            let in_band = |s: &SlotComparison| {
                is_written(s) && s.band.as_deref().unwrap_or("unlisted") == band
            };
            let sc = score(&|s| in_band(s).then(|| s.agrees == Some(true)));
            written_by_band.insert(band, sc);
        }
    }

    let copy_nearest = copy.map(|(past_questions, cutoff)| CopyBaseline {
        past_questions,
        scores: baseline(&|s| s.copied.as_ref().map(|_| s.copy_agrees == Some(true))),
        cutoff,
        above_cutoff: score(&|s| {
            (s.copied.is_some() && s.copy_similarity.is_some_and(|c| c >= cutoff))
                .then(|| s.copy_agrees == Some(true))
        }),
    });

    let mut recall: BTreeMap<String, ValueRecall> = BTreeMap::new();
    for s in &choices {
        let value = canonical(&s.truth, &s.options);
        let r = recall.entry(value.clone()).or_insert_with(|| ValueRecall {
            majority: majority.iter().any(|m| m.value == value),
            value,
            truth: 0,
            written: 0,
            drafted: review.then_some(0),
            always_majority: 0,
            copy_nearest: copy.map(|_| 0),
        });
        r.truth += 1;
        r.written += usize::from(is_written(s) && s.agrees == Some(true));
        if let Some(d) = r.drafted.as_mut() {
            *d += usize::from(is_draft(s) && s.draft_agrees == Some(true));
        }
        r.always_majority += usize::from(majority_right(s));
        if let Some(c) = r.copy_nearest.as_mut() {
            *c += usize::from(s.copy_agrees == Some(true));
        }
    }
    let mut recall: Vec<ValueRecall> = recall.into_values().collect();
    recall.sort_by(|a, b| b.truth.cmp(&a.truth).then_with(|| a.value.cmp(&b.value)));

    Quality {
        choice_slots: labelled,
        written: score(&|s| is_written(s).then(|| s.agrees == Some(true))),
        written_by_band,
        drafts: review.then(|| score(&|s| is_draft(s).then(|| s.draft_agrees == Some(true)))),
        always_majority: baseline(&|s| Some(majority_right(s))),
        majority,
        copy_nearest,
        recall,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_count_agreement_among_answered_slots() {
        let slot = |agrees: Option<bool>, filled: bool, sim: Option<f32>| SlotComparison {
            sheet: "S".into(),
            row: 2,
            cells: "C2".into(),
            kind: "choice".into(),
            truth: "Yes".into(),
            filled: filled.then(|| "Yes".into()),
            agrees,
            similarity: sim,
            ..Default::default()
        };
        let mut t = Tally::default();
        for s in [
            slot(Some(true), true, None),
            slot(Some(false), true, None),
            slot(Some(false), false, None),
            slot(None, true, Some(0.9)),
            slot(None, true, Some(0.5)),
        ] {
            t.add(&s, 0.7);
        }
        t.finish(&[0.9, 0.5], &[0.8]);
        assert_eq!(t.choice_agreement, Some(0.5));
        assert_eq!(t.choice_accuracy, Some(1.0 / 3.0));
        assert_eq!(t.text_similar, 1);
        assert_eq!(t.coverage, Some(0.8));
        assert!((t.text_mean_similarity.unwrap() - 0.7).abs() < 1e-6);
        assert_eq!(confidence_range(0.65), "0.60-0.80");
    }

    #[test]
    fn the_majority_of_a_tie_is_the_earlier_legal_value() {
        let slot = |truth: &str| SlotComparison {
            kind: "choice".into(),
            truth: truth.into(),
            agrees: Some(false),
            options: vec!["Yes".into(), "No".into()],
            ..Default::default()
        };
        let q = quality(&[slot("No"), slot("Yes"), slot("n")], false, None);
        assert_eq!(q.majority[0].value, "No");
        let q = quality(&[slot("No"), slot("Yes")], false, None);
        assert_eq!(q.majority[0].value, "Yes");
        assert_eq!(q.always_majority.all, Score::new(2, 1, 2));
    }
}
