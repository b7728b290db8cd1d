//! The binary's answers to bad input: one clear line on stderr and a non-zero exit.

mod common;

fn rfpq(args: &[&str]) -> (i32, String) {
    let out = common::rfpq_command(&common::prefix("cli"))
        .args(args)
        .output()
        .expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn submit_refuses_a_text_file_with_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("not-a-workbook.txt");
    std::fs::write(&f, "just some notes\n").unwrap();
    let (code, err) = rfpq(&["submit", f.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("not a workbook"), "{err}");
}

#[test]
fn submit_refuses_a_truncated_workbook_with_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let real = common::workbook_util::checklist("security_checklist.en.xlsx");
    let f = tmp.path().join("truncated.xlsx");
    std::fs::write(&f, &real[..real.len() / 3]).unwrap();
    let (code, err) = rfpq(&["submit", f.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("damaged or truncated"), "{err}");
}

#[test]
fn submit_of_a_missing_file_says_so() {
    let (code, err) = rfpq(&["submit", "/nonexistent/q.xlsx"]);
    assert_ne!(code, 0);
    assert!(err.contains("cannot read /nonexistent/q.xlsx"), "{err}");
}

/// The real checklist re-labelled macro-enabled (content type only), as a file in `dir`.
fn xlsm_file(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::{Read, Write};
    let real = common::workbook_util::checklist("security_checklist.en.xlsx");
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(real)).unwrap();
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..zip.len() {
        let name = zip.by_index_raw(i).unwrap().name().unwrap().into_owned();
        if name == "[Content_Types].xml" {
            let mut text = String::new();
            zip.by_index(i).unwrap().read_to_string(&mut text).unwrap();
            let text = text.replace(
                "spreadsheetml.sheet.main+xml",
                "ms-excel.sheet.macroEnabled.main+xml",
            );
            w.start_file(name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(text.as_bytes()).unwrap();
        } else {
            w.raw_copy_file(zip.by_index_raw(i).unwrap()).unwrap();
        }
    }
    let path = dir.join("macro.xlsm");
    std::fs::write(&path, w.finish().unwrap().into_inner()).unwrap();
    path
}

#[test]
fn fill_refuses_to_name_a_macro_workbook_xlsx() {
    let tmp = tempfile::tempdir().unwrap();
    let input = xlsm_file(tmp.path());
    let out = tmp.path().join("filled.xlsx");
    let (code, err) = rfpq(&["fill", input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("must end in .xlsm"), "{err}");
    assert!(!out.exists(), "nothing written");
}

#[test]
fn inspect_reads_a_legacy_xls_and_warns_the_format_is_not_kept() {
    let out = common::rfpq_command(&common::prefix("cli"))
        .args(["inspect", "fixtures/legacy/vendor-questionnaire.xls"])
        .output()
        .expect("binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("warning: the original is a legacy Excel 97-2003 workbook (.xls)"),
        "{stdout}"
    );
    assert!(stdout.contains("sheet 'Questionnaire': fill"), "{stdout}");
    assert!(stdout.contains("AC-05"), "{stdout}");
    assert!(stdout.contains("sheet 'Scoring': skip"), "{stdout}");
    assert!(stdout.contains("other rows:"), "{stdout}");
}
