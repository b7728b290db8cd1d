//! The evaluation's results: per-slot comparisons, tallies, choice scores beside their
//! baselines (`EvalReport`, `Quality` and their parts), and their text rendering for
//! `rfpq eval`. Computes nothing (that is `score` and `baseline`) and reads no file.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What one answer slot holds in both files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlotComparison {
    pub sheet: String,
    pub row: u32,
    /// The slot's cell(s), e.g. `C7` or `E7:G7` for an X-matrix.
    pub cells: String,
    pub kind: String,
    pub truth: String,
    pub filled: Option<String>,
    /// Choice slots: the filled value is the true one (synonyms such as N/A ↔ NA agree).
    pub agrees: Option<bool>,
    /// Text slots: cosine similarity of the two texts' embeddings.
    pub similarity: Option<f32>,
    /// Choice slots: the legal values (the cell's dropdown, an X-matrix's column labels;
    /// empty when unknown).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// The row's band in the review workbook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<String>,
    /// Choice slots: rfpq wrote the row into the file (the review workbook's Written column;
    /// without it, whether the filled copy answers one of the row's choice slots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written: Option<bool>,
    /// Choice slots of rows not written: the review workbook's draft value for the slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft_agrees: Option<bool>,
    /// Copy-nearest baseline: the value copied from the most similar past question, that
    /// question's location and its cosine with this row's question.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_similarity: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_agrees: Option<bool>,
}

/// Counts for one group of rows (all, a band or a confidence range).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    /// Rows (questions) in the group.
    pub rows: usize,
    /// Choice slots the truth answers, and how many of them the filled copy answers.
    pub choice_slots: usize,
    pub choice_answered: usize,
    pub choice_agree: usize,
    /// `choice_agree / choice_answered`: exact agreement where both answer.
    pub choice_agreement: Option<f64>,
    /// `choice_agree / choice_slots`.
    pub choice_accuracy: Option<f64>,
    pub text_slots: usize,
    pub text_answered: usize,
    /// Filled texts at least `similar_at` similar to the true text.
    pub text_similar: usize,
    pub text_mean_similarity: Option<f64>,
    /// Answered slots / slots the truth answers.
    pub coverage: Option<f64>,
    /// Mean confidence from the review workbook.
    pub mean_confidence: Option<f64>,
}

/// The evaluation of one filled copy against its truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// What the filled copy holds.
    pub overall: Tally,
    /// By review band (`library`, `high`, `review`; `unlisted` without a review entry). A
    /// row not written counts with its draft choice, so these are reliability tables.
    pub by_band: BTreeMap<String, Tally>,
    /// By confidence range, e.g. `0.60-0.80` (drafts counted like `by_band`).
    pub by_confidence: BTreeMap<String, Tally>,
    /// Text slots count as similar at this cosine or above.
    pub similar_at: f32,
    /// Whether a review workbook was used.
    pub review: bool,
    /// Choice slots: rfpq's figures beside the trivial baselines on the same slots.
    pub quality: Quality,
    /// Every compared slot.
    pub slots: Vec<SlotComparison>,
}

/// One answerer's record on choice slots.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Choice slots it gave a value for.
    pub answered: usize,
    /// Of those, values that agree with the truth.
    pub right: usize,
    /// `right / answered`.
    pub precision: Option<f64>,
    /// `answered /` every choice slot the truth answers.
    pub coverage: Option<f64>,
    /// `right /` every choice slot the truth answers.
    pub accuracy: Option<f64>,
}

/// A baseline scored on every labelled choice slot and on exactly the slots rfpq answered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BaselineScores {
    /// Every labelled choice slot the baseline gives a value for.
    pub all: Score,
    /// The slots rfpq wrote into the file.
    pub on_written: Score,
    /// The slots rfpq drafted (with a review workbook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_drafts: Option<Score>,
}

/// The always-majority baseline's value for one list of legal values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MajorityChoice {
    /// The legal values (empty when the slots have no known list).
    pub options: Vec<String>,
    /// The value the truth gives most often on these slots.
    pub value: String,
    /// How many of `slots` the truth answers with it.
    pub count: usize,
    pub slots: usize,
}

/// Copying the most similar question's answer from another answered questionnaire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CopyBaseline {
    /// Answered questions of the other questionnaire.
    pub past_questions: usize,
    /// At any similarity.
    pub scores: BaselineScores,
    /// Only where the nearest past question is at least `cutoff` similar.
    pub cutoff: f32,
    pub above_cutoff: Score,
}

/// How many truth slots with one value were answered with it (recall of that value).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValueRecall {
    pub value: String,
    /// It is the majority value of its slots.
    pub majority: bool,
    /// Truth slots with this value.
    pub truth: usize,
    /// Of them: written into the file with it.
    pub written: usize,
    /// Drafted with it (with a review workbook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drafted: Option<usize>,
    /// Baselines: always-majority (all of them, or none) and copy-nearest.
    pub always_majority: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_nearest: Option<usize>,
}

/// Choice slots: precision of written choices, coverage, drafts and recall of each true
/// value, each beside the trivial baselines on the same slots.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    /// Choice slots the truth answers (the denominator of coverage).
    pub choice_slots: usize,
    /// Choices in the filled copy (under `write_drafts: review_only`, the trusted ones).
    pub written: Score,
    /// Written choices by review band (`library`, `high`; `unlisted` without a review entry).
    pub written_by_band: BTreeMap<String, Score>,
    /// The review workbook's choices for rows not written (with a review workbook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drafts: Option<Score>,
    /// The always-majority baseline's value, per list of legal values.
    pub majority: Vec<MajorityChoice>,
    pub always_majority: BaselineScores,
    /// With an answered questionnaire to copy from (`--baseline`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_nearest: Option<CopyBaseline>,
    /// Per true value, most frequent first.
    pub recall: Vec<ValueRecall>,
}

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |v| format!("{:.1}%", v * 100.0))
}

impl Quality {
    /// "always \"Yes\"" when every choice slot has the same majority value.
    fn majority_label(&self) -> String {
        match self.majority.as_slice() {
            [m] => format!("always \"{}\"", m.value),
            _ => "always the majority".into(),
        }
    }

    /// The choice figures as one table, each beside its baselines on the same slots, then
    /// the recall of each true value.
    pub fn render(&self) -> String {
        let n = self.choice_slots;
        let mut s = String::new();
        if n == 0 {
            s.push_str("no labelled choice slots\n");
            return s;
        }
        let counts: Vec<String> = self
            .recall
            .iter()
            .map(|r| format!("{} {}", r.value, r.truth))
            .collect();
        s.push_str(&format!(
            "choice slots: {n} labelled ({})\n",
            counts.join(", ")
        ));
        if self.majority.len() > 1 {
            for m in &self.majority {
                s.push_str(&format!(
                    "  majority of {} slots with values [{}]: \"{}\" ({})\n",
                    m.slots,
                    m.options.join(", "),
                    m.value,
                    m.count
                ));
            }
        }
        let majority = self.majority_label();
        s.push_str(&format!(
            "\n{:<44} {:>15} {:>10} {:>9} {:>13}\n",
            "choice slots", "right/answered", "precision", "coverage", "right of all"
        ));
        let line = |s: &mut String, label: &str, sc: &Score, full: bool| {
            let (cov, acc) = if full {
                (pct(sc.coverage), pct(sc.accuracy))
            } else {
                (String::new(), String::new())
            };
            let text = format!(
                "{label:<44} {:>15} {:>10} {cov:>9} {acc:>13}",
                format!("{}/{}", sc.right, sc.answered),
                pct(sc.precision),
            );
            s.push_str(text.trim_end());
            s.push('\n');
        };
        let same = |s: &mut String, b: &BaselineScores, drafts: bool, name: &str| {
            let sc = if drafts {
                b.on_drafts.as_ref()
            } else {
                Some(&b.on_written)
            };
            if let Some(sc) = sc {
                line(s, &format!("  baseline {name}, same slots"), sc, false);
            }
        };
        line(&mut s, "rfpq: written into the file", &self.written, true);
        for (band, sc) in &self.written_by_band {
            line(&mut s, &format!("  of which band {band}"), sc, true);
        }
        same(&mut s, &self.always_majority, false, &majority);
        if let Some(c) = &self.copy_nearest {
            same(&mut s, &c.scores, false, "copy nearest");
        }
        if let Some(d) = &self.drafts {
            line(&mut s, "rfpq: drafts (review workbook only)", d, true);
            same(&mut s, &self.always_majority, true, &majority);
            if let Some(c) = &self.copy_nearest {
                same(&mut s, &c.scores, true, "copy nearest");
            }
        }
        line(
            &mut s,
            &format!("baseline: {majority}"),
            &self.always_majority.all,
            true,
        );
        if let Some(c) = &self.copy_nearest {
            line(
                &mut s,
                &format!(
                    "baseline: copy nearest of {} past questions",
                    c.past_questions
                ),
                &c.scores.all,
                true,
            );
            line(
                &mut s,
                &format!("  same, only where cosine >= {:.2}", c.cutoff),
                &c.above_cutoff,
                true,
            );
        }
        s.push_str(&format!(
            "\n{:<24} {:>6} {:>8} {:>8} {:>16} {:>13}\n",
            "recall of true value", "truth", "written", "drafted", majority, "copy nearest"
        ));
        let opt = |v: Option<usize>| v.map_or_else(|| "-".into(), |v| v.to_string());
        for r in &self.recall {
            let name = if r.majority {
                format!("{} (majority)", r.value)
            } else {
                r.value.clone()
            };
            s.push_str(&format!(
                "{name:<24} {:>6} {:>8} {:>8} {:>16} {:>13}\n",
                r.truth,
                r.written,
                opt(r.drafted),
                r.always_majority,
                opt(r.copy_nearest),
            ));
        }
        s
    }
}

impl EvalReport {
    /// The report as text: the choice figures beside their baselines, text slots, then the
    /// reliability tables.
    pub fn render(&self) -> String {
        let o = &self.overall;
        let mut s = format!("{} questions compared\n", o.rows);
        s.push_str(&self.quality.render());
        s.push_str(&format!(
            "\ntext slots: {} answered of {}, mean similarity {}, {} at or above {:.2}\ncoverage of all slots: {}\n",
            o.text_answered,
            o.text_slots,
            o.text_mean_similarity
                .map_or_else(|| "-".into(), |v| format!("{v:.2}")),
            o.text_similar,
            self.similar_at,
            pct(o.coverage),
        ));
        let table = |title: &str, rows: &BTreeMap<String, Tally>| {
            let mut t = format!(
                "\n{title:<12} {:>5} {:>10} {:>10} {:>9} {:>9}\n",
                "rows", "agreement", "accuracy", "text sim", "mean conf"
            );
            for (k, v) in rows {
                t.push_str(&format!(
                    "{k:<12} {:>5} {:>10} {:>10} {:>9} {:>9}\n",
                    v.rows,
                    pct(v.choice_agreement),
                    pct(v.choice_accuracy),
                    v.text_mean_similarity
                        .map_or_else(|| "-".into(), |x| format!("{x:.2}")),
                    v.mean_confidence
                        .map_or_else(|| "-".into(), |x| format!("{x:.2}")),
                ));
            }
            t
        };
        if self.review {
            s.push_str("\nreliability (written choices and drafts alike):");
            s.push_str(&table("band", &self.by_band));
            s.push_str(&table("confidence", &self.by_confidence));
        } else {
            s.push_str("\n(no review workbook: no reliability table)\n");
        }
        s
    }
}
