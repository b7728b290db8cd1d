#!/usr/bin/env bash
# Regenerates the PDF extraction corpus in fixtures/pdf/ (the PDFs are committed; CI does not run
# this). Each NAME.pdf gets NAME.txt, the words a reader should recover (empty for the scan that
# has no text layer). The prose is written for rfpq and is CC0; see fixtures/pdf/README.md.
# Needs Debian packages and two PyPI packages; installs them when missing (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

need_apt=()
for pair in libreoffice:libreoffice-writer-nogui chromium:chromium tesseract:tesseract-ocr \
  qpdf:qpdf ps2pdf:ghostscript pdflatex:texlive-latex-base img2pdf:img2pdf pdftoppm:poppler-utils; do
  command -v "${pair%%:*}" >/dev/null || need_apt+=("${pair#*:}")
done
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_apt+=(fonts-dejavu-core)
if [ ${#need_apt[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${need_apt[@]}" tesseract-ocr-eng fonts-liberation >/dev/null
fi
python3 -c 'import reportlab, docx' 2>/dev/null ||
  python3 -m pip install --quiet --disable-pip-version-check reportlab==4.4.4 python-docx==1.2.0

out="$PWD/fixtures/pdf"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 - "$out" "$work" <<'PY'
import html, os, re, subprocess, sys, zlib
out, work = sys.argv[1], sys.argv[2]

# ---- the prose (written for rfpq, CC0) -------------------------------------------------------
POLICY = [
    ("h1", "1 Purpose and scope"),
    ("p", "This policy sets the rules that protect customer data held by Northwind Analytics. "
          "It applies to every employee, contractor and service provider who can reach production "
          "systems or customer records."),
    ("h1", "2 Access control"),
    ("h2", "2.1 Authentication"),
    ("p", "Staff sign in through a single identity provider. Multi-factor authentication is "
          "mandatory for email, source code, cloud consoles and the customer support desk. "
          "Shared accounts are forbidden."),
    ("h2", "2.2 Least privilege"),
    ("p", "Access is granted by role and reviewed every quarter by the system owner. Leavers lose "
          "access within four hours of their last working day."),
    ("h1", "3 Encryption"),
    ("h2", "3.1 Data in transit"),
    ("p", "All external traffic uses TLS 1.2 or later with modern cipher suites. Internal service "
          "calls are authenticated with mutual TLS."),
    ("h2", "3.2 Key management"),
    ("p", "Encryption keys live in a managed hardware security module. Data keys rotate every "
          "ninety days and master keys every year. No engineer can export a master key."),
    ("table", [["Control", "Owner", "Review"],
               ["Access review", "Security team", "Quarterly"],
               ["Backup restore test", "Platform team", "Monthly"],
               ["Penetration test", "External auditor", "Yearly"]]),
    ("h1", "4 Incident response"),
    ("p", "Suspected incidents are reported to the security desk at once. The response team "
          "follows these steps:"),
    ("list", ["Contain the affected systems.", "Preserve logs and evidence.",
              "Notify affected customers within seventy two hours.",
              "Write a review with corrective actions."]),
]

CONTINUITY = [
    ("h1", "1 Business continuity"),
    ("p", "Northwind Analytics runs its platform in two availability zones. A regional outage "
          "triggers failover to the standby region, which is tested twice a year."),
    ("h2", "1.1 Recovery objectives"),
    ("p", "The recovery point objective is fifteen minutes and the recovery time objective is "
          "four hours for the reporting service."),
    ("h1", "2 Backups"),
    ("p", "Databases are backed up every night and transaction logs are shipped every five "
          "minutes. Backups are encrypted, stored in a separate account and kept for thirty "
          "five days."),
    ("table", [["System", "Frequency", "Retention"],
               ["Customer database", "Nightly", "35 days"],
               ["Object storage", "Versioned", "90 days"],
               ["Audit logs", "Streamed", "One year"]]),
    ("h1", "3 Vendor management"),
    ("p", "Every supplier that processes customer data signs a data processing agreement and "
          "completes a security questionnaire before onboarding."),
    ("list", ["Critical vendors are reassessed yearly.",
              "Subprocessors are listed on the public trust page.",
              "Contracts require breach notification within forty eight hours."]),
]

# Many fi, fl, ff, ffi, ffl words: pdfTeX sets them as ligature glyphs.
LIGATURES = [
    ("h1", "1 Configuration baselines"),
    ("p", "Every server image is built from a signed configuration file. The firewall profile "
          "defines which traffic flows are allowed; all other flows are denied by default. "
          "Official baselines are reviewed by the infrastructure office and certified before use."),
    ("h2", "1.1 File integrity"),
    ("p", "A file integrity monitor flags unauthorised modifications to system binaries and "
          "configuration files. Findings are classified, filed as tickets and fixed within five "
          "working days."),
    ("h1", "2 Logging and workflow"),
    ("p", "Logs flow to a central platform where they are retained for a fixed period of one "
          "year. Staff efficiently triage alerts through a defined workflow, and offline copies "
          "are kept in a different facility. Traffic shuffles through baffled proxies."),
    ("table", [["Finding", "Severity", "Fix within"],
               ["Critical flaw", "High", "Five days"],
               ["Misconfiguration", "Medium", "Fifteen days"],
               ["Informational", "Low", "Next cycle"]]),
    ("list", ["Confidential files are encrypted.", "Firmware is verified at boot.",
              "Affiliates sign the confidentiality agreement."]),
]

PRIVACY = [
    ("h1", "1 Data protection"),
    ("p", "Customer data is classified as confidential. It is processed only to deliver the "
          "contracted service and is never sold or used to train models without written consent."),
    ("h2", "1.1 Data residency"),
    ("p", "Customers choose a hosting region at signup. Data at rest stays in that region, "
          "including backups and replicas."),
    ("h2", "1.2 Retention and deletion"),
    ("p", "When a contract ends the customer may export its data for thirty days. After that the "
          "data is deleted from primary storage at once and from backups within ninety days."),
    ("h1", "2 Personnel security"),
    ("p", "Employees pass background checks where local law allows, sign a confidentiality "
          "agreement and complete security awareness training when they join and every year after."),
    ("h1", "3 Physical security"),
    ("p", "Production runs in certified data centres operated by the cloud provider. Offices hold "
          "no customer data; visitors sign in and are escorted at all times."),
    ("table", [["Region", "Provider", "Certification"],
               ["Frankfurt", "Cloud provider", "ISO 27001"],
               ["Dublin", "Cloud provider", "SOC 2"]]),
    ("list", ["Laptops use full disk encryption.", "Screens lock after five minutes.",
              "Lost devices are wiped remotely."]),
]

# Non-Latin text: needs an embedded font with a ToUnicode map (Type0/Identity-H in Chromium).
MULTILINGUAL = [
    ("h2", "4.1 Translations"),
    ("p", "Политика безопасности: ключи шифрования хранятся в аппаратном модуле и меняются "
          "каждые девяносто дней."),
    ("p", "Η πολιτική ισχύει για όλους τους υπαλλήλους και τους συνεργάτες."),
]

SCANNED = [
    ("h1", "5 Scanned appendix"),
    ("p", "This signed page confirms that the annual penetration test found no critical issues. "
          "Medium findings were fixed within thirty days and retested by the auditor."),
    ("list", ["Scope: public web application and API.", "Method: authenticated grey box testing.",
              "Result: no open high or critical findings."]),
]

def plain(blocks):
    lines = []
    for kind, body in blocks:
        if kind == "table":
            lines += [" | ".join(r) for r in body]
        elif kind == "list":
            lines += ["- " + item for item in body]
        else:
            lines.append(body)
    return "\n".join(lines) + "\n"

def write_txt(name, blocks):
    with open(os.path.join(out, name + ".txt"), "w", encoding="utf-8") as f:
        f.write(plain(blocks) if blocks else "")

def run(*cmd, **kw):
    subprocess.run(cmd, check=True, **kw)

def html_doc(blocks, css=""):
    parts = []
    for kind, body in blocks:
        if kind in ("h1", "h2"):
            parts.append(f"<{kind}>{html.escape(body)}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{html.escape(body)}</p>")
        elif kind == "table":
            rows = "".join(
                "<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{html.escape(c)}</{'th' if i == 0 else 'td'}>" for c in r) + "</tr>"
                for i, r in enumerate(body))
            parts.append(f"<table border='1' cellpadding='4'>{rows}</table>")
        elif kind == "list":
            parts.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in body) + "</ul>")
    return ("<!doctype html><html><head><meta charset='utf-8'><style>body{font-family:'DejaVu Sans';"
            f"font-size:11pt}} table{{border-collapse:collapse}} {css}</style></head><body>"
            + "\n".join(parts) + "</body></html>")

def chromium(name, blocks, css=""):
    src = os.path.join(work, name + ".html")
    open(src, "w", encoding="utf-8").write(html_doc(blocks, css))
    run("chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
        f"--print-to-pdf={out}/{name}.pdf", "file://" + src, stderr=subprocess.DEVNULL)
    write_txt(name, blocks)

def docx_file(blocks, path):
    import docx
    d = docx.Document()
    for kind, body in blocks:
        if kind == "h1":
            d.add_heading(body, level=1)
        elif kind == "h2":
            d.add_heading(body, level=2)
        elif kind == "p":
            d.add_paragraph(body)
        elif kind == "table":
            t = d.add_table(rows=len(body), cols=len(body[0]))
            t.style = "Table Grid"
            for r, row in enumerate(body):
                for c, cell in enumerate(row):
                    t.cell(r, c).text = cell
        elif kind == "list":
            for item in body:
                d.add_paragraph(item, style="List Bullet")
    d.save(path)

def libreoffice(name, blocks):
    src = os.path.join(work, name + ".docx")
    docx_file(blocks, src)
    run("libreoffice", "--headless", "--convert-to", "pdf", "--outdir", out, src,
        stdout=subprocess.DEVNULL)
    write_txt(name, blocks)

def tex_escape(s):
    return s.replace("&", r"\&").replace("%", r"\%").replace("_", r"\_")

def pdftex(name, blocks, twocolumn=False):
    body = []
    for kind, b in blocks:
        if kind == "h1":
            body.append(r"\section*{" + tex_escape(b) + "}")
        elif kind == "h2":
            body.append(r"\subsection*{" + tex_escape(b) + "}")
        elif kind == "p":
            body.append(tex_escape(b) + "\n")
        elif kind == "table":
            body.append(r"\begin{tabular}{|l|l|l|}\hline" + "\n" + "\n".join(
                " & ".join(tex_escape(c) for c in r) + r" \\ \hline" for r in b) + "\n" + r"\end{tabular}" + "\n")
        elif kind == "list":
            body.append(r"\begin{itemize}" + "".join(r"\item " + tex_escape(i) + "\n" for i in b) + r"\end{itemize}")
    opts = "a4paper,twocolumn" if twocolumn else "a4paper"
    tex = (r"\documentclass[" + opts + r"]{article}" "\n"
           r"\hyphenpenalty=10000 \exhyphenpenalty=10000 \sloppy" "\n"
           r"\begin{document}" "\n" + "\n".join(body) + "\n" r"\end{document}" "\n")
    open(os.path.join(work, name + ".tex"), "w").write(tex)
    run("pdflatex", "-interaction=batchmode", "-output-directory", work, name + ".tex",
        cwd=work, stdout=subprocess.DEVNULL)
    os.replace(os.path.join(work, name + ".pdf"), os.path.join(out, name + ".pdf"))
    write_txt(name, blocks)

def ghostscript(name, blocks):
    # Hand-written PostScript with the base-14 font names, distilled by ps2pdf.
    ps = ["%!PS-Adobe-3.0", "/F { findfont exch scalefont setfont } def"]
    y = [770]
    def line(text, font="Times-Roman", size=11, x=60):
        esc = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ps.append(f"{size} /{font} F {x} {y[0]} moveto ({esc}) show")
        y[0] -= size + 5
    def wrap(text, width=88):
        words, cur = text.split(), ""
        for w in words:
            if len(cur) + len(w) + 1 > width:
                line(cur); cur = w
            else:
                cur = (cur + " " + w).strip()
        if cur:
            line(cur)
    for kind, b in blocks:
        if kind == "h1":
            y[0] -= 6; line(b, "Helvetica-Bold", 14)
        elif kind == "h2":
            line(b, "Helvetica-Bold", 12)
        elif kind == "p":
            wrap(b)
        elif kind == "table":
            for r in b:
                for c, cell in enumerate(r):
                    ps.append(f"11 /{'Times-Bold' if r is b[0] else 'Times-Roman'} F {60 + 150 * c} {y[0]} moveto ({cell}) show")
                y[0] -= 16
        elif kind == "list":
            for item in b:
                line("- " + item, x=75)
    ps.append("showpage")
    src = os.path.join(work, name + ".ps")
    open(src, "w").write("\n".join(ps) + "\n")
    run("ps2pdf", "-dPDFSETTINGS=/prepress", src, os.path.join(out, name + ".pdf"))
    write_txt(name, blocks)

def reportlab_pdf(path, blocks, font="Helvetica", bold="Helvetica-Bold", pagesize=None, raw_ops=None):
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet, ParagraphStyle
    from reportlab.platypus import SimpleDocTemplate, Paragraph, Table, TableStyle, ListFlowable, ListItem, Spacer
    from reportlab.lib import colors
    ss = getSampleStyleSheet()
    body = ParagraphStyle("b", parent=ss["BodyText"], fontName=font, fontSize=11, leading=14)
    h1 = ParagraphStyle("h1", parent=ss["Heading1"], fontName=bold, fontSize=15)
    h2 = ParagraphStyle("h2", parent=ss["Heading2"], fontName=bold, fontSize=12)
    flow = []
    for kind, b in blocks:
        if kind == "h1":
            flow.append(Paragraph(html.escape(b), h1))
        elif kind == "h2":
            flow.append(Paragraph(html.escape(b), h2))
        elif kind == "p":
            flow.append(Paragraph(html.escape(b), body))
        elif kind == "table":
            t = Table(b)
            t.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.5, colors.black),
                                   ("FONTNAME", (0, 0), (-1, -1), font)]))
            flow += [t, Spacer(1, 8)]
        elif kind == "list":
            flow.append(ListFlowable([ListItem(Paragraph(html.escape(i), body)) for i in b],
                                     bulletType="bullet", bulletFontName=font))
    def on_page(canvas, doc):
        if raw_ops:
            canvas._code.append(raw_ops)
    doc = SimpleDocTemplate(path, pagesize=pagesize or A4, title="rfpq corpus",
                            pageCompression=1)
    doc.build(flow, onFirstPage=on_page, onLaterPages=on_page)

def reportlab(name, blocks, ttf=False, raw_ops=None):
    font, bold = "Helvetica", "Helvetica-Bold"
    if ttf:
        from reportlab.pdfbase import pdfmetrics
        from reportlab.pdfbase.ttfonts import TTFont
        d = "/usr/share/fonts/truetype/dejavu/"
        pdfmetrics.registerFont(TTFont("DejaVu", d + "DejaVuSans.ttf"))
        pdfmetrics.registerFont(TTFont("DejaVuBold", d + "DejaVuSans-Bold.ttf"))
        font, bold = "DejaVu", "DejaVuBold"
    reportlab_pdf(os.path.join(out, name + ".pdf"), blocks, font, bold, raw_ops=raw_ops)
    write_txt(name, blocks)

# ---- producers --------------------------------------------------------------------------------
libreoffice("libreoffice-writer", POLICY)
chromium("chromium-cid-fonts", CONTINUITY + MULTILINGUAL)
chromium("chromium-two-columns", PRIVACY, css="body{column-count:2;column-gap:2em}")
ghostscript("ghostscript-ps2pdf", CONTINUITY)
pdftex("pdftex-ligatures", LIGATURES)
pdftex("pdftex-two-columns", PRIVACY + LIGATURES, twocolumn=True)
reportlab("reportlab-base14", PRIVACY)
reportlab("reportlab-ttf", POLICY + MULTILINGUAL, ttf=True)

# A page drawn with a curve operator that has lost its operands (what pdf-extract 0.12 panics on
# at lib.rs:1805) and numbers written as `.5`, `-.5`, `+1`, `1.`, all legal PDF syntax.
reportlab("bare-curve-operator", CONTINUITY,
          raw_ops="q 1. 0 0 1. +1 -.5 cm 0 0 m c 10 10 .5 -.5 +1 1. c S Q")

# Scans: text rendered to a 200 dpi bitonal image; one gets tesseract's OCR text layer.
from reportlab.lib.units import inch
scan_src = os.path.join(work, "scan.pdf")
reportlab_pdf(scan_src, SCANNED, pagesize=(6.5 * inch, 4.5 * inch))
run("pdftoppm", "-r", "200", "-mono", "-png", "-singlefile", scan_src, os.path.join(work, "scan"))
run("tesseract", os.path.join(work, "scan.png"), os.path.join(out, "scan-ocr-layer"), "pdf",
    stderr=subprocess.DEVNULL)
write_txt("scan-ocr-layer", SCANNED)
run("img2pdf", "--output", os.path.join(out, "scan-no-text.pdf"), os.path.join(work, "scan.png"))
write_txt("scan-no-text", None)

# Encrypted with an empty user password (opens without a prompt): RC4 128, AES-128, AES-256.
base = os.path.join(out, "libreoffice-writer.pdf")
run("qpdf", "--allow-weak-crypto", "--encrypt", "", "owner-secret", "128", "--use-aes=n", "--", base,
    os.path.join(out, "encrypted-rc4-empty-password.pdf"))
run("qpdf", "--encrypt", "", "owner-secret", "128", "--use-aes=y", "--", base,
    os.path.join(out, "encrypted-aes128-empty-password.pdf"))
run("qpdf", "--encrypt", "", "owner-secret", "256", "--", base,
    os.path.join(out, "encrypted-aes256-empty-password.pdf"))
for n in ("encrypted-rc4-empty-password", "encrypted-aes128-empty-password",
          "encrypted-aes256-empty-password"):
    write_txt(n, POLICY)
# A real user password: must be refused with a clear message (not in the recall corpus).
os.makedirs(os.path.join(out, "password"), exist_ok=True)
run("qpdf", "--encrypt", "user-secret", "owner-secret", "256", "--", base,
    os.path.join(out, "password", "user-password.pdf"))

# Broken xref: every in-use offset of the classic xref table is off by 7 bytes, and startxref
# points 3 bytes early. Readers that rebuild the table by scanning for "N 0 obj" still read it.
data = open(os.path.join(out, "chromium-cid-fonts.pdf"), "rb").read()
start = int(re.search(rb"startxref\s+(\d+)", data[-64:]).group(1))
def shift(m):
    return b"%010d %s n" % (int(m.group(1)) + 7, m.group(2))
table_end = data.index(b"trailer", start)
fixed = data[:start] + re.sub(rb"(\d{10}) (\d{5}) n", shift, data[start:table_end]) + data[table_end:]
fixed = re.sub(rb"startxref\s+\d+", b"startxref\n%d" % (start - 3), fixed)
open(os.path.join(out, "broken-xref.pdf"), "wb").write(fixed)
write_txt("broken-xref", CONTINUITY + MULTILINGUAL)

# "Word via Acrobat"-like: Word-style document (Heading styles, table, list) exported, rewritten
# with object streams and a cross-reference stream (as Acrobat PDFMaker writes), then an
# incremental update appended (new Info dictionary, a classic xref section and trailer with /Prev
# to the xref stream) whose entry for the new object is 37 bytes wrong. Emulated, not Acrobat.
# (Shifting every offset of an object-stream file instead makes poppler and qpdf 11 give up.)
acro_src = os.path.join(work, "acrobat-like-src.pdf")
src_docx = os.path.join(work, "acrobat-like.docx")
docx_file(LIGATURES + POLICY, src_docx)
run("libreoffice", "--headless", "--convert-to", "pdf", "--outdir", work, src_docx,
    stdout=subprocess.DEVNULL)
run("qpdf", "--object-streams=generate", "--compress-streams=y",
    os.path.join(work, "acrobat-like.pdf"), acro_src)
data = open(acro_src, "rb").read()
prev = int(re.search(rb"startxref\s+(\d+)", data[-64:]).group(1))
size = int(re.search(rb"/Size (\d+)", data[prev:]).group(1))
root = re.search(rb"/Root (\d+ 0 R)", data[prev:]).group(1)
info_num = size
if not data.endswith(b"\n"):
    data += b"\n"
info_off = len(data)
junk = b"%" + b"x" * 35 + b"\n"  # written before the object but not counted in its offset
info = junk + b"%d 0 obj\n<< /Producer (Acrobat PDFMaker 15 for Word, emulated by rfpq) /Title (Security baseline) >>\nendobj\n" % info_num
xref_off = info_off + len(info)
xref = (b"xref\n0 1\n0000000000 65535 f \n%d 1\n%010d 00000 n \n" % (info_num, info_off)
        + b"trailer\n<< /Size %d /Root %s /Info %d 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n"
        % (info_num + 1, root, info_num, prev, xref_off))
data = data + info + xref
open(os.path.join(out, "acrobat-like-objstm-incremental.pdf"), "wb").write(data)
write_txt("acrobat-like-objstm-incremental", LIGATURES + POLICY)
PY

# Versions of the producers, for fixtures/pdf/README.md.
{
  echo "libreoffice: $(libreoffice --version | head -1)"
  echo "chromium: $(chromium --version 2>/dev/null | head -1)"
  echo "ghostscript: $(gs --version)"
  echo "pdftex: $(pdflatex --version | head -1)"
  echo "tesseract: $(tesseract --version 2>&1 | head -1)"
  echo "img2pdf: $(img2pdf --version 2>&1 | head -1)"
  echo "qpdf: $(qpdf --version | head -1)"
  echo "reportlab: $(python3 -c 'import reportlab; print(reportlab.Version)')"
  echo "python-docx: $(python3 -c 'import importlib.metadata as m; print(m.version("python-docx"))')"
} > "$out/VERSIONS"
ls -l "$out"
