//! `rfpq demo`: the bundled real checklist and answer bank, so a newcomer sees one whole job
//! run on the embedded models with no other input.

/// The bundled questionnaire (Azure data-security review checklist, MIT, see fixtures/).
pub const CHECKLIST_NAME: &str = "datasecurity_checklist.en.xlsx";
pub const CHECKLIST: &[u8] =
    include_bytes!("../fixtures/azure-review-checklists/datasecurity_checklist.en.xlsx");

/// The bundled knowledge base (CC0 answer bank, see fixtures/answer-bank-plainanswer/SOURCE.md).
pub const ANSWER_BANK: &[(&str, &str)] = &[
    (
        "answers_01-company-and-scope.md",
        include_str!("../fixtures/answer-bank-plainanswer/answers_01-company-and-scope.md"),
    ),
    (
        "answers_02-data-handling-and-privacy.md",
        include_str!("../fixtures/answer-bank-plainanswer/answers_02-data-handling-and-privacy.md"),
    ),
    (
        "answers_03-hosting-and-infrastructure.md",
        include_str!(
            "../fixtures/answer-bank-plainanswer/answers_03-hosting-and-infrastructure.md"
        ),
    ),
    (
        "answers_04-access-control.md",
        include_str!("../fixtures/answer-bank-plainanswer/answers_04-access-control.md"),
    ),
    (
        "answers_05-secure-development.md",
        include_str!("../fixtures/answer-bank-plainanswer/answers_05-secure-development.md"),
    ),
    (
        "answers_06-backup-and-continuity.md",
        include_str!("../fixtures/answer-bank-plainanswer/answers_06-backup-and-continuity.md"),
    ),
    (
        "answers_07-incident-response.md",
        include_str!("../fixtures/answer-bank-plainanswer/answers_07-incident-response.md"),
    ),
    (
        "answers_08-subprocessors-and-vendors.md",
        include_str!("../fixtures/answer-bank-plainanswer/answers_08-subprocessors-and-vendors.md"),
    ),
    (
        "answers_09-devices-and-endpoints.md",
        include_str!("../fixtures/answer-bank-plainanswer/answers_09-devices-and-endpoints.md"),
    ),
    (
        "answers_10-certifications-and-compliance.md",
        include_str!(
            "../fixtures/answer-bank-plainanswer/answers_10-certifications-and-compliance.md"
        ),
    ),
    (
        "answers_11-ai-and-automation.md",
        include_str!("../fixtures/answer-bank-plainanswer/answers_11-ai-and-automation.md"),
    ),
];

/// Writes the bundled checklist and answer bank under `dir`; returns (checklist path, docs dir).
pub fn unpack(dir: &std::path::Path) -> std::io::Result<(std::path::PathBuf, std::path::PathBuf)> {
    let docs = dir.join("answer-bank");
    std::fs::create_dir_all(&docs)?;
    for (name, text) in ANSWER_BANK {
        std::fs::write(docs.join(name), text)?;
    }
    let checklist = dir.join(CHECKLIST_NAME);
    std::fs::write(&checklist, CHECKLIST)?;
    Ok((checklist, docs))
}
