//! Context a question needs beyond its own text: dependent questions ("If yes, please
//! describe…", "If not, why?") are linked to the question they depend on, with the answer that
//! makes them apply; and the questionnaire's language is detected so answers are written in it.
//! Section headers reach the answer prompt as context through `QuestionRow::section`.

use crate::workbook::QuestionRow;
use serde::{Deserialize, Serialize};

/// Which answer of the parent question makes a dependent question apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// "If yes", "If so", "Si oui", "Falls ja".
    Yes,
    /// "If no", "If not", "Si non", "Falls nein".
    No,
    /// "If applicable", "If other", or a follow-up whose condition is not a yes/no.
    Any,
}

/// A dependent question's link to its parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentLink {
    /// Index of the parent in the plan.
    pub index: usize,
    pub condition: Condition,
}

/// Openers of dependent questions, lower-case, with the condition they state.
const OPENERS: &[(&str, Condition)] = &[
    ("if yes", Condition::Yes),
    ("if so", Condition::Yes),
    ("if you answered yes", Condition::Yes),
    ("if the answer is yes", Condition::Yes),
    ("if your answer is yes", Condition::Yes),
    ("if no", Condition::No),
    ("if not", Condition::No),
    ("if you answered no", Condition::No),
    ("if the answer is no", Condition::No),
    ("if your answer is no", Condition::No),
    ("if applicable", Condition::Any),
    ("if other", Condition::Any),
    ("if different", Condition::Any),
    ("if any", Condition::Any),
    ("if the above", Condition::Any),
    ("si oui", Condition::Yes),
    ("dans l'affirmative", Condition::Yes),
    ("si non", Condition::No),
    ("dans la négative", Condition::No),
    ("falls ja", Condition::Yes),
    ("wenn ja", Condition::Yes),
    ("falls nein", Condition::No),
    ("wenn nein", Condition::No),
    ("en caso afirmativo", Condition::Yes),
    ("si es así", Condition::Yes),
    ("en caso negativo", Condition::No),
];

/// The condition of a dependent question, from how it opens (quotes and brackets ignored):
/// `None` for a question that stands on its own.
pub fn condition_of(text: &str) -> Option<Condition> {
    let lower: String = text
        .trim()
        .trim_start_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase()
        .replace(['"', '\'', '“', '”', '‘', '’', '(', ')'], "");
    let lower = lower.replace("dans laffirmative", "dans l'affirmative");
    OPENERS.iter().find_map(|(opener, c)| {
        let rest = lower.strip_prefix(opener)?;
        // "if no" must not match "if none", "if not" must not match "if nothing".
        rest.chars()
            .next()
            .is_none_or(|ch| !ch.is_alphanumeric())
            .then_some(*c)
    })
}

/// How far above a dependent question its parent may be (rows of the plan, same sheet).
const MAX_PARENT_DISTANCE: usize = 6;

/// Links every dependent question to its parent: the nearest earlier question on the same
/// sheet that is not itself dependent, preferring one with a choice slot (the yes/no it hangs
/// on). A question that names the parent's ID ("If yes to IAM-02, …") links to that ID.
pub fn link_parents(rows: &[QuestionRow]) -> Vec<Option<ParentLink>> {
    let conditions: Vec<Option<Condition>> = rows.iter().map(|q| condition_of(&q.text)).collect();
    rows.iter()
        .enumerate()
        .map(|(i, q)| {
            let condition = conditions[i]?;
            let lower = q.text.to_lowercase();
            let by_id = rows[..i].iter().rposition(|p| {
                p.id.as_deref().is_some_and(|id| {
                    id.len() >= 2 && lower.contains(&id.to_lowercase()) && p.sheet == q.sheet
                })
            });
            let candidates = (i.saturating_sub(MAX_PARENT_DISTANCE)..i)
                .rev()
                .filter(|&j| rows[j].sheet == q.sheet && conditions[j].is_none());
            let nearest_choice = candidates
                .clone()
                .find(|&j| rows[j].slots.iter().any(|s| s.is_choice()));
            let index = by_id
                .or(nearest_choice)
                .or_else(|| candidates.clone().next())?;
            Some(ParentLink { index, condition })
        })
        .collect()
}

/// Whether the parent's answer rules the dependent question out ("If yes" after a "No").
pub fn rules_out(condition: Condition, parent_choice: &str) -> bool {
    let v = parent_choice.trim().to_lowercase();
    let yes = matches!(
        v.as_str(),
        "yes" | "y" | "true" | "oui" | "ja" | "sí" | "si"
    );
    let no = matches!(v.as_str(), "no" | "n" | "false" | "non" | "nein");
    match condition {
        Condition::Yes => no,
        Condition::No => yes,
        Condition::Any => false,
    }
}

/// A questionnaire language rfpq recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    En,
    Fr,
    De,
    Es,
    It,
    Pt,
    Nl,
}

impl Language {
    /// The language's English name, as the prompt says it.
    pub fn name(self) -> &'static str {
        match self {
            Language::En => "English",
            Language::Fr => "French",
            Language::De => "German",
            Language::Es => "Spanish",
            Language::It => "Italian",
            Language::Pt => "Portuguese",
            Language::Nl => "Dutch",
        }
    }
}

/// Frequent short words that tell the languages apart.
const STOPWORDS: &[(Language, &[&str])] = &[
    (
        Language::En,
        &[
            "the", "and", "of", "to", "you", "your", "do", "is", "are", "for", "with", "have",
        ],
    ),
    (
        Language::Fr,
        &[
            "le", "la", "les", "des", "et", "vous", "votre", "vos", "est", "une", "pour", "avez",
            "sont", "du",
        ],
    ),
    (
        Language::De,
        &[
            "der", "die", "das", "und", "sie", "ihre", "ist", "ein", "eine", "für", "mit", "werden",
        ],
    ),
    (
        Language::Es,
        &[
            "el", "los", "las", "y", "usted", "su", "sus", "es", "una", "para", "con", "del",
        ],
    ),
    (
        Language::It,
        &[
            "il", "gli", "e", "di", "che", "è", "una", "per", "con", "sono", "della", "vostra",
        ],
    ),
    (
        Language::Pt,
        &[
            "o", "os", "as", "e", "você", "sua", "seu", "é", "uma", "para", "com", "dos",
        ],
    ),
    (
        Language::Nl,
        &[
            "de", "het", "een", "en", "u", "uw", "is", "voor", "met", "van", "zijn", "wordt",
        ],
    ),
];

/// The language most question texts are written in (English when unsure).
pub fn detect_language<'a>(texts: impl IntoIterator<Item = &'a str>) -> Language {
    let mut counts = [0usize; 7];
    for text in texts {
        for word in text
            .to_lowercase()
            .split(|c: char| !c.is_alphanumeric() && c != 'è' && c != 'é')
            .filter(|w| !w.is_empty())
        {
            for (i, (_, words)) in STOPWORDS.iter().enumerate() {
                if words.contains(&word) {
                    counts[i] += 1;
                }
            }
        }
    }
    let (best, n) = counts
        .iter()
        .enumerate()
        .max_by_key(|(i, n)| (**n, std::cmp::Reverse(*i)))
        .map(|(i, n)| (i, *n))
        .unwrap_or((0, 0));
    if n == 0 {
        Language::En
    } else {
        STOPWORDS[best].0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workbook::{AnswerSlot, CellRef, SlotKind};

    fn q(row: u32, text: &str, choice: bool) -> QuestionRow {
        QuestionRow {
            sheet: "S".into(),
            row,
            id: Some(format!("Q-{row}")),
            text: text.into(),
            section: None,
            slots: vec![AnswerSlot {
                cell: CellRef::new(row - 1, 2),
                kind: if choice {
                    SlotKind::Choice
                } else {
                    SlotKind::Text
                },
                choices: if choice {
                    vec!["Yes".into(), "No".into()]
                } else {
                    vec![]
                },
                mark_cells: vec![],
                header: "Answer".into(),
            }],
        }
    }

    #[test]
    fn openers_state_conditions() {
        assert_eq!(
            condition_of("If yes, please describe."),
            Some(Condition::Yes)
        );
        assert_eq!(condition_of("If so: which ones?"), Some(Condition::Yes));
        assert_eq!(condition_of("If not, why?"), Some(Condition::No));
        assert_eq!(condition_of("(If \"No\") explain"), Some(Condition::No));
        assert_eq!(condition_of("Si oui, décrivez"), Some(Condition::Yes));
        assert_eq!(condition_of("If none apply, say so"), None);
        assert_eq!(condition_of("Do you encrypt data?"), None);
    }

    #[test]
    fn dependents_link_to_the_nearest_yes_no_question() {
        let rows = vec![
            q(2, "Do you encrypt data at rest?", true),
            q(3, "Which algorithm do you use for it", false),
            q(4, "If yes, describe key management.", false),
            q(5, "If not, why?", false),
            q(6, "Do you log admin access?", true),
        ];
        let links = link_parents(&rows);
        assert_eq!(links[0], None);
        assert_eq!(links[1], None);
        assert_eq!(
            links[2],
            Some(ParentLink {
                index: 0,
                condition: Condition::Yes
            })
        );
        assert_eq!(links[3].as_ref().map(|l| l.index), Some(0));
        assert!(rules_out(Condition::Yes, "No"));
        assert!(rules_out(Condition::No, "Yes"));
        assert!(!rules_out(Condition::Yes, "Yes"));
        assert!(!rules_out(Condition::Any, "No"));
    }

    #[test]
    fn languages_are_told_apart() {
        assert_eq!(
            detect_language(["Do you encrypt the data of your customers?"]),
            Language::En
        );
        assert_eq!(
            detect_language([
                "Avez-vous une politique de sécurité pour les données de vos clients ?",
                "Les sauvegardes sont-elles chiffrées ?"
            ]),
            Language::Fr
        );
        assert_eq!(
            detect_language(["Werden die Daten Ihrer Kunden verschlüsselt und gesichert?"]),
            Language::De
        );
        assert_eq!(detect_language(["", "123"]), Language::En);
    }
}
