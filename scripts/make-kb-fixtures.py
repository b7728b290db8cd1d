#!/usr/bin/env python3
"""Writes fixtures/kb/, the multi-format knowledge-base test fixtures.

How to run (the outputs are committed; rerun only to change them):

    python3 -m venv /tmp/kbfx
    /tmp/kbfx/bin/pip install fpdf2==2.8.9 python-docx==1.2.0 openpyxl==3.1.5
    /tmp/kbfx/bin/python scripts/make-kb-fixtures.py

Everything here is synthetic and describes a fictional SaaS company, "Northwind Ledger";
the text was written for rfpq and is CC0. Outputs:

    security-policy.pdf     6-page policy; which section is on which page is in PDF_PAGES
    employee-handbook.docx  Heading 1/Heading 2 styles, paragraphs, one table
    trust-center.html       h1/h2/p/ul, plus nav, <script> and <style> to be ignored
    past-answers.xlsx       sheet "Questionnaire": title row, header row, 25 answered rows,
                            Yes/No/N/A list validation on the Answer column
    corrupt.pdf             "%PDF-1.7" header, then garbage and a truncated xref
    corrupt.docx            the first third of employee-handbook.docx (truncated zip)
    labels.jsonl            retrieval labels: question -> expected source file(s)
    README.md

The output is byte-reproducible with the pinned library versions: fixed creation dates and
metadata, and every zip package (docx, xlsx) is rewritten with fixed entry timestamps.
"""
import datetime
import io
import json
import pathlib
import random
import re
import zipfile

from docx import Document
from docx.shared import Pt
from fpdf import FPDF
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.worksheet.datavalidation import DataValidation

OUT = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "kb"
FIXED = datetime.datetime(2024, 1, 15, 9, 0, 0, tzinfo=datetime.timezone.utc)
FIXED_ISO = "2024-01-15T09:00:00Z"
COMPANY = "Northwind Ledger"

# --------------------------------------------------------------------------------------------
# security-policy.pdf
# --------------------------------------------------------------------------------------------

# One entry per page (the page map the retrieval tests rely on); each item is (kind, text),
# kind one of "title", "h1", "h2", "p".
PDF_PAGES = [
    # Page 1: document control, purpose and scope, encryption and key management.
    [
        ("title", "Northwind Ledger - Information Security Policy"),
        ("p", "Document owner: Head of Security. Approved by: Chief Technology Officer. Version "
              "3.2, effective 15 January 2024. Classification: Internal, may be shared with "
              "customers under NDA. This policy is reviewed at least once a year and whenever the "
              "business or its systems change materially."),
        ("h1", "1. Purpose and Scope"),
        ("p", "Northwind Ledger provides cloud accounting and ledger software to small and "
              "mid-sized businesses. Our customers trust us with their financial records, invoices "
              "and payroll summaries, and this policy sets out the minimum security requirements "
              "that protect that information. It applies to every employee, contractor and "
              "temporary worker, to every system that stores or processes customer data, and to the "
              "corporate systems used to build and run the service."),
        ("p", "Where a more detailed standard or procedure exists, it must be consistent with this "
              "policy. Conflicts are resolved in favour of the stricter requirement until the Head "
              "of Security issues a ruling."),
        ("h1", "2. Encryption and Key Management"),
        ("h2", "2.1 Encryption at Rest"),
        ("p", "All customer data held by Northwind Ledger is encrypted at rest with AES-256. This "
              "covers the primary PostgreSQL databases, read replicas, object storage buckets "
              "holding uploaded receipts and invoices, search indexes, message queues and every "
              "backup snapshot. Storage that cannot be encrypted must not hold customer data. Staff "
              "laptops use full-disk encryption, which is verified daily by an automated compliance "
              "check."),
        ("h2", "2.2 Encryption in Transit"),
        ("p", "Every external connection to the service, including the web application, the public "
              "API and webhooks we send, requires TLS 1.2 or higher. TLS 1.0 and TLS 1.1 are "
              "disabled at the load balancer, only forward-secret cipher suites are offered, and "
              "HTTP Strict Transport Security is set on all customer-facing domains. Traffic "
              "between internal services is protected with mutual TLS, so data is never sent in "
              "clear text inside the production network either."),
        ("h2", "2.3 Key Management and Rotation"),
        ("p", "Encryption keys are generated and stored in a managed Key Management Service (KMS) "
              "backed by FIPS 140-2 validated hardware security modules. Data encryption keys are "
              "wrapped by customer-specific key encryption keys, and key encryption keys are "
              "rotated automatically every 90 days. Retired key versions are kept only for "
              "decrypting older data until it is re-encrypted. No employee can export raw key "
              "material, and every use of a key is written to the KMS audit log."),
        ("p", "TLS certificates are issued by a public certificate authority and renewed "
              "automatically at least 30 days before they expire. Private keys for certificates "
              "never leave the load balancer or the KMS."),
    ],
    # Page 2: logging and monitoring.
    [
        ("h1", "3. Logging and Monitoring"),
        ("h2", "3.1 What Is Logged"),
        ("p", "Production systems send application logs, authentication events, administrative "
              "actions, database audit records, network flow logs and cloud control-plane events to "
              "a central log platform. Log entries carry a timestamp from clocks synchronised over "
              "NTP, the acting identity and the source address. Secrets, passwords and full payment "
              "details must never be written to logs, and automated checks reject log lines that "
              "match known secret formats."),
        ("h2", "3.2 Retention and Protection"),
        ("p", "Security and audit logs are retained for 400 days. The most recent 90 days are kept "
              "in hot storage where they can be searched immediately; older entries are held in "
              "write-once archive storage and can be restored within one business day. Engineers "
              "can read logs but only the security team can change retention settings, and any "
              "attempt to delete or alter archived logs raises an alert."),
        ("h2", "3.3 Alerting and Review"),
        ("p", "Logs are streamed into a Security Information and Event Management (SIEM) platform, "
              "which runs correlation rules for events such as repeated failed sign-ins, privilege "
              "escalation, access from unusual countries, disabled MFA and changes to firewall "
              "rules. High-severity SIEM alerts page the on-call security engineer, who "
              "acknowledges them within 15 minutes at any hour. Lower-severity alerts are triaged "
              "the next business day, and the security team reviews alert quality each month to "
              "remove noisy rules and add new detections."),
    ],
    # Page 3: vulnerability management.
    [
        ("h1", "4. Vulnerability Management"),
        ("h2", "4.1 Scanning"),
        ("p", "Authenticated vulnerability scans of all production hosts, containers and cloud "
              "configuration run every week. Container images are also scanned on every build, and "
              "a build that contains a known critical vulnerability cannot be deployed. Open-source "
              "dependencies are checked daily against public advisory databases, and the results "
              "are tracked as tickets owned by the responsible team."),
        ("h2", "4.2 Remediation Timelines"),
        ("p", "Findings are rated using CVSS together with our own view of exploitability and "
              "exposure. Critical vulnerabilities must be patched or otherwise mitigated within 7 "
              "days of discovery, high vulnerabilities within 30 days, medium within 90 days, and "
              "low findings in the normal release cycle. If a deadline cannot be met, the owning "
              "team requests a time-limited exception from the Head of Security and documents the "
              "compensating controls in place until the fix ships."),
        ("h2", "4.3 Penetration Testing"),
        ("p", "An independent, CREST-accredited firm performs a penetration test of the "
              "application, the public API and the supporting cloud infrastructure once a year, and "
              "additionally after any major change to the architecture. Findings follow the "
              "remediation timelines above and are retested by the same firm. Customers may request "
              "the executive summary of the latest report under a non-disclosure agreement."),
    ],
    # Page 4: physical security of offices.
    [
        ("h1", "5. Physical Security of Offices"),
        ("p", "Northwind Ledger operates offices in Dublin and Austin. No customer data is stored "
              "in either office: production runs entirely in our cloud provider's data centres, "
              "whose physical controls are assessed through the provider's own independent audits. "
              "Office security therefore protects people, laptops and the corporate network."),
        ("p", "Entry to each office requires a personal access badge, and badge access rights are "
              "reviewed every quarter. Visitors sign in at reception, wear a visible visitor pass "
              "and are escorted at all times. CCTV covers building entrances and recordings are "
              "kept for 30 days. The network equipment cabinet is locked and only the IT team holds "
              "keys. Lost or stolen badges must be reported the same day so they can be "
              "deactivated."),
        ("p", "Staff must not prop open secure doors or let people follow them through without a "
              "badge. Laptops left in the office overnight are stored in locked lockers, and "
              "printers release documents only after the owner badges in at the device. Building "
              "alarms are monitored outside office hours by the landlord's security contractor."),
    ],
    # Page 5: data retention and deletion.
    [
        ("h1", "6. Data Retention and Deletion"),
        ("p", "Customer data is retained for as long as the customer's contract is active. When a "
              "contract ends, the customer has 30 days to export their records, and all customer "
              "data is then deleted from production systems 30 days after the contract end date. "
              "Encrypted backups expire on a rolling 35-day cycle, so the last copies are gone no "
              "later than 65 days after the contract ends. A written confirmation of deletion is "
              "available on request."),
        ("p", "Other records follow their own schedules: billing and invoicing records are kept for "
              "seven years to meet tax law, support tickets for two years after they are closed, "
              "and recruitment files of unsuccessful candidates for six months. The retention "
              "schedule is owned by the Head of Security and the Data Protection Officer."),
        ("p", "Storage media in the cloud provider's facilities are sanitised by the provider in "
              "line with the NIST media sanitisation guidelines. Company laptops are wiped "
              "with a cryptographic erase before they are reissued or recycled."),
    ],
    # Page 6: change management; roles, responsibilities and exceptions.
    [
        ("h1", "7. Change Management"),
        ("p", "Every change to production code or infrastructure is made through a pull request "
              "that passes the automated test suite and is approved by a second engineer; authors "
              "cannot approve their own changes. Infrastructure is defined as code, so "
              "configuration changes follow the same path. Changes are classified as standard, "
              "normal or emergency. High-risk normal changes, such as database migrations on large "
              "tables, are discussed at the weekly Change Advisory Board before release."),
        ("p", "Emergency changes may be deployed with the approval of the on-call engineering "
              "manager, but they must be reviewed retrospectively within two business days. Every "
              "deployment is recorded with its author, approver and ticket reference, and can be "
              "rolled back to the previous release."),
        ("h1", "8. Roles, Responsibilities and Exceptions"),
        ("p", "The Head of Security owns this policy, maintains the risk register and reports on "
              "security posture to the executive team every quarter. Engineering managers are "
              "accountable for applying the policy in the systems their teams operate. Every member "
              "of staff is responsible for following the policy, for completing the required "
              "training and for reporting anything that looks like a breach of it."),
        ("p", "Exceptions must be requested in writing, carry a named owner and an expiry date of "
              "no more than twelve months, and be approved by the Head of Security. Approved "
              "exceptions are recorded in the risk register and reviewed at each renewal."),
    ],
]


class PolicyPDF(FPDF):
    def footer(self):
        self.set_y(-15)
        self.set_font("Helvetica", "I", 8)
        self.cell(0, 10, f"Northwind Ledger - Information Security Policy v3.2 - "
                         f"Page {self.page_no()} of {{nb}}", align="C")


def make_pdf(path):
    pdf = PolicyPDF(format="A4")
    pdf.set_creation_date(FIXED)
    pdf.set_title("Information Security Policy")
    pdf.set_author("Northwind Ledger Security Team")
    pdf.set_subject("Information security policy (synthetic test fixture)")
    pdf.set_creator("rfpq scripts/make-kb-fixtures.py")
    pdf.set_producer("rfpq scripts/make-kb-fixtures.py")
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(True, margin=22)
    for page in PDF_PAGES:
        pdf.add_page()
        for kind, text in page:
            if kind == "title":
                pdf.set_font("Helvetica", "B", 18)
                pdf.multi_cell(0, 9, text, new_x="LMARGIN", new_y="NEXT")
                pdf.ln(4)
            elif kind == "h1":
                pdf.ln(3)
                pdf.set_font("Helvetica", "B", 14)
                pdf.multi_cell(0, 8, text, new_x="LMARGIN", new_y="NEXT")
                pdf.ln(1)
            elif kind == "h2":
                pdf.set_font("Helvetica", "B", 11.5)
                pdf.multi_cell(0, 7, text, new_x="LMARGIN", new_y="NEXT")
            else:
                pdf.set_font("Helvetica", "", 10.5)
                pdf.multi_cell(0, 5.6, text, new_x="LMARGIN", new_y="NEXT")
                pdf.ln(3)
    pdf.output(str(path))
    assert pdf.page_no() == len(PDF_PAGES), "a section overflowed onto an extra page"


# --------------------------------------------------------------------------------------------
# employee-handbook.docx
# --------------------------------------------------------------------------------------------

HANDBOOK = [
    ("h1", "Welcome and Purpose"),
    ("p", "This handbook explains the security rules that every person working at Northwind "
          "Ledger follows, whether they are a permanent employee, a contractor or an intern. "
          "Our customers run their finances on our platform, so the habits described here are "
          "part of the job rather than an optional extra. If something in this handbook is "
          "unclear, ask the security team before you act, not afterwards."),
    ("h1", "Security Awareness Training"),
    ("h2", "Training at Onboarding"),
    ("p", "Every new starter completes security awareness training during their first week "
          "and before they are given access to customer data. The course covers phishing and "
          "social engineering, password managers and multi-factor authentication, handling "
          "customer information and how to report a concern. Access to production systems is "
          "only granted once the course and its short quiz are complete."),
    ("h2", "Annual Refresher"),
    ("p", "All staff repeat the training every year, and engineers also take an annual secure "
          "coding module. Completion is tracked by People Operations; anyone more than 30 days "
          "overdue has their access to customer data suspended until they finish."),
    ("h2", "Phishing Simulations"),
    ("p", "The security team sends simulated phishing emails to everyone once a quarter. "
          "Nobody is punished for clicking a simulation. People who click twice in a row are "
          "offered a short one-to-one coaching session, and the overall results are shared "
          "with the whole company so that everyone learns what the latest lures look like."),
    ("table", None),
    ("h1", "Background Checks"),
    ("p", "Before their start date, every new hire goes through pre-employment screening "
          "carried out by an external screening provider: identity and right-to-work "
          "verification, confirmation of employment history for the previous five years, and "
          "a criminal record check where local law permits it. People moving into roles with "
          "privileged production access are screened again every three years. Offers of "
          "employment are conditional on satisfactory results."),
    ("h1", "Acceptable Use"),
    ("h2", "Company Devices and Accounts"),
    ("p", "Company laptops and accounts are provided for Northwind Ledger work. Limited "
          "personal use is fine as long as it does not interfere with work, break the law or "
          "put company data at risk. Do not share your accounts or install software from outside "
          "the approved catalogue without asking IT."),
    ("h2", "Handling Customer Data"),
    ("p", "Customer data may only be accessed to do your job, through the approved tools, and "
          "must never be copied to personal devices, personal email or unapproved cloud "
          "storage. Uploading customer data or source code to public AI chat tools is "
          "prohibited unless the tool has been approved by the security team."),
    ("h1", "Clean Desk and Clear Screen"),
    ("p", "Lock your screen whenever you step away; laptops also lock automatically after five "
          "minutes of inactivity. At the end of the day, clear your desk of printed documents "
          "and notes that contain customer or confidential information, and use the locked "
          "shredding bins rather than the normal recycling. Whiteboards in meeting rooms must "
          "be wiped after customer discussions."),
    ("h1", "Remote Work and VPN"),
    ("h2", "Working from Home"),
    ("p", "You may work from home or another private location. Use a home network protected "
          "with WPA2 or WPA3 and a password you have changed from the router default, and make "
          "sure family members and visitors cannot see your screen during calls about "
          "customers."),
    ("h2", "VPN and Public Networks"),
    ("p", "Internal tools and administrative consoles are reachable only through the company "
          "VPN, which requires your single sign-on account and a hardware security key. On "
          "public Wi-Fi in cafes, hotels or airports, connect to the VPN before doing anything "
          "else. Working from outside your home country for more than two weeks needs prior "
          "approval from the security team."),
    ("h1", "Reporting Suspected Incidents"),
    ("p", "If you think something has gone wrong - a suspicious email, a lost laptop or phone, "
          "a message sent to the wrong customer, or unexpected behaviour in a system - report "
          "it straight away to security@northwind.example, and in any case within one hour of "
          "noticing. You do not need to be certain; the security team would much rather "
          "receive a false alarm than hear about a real incident late. Reports made in good "
          "faith never lead to disciplinary action against the person who reported them."),
    ("h1", "Disciplinary Process"),
    ("p", "Breaches of these rules are handled through the normal disciplinary procedure, "
          "which normally moves from an informal conversation to a written warning and then a "
          "final written warning. Deliberate or grossly negligent breaches, such as knowingly "
          "exporting customer data or sharing credentials with an outsider, may lead to "
          "immediate dismissal and, where appropriate, referral to the authorities."),
]

TRAINING_TABLE = [
    ("Programme", "Who takes it", "How often"),
    ("Security awareness course", "All staff and contractors", "At onboarding, then annually"),
    ("Phishing simulation", "All staff", "Quarterly"),
    ("Secure coding module", "Engineers", "Annually"),
    ("Incident response tabletop", "On-call engineers", "Twice a year"),
]


def make_docx(path):
    doc = Document()
    cp = doc.core_properties
    cp.title = "Employee Security Handbook"
    cp.subject = "Security rules for staff (synthetic test fixture)"
    cp.author = "Northwind Ledger People Operations"
    cp.last_modified_by = "Northwind Ledger People Operations"
    cp.comments = "Synthetic fixture written for rfpq, CC0"
    cp.keywords = ""
    cp.revision = 1
    cp.created = FIXED.replace(tzinfo=None)
    cp.modified = FIXED.replace(tzinfo=None)
    cp.last_printed = FIXED.replace(tzinfo=None)
    doc.styles["Normal"].font.name = "Calibri"
    doc.styles["Normal"].font.size = Pt(11)

    doc.add_heading("Northwind Ledger Employee Security Handbook", level=0)
    doc.add_paragraph("Version 2.1, January 2024. Owner: Head of Security with People "
                      "Operations.")
    for kind, text in HANDBOOK:
        if kind == "h1":
            doc.add_heading(text, level=1)
        elif kind == "h2":
            doc.add_heading(text, level=2)
        elif kind == "p":
            doc.add_paragraph(text)
        elif kind == "table":
            doc.add_paragraph("Training schedule:")
            table = doc.add_table(rows=len(TRAINING_TABLE), cols=3)
            table.style = "Table Grid"
            for r, row in enumerate(TRAINING_TABLE):
                for c, value in enumerate(row):
                    table.cell(r, c).text = value
                    if r == 0:
                        for run in table.cell(r, c).paragraphs[0].runs:
                            run.bold = True
    buf = io.BytesIO()
    doc.save(buf)
    path.write_bytes(normalize_zip(buf.getvalue()))


# --------------------------------------------------------------------------------------------
# trust-center.html
# --------------------------------------------------------------------------------------------

TRUST_CENTER = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Trust Center - Northwind Ledger</title>
<style>
  body { font-family: Helvetica, Arial, sans-serif; max-width: 52rem; margin: 0 auto; }
  nav a { margin-right: 1rem; }
  .subprocessors li { margin-bottom: 0.3rem; }
  /* This stylesheet must never appear in extracted text. */
</style>
<script>
  // Analytics bootstrap: must be ignored by text extraction.
  window.nwTrust = { pageId: "trust-center", consentRequired: true };
  function toggleMenu() { document.querySelector("nav").classList.toggle("open"); }
</script>
</head>
<body>
<nav>
  <a href="/">Home</a>
  <a href="/pricing">Pricing</a>
  <a href="/customers">Customers</a>
  <a href="/careers">Careers</a>
  <a href="/login">Log in</a>
</nav>
<main>
<h1>Northwind Ledger Trust Center</h1>
<p>This page summarises how Northwind Ledger keeps the service available and where customer
data lives. It is updated whenever something listed here changes. Security questions can be
sent to security@northwind.example.</p>

<h2>Availability and Uptime Commitment</h2>
<p>We commit to 99.9% monthly availability of the Northwind Ledger web application and public
API, measured from outside our infrastructure. If we miss that commitment in a calendar month,
customers on annual plans receive service credits as described in the Service Level Agreement.
Scheduled maintenance happens on Sundays between 02:00 and 04:00 UTC, is announced at least 72
hours in advance and does not count as downtime.</p>

<h2>Status Page</h2>
<p>Live service health, current incidents and past incident reports are published at
status.northwind.example. Anyone can subscribe to updates by email or RSS. During an incident
we post a new update at least every 30 minutes until the service is fully restored, and a
written post-incident report follows within five business days.</p>

<h2>Data Centre Regions</h2>
<p>Customers choose a hosting region when they sign up, and their data stays in that region
for storage and processing, including backups:</p>
<ul>
  <li>EU region: Frankfurt, Germany (Amazon Web Services eu-central-1), with backups replicated
  across availability zones within the same region.</li>
  <li>US region: Virginia, United States (Amazon Web Services us-east-1), with backups
  replicated across availability zones within the same region.</li>
</ul>
<p>Moving an existing account to another region is possible on request and is scheduled with
the customer.</p>

<h2>Sub-processors</h2>
<p>These third parties process customer data on our behalf. We give customers at least 30 days'
notice by email before adding a new sub-processor, so they can raise objections.</p>
<ul class="subprocessors">
  <li>Amazon Web Services - cloud hosting, databases and storage - EU (Frankfurt) or US
  (Virginia), depending on the customer's region</li>
  <li>Stripe - subscription billing and card payments - United States and Ireland</li>
  <li>Postmark - transactional email such as invoices and password resets - United States</li>
  <li>Zendesk - customer support tickets - European Union</li>
  <li>Sentry - application error monitoring, with personal data scrubbed - European Union</li>
</ul>

<h2>Bug Bounty Programme</h2>
<p>We run a public bug bounty programme and pay researchers for valid security reports.
Rewards range from USD 100 to USD 5,000 depending on severity and impact. The scope covers
app.northwind.example and api.northwind.example; denial-of-service testing, social engineering
and attacks on our offices are out of scope. Researchers who follow the programme rules are
covered by our safe-harbour statement, and we aim to triage every report within three business
days. Reports go to security@northwind.example.</p>
</main>
<footer>
  <p>&copy; 2024 Northwind Ledger. All rights reserved. <a href="/privacy">Privacy</a></p>
</footer>
</body>
</html>
"""


# --------------------------------------------------------------------------------------------
# past-answers.xlsx
# --------------------------------------------------------------------------------------------

QUESTIONNAIRE = [
    ("IAM-01", "Is multi-factor authentication required for all workforce access to "
               "production systems?", "Yes",
     "All staff sign in through single sign-on with MFA. Production administrators must use a "
     "FIDO2 hardware security key."),
    ("IAM-02", "Are user access rights to production systems reviewed at least quarterly?",
     "Yes",
     "System owners review every account and permission each quarter and the evidence is kept "
     "for audit."),
    ("IAM-03", "Is access revoked within 24 hours when an employee or contractor leaves?",
     "Yes",
     "Leavers are deprovisioned automatically from the HR system, normally within four hours "
     "of their last working day."),
    ("IAM-04", "Does the service support SAML single sign-on for customer user accounts?",
     "Yes", "SAML 2.0 and SCIM provisioning are available on the Business plan."),
    ("IAM-05", "Are shared or generic administrator accounts used to manage production?",
     "No",
     "Every administrator uses a personal named account, so all actions are attributable."),
    ("CRY-01", "Is customer data encrypted at rest using AES-256 or an equivalent algorithm?",
     "Yes", "Databases, object storage and backups are encrypted with AES-256."),
    ("CRY-02", "Is TLS 1.2 or higher enforced for all connections to the service?", "Yes",
     "TLS 1.0 and 1.1 are disabled; internal service traffic uses mutual TLS."),
    ("CRY-03", "Are encryption keys rotated at least once a year?", "Yes",
     "Key encryption keys are rotated automatically every 90 days in our cloud KMS."),
    ("CRY-04", "Can customers bring or manage their own encryption keys (BYOK)?", "No",
     "Customer-managed keys are not offered today; all keys are managed by Northwind Ledger in "
     "the KMS."),
    ("LOG-01", "Are security-relevant events collected centrally and monitored?", "Yes",
     "Logs feed a SIEM with correlation rules; high-severity alerts page the on-call security "
     "engineer."),
    ("LOG-02", "Are audit logs protected against modification or deletion?", "Yes",
     "Archived logs are held in write-once storage and tampering attempts raise an alert."),
    ("LOG-03", "Are security logs retained for a minimum of twelve months?", "Yes",
     "Security and audit logs are retained for 400 days."),
    ("BCR-01", "Is there a documented business continuity and disaster recovery plan that is "
               "tested at least annually?", "Yes",
     "The plan is exercised every year with a tabletop and a regional failover test; the last "
     "test was in November 2023."),
    ("BCR-02", "Do you commit to a recovery time objective of four hours or less?", "Yes",
     "Our RTO is 4 hours and our RPO is 1 hour for the production database."),
    ("BCR-03", "Are backups taken at least daily and stored separately from production?",
     "Yes",
     "Hourly database snapshots are copied to a separate backup account and kept for 35 days."),
    ("HRS-01", "Are background checks carried out on all new employees before they start?",
     "Yes",
     "Identity, right to work, five years of employment history and, where lawful, criminal "
     "records are checked."),
    ("HRS-02", "Do all employees complete security awareness training on joining and every "
               "year thereafter?", "Yes",
     "Training is completed in the first week and refreshed annually; completion is tracked."),
    ("HRS-03", "Do all employees and contractors sign a confidentiality or non-disclosure "
               "agreement?", "Yes",
     "A confidentiality clause is part of every employment contract and contractor agreement."),
    ("HRS-04", "Do you run phishing simulation exercises for staff?", "Yes",
     "Simulated phishing campaigns run quarterly, with coaching for repeat clickers."),
    ("VUL-01", "Are infrastructure vulnerability scans performed at least monthly?", "Yes",
     "Authenticated scans run weekly across all production hosts and containers."),
    ("VUL-02", "Is an independent penetration test performed at least annually?", "Yes",
     "A CREST-accredited firm tests the application and infrastructure every year; the "
     "executive summary is available under NDA."),
    ("VUL-03", "Do you operate a bug bounty or vulnerability disclosure programme?", "Yes",
     "We run a public bug bounty with rewards of USD 100 to USD 5,000."),
    ("DSP-01", "Is customer data deleted when the contract is terminated?", "Yes",
     "Customer data is deleted from production 30 days after the contract ends; backups expire "
     "within a further 35 days."),
    ("DSP-02", "Is data belonging to EU customers stored or processed outside the European "
               "Union?", "No",
     "EU customers are hosted in Frankfurt, Germany, and their data stays in that region."),
    ("DSP-03", "If the product is installed on customer premises, are the installation "
               "packages code-signed?", "N/A",
     "Northwind Ledger is delivered only as SaaS; there is no on-premises version."),
]


def make_xlsx(path):
    wb = Workbook()
    wb.properties.creator = "Northwind Ledger Security Team"
    wb.properties.lastModifiedBy = "Northwind Ledger Security Team"
    wb.properties.title = "Vendor Security Questionnaire - answered"
    wb.properties.created = FIXED.replace(tzinfo=None)
    wb.properties.modified = FIXED.replace(tzinfo=None)
    ws = wb.active
    ws.title = "Questionnaire"
    ws["A1"] = "Northwind Ledger - Vendor Security Questionnaire (answered February 2024)"
    ws["A1"].font = Font(bold=True, size=14)
    ws.merge_cells("A1:D1")
    for col, head in enumerate(["ID", "Question", "Answer", "Comments"], start=1):
        cell = ws.cell(row=2, column=col, value=head)
        cell.font = Font(bold=True)
    first = 3
    for i, (qid, question, answer, comment) in enumerate(QUESTIONNAIRE):
        r = first + i
        ws.cell(row=r, column=1, value=qid)
        ws.cell(row=r, column=2, value=question).alignment = Alignment(wrap_text=True,
                                                                         vertical="top")
        ws.cell(row=r, column=3, value=answer)
        ws.cell(row=r, column=4, value=comment).alignment = Alignment(wrap_text=True,
                                                                        vertical="top")
    last = first + len(QUESTIONNAIRE) - 1
    dv = DataValidation(type="list", formula1='"Yes,No,N/A"', allow_blank=True)
    dv.error = "Choose Yes, No or N/A"
    dv.errorTitle = "Invalid answer"
    ws.add_data_validation(dv)
    dv.add(f"C{first}:C{last}")
    ws.column_dimensions["A"].width = 10
    ws.column_dimensions["B"].width = 60
    ws.column_dimensions["C"].width = 10
    ws.column_dimensions["D"].width = 60
    ws.freeze_panes = "A3"
    buf = io.BytesIO()
    wb.save(buf)
    path.write_bytes(normalize_zip(buf.getvalue()))


# --------------------------------------------------------------------------------------------
# Zip normalisation, corrupt files
# --------------------------------------------------------------------------------------------

def normalize_zip(data):
    """Rewrites a zip package with fixed timestamps and fixed core-property dates."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                text = body.decode("utf-8")
                text = re.sub(r"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:)",
                              rf"\g<1>{FIXED_ISO}\g<3>", text)
                body = text.encode("utf-8")
            zi = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.create_system = 0
            zi.external_attr = 0
            dst.writestr(zi, body, compresslevel=9)
    return out.getvalue()


def make_corrupt_pdf(path):
    rng = random.Random(20240115)
    garbage = bytes(rng.randrange(256) for _ in range(600))
    data = (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
            b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
            b"2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n"
            b"3 0 obj\n<< /Type /Page /Parent 2 0 R /Contents 4 0 R /Length 9"
            + garbage +
            b"\nxref\n0 5\n0000000000 65535 f \n00000000")  # truncated: no trailer, no %%EOF
    path.write_bytes(data)


def make_corrupt_docx(path, valid_docx):
    data = valid_docx.read_bytes()
    path.write_bytes(data[: len(data) // 3])  # local headers survive, central directory gone


# --------------------------------------------------------------------------------------------
# labels.jsonl
# --------------------------------------------------------------------------------------------

A = {n: f"answers_{n}" for n in [
    "01-company-and-scope.md", "02-data-handling-and-privacy.md",
    "03-hosting-and-infrastructure.md", "04-access-control.md", "05-secure-development.md",
    "06-backup-and-continuity.md", "07-incident-response.md",
    "08-subprocessors-and-vendors.md", "09-devices-and-endpoints.md",
    "10-certifications-and-compliance.md", "11-ai-and-automation.md"]}
A = {k[:2]: v for k, v in A.items()}
PDF, DOCX, HTML, XLSX = ("security-policy.pdf", "employee-handbook.docx", "trust-center.html",
                         "past-answers.xlsx")

LABELS = [
    # Answer bank.
    ("Please give a short overview of your organisation and the service we would be buying.",
     [A["01"]]),
    ("In which country is your business incorporated, and what is its company number?",
     [A["01"]]),
    ("Do any freelancers or outside contractors have visibility of our data?", [A["01"]]),
    ("Do you keep credit card numbers anywhere on your own infrastructure?", [A["02"]]),
    ("Could we get a full copy of our records out of the platform, and in which format?",
     [A["02"]]),
    ("Is the service aimed at, or likely to be used by, minors?", [A["02"]]),
    ("Will the information we upload be used to train machine learning models?",
     [A["02"], A["11"]]),
    ("Are your test and development environments isolated from live systems?", [A["03"]]),
    ("What perimeter defences such as a firewall or DDoS mitigation protect the application?",
     [A["03"]]),
    ("Where do you keep API keys, database passwords and other secrets?", [A["04"]]),
    ("What length and complexity rules apply to passwords?", [A["04"]]),
    ("If one of your engineers views records inside our account, is that recorded anywhere?",
     [A["04"]]),
    ("Is your sign-in functionality written in-house or built on an established library?",
     [A["05"]]),
    ("Do you run static code analysis or other automated security testing in your build "
     "pipeline?", [A["05"]]),
    ("Have you ever actually restored production data from a backup to prove it works?",
     [A["06"]]),
    ("Do you hold cyber liability or professional indemnity cover?", [A["06"]]),
    ("What would happen to our service if your company ceased trading?", [A["06"]]),
    ("Is there a written procedure for handling security incidents?", [A["07"]]),
    ("How and how quickly would you tell us if our data were compromised?", [A["07"]]),
    ("Has your organisation suffered a data breach in recent years?", [A["07"]]),
    ("Do you evaluate the security of your own suppliers before engaging them?", [A["08"]]),
    ("Do you sell or pass our information on to other companies?", [A["08"]]),
    ("Are staff laptops managed through an MDM platform?", [A["09"]]),
    ("What antivirus or endpoint protection runs on employee computers?", [A["09"]]),
    ("Can you share a copy of your SOC 2 Type II audit report?", [A["10"]]),
    ("Would you describe your company as compliant with the GDPR?", [A["10"]]),
    ("Does your product include artificial intelligence features, and are they third-party "
     "models?", [A["11"]]),
    ("Is it possible for our tenant to switch off the AI-powered functionality?", [A["11"]]),
    # security-policy.pdf
    ("Is our data encrypted when it is stored, and with which cipher?", [PDF, XLSX, A["02"]]),
    ("How frequently are the keys that protect customer data rotated?", [PDF, XLSX]),
    ("Which protocol versions do you accept for encrypted connections to the platform?",
     [PDF, XLSX]),
    ("How long do you keep security audit logs?", [PDF, XLSX, A["07"]]),
    ("How do you control visitors to your premises, and do you use CCTV?", [PDF]),
    ("How are urgent fixes pushed to production outside the normal approval process?", [PDF]),
    ("What is your deadline for fixing a critical-severity vulnerability once it is found?",
     [PDF, A["05"]]),
    ("How long after our agreement terminates will our records be erased?",
     [PDF, XLSX, A["02"]]),
    # employee-handbook.docx
    ("How often must your workforce complete security awareness education?",
     [DOCX, XLSX, A["09"]]),
    ("Do you test employees with fake phishing emails?", [DOCX, XLSX]),
    ("Is a VPN mandatory when staff work from a cafe or hotel?", [DOCX]),
    ("Must staff clear paperwork away and lock their screens when they leave their desks?",
     [DOCX, A["09"]]),
    ("Where should an employee send a report if they suspect a security problem?", [DOCX]),
    ("What happens to an employee who breaks your security rules?", [DOCX]),
    # trust-center.html
    ("What monthly uptime percentage do you commit to contractually?", [HTML, A["03"]]),
    ("Is there a public web page where we can follow live service health and incidents?",
     [HTML]),
    ("Which third parties handle our data on your behalf?", [HTML, A["08"]]),
    ("Do you reward external researchers who report security flaws?", [HTML, XLSX]),
    ("Can our account be hosted in Germany, and does the data stay there?", [HTML, XLSX]),
    # past-answers.xlsx
    ("IAM-02: Do you review who has access to production every quarter?", [XLSX, A["04"]]),
    ("BCR-02: What recovery time objective are you prepared to commit to?", [XLSX, A["06"]]),
    ("CRY-04: Are we able to supply and control our own encryption keys?", [XLSX]),
    ("Are generic or shared admin logins used to operate your production environment?",
     [XLSX]),
    ("Do employees and contractors sign non-disclosure agreements?", [XLSX, A["09"]]),
]


README = """# KB fixtures (synthetic)

Test fixtures for knowledge-base ingest and retrieval. Every file here is synthetic: it
describes a fictional SaaS company, "Northwind Ledger", and was written for rfpq.
Licence: CC0-1.0.

All files are generated by `scripts/make-kb-fixtures.py` (the header says how to run it) and
committed; edit the script and regenerate rather than editing the files.

- `security-policy.pdf`, `employee-handbook.docx`, `trust-center.html`, `past-answers.xlsx`:
  the documents to ingest.
- `corrupt.pdf` and `corrupt.docx` are deliberately broken (a PDF header followed by garbage
  and a truncated xref; the first third of a docx, so the zip has no central directory).
  Ingest must report them and carry on.
- `labels.jsonl`: one retrieval label per line, `{"question": ..., "expected": [...]}`, where
  each expected source is a file name relative to its ingest root (this directory or
  `fixtures/answer-bank-plainanswer/`).
"""


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    make_pdf(OUT / "security-policy.pdf")
    make_docx(OUT / "employee-handbook.docx")
    (OUT / "trust-center.html").write_text(TRUST_CENTER, encoding="utf-8", newline="\n")
    make_xlsx(OUT / "past-answers.xlsx")
    make_corrupt_pdf(OUT / "corrupt.pdf")
    make_corrupt_docx(OUT / "corrupt.docx", OUT / "employee-handbook.docx")
    with open(OUT / "labels.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for question, expected in LABELS:
            f.write(json.dumps({"question": question, "expected": expected},
                               ensure_ascii=False) + "\n")
    (OUT / "README.md").write_text(README, encoding="utf-8", newline="\n")


if __name__ == "__main__":
    main()
