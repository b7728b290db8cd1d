//! Answer library first: a past answered question close enough to the new one answers it
//! directly, with no generation. Its values are mapped onto the target row's slots (choice
//! values onto the slot's legal values). Does not search (the KB does) and never answers from
//! a past answer that is still a template (`[[ FILL IN … ]]`) or whose choice does not fit.

use super::answer::legal_choice;
use crate::kb::{Hit, LibraryAnswer};
use crate::workbook::{AnswerSlot, SlotKind};

/// Markers of an unfinished template answer.
const PLACEHOLDERS: &[&str] = &[
    "[[",
    "]]",
    "{{",
    "fill in",
    "<insert",
    "[insert",
    "tbd",
    "lorem ipsum",
    "xxx",
];

/// Whether a text is (or contains) a template placeholder rather than an answer.
pub fn has_placeholder(text: &str) -> bool {
    let lower = text.to_lowercase();
    PLACEHOLDERS.iter().any(|p| match *p {
        // Whole words only: "tbd" but not "outbound".
        "tbd" | "xxx" => lower.split(|c: char| !c.is_alphanumeric()).any(|w| w == *p),
        _ => lower.contains(p),
    })
}

/// Text with template placeholders (`[[ … ]]`) cut out, for use as evidence.
pub fn without_placeholders(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("[[") {
        out.push_str(&rest[..start]);
        match rest[start..].find("]]") {
            Some(end) => rest = &rest[start + end + 2..],
            None => {
                rest = "";
                break;
            }
        }
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A library match that fits the row.
#[derive(Debug, Clone)]
pub struct LibraryFit {
    /// A value per slot of the row (`None` where the past answer has nothing for it).
    pub values: Vec<Option<String>>,
    /// Cosine similarity of the past question and this one.
    pub similarity: f32,
    /// Where the past answer is: "answers.xlsx › Sheet!12 (IAM-02)".
    pub source: String,
}

fn norm(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Number words up to twelve, for durations written out ("six months").
const NUMBER_WORDS: [&str; 13] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve",
];

/// The durations a question states, in days ("14 days", "two weeks", "12 months", "1 year"),
/// so "within two weeks" and "within 14 days" agree and "six months" and "12 months" do not.
pub fn durations(text: &str) -> Vec<u32> {
    let words: Vec<String> = text
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    let mut out: Vec<u32> = words
        .windows(2)
        .filter_map(|w| {
            let n: u32 = w[0].parse().ok().or_else(|| {
                NUMBER_WORDS
                    .iter()
                    .position(|x| *x == w[0])
                    .map(|i| i as u32)
            })?;
            let unit = match w[1].trim_end_matches('s') {
                "hour" => return Some(n.div_ceil(24).max(1)),
                "day" => 1,
                "week" => 7,
                "month" => 30,
                "year" | "annual" => 365,
                _ => return None,
            };
            Some(n * unit)
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Fits a library hit onto the row's slots, for a question `asked`. `Err` says why it cannot
/// answer directly (then the pipeline answers from the evidence, the past answer among it).
pub fn fit(hit: &Hit, slots: &[AnswerSlot], asked: &str) -> Result<LibraryFit, String> {
    let answer: &LibraryAnswer = hit
        .answer
        .as_ref()
        .ok_or("the match is not an answer record")?;
    let (mine, theirs) = (durations(asked), durations(&answer.question));
    if !mine.is_empty() && !theirs.is_empty() && mine != theirs {
        return Err(format!(
            "the past question \"{}\" states a different period",
            answer.question
        ));
    }
    let mut used = vec![false; answer.values.len()];
    let mut values: Vec<Option<String>> = vec![None; slots.len()];
    // Choice slots first: the value under the same header, else any value that maps.
    for (i, slot) in slots.iter().enumerate().filter(|(_, s)| s.is_choice()) {
        let order = answer
            .values
            .iter()
            .enumerate()
            .filter(|(j, _)| !used[*j])
            .map(|(j, v)| (norm(&v.header) != norm(&slot.header), j, v));
        let mut order: Vec<_> = order.collect();
        order.sort_by_key(|(other_header, j, _)| (*other_header, *j));
        let found = order
            .into_iter()
            .find_map(|(_, j, v)| legal_choice(&v.value, &slot.choices).map(|c| (j, c)));
        match found {
            Some((j, c)) => {
                used[j] = true;
                values[i] = Some(c);
            }
            None => {
                let given: Vec<&str> = answer.values.iter().map(|v| v.value.as_str()).collect();
                return Err(format!(
                    "the past answer ({}) is not one of {} ({})",
                    given.join(" / "),
                    slot.choices.join(", "),
                    slot.header
                ));
            }
        }
    }
    // Text slots: the value under the same header, else the longest unused value.
    for (i, slot) in slots
        .iter()
        .enumerate()
        .filter(|(_, s)| s.kind == SlotKind::Text)
    {
        let same = answer
            .values
            .iter()
            .enumerate()
            .find(|(j, v)| !used[*j] && norm(&v.header) == norm(&slot.header));
        let pick = same.or_else(|| {
            answer
                .values
                .iter()
                .enumerate()
                .filter(|(j, v)| !used[*j] && v.value.split_whitespace().count() >= 3)
                .max_by_key(|(_, v)| v.value.len())
        });
        if let Some((j, v)) = pick {
            if has_placeholder(&v.value) {
                return Err(format!(
                    "the past answer to '{}' is an unfinished template",
                    answer.question
                ));
            }
            used[j] = true;
            values[i] = Some(v.value.trim().to_string());
        }
    }
    if values.iter().all(Option::is_none) {
        return Err("the past answer has no value for this row's answer cells".into());
    }
    let mut source = format!("{} › {}", hit.source, answer.location);
    if let Some(id) = &answer.question_id {
        source.push_str(&format!(" ({id})"));
    }
    if answer.approved {
        source.push_str(" [reviewer-approved]");
    }
    Ok(LibraryFit {
        values,
        similarity: hit.vector_score,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_compare_in_days() {
        assert_eq!(durations("remediated within two weeks?"), vec![14]);
        assert_eq!(durations("remediated within 14 days?"), vec![14]);
        assert_ne!(
            durations("kept for at least six months"),
            durations("retained for at least 12 months")
        );
        assert_eq!(durations("within 24 hours"), vec![1]);
        assert!(durations("Is MFA enforced?").is_empty());
    }
    use crate::kb::{RecordKind, SlotValue};
    use crate::workbook::CellRef;

    fn hit(values: &[(&str, &str)]) -> Hit {
        Hit {
            score: 0.95,
            vector_score: 0.95,
            lexical_score: 0.0,
            kind: RecordKind::Answer,
            source: "past.xlsx".into(),
            heading: None,
            page: None,
            text: String::new(),
            id: 1,
            answer: Some(LibraryAnswer {
                question_id: Some("CRY-01".into()),
                question: "Do you encrypt data at rest?".into(),
                values: values
                    .iter()
                    .map(|(h, v)| SlotValue {
                        header: h.to_string(),
                        value: v.to_string(),
                    })
                    .collect(),
                location: "Answers!5".into(),
                section: None,
                approved: false,
            }),
            library_match: true,
        }
    }

    fn slots() -> Vec<AnswerSlot> {
        vec![
            AnswerSlot {
                cell: CellRef::new(4, 2),
                kind: SlotKind::Choice,
                choices: vec!["Y".into(), "N".into(), "NA".into()],
                mark_cells: vec![],
                header: "Response".into(),
            },
            AnswerSlot {
                cell: CellRef::new(4, 3),
                kind: SlotKind::Text,
                choices: vec![],
                mark_cells: vec![],
                header: "Notes".into(),
            },
        ]
    }

    #[test]
    fn past_values_map_onto_legal_choices() {
        let f = fit(
            &hit(&[("Answer", "Yes"), ("Comments", "AES-256 on every volume.")]),
            &slots(),
            "Is data encrypted?",
        )
        .unwrap();
        assert_eq!(
            f.values,
            vec![Some("Y".into()), Some("AES-256 on every volume.".into())]
        );
        assert_eq!(f.source, "past.xlsx › Answers!5 (CRY-01)");
        let n_a = fit(&hit(&[("Answer", "N/A")]), &slots(), "Q?").unwrap();
        assert_eq!(n_a.values[0].as_deref(), Some("NA"));
    }

    #[test]
    fn templates_and_unmappable_choices_do_not_answer() {
        assert!(fit(&hit(&[("Answer", "Partial")]), &slots(), "Q?").is_err());
        let e = fit(
            &hit(&[
                ("Answer", "Yes"),
                ("Comment", "We use [[ FILL IN: tool ]]."),
            ]),
            &slots(),
            "Q?",
        )
        .unwrap_err();
        assert!(e.contains("template"), "{e}");
        assert!(has_placeholder("[[ FILL IN ]]") && !has_placeholder("outbound traffic"));
        assert_eq!(
            without_placeholders("We use [[ FILL IN: tool ]] daily."),
            "We use daily."
        );
    }
}
