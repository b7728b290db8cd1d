//! Finds questions and their answer slots by layout heuristics; does not read files, write, or ask a model.

use super::read::{SheetInfo, Visibility, WorkbookPackage};
use super::{
    AnswerSlot, CellRef, OtherRow, OtherRowKind, QuestionKey, QuestionRow, Questionnaire,
    SheetPlan, SkipReason, SkippedCell, SlotKind, WorkbookError,
};
use std::collections::{BTreeMap, BTreeSet};

/// Rows searched for the header, from the top of the sheet.
const HEADER_SEARCH_ROWS: u32 = 30;
/// Header cells longer than this are content, not headers.
const MAX_HEADER_LEN: usize = 80;

/// Opens and detects in one step (.xls/.ods are rebuilt as .xlsx first, with a warning).
pub fn inspect(bytes: &[u8]) -> Result<Questionnaire, WorkbookError> {
    Ok(load_and_detect(bytes.to_vec())?.1)
}

/// Loads any supported workbook and detects its questions; the loaded bytes are the package
/// to patch (the original, or the .xlsx rebuilt from an .xls/.ods).
pub fn load_and_detect(bytes: Vec<u8>) -> Result<(super::Loaded, Questionnaire), WorkbookError> {
    let loaded = super::convert::load(bytes)?;
    let mut q = detect(&super::read::open(&loaded.bytes)?);
    q.source_format = loaded.format;
    q.warnings = loaded.warnings.clone();
    Ok((loaded, q))
}

/// Plans every worksheet of the package.
pub fn detect(pkg: &WorkbookPackage) -> Questionnaire {
    let sheets: Vec<SheetPlan> = pkg.sheets.iter().map(plan_sheet).collect();
    let duplicates = duplicate_groups(&sheets);
    Questionnaire {
        sheets,
        duplicates,
        source_format: super::SourceFormat::Xlsx,
        warnings: Vec::new(),
    }
}

/// Shortest question text that may match another by text alone ("Please explain" may not).
const MIN_DUPLICATE_TEXT: usize = 20;

/// Text key for duplicate detection: lowercase alphanumeric words, trailing `*` dropped.
fn text_key(text: &str) -> String {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Groups of questions on filled sheets that share an ID or a normalized text, when the
/// group spans at least two sheets.
fn duplicate_groups(sheets: &[SheetPlan]) -> Vec<Vec<QuestionKey>> {
    let qs: Vec<&QuestionRow> = sheets
        .iter()
        .filter(|s| s.fill)
        .flat_map(|s| s.questions.iter())
        .collect();
    let mut parent: Vec<usize> = (0..qs.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut by_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, q) in qs.iter().enumerate() {
        if let Some(id) = &q.id {
            let id: String = id.chars().filter(|c| !c.is_whitespace()).collect();
            by_key
                .entry(format!("id:{}", id.to_uppercase()))
                .or_default()
                .push(i);
        }
        let t = text_key(&q.text);
        if t.chars().count() >= MIN_DUPLICATE_TEXT {
            by_key.entry(format!("text:{t}")).or_default().push(i);
        }
    }
    for members in by_key.values() {
        let sheets: BTreeSet<&str> = members.iter().map(|i| qs[*i].sheet.as_str()).collect();
        if sheets.len() < 2 {
            continue;
        }
        for w in members.windows(2) {
            let (a, b) = (root(&mut parent, w[0]), root(&mut parent, w[1]));
            if a != b {
                parent[b.max(a)] = a.min(b);
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<QuestionKey>> = BTreeMap::new();
    for (i, q) in qs.iter().enumerate() {
        let r = root(&mut parent, i);
        groups.entry(r).or_default().push(QuestionKey {
            sheet: q.sheet.clone(),
            row: q.row,
        });
    }
    groups.into_values().filter(|g| g.len() > 1).collect()
}

fn skipped(sheet: &SheetInfo, reason: String) -> SheetPlan {
    SheetPlan {
        name: sheet.name.clone(),
        fill: false,
        reason,
        header_row: None,
        questions: Vec::new(),
        other_rows: Vec::new(),
        skipped_cells: Vec::new(),
    }
}

fn plan_sheet(sheet: &SheetInfo) -> SheetPlan {
    match sheet.visibility {
        Visibility::Hidden => return skipped(sheet, "hidden sheet".into()),
        Visibility::VeryHidden => return skipped(sheet, "very hidden sheet".into()),
        Visibility::Visible => {}
    }
    if let Some(kind) = excluded_sheet_kind(&sheet.name) {
        return skipped(
            sheet,
            format!(
                "sheet name '{}' suggests {kind}, not questions to answer",
                sheet.name
            ),
        );
    }
    let Some(layout) = find_layout(sheet) else {
        return skipped(
            sheet,
            format!(
                "no header row with question and answer columns in the first {HEADER_SEARCH_ROWS} rows"
            ),
        );
    };
    let mut unresolved_lists = 0usize;
    let (questions, other_rows, skipped_cells) =
        question_rows(sheet, &layout, &mut unresolved_lists);
    let header_row = Some(layout.header_row + 1);
    let mut cols: Vec<String> = layout
        .answer_cols
        .iter()
        .map(|a| format!("{} ({})", CellRef::column_name(a.col), a.header))
        .collect();
    for g in &layout.mark_groups {
        cols.push(format!(
            "{}:{} (X-mark: {})",
            CellRef::column_name(g.cols[0]),
            CellRef::column_name(g.cols[g.cols.len() - 1]),
            g.labels.join(" / ")
        ));
    }
    let mut reason = format!(
        "header row {}: question column {} ({}), answer columns {}",
        layout.header_row + 1,
        CellRef::column_name(layout.question_col),
        layout.question_header,
        if cols.is_empty() {
            "none".to_string()
        } else {
            cols.join(", ")
        }
    );
    if unresolved_lists > 0 {
        reason.push_str(&format!(
            "; {unresolved_lists} dropdown cell(s) skipped because their list could not be resolved"
        ));
    }
    let fill = !questions.is_empty();
    if fill {
        reason.push_str(&format!("; {} questions", questions.len()));
    } else {
        reason.push_str("; no row has question text and a writable answer cell");
    }
    SheetPlan {
        name: sheet.name.clone(),
        fill,
        reason,
        header_row,
        questions,
        other_rows,
        skipped_cells,
    }
}

/// Words in a sheet name that mark it as not for the respondent, with what they suggest.
fn excluded_sheet_kind(name: &str) -> Option<&'static str> {
    const KINDS: &[(&[&str], &str)] = &[
        (
            &[
                "analyst",
                "analysts",
                "evaluation",
                "scoring",
                "score",
                "backend",
                "crosswalk",
                "assessor",
                "reviewer",
            ],
            "an analyst/evaluation sheet",
        ),
        (
            &[
                "instructions",
                "instruction",
                "readme",
                "introduction",
                "intro",
                "guidance",
                "help",
            ],
            "instructions",
        ),
        (
            &[
                "values",
                "lists",
                "lookup",
                "lookups",
                "dropdown",
                "dropdowns",
                "choices",
            ],
            "a values/lists sheet",
        ),
        (
            &["changelog", "glossary", "definitions", "history"],
            "reference material",
        ),
    ];
    let lower = name.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    KINDS
        .iter()
        .find(|(keys, _)| words.iter().any(|w| keys.contains(w)))
        .map(|(_, kind)| *kind)
}

/// What a header cell says its column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Id,
    Section,
    /// Question text, with a strength (5 = "Question", 1 = "Description").
    Question(u8),
    /// An answer column (choice or free text).
    Answer,
    /// A known non-answer column (guidance, analyst notes, severity, links…).
    Excluded,
    Unknown,
}

fn normalise(h: &str) -> String {
    let lower = h.to_lowercase();
    let cleaned: String = lower
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '#' || c == '/' {
                c
            } else {
                ' '
            }
        })
        .collect();
    format!(
        " {} ",
        cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
    )
}

fn has_any(n: &str, phrases: &[&str]) -> bool {
    phrases.iter().any(|p| n.contains(&format!(" {p} ")))
}

fn has_any_cjk(n: &str, phrases: &[&str]) -> bool {
    phrases.iter().any(|p| n.contains(p))
}

fn classify(header: &str) -> Role {
    let n = normalise(header);
    let word_count = n.split_whitespace().count();
    // A question is content, not a header ("Are access controls … ?").
    if word_count == 0 || header.chars().count() > MAX_HEADER_LEN || header.trim().ends_with('?') {
        return Role::Unknown;
    }
    if has_any(
        &n,
        &[
            "analyst",
            "guidance",
            "reviewer",
            "assessor",
            "internal use",
            "score",
            "scoring",
            "weight",
            "more info",
            "training",
            "graph query",
            "guid",
            "severity",
            "priority",
            "risk level",
            "url",
            "link",
            "links",
            "mapping",
            "example",
            "examples",
            "instructions",
            "evaluation",
        ],
    ) {
        return Role::Excluded;
    }
    if word_count <= 3
        && !has_any(&n, &["yes no", "yes/no", "y/n"])
        && has_any(
            &n,
            &[
                "id",
                "ref",
                "#",
                "q#",
                "nr",
                "no",
                "num",
                "number",
                "identifier",
                "ref #",
                "ref no",
            ],
        )
    {
        return Role::Id;
    }
    if has_any(
        &n,
        &[
            "area",
            "domain",
            "section",
            "category",
            "topic",
            "chapter",
            "family",
            "theme",
            "domaine",
            "catégorie",
            "thème",
            "bereich",
            "kategorie",
            "thema",
            "dominio",
            "categoría",
            "categoria",
        ],
    ) || has_any_cjk(&n, &["分類", "区分", "領域", "類別"])
    {
        return Role::Section;
    }
    if has_any(
        &n,
        &[
            "question",
            "questions",
            "query",
            "checklist item",
            "requirement",
            "requirements",
            "statement",
            "criteria",
            "criterion",
            "control description",
            "control specification",
            "exigence",
            "exigences",
            "frage",
            "fragen",
            "anforderung",
            "pregunta",
            "preguntas",
            "requisito",
            "domanda",
            "domande",
            "vraag",
            "vragen",
        ],
    ) || has_any_cjk(&n, &["質問", "設問", "問題", "要件"])
    {
        let strong = has_any(
            &n,
            &[
                "question",
                "questions",
                "query",
                "frage",
                "fragen",
                "pregunta",
                "preguntas",
                "domanda",
                "domande",
                "vraag",
                "vragen",
            ],
        ) || has_any_cjk(&n, &["質問", "設問", "問題"]);
        return Role::Question(if strong { 5 } else { 4 });
    }
    if has_any(
        &n,
        &[
            "answer",
            "answers",
            "response",
            "responses",
            "status",
            "yes/no",
            "y/n",
            "yes no",
            "compliance",
            "compliant",
            "applicable",
            "comment",
            "comments",
            "explanation",
            "explain",
            "notes",
            "note",
            "additional information",
            "additional info",
            "remarks",
            "justification",
            "evidence",
            "details",
            "implementation",
            "supporting information",
            "responsibilities",
            "responsibility",
            "third party name",
            "rationale",
            // French, German, Spanish, Italian, Portuguese, Dutch.
            "réponse",
            "réponses",
            "reponse",
            "statut",
            "commentaire",
            "commentaires",
            "remarque",
            "remarques",
            "explication",
            "précisions",
            "antwort",
            "antworten",
            "kommentar",
            "kommentare",
            "bemerkung",
            "bemerkungen",
            "erläuterung",
            "respuesta",
            "respuestas",
            "comentario",
            "comentarios",
            "observaciones",
            "risposta",
            "risposte",
            "commento",
            "commenti",
            "resposta",
            "respostas",
            "comentário",
            "observações",
            "antwoord",
            "opmerking",
            "opmerkingen",
            "toelichting",
        ],
    ) || has_any_cjk(
        &n,
        &[
            "回答",
            "答え",
            "状態",
            "ステータス",
            "状況",
            "備考",
            "コメント",
            "説明",
            "回覆",
            "答覆",
            "狀態",
            "評論",
            "註解",
            "備註",
            "說明",
        ],
    ) {
        return Role::Answer;
    }
    if has_any(&n, &["control", "controls", "item", "items", "check"]) {
        return Role::Question(3);
    }
    if has_any(&n, &["description", "text"]) || has_any_cjk(&n, &["項目", "内容", "內容"]) {
        return Role::Question(1);
    }
    Role::Unknown
}

#[derive(Debug, Clone)]
struct AnswerCol {
    col: u32,
    header: String,
    /// The header names it an answer column (free text allowed without a dropdown).
    by_header: bool,
}

/// Adjacent columns whose sub-headers are Yes / No / N/A labels: an X-mark matrix.
#[derive(Debug, Clone)]
struct MarkGroup {
    cols: Vec<u32>,
    labels: Vec<String>,
    header: String,
}

#[derive(Debug, Clone)]
struct Layout {
    header_row: u32,
    /// First row that may hold questions (after the header and any sub-header row).
    data_start: u32,
    mark_groups: Vec<MarkGroup>,
    question_col: u32,
    question_header: String,
    id_col: Option<u32>,
    section_cols: Vec<u32>,
    answer_cols: Vec<AnswerCol>,
}

/// Picks the header row and the columns' roles.
fn find_layout(sheet: &SheetInfo) -> Option<Layout> {
    let last = sheet.last_row()?;
    let mut best: Option<(u32, Layout)> = None;
    for r in 0..=last.min(HEADER_SEARCH_ROWS - 1) {
        let cells: Vec<(CellRef, &str, Role)> = sheet
            .row(r)
            .map(|(c, v)| (c, v.trim(), classify(v)))
            .filter(|(_, v, _)| !v.is_empty())
            .collect();
        if cells.len() < 2 {
            continue;
        }
        let answer_headers = cells
            .iter()
            .filter(|(_, _, role)| *role == Role::Answer)
            .count();
        let question = cells
            .iter()
            .filter_map(|(c, v, role)| match role {
                Role::Question(rank) => Some((*rank, *c, *v)),
                _ => None,
            })
            .max_by_key(|(rank, c, _)| (*rank, std::cmp::Reverse(c.col)));
        let known = cells
            .iter()
            .filter(|(_, _, role)| !matches!(role, Role::Unknown))
            .count();
        let Some(layout) = build_layout(
            sheet,
            r,
            &cells,
            question.map(|(_, c, v)| (c.col, v.to_string())),
        ) else {
            continue;
        };
        if layout.answer_cols.is_empty() && layout.mark_groups.is_empty() {
            continue;
        }
        let q_rank = question.map_or(0, |(rank, _, _)| u32::from(rank));
        let score = 4 * q_rank
            + 3 * (answer_headers.min(3) as u32)
            + known as u32
            + layout.answer_cols.len().min(3) as u32
            + 3 * (layout.mark_groups.len().min(1) as u32);
        if q_rank == 0 && answer_headers == 0 {
            continue;
        }
        if best.as_ref().is_none_or(|(s, _)| score > *s) {
            best = Some((score, layout));
        }
    }
    best.map(|(_, l)| l)
}

fn build_layout(
    sheet: &SheetInfo,
    header_row: u32,
    cells: &[(CellRef, &str, Role)],
    question: Option<(u32, String)>,
) -> Option<Layout> {
    let (mark_groups, data_start) = mark_groups(sheet, header_row);
    let in_mark = |col: u32| mark_groups.iter().any(|g| g.cols.contains(&col));
    // Prefer an ID header that names questions ("Question ID" over "Control ID").
    let ids: Vec<(u32, &str)> = cells
        .iter()
        .filter(|(c, _, r)| *r == Role::Id && !in_mark(c.col))
        .map(|(c, v, _)| (c.col, *v))
        .collect();
    let id_col = ids
        .iter()
        .find(|(_, v)| normalise(v).contains(" question"))
        .or(ids.first())
        .map(|(c, _)| *c);
    let section_cols: Vec<u32> = cells
        .iter()
        .filter(|(_, _, r)| *r == Role::Section)
        .map(|(c, _, _)| c.col)
        .collect();
    let excluded: BTreeSet<u32> = cells
        .iter()
        .filter(|(_, _, r)| *r == Role::Excluded)
        .map(|(c, _, _)| c.col)
        .collect();
    let (question_col, question_header) = match question {
        Some(q) => q,
        None => {
            let taken: BTreeSet<u32> = cells
                .iter()
                .filter(|(_, _, r)| !matches!(r, Role::Unknown | Role::Question(_)))
                .map(|(c, _, _)| c.col)
                .collect();
            let col = longest_text_column(sheet, header_row, &taken)?;
            let header = sheet
                .value(CellRef::new(header_row, col))
                .unwrap_or("")
                .trim()
                .to_string();
            (col, header)
        }
    };
    let id_col = id_col.or_else(|| infer_id_col(sheet, header_row, question_col));
    let header_of = |col: u32| {
        sheet
            .value(CellRef::new(header_row, col))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let first_col = cells.first().map_or(0, |(c, _, _)| c.col);
    let last_col = cells.last().map_or(0, |(c, _, _)| c.col);
    let data_rows = (header_row + 1, sheet.last_row().unwrap_or(header_row));
    let mut answer_cols = Vec::new();
    for col in first_col..=last_col {
        if col == question_col
            || Some(col) == id_col
            || section_cols.contains(&col)
            || excluded.contains(&col)
            || in_mark(col)
        {
            continue;
        }
        let role = cells
            .iter()
            .find(|(c, _, _)| c.col == col)
            .map_or(Role::Unknown, |(_, _, r)| *r);
        let by_header = role == Role::Answer;
        let has_list = sheet.validations.iter().any(|v| {
            (v.is_list() || v.kind == "date")
                && v.ranges.iter().any(|rg| {
                    (rg.start.col..=rg.end.col).contains(&col)
                        && rg.start.row <= data_rows.1
                        && rg.end.row >= data_rows.0
                })
        });
        if by_header || has_list {
            answer_cols.push(AnswerCol {
                col,
                header: header_of(col),
                by_header,
            });
        }
    }
    Some(Layout {
        header_row,
        data_start,
        mark_groups,
        question_col,
        question_header,
        id_col,
        section_cols,
        answer_cols,
    })
}

/// Looks like a question ID: `DOCU-01`, `A&A-01.1`, `A.5.1`, `AIS- 02.2`.
fn looks_like_id(v: &str) -> bool {
    let v = v.trim();
    let compact: String = v.chars().filter(|c| !c.is_whitespace()).collect();
    (2..=16).contains(&compact.chars().count())
        && v.split_whitespace().count() <= 2
        && compact.chars().next().is_some_and(char::is_alphanumeric)
        && compact.chars().any(|c| c.is_ascii_digit())
        && compact
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '.' | '_' | '&'))
}

/// Without an ID header: the column left of the question column whose values, on rows with
/// question text, mostly look like IDs.
fn infer_id_col(sheet: &SheetInfo, header_row: u32, question_col: u32) -> Option<u32> {
    let mut rows = 0usize;
    let mut hits: BTreeMap<u32, usize> = BTreeMap::new();
    for (c, _) in sheet
        .cells
        .range(CellRef::new(header_row + 1, 0)..)
        .filter(|(c, v)| c.col == question_col && !v.trim().is_empty())
        .take(2_000)
    {
        rows += 1;
        for (cell, v) in sheet.row(c.row).filter(|(x, _)| x.col < question_col) {
            if looks_like_id(v) {
                *hits.entry(cell.col).or_default() += 1;
            }
        }
    }
    hits.into_iter()
        .filter(|(_, n)| *n * 2 > rows)
        .max_by_key(|(col, n)| (*n, std::cmp::Reverse(*col)))
        .map(|(col, _)| col)
}

/// The column with the longest average text under the header, among columns not `taken`.
fn longest_text_column(sheet: &SheetInfo, header_row: u32, taken: &BTreeSet<u32>) -> Option<u32> {
    let mut totals: std::collections::BTreeMap<u32, (usize, usize)> = Default::default();
    let start = CellRef::new(header_row + 1, 0);
    for (c, v) in sheet.cells.range(start..).take(20_000) {
        if taken.contains(&c.col) {
            continue;
        }
        let e = totals.entry(c.col).or_default();
        e.0 += v.chars().count();
        e.1 += 1;
    }
    totals
        .into_iter()
        .filter(|(_, (_, n))| *n >= 2)
        .max_by_key(|(col, (len, n))| (len / n, std::cmp::Reverse(*col)))
        .map(|(col, _)| col)
}

/// A Yes / No / N/A label of an X-matrix column, normalized; `None` for anything else.
fn mark_label(text: &str) -> Option<&'static str> {
    match normalise(text).trim() {
        "yes" | "y" => Some("yes"),
        "no" | "n" => Some("no"),
        "n/a" | "na" | "not applicable" | "n a" | "not available" => Some("na"),
        _ => None,
    }
}

/// X-mark groups in the header row or the two rows below it, and the first data row.
fn mark_groups(sheet: &SheetInfo, header_row: u32) -> (Vec<MarkGroup>, u32) {
    for r in header_row..=header_row + 2 {
        let mut groups = Vec::new();
        let mut run: Vec<(u32, String)> = Vec::new();
        let cells: Vec<(CellRef, &str)> = sheet.row(r).collect();
        let mut flush = |run: &mut Vec<(u32, String)>| {
            let kinds: Vec<&str> = run.iter().filter_map(|(_, l)| mark_label(l)).collect();
            if run.len() >= 2 && kinds.contains(&"yes") && kinds.contains(&"no") {
                let first = run[0].0;
                // The group's header: the (merged) cell above its first column.
                let header = (r > header_row)
                    .then(|| value_merged(sheet, CellRef::new(header_row, first)))
                    .flatten()
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| "Answer".to_string());
                groups.push(MarkGroup {
                    cols: run.iter().map(|(c, _)| *c).collect(),
                    labels: run.iter().map(|(_, l)| l.clone()).collect(),
                    header,
                });
            }
            run.clear();
        };
        for (c, v) in cells {
            if mark_label(v).is_none() {
                flush(&mut run);
                continue;
            }
            if run.last().is_some_and(|(last, _)| *last + 1 != c.col) {
                flush(&mut run);
            }
            run.push((c.col, v.trim().to_string()));
        }
        flush(&mut run);
        if !groups.is_empty() {
            return (groups, r + 1);
        }
    }
    (Vec::new(), header_row + 1)
}

/// The value of a cell, or of the top-left cell of the merged range it lies in.
fn value_merged(sheet: &SheetInfo, cell: CellRef) -> Option<&str> {
    sheet
        .value(cell)
        .or_else(|| sheet.merged_at(cell).and_then(|m| sheet.value(m.start)))
}

fn has_word(text: &str, words: &[&str]) -> bool {
    has_any(&normalise(text), words)
}

/// A closing row ("End of Standard").
fn is_footer(text: &str) -> bool {
    let n = normalise(text);
    let n = n.trim();
    [
        "end of standard",
        "end of questionnaire",
        "end of document",
        "end of survey",
        "end of form",
    ]
    .iter()
    .any(|p| n.starts_with(p))
}

fn is_copyright(text: &str) -> bool {
    text.contains('©')
        || text.contains("(c) ")
        || has_word(text, &["copyright", "all rights reserved"])
}

/// A field about the respondent ("Vendor name:", "Contact email").
fn is_contact(text: &str) -> bool {
    let t = text.trim();
    !t.contains('?')
        && t.chars().count() <= 60
        && normalise(t).split_whitespace().count() <= 5
        && has_word(
            t,
            &[
                "name",
                "email",
                "e mail",
                "phone",
                "telephone",
                "address",
                "website",
                "contact",
                "job title",
            ],
        )
}

/// The first non-empty text of a row.
fn first_text(sheet: &SheetInfo, r: u32) -> Option<&str> {
    sheet.row(r).map(|(_, v)| v.trim()).find(|v| !v.is_empty())
}

fn question_rows(
    sheet: &SheetInfo,
    layout: &Layout,
    unresolved: &mut usize,
) -> (Vec<QuestionRow>, Vec<OtherRow>, Vec<SkippedCell>) {
    let mut out = Vec::new();
    let mut all_skipped = Vec::new();
    let mut other = Vec::new();
    // A header row without a question header names the first section there (HECVAT 3's
    // "Documentation | Vendor Answers | Additional Information").
    let mut current_section: Option<String> = (layout.question_header.is_empty()
        && layout.section_cols.is_empty())
    .then(|| {
        sheet
            .row(layout.header_row)
            .find(|(c, v)| c.col <= layout.question_col && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_string())
    })
    .flatten();
    let rows: BTreeSet<u32> = sheet.cells.keys().map(|c| c.row).collect();
    let push_other = |other: &mut Vec<OtherRow>, r: u32, kind, text: &str| {
        other.push(OtherRow {
            row: r + 1,
            kind,
            text: text.to_string(),
            id: None,
        });
    };
    for r in rows {
        let Some(first) = first_text(sheet, r) else {
            continue;
        };
        if r < layout.header_row {
            let kind = if first.chars().count() > 80 {
                OtherRowKind::Instruction
            } else {
                OtherRowKind::Banner
            };
            push_other(&mut other, r, kind, first);
            continue;
        }
        if r < layout.data_start {
            push_other(&mut other, r, OtherRowKind::Header, first);
            continue;
        }
        let text = sheet
            .value(CellRef::new(r, layout.question_col))
            .map(str::trim)
            .unwrap_or("");
        let label = if text.is_empty() { first } else { text };
        let closing = if is_footer(label) {
            Some(OtherRowKind::Footer)
        } else if is_copyright(label) {
            Some(OtherRowKind::Copyright)
        } else {
            None
        };
        if let Some(kind) = closing {
            push_other(&mut other, r, kind, label);
            continue;
        }
        if text.is_empty() {
            let kind = if first.chars().count() > 120 {
                OtherRowKind::Instruction
            } else {
                // A section banner: short text at or left of the question column.
                if layout.section_cols.is_empty()
                    && let Some((_, v)) = sheet
                        .row(r)
                        .find(|(c, v)| c.col <= layout.question_col && !v.trim().is_empty())
                    && v.trim().chars().count() <= 120
                {
                    current_section = Some(v.trim().to_string());
                }
                OtherRowKind::SectionHeader
            };
            push_other(&mut other, r, kind, first);
            continue;
        }
        if text == layout.question_header {
            push_other(&mut other, r, OtherRowKind::Header, text);
            continue;
        }
        let id = layout
            .id_col
            .and_then(|c| sheet.value(CellRef::new(r, c)))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        let (slots, skipped) = row_slots(sheet, layout, r, unresolved);
        if id.is_none() && is_contact(text) {
            push_other(&mut other, r, OtherRowKind::Contact, text);
            continue;
        }
        // A date, number or code in the question column ("Last reviewed | 2024-05-20") is a
        // field of the document, not a question.
        if text.chars().filter(|c| c.is_alphabetic()).count() < 3 {
            let label = id
                .as_deref()
                .map_or(text.to_string(), |i| format!("{i}: {text}"));
            push_other(&mut other, r, OtherRowKind::Contact, &label);
            continue;
        }
        let any_skipped = !skipped.is_empty();
        all_skipped.extend(skipped);
        if slots.is_empty() {
            let kind = if id.is_some() || any_skipped {
                OtherRowKind::NoAnswerCell
            } else if text.chars().count() > 120 && !text.contains('?') {
                OtherRowKind::Instruction
            } else {
                OtherRowKind::SectionHeader
            };
            push_other(&mut other, r, kind, text);
            if kind == OtherRowKind::NoAnswerCell
                && let Some(last) = other.last_mut()
            {
                last.id = id;
            }
            continue;
        }
        let section = if layout.section_cols.is_empty() {
            current_section.clone()
        } else {
            let parts: Vec<&str> = layout
                .section_cols
                .iter()
                .filter_map(|c| value_merged(sheet, CellRef::new(r, *c)).map(str::trim))
                .filter(|v| !v.is_empty())
                .collect();
            (!parts.is_empty()).then(|| parts.join(" / "))
        };
        out.push(QuestionRow {
            sheet: sheet.name.clone(),
            row: r + 1,
            id,
            text: text.to_string(),
            section,
            slots,
        });
    }
    (out, other, all_skipped)
}

/// Why `cell` cannot take a value, if it cannot (formula or merged interior).
fn blocked(sheet: &SheetInfo, cell: CellRef) -> Option<SkipReason> {
    if sheet.is_formula(cell) {
        Some(SkipReason::Formula)
    } else if sheet.merged_at(cell).is_some_and(|m| m.start != cell) {
        Some(SkipReason::MergedNonAnchor)
    } else {
        None
    }
}

fn row_slots(
    sheet: &SheetInfo,
    layout: &Layout,
    r: u32,
    unresolved: &mut usize,
) -> (Vec<AnswerSlot>, Vec<SkippedCell>) {
    let mut slots = Vec::new();
    let mut skipped = Vec::new();
    let value_of = |cell: CellRef| sheet.value(cell).map(str::trim).filter(|v| !v.is_empty());
    let mut skip = |cell: CellRef, reason: SkipReason| {
        skipped.push(SkippedCell {
            cell,
            reason,
            value: value_of(cell).map(str::to_string),
        });
    };
    // (column, slot or skip) in column order.
    let mut by_col: Vec<(u32, AnswerSlot)> = Vec::new();
    for g in &layout.mark_groups {
        let cells: Vec<CellRef> = g.cols.iter().map(|c| CellRef::new(r, *c)).collect();
        let mut ok = true;
        for cell in &cells {
            if let Some(reason) = blocked(sheet, *cell) {
                skip(*cell, reason);
                ok = false;
            } else if value_of(*cell).is_some() {
                skip(*cell, SkipReason::Prefilled);
                ok = false;
            }
        }
        if ok {
            by_col.push((
                g.cols[0],
                AnswerSlot {
                    cell: cells[0],
                    kind: SlotKind::Mark,
                    choices: g.labels.clone(),
                    mark_cells: cells,
                    header: g.header.clone(),
                },
            ));
        }
    }
    for ac in &layout.answer_cols {
        let cell = CellRef::new(r, ac.col);
        if let Some(reason) = blocked(sheet, cell) {
            skip(cell, reason);
            continue;
        }
        let existing = value_of(cell);
        let slot = |kind, choices: Vec<String>| AnswerSlot {
            cell,
            kind,
            choices,
            mark_cells: Vec::new(),
            header: ac.header.clone(),
        };
        let is_date = sheet
            .validations
            .iter()
            .any(|v| v.kind == "date" && v.applies_to(cell));
        match sheet.list_validation_at(cell) {
            Some(dv) if dv.choices.is_empty() => {
                *unresolved += 1;
                skip(cell, SkipReason::UnresolvedList);
            }
            // The list's first value pre-filled ("Not verified") is a default, not an answer.
            Some(dv)
                if existing
                    .is_none_or(|v| dv.choices.first().is_some_and(|first| first.trim() == v)) =>
            {
                by_col.push((ac.col, slot(SlotKind::Choice, dv.choices.clone())));
            }
            Some(_) => skip(cell, SkipReason::Prefilled),
            None if existing.is_some() && (ac.by_header || is_date) => {
                skip(cell, SkipReason::Prefilled);
            }
            // A value in a column that is neither named an answer nor validated: not ours.
            None if existing.is_some() => {}
            None if is_date || (ac.by_header && has_word(&ac.header, &["date"])) => {
                by_col.push((ac.col, slot(SlotKind::Date, Vec::new())));
            }
            None if ac.by_header => match header_choices(&ac.header) {
                // No dropdown, but the header names the answers: "Answer (Yes/No/N/A)".
                Some(choices) => by_col.push((ac.col, slot(SlotKind::Choice, choices))),
                None => by_col.push((ac.col, slot(SlotKind::Text, Vec::new()))),
            },
            None => {}
        }
    }
    by_col.sort_by_key(|(c, _)| *c);
    slots.extend(by_col.into_iter().map(|(_, s)| s));
    skipped.sort_by_key(|s| s.cell);
    (slots, skipped)
}

/// The answers a header spells out, as in "Answer (Yes/No/N/A)" or "Yes/No": 2–6 short
/// slash-separated values that include Yes and No. Anything else is a free-text header.
fn header_choices(header: &str) -> Option<Vec<String>> {
    let h = header.trim();
    let inner = match (h.rfind('('), h.ends_with(')')) {
        (Some(open), true) => &h[open + 1..h.len() - 1],
        _ => h,
    };
    let parts: Vec<String> = inner
        .split('/')
        .map(|p| p.trim().to_string())
        .collect::<Vec<_>>();
    // "N/A" is split in two by the separator: glue it back.
    let mut values: Vec<String> = Vec::new();
    for p in parts {
        if p.eq_ignore_ascii_case("a") && values.last().is_some_and(|l| l.eq_ignore_ascii_case("n"))
        {
            let n = values.pop().unwrap_or_default();
            values.push(format!("{n}/{p}"));
        } else {
            values.push(p);
        }
    }
    let has = |w: &str| values.iter().any(|v| v.eq_ignore_ascii_case(w));
    let ok = (2..=6).contains(&values.len())
        && values
            .iter()
            .all(|v| !v.is_empty() && v.chars().count() <= 20)
        && has("yes")
        && has("no");
    ok.then_some(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_that_spell_out_their_answers() {
        let v = |h: &str| header_choices(h);
        assert_eq!(
            v("Answer (Yes/No/N/A)"),
            Some(vec!["Yes".into(), "No".into(), "N/A".into()])
        );
        assert_eq!(v("Yes / No"), Some(vec!["Yes".into(), "No".into()]));
        assert_eq!(v("Answer"), None);
        assert_eq!(v("Comments (Yes/No answers need an explanation)"), None);
        assert_eq!(v("Response (Yes/Partial)"), None);
    }

    #[test]
    fn header_roles() {
        assert_eq!(classify("Checklist item"), Role::Question(4));
        assert_eq!(classify("Question"), Role::Question(5));
        assert_eq!(classify("Description (optional)"), Role::Question(1));
        assert_eq!(classify("Status"), Role::Answer);
        assert_eq!(classify("Comment"), Role::Answer);
        assert_eq!(classify("Vendor Answers"), Role::Answer);
        assert_eq!(classify("Additional Information"), Role::Answer);
        assert_eq!(classify("Analyst Notes"), Role::Excluded);
        assert_eq!(classify("Main Area"), Role::Section);
        assert_eq!(classify("Question ID"), Role::Id);
        assert_eq!(classify("GUID"), Role::Excluded);
        assert_eq!(classify("More info"), Role::Excluded);
        assert_eq!(classify("Severity"), Role::Excluded);
        assert_eq!(classify("Réponse"), Role::Answer);
        assert_eq!(classify("Commentaires"), Role::Answer);
        assert_eq!(classify("Frage"), Role::Question(5));
        assert_eq!(classify("Antwort"), Role::Answer);
        assert_eq!(classify("Comentarios"), Role::Answer);
        assert_eq!(classify("Domaine"), Role::Section);
    }

    #[test]
    fn sheet_names() {
        assert!(excluded_sheet_kind("Values").is_some());
        assert!(excluded_sheet_kind("Institution Evaluation").is_some());
        assert!(excluded_sheet_kind("(backend scoring)").is_some());
        assert!(excluded_sheet_kind("Checklist").is_none());
        assert!(excluded_sheet_kind("Organization").is_none());
    }
}
