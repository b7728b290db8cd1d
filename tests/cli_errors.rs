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
    let real =
        std::fs::read("fixtures/azure-review-checklists/security_checklist.en.xlsx").unwrap();
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
