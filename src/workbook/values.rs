//! What an answer cell legally holds: a choice slot's value mapped onto its list, a date in
//! ISO form. Pure functions; does not read or write workbooks.

fn normalize(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Maps a model's value onto a legal choice: exact, then case/punctuation-insensitive
/// ("n/a" → "N/A", "NA" ↔ "N/A"), then common synonyms. `None` when nothing matches.
pub fn legal_choice(raw: &str, choices: &[String]) -> Option<String> {
    let raw = raw.trim();
    if let Some(c) = choices.iter().find(|c| c.as_str() == raw) {
        return Some(c.clone());
    }
    let n = normalize(raw);
    if n.is_empty() {
        return None;
    }
    if let Some(c) = choices.iter().find(|c| normalize(c) == n) {
        return Some(c.clone());
    }
    // Synonym classes: a value in a class maps to a choice that is in the same class
    // ("n/a" → "Not Applicable", "Yes" → "Y").
    let synonyms: &[&[&str]] = &[
        &["notapplicable", "na", "none"],
        &["yes", "true", "y"],
        &["no", "false", "n"],
    ];
    for class in synonyms {
        if class.contains(&n.as_str()) {
            return choices
                .iter()
                .find(|c| class.contains(&normalize(c).as_str()))
                .cloned();
        }
    }
    None
}

/// A date as `YYYY-MM-DD` (also accepts `YYYY/MM/DD`); `None` for anything else.
pub fn legal_date(raw: &str) -> Option<String> {
    let parts: Vec<&str> = raw.trim().split(['-', '/']).collect();
    let [y, m, d] = parts.as_slice() else {
        return None;
    };
    let (y, m, d): (u32, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    ((1900..=2999).contains(&y) && (1..=12).contains(&m) && (1..=31).contains(&d))
        .then(|| format!("{y:04}-{m:02}-{d:02}"))
}
