//! XML helpers (DTD refusal, text/attribute decoding, cell-text escaping); knows nothing of sheets or zips.

use super::WorkbookError;
use quick_xml::XmlVersion;
use quick_xml::events::{BytesRef, BytesStart};
use std::borrow::Cow;

/// A part's bytes as UTF-8 text (a UTF-8 BOM is kept: byte offsets stay those of the part).
pub(crate) fn as_text<'a>(part: &str, bytes: &'a [u8]) -> Result<&'a str, WorkbookError> {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(WorkbookError::Unsupported(format!(
            "part {part} is UTF-16 encoded; only UTF-8 workbook XML is supported"
        )));
    }
    std::str::from_utf8(bytes)
        .map_err(|e| WorkbookError::Corrupt(format!("part {part} is not valid UTF-8 XML ({e})")))
}

/// Rejects a part whose prolog declares a DTD (`<!DOCTYPE …>`): OOXML forbids DTDs and
/// they are the vehicle of entity-expansion attacks. Only the prolog is inspected.
pub(crate) fn reject_doctype(part: &str, bytes: &[u8]) -> Result<(), WorkbookError> {
    let decoded;
    let bytes: &[u8] = if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        decoded = utf16_prefix(rest, u16::from_le_bytes);
        decoded.as_bytes()
    } else if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        decoded = utf16_prefix(rest, u16::from_be_bytes);
        decoded.as_bytes()
    } else {
        bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes)
    };
    let mut i = 0;
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let rest = &bytes[i..];
        if rest.starts_with(b"<?") {
            match find(rest, b"?>") {
                Some(end) => i += end + 2,
                None => return Ok(()),
            }
        } else if rest.starts_with(b"<!--") {
            match find(rest, b"-->") {
                Some(end) => i += end + 3,
                None => return Ok(()),
            }
        } else if rest.len() >= 9 && rest[..9].eq_ignore_ascii_case(b"<!DOCTYPE") {
            return Err(WorkbookError::Corrupt(format!(
                "part {part} declares a DTD (<!DOCTYPE …>), which workbook XML must not contain \
                 (possible entity-expansion attack); refusing to read it"
            )));
        } else {
            // Root element, or not XML at all: either way no DTD can follow.
            return Ok(());
        }
    }
}

fn utf16_prefix(bytes: &[u8], conv: fn([u8; 2]) -> u16) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .take(4096)
        .map(|c| conv([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Appends the character an entity or character reference (`&amp;`, `&#26410;`) stands for.
/// Unknown entities are kept literally; they cannot come from a DTD since DTDs are refused.
pub(crate) fn push_ref(buf: &mut String, r: &BytesRef<'_>) {
    if let Ok(Some(ch)) = r.resolve_char_ref() {
        buf.push(ch);
        return;
    }
    match &**r {
        "amp" => buf.push('&'),
        "lt" => buf.push('<'),
        "gt" => buf.push('>'),
        "quot" => buf.push('"'),
        "apos" => buf.push('\''),
        other => {
            buf.push('&');
            buf.push_str(other);
            buf.push(';');
        }
    }
}

/// The unescaped value of the attribute whose local name (prefix ignored) is `local`.
pub(crate) fn attr(e: &BytesStart<'_>, local: &str) -> Option<String> {
    e.attributes().with_checks(false).flatten().find_map(|a| {
        (a.key.local_name().into_inner() == local).then(|| {
            a.normalized_value(XmlVersion::Implicit1_0)
                .map(Cow::into_owned)
                .unwrap_or_else(|_| a.value.to_string())
        })
    })
}

/// The element prefix including its colon (`x:`), or empty.
pub(crate) fn prefix_of(e: &BytesStart<'_>) -> String {
    e.name()
        .prefix()
        .map(|p| format!("{}:", p.into_inner()))
        .unwrap_or_default()
}

pub(crate) fn local_name<'a>(e: &'a BytesStart<'_>) -> &'a str {
    let name = e.name().into_inner();
    name.rsplit_once(':').map_or(name, |(_, l)| l)
}

/// Escapes text for an element body (`<t>`) the way Excel does: XML specials as entities,
/// characters XML 1.0 cannot carry (and `\r`) as `_xHHHH_`, and a literal `_xHHHH_` in
/// the text as `_x005F_xHHHH_` so that readers do not decode it.
pub(crate) fn escape_cell_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for (i, ch) in text.char_indices() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '_' if looks_like_x_escape(&text[i..]) => out.push_str("_x005F_"),
            '\t' | '\n' => out.push(ch),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                out.push_str(&format!("_x{:04X}_", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

fn looks_like_x_escape(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 7 && b[1] == b'x' && b[2..6].iter().all(u8::is_ascii_hexdigit) && b[6] == b'_'
}

/// Escapes an attribute value for a double-quoted attribute.
pub(crate) fn escape_attr(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doctype_in_prolog_is_refused() {
        let bad = br#"<?xml version="1.0"?><!-- c --><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>"#;
        assert!(matches!(
            reject_doctype("p", bad),
            Err(WorkbookError::Corrupt(_))
        ));
        assert!(reject_doctype("p", br#"<?xml version="1.0"?><x>&lt;!DOCTYPE</x>"#).is_ok());
    }

    #[test]
    fn cell_text_escaping() {
        assert_eq!(escape_cell_text("a&b<c>\"'"), "a&amp;b&lt;c&gt;\"'");
        assert_eq!(escape_cell_text("x\r\ny\u{1}"), "x_x000D_\ny_x0001_");
        assert_eq!(escape_cell_text("_x0041_ _y"), "_x005F_x0041_ _y");
    }
}
