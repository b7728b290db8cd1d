//! Detection and round trip on synthetic copies of the real questionnaire layouts (CAIQ v4 / v3,
//! HECVAT 3 / 4, ISO 27001 SoA): exact questions, slot kinds, choices, non-question rows,
//! skipped cells and duplicates; every slot filled, patched and verified.

mod common;

use calamine::{Data, Reader, Xlsx};
use common::synthetic::*;
use common::workbook_util::entry_text;
use rfpq::workbook::{
    self, CellRef, CellWrite, OtherRowKind, QuestionKey, Questionnaire, SkipReason, SlotKind,
};
use std::collections::BTreeMap;
use std::io::Cursor;

/// (cell, kind, choices) of one slot.
type Slot = (String, SlotKind, Vec<String>);
/// (row, id, section, slots) of one question.
type Detected<'a> = (u32, Option<&'a str>, Option<&'a str>, Vec<Slot>);

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn choice(cell: &str, items: &[&str]) -> Slot {
    (cell.to_string(), SlotKind::Choice, strings(items))
}

fn text(cell: &str) -> Slot {
    (cell.to_string(), SlotKind::Text, Vec::new())
}

fn slots_of(q: &workbook::QuestionRow) -> Vec<Slot> {
    q.slots
        .iter()
        .map(|s| (s.cell.to_string(), s.kind, s.choices.clone()))
        .collect()
}

fn plan<'q>(q: &'q Questionnaire, sheet: &str) -> &'q workbook::SheetPlan {
    q.sheets
        .iter()
        .find(|s| s.name == sheet)
        .unwrap_or_else(|| panic!("no sheet {sheet}"))
}

fn other_rows(q: &Questionnaire, sheet: &str) -> Vec<(u32, OtherRowKind)> {
    plan(q, sheet)
        .other_rows
        .iter()
        .map(|o| (o.row, o.kind))
        .collect()
}

fn skipped(p: &workbook::SheetPlan, row: u32) -> Vec<(String, SkipReason)> {
    p.skipped_in_row(row)
        .map(|s| (s.cell.to_string(), s.reason))
        .collect()
}

/// Fills every slot (last choice, never the default; a text; a date), patches, and checks:
/// verify finds nothing outside the answer cells, calamine reads every written value, and the
/// filled file has no open slot left. Returns the writes.
fn round_trip(original: &[u8]) -> (Vec<CellWrite>, Vec<u8>) {
    let q = workbook::inspect(original).expect("inspect");
    let mut writes = Vec::new();
    for row in q.questions() {
        for slot in &row.slots {
            let value = match slot.kind {
                SlotKind::Choice | SlotKind::Mark => slot.choices.last().expect("choices").clone(),
                SlotKind::Text => format!("=answer for {} row {}\nline two", row.sheet, row.row),
                SlotKind::Date => "2024-05-20".to_string(),
            };
            let w = slot.writes_for(&row.sheet, &value);
            assert_eq!(w.len(), 1, "{} {}", row.sheet, slot.cell);
            writes.extend(w);
        }
    }
    let filled = workbook::patch(original, &writes).expect("patch");
    let declared: Vec<(String, CellRef)> = q
        .questions()
        .flat_map(workbook::QuestionRow::answer_cells)
        .collect();
    let diffs = workbook::verify(original, &filled, &declared).expect("verify");
    assert!(diffs.is_empty(), "{diffs:#?}");
    let mut xl: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(filled.clone())).unwrap();
    let mut by_sheet: BTreeMap<&str, Vec<&CellWrite>> = BTreeMap::new();
    for w in &writes {
        by_sheet.entry(&w.sheet).or_default().push(w);
    }
    for (sheet, ws) in by_sheet {
        let range = xl.worksheet_range(sheet).unwrap();
        for w in ws {
            assert_eq!(
                range.get_value((w.cell.row, w.cell.col)),
                Some(&Data::String(w.value.clone())),
                "{sheet} {}",
                w.cell
            );
        }
    }
    let again = workbook::inspect(&filled).expect("inspect filled");
    assert_eq!(again.questions().count(), 0, "every slot is filled");
    (writes, filled)
}

#[test]
fn caiq_v4_layout() {
    let bytes = caiq_v4();
    let q = workbook::inspect(&bytes).expect("inspect");
    let fills: Vec<(&str, bool)> = q.sheets.iter().map(|s| (s.name.as_str(), s.fill)).collect();
    assert_eq!(fills, vec![("Introduction", false), ("CAIQv4.0.3", true)]);
    let p = plan(&q, "CAIQv4.0.3");
    assert_eq!(p.header_row, Some(2));
    assert_eq!(p.questions.len(), 6);
    let ids: Vec<&str> = p.questions.iter().filter_map(|r| r.id.as_deref()).collect();
    assert_eq!(
        ids,
        [
            "A&A-01.1", "A&A-01.2", "A&A-02.1", "AIS-01.1", "AIS-01.2", "AIS-01.3"
        ]
    );
    let first = &p.questions[0];
    assert_eq!(first.row, 3);
    assert!(
        first.text.contains("established,\ndocumented"),
        "line breaks kept"
    );
    assert_eq!(first.section.as_deref(), Some("Audit & Assurance"));
    assert_eq!(
        p.questions[1].section.as_deref(),
        Some("Audit & Assurance"),
        "merged L3:L4"
    );
    assert_eq!(
        p.questions[3].text, "Application security policies are established and documented",
        "a statement without '?' is a question when it has slots"
    );
    for r in &p.questions[..5] {
        let n = r.row;
        assert_eq!(
            slots_of(r),
            vec![
                choice(&format!("C{n}"), &YES_NO_NA),
                choice(&format!("D{n}"), &OWNERSHIP),
                text(&format!("E{n}")),
                text(&format!("F{n}")),
            ],
            "row {n}"
        );
    }
    let last = &p.questions[5];
    assert_eq!(
        slots_of(last),
        vec![choice("D8", &OWNERSHIP), text("E8"), text("F8")]
    );
    assert_eq!(
        skipped(p, 8),
        vec![("C8".to_string(), SkipReason::Prefilled)]
    );
    assert_eq!(
        p.skipped_in_row(8).next().unwrap().value.as_deref(),
        Some("No")
    );
    assert_eq!(
        other_rows(&q, "CAIQv4.0.3"),
        vec![
            (1, OtherRowKind::Banner),
            (2, OtherRowKind::Header),
            (9, OtherRowKind::Footer),
            (10, OtherRowKind::Copyright),
        ]
    );
    assert!(q.duplicates.is_empty());

    // The JSON shape of `inspect --json`: cells as A1 strings, kinds in lowercase.
    let json = serde_json::to_value(&q).unwrap();
    let sheet = &json["sheets"][1];
    assert_eq!(sheet["name"], "CAIQv4.0.3");
    assert_eq!(sheet["questions"][0]["slots"][0]["cell"], "C3");
    assert_eq!(sheet["questions"][0]["slots"][0]["kind"], "choice");
    assert_eq!(sheet["questions"][0]["slots"][0]["choices"][2], "NA");
    assert_eq!(sheet["questions"][0]["slots"][2]["kind"], "text");
    assert_eq!(sheet["skipped_cells"][0]["reason"], "prefilled");
    assert_eq!(sheet["skipped_cells"][0]["cell"], "C8");
    assert_eq!(sheet["other_rows"][2]["kind"], "footer");
    let back: Questionnaire = serde_json::from_value(json).unwrap();
    assert_eq!(back, q);

    let (writes, filled) = round_trip(&bytes);
    assert_eq!(writes.len(), 5 * 4 + 3);
    let sheet_xml = entry_text(&filled, "xl/worksheets/sheet2.xml");
    assert!(sheet_xml.contains("<sheetProtection"), "protection kept");
}

#[test]
fn caiq_v3_x_matrix() {
    let bytes = caiq_v3();
    let q = workbook::inspect(&bytes).expect("inspect");
    let p = plan(&q, "CAIQv3.0.1");
    assert!(p.fill, "{}", p.reason);
    assert_eq!(p.header_row, Some(2));
    let labels = strings(&["Yes", "No", "Not Applicable"]);
    let got: Vec<Detected<'_>> = p
        .questions
        .iter()
        .map(|r| (r.row, r.id.as_deref(), r.section.as_deref(), slots_of(r)))
        .collect();
    let mark = |r: u32| (format!("F{r}"), SlotKind::Mark, labels.clone());
    let ais = Some("Application & Interface Security");
    assert_eq!(
        got,
        vec![
            (4, Some("AIS-01.1"), ais, vec![mark(4), text("I4")]),
            (5, Some("AIS-01.2"), ais, vec![mark(5), text("I5")]),
            (6, Some("AIS-02.1"), ais, vec![mark(6), text("I6")]),
            (7, Some("AIS- 02.2"), ais, vec![mark(7), text("I7")]),
            (
                8,
                Some("AAC-01.1"),
                Some("Audit Assurance & Compliance"),
                vec![text("I8")]
            ),
        ]
    );
    let slot = &p.questions[0].slots[0];
    assert_eq!(slot.header, "Consensus Assessment Answers");
    let cells: Vec<String> = slot.mark_cells.iter().map(ToString::to_string).collect();
    assert_eq!(cells, ["F4", "G4", "H4"]);
    assert_eq!(
        skipped(p, 8),
        vec![("G8".to_string(), SkipReason::Prefilled)]
    );
    assert_eq!(
        other_rows(&q, "CAIQv3.0.1"),
        vec![
            (1, OtherRowKind::Banner),
            (2, OtherRowKind::Header),
            (3, OtherRowKind::Header),
        ]
    );

    // The write puts one "X" in the chosen column only.
    let w = slot.writes_for("CAIQv3.0.1", "No");
    assert_eq!(w.len(), 1);
    assert_eq!(
        (w[0].cell.to_string(), w[0].value.as_str()),
        ("G4".into(), "X")
    );
    let (writes, filled) = round_trip(&bytes);
    assert_eq!(writes.len(), 4 * 2 + 1);
    let mut xl: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(filled)).unwrap();
    let range = xl.worksheet_range("CAIQv3.0.1").unwrap();
    for r in 3..7u32 {
        let marks: Vec<String> = (5..8u32)
            .map(|c| {
                range
                    .get_value((r, c))
                    .map(|d| d.to_string())
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(marks, ["", "", "X"], "row {}: Not Applicable marked", r + 1);
    }
}

#[test]
fn hecvat3_layout() {
    let bytes = hecvat3();
    let q = workbook::inspect(&bytes).expect("inspect");
    let fills: Vec<(&str, bool)> = q.sheets.iter().map(|s| (s.name.as_str(), s.fill)).collect();
    assert_eq!(
        fills,
        vec![
            ("Instructions", false),
            ("HECVAT - Lite", true),
            ("Questions", false),
            ("Values", false)
        ]
    );
    assert_eq!(plan(&q, "Questions").reason, "hidden sheet");
    let p = plan(&q, "HECVAT - Lite");
    assert_eq!(p.header_row, Some(3));
    let yes_no = ["Yes", "No"];
    let got: Vec<(u32, &str, Option<&str>, Vec<Slot>)> = p
        .questions
        .iter()
        .map(|r| {
            (
                r.row,
                r.id.as_deref().unwrap(),
                r.section.as_deref(),
                slots_of(r),
            )
        })
        .collect();
    let docu = Some("Documentation");
    let appl = Some("Application/Service Security");
    assert_eq!(
        got,
        vec![
            (4, "DOCU-01", docu, vec![choice("C4", &yes_no), text("D4")]),
            (5, "DOCU-02", docu, vec![text("C5")]),
            (6, "DOCU-03", docu, vec![choice("C6", &yes_no), text("D6")]),
            (
                7,
                "DOCU-04",
                docu,
                vec![("C7".into(), SlotKind::Date, vec![]), text("D7")]
            ),
            (
                8,
                "HFIH-01",
                docu,
                vec![
                    choice("C8", &["99.999%", "99.99%", "99.9%", "Other"]),
                    text("D8")
                ]
            ),
            (
                9,
                "HFIH-02",
                docu,
                vec![
                    choice("C9", &["1) On premises", "2) Azure", "3) GCP", "4) AWS"]),
                    text("D9")
                ]
            ),
            (
                11,
                "APPL-01",
                appl,
                vec![choice("C11", &yes_no), text("D11")]
            ),
            (12, "APPL-02", appl, vec![text("C12")]),
            (
                13,
                "APPL-03",
                appl,
                vec![choice("C13", &yes_no), text("D13")]
            ),
        ]
    );
    // Question text is the VLOOKUP's cached value, line breaks kept.
    assert_eq!(
        p.questions[2].text,
        "Do you have a well documented Business Continuity Plan (BCP)\nthat is tested annually?"
    );
    // C:D merged: D is reported, not written.
    assert_eq!(
        skipped(p, 5),
        vec![("D5".to_string(), SkipReason::MergedNonAnchor)]
    );
    assert_eq!(
        other_rows(&q, "HECVAT - Lite"),
        vec![
            (1, OtherRowKind::Banner),
            (2, OtherRowKind::Instruction),
            (3, OtherRowKind::Header),
            (10, OtherRowKind::SectionHeader),
        ]
    );
    let (writes, _) = round_trip(&bytes);
    assert_eq!(writes.len(), 7 * 2 + 2);
    assert!(writes.iter().any(|w| w.value == "4) AWS"));
}

#[test]
fn hecvat4_layout_and_repeats() {
    let bytes = hecvat4();
    let q = workbook::inspect(&bytes).expect("inspect");
    assert_eq!(q.sheets.len(), 15);
    let filled: Vec<&str> = q
        .sheets
        .iter()
        .filter(|s| s.fill)
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(filled, HECVAT4_TABS);
    for name in [
        "Institution Evaluation",
        "High-Risk Evaluation",
        "Privacy Analyst Evaluation",
        "Analyst Reference",
    ] {
        assert!(
            plan(&q, name).reason.contains("analyst/evaluation"),
            "{name}: {}",
            plan(&q, name).reason
        );
    }
    for name in ["Questions", "Auto Responses", "(backend scoring)"] {
        assert_eq!(plan(&q, name).reason, "hidden sheet");
    }
    assert_eq!(q.questions().count(), 14 + 7 * 11);
    let yes_no = ["Yes", "No"];
    let yes_no_na = ["Yes", "No", "N/A"];
    for tab in HECVAT4_TABS {
        let p = plan(&q, tab);
        assert_eq!(p.header_row, Some(5), "{tab}");
        let start = if tab == "START HERE" { 7 } else { 6 };
        for (i, r) in p.questions[..9].iter().enumerate() {
            let row = start + i as u32;
            assert_eq!(r.row, row, "{tab}");
            assert_eq!(r.id.as_deref(), Some(format!("GNRL-{:02}", i + 1).as_str()));
            assert_eq!(r.text, GNRL[i]);
            assert_eq!(slots_of(r), vec![text(&format!("C{row}"))], "{tab} {row}");
            assert_eq!(
                skipped(p, row),
                vec![(format!("D{row}"), SkipReason::MergedNonAnchor)]
            );
        }
        let rest: Vec<(Option<&str>, Vec<Slot>)> = p.questions[9..]
            .iter()
            .map(|r| (r.id.as_deref(), slots_of(r)))
            .collect();
        let first_own = if tab == "START HERE" {
            19
        } else if REQU_COPY_TABS.contains(&tab) {
            18
        } else {
            15
        };
        let mut want = Vec::new();
        if tab == "START HERE" {
            for i in 0..3u32 {
                let r = 16 + i;
                want.push((
                    Some(format!("REQU-{:02}", i + 1)),
                    vec![choice(&format!("C{r}"), &yes_no), text(&format!("D{r}"))],
                ));
            }
        }
        for i in 0..2u32 {
            let r = first_own + i;
            want.push((
                p.questions[9 + want.len()].id.clone(),
                vec![choice(&format!("C{r}"), &yes_no_na), text(&format!("D{r}"))],
            ));
        }
        let want: Vec<(Option<&str>, Vec<Slot>)> = want
            .iter()
            .map(|(i, s)| (i.as_deref(), s.clone()))
            .collect();
        assert_eq!(rest, want, "{tab}");
        let mut expected_other = vec![
            (1, OtherRowKind::Banner),
            (2, OtherRowKind::Instruction),
            (5, OtherRowKind::Header),
        ];
        if tab == "START HERE" {
            expected_other.push((6, OtherRowKind::Contact));
            assert!(p.questions[11].text.ends_with('*'), "critical marker kept");
        }
        if REQU_COPY_TABS.contains(&tab) {
            for r in 15..18 {
                expected_other.push((r, OtherRowKind::NoAnswerCell));
            }
            assert_eq!(
                skipped(p, 15),
                vec![
                    ("C15".to_string(), SkipReason::Formula),
                    ("D15".to_string(), SkipReason::Formula)
                ],
                "REQU answers repeated by formula are never overwritten"
            );
        }
        assert_eq!(other_rows(&q, tab), expected_other, "{tab}");
    }

    // GNRL-01..09 repeat on all 8 tabs: 9 groups of 8, first occurrence on START HERE.
    assert_eq!(q.duplicates.len(), 9);
    for (i, g) in q.duplicates.iter().enumerate() {
        let sheets: Vec<&str> = g.iter().map(|k| k.sheet.as_str()).collect();
        assert_eq!(sheets, HECVAT4_TABS, "group {i}");
        for k in g {
            assert_eq!(
                q.question(&k.sheet, k.row).unwrap().id.as_deref(),
                Some(format!("GNRL-{:02}", i + 1).as_str())
            );
        }
    }
    assert_eq!(
        q.duplicate_of("Privacy", 6),
        Some(&QuestionKey {
            sheet: "START HERE".into(),
            row: 7
        })
    );
    assert_eq!(q.duplicate_of("START HERE", 7), None);
    assert_eq!(q.unique_questions().count(), 14 + 7 * 2);

    let (writes, filled) = round_trip(&bytes);
    assert_eq!(writes.len(), 8 * 9 + 3 * 2 + 8 * 2 * 2);
    // The x14 lists survive byte for byte.
    for t in 0..8 {
        let part = format!("xl/worksheets/sheet{}.xml", t + 1);
        let before = entry_text(&bytes, &part);
        let after = entry_text(&filled, &part);
        let tail = &before[before.find("</sheetData>").unwrap()..];
        assert!(after.ends_with(tail), "{part}");
        assert!(tail.contains("x14:dataValidation "));
    }
}

#[test]
fn soa_multi_slot() {
    let bytes = soa();
    let q = workbook::inspect(&bytes).expect("inspect");
    let p = plan(&q, "Statement of Applicability");
    assert_eq!(p.header_row, Some(3));
    let got: Vec<Detected<'_>> = p
        .questions
        .iter()
        .map(|r| (r.row, r.id.as_deref(), r.section.as_deref(), slots_of(r)))
        .collect();
    let full = |r: u32| {
        vec![
            choice(&format!("E{r}"), &["Y", "N"]),
            choice(&format!("F{r}"), &["Yes", "No"]),
            text(&format!("G{r}")),
            text(&format!("H{r}")),
        ]
    };
    let a5 = Some("A.5 Organizational controls");
    let a8 = Some("A.8 Technological controls");
    assert_eq!(
        got,
        vec![
            (5, Some("A.5.1"), a5, full(5)),
            (6, Some("A.5.2"), a5, full(6)),
            (7, Some("A.5.3"), a5, full(7)),
            (9, Some("A.8.1"), a8, full(9)),
            (
                10,
                Some("A.8.2"),
                a8,
                vec![choice("F10", &["Yes", "No"]), text("G10"), text("H10")]
            ),
        ]
    );
    assert_eq!(
        p.questions[0].slots[2].header, "Third Party Name",
        "the pre-filled default Y in E5 counts as empty"
    );
    assert_eq!(
        skipped(p, 10),
        vec![("E10".to_string(), SkipReason::Prefilled)]
    );
    assert_eq!(
        other_rows(&q, "Statement of Applicability"),
        vec![
            (1, OtherRowKind::Banner),
            (2, OtherRowKind::Banner),
            (3, OtherRowKind::Header),
            (4, OtherRowKind::SectionHeader),
            (8, OtherRowKind::SectionHeader),
        ]
    );
    // A date cell reads as ISO text, not as its serial number.
    let pkg = workbook::open(&bytes).unwrap();
    let sheet = pkg.sheet("Statement of Applicability").unwrap();
    assert_eq!(sheet.value(CellRef::new(1, 1)), Some("2024-05-20"));
    let (writes, _) = round_trip(&bytes);
    assert_eq!(writes.len(), 4 * 4 + 3);
}
