//! The dependency rule of ARCHITECTURE.md, checked on the source: every `crate::…` path (in
//! `use` items and inline, tests inside `src/` included) of each top-level module must point
//! to a module that module may use, the module graph has no cycle, and no source file is over
//! the size limit. Reads `src/` as text (comments and string literals skipped); builds nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module and the modules it may use (ARCHITECTURE.md, "Layers"). Items of the
/// crate root (`crate::now_ms`, `crate::install_tls_provider`) are open to all.
const RULE: &[(&str, &[&str])] = &[
    ("guard", &[]),
    ("workbook", &["guard"]),
    ("models", &[]),
    ("metrics", &[]),
    ("router", &["metrics", "models"]),
    ("kb", &["router", "workbook", "models", "guard"]),
    ("pipeline", &["kb", "router", "workbook", "metrics"]),
    ("eval", &["pipeline", "kb", "router", "workbook"]),
    ("doctor", &["router", "models"]),
    ("queue", &["pipeline", "kb", "workbook", "metrics"]),
    ("submit", &["queue", "pipeline", "kb", "workbook"]),
    ("fill", &["submit", "pipeline", "kb", "router", "workbook"]),
    (
        "worker",
        &[
            "submit", "queue", "pipeline", "kb", "router", "workbook", "metrics",
        ],
    ),
    (
        "watch",
        &["submit", "queue", "pipeline", "router", "workbook"],
    ),
    (
        "api",
        &["submit", "queue", "pipeline", "kb", "workbook", "metrics"],
    ),
    (
        "demo",
        &[
            "fill", "submit", "worker", "queue", "pipeline", "kb", "router",
        ],
    ),
    (
        "cli",
        &[
            "api", "demo", "doctor", "eval", "fill", "kb", "metrics", "models", "pipeline",
            "queue", "router", "submit", "watch", "workbook", "worker",
        ],
    ),
];

/// No source file under `src/` may be longer than this many lines.
const MAX_LINES: usize = 800;

/// Root items every module may use.
const ROOT_ITEMS: &[&str] = &["now_ms", "install_tls_provider"];

/// The code of a Rust source with comments, string and char literals blanked out (newlines
/// kept, so line numbers stay right).
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, c: u8| out.push(if c == b'\n' { b'\n' } else { b' ' });
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied().unwrap_or(0);
        if c == b'/' && next == b'/' {
            while i < b.len() && b[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if c == b'/' && next == b'*' {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
        } else if c == b'r'
            && (next == b'"' || next == b'#')
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
        {
            // Raw string r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            j += 1;
            while j < b.len() && !b[j..].starts_with(&close) {
                j += 1;
            }
            let end = (j + close.len()).min(b.len());
            for &x in &b[i..end] {
                blank(&mut out, x);
            }
            i = end;
        } else if c == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(b.len());
            for &x in &b[i..end] {
                blank(&mut out, x);
            }
            i = end;
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\u{..}'), else a lifetime or label.
            let lit_end = if next == b'\\' {
                b[i + 2..]
                    .iter()
                    .position(|&x| x == b'\'')
                    .map(|p| i + 2 + p + 1)
            } else {
                let ch_len = std::str::from_utf8(&b[i + 1..])
                    .ok()
                    .or_else(|| src.get(i + 1..))
                    .and_then(|s| s.chars().next())
                    .map_or(1, char::len_utf8);
                (b.get(i + 1 + ch_len) == Some(&b'\'')).then_some(i + 2 + ch_len)
            };
            match lit_end {
                Some(end) => {
                    for &x in &b[i..end] {
                        blank(&mut out, x);
                    }
                    i = end;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The top-level names a `crate::` path at the start of `rest` names: `crate::a::…` gives `a`,
/// `crate::{a, b::c}` gives `a` and `b`.
fn crate_targets(rest: &str) -> Vec<String> {
    let rest = rest.trim_start();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    if let Some(group) = rest.strip_prefix('{') {
        let mut names = Vec::new();
        let mut depth = 0;
        let mut item_start = true;
        for (k, ch) in group.char_indices() {
            match ch {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => item_start = true,
                c if c.is_whitespace() => {}
                _ if item_start && depth == 0 => {
                    names.push(ident(&group[k..]));
                    item_start = false;
                }
                _ => {}
            }
        }
        names
    } else {
        vec![ident(rest)]
    }
}

/// One forbidden or questionable reference.
#[derive(Debug, PartialEq)]
struct Violation {
    file: String,
    line: usize,
    from: String,
    to: String,
}

/// Every (top-level module → top-level module) reference in `files` (path relative to
/// `src/`, text), with where it is.
fn references(files: &BTreeMap<String, String>) -> Vec<Violation> {
    let mut refs = Vec::new();
    for (rel, text) in files {
        let from = rel
            .split('/')
            .next()
            .unwrap_or_default()
            .trim_end_matches(".rs")
            .to_string();
        if from == "lib" || from == "main" {
            continue;
        }
        let code = code_only(text);
        let depth =
            rel.matches('/').count() + usize::from(!rel.ends_with("/mod.rs") && rel.contains('/'));
        let mut at = 0;
        while let Some(p) = code[at..].find("crate::") {
            let start = at + p;
            at = start + "crate::".len();
            let before = code[..start].chars().next_back().unwrap_or(' ');
            if before.is_ascii_alphanumeric() || before == '_' || before == ':' {
                continue;
            }
            let line = code[..start].matches('\n').count() + 1;
            for to in crate_targets(&code[at..]) {
                if to.is_empty() || to == "self" || to == from || ROOT_ITEMS.contains(&to.as_str())
                {
                    continue;
                }
                refs.push(Violation {
                    file: rel.clone(),
                    line,
                    from: from.clone(),
                    to,
                });
            }
        }
        // `super::` chains that climb out of the top-level module to the crate root.
        let mut at = 0;
        while let Some(p) = code[at..].find("super::") {
            let start = at + p;
            let mut n = 0;
            let mut k = start;
            while code[k..].starts_with("super::") {
                n += 1;
                k += "super::".len();
            }
            at = k;
            let before = code[..start].chars().next_back().unwrap_or(' ');
            if before.is_ascii_alphanumeric() || before == '_' || before == ':' {
                continue;
            }
            // From a file at module depth d (src/a.rs: 1, src/a/b.rs: 2), d supers reach the
            // root (inline test modules only add depth, so this never misses an escape).
            if n >= depth.max(1) {
                let line = code[..start].matches('\n').count() + 1;
                for to in crate_targets(&code[k..]) {
                    if !to.is_empty() && to != from && !ROOT_ITEMS.contains(&to.as_str()) {
                        refs.push(Violation {
                            file: rel.clone(),
                            line,
                            from: from.clone(),
                            to,
                        });
                    }
                }
            }
        }
    }
    refs
}

/// The references [`RULE`] forbids (a module missing from the rule may use nothing).
fn violations(refs: Vec<Violation>) -> Vec<Violation> {
    let rule: BTreeMap<&str, &[&str]> = RULE.iter().copied().collect();
    refs.into_iter()
        .filter(|r| {
            !rule
                .get(r.from.as_str())
                .is_some_and(|allowed| allowed.contains(&r.to.as_str()))
        })
        .collect()
}

/// A cycle in the module graph, if any (as the list of modules around it).
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|s| s == m).unwrap_or(0);
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(m, edges, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            let mut stack = Vec::new();
            if let Some(c) = visit(n, edges, &mut state, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

fn graph(refs: &[Violation]) -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in refs {
        edges
            .entry(r.from.clone())
            .or_default()
            .insert(r.to.clone());
    }
    edges
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn sources() -> BTreeMap<String, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&src)
                .expect("under src/")
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&p).expect("source is UTF-8");
            (rel, text)
        })
        .collect()
}

#[test]
fn every_use_of_crate_follows_the_dependency_rule() {
    let files = sources();
    let refs = references(&files);
    let edges = graph(&refs);
    let shown: Vec<String> = edges
        .iter()
        .map(|(a, bs)| {
            format!(
                "{a} -> {}",
                bs.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    let bad: Vec<String> = violations(refs)
        .iter()
        .map(|v| format!("{}:{}: `{}` uses `crate::{}`", v.file, v.line, v.from, v.to))
        .collect();
    assert!(
        bad.is_empty(),
        "forbidden imports (see ARCHITECTURE.md, Layers):\n{}\n\nmodule graph:\n{}",
        bad.join("\n"),
        shown.join("\n")
    );
    assert_eq!(
        find_cycle(&edges),
        None,
        "module cycle; graph:\n{}",
        shown.join("\n")
    );
    // Every top-level module is in the rule, so a new one must be placed deliberately.
    let tops: BTreeSet<String> = files
        .keys()
        .map(|f| {
            f.split('/')
                .next()
                .unwrap_or_default()
                .trim_end_matches(".rs")
                .to_string()
        })
        .filter(|m| m != "lib" && m != "main")
        .collect();
    for m in &tops {
        assert!(
            RULE.iter().any(|(name, _)| name == m),
            "module `{m}` is not placed in the dependency rule (tests/layers.rs RULE and ARCHITECTURE.md)"
        );
    }
}

#[test]
fn no_source_file_is_over_the_size_limit() {
    let long: Vec<String> = sources()
        .iter()
        .filter(|(_, text)| text.lines().count() > MAX_LINES)
        .map(|(f, text)| format!("src/{f}: {} lines", text.lines().count()))
        .collect();
    assert!(
        long.is_empty(),
        "split these by concern (at most {MAX_LINES} lines each):\n{}",
        long.join("\n")
    );
}

#[test]
fn a_planted_upward_import_is_caught() {
    let files: BTreeMap<String, String> = [
        (
            "kb/publish.rs".to_string(),
            "//! uses crate::queue in a comment only\nuse super::store;\nuse crate::queue::RfpQueue;\n"
                .to_string(),
        ),
        (
            "workbook/read.rs".to_string(),
            "fn f() { let s = \"crate::router\"; let c = '\"'; crate::router::x(); }\n".to_string(),
        ),
        (
            "metrics.rs".to_string(),
            "use crate::{now_ms, pipeline::{RowOutcome, RowStatus}};\n".to_string(),
        ),
        (
            "router/embedded/schema.rs".to_string(),
            "use super::super::super::pipeline::answer;\nuse super::super::config::Task;\n".to_string(),
        ),
        (
            "pipeline/mod.rs".to_string(),
            "use crate::kb::Hit; let r = r#\"crate::queue\"#;\n".to_string(),
        ),
    ]
    .into_iter()
    .collect();
    let found: Vec<(String, usize, String)> = violations(references(&files))
        .into_iter()
        .map(|v| (v.file, v.line, v.to))
        .collect();
    assert_eq!(
        found,
        vec![
            ("kb/publish.rs".to_string(), 3, "queue".to_string()),
            ("metrics.rs".to_string(), 1, "pipeline".to_string()),
            (
                "router/embedded/schema.rs".to_string(),
                1,
                "pipeline".to_string()
            ),
            ("workbook/read.rs".to_string(), 1, "router".to_string()),
        ]
    );
}

#[test]
fn a_cycle_is_found() {
    let edge = |a: &str, bs: &[&str]| {
        (
            a.to_string(),
            bs.iter().map(|b| b.to_string()).collect::<BTreeSet<_>>(),
        )
    };
    let acyclic: BTreeMap<_, _> = [edge("kb", &["router"]), edge("router", &["metrics"])]
        .into_iter()
        .collect();
    assert_eq!(find_cycle(&acyclic), None);
    let cyclic: BTreeMap<_, _> = [
        edge("kb", &["router"]),
        edge("router", &["metrics"]),
        edge("metrics", &["queue"]),
        edge("queue", &["kb"]),
    ]
    .into_iter()
    .collect();
    let cycle = find_cycle(&cyclic).expect("a cycle");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 5);
}
