//! The copy-nearest baseline: each labelled question takes the answer of its most similar
//! question (cosine of their embeddings) in another answered questionnaire, mapped onto the
//! slot's legal values. Does not embed (the caller passes vectors) or score (that is `score`).

use super::SlotComparison;
use super::score::agrees_with;
use crate::kb::library::LibraryAnswer;
use crate::pipeline::answer::legal_choice;
use std::collections::BTreeMap;

/// The most similar of `past` to `query` (cosine), if any.
pub(super) fn nearest(query: &[f32], past: &[Vec<f32>]) -> Option<(usize, f32)> {
    past.iter()
        .map(|p| crate::kb::search::cosine(query, p))
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// The copy-nearest baseline's value for every choice slot: the first of the nearest past
/// answer's values that is one of the slot's legal values (a slot without a known list takes
/// the past answer's first value).
pub(super) fn apply_copies(
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
