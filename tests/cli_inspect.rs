//! `rfpq inspect` on a START HERE-like tab: every row a user may expect filled is listed on its
//! own line with why it is not (note, error value, formula answers), in text and in `--json`.

mod common;

use common::synthetic::hecvat4_start_here;

fn inspect(args: &[&str]) -> String {
    let out = common::rfpq_command(&common::prefix("cli-inspect"))
        .arg("inspect")
        .args(args)
        .output()
        .expect("binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn inspect_lists_each_skipped_row_with_its_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("start-here.xlsx");
    std::fs::write(&f, hecvat4_start_here()).unwrap();
    let path = f.to_str().unwrap();

    let text = inspect(&[path]);
    let listed: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("  not filled:"))
        .collect();
    let mut want = vec![
        "  not filled: row     9  -          note  Note: The Privacy tab is required for every product that stores person".to_string(),
        "  not filled: row    15  -          note  NOTE - Answer REQU-05 and REQU-06 for the product named in GNRL-02.".to_string(),
        "  not filled: row    19  REQU-08    no_answer_cell (C19 (formula, never overwritten; shows \"#N/A\"); D19 (formula, never overwritten; shows \"Not stated\"))  Is customer data stored only in the United States?".to_string(),
    ];
    for r in 20..=26 {
        want.push(format!(
            "  not filled: row    {r}  -          error_value (A{r} holds #REF!)"
        ));
    }
    assert_eq!(listed, want, "{text}");
    assert!(
        text.contains("\n             skipped C18 (error_value: holds #N/A, not an answer)\n"),
        "{text}"
    );
    assert!(
        text.contains("\n  row     4  GNRL-01    [C4 text]  Company name\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "\n  other rows: 2 banner (rows 1, 3); 1 header (rows 10); 1 instruction (rows 2)\n"
        ),
        "{text}"
    );

    let json: serde_json::Value = serde_json::from_str(&inspect(&["--json", path])).unwrap();
    let rows = json["sheets"][0]["other_rows"].as_array().unwrap();
    let kinds: Vec<(u64, &str)> = rows
        .iter()
        .map(|o| (o["row"].as_u64().unwrap(), o["kind"].as_str().unwrap()))
        .filter(|(_, k)| matches!(*k, "note" | "error_value" | "no_answer_cell"))
        .collect();
    let mut want = vec![(9, "note"), (15, "note"), (19, "no_answer_cell")];
    want.extend((20..=26).map(|r| (r, "error_value")));
    assert_eq!(kinds, want);
    assert_eq!(rows.iter().find(|o| o["row"] == 26).unwrap()["cell"], "A26");
}
