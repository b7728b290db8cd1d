//! File-name and file-state rules of the drop folder: which names are ignored (temp, lock and
//! dot files), a name's extension and stem, a free name that never overwrites, and whether a
//! package looks cut short (still being copied). Touches no queue.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Temp, lock and hidden files that are never taken.
pub(super) fn is_ignored(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('.')
        || name.starts_with("~$")
        || [".tmp", ".part", ".crdownload"]
            .iter()
            .any(|s| lower.ends_with(s))
}

/// Lower-case extension without the dot ("" when there is none).
pub(super) fn extension(name: &str) -> String {
    Path::new(name)
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

pub(super) fn stem(name: &str) -> &str {
    match name.rfind('.') {
        Some(i) if i > 0 => &name[..i],
        _ => name,
    }
}

/// `dir/name`, or `dir/<stem>-2.<ext>`, `-3`… when that exists.
pub(super) async fn unique_path(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !tokio::fs::try_exists(&first).await.unwrap_or(true) {
        return first;
    }
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    for n in 2.. {
        let candidate = dir.join(format!("{stem}-{n}{ext}"));
        if !tokio::fs::try_exists(&candidate).await.unwrap_or(true) {
            return candidate;
        }
    }
    unreachable!("an unbounded range always yields a free name")
}

/// Collapses a message onto one line.
pub(super) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether a file starts like a workbook package but its end is missing, as when a copy is
/// still running or stalled: a zip without its end-of-central-directory record, or an OLE
/// (.xls, encrypted .xlsx) file that is not a whole number of 512-byte sectors.
pub(super) fn looks_incomplete(path: &Path) -> bool {
    const ZIP: &[u8] = b"PK\x03\x04";
    const OLE: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
    const EOCD: &[u8] = b"PK\x05\x06";
    let check = || -> std::io::Result<bool> {
        let mut f = std::fs::File::open(path)?;
        let len = f.metadata()?.len();
        let mut head = [0u8; 8];
        let n = f.read(&mut head)?;
        let head = &head[..n];
        if head.starts_with(OLE) {
            return Ok(len % 512 != 0);
        }
        if !head.starts_with(ZIP) {
            return Ok(false);
        }
        // The record is 22 bytes plus a comment of at most 65535.
        let tail_len = len.min(22 + 65_535);
        f.seek(SeekFrom::Start(len - tail_len))?;
        let mut tail = Vec::with_capacity(tail_len as usize);
        f.take(tail_len).read_to_end(&mut tail)?;
        Ok(!tail.windows(EOCD.len()).any(|w| w == EOCD))
    };
    check().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignores_temp_lock_and_hidden_files() {
        for name in [
            "~$q.xlsx",
            ".~lock.q.xlsx#",
            "q.xlsx.tmp",
            "Q.XLSX.PART",
            "q.xlsx.crdownload",
            ".hidden.xlsx",
            ".done",
        ] {
            assert!(is_ignored(name), "{name}");
        }
        for name in ["q.xlsx", "notes.txt", "tmp.xlsx"] {
            assert!(!is_ignored(name), "{name}");
        }
    }

    #[test]
    fn stems_extensions_and_one_line() {
        assert_eq!(stem("a.b.xlsx"), "a.b");
        assert_eq!(stem("README"), "README");
        assert_eq!(extension("Q.XLSM"), "xlsm");
        assert_eq!(extension("notes"), "");
        assert_eq!(one_line("a\n  b\tc "), "a b c");
    }

    #[tokio::test]
    async fn unique_path_adds_a_counter() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            unique_path(dir.path(), "q.xlsx").await,
            dir.path().join("q.xlsx")
        );
        std::fs::write(dir.path().join("q.xlsx"), b"x").unwrap();
        std::fs::write(dir.path().join("q-2.xlsx"), b"x").unwrap();
        assert_eq!(
            unique_path(dir.path(), "q.xlsx").await,
            dir.path().join("q-3.xlsx")
        );
        std::fs::write(dir.path().join("README"), b"x").unwrap();
        assert_eq!(
            unique_path(dir.path(), "README").await,
            dir.path().join("README-2")
        );
    }

    #[test]
    fn a_cut_off_zip_looks_incomplete() {
        let dir = tempfile::tempdir().unwrap();
        let mut wb = rust_xlsxwriter::Workbook::new();
        wb.add_worksheet().write_string(0, 0, "x").unwrap();
        let bytes = wb.save_to_buffer().unwrap();
        let whole = dir.path().join("whole.xlsx");
        let half = dir.path().join("half.xlsx");
        let text = dir.path().join("text.xlsx");
        std::fs::write(&whole, &bytes).unwrap();
        std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
        std::fs::write(&text, b"not a workbook").unwrap();
        assert!(!looks_incomplete(&whole));
        assert!(looks_incomplete(&half));
        assert!(
            !looks_incomplete(&text),
            "garbage is refused at once, not waited for"
        );
    }
}
