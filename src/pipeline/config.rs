//! The pipeline's settings: `answering:` in `config/llm_models.yaml` (thresholds, source
//! caps, where drafts go), read from the same file as the router's settings, and the hash of
//! both that every answer records. Does not route or build the router (that is
//! `router::config` and `Router::new`), and the file format is the router config's.

use crate::router::config::{
    BUILTIN_ORIGIN, ConfigError, DEFAULT_CONFIG, RouterConfig, from_yaml, read_text,
};
use serde::Deserialize;
use std::path::Path;

/// Everything one config file sets: the router's settings and the pipeline's.
#[derive(Debug, Clone)]
pub struct Settings {
    pub router: RouterConfig,
    /// How the answer pipeline decides, cites and flags (thresholds, source caps).
    pub answering: AnsweringConfig,
}

/// The part of the file the pipeline reads; every other top-level key is the router's (which
/// rejects unknown ones).
#[derive(Deserialize)]
struct PipelineSections {
    #[serde(default)]
    answering: AnsweringConfig,
}

impl Settings {
    /// Loads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::parse(&read_text(path)?, path)
    }

    /// The built-in default configuration.
    pub fn builtin() -> Self {
        Self::parse(DEFAULT_CONFIG, Path::new(BUILTIN_ORIGIN))
            .expect("the built-in config is valid (checked by tests)")
    }

    /// Parses and validates YAML text; `origin` names it in errors, which name the line and
    /// field like the router config's own.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let router = RouterConfig::parse(text, origin)?;
        let sections: PipelineSections = from_yaml(text, origin)?;
        sections.answering.check(origin)?;
        Ok(Self {
            router,
            answering: sections.answering,
        })
    }

    /// [`config_hash`] of these settings.
    pub fn hash(&self) -> String {
        config_hash(&self.router, &self.answering)
    }
}

/// A short content hash of the whole configuration, router and `answering:` (12 hex digits of
/// a sha256 over its parsed form): the same settings give the same hash, so an answer records
/// which configuration produced it. It names env vars, never their values.
/// Where a setting stands in the file (its YAML line and column) is not part of it, so a
/// comment or a blank line does not change the hash.
pub fn config_hash(router: &RouterConfig, answering: &AnsweringConfig) -> String {
    use sha2::{Digest, Sha256};
    let settings = format!("{}|{answering:?}", router.settings_text());
    let digest = Sha256::digest(settings.as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// The answer pipeline's knobs (`answering:` in the config file).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AnsweringConfig {
    /// Rows whose confidence is below this are flagged `needs review`.
    pub review_threshold: f32,
    /// A past answered question at least this similar (cosine) answers directly.
    pub library_threshold: f32,
    /// Sources shown to the model and cited, at most.
    pub max_sources: usize,
    /// Evidence whose cosine similarity to the question is below this is dropped.
    pub min_evidence_score: f32,
    /// Evidence more than this below the best source's similarity is dropped.
    pub evidence_drop: f32,
    /// One extra batched LLM call per question that drops sources judged irrelevant.
    pub relevance_check: bool,
    /// Questions at least this similar (cosine, plus word overlap) are answered once.
    pub duplicate_similarity: f32,
    /// Ambiguous rows sent to the classifier per call (with their neighbours as context).
    pub classify_window: usize,
    /// A row whose best evidence sentence is less similar (cosine) to the question than this
    /// abstains: no retrieved passage addresses it.
    pub min_support: f32,
    /// Generated text must share at least this share of its content words with its source.
    pub min_text_overlap: f32,
    /// Generated text must be at least this similar (cosine) to its source.
    pub min_text_agreement: f32,
    /// Where an untrusted draft (band `review`) goes: the review workbook only (default), or
    /// the customer's cells too (the behaviour before drafts were kept apart).
    pub write_drafts: WriteDrafts,
}

/// Where a draft that is not trusted (band `review`) is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteDrafts {
    /// Only `library` and `high` answers go into the customer's file; drafts go to the review
    /// workbook, with their sources and the reason they need review.
    #[default]
    ReviewOnly,
    /// Every draft with a value is written into the customer's cells as well.
    Cells,
}

impl WriteDrafts {
    pub fn as_str(self) -> &'static str {
        match self {
            WriteDrafts::ReviewOnly => "review_only",
            WriteDrafts::Cells => "cells",
        }
    }

    /// `review_only` or `cells` (as the config and `--write-drafts` spell them).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "review_only" | "review-only" => Some(WriteDrafts::ReviewOnly),
            "cells" => Some(WriteDrafts::Cells),
            _ => None,
        }
    }
}

impl Default for AnsweringConfig {
    fn default() -> Self {
        Self {
            review_threshold: 0.5,
            library_threshold: 0.77,
            max_sources: 5,
            min_evidence_score: 0.30,
            evidence_drop: 0.2,
            relevance_check: false,
            duplicate_similarity: 0.95,
            classify_window: 8,
            min_support: 0.45,
            min_text_overlap: 0.5,
            min_text_agreement: 0.5,
            write_drafts: WriteDrafts::ReviewOnly,
        }
    }
}

impl AnsweringConfig {
    /// Checks that every value is in range. A failure names its field; the section's values
    /// carry no position, so the line is 0.
    fn check(&self, origin: &Path) -> Result<(), ConfigError> {
        let invalid = |field: String, message: String| ConfigError::Invalid {
            path: origin.to_path_buf(),
            line: 0,
            field,
            message,
        };
        let unit = [
            ("review_threshold", self.review_threshold),
            ("library_threshold", self.library_threshold),
            ("min_evidence_score", self.min_evidence_score),
            ("evidence_drop", self.evidence_drop),
            ("duplicate_similarity", self.duplicate_similarity),
            ("min_support", self.min_support),
            ("min_text_overlap", self.min_text_overlap),
            ("min_text_agreement", self.min_text_agreement),
        ];
        for (name, v) in unit {
            if !(0.0..=1.0).contains(&v) {
                return Err(invalid(
                    format!("answering.{name}"),
                    format!("{v} is not between 0 and 1"),
                ));
            }
        }
        if self.max_sources == 0 || self.max_sources > 20 {
            return Err(invalid(
                "answering.max_sources".into(),
                "must be 1..=20".into(),
            ));
        }
        if self.classify_window == 0 || self.classify_window > 50 {
            return Err(invalid(
                "answering.classify_window".into(),
                "must be 1..=50".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_hash_ignores_comments_and_layout_but_not_settings() {
        let base = Settings::builtin();
        let text = DEFAULT_CONFIG;
        let commented = format!("# a comment that moves every line\n\n{text}");
        let moved = Settings::parse(&commented, Path::new("x.yaml")).unwrap();
        assert_eq!(base.hash(), moved.hash());
        let mut changed = base.clone();
        changed.answering.review_threshold += 0.1;
        assert_ne!(base.hash(), changed.hash());
    }

    #[test]
    fn answering_is_read_from_the_router_config_file_and_checked_there() {
        let head = "providers:\n  embedded: {kind: embedded}\ntask_models:\n  classify: embedded:a\n  \
                    answer: embedded:a\n  embed: embedded:c\n";
        let text = format!("{head}answering:\n  max_sources: 3\n  write_drafts: cells\n");
        let s = Settings::parse(&text, Path::new("x.yaml")).unwrap();
        assert_eq!(s.answering.max_sources, 3);
        assert_eq!(s.answering.write_drafts, WriteDrafts::Cells);
        // The router reads the same file and leaves the section alone.
        let router = RouterConfig::parse(&text, Path::new("x.yaml")).unwrap();
        assert_eq!(router.settings_text(), s.router.settings_text());
        let bad = |section: &str| {
            Settings::parse(&format!("{head}{section}"), Path::new("x.yaml"))
                .unwrap_err()
                .to_string()
        };
        let e = bad("answering:\n  max_sources: 0\n");
        assert!(
            e.contains("answering.max_sources") && e.contains("1..=20"),
            "{e}"
        );
        let e = bad("answering:\n  min_support: 1.5\n");
        assert!(e.contains("answering.min_support"), "{e}");
        let e = bad("answering:\n  colour: red\n");
        assert!(e.contains("colour") && e.contains("line 8"), "{e}");
        let e = bad("answering:\n  write_drafts: somewhere\n");
        assert!(e.contains("somewhere"), "{e}");
    }
}
