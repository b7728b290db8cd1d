//! Compares a filled questionnaire with a labelled copy of the same questionnaire, slot by
//! slot: exact agreement on choice slots, embedding similarity on text slots, coverage, and
//! how the review workbook's confidence bands relate to correctness (a reliability table), so
//! thresholds can be calibrated on labelled data. Every choice figure (precision of written
//! choices, drafts, recall of each true value) is given beside its trivial baselines on the
//! same slots: always the truth's majority value, and optionally copying the most similar
//! question's answer from another answered questionnaire. Reads the files; writes nothing.
//!
//! `compare` reads the workbooks and compares them unit by unit, `score` and `baseline` turn
//! the comparisons into figures, `report` holds the results and renders them; this module has
//! the errors and `evaluate`, which runs the whole comparison.

mod baseline;
mod compare;
mod report;
mod score;
#[cfg(test)]
mod tests;

pub use report::{
    BaselineScores, CopyBaseline, EvalReport, MajorityChoice, Quality, Score, SlotComparison,
    Tally, ValueRecall,
};

use baseline::{apply_copies, nearest};
use compare::{compare, open, question_texts, read_review};
use score::{confidence_range, quality};

use crate::router::Router;
use crate::workbook::WorkbookError;
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
