//! Compares a filled questionnaire with a labelled copy of the same questionnaire, slot by
//! slot: exact agreement on choice slots, embedding similarity on text slots, coverage, and
//! how the review workbook's confidence bands relate to correctness (a reliability table), so
//! thresholds can be calibrated on labelled data. Every choice figure (precision of written
//! choices, drafts, recall of each true value) is given beside its trivial baselines on the
//! same slots: always the truth's majority value, and optionally copying the most similar
//! question's answer from another answered questionnaire. Reads the files; writes nothing.

use crate::kb::library::LibraryAnswer;
use crate::pipeline::answer::legal_choice;
use crate::router::Router;
use crate::workbook::{
    self, CellRef, OtherRowKind, SheetInfo, SkipReason, SlotKind, WorkbookError, WorkbookPackage,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Evaluation failures, each fit to show a user.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{which}: {source}")]
    Workbook {
        which: &'static str,
        source: WorkbookError,
    },
    #[error("the review workbook cannot be read: {0}")]
    Review(String),
    #[error("the truth workbook has no answered question to compare with")]
    NothingToCompare,
    #[error("embedding the text answers failed: {0}")]
    Embed(String),
    #[error("the baseline questionnaire cannot be read: {0}")]
    Baseline(String),
    #[error("the baseline questionnaire has no answered question to copy from")]
    EmptyBaseline,
}

/// The copy-nearest baseline also reports the rows whose nearest past question is at least
/// this similar (cosine).
pub const COPY_AT: f32 = 0.80;

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

impl Score {
    fn new(answered: usize, right: usize, labelled: usize) -> Self {
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

/// What the review workbook says about one row.
#[derive(Debug, Clone, Default)]
struct ReviewEntry {
    confidence: Option<f64>,
    band: String,
    /// The draft: slot values joined with " | ", in slot order.
    answer: Option<String>,
    /// The Written column ("yes"/"no"), when the workbook has one.
    written: Option<bool>,
}

/// A compared unit: one cell, or one X-matrix group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Unit {
    Cell(CellRef),
    Marks(Vec<(CellRef, String)>),
}

fn open(
    bytes: Vec<u8>,
    which: &'static str,
) -> Result<(WorkbookPackage, workbook::Questionnaire), EvalError> {
    let err = |source| EvalError::Workbook { which, source };
    let (loaded, q) = workbook::load_and_detect(bytes).map_err(err)?;
    let pkg = workbook::open(&loaded.bytes).map_err(err)?;
    Ok((pkg, q))
}

/// The answer units of every question row (answered or not) of a detected workbook.
fn units(q: &workbook::Questionnaire) -> BTreeMap<(String, u32), BTreeSet<Unit>> {
    let mut out: BTreeMap<(String, u32), BTreeSet<Unit>> = BTreeMap::new();
    for plan in q.sheets.iter().filter(|s| s.fill) {
        for qr in &plan.questions {
            let set = out.entry((plan.name.clone(), qr.row)).or_default();
            for slot in &qr.slots {
                if slot.kind == SlotKind::Mark {
                    set.insert(Unit::Marks(
                        slot.mark_cells
                            .iter()
                            .copied()
                            .zip(slot.choices.iter().cloned())
                            .collect(),
                    ));
                } else {
                    set.insert(Unit::Cell(slot.cell));
                }
            }
        }
        for o in plan
            .other_rows
            .iter()
            .filter(|o| o.kind == OtherRowKind::NoAnswerCell)
        {
            out.entry((plan.name.clone(), o.row)).or_default();
        }
        for s in plan
            .skipped_cells
            .iter()
            .filter(|s| s.reason == SkipReason::Prefilled)
        {
            if let Some(set) = out.get_mut(&(plan.name.clone(), s.cell.row + 1)) {
                set.insert(Unit::Cell(s.cell));
            }
        }
    }
    out
}

/// A unit's value in one sheet: the marked label of an X-matrix, or the cell's text.
fn value_of(sheet: Option<&SheetInfo>, unit: &Unit) -> Option<String> {
    let sheet = sheet?;
    match unit {
        Unit::Cell(c) => sheet
            .value(*c)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        Unit::Marks(cells) => cells
            .iter()
            .find(|(c, _)| sheet.value(*c).is_some_and(|v| !v.trim().is_empty()))
            .map(|(_, label)| label.clone()),
    }
}

/// Reads the review workbook's Review sheet: (sheet, row) → confidence and band.
fn read_review(bytes: &[u8]) -> Result<BTreeMap<(String, u32), ReviewEntry>, EvalError> {
    use calamine::{Data, Reader, Xlsx};
    let mut xl: Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes))
        .map_err(|e: calamine::XlsxError| EvalError::Review(e.to_string()))?;
    let range = xl
        .worksheet_range("Review")
        .map_err(|e| EvalError::Review(format!("no Review sheet: {e}")))?;
    let mut rows = range.rows();
    let header: Vec<String> = rows
        .next()
        .ok_or_else(|| EvalError::Review("the Review sheet is empty".into()))?
        .iter()
        .map(|c| c.to_string())
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| EvalError::Review(format!("no '{name}' column")))
    };
    let (c_sheet, c_row, c_conf, c_band) =
        (col("Sheet")?, col("Row")?, col("Confidence")?, col("Band")?);
    let (c_answer, c_written) = (col("Answer").ok(), col("Written").ok());
    let mut out = BTreeMap::new();
    for r in rows {
        let num = |c: usize| match r.get(c) {
            Some(Data::Float(f)) => Some(*f),
            Some(Data::Int(i)) => Some(*i as f64),
            Some(Data::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        let Some(row) = num(c_row) else { continue };
        let sheet = r.get(c_sheet).map(|c| c.to_string()).unwrap_or_default();
        let text = |c: Option<usize>| {
            c.and_then(|c| r.get(c))
                .map(|v| v.to_string().trim().to_string())
                .filter(|v| !v.is_empty())
        };
        out.insert(
            (sheet, row as u32),
            ReviewEntry {
                confidence: num(c_conf),
                band: r.get(c_band).map(|c| c.to_string()).unwrap_or_default(),
                answer: text(c_answer),
                written: text(c_written)
                    .map(|w| matches!(w.to_ascii_lowercase().as_str(), "yes" | "y" | "true" | "1")),
            },
        );
    }
    Ok(out)
}

fn unit_cells(unit: &Unit) -> String {
    match unit {
        Unit::Cell(c) => c.to_string(),
        Unit::Marks(cells) => match (cells.first(), cells.last()) {
            (Some(a), Some(b)) => format!("{}:{}", a.0, b.0),
            _ => String::new(),
        },
    }
}

/// The confidence range a row falls in.
fn confidence_range(c: f64) -> &'static str {
    match c {
        c if c < 0.4 => "0.00-0.40",
        c if c < 0.6 => "0.40-0.60",
        c if c < 0.8 => "0.60-0.80",
        c if c < 0.9 => "0.80-0.90",
        _ => "0.90-1.00",
    }
}

impl Tally {
    fn add(&mut self, s: &SlotComparison, similar_at: f32) {
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

    fn finish(&mut self, similarities: &[f32], confidences: &[f64]) {
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

/// The legal values of a choice unit: an X-matrix's labels, else the cell's dropdown in the
/// truth (or, failing that, in the filled copy).
fn options_of(unit: &Unit, truth: Option<&SheetInfo>, filled: Option<&SheetInfo>) -> Vec<String> {
    match unit {
        Unit::Marks(cells) => cells.iter().map(|(_, label)| label.clone()).collect(),
        Unit::Cell(c) => [truth, filled]
            .into_iter()
            .flatten()
            .filter_map(|s| s.list_validation_at(*c))
            .map(|v| v.choices.clone())
            .find(|c| !c.is_empty())
            .unwrap_or_default(),
    }
}

/// A value as one of `options` (synonyms mapped: "NA" → "N/A"), or as written.
fn canonical(value: &str, options: &[String]) -> String {
    legal_choice(value, options).unwrap_or_else(|| value.trim().to_string())
}

/// `value` agrees with the true value `truth` (synonyms such as N/A ↔ NA agree).
fn agrees_with(value: &str, truth: &str) -> bool {
    legal_choice(value, &[truth.to_string()]).is_some()
}

/// The question text of every question row of a detected workbook.
fn question_texts(q: &workbook::Questionnaire, out: &mut BTreeMap<(String, u32), String>) {
    for plan in q.sheets.iter().filter(|s| s.fill) {
        let rows = plan.questions.iter().map(|qr| (qr.row, &qr.text)).chain(
            plan.other_rows
                .iter()
                .filter(|o| o.kind == OtherRowKind::NoAnswerCell)
                .map(|o| (o.row, &o.text)),
        );
        for (row, text) in rows {
            if !text.trim().is_empty() {
                out.entry((plan.name.clone(), row))
                    .or_insert_with(|| text.trim().to_string());
            }
        }
    }
}

/// Compares every answer unit the truth answers with the filled copy, and, with the review
/// workbook, marks which rows were written and gives the others' drafts.
fn compare(
    truth: (&WorkbookPackage, &workbook::Questionnaire),
    filled: (&WorkbookPackage, &workbook::Questionnaire),
    reviewed: Option<&BTreeMap<(String, u32), ReviewEntry>>,
) -> Vec<SlotComparison> {
    let (truth_pkg, truth_q) = truth;
    let (filled_pkg, filled_q) = filled;
    let mut rows = units(truth_q);
    for (key, set) in units(filled_q) {
        rows.entry(key).or_default().extend(set);
    }
    let mut slots: Vec<SlotComparison> = Vec::new();
    for ((sheet, row), set) in &rows {
        let first = slots.len();
        // An X-matrix group covers its cells: do not compare them one by one as well.
        let marked: BTreeSet<CellRef> = set
            .iter()
            .filter_map(|u| match u {
                Unit::Marks(c) => Some(c.iter().map(|(c, _)| *c)),
                Unit::Cell(_) => None,
            })
            .flatten()
            .collect();
        let mut seen_marks = false;
        for unit in set {
            match unit {
                Unit::Cell(c) if marked.contains(c) => continue,
                Unit::Marks(_) if seen_marks => continue,
                Unit::Marks(_) => seen_marks = true,
                Unit::Cell(_) => {}
            }
            let (truth_sheet, filled_sheet) = (truth_pkg.sheet(sheet), filled_pkg.sheet(sheet));
            let Some(t) = value_of(truth_sheet, unit) else {
                continue;
            };
            let f = value_of(filled_sheet, unit);
            // A dropdown cell, an X-matrix group, or an answered X-matrix cell ("X").
            let choice = match unit {
                Unit::Marks(_) => true,
                Unit::Cell(c) => {
                    t.eq_ignore_ascii_case(workbook::MARK)
                        || truth_sheet.and_then(|s| s.list_validation_at(*c)).is_some()
                }
            };
            let agrees = choice.then(|| f.as_deref().is_some_and(|f| agrees_with(f, &t)));
            slots.push(SlotComparison {
                sheet: sheet.clone(),
                row: *row,
                cells: unit_cells(unit),
                kind: if choice { "choice" } else { "text" }.into(),
                truth: t,
                filled: f,
                agrees,
                similarity: None,
                options: if choice {
                    options_of(unit, truth_sheet, filled_sheet)
                } else {
                    Vec::new()
                },
                ..Default::default()
            });
        }
        mark_written_and_drafts(
            &mut slots[first..],
            reviewed.and_then(|r| r.get(&(sheet.clone(), *row))),
        );
    }
    slots
}

/// Sets one row's band, whether it was written, and its draft choices: the review workbook's
/// Answer split at " | " (slot values in slot order), each choice slot taking the next part
/// that is one of its legal values.
fn mark_written_and_drafts(row: &mut [SlotComparison], entry: Option<&ReviewEntry>) {
    let written = entry
        .and_then(|e| e.written)
        .unwrap_or_else(|| row.iter().any(|s| s.agrees.is_some() && s.filled.is_some()));
    let band = entry.map(|e| e.band.clone()).filter(|b| !b.is_empty());
    let mut parts: Vec<&str> = match entry.and_then(|e| e.answer.as_deref()) {
        Some(a) if !written => a.split(" | ").map(str::trim).collect(),
        _ => Vec::new(),
    };
    for s in row.iter_mut() {
        s.band.clone_from(&band);
        if s.agrees.is_none() {
            continue;
        }
        s.written = Some(written);
        if s.options.is_empty() {
            continue;
        }
        let Some(i) = parts
            .iter()
            .position(|p| legal_choice(p, &s.options).is_some())
        else {
            continue;
        };
        let draft = legal_choice(parts[i], &s.options);
        parts.drain(..=i);
        s.draft_agrees = draft.as_deref().map(|d| agrees_with(d, &s.truth));
        s.draft = draft;
    }
}

/// The most similar of `past` to `query` (cosine), if any.
fn nearest(query: &[f32], past: &[Vec<f32>]) -> Option<(usize, f32)> {
    past.iter()
        .map(|p| crate::kb::search::cosine(query, p))
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// The copy-nearest baseline's value for every choice slot: the first of the nearest past
/// answer's values that is one of the slot's legal values (a slot without a known list takes
/// the past answer's first value).
fn apply_copies(
    slots: &mut [SlotComparison],
    nearest_of_row: &BTreeMap<(String, u32), (usize, f32)>,
    past: &[LibraryAnswer],
) {
    for s in slots.iter_mut().filter(|s| s.agrees.is_some()) {
        let Some(&(i, sim)) = nearest_of_row.get(&(s.sheet.clone(), s.row)) else {
            continue;
        };
        let Some(answer) = past.get(i) else { continue };
        let copied = if s.options.is_empty() {
            answer.values.first().map(|v| v.value.trim().to_string())
        } else {
            answer
                .values
                .iter()
                .find_map(|v| legal_choice(&v.value, &s.options))
        };
        s.copy_agrees = Some(copied.as_deref().is_some_and(|c| agrees_with(c, &s.truth)));
        s.copied = copied;
        s.copied_from = Some(answer.location.clone());
        s.copy_similarity = Some(sim);
    }
}

/// The choice figures of compared slots, each beside its baselines on the same slots.
/// `copy`: (past questions, cut-off) when the copy-nearest baseline was computed.
fn quality(slots: &[SlotComparison], review: bool, copy: Option<(usize, f32)>) -> Quality {
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

/// Embeds `texts` in batches of 32.
async fn embed_all(router: &Router, texts: &[String]) -> Result<Vec<Vec<f32>>, EvalError> {
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(32) {
        let (vectors, _) = router
            .embed(chunk)
            .await
            .map_err(|e| EvalError::Embed(e.to_string()))?;
        out.extend(vectors);
    }
    Ok(out)
}

/// Compares `filled` with `truth` (two copies of one questionnaire). `review` is the review
/// workbook of `filled`: the reliability table, which rows were written, and the drafts of
/// the others. `baseline` is another answered questionnaire for the copy-nearest baseline
/// (each question takes the answer of its most similar question there). Texts are compared
/// and questions matched with the router's embedding model; a filled text at least
/// `similar_at` similar counts as similar.
pub async fn evaluate(
    router: &Router,
    filled: Vec<u8>,
    truth: Vec<u8>,
    review: Option<Vec<u8>>,
    baseline: Option<Vec<u8>>,
    similar_at: f32,
) -> Result<EvalReport, EvalError> {
    let reviewed = match &review {
        Some(bytes) => Some(read_review(bytes)?),
        None => None,
    };
    let (mut slots, questions, past, reviewed) = tokio::task::spawn_blocking(move || {
        let (tp, tq) = open(truth, "truth workbook")?;
        let (fp, fq) = open(filled, "filled workbook")?;
        let slots = compare((&tp, &tq), (&fp, &fq), reviewed.as_ref());
        let mut questions = BTreeMap::new();
        question_texts(&tq, &mut questions);
        question_texts(&fq, &mut questions);
        let past = baseline
            .map(|b| crate::kb::library::from_workbook(b).map_err(EvalError::Baseline))
            .transpose()?;
        Ok::<_, EvalError>((slots, questions, past, reviewed))
    })
    .await
    .map_err(|e| EvalError::Review(format!("the workbook reader crashed: {e}")))??;
    if slots.is_empty() {
        return Err(EvalError::NothingToCompare);
    }
    // Text similarity: the truth and the filled text of each answered text slot.
    let pairs: Vec<usize> = slots
        .iter()
        .enumerate()
        .filter(|(_, s)| s.agrees.is_none() && s.filled.is_some())
        .map(|(i, _)| i)
        .collect();
    let texts: Vec<String> = pairs
        .iter()
        .flat_map(|&i| {
            [
                slots[i].truth.clone(),
                slots[i].filled.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let vectors = embed_all(router, &texts).await?;
    for (k, &i) in pairs.iter().enumerate() {
        if let (Some(a), Some(b)) = (vectors.get(2 * k), vectors.get(2 * k + 1)) {
            slots[i].similarity = Some(crate::kb::search::cosine(a, b));
        }
    }
    // The copy-nearest baseline: each labelled row's question against the past questions.
    let copy = match past {
        Some(past) => {
            if past.is_empty() {
                return Err(EvalError::EmptyBaseline);
            }
            let rows: Vec<(String, u32)> = slots
                .iter()
                .filter(|s| s.agrees.is_some())
                .map(|s| (s.sheet.clone(), s.row))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .filter(|k| questions.contains_key(k))
                .collect();
            let asked: Vec<String> = rows.iter().map(|k| questions[k].clone()).collect();
            let past_texts: Vec<String> = past.iter().map(|p| p.question.clone()).collect();
            let (asked_v, past_v) = (
                embed_all(router, &asked).await?,
                embed_all(router, &past_texts).await?,
            );
            let nearest_of_row: BTreeMap<(String, u32), (usize, f32)> = rows
                .into_iter()
                .zip(&asked_v)
                .filter_map(|(k, v)| nearest(v, &past_v).map(|n| (k, n)))
                .collect();
            apply_copies(&mut slots, &nearest_of_row, &past);
            Some((past.len(), COPY_AT))
        }
        None => None,
    };
    let quality = quality(&slots, reviewed.is_some(), copy);
    // Tallies: overall, by band and by confidence range.
    #[derive(Default)]
    struct Acc {
        tally: Tally,
        rows: BTreeSet<(String, u32)>,
        sims: Vec<f32>,
        confs: BTreeMap<(String, u32), f64>,
    }
    let mut overall = Acc::default();
    let mut by_band: BTreeMap<String, Acc> = BTreeMap::new();
    let mut by_conf: BTreeMap<String, Acc> = BTreeMap::new();
    for s in &slots {
        let key = (s.sheet.clone(), s.row);
        let entry = reviewed.as_ref().and_then(|r| r.get(&key));
        let mut accs: Vec<&mut Acc> = vec![&mut overall];
        if reviewed.is_some() {
            let band = entry
                .map(|e| e.band.clone())
                .filter(|b| !b.is_empty())
                .unwrap_or_else(|| "unlisted".into());
            accs.push(by_band.entry(band).or_default());
        }
        let conf = entry.and_then(|e| e.confidence);
        if let Some(c) = conf {
            accs.push(by_conf.entry(confidence_range(c).into()).or_default());
        }
        // The reliability tables judge a row's answer whether written or drafted.
        let mut judged = s.clone();
        if judged.filled.is_none() && judged.draft.is_some() {
            judged.filled.clone_from(&judged.draft);
            judged.agrees = judged.draft_agrees;
        }
        for (k, acc) in accs.into_iter().enumerate() {
            acc.tally.add(if k == 0 { s } else { &judged }, similar_at);
            acc.rows.insert(key.clone());
            if let Some(sim) = s.similarity {
                acc.sims.push(sim);
            }
            if let Some(c) = conf {
                acc.confs.insert(key.clone(), c);
            }
        }
    }
    let finish = |mut acc: Acc| {
        acc.tally.rows = acc.rows.len();
        let confs: Vec<f64> = acc.confs.values().copied().collect();
        acc.tally.finish(&acc.sims, &confs);
        acc.tally
    };
    Ok(EvalReport {
        overall: finish(overall),
        by_band: by_band.into_iter().map(|(k, a)| (k, finish(a))).collect(),
        by_confidence: by_conf.into_iter().map(|(k, a)| (k, finish(a))).collect(),
        similar_at,
        review: reviewed.is_some(),
        quality,
        slots,
    })
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

    const QUESTIONS: [&str; 10] = [
        "Do you encrypt customer data at rest?",
        "Do you enforce multi-factor authentication for administrators?",
        "Do you review access rights every quarter?",
        "Do you run daily backups of production databases?",
        "Do you test restoring a backup at least once a year?",
        "Do you keep an asset inventory of production systems?",
        "Are you certified to ISO 27001?",
        "Do you run phishing simulations for staff?",
        "Do you operate a security information and event management system?",
        "Do you operate your own data centres?",
    ];
    /// The truth: six Yes, three No, one N/A.
    const TRUTH: [&str; 10] = [
        "Yes", "Yes", "Yes", "Yes", "Yes", "Yes", "No", "No", "No", "N/A",
    ];

    /// A questionnaire (header row 1: ID, Question, Answer, Comments; a Yes/No/N/A dropdown
    /// on Answer) with `answers[i]` in row i + 2's Answer cell and a comment beside each.
    fn book(answers: &[Option<&str>], comments: bool) -> Vec<u8> {
        use rust_xlsxwriter::{DataValidation, Workbook};
        let mut wb = Workbook::new();
        let ws = wb.add_worksheet();
        ws.set_name("Security").unwrap();
        for (c, h) in ["ID", "Question", "Answer", "Comments"].iter().enumerate() {
            ws.write_string(0, c as u16, *h).unwrap();
        }
        for (i, q) in QUESTIONS.iter().enumerate() {
            let r = i as u32 + 1;
            ws.write_string(r, 0, format!("SEC-{:02}", i + 1)).unwrap();
            ws.write_string(r, 1, *q).unwrap();
            if let Some(Some(a)) = answers.get(i) {
                ws.write_string(r, 2, *a).unwrap();
                if comments {
                    ws.write_string(r, 3, "As our policy states.").unwrap();
                }
            }
        }
        let dv = DataValidation::new()
            .allow_list_strings(&["Yes", "No", "N/A"])
            .unwrap();
        ws.add_data_validation(1, 2, QUESTIONS.len() as u32, 2, &dv)
            .unwrap();
        wb.save_to_buffer().unwrap()
    }

    /// A review workbook: (row, answer, band, written) per line, columns in an unusual order;
    /// without the Written column when `written_column` is false.
    fn review_book(lines: &[(u32, &str, &str, bool)], written_column: bool) -> Vec<u8> {
        use rust_xlsxwriter::Workbook;
        let mut wb = Workbook::new();
        let ws = wb.add_worksheet();
        ws.set_name("Review").unwrap();
        let mut heads = vec!["Sheet", "Row", "Band", "Question", "Answer", "Confidence"];
        if written_column {
            heads.insert(2, "Written");
        }
        for (c, h) in heads.iter().enumerate() {
            ws.write_string(0, c as u16, *h).unwrap();
        }
        for (i, (row, answer, band, written)) in lines.iter().enumerate() {
            let r = i as u32 + 1;
            for (c, h) in heads.iter().enumerate() {
                let c = c as u16;
                match *h {
                    "Sheet" => ws.write_string(r, c, "Security"),
                    "Row" => ws.write_number(r, c, f64::from(*row)),
                    "Band" => ws.write_string(r, c, *band),
                    "Question" => ws.write_string(r, c, QUESTIONS[*row as usize - 2]),
                    "Answer" => ws.write_string(r, c, *answer),
                    "Confidence" => ws.write_number(r, c, 0.5),
                    _ => ws.write_string(r, c, if *written { "yes" } else { "no" }),
                }
                .unwrap();
            }
        }
        wb.save_to_buffer().unwrap()
    }

    fn compare_bytes(
        truth: Vec<u8>,
        filled: Vec<u8>,
        review: Option<&[u8]>,
    ) -> Vec<SlotComparison> {
        let (tp, tq) = open(truth, "truth").unwrap();
        let (fp, fq) = open(filled, "filled").unwrap();
        let reviewed = review.map(|r| read_review(r).unwrap());
        compare((&tp, &tq), (&fp, &fq), reviewed.as_ref())
    }

    /// Written: rows 2, 3 (Yes, right), 8 (No, right), 9 (Yes, wrong), 11 ("NA" for N/A,
    /// right). Drafts: rows 4 (Yes, right), 5 (No, wrong), 7 (Yes, right), 10 (N/A, wrong);
    /// row 6 abstained.
    fn filled_and_review(written_column: bool) -> (Vec<u8>, Vec<u8>) {
        let filled = book(
            &[
                Some("Yes"),
                Some("Yes"),
                None,
                None,
                None,
                None,
                Some("No"),
                Some("Yes"),
                None,
                Some("NA"),
            ],
            false,
        );
        let review = review_book(
            &[
                (2, "Yes | Encrypted with AES-256.", "library", true),
                (3, "Yes", "high", true),
                (4, "Yes | Every quarter.", "review", false),
                (5, "We restore it. | No", "review", false),
                (6, "", "", false),
                (7, "Yes", "review", false),
                (8, "No | Not certified.", "high", true),
                (9, "Yes | Yearly.", "high", true),
                (10, "N/A | No SIEM.", "review", false),
                (11, "N/A", "library", true),
            ],
            written_column,
        );
        (filled, review)
    }

    fn truth_book() -> Vec<u8> {
        let truth: Vec<Option<&str>> = TRUTH.iter().map(|t| Some(*t)).collect();
        book(&truth, true)
    }

    #[test]
    fn written_choices_and_drafts_are_scored_beside_always_majority() {
        let (filled, review) = filled_and_review(true);
        let slots = compare_bytes(truth_book(), filled, Some(&review));
        let q = quality(&slots, true, None);
        assert_eq!(q.choice_slots, 10);
        assert_eq!(q.written, Score::new(5, 4, 10));
        assert_eq!(q.written.precision, Some(0.8));
        assert_eq!(q.written.coverage, Some(0.5));
        assert_eq!(q.written_by_band["library"], Score::new(2, 2, 10));
        assert_eq!(q.written_by_band["high"], Score::new(3, 2, 10));
        assert_eq!(q.drafts, Some(Score::new(4, 2, 10)));
        assert_eq!(q.majority.len(), 1);
        assert_eq!(q.majority[0].value, "Yes");
        assert_eq!(q.majority[0].count, 6);
        // Always "Yes" on every slot, on the written slots (Yes, Yes, No, No, N/A) and on the
        // drafted ones (Yes, Yes, Yes, No).
        assert_eq!(q.always_majority.all, Score::new(10, 6, 10));
        assert_eq!(q.always_majority.on_written, Score::new(5, 2, 10));
        assert_eq!(q.always_majority.on_drafts, Some(Score::new(4, 3, 10)));
        let recall: Vec<(&str, usize, usize, Option<usize>, usize)> = q
            .recall
            .iter()
            .map(|r| {
                (
                    r.value.as_str(),
                    r.truth,
                    r.written,
                    r.drafted,
                    r.always_majority,
                )
            })
            .collect();
        assert_eq!(
            recall,
            [
                ("Yes", 6, 2, Some(2), 6),
                ("No", 3, 1, Some(0), 0),
                ("N/A", 1, 1, Some(0), 0)
            ]
        );
        assert!(q.recall[0].majority && !q.recall[1].majority);
        let text = q.render();
        assert!(text.contains("always \"Yes\", same slots"), "{text}");
        assert!(text.contains("rfpq: drafts"), "{text}");
    }

    #[test]
    fn without_a_written_column_the_filled_copy_says_what_was_written() {
        let (filled, review) = filled_and_review(true);
        let with = quality(
            &compare_bytes(truth_book(), filled.clone(), Some(&review)),
            true,
            None,
        );
        let (_, review) = filled_and_review(false);
        let slots = compare_bytes(truth_book(), filled, Some(&review));
        assert_eq!(quality(&slots, true, None), with);
        // Row 5's draft is found after its comment.
        let row5 = slots
            .iter()
            .find(|s| s.row == 5 && s.kind == "choice")
            .unwrap();
        assert_eq!(row5.written, Some(false));
        assert_eq!(row5.draft.as_deref(), Some("No"));
        assert_eq!(row5.draft_agrees, Some(false));
    }

    #[test]
    fn without_a_review_workbook_there_are_no_drafts() {
        let (filled, _) = filled_and_review(true);
        let slots = compare_bytes(truth_book(), filled, None);
        let q = quality(&slots, false, None);
        assert_eq!(q.written, Score::new(5, 4, 10));
        assert_eq!(q.drafts, None);
        assert_eq!(q.always_majority.on_drafts, None);
        assert!(q.written_by_band.is_empty());
        assert!(slots.iter().all(|s| s.draft.is_none()));
    }

    #[test]
    fn copy_nearest_takes_the_most_similar_past_answer_mapped_to_legal_values() {
        let (filled, review) = filled_and_review(true);
        let mut slots = compare_bytes(truth_book(), filled, Some(&review));
        let past = |q: &str, a: &str| LibraryAnswer {
            question_id: None,
            question: q.into(),
            values: vec![
                crate::kb::library::SlotValue {
                    header: "Comments".into(),
                    value: "See the policy.".into(),
                },
                crate::kb::library::SlotValue {
                    header: "Answer".into(),
                    value: a.into(),
                },
            ],
            location: format!("Past!{q}"),
            section: None,
            approved: false,
        };
        let past = vec![past("yes", "yes"), past("no", "No"), past("na", "NA")];
        let vectors = [
            vec![1.0, 0.0, 0.0],
            vec![0.0, 1.0, 0.0],
            vec![0.0, 0.0, 1.0],
        ];
        assert_eq!(nearest(&[0.1, 0.9, 0.2], &vectors).map(|n| n.0), Some(1));
        // Rows 2-7 copy "yes" (0.9), rows 8-9 "No" (0.6), rows 10-11 "NA" (0.95): all
        // right except row 10 (truly No).
        let mut nearest_of_row = BTreeMap::new();
        for row in 2..=11u32 {
            let n = match row {
                2..=7 => (0, 0.9),
                8 | 9 => (1, 0.6),
                _ => (2, 0.95),
            };
            nearest_of_row.insert(("Security".to_string(), row), n);
        }
        apply_copies(&mut slots, &nearest_of_row, &past);
        let row11 = slots
            .iter()
            .find(|s| s.row == 11 && s.kind == "choice")
            .unwrap();
        assert_eq!(row11.copied.as_deref(), Some("N/A"));
        let q = quality(&slots, true, Some((3, 0.8)));
        let c = q.copy_nearest.as_ref().unwrap();
        assert_eq!(c.scores.all, Score::new(10, 9, 10));
        // At cosine >= 0.8: rows 2-7 and 10-11; row 10 is wrong.
        assert_eq!(c.above_cutoff, Score::new(8, 7, 10));
        // Written rows 2, 3, 8, 9, 11: all right; drafted rows 4, 5, 7, 10: 10 is wrong.
        assert_eq!(c.scores.on_written, Score::new(5, 5, 10));
        assert_eq!(c.scores.on_drafts, Some(Score::new(4, 3, 10)));
        let no = q.recall.iter().find(|r| r.value == "No").unwrap();
        assert_eq!(no.copy_nearest, Some(2));
        assert!(q.render().contains("copy nearest of 3 past questions"));
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
