//! Finds questions asked more than once (the same ID on several tabs, the same normalized
//! text, or near-identical wording by embedding similarity) so each is answered once and the
//! answer fanned out to every copy, and maps an answer onto a copy's own answer slots.
//! Dependent follow-ups ("If yes, please describe") are never merged by wording: their meaning
//! comes from their parent.

use super::answer::legal_choice;
use crate::kb::search::dot;
use crate::workbook::{AnswerSlot, QuestionKey, QuestionRow, Questionnaire, SlotKind};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};

/// Why a row is a copy of another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SameAs {
    /// Index in the plan of the row that is answered.
    pub index: usize,
    /// `same id`, `same text` or `similar wording (0.98)`.
    pub how: String,
}

/// Lowercase words of a text.
fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

const NEGATIONS: &[&str] = &["no", "not", "never", "without", "none", "nor", "non", "pas"];

/// Whether two near-identical texts may still mean different things: different numbers,
/// a negation in one only, or too little word overlap ("at rest" vs "in transit").
fn wording_compatible(a: &str, b: &str) -> bool {
    let (wa, wb) = (words(a), words(b));
    let digits = |w: &[String]| -> BTreeSet<String> {
        w.iter()
            .filter(|x| x.chars().any(|c| c.is_ascii_digit()))
            .cloned()
            .collect()
    };
    let negations = |w: &[String]| w.iter().filter(|x| NEGATIONS.contains(&x.as_str())).count();
    if digits(&wa) != digits(&wb) || negations(&wa) != negations(&wb) {
        return false;
    }
    let (sa, sb): (BTreeSet<&String>, BTreeSet<&String>) =
        (wa.iter().collect(), wb.iter().collect());
    let union = sa.union(&sb).count().max(1);
    sa.intersection(&sb).count() as f32 / union as f32 >= 0.6
}

/// Whether the answer of `a` can serve `b`: the same kinds of slots, and every choice slot of
/// `b` offers what `a`'s offers (after synonym mapping).
pub fn slots_compatible(a: &[AnswerSlot], b: &[AnswerSlot]) -> bool {
    let kinds = |s: &[AnswerSlot]| -> Vec<bool> { s.iter().map(AnswerSlot::is_choice).collect() };
    if kinds(a) != kinds(b) {
        return false;
    }
    a.iter().zip(b).all(|(x, y)| {
        !x.is_choice()
            || x.choices
                .iter()
                .all(|c| legal_choice(c, &y.choices).is_some())
    })
}

/// For every row of `rows` (the plan's questions, in order): the row it copies, if any.
/// `exact` are the workbook engine's groups (same ID or same text across sheets);
/// `vectors` (one per row, or empty when embeddings failed) add near-identical wording at
/// `similarity` or above. `dependent[i]` marks follow-ups, which only merge by ID.
pub fn find_copies(
    rows: &[QuestionRow],
    exact: &Questionnaire,
    vectors: &[Vec<f32>],
    similarity: f32,
    dependent: &[bool],
) -> Vec<Option<SameAs>> {
    let index: HashMap<(&str, u32), usize> = rows
        .iter()
        .enumerate()
        .map(|(i, q)| ((q.sheet.as_str(), q.row), i))
        .collect();
    let mut same: Vec<Option<SameAs>> = vec![None; rows.len()];
    let find = |k: &QuestionKey| index.get(&(k.sheet.as_str(), k.row)).copied();
    for group in &exact.duplicates {
        let members: Vec<usize> = group.iter().filter_map(find).collect();
        let Some(&first) = members.first() else {
            continue;
        };
        for &m in &members[1..] {
            let (a, b) = (&rows[first], &rows[m]);
            let same_id = a.id.is_some() && a.id == b.id;
            if (!same_id && (dependent[first] || dependent[m]))
                || !slots_compatible(&a.slots, &b.slots)
            {
                continue;
            }
            let how = if same_id { "same id" } else { "same text" };
            same[m] = Some(SameAs {
                index: first,
                how: how.into(),
            });
        }
    }
    if vectors.len() == rows.len() {
        // Brute force over canonical rows: fine for the few thousand rows a questionnaire has.
        let norms: Vec<f32> = vectors.iter().map(|v| dot(v, v).sqrt()).collect();
        let cosine = |a: usize, b: usize| {
            let n = norms[a] * norms[b];
            if n == 0.0 {
                0.0
            } else {
                dot(&vectors[a], &vectors[b]) / n
            }
        };
        let mut canonical: Vec<usize> = Vec::new();
        for i in 0..rows.len() {
            if same[i].is_some() {
                continue;
            }
            if !dependent[i] && !vectors[i].is_empty() {
                let best = canonical
                    .iter()
                    .map(|&c| (c, cosine(c, i)))
                    .filter(|(c, s)| {
                        *s >= similarity
                            && wording_compatible(&rows[*c].text, &rows[i].text)
                            && slots_compatible(&rows[*c].slots, &rows[i].slots)
                    })
                    .max_by(|a, b| a.1.total_cmp(&b.1));
                if let Some((c, s)) = best {
                    same[i] = Some(SameAs {
                        index: c,
                        how: format!("similar wording ({s:.2})"),
                    });
                    continue;
                }
            }
            if !dependent[i] {
                canonical.push(i);
            }
        }
    }
    same
}

/// The value for each of `target`'s slots given the answers of a compatible row's slots
/// (same order and kinds, see [`slots_compatible`]); choice values are mapped onto the
/// target's legal values, `None` where no legal value fits.
pub fn map_values(values: &[Option<String>], target: &[AnswerSlot]) -> Vec<Option<String>> {
    target
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let v = values.get(i)?.as_deref()?;
            match t.kind {
                SlotKind::Choice | SlotKind::Mark => legal_choice(v, &t.choices),
                SlotKind::Text | SlotKind::Date => Some(v.to_string()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_identical_wording_must_really_match() {
        assert!(wording_compatible(
            "Do you encrypt customer data at rest?",
            "Do you encrypt all customer data at rest?"
        ));
        assert!(!wording_compatible(
            "Do you encrypt customer data at rest?",
            "Do you encrypt customer data in transit?"
        ));
        assert!(!wording_compatible(
            "Are backups kept for 30 days?",
            "Are backups kept for 90 days?"
        ));
        assert!(!wording_compatible(
            "Do you allow shared accounts?",
            "Do you not allow shared accounts?"
        ));
    }
}
