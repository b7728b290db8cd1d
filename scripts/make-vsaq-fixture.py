#!/usr/bin/env python3
"""Writes fixtures/vsaq/vsaq-questionnaire.xlsx, a multi-sheet questionnaire built from
Google's VSAQ question banks (google/vsaq, questionnaires/*.json, Apache-2.0; see
fixtures/vsaq/SOURCE.md).

Run it from the repository root (stdlib + openpyxl only; written with openpyxl 3.1.5):

    python3 -m venv /tmp/vsaqfx && /tmp/vsaqfx/bin/pip install openpyxl
    /tmp/vsaqfx/bin/python scripts/make-vsaq-fixture.py [BANK_DIR]

BANK_DIR holds webapp.json, infrastructure.json, security_privacy_programs.json and
physical_and_datacenter.json (default: ../shared/fixtures/vsaq next to the repository).

Layout: an "Instructions" sheet; one question sheet per bank ("Web Application",
"Infrastructure", "Security Programs", "Physical Security") with a title in row 1, the header
row in row 3 (ID | Question | Answer | Comments | Score), bold merged A:E section banners
(one per VSAQ block) and question rows below; a "Key Controls" sheet that repeats 8 yes/no
questions verbatim (same ID and text); and a hidden "Lists" sheet holding the dropdown lists.
Radiogroups get a list validation in C (Yes/No/N/A for yes/no choices, otherwise one label
per choice plus N/A); line/box questions get no validation (C and D are free text);
checkgroups are skipped. E holds =IF(C{r}="Yes",1,0) on every question row. line/box
questions shown only after "yes" on the radiogroup just answered are prefixed "If yes, ".

The output is byte-for-byte deterministic: fixed document dates and fixed zip entry dates.
"""
import datetime
import html
import io
import json
import pathlib
import re
import sys
import zipfile

import openpyxl
from openpyxl.styles import Alignment, Font
from openpyxl.worksheet.datavalidation import DataValidation

ROOT = pathlib.Path(__file__).resolve().parent.parent
BANKS = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "fixtures" / "vsaq"
OUT = ROOT / "fixtures" / "vsaq" / "vsaq-questionnaire.xlsx"
FIXED = datetime.datetime(2024, 1, 1, 0, 0, 0)

# (bank file, sheet name, most question rows taken from it; whole blocks in JSON order)
SHEETS = [
    ("webapp.json", "Web Application", 26),
    ("infrastructure.json", "Infrastructure", 28),
    ("security_privacy_programs.json", "Security Programs", 26),
    ("physical_and_datacenter.json", "Physical Security", 26),
]
# Blocks that are not security questions (the closing feedback form).
SKIP_BLOCKS = {"feedback_block", "block_feedback"}
# Yes/No radiogroups repeated on "Key Controls" (same ID, same text, same dropdown).
KEY_CONTROLS = [
    "application_vm_securitycontact",
    "application_ssl_configuration_keys",
    "network_firewalls",
    "network_monitoring",
    "secprog",
    "secprog_extaudits_sharereports",
    "office_access",
    "office_policy",
]
# Readable labels for a few choice-id parts.
LABELS = {
    "wep": "WEP",
    "wpapsk": "WPA-PSK",
    "wpaenterprise": "WPA Enterprise",
    "pbkdf": "PBKDF",
    "fs": "File System",
    "db": "Database",
    "app": "Application",
    "loadbalancer": "Load Balancer",
    "selfset": "Self-Set",
    "med": "Medium",
    "notprotected": "Not Protected",
}
YES_NO = ("Yes", "No", "N/A")


def load_bank(path):
    """VSAQ banks are JavaScript-ish JSON: // comments, "a" + "b" concatenation, trailing
    commas and raw control characters inside strings."""
    s = path.read_text(encoding="utf-8")
    s = "\n".join(l for l in s.splitlines() if not l.lstrip().startswith("//"))
    s = re.sub(r'"[ \t]*\+[ \t]*\n\s*"', "", s)  # "…" +\n "…"  →  "……"
    s = re.sub(r",(\s*[\]}])", r"\1", s)  # trailing commas
    return json.loads(s, strict=False)


def clean(text):
    """HTML to one line of plain text."""
    t = re.sub(r"<li[^>]*>", " - ", text or "")
    t = re.sub(r"</?(p|ul|ol|li|br|div)\b[^>]*>", " ", t)
    t = re.sub(r"<[^>]+>", "", t)
    t = html.unescape(t)
    return " ".join(t.split())


def choice_ids(item):
    return [next(iter(c)) for c in item.get("choices", [])]


def common_prefix(ids):
    p = ids[0]
    for i in ids[1:]:
        while not i.startswith(p):
            p = p[:-1]
    return p[: p.rfind("_") + 1] if "_" in p else ""


def choice_labels(item):
    ids = choice_ids(item)
    if sorted(i.rsplit("_", 1)[-1] for i in ids) == ["no", "yes"]:
        return YES_NO
    last = [i.rsplit("_", 1)[-1] for i in ids]
    if len(set(last)) != len(last):
        pre = common_prefix(ids)
        last = [i[len(pre):] for i in ids]
    return tuple(LABELS.get(p, p.replace("_", " ").title()) for p in last) + ("N/A",)


def radiogroup_id(item, used):
    """VSAQ id, or for an anonymous radiogroup the common prefix of its choice ids."""
    if item.get("id"):
        return item["id"]
    rid = common_prefix(choice_ids(item)).rstrip("_")
    return rid + "_choice" if rid in used else rid


def flatten(items, path, cond, out):
    """(block path, effective cond, item) for every question, in JSON order."""
    for it in items:
        t = it.get("type")
        c = it.get("cond", cond)
        if t == "block":
            if it.get("id") in SKIP_BLOCKS:
                continue
            flatten(it.get("items", []), path + [it], c, out)
        elif t in ("radiogroup", "line", "box"):
            out.append((path, c, it))


def build_rows(bank, cap):
    """Rows for one sheet: ("section", text) and ("question", dict)."""
    root = bank["questionnaire"][0]
    flat = []
    flatten(root["items"], [], None, flat)
    # Units: consecutive questions under the same innermost block, kept whole.
    units = []
    for path, cond, it in flat:
        key = id(path[-1]) if path else None
        if units and units[-1][0] == key:
            units[-1][1].append((path, cond, it))
        else:
            units.append((key, [(path, cond, it)]))
    taken, n = [], 0
    for _, qs in units:
        if n + len(qs) > cap:
            break
        taken.append(qs)
        n += len(qs)
    rows, seen_blocks, used_ids, yes_choices = [], set(), set(), {}
    for qs in taken:
        block = qs[0][0][-1] if qs[0][0] else None
        if block is not None:
            title = clean(block.get("text"))
            if id(block) in seen_blocks:
                title += " (continued)"
            seen_blocks.add(id(block))
            rows.append(("section", title))
        for path, cond, it in qs:
            text = clean(it.get("text"))
            q = {"type": it["type"], "text": text, "parent": None}
            if it["type"] == "radiogroup":
                q["id"] = radiogroup_id(it, used_ids)
                q["choices"] = choice_labels(it)
                for cid in choice_ids(it):
                    if cid.endswith("_yes"):
                        yes_choices[cid] = q["id"]
            else:
                q["id"] = it["id"]
                q["choices"] = None
                if cond in yes_choices:  # shown only after "yes" on an earlier radiogroup
                    q["parent"] = yes_choices[cond]
                    first = text.split(" ", 1)[0]
                    if not first.isupper():
                        text = text[0].lower() + text[1:]
                    q["text"] = "If yes, " + text
            assert q["id"] not in used_ids, q["id"]
            used_ids.add(q["id"])
            rows.append(("question", q))
    return clean(root.get("text")), rows


def text_key(text):
    return " ".join(w for w in re.split(r"[^0-9a-z]+", text.lower()) if w)


def save_deterministic(wb, path):
    buf = io.BytesIO()
    wb.save(buf)
    buf.seek(0)
    out = io.BytesIO()
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            zi = zipfile.ZipInfo(info.filename, date_time=(2024, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o600 << 16
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":  # openpyxl stamps "modified" on save
                data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>" + FIXED.strftime("%Y-%m-%dT%H:%M:%SZ").encode(), data)
            dst.writestr(zi, data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out.getvalue())


def main():
    sheets = []
    for fname, name, cap in SHEETS:
        title, rows = build_rows(load_bank(BANKS / fname), cap)
        sheets.append((name, title, rows))
    by_id = {q["id"]: (name, q) for name, _, rows in sheets for kind, q in rows if kind == "question"}
    key_rows = []
    for src_name in [s[0] for s in sheets]:
        picked = [by_id[i][1] for i in KEY_CONTROLS if by_id[i][0] == src_name]
        if picked:
            key_rows.append(("section", src_name))
            key_rows.extend(("question", q) for q in picked)
    for i in KEY_CONTROLS:
        assert by_id[i][1]["choices"] == YES_NO and by_id[i][1]["parent"] is None, i
    sheets.append(("Key Controls", "Key Controls (summary of critical questions)", key_rows))

    # The only cross-sheet duplicates (by ID or by text) must be the Key Controls repeats.
    where = {}
    for name, _, rows in sheets:
        for kind, q in rows:
            if kind == "question":
                where.setdefault("id:" + q["id"].upper(), set()).add(name)
                if len(text_key(q["text"])) >= 20:
                    where.setdefault("text:" + text_key(q["text"]), set()).add(name)
    multi = sorted(k for k, v in where.items() if len(v) > 1)
    expected = sorted(["id:" + i.upper() for i in KEY_CONTROLS] + ["text:" + text_key(by_id[i][1]["text"]) for i in KEY_CONTROLS])
    assert multi == expected, (set(multi) ^ set(expected))

    # Distinct dropdown lists, Yes/No/N/A first, then in order of first use.
    lists = [YES_NO]
    for _, _, rows in sheets:
        for kind, q in rows:
            if kind == "question" and q["choices"] and q["choices"] not in lists:
                lists.append(q["choices"])

    wb = openpyxl.Workbook()
    wb.properties.creator = "rfpq scripts/make-vsaq-fixture.py"
    wb.properties.lastModifiedBy = None
    wb.properties.title = "Vendor Security Assessment Questionnaire (VSAQ)"
    wb.properties.created = FIXED
    wb.properties.modified = FIXED

    ins = wb.active
    ins.title = "Instructions"
    ins["A1"] = "Vendor Security Assessment Questionnaire (VSAQ)"
    ins["A1"].font = Font(bold=True, size=14)
    for i, line in enumerate([
        "Answer every question in column C using the dropdown; explain in column D.",
        "Questions starting with \"If yes, \" only apply when you answered Yes to the question above them; answer them in column C or D as free text.",
        "Do not change column E (Score): it is calculated from your answers.",
        "The \"Key Controls\" sheet repeats critical questions from the other sheets; give the same answers there.",
    ]):
        ins.cell(row=3 + i, column=1, value=line)
    ins.column_dimensions["A"].width = 120

    bold = Font(bold=True)
    wrap = Alignment(wrap_text=True, vertical="top")
    for name, title, rows in sheets:
        ws = wb.create_sheet(name)
        ws["A1"] = title
        ws["A1"].font = Font(bold=True, size=14)
        for col, head in enumerate(["ID", "Question", "Answer", "Comments", "Score"], start=1):
            ws.cell(row=3, column=col, value=head).font = bold
        ws.freeze_panes = "A4"
        for col, width in (("A", 38), ("B", 80), ("C", 16), ("D", 50), ("E", 8)):
            ws.column_dimensions[col].width = width
        dvs = {}
        r = 4
        for kind, q in rows:
            if kind == "section":
                cell = ws.cell(row=r, column=1, value=q)
                cell.font = bold
                ws.merge_cells(start_row=r, start_column=1, end_row=r, end_column=5)
            else:
                ws.cell(row=r, column=1, value=q["id"])
                ws.cell(row=r, column=2, value=q["text"]).alignment = wrap
                ws.cell(row=r, column=5, value=f'=IF(C{r}="Yes",1,0)')
                if q["choices"]:
                    n = lists.index(q["choices"])
                    if n not in dvs:
                        col = openpyxl.utils.get_column_letter(n + 1)
                        dvs[n] = DataValidation(
                            type="list",
                            formula1=f"Lists!${col}$1:${col}${len(q['choices'])}",
                            allow_blank=True,
                        )
                    dvs[n].add(f"C{r}")
            r += 1
        for n in sorted(dvs):
            ws.add_data_validation(dvs[n])

    ls = wb.create_sheet("Lists")
    for c, values in enumerate(lists, start=1):
        for i, v in enumerate(values, start=1):
            ls.cell(row=i, column=c, value=v)
    ls.sheet_state = "hidden"

    save_deterministic(wb, OUT)
    total = 0
    for name, _, rows in sheets:
        qs = [q for k, q in rows if k == "question"]
        total += len(qs) if name != "Key Controls" else 0
        print(f"{name}: {len(qs)} questions, {sum(1 for q in qs if q['parent'])} 'If yes' dependents")
    print(f"{total} questions on the four bank sheets, {len(lists)} dropdown lists -> {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
