//! Workbook-engine benchmark: inspect and patch speed and peak memory on generated workbooks.
//! Run with `cargo bench --bench workbook`; each case runs in a child process so its peak RSS
//! is its own. Results go into BENCHMARKS.md as ratios from one run, never into tests.

use rfpq::workbook::{self, CellWrite, SlotKind};
use rust_xlsxwriter::{DataValidation, Format, Workbook};
use std::process::Command;
use std::time::Instant;

const ROWS_PER_SHEET: u32 = 1_500;

/// A questionnaire sheet: header, `rows` questions with a Yes/No/N/A dropdown in C and a
/// comment column D, written into `wb`.
fn questionnaire_sheet(wb: &mut Workbook, name: &str, rows: u32, whole_sheet_list: bool) {
    let ws = wb.add_worksheet();
    ws.set_name(name).unwrap();
    let wrap = Format::new().set_text_wrap();
    for (c, h) in ["ID", "Question", "Answer", "Comments"].iter().enumerate() {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    for r in 1..=rows {
        ws.write_string(r, 0, format!("{name}-{r:04}")).unwrap();
        ws.write_string_with_format(r, 1, question_text(name, r), &wrap)
            .unwrap();
    }
    let yes_no = DataValidation::new()
        .allow_list_strings(&["Yes", "No", "N/A"])
        .unwrap();
    if whole_sheet_list {
        // A1:XFD1048576: 17,179,869,184 cells, as a hostile or careless template ships it.
        ws.add_data_validation(0, 0, 1_048_575, 16_383, &yes_no)
            .unwrap();
    } else {
        ws.add_data_validation(1, 2, rows, 2, &yes_no).unwrap();
    }
}

/// A question of realistic length whose words vary (so the file compresses like a real one).
fn question_text(name: &str, r: u32) -> String {
    const WORDS: [&str; 24] = [
        "encryption",
        "backups",
        "vendors",
        "logging",
        "retention",
        "incident",
        "access",
        "review",
        "privileged",
        "network",
        "segmentation",
        "training",
        "patching",
        "audit",
        "keys",
        "rotation",
        "monitoring",
        "alerts",
        "policy",
        "customer",
        "data",
        "cloud",
        "recovery",
        "testing",
    ];
    let mut seed = u64::from(r) * 2_654_435_761 + name.len() as u64 * 97;
    let mut words = Vec::new();
    for _ in 0..(14 + r % 12) {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        words.push(WORDS[(seed >> 33) as usize % WORDS.len()]);
    }
    format!(
        "{name} control {r}: does your organisation {}?",
        words.join(" ")
    )
}

fn build(case: &str) -> Vec<u8> {
    let mut wb = Workbook::new();
    match case {
        "validation-small" => questionnaire_sheet(&mut wb, "Form", 200, false),
        "validation-17g" => questionnaire_sheet(&mut wb, "Form", 200, true),
        "fifteen-sheets" => {
            for i in 1..=15 {
                questionnaire_sheet(&mut wb, &format!("Domain {i:02}"), ROWS_PER_SHEET, false);
            }
        }
        "million-rows" => {
            questionnaire_sheet(&mut wb, "Form", 200, false);
            let data = wb.add_worksheet();
            data.set_name("Data").unwrap();
            for r in 0..1_000_000u32 {
                data.write_number(r, 0, f64::from(r)).unwrap();
                data.write_string(r, 1, "lookup value").unwrap();
            }
        }
        other => panic!("unknown case {other}"),
    }
    wb.save_to_buffer().unwrap()
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Child process: reads the built workbook, then measures inspect and patch of every slot.
fn run_case(case: &str, path: &str) {
    let bytes = std::fs::read(path).expect("built workbook");
    let rss_before = peak_rss_kib();
    let runs = if case == "million-rows" { 1 } else { 5 };
    let mut inspect_s = Vec::new();
    let mut q = None;
    for _ in 0..runs {
        let t = Instant::now();
        q = Some(workbook::inspect(&bytes).expect("inspect"));
        inspect_s.push(t.elapsed().as_secs_f64());
    }
    let q = q.unwrap();
    let rss_inspect = peak_rss_kib();
    let mut writes: Vec<CellWrite> = Vec::new();
    for row in q.questions() {
        for slot in &row.slots {
            let value = match slot.kind {
                SlotKind::Choice | SlotKind::Mark => slot.choices[1].clone(),
                _ => "Yes: enforced by policy SEC-7 and reviewed yearly.".to_string(),
            };
            writes.extend(slot.writes_for(&row.sheet, &value));
        }
    }
    let mut patch_s = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        workbook::patch(&bytes, &writes).expect("patch");
        patch_s.push(t.elapsed().as_secs_f64());
    }
    println!(
        "{{\"case\":\"{case}\",\"bytes\":{},\"questions\":{},\"writes\":{},\"inspect_s\":{:.4},\"patch_s\":{:.4},\"rss_loaded_kib\":{rss_before},\"rss_peak_kib\":{}}}",
        bytes.len(),
        q.questions().count(),
        writes.len(),
        median(inspect_s),
        median(patch_s),
        peak_rss_kib().max(rss_inspect)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--case") {
        run_case(&args[pos + 1], &args[pos + 2]);
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let dir = std::env::temp_dir().join(format!("rfpq-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for case in [
        "validation-small",
        "validation-17g",
        "fifteen-sheets",
        "million-rows",
    ] {
        let path = dir.join(format!("{case}.xlsx"));
        std::fs::write(&path, build(case)).unwrap();
        let out = Command::new(&exe)
            .args(["--case", case, path.to_str().unwrap()])
            .output()
            .expect("run case");
        assert!(
            out.status.success(),
            "{case}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
