//! Classifies a detected row as a question, a section header or an instruction (heuristics only).
//! Only `Question` rows are answered; the others are reported, never filled.

use crate::workbook::QuestionRow;
use serde::{Deserialize, Serialize};

/// What a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowKind {
    Question,
    Header,
    Instruction,
}

const INSTRUCTION_STARTS: &[&str] = &[
    "please complete",
    "please answer",
    "instructions",
    "note:",
    "end of standard",
    "copyright",
    "©",
];

/// Heuristic classification of a row the workbook engine offered as a question.
pub fn classify(q: &QuestionRow) -> RowKind {
    let text = q.text.trim();
    let lower = text.to_lowercase();
    if INSTRUCTION_STARTS.iter().any(|p| lower.starts_with(p)) {
        return RowKind::Instruction;
    }
    let words = text.split_whitespace().count();
    // A short label without a question mark that ends with ':' or is in capitals is a header.
    if words <= 4
        && !text.contains('?')
        && (text.ends_with(':') || (text.len() > 3 && text == text.to_uppercase()))
    {
        return RowKind::Header;
    }
    RowKind::Question
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(text: &str) -> QuestionRow {
        QuestionRow {
            sheet: "S".into(),
            row: 2,
            id: None,
            text: text.into(),
            section: None,
            slots: vec![],
        }
    }

    #[test]
    fn statements_are_questions_and_banners_are_not() {
        assert_eq!(
            classify(&row("Security Center/Defender enable in all subscriptions")),
            RowKind::Question
        );
        assert_eq!(
            classify(&row("Do you encrypt data at rest?")),
            RowKind::Question
        );
        assert_eq!(classify(&row("ACCESS CONTROL")), RowKind::Header);
        assert_eq!(classify(&row("Network:")), RowKind::Header);
        assert_eq!(classify(&row("End of Standard")), RowKind::Instruction);
        assert_eq!(
            classify(&row("Please complete every yellow cell")),
            RowKind::Instruction
        );
    }
}
