//! Compares a filled questionnaire with a labelled copy of the same questionnaire, slot by
//! slot: exact agreement on choice slots, embedding similarity on text slots, coverage, and
//! how the review workbook's confidence bands relate to correctness (a reliability table), so
//! thresholds can be calibrated on labelled data. Reads both files; writes nothing.

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
}

/// What one answer slot holds in both files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    pub overall: Tally,
    /// By review band (`library`, `high`, `review`; `unlisted` without a review entry).
    pub by_band: BTreeMap<String, Tally>,
    /// By confidence range, e.g. `0.60-0.80`.
    pub by_confidence: BTreeMap<String, Tally>,
    /// Text slots count as similar at this cosine or above.
    pub similar_at: f32,
    /// Whether a review workbook was used.
    pub review: bool,
    /// Every compared slot.
    pub slots: Vec<SlotComparison>,
}

/// What the review workbook says about one row.
#[derive(Debug, Clone, Default)]
struct ReviewEntry {
    confidence: Option<f64>,
    band: String,
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
        out.insert(
            (sheet, row as u32),
            ReviewEntry {
                confidence: num(c_conf),
                band: r.get(c_band).map(|c| c.to_string()).unwrap_or_default(),
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

/// Compares `filled` with `truth` (two copies of one questionnaire); `review` is the review
/// workbook of `filled`, for the reliability table. Text slots are compared with the router's
/// embedding model; a filled text at least `similar_at` similar counts as similar.
pub async fn evaluate(
    router: &Router,
    filled: Vec<u8>,
    truth: Vec<u8>,
    review: Option<Vec<u8>>,
    similar_at: f32,
) -> Result<EvalReport, EvalError> {
    let (truth_pkg, truth_q, filled_pkg, filled_q) = tokio::task::spawn_blocking(move || {
        let (tp, tq) = open(truth, "truth workbook")?;
        let (fp, fq) = open(filled, "filled workbook")?;
        Ok::<_, EvalError>((tp, tq, fp, fq))
    })
    .await
    .map_err(|e| EvalError::Review(format!("the workbook reader crashed: {e}")))??;
    let reviewed = match &review {
        Some(bytes) => Some(read_review(bytes)?),
        None => None,
    };
    let mut rows = units(&truth_q);
    for (key, set) in units(&filled_q) {
        rows.entry(key).or_default().extend(set);
    }
    let mut slots: Vec<SlotComparison> = Vec::new();
    for ((sheet, row), set) in &rows {
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
            let Some(t) = value_of(truth_pkg.sheet(sheet), unit) else {
                continue;
            };
            let f = value_of(filled_pkg.sheet(sheet), unit);
            // A dropdown cell, an X-matrix group, or an answered X-matrix cell ("X").
            let choice = match unit {
                Unit::Marks(_) => true,
                Unit::Cell(c) => {
                    t.eq_ignore_ascii_case(workbook::MARK)
                        || truth_pkg
                            .sheet(sheet)
                            .and_then(|s| s.list_validation_at(*c))
                            .is_some()
                }
            };
            let agrees = choice.then(|| {
                f.as_deref()
                    .is_some_and(|f| legal_choice(f, std::slice::from_ref(&t)).is_some())
            });
            slots.push(SlotComparison {
                sheet: sheet.clone(),
                row: *row,
                cells: unit_cells(unit),
                kind: if choice { "choice" } else { "text" }.into(),
                truth: t,
                filled: f,
                agrees,
                similarity: None,
            });
        }
    }
    if slots.is_empty() {
        return Err(EvalError::NothingToCompare);
    }
    // Text similarity, in batches: the truth and the filled text of each answered text slot.
    let pairs: Vec<usize> = slots
        .iter()
        .enumerate()
        .filter(|(_, s)| s.agrees.is_none() && s.filled.is_some())
        .map(|(i, _)| i)
        .collect();
    for chunk in pairs.chunks(32) {
        let texts: Vec<String> = chunk
            .iter()
            .flat_map(|&i| {
                [
                    slots[i].truth.clone(),
                    slots[i].filled.clone().unwrap_or_default(),
                ]
            })
            .collect();
        let (vectors, _) = router
            .embed(&texts)
            .await
            .map_err(|e| EvalError::Embed(e.to_string()))?;
        for (k, &i) in chunk.iter().enumerate() {
            if let (Some(a), Some(b)) = (vectors.get(2 * k), vectors.get(2 * k + 1)) {
                slots[i].similarity = Some(crate::kb::search::cosine(a, b));
            }
        }
    }
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
        for acc in accs {
            acc.tally.add(s, similar_at);
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
        slots,
    })
}

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |v| format!("{:.1}%", v * 100.0))
}

impl EvalReport {
    /// The report as text: overall figures, then the reliability tables.
    pub fn render(&self) -> String {
        let o = &self.overall;
        let mut s = format!(
            "{} questions compared\nchoice slots: {} agree of {} answered (exact agreement {}), {} of {} labelled (accuracy {})\ntext slots: {} answered of {}, mean similarity {}, {} at or above {:.2}\ncoverage: {}\n",
            o.rows,
            o.choice_agree,
            o.choice_answered,
            pct(o.choice_agreement),
            o.choice_agree,
            o.choice_slots,
            pct(o.choice_accuracy),
            o.text_answered,
            o.text_slots,
            o.text_mean_similarity
                .map_or_else(|| "-".into(), |v| format!("{v:.2}")),
            o.text_similar,
            self.similar_at,
            pct(o.coverage),
        );
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
}
