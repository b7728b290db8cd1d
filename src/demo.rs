//! `rfpq demo`: the bundled evaluation company (fictional Kestrel Analytics Ltd: its policies,
//! its answered past questionnaire, and a new customer questionnaire its knowledge base
//! covers), so a newcomer sees one whole job run on the embedded models with no other input:
//! answers reused from the library, grounded answers written, drafts left for review. Writes
//! the bundled files out; does not answer anything itself.

use std::path::{Path, PathBuf};

/// The customer questionnaire the demo fills (see fixtures/eval/SOURCE.md).
pub const QUESTIONNAIRE_NAME: &str = "customer-questionnaire.xlsx";
pub const QUESTIONNAIRE: &[u8] = include_bytes!("../fixtures/eval/demo-questionnaire.xlsx");

/// The answered questionnaire from last year: the answer library.
pub const PAST_NAME: &str = "past-questionnaire.xlsx";
pub const PAST: &[u8] = include_bytes!("../fixtures/eval/past-questionnaire.xlsx");

/// The company's documents (CC0, written for rfpq; see fixtures/eval/SOURCE.md).
pub const DOCUMENTS: &[(&str, &[u8])] = &[
    (
        "access-control-standard.docx",
        include_bytes!("../fixtures/eval/company/access-control-standard.docx"),
    ),
    (
        "business-continuity-and-backup-plan.md",
        include_bytes!("../fixtures/eval/company/business-continuity-and-backup-plan.md"),
    ),
    (
        "data-protection-and-retention-policy.md",
        include_bytes!("../fixtures/eval/company/data-protection-and-retention-policy.md"),
    ),
    (
        "incident-response-plan.pdf",
        include_bytes!("../fixtures/eval/company/incident-response-plan.pdf"),
    ),
    (
        "information-security-policy.md",
        include_bytes!("../fixtures/eval/company/information-security-policy.md"),
    ),
    (
        "secure-development-policy.md",
        include_bytes!("../fixtures/eval/company/secure-development-policy.md"),
    ),
    (
        "trust-page-and-subprocessors.md",
        include_bytes!("../fixtures/eval/company/trust-page-and-subprocessors.md"),
    ),
];

/// Where [`unpack`] put the demo's inputs.
pub struct DemoFiles {
    /// The questionnaire to fill.
    pub questionnaire: PathBuf,
    /// What the knowledge base is built from: the documents folder and the past questionnaire.
    pub kb_sources: Vec<PathBuf>,
}

/// Writes the bundled questionnaire, documents and past questionnaire under `dir`.
pub fn unpack(dir: &Path) -> std::io::Result<DemoFiles> {
    let docs = dir.join("company");
    std::fs::create_dir_all(&docs)?;
    for (name, bytes) in DOCUMENTS {
        std::fs::write(docs.join(name), bytes)?;
    }
    let past = dir.join(PAST_NAME);
    std::fs::write(&past, PAST)?;
    let questionnaire = dir.join(QUESTIONNAIRE_NAME);
    std::fs::write(&questionnaire, QUESTIONNAIRE)?;
    Ok(DemoFiles {
        questionnaire,
        kb_sources: vec![docs, past],
    })
}
