//! Zip/OPC layer: format sniffing, safety limits, part reading, sheet→part mapping; does not interpret cells.

use super::WorkbookError;
use super::read::{DefinedName, Visibility};
use super::xml;
use quick_xml::Reader;
use quick_xml::events::Event;
use std::collections::HashMap;
use std::io::{Cursor, Read};
use zip::ZipArchive;
use zip::result::ZipError;

/// Safety limits applied while opening a package; the defaults suit real questionnaires
/// (tens of kB to a few MB) with a wide margin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most zip entries a package may have.
    pub max_entries: usize,
    /// Most bytes all parts may decompress to together (declared and actual).
    pub max_total_uncompressed: u64,
    /// Most bytes one part may decompress to (declared and actual).
    pub max_part_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_total_uncompressed: 500 * MIB,
            max_part_size: 256 * MIB,
        }
    }
}

const MIB: u64 = 1024 * 1024;
const OLE_MAGIC: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

fn human(bytes: u64) -> String {
    if bytes >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    } else {
        format!("{bytes} bytes")
    }
}

/// Whether the bytes are an OLE compound file (legacy .xls, or an encrypted OOXML workbook).
pub(crate) fn is_ole(bytes: &[u8]) -> bool {
    bytes.starts_with(&OLE_MAGIC)
}

/// Tells what the bytes are before any zip parsing, so that a renamed CSV or an encrypted
/// workbook gets a precise error instead of "invalid zip archive".
pub(crate) fn sniff(bytes: &[u8]) -> Result<(), WorkbookError> {
    if bytes.is_empty() {
        return Err(WorkbookError::NotAWorkbook(
            "the file is empty (0 bytes)".into(),
        ));
    }
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        return Ok(());
    }
    if bytes.starts_with(&OLE_MAGIC) {
        return Err(sniff_ole(bytes));
    }
    if bytes.starts_with(b"%PDF") {
        return Err(WorkbookError::NotAWorkbook(
            "the file is a PDF document, not an Excel workbook".into(),
        ));
    }
    let head = &bytes[..bytes.len().min(4096)];
    let text = match std::str::from_utf8(head) {
        Ok(t) => Some(t),
        // A multi-byte character cut by the 4096-byte window is still text.
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).ok(),
        Err(_) => None,
    };
    let text = text.filter(|t| {
        t.chars()
            .all(|c| !c.is_control() || c.is_whitespace() || c == '\u{feff}')
    });
    let Some(text) = text else {
        let hex: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02X}")).collect();
        return Err(WorkbookError::NotAWorkbook(format!(
            "unknown binary format (starts with {}); expected an .xlsx workbook",
            hex.join(" ")
        )));
    };
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    let lower = trimmed.to_ascii_lowercase();
    if lower.starts_with('<') {
        let what = if lower.contains("urn:schemas-microsoft-com:office:spreadsheet") {
            "an Excel 2003 XML spreadsheet"
        } else if lower.starts_with("<!doctype html")
            || lower.contains("<html")
            || lower.contains("<table")
        {
            "an HTML page (a web export saved with a spreadsheet name)"
        } else {
            "a plain XML file"
        };
        return Err(WorkbookError::NotAWorkbook(format!(
            "the file is {what}, not an .xlsx workbook; open it in Excel and save it as .xlsx"
        )));
    }
    let first_line: String = trimmed
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(60)
        .collect();
    let kind = if first_line.contains([',', ';', '\t']) {
        "delimited values (CSV/TSV)"
    } else {
        "plain text"
    };
    Err(WorkbookError::NotAWorkbook(format!(
        "the file looks like text/CSV ({kind}, first line \"{first_line}\"), not an Excel \
         workbook; open it in Excel and save it as .xlsx"
    )))
}

/// What an OLE compound file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OleKind {
    /// A password-encrypted OOXML workbook.
    Encrypted,
    /// A legacy Excel 97-2003 workbook (.xls).
    Xls,
    Other,
}

pub(crate) fn ole_kind(bytes: &[u8]) -> OleKind {
    let names = ole_directory_names(bytes);
    if names
        .iter()
        .any(|n| n == "EncryptionInfo" || n == "EncryptedPackage")
    {
        OleKind::Encrypted
    } else if names.iter().any(|n| n == "Workbook" || n == "Book") {
        OleKind::Xls
    } else {
        OleKind::Other
    }
}

/// An OLE compound file: a password-encrypted OOXML workbook, a legacy .xls, or neither.
fn sniff_ole(bytes: &[u8]) -> WorkbookError {
    match ole_kind(bytes) {
        OleKind::Encrypted => WorkbookError::Encrypted,
        OleKind::Xls => WorkbookError::Unsupported(
            "legacy Excel 97-2003 workbook (.xls); open it in Excel and save it as .xlsx".into(),
        ),
        OleKind::Other => WorkbookError::Unsupported(
            "an OLE compound file (legacy Microsoft Office container) without a readable \
             workbook stream; if the workbook is password-protected remove the password, \
             otherwise save it as .xlsx"
                .into(),
        ),
    }
}

/// Stream names in an OLE/CFB directory; empty when the structure cannot be followed.
fn ole_directory_names(b: &[u8]) -> Vec<String> {
    let u16_at = |o: usize| b.get(o..o + 2).map(|s| u16::from_le_bytes([s[0], s[1]]));
    let u32_at = |o: usize| {
        b.get(o..o + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    };
    let Some(shift) = u16_at(0x1E).filter(|s| (7..=16).contains(s)) else {
        return Vec::new();
    };
    let ssz = 1usize << shift;
    let sector = |n: u32| {
        let start = (n as usize + 1).checked_mul(ssz)?;
        b.get(start..start.checked_add(ssz)?)
    };
    // FAT from the header's DIFAT (first 109 FAT sectors: ample for anything we reject).
    let num_fat = u32_at(0x2C).unwrap_or(0).min(109) as usize;
    let mut fat = Vec::new();
    for i in 0..num_fat {
        let Some(fs) = u32_at(0x4C + 4 * i).and_then(sector) else {
            break;
        };
        fat.extend(
            fs.chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
    }
    let mut names = Vec::new();
    let mut next = u32_at(0x30).unwrap_or(u32::MAX);
    for _ in 0..4096 {
        let Some(dir) = sector(next) else { break };
        for entry in dir.chunks_exact(128) {
            let len = usize::from(u16::from_le_bytes([entry[64], entry[65]])).min(64);
            let units: Vec<u16> = entry[..len]
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .take_while(|&u| u != 0)
                .collect();
            if !units.is_empty() {
                names.push(String::from_utf16_lossy(&units));
            }
        }
        match fat.get(next as usize) {
            Some(&n) if n < 0xFFFF_FFFA => next = n,
            _ => break,
        }
    }
    names
}

/// Maps a zip error to a user-facing workbook error.
pub(crate) fn zip_error(e: ZipError) -> WorkbookError {
    match e {
        ZipError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            WorkbookError::Corrupt("the zip archive is truncated (unexpected end of data)".into())
        }
        ZipError::Io(io) => WorkbookError::Corrupt(format!("cannot read the zip archive: {io}")),
        ZipError::InvalidArchive(msg) => {
            WorkbookError::Corrupt(format!("invalid zip archive: {msg}"))
        }
        ZipError::UnsupportedArchive(msg) => {
            WorkbookError::Unsupported(format!("zip archive: {msg}"))
        }
        ZipError::CompressionMethodNotSupported(m) => {
            WorkbookError::Unsupported(format!("zip compression method {m} is not supported"))
        }
        other => WorkbookError::Corrupt(format!("zip archive: {other}")),
    }
}

/// Reads the entry count from the end-of-central-directory record before the zip reader
/// builds its index, so a million-entry archive is refused without indexing it.
fn precheck_eocd(bytes: &[u8], limits: &Limits) -> Result<(), WorkbookError> {
    let window = bytes.len().min(22 + 65_535);
    let tail = &bytes[bytes.len() - window..];
    let Some(pos) = tail.windows(4).rposition(|w| w == b"PK\x05\x06") else {
        return Err(WorkbookError::Corrupt(
            "the zip archive is truncated: its end-of-central-directory record is missing".into(),
        ));
    };
    if let Some(n) = tail
        .get(pos + 10..pos + 12)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        && n != u16::MAX
        && usize::from(n) > limits.max_entries
    {
        return Err(too_many_entries(usize::from(n), limits));
    }
    Ok(())
}

fn too_many_entries(n: usize, limits: &Limits) -> WorkbookError {
    WorkbookError::TooLarge(format!(
        "the package has {n} zip entries; at most {} are accepted",
        limits.max_entries
    ))
}

/// One compressed entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawEntry {
    pub method: zip::CompressionMethod,
    pub crc32: u32,
    pub size: u64,
    pub compressed: Vec<u8>,
}

/// A zip package opened under limits.
pub(crate) struct Package<'a> {
    pub(crate) zip: ZipArchive<Cursor<&'a [u8]>>,
    names: Vec<String>,
    limits: Limits,
    used: u64,
    input_len: u64,
}

impl<'a> Package<'a> {
    pub(crate) fn open(bytes: &'a [u8], limits: Limits) -> Result<Self, WorkbookError> {
        sniff(bytes)?;
        precheck_eocd(bytes, &limits)?;
        let zip = ZipArchive::new(Cursor::new(bytes)).map_err(zip_error)?;
        if zip.len() > limits.max_entries {
            return Err(too_many_entries(zip.len(), &limits));
        }
        if zip.has_duplicate_names() {
            return Err(WorkbookError::Corrupt(
                "the zip archive has two entries with the same name".into(),
            ));
        }
        let mut names = Vec::with_capacity(zip.len());
        let mut total: u128 = 0;
        for i in 0..zip.len() {
            let entry = zip.by_index_data(i).map_err(zip_error)?;
            let name = entry.name().map_err(zip_error)?.into_owned();
            if entry.size() > limits.max_part_size {
                return Err(WorkbookError::TooLarge(format!(
                    "part {name} declares {} uncompressed; at most {} per part are accepted",
                    human(entry.size()),
                    human(limits.max_part_size)
                )));
            }
            total += u128::from(entry.size());
            names.push(name);
        }
        if total > u128::from(limits.max_total_uncompressed) {
            return Err(WorkbookError::TooLarge(format!(
                "the parts declare {} uncompressed in total; at most {} are accepted",
                human(u64::try_from(total).unwrap_or(u64::MAX)),
                human(limits.max_total_uncompressed)
            )));
        }
        Ok(Self {
            zip,
            names,
            limits,
            used: 0,
            input_len: bytes.len() as u64,
        })
    }

    /// Entry names in archive order.
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    /// Index of a part; OPC part names are case-insensitive, exact matches win.
    pub(crate) fn index_of(&self, name: &str) -> Option<usize> {
        let name = name.trim_start_matches('/');
        self.names
            .iter()
            .position(|n| n == name)
            .or_else(|| self.names.iter().position(|n| n.eq_ignore_ascii_case(name)))
    }

    /// Decompresses one entry, enforcing the per-part and total limits on the bytes actually
    /// produced (declared sizes can lie).
    pub(crate) fn read(&mut self, index: usize) -> Result<Vec<u8>, WorkbookError> {
        let name = self.names.get(index).cloned().unwrap_or_default();
        let remaining = self.limits.max_total_uncompressed.saturating_sub(self.used);
        let limit = self.limits.max_part_size.min(remaining);
        let file = self.zip.by_index(index).map_err(zip_error)?;
        let declared = file.size();
        let mut buf = Vec::with_capacity(declared.min(limit).min(64 * MIB) as usize);
        let read = file.take(limit.saturating_add(1)).read_to_end(&mut buf);
        if buf.len() as u64 > limit {
            return Err(WorkbookError::TooLarge(
                if limit == self.limits.max_part_size {
                    format!(
                        "part {name} decompresses to more than {} (declared {})",
                        human(limit),
                        human(declared)
                    )
                } else {
                    format!(
                        "the parts decompress to more than {} in total",
                        human(self.limits.max_total_uncompressed)
                    )
                },
            ));
        }
        read.map_err(|e| {
            // zip stops a stream that outgrows its declared size: a lying header, bomb-style.
            if e.to_string().contains("larger than its declared") {
                WorkbookError::TooLarge(format!(
                    "part {name} decompresses to more than its declared {} (a zip bomb?)",
                    human(declared)
                ))
            } else {
                WorkbookError::Corrupt(format!("part {name} cannot be decompressed: {e}"))
            }
        })?;
        self.used += buf.len() as u64;
        Ok(buf)
    }

    pub(crate) fn read_name(&mut self, name: &str) -> Result<Option<Vec<u8>>, WorkbookError> {
        match self.index_of(name) {
            Some(i) => self.read(i).map(Some),
            None => Ok(None),
        }
    }

    /// Reads an XML part as text after refusing DTDs.
    pub(crate) fn read_xml(&mut self, name: &str) -> Result<Option<String>, WorkbookError> {
        let Some(bytes) = self.read_name(name)? else {
            return Ok(None);
        };
        xml::reject_doctype(name, &bytes)?;
        xml::as_text(name, &bytes)?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|e| WorkbookError::Corrupt(format!("part {name} is not UTF-8: {e}")))
    }

    /// The stored (compressed) bytes of an entry; bounded by the input's own size.
    pub(crate) fn read_raw(&mut self, index: usize) -> Result<RawEntry, WorkbookError> {
        let input_len = self.input_len;
        let file = self.zip.by_index_raw(index).map_err(zip_error)?;
        let (method, crc32, size) = (file.compression(), file.crc32(), file.size());
        let mut compressed = Vec::new();
        file.take(input_len)
            .read_to_end(&mut compressed)
            .map_err(|e| {
                WorkbookError::Corrupt(format!("zip entry {index} cannot be read: {e}"))
            })?;
        Ok(RawEntry {
            method,
            crc32,
            size,
            compressed,
        })
    }
}

/// What kind of sheet a `<sheet>` of workbook.xml points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SheetKind {
    Worksheet,
    Chartsheet,
    Other,
}

#[derive(Debug, Clone)]
pub(crate) struct SheetEntry {
    pub name: String,
    pub visibility: Visibility,
    pub kind: SheetKind,
    /// Zip entry name of the sheet part (no leading slash).
    pub part: Option<String>,
}

/// workbook.xml as far as the engine needs it.
#[derive(Debug, Clone)]
pub(crate) struct WorkbookIndex {
    pub sheets: Vec<SheetEntry>,
    pub defined_names: Vec<DefinedName>,
}

impl WorkbookIndex {
    /// The worksheet part of a sheet, by exact name.
    pub(crate) fn worksheet_part(&self, sheet: &str) -> Option<&str> {
        self.sheets
            .iter()
            .find(|s| s.name == sheet && s.kind == SheetKind::Worksheet)
            .and_then(|s| s.part.as_deref())
    }
}

/// Finds the workbook part and reads its sheets and defined names.
pub(crate) fn workbook_index(pkg: &mut Package<'_>) -> Result<WorkbookIndex, WorkbookError> {
    let root_rels = match pkg.read_xml("_rels/.rels")? {
        Some(x) => parse_rels("", &x)?,
        None => HashMap::new(),
    };
    let wb_part = root_rels
        .values()
        .find(|r| r.kind.ends_with("/officeDocument"))
        .and_then(|r| r.target.clone())
        .unwrap_or_else(|| "xl/workbook.xml".to_string());
    if wb_part.ends_with(".bin") || pkg.index_of("xl/workbook.bin").is_some() {
        return Err(WorkbookError::Unsupported(
            "binary Excel workbook (.xlsb); open it in Excel and save it as .xlsx".into(),
        ));
    }
    let Some(wb_xml) = pkg.read_xml(&wb_part)? else {
        return Err(not_a_workbook_zip(pkg));
    };
    let rels_part = rels_part_for(&wb_part);
    let rels = match pkg.read_xml(&rels_part)? {
        Some(x) => parse_rels(&wb_part, &x)?,
        None => HashMap::new(),
    };
    parse_workbook(&wb_part, &wb_xml, &rels)
}

fn not_a_workbook_zip(pkg: &Package<'_>) -> WorkbookError {
    let has = |p: &str| pkg.names().iter().any(|n| n.starts_with(p));
    if has("mimetype") && has("content.xml") {
        WorkbookError::Unsupported(
            "OpenDocument spreadsheet (.ods); open it in Excel and save it as .xlsx".into(),
        )
    } else if has("word/") {
        WorkbookError::NotAWorkbook("the file is a Word document (.docx), not a workbook".into())
    } else if has("ppt/") {
        WorkbookError::NotAWorkbook("the file is a PowerPoint file (.pptx), not a workbook".into())
    } else {
        WorkbookError::NotAWorkbook(
            "a zip archive without an Excel workbook part (xl/workbook.xml)".into(),
        )
    }
}

/// `xl/workbook.xml` → `xl/_rels/workbook.xml.rels`.
pub(crate) fn rels_part_for(part: &str) -> String {
    match part.rsplit_once('/') {
        Some((dir, file)) => format!("{dir}/_rels/{file}.rels"),
        None => format!("_rels/{part}.rels"),
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Relationship {
    pub kind: String,
    /// Resolved zip entry name; `None` for external targets.
    pub target: Option<String>,
}

/// Parses a .rels part; targets are resolved against `source` (the part the rels belong to).
pub(crate) fn parse_rels(
    source: &str,
    text: &str,
) -> Result<HashMap<String, Relationship>, WorkbookError> {
    let mut out = HashMap::new();
    let mut reader = Reader::from_str(text);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) if xml::local_name(&e) == "Relationship" => {
                let (Some(id), Some(target)) = (xml::attr(&e, "Id"), xml::attr(&e, "Target"))
                else {
                    continue;
                };
                let external =
                    xml::attr(&e, "TargetMode").is_some_and(|m| m.eq_ignore_ascii_case("External"));
                let kind = xml::attr(&e, "Type").unwrap_or_default();
                let target = (!external).then(|| resolve_target(source, &target));
                out.insert(id, Relationship { kind, target });
            }
            Ok(Event::Eof) => return Ok(out),
            Ok(_) => {}
            Err(e) => {
                return Err(WorkbookError::Corrupt(format!(
                    "relationships of {source}: {e}"
                )));
            }
        }
    }
}

/// Resolves a relationship target against the folder of its source part.
fn resolve_target(source: &str, target: &str) -> String {
    let joined = if let Some(abs) = target.strip_prefix('/') {
        abs.to_string()
    } else {
        match source.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/{target}"),
            None => target.to_string(),
        }
    };
    let mut parts: Vec<&str> = Vec::new();
    for seg in joined.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

fn parse_workbook(
    part: &str,
    text: &str,
    rels: &HashMap<String, Relationship>,
) -> Result<WorkbookIndex, WorkbookError> {
    let mut sheets = Vec::new();
    let mut defined_names = Vec::new();
    let mut reader = Reader::from_str(text);
    let mut current_name: Option<DefinedName> = None;
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| WorkbookError::Corrupt(format!("{part}: {e}")))?;
        match ev {
            Event::Start(e) | Event::Empty(e) if xml::local_name(&e) == "sheet" => {
                let name = xml::attr(&e, "name").unwrap_or_default();
                let visibility = match xml::attr(&e, "state").as_deref() {
                    Some("hidden") => Visibility::Hidden,
                    Some("veryHidden") => Visibility::VeryHidden,
                    _ => Visibility::Visible,
                };
                let rel = xml::attr(&e, "id").and_then(|id| rels.get(&id));
                let kind = match rel.map(|r| r.kind.rsplit('/').next().unwrap_or("")) {
                    Some("worksheet") => SheetKind::Worksheet,
                    Some("chartsheet") => SheetKind::Chartsheet,
                    _ => SheetKind::Other,
                };
                let part = rel.and_then(|r| r.target.clone());
                sheets.push(SheetEntry {
                    name,
                    visibility,
                    kind,
                    part,
                });
            }
            Event::Start(e) if xml::local_name(&e) == "definedName" => {
                current_name = Some(DefinedName {
                    name: xml::attr(&e, "name").unwrap_or_default(),
                    local_sheet: xml::attr(&e, "localSheetId").and_then(|v| v.parse().ok()),
                    hidden: xml::attr(&e, "hidden").is_some_and(|v| v == "1" || v == "true"),
                    formula: String::new(),
                });
            }
            Event::Text(t) => {
                if let Some(d) = current_name.as_mut() {
                    d.formula.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                if let Some(d) = current_name.as_mut() {
                    xml::push_ref(&mut d.formula, &r);
                }
            }
            Event::End(e) if e.local_name().into_inner() == "definedName" => {
                if let Some(d) = current_name.take() {
                    defined_names.push(d);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(WorkbookIndex {
        sheets,
        defined_names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_resolve_relative_and_absolute() {
        assert_eq!(
            resolve_target("xl/workbook.xml", "worksheets/sheet1.xml"),
            "xl/worksheets/sheet1.xml"
        );
        assert_eq!(
            resolve_target("xl/workbook.xml", "/xl/worksheets/sheet1.xml"),
            "xl/worksheets/sheet1.xml"
        );
        assert_eq!(
            resolve_target("xl/worksheets/sheet1.xml", "../comments1.xml"),
            "xl/comments1.xml"
        );
        assert_eq!(
            rels_part_for("xl/workbook.xml"),
            "xl/_rels/workbook.xml.rels"
        );
    }

    #[test]
    fn sniffing_names_the_format() {
        let csv = sniff(b"Question,Answer\nDo you encrypt?,Yes\n").unwrap_err();
        assert!(csv.to_string().contains("looks like text/CSV"), "{csv}");
        assert!(matches!(sniff(b""), Err(WorkbookError::NotAWorkbook(_))));
        let mut ole = OLE_MAGIC.to_vec();
        ole.resize(512, 0);
        assert!(matches!(sniff(&ole), Err(WorkbookError::Unsupported(_))));
    }
}
