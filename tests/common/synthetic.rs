//! Synthetic questionnaire workbooks, built at test time, that reproduce the layouts and traps of
//! real ones (CAIQ v4 / v3, HECVAT 3 / 4, ISO 27001 SoA); see shared/reference/questionnaire-workbooks.md.
#![allow(dead_code)]

use super::workbook_util::{entry_text, replace_entry};
use rust_xlsxwriter::{
    DataValidation, DataValidationRule, ExcelDateTime, Format, Formula, Workbook, Worksheet,
};

/// The header row of a HECVAT vendor tab (A..F).
const HECVAT_HEADERS: [&str; 6] = [
    "ID",
    "Question",
    "Vendor Answer",
    "Additional Information",
    "Guidance",
    "Analyst Notes",
];

pub const YES_NO_NA: [&str; 3] = ["Yes", "No", "NA"];
pub const OWNERSHIP: [&str; 5] = [
    "CSP-owned",
    "CSC-owned",
    "3rd-party outsourced",
    "Shared CSP and CSC",
    "Shared CSP and 3rd-party",
];

fn s(ws: &mut Worksheet, row: u32, col: u16, text: &str) {
    ws.write_string(row, col, text).expect("write");
}

fn f(ws: &mut Worksheet, row: u32, col: u16, formula: &str, cached: &str) {
    ws.write_formula(row, col, Formula::new(formula).set_result(cached))
        .expect("formula");
}

fn list(ws: &mut Worksheet, r1: u32, c1: u16, r2: u32, c2: u16, items: &[&str]) {
    let dv = DataValidation::new()
        .allow_list_strings(items)
        .expect("list");
    ws.add_data_validation(r1, c1, r2, c2, &dv).expect("dv");
}

fn list_formula(ws: &mut Worksheet, r1: u32, c1: u16, r2: u32, c2: u16, formula: &str) {
    let dv = DataValidation::new().allow_list_formula(Formula::new(formula));
    ws.add_data_validation(r1, c1, r2, c2, &dv).expect("dv");
}

fn merge(ws: &mut Worksheet, r1: u32, c1: u16, r2: u32, c2: u16, text: &str) {
    ws.merge_range(r1, c1, r2, c2, text, &Format::new())
        .expect("merge");
}

/// CAIQ v4.0.3-like: protected sheet, ID in A, multi-line question in B, C Yes/No/NA,
/// D ownership, E/F free text, I..L reference columns merged vertically, footer + copyright.
/// Rows 3..8 are questions; C8 already holds "Yes".
pub fn caiq_v4() -> Vec<u8> {
    let mut wb = Workbook::new();
    let intro = wb.add_worksheet();
    intro.set_name("Introduction").unwrap();
    s(intro, 0, 0, "Introduction");
    s(
        intro,
        1,
        0,
        "Question: answer every question on the next sheet.",
    );
    s(intro, 1, 2, "Answer");
    let ws = wb.add_worksheet();
    ws.set_name("CAIQv4.0.3").unwrap();
    merge(
        ws,
        0,
        0,
        0,
        11,
        "Consensus Assessments Initiative Questionnaire v4.0.3",
    );
    let headers = [
        (0, "Question ID"),
        (1, "Question"),
        (2, "CSP CAIQ Answer"),
        (3, "SSRM Control Ownership"),
        (4, "CSP Implementation Description\n(Optional/Recommended)"),
        (5, "CSC Responsibilities\n(Optional/Recommended)"),
        (8, "CCM Control ID"),
        (9, "CCM Control Specification"),
        (10, "CCM Control Title"),
        (11, "CCM Domain Title"),
    ];
    for (c, h) in headers {
        s(ws, 1, c, h);
    }
    let questions = [
        (
            "A&A-01.1",
            "Are audit and assurance policies, procedures, and standards established,\ndocumented, approved, communicated, applied, evaluated, and maintained?",
        ),
        (
            "A&A-01.2",
            "Are audit and assurance policies, procedures, and standards reviewed and\nupdated at least annually?",
        ),
        (
            "A&A-02.1",
            "Are independent audit and assurance assessments conducted according to\nrelevant standards at least annually?",
        ),
        (
            "AIS-01.1",
            "Application security policies are established and documented",
        ),
        (
            "AIS-01.2",
            "Are application security policies reviewed at least annually?",
        ),
        ("AIS-01.3", "Is a SAST tool used in the pipeline?"),
    ];
    for (i, (id, q)) in questions.iter().enumerate() {
        let r = 2 + i as u32;
        s(ws, r, 0, id);
        s(ws, r, 1, q);
    }
    // Reference columns merged vertically over each control's questions.
    for (r1, r2, id, spec, title, domain) in [
        (
            2,
            3,
            "A&A-01",
            "Establish audit policies",
            "Audit and Assurance Policy",
            "Audit & Assurance",
        ),
        (
            4,
            4,
            "A&A-02",
            "Conduct independent audits",
            "Independent Assessments",
            "Audit & Assurance",
        ),
        (
            5,
            7,
            "AIS-01",
            "Establish application security",
            "Application Security Policy",
            "Application & Interface Security",
        ),
    ] {
        for (c, v) in [(8u16, id), (9, spec), (10, title), (11, domain)] {
            if r1 == r2 {
                s(ws, r1, c, v);
            } else {
                merge(ws, r1, c, r2, c, v);
            }
        }
    }
    s(ws, 7, 2, "No"); // AIS-01.3 answered already ("Yes", the first value, would be a default)
    list(ws, 2, 2, 40, 2, &YES_NO_NA);
    list(ws, 2, 3, 40, 3, &OWNERSHIP);
    s(ws, 8, 0, "End of Standard");
    merge(
        ws,
        9,
        0,
        9,
        3,
        "© Copyright 2021 Cloud Security Alliance - All rights reserved.",
    );
    ws.set_freeze_panes(2, 4).unwrap();
    ws.protect();
    wb.save_to_buffer().unwrap()
}

/// CAIQ v3.0.1-like: X-matrix under a merged "Consensus Assessment Answers" header with
/// sub-headers Yes / No / Not Applicable (F/G/H), notes in I, mapping columns after; domain,
/// control ID and specification merged vertically; a malformed ID; G8 already marked.
pub fn caiq_v3() -> Vec<u8> {
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("CAIQv3.0.1").unwrap();
    merge(
        ws,
        0,
        0,
        0,
        10,
        "Consensus Assessments Initiative Questionnaire v3.0.1",
    );
    for (c, h) in [
        (0, "Control Domain"),
        (1, "Control ID"),
        (2, "Question ID"),
        (3, "Control Specification"),
        (4, "Consensus Assessment Questions"),
        (8, "Notes"),
        (9, "AICPA TSC 2014"),
        (10, "ISO/IEC 27001:2013"),
    ] {
        s(ws, 1, c, h);
    }
    merge(ws, 1, 5, 1, 7, "Consensus Assessment Answers");
    s(ws, 2, 5, "Yes");
    s(ws, 2, 6, "No");
    s(ws, 2, 7, "Not Applicable");
    let rows = [
        (
            "AIS-01.1",
            "Do you use industry standards to build in security for your SDLC?",
        ),
        (
            "AIS-01.2",
            "Do you use an automated source code analysis tool?",
        ),
        (
            "AIS-02.1",
            "Are all customer requirements remediated prior to granting access?",
        ),
        (
            "AIS- 02.2",
            "Are all requirements and trust levels for customers' access defined?",
        ),
        ("AAC-01.1", "Do you log and monitor audit activities?"),
    ];
    for (i, (id, q)) in rows.iter().enumerate() {
        let r = 3 + i as u32;
        s(ws, r, 2, id);
        s(ws, r, 4, q);
        s(ws, r, 9, "CC7.1");
        s(ws, r, 10, "A.14.2.1");
    }
    for (r1, r2, domain, control, spec) in [
        (
            3,
            4,
            "Application & Interface Security",
            "AIS-01",
            "Applications shall be designed securely.",
        ),
        (
            5,
            6,
            "Application & Interface Security",
            "AIS-02",
            "Customer access requirements shall be addressed.",
        ),
        (
            7,
            7,
            "Audit Assurance & Compliance",
            "AAC-01",
            "Audit plans shall be developed.",
        ),
    ] {
        for (c, v) in [(0u16, domain), (1, control), (3, spec)] {
            if r1 == r2 {
                s(ws, r1, c, v);
            } else {
                merge(ws, r1, c, r2, c, v);
            }
        }
    }
    s(ws, 7, 6, "X"); // AAC-01.1 already answered "No"
    wb.save_to_buffer().unwrap()
}

/// HECVAT 3-like: header row that is also the first section header, question text from
/// `=VLOOKUP` (cached only), named-range lists (`yes`, `uptime`), a cross-sheet list, a date
/// validation, free-text answers merged C:D, guidance / analyst formulas in E/F, hidden
/// Questions and Values sheets.
pub fn hecvat3() -> Vec<u8> {
    let mut wb = Workbook::new();
    wb.define_name("yes", "=Values!$A$4:$A$5").unwrap();
    wb.define_name("uptime", "=Values!$B$4:$B$7").unwrap();
    let ins = wb.add_worksheet();
    ins.set_name("Instructions").unwrap();
    s(ins, 0, 0, "Question");
    s(ins, 0, 1, "Answer");
    s(ins, 1, 0, "Read this first.");

    let questions: [(&str, &str); 9] = [
        ("DOCU-01", "Have you undergone a SSAE 18 / SOC 2 audit?"),
        (
            "DOCU-02",
            "Describe your security policy and how it is reviewed.",
        ),
        (
            "DOCU-03",
            "Do you have a well documented Business Continuity Plan (BCP)\nthat is tested annually?",
        ),
        ("DOCU-04", "When was your BCP last tested?"),
        ("HFIH-01", "What is your guaranteed uptime?"),
        ("HFIH-02", "Which hosting provider do you use?"),
        (
            "APPL-01",
            "Are access controls for institutional accounts based on structured rules?",
        ),
        ("APPL-02", "Describe your secure development lifecycle"),
        ("APPL-03", "Do you perform penetration tests?"),
    ];
    let ws = wb.add_worksheet();
    ws.set_name("HECVAT - Lite").unwrap();
    merge(
        ws,
        0,
        0,
        0,
        5,
        "Higher Education Community Vendor Assessment Toolkit: Lite",
    );
    s(
        ws,
        1,
        0,
        "Instructions: answer every question in column C; use column D to add any detail the analyst needs to evaluate your answer. Do not change the guidance columns.",
    );
    merge(ws, 2, 0, 2, 1, "Documentation");
    s(ws, 2, 2, "Vendor Answers");
    s(ws, 2, 3, "Additional Information");
    s(ws, 2, 4, "Guidance");
    s(ws, 2, 5, "Analyst Notes");
    // Rows 4..8 (idx 3..7): DOCU-01..04, HFIH-01..02; idx 9 section; idx 10..12: APPL.
    let rows: [u32; 9] = [3, 4, 5, 6, 7, 8, 10, 11, 12];
    for ((id, q), r) in questions.iter().zip(rows) {
        s(ws, r, 0, id);
        let excel_row = r + 1;
        f(
            ws,
            r,
            1,
            &format!("=VLOOKUP(A{excel_row},Questions!$A$1:$B$20,2,FALSE)"),
            q,
        );
        f(
            ws,
            r,
            4,
            &format!("=IF(C{excel_row}=\"No\",\"Explain in D\",\"\")"),
            "",
        );
        f(
            ws,
            r,
            5,
            &format!("=IF(C{excel_row}=\"\",\"Missing\",\"\")"),
            "Missing",
        );
    }
    merge(ws, 9, 0, 9, 1, "Application/Service Security");
    s(ws, 9, 2, "Vendor Answers");
    s(ws, 9, 3, "Additional Information");
    // Free-text answers merged C:D.
    for r in [4u32, 11] {
        merge(ws, r, 2, r, 3, "");
    }
    list_formula(ws, 3, 2, 3, 2, "=yes");
    list_formula(ws, 5, 2, 5, 2, "=yes");
    let date = DataValidation::new().allow_date(DataValidationRule::GreaterThan(
        ExcelDateTime::from_ymd(2000, 1, 1).unwrap(),
    ));
    ws.add_data_validation(6, 2, 6, 2, &date).unwrap();
    list_formula(ws, 7, 2, 7, 2, "=uptime");
    list_formula(ws, 8, 2, 8, 2, "=Values!$C$4:$C$7");
    list_formula(ws, 10, 2, 10, 2, "=yes");
    list_formula(ws, 12, 2, 12, 2, "=yes");

    let qs = wb.add_worksheet();
    qs.set_name("Questions").unwrap();
    for (i, (id, q)) in questions.iter().enumerate() {
        s(qs, i as u32, 0, id);
        s(qs, i as u32, 1, q);
    }
    qs.set_hidden(true);
    let vals = wb.add_worksheet();
    vals.set_name("Values").unwrap();
    s(vals, 2, 0, "yes");
    s(vals, 3, 0, "Yes");
    s(vals, 4, 0, "No");
    for (i, v) in ["99.999%", "99.99%", "99.9%", "Other"].iter().enumerate() {
        s(vals, 3 + i as u32, 1, v);
    }
    for (i, v) in ["1) On premises", "2) Azure", "3) GCP", "4) AWS"]
        .iter()
        .enumerate()
    {
        s(vals, 3 + i as u32, 2, v);
    }
    vals.set_hidden(true);
    wb.save_to_buffer().unwrap()
}

/// Vendor tabs of the HECVAT 4-like fixture, in workbook order.
pub const HECVAT4_TABS: [&str; 8] = [
    "START HERE",
    "Organization",
    "Product",
    "Infrastructure",
    "IT Accessibility",
    "Case-Specific",
    "AI",
    "Privacy",
];

pub const GNRL: [&str; 9] = [
    "Solution provider name",
    "Solution name",
    "Solution description",
    "Vendor contact name",
    "Vendor contact title",
    "Vendor contact email",
    "Vendor contact phone number",
    "Vendor accessibility contact",
    "Vendor hosting regions",
];

/// Tabs whose REQU rows repeat START HERE's answers through formulas.
pub const REQU_COPY_TABS: [&str; 2] = ["Organization", "Product"];

/// An x14 (Excel 2010) list validation block: (formula, sqref) pairs.
pub fn x14_ext(lists: &[(&str, &str)]) -> String {
    let mut out = format!(
        r#"<extLst><ext uri="{{CCE6A557-97BC-4b89-ADB6-D9C93CAAB3DF}}" xmlns:x14="http://schemas.microsoft.com/office/spreadsheetml/2009/9/main"><x14:dataValidations count="{}" xmlns:xm="http://schemas.microsoft.com/office/excel/2006/main">"#,
        lists.len()
    );
    for (f, sqref) in lists {
        out.push_str(&format!(
            r#"<x14:dataValidation type="list" allowBlank="1" showInputMessage="1" showErrorMessage="1"><x14:formula1><xm:f>{f}</xm:f></x14:formula1><xm:sqref>{sqref}</xm:sqref></x14:dataValidation>"#
        ));
    }
    out.push_str("</x14:dataValidations></ext></extLst>");
    out
}

/// HECVAT 4.1.4-like: 15 sheets (8 vendor tabs, 4 analyst tabs, 3 hidden), instruction
/// formulas in rows 1..3, header in row 5, GNRL-01..09 (free text merged C:D) on every vendor
/// tab, REQU-01..03 on START HERE with formula copies on two tabs, two tab-specific questions
/// per tab, a contact field on START HERE, and every dropdown an x14 list on 'Auto Responses'.
pub fn hecvat4() -> Vec<u8> {
    let mut wb = Workbook::new();
    let mut x14: Vec<(usize, String)> = Vec::new();
    for (t, tab) in HECVAT4_TABS.iter().enumerate() {
        let ws = wb.add_worksheet();
        ws.set_name(*tab).unwrap();
        f(ws, 0, 0, "=Questions!$D$1", "HECVAT 4.1.4");
        f(
            ws,
            1,
            0,
            "=Questions!$D$2",
            "Complete every question on this tab. Questions marked with an asterisk (*) are critical. Use the Additional Information column to add context; guidance explains what analysts look for.",
        );
        for (c, h) in HECVAT_HEADERS.iter().enumerate() {
            s(ws, 4, c as u16, h);
        }
        let mut r = 5u32;
        if t == 0 {
            s(ws, r, 1, "Contact email:");
            r += 1;
        }
        for (i, text) in GNRL.iter().enumerate() {
            let id = format!("GNRL-{:02}", i + 1);
            s(ws, r, 0, &id);
            f(
                ws,
                r,
                1,
                &format!("=VLOOKUP(A{},Questions!$A:$B,2,FALSE)", r + 1),
                text,
            );
            merge(ws, r, 2, r, 3, "");
            f(
                ws,
                r,
                4,
                &format!("=VLOOKUP(A{},Questions!$A:$C,3,FALSE)", r + 1),
                "Free text",
            );
            f(
                ws,
                r,
                5,
                &format!("=IF(C{}=\"\",\"Missing\",\"\")", r + 1),
                "Missing",
            );
            r += 1;
        }
        let mut yes_no = Vec::new();
        if t == 0 || REQU_COPY_TABS.contains(tab) {
            for i in 1..=3 {
                let id = format!("REQU-{i:02}");
                s(ws, r, 0, &id);
                f(
                    ws,
                    r,
                    1,
                    &format!("=VLOOKUP(A{},Questions!$A:$B,2,FALSE)", r + 1),
                    &format!("Does your solution meet institutional requirement {i}? *"),
                );
                if t > 0 {
                    f(
                        ws,
                        r,
                        2,
                        &format!("=VLOOKUP(A{},'START HERE'!$A:$C,3,FALSE)", r + 1),
                        "",
                    );
                    f(
                        ws,
                        r,
                        3,
                        &format!("=VLOOKUP(A{},'START HERE'!$A:$D,4,FALSE)", r + 1),
                        "",
                    );
                }
                yes_no.push(format!("C{}", r + 1));
                r += 1;
            }
        }
        let prefix: String = tab
            .chars()
            .filter(|c| c.is_ascii_alphabetic())
            .take(4)
            .collect::<String>()
            .to_uppercase();
        let mut yes_no_na = Vec::new();
        for i in 1..=2 {
            s(ws, r, 0, &format!("{prefix}-{i:02}"));
            f(
                ws,
                r,
                1,
                &format!("=VLOOKUP(A{},Questions!$A:$B,2,FALSE)", r + 1),
                &format!("{tab}: is control {i} in place?"),
            );
            yes_no_na.push(format!("C{}", r + 1));
            r += 1;
        }
        let mut lists = Vec::new();
        if !yes_no.is_empty() {
            lists.push(("'Auto Responses'!$J$3:$J$4", yes_no.join(" ")));
        }
        lists.push(("'Auto Responses'!$J$3:$J$5", yes_no_na.join(" ")));
        x14.push((
            t,
            x14_ext(
                &lists
                    .iter()
                    .map(|(f, q)| (*f, q.as_str()))
                    .collect::<Vec<_>>(),
            ),
        ));
    }
    for name in [
        "Institution Evaluation",
        "High-Risk Evaluation",
        "Privacy Analyst Evaluation",
        "Analyst Reference",
    ] {
        let ws = wb.add_worksheet();
        ws.set_name(name).unwrap();
        s(ws, 0, 0, "ID");
        s(ws, 0, 1, "Question");
        s(ws, 0, 2, "Answer");
        s(ws, 1, 0, "GNRL-01");
        s(ws, 1, 1, "Solution provider name");
    }
    let qs = wb.add_worksheet();
    qs.set_name("Questions").unwrap();
    for (i, text) in GNRL.iter().enumerate() {
        s(qs, i as u32, 0, &format!("GNRL-{:02}", i + 1));
        s(qs, i as u32, 1, text);
    }
    qs.set_hidden(true);
    let auto = wb.add_worksheet();
    auto.set_name("Auto Responses").unwrap();
    for (i, v) in ["Yes", "No", "N/A"].iter().enumerate() {
        s(auto, 2 + i as u32, 9, v);
    }
    auto.set_hidden(true);
    let scoring = wb.add_worksheet();
    scoring.set_name("(backend scoring)").unwrap();
    s(scoring, 0, 0, "Score");
    scoring.set_hidden(true);
    let mut bytes = wb.save_to_buffer().unwrap();
    for (t, ext) in x14 {
        let part = format!("xl/worksheets/sheet{}.xml", t + 1);
        let xml = entry_text(&bytes, &part);
        assert!(!xml.contains("<extLst>"), "rust_xlsxwriter wrote no extLst");
        let xml = xml.replace("</worksheet>", &format!("{ext}</worksheet>"));
        bytes = replace_entry(&bytes, &part, xml.as_bytes());
    }
    bytes
}

/// ISO 27001 SoA-like: four slots per control (E Applicable Y/N, F third party Yes/No,
/// G third-party name, H justification), section rows merged A:H; E5 pre-filled with the
/// default "Y", E10 answered "N"; B2 a date cell (serial 45432, shown as a date).
pub fn soa() -> Vec<u8> {
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("Statement of Applicability").unwrap();
    s(ws, 0, 0, "ISO/IEC 27001:2022 Statement of Applicability");
    s(ws, 1, 0, "Last reviewed");
    ws.write_datetime_with_format(
        1,
        1,
        ExcelDateTime::from_ymd(2024, 5, 20).unwrap(),
        &Format::new().set_num_format("d mmm yyyy"),
    )
    .unwrap();
    for (c, h) in [
        "Control #",
        "Control",
        "Control Description",
        "Control Type",
        "Applicable (Y/N)",
        "Controlled by Third Party",
        "Third Party Name",
        "Justification",
    ]
    .iter()
    .enumerate()
    {
        s(ws, 2, c as u16, h);
    }
    merge(ws, 3, 0, 3, 7, "A.5 Organizational controls");
    let controls = [
        (
            4,
            "A.5.1",
            "Policies for information security",
            "Information security policy and topic-specific policies shall be defined.",
        ),
        (
            5,
            "A.5.2",
            "Information security roles and responsibilities",
            "Information security roles and responsibilities shall be defined and allocated.",
        ),
        (
            6,
            "A.5.3",
            "Segregation of duties",
            "Conflicting duties and areas of responsibility shall be segregated.",
        ),
        (
            8,
            "A.8.1",
            "User endpoint devices",
            "Information stored on, processed by or accessible via user endpoint devices shall be protected.",
        ),
        (
            9,
            "A.8.2",
            "Privileged access rights",
            "The allocation and use of privileged access rights shall be restricted and managed.",
        ),
    ];
    merge(ws, 7, 0, 7, 7, "A.8 Technological controls");
    for (r, id, title, desc) in controls {
        s(ws, r, 0, id);
        s(ws, r, 1, title);
        s(ws, r, 2, desc);
        s(ws, r, 3, "Preventive");
    }
    s(ws, 4, 4, "Y");
    s(ws, 9, 4, "N");
    list(ws, 4, 4, 9, 4, &["Y", "N"]);
    list(ws, 4, 5, 9, 5, &["Yes", "No"]);
    wb.save_to_buffer().unwrap()
}

/// START HERE questions of [`hecvat4_start_here`]: (ID, cached question text).
pub const START_HERE_GNRL: [(&str, &str); 5] = [
    ("GNRL-01", "Company name"),
    ("GNRL-02", "Product name and version"),
    ("GNRL-03", "Contact name"),
    ("GNRL-04", "Contact email"),
    ("GNRL-05", "Contact phone number"),
];
pub const START_HERE_REQU: [(&str, &str); 8] = [
    (
        "REQU-01",
        "Does your product support single sign-on (SSO)? *",
    ),
    ("REQU-02", "Do you encrypt institutional data at rest?"),
    (
        "REQU-03",
        "Do you maintain a documented incident response plan?",
    ),
    (
        "REQU-04",
        "Please describe how you notify institutions of a security breach.",
    ),
    (
        "REQU-05",
        "Is multi-factor authentication enforced for administrators?",
    ),
    ("REQU-06", "Do you perform annual penetration tests?"),
    (
        "REQU-07",
        "Do you support data export on contract termination?",
    ),
    (
        "REQU-08",
        "Is customer data stored only in the United States?",
    ),
];

/// The real HECVAT 4 START HERE traps on one tab (plus the hidden `Questions` sheet its
/// formulas look up). Rows (1-based): 1..2 instruction formulas, 3 "General Information",
/// 4..8 GNRL-01..05 ABOVE the header (question text `=VLOOKUP(…)&""` with cached values,
/// answer merged C:D, no dropdown), 9 "Note: …", 10 the header, 11..14 REQU-01..04 (C
/// dropdown on 11..13, free text on 14: "Please describe …"), 15 "NOTE - …" with an empty
/// dropdown cell, 16..17 REQU-05..06, 18 REQU-07 whose C holds a literal `#N/A` (no formula),
/// 19 REQU-08 whose C and D are formulas (cached `#N/A` and "Not stated"), 20..26 seven rows whose ID
/// is `=#REF!` and question a broken lookup (cached `#REF!`; `#SPILL!` on row 26) with empty
/// dropdown cells beside them.
pub fn hecvat4_start_here() -> Vec<u8> {
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("START HERE").unwrap();
    f(ws, 0, 0, "=Questions!$D$1", "HECVAT 4.1.4 | START HERE");
    f(
        ws,
        1,
        0,
        "=Questions!$D$2",
        "Complete the general information below, then every question on each tab. Questions marked with an asterisk (*) are critical.",
    );
    s(ws, 2, 0, "General Information");
    let lookup = |r: u32| format!("=VLOOKUP(A{},Questions!$A:$B,2,FALSE)&\"\"", r + 1);
    for (i, (id, text)) in START_HERE_GNRL.iter().enumerate() {
        let r = 3 + i as u32;
        s(ws, r, 0, id);
        f(ws, r, 1, &lookup(r), text);
        merge(ws, r, 2, r, 3, "");
        f(
            ws,
            r,
            4,
            &format!("=VLOOKUP(A{},Questions!$A:$C,3,FALSE)&\"\"", r + 1),
            "Free text",
        );
    }
    s(
        ws,
        8,
        1,
        "Note: The Privacy tab is required for every product that stores personal data.",
    );
    for (c, h) in HECVAT_HEADERS.iter().enumerate() {
        s(ws, 9, c as u16, h);
    }
    let requ_rows = [10u32, 11, 12, 13, 15, 16, 17, 18];
    for ((id, text), r) in START_HERE_REQU.iter().zip(requ_rows) {
        s(ws, r, 0, id);
        f(ws, r, 1, &lookup(r), text);
    }
    s(
        ws,
        14,
        1,
        "NOTE - Answer REQU-05 and REQU-06 for the product named in GNRL-02.",
    );
    ws.write_number(17, 2, 0).unwrap(); // becomes a literal #N/A below
    f(ws, 18, 2, "=VLOOKUP(A19,Questions!$A:$D,4,FALSE)", "#N/A");
    f(
        ws,
        18,
        3,
        "=IF(C19=\"Yes\",\"See policy\",\"Not stated\")",
        "Not stated",
    );
    for r in 19..26u32 {
        f(ws, r, 0, "=#REF!", "#REF!");
        let question = if r == 25 { "#SPILL!" } else { "#REF!" };
        f(
            ws,
            r,
            1,
            "=VLOOKUP(#REF!,Questions!$A:$B,2,FALSE)",
            question,
        );
        f(ws, r, 4, "=VLOOKUP(#REF!,Questions!$A:$C,3,FALSE)", "#REF!");
    }
    list(ws, 10, 2, 12, 2, &["Yes", "No"]);
    list(ws, 14, 2, 39, 2, &["Yes", "No"]);

    let qs = wb.add_worksheet();
    qs.set_name("Questions").unwrap();
    for (i, (id, text)) in START_HERE_GNRL
        .iter()
        .chain(START_HERE_REQU.iter())
        .enumerate()
    {
        s(qs, i as u32, 0, id);
        s(qs, i as u32, 1, text);
        s(qs, i as u32, 2, "Free text");
    }
    s(qs, 0, 3, "HECVAT 4.1.4 | START HERE");
    qs.set_hidden(true);

    let bytes = wb.save_to_buffer().unwrap();
    let part = "xl/worksheets/sheet1.xml";
    let xml = entry_text(&bytes, part);
    // rust_xlsxwriter writes neither a literal error nor a `#SPILL!` result: patch them in.
    let literal = r#"<c r="C18"><v>0</v></c>"#;
    let spill = r#"<c r="B26" t="str">"#;
    assert!(xml.contains(literal) && xml.contains(spill), "{xml}");
    let xml = xml
        .replace(literal, r#"<c r="C18" t="e"><v>#N/A</v></c>"#)
        .replace(spill, r#"<c r="B26" t="e">"#);
    replace_entry(&bytes, part, xml.as_bytes())
}
