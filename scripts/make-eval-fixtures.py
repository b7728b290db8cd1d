#!/usr/bin/env python3
"""Writes fixtures/eval/, a labelled evaluation set for answer quality.

Run it from anywhere (stdlib + openpyxl 3.1.5, python-docx 1.2.0, fpdf2 2.8.9):

    python3 -m venv /tmp/evalfx
    /tmp/evalfx/bin/pip install openpyxl==3.1.5 python-docx==1.2.0 fpdf2==2.8.9
    /tmp/evalfx/bin/python scripts/make-eval-fixtures.py [VSAQ_BANK_DIR]

The set describes a fictional company, "Kestrel Analytics Ltd" (a small B2B SaaS), and is
answered from its own documents:

    company/                   the knowledge-base source folder: 7 company documents
                               (5 Markdown, 1 .docx, 1 .pdf) with deliberate, plainly stated
                               gaps ("We do not currently hold SOC 2 or ISO 27001 ...")
    past-questionnaire.xlsx    last year's answered questionnaire (answer-library source)
    questionnaire.xlsx         a new customer questionnaire, answer cells empty
    truth.xlsx                 the same workbook with every Answer and Comments cell filled
    truth.jsonl                one line per question row: answer, basis, source, evidence
    demo-questionnaire.xlsx    a short questionnaire the KB covers well (for `rfpq demo`)
    demo-truth.xlsx, demo-truth.jsonl
    SOURCE.md                  what each file is, licences, counts

Every row's basis is `library` (a paraphrase of a past-questionnaire question; the truth is
the past answer), `document` (a sentence in a company document decides it; that sentence is
the row's `evidence` and must occur verbatim in the document, which this script asserts) or
`silent` (no document covers it; the truth is the company's honest answer and the honest
behaviour of a filler is to abstain).

Question wording of questionnaire.xlsx comes from Google's VSAQ banks (Apache-2.0) and the
Azure review checklists (MIT), verbatim or edited into a yes/no question; a few rows use
wording written for rfpq where neither source covers a common topic. Each row's origin is in
truth.jsonl. VSAQ_BANK_DIR (default ../shared/fixtures/vsaq next to the repository) is only
used to check the VSAQ origins; the output does not depend on it. The Azure origins are
looked up in fixtures/azure-review-checklists/.

The output is byte-reproducible: fixed document dates, fixed zip entry timestamps.
"""
import datetime
import io
import json
import pathlib
import re
import sys
import zipfile

import openpyxl
from docx import Document
from docx.shared import Pt
from fpdf import FPDF
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.worksheet.datavalidation import DataValidation

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "eval"
COMPANY_DIR = OUT / "company"
AZURE_DIR = ROOT / "fixtures" / "azure-review-checklists"
VSAQ_DIR = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "fixtures" / "vsaq"
FIXED = datetime.datetime(2025, 1, 6, 9, 0, 0)
FIXED_ISO = "2025-01-06T09:00:00Z"
CHOICES = ("Yes", "No", "N/A")

# ============================================================================================
# Company documents (CC0, written for rfpq)
# ============================================================================================
# Each document is a list of (kind, text): "title", "meta", "h1", "h2", "p", or ("ul", [items]).

ISP = "information-security-policy.md"
ACS = "access-control-standard.docx"
DPR = "data-protection-and-retention-policy.md"
IRP = "incident-response-plan.pdf"
BCP = "business-continuity-and-backup-plan.md"
SDP = "secure-development-policy.md"
TRUST = "trust-page-and-subprocessors.md"

DOCS = {}

DOCS[ISP] = [
    ("title", "Kestrel Analytics Ltd - Information Security Policy"),
    ("meta", "Version 4.0, effective 6 January 2025. Owner: Head of Security. Approved by: Chief "
             "Executive Officer. Classification: Internal - may be shared with customers on request."),
    ("h1", "1. Purpose and scope"),
    ("p", "Kestrel Analytics Ltd (\"Kestrel\") builds and runs Kestrel Insight, a hosted analytics "
          "service that helps subscription e-commerce businesses understand how their shoppers "
          "order, return and churn. Our customers send us order histories and the names and "
          "email addresses of their own shoppers, so protecting that data is central to our "
          "business and to the trust customers place in us."),
    ("p", "This policy applies to all Kestrel employees, contractors and systems, including every "
          "system that stores or processes customer data. It sets the minimum rules. More detailed "
          "documents sit beneath it and must be consistent with it: the Access Control Standard, "
          "the Data Protection and Retention Policy, the Secure Development Policy, the Incident "
          "Response Plan and the Business Continuity and Backup Plan."),
    ("h1", "2. Roles and governance"),
    ("p", "The Head of Security is responsible for the information security and privacy programme "
          "and reports to the Chief Technology Officer. A Security Steering Group made up of the "
          "Chief Technology Officer, the Head of Security, the Head of Engineering and the Head of "
          "Operations meets every month to review risks, incidents and progress on the security "
          "roadmap. Engineering managers are accountable for applying this policy in the systems "
          "their teams run, and every member of staff is responsible for following it."),
    ("p", "This policy and every policy it references are reviewed at least once a year by the "
          "Head of Security and approved by the Chief Executive Officer. Policies are also updated "
          "whenever a significant change to the business, to our systems or to the threats we face "
          "makes that necessary."),
    ("h1", "3. Risk management"),
    ("p", "Kestrel carries out a formal information security risk assessment once a year, and the "
          "risk register is reviewed by the Security Steering Group every quarter. Each risk has a "
          "named owner, a treatment plan and a target date. New suppliers, new product features "
          "that handle customer data and major infrastructure changes are risk-assessed before "
          "they go live."),
    ("h1", "4. Certifications and assurance"),
    ("p", "Kestrel holds Cyber Essentials Plus certification, which is renewed every year. We do "
          "not currently hold SOC 2 or ISO 27001 certification. We intend to begin a SOC 2 Type I "
          "readiness assessment in 2025, but no audit has been scheduled yet."),
    ("p", "No independent third party audits our information security programme as a whole. The "
          "Cyber Essentials Plus assessment covers only a defined set of technical controls on our "
          "laptops and internet-facing systems. The Head of Security carries out an internal "
          "control self-assessment against this policy once a year, and the results are presented "
          "to the Security Steering Group."),
    ("h1", "5. People security"),
    ("p", "All new employees undergo pre-employment screening before they start, including identity "
          "and right-to-work checks, employment references and a basic criminal record check "
          "(DBS). All employees and contractors sign a confidentiality agreement before they are "
          "given access to any company system."),
    ("p", "Every new starter completes security awareness training in their first week, and all "
          "staff repeat it every year. Contractors and interns complete the same security "
          "awareness training as employees before they receive access to company systems. "
          "Engineers also complete annual secure coding training, described in the Secure "
          "Development Policy. We do not currently run simulated phishing campaigns."),
    ("p", "Breaches of this policy are handled through the disciplinary procedure, which can lead "
          "to dismissal. Reports of security concerns made in good faith never lead to "
          "disciplinary action against the person who made them."),
    ("h1", "6. Acceptable use"),
    ("p", "Company laptops and accounts are provided for Kestrel work. Customer data may be "
          "accessed only when it is needed for your job and only through approved tools. It must "
          "never be copied to personal devices, personal email or personal cloud storage. Copying "
          "customer data to removable media such as USB drives is prohibited. Customer data must "
          "not be pasted into public AI chat tools."),
    ("h1", "7. Endpoint security"),
    ("p", "All company laptops are Apple MacBooks running a supported version of macOS. New laptops "
          "are enrolled in Jamf, our mobile device management system, and receive our standard "
          "configuration profile, which enforces disk encryption, the firewall, screen lock after "
          "five minutes and automatic updates."),
    ("p", "FileVault full-disk encryption is enforced on every company laptop through Jamf. Jamf "
          "enforces macOS security updates within 14 days of release. Staff do not have local "
          "administrator rights on their laptops; software is installed from the Jamf Self Service "
          "catalogue. Each laptop has its own local administrator password, generated and "
          "escrowed by Jamf."),
    ("p", "Endpoint detection and response (EDR) software runs on every company laptop and reports "
          "to the security team. Endpoint data loss prevention (DLP) is not deployed. Mobile "
          "phones used for company email must have a screen lock and device encryption, which "
          "Google Workspace mobile management enforces."),
    ("h1", "8. Network security"),
    ("p", "Kestrel has no on-premises servers or data centre; all systems run in AWS or in SaaS "
          "applications. The office Wi-Fi provides internet access only; no production systems "
          "or internal services are reachable from the office network. Kestrel does not operate "
          "a corporate VPN. Internal tools are SaaS applications protected by single sign-on and "
          "multi-factor authentication, and production is reached through AWS IAM Identity "
          "Center."),
    ("p", "In AWS, security groups and network access control lists restrict traffic into and out "
          "of every production VPC. Only the load balancers sit in public subnets; application "
          "containers and databases run in private subnets with no public IP addresses. "
          "Production, staging and development run in separate AWS accounts with separate VPCs. "
          "All public endpoints are behind AWS WAF with the AWS managed core rule set enabled."),
    ("h1", "9. Logging and monitoring"),
    ("p", "Application logs, authentication events, administrative actions in the product and AWS "
          "CloudTrail events are sent to Datadog. Security and audit logs are retained for 13 "
          "months. VPC flow logs and AWS WAF logs are kept for 90 days. Engineers can read logs, "
          "but only the Head of Security can change retention settings."),
    ("p", "AWS GuardDuty monitors all AWS accounts for suspicious activity, and its high-severity "
          "findings page the on-call engineer. Datadog synthetic checks test the availability of "
          "the application and the API every minute from three locations. How alerts are handled "
          "is described in the Incident Response Plan."),
    ("h1", "10. Physical security"),
    ("p", "This section sets out the physical security requirements for the Leeds office. Our "
          "Leeds office occupies one floor of a shared, multi-tenant office building, and no "
          "customer data is stored there. Entry to the office requires a personal key fob. Key "
          "fobs are issued and withdrawn by the Office Manager, who keeps a register of every fob "
          "issued and returned. Visitors sign in at reception and are accompanied while they are "
          "in the office."),
    ("p", "The office router and switch are kept in a locked cabinet to which only the Office "
          "Manager and the IT lead have keys. Printed documents containing customer data are not "
          "allowed; any other confidential paper goes in the locked shredding bin."),
    ("h1", "11. Exceptions"),
    ("p", "Exceptions to this policy must be approved by the Head of Security, recorded in the "
          "risk register with a named owner and an expiry date, and reviewed at least every six "
          "months. An exception never permits customer data to leave the controls described in "
          "the Data Protection and Retention Policy."),
]

DOCS[ACS] = [
    ("title", "Kestrel Analytics Ltd - Access Control Standard"),
    ("meta", "Version 3.1, January 2025. Owner: Head of Security. Supports the Information Security "
             "Policy."),
    ("h1", "Purpose"),
    ("p", "This standard sets out how Kestrel grants, reviews and removes access to company systems "
          "and to customer data, and how our customers' own users sign in to Kestrel Insight. It "
          "applies to employees, contractors and every system we run or subscribe to."),
    ("h1", "Workforce identity"),
    ("p", "Google Workspace is our identity provider, and every business application that supports "
          "it is connected through single sign-on. All employee accounts require multi-factor "
          "authentication. Administrators of AWS and Google Workspace must use a FIDO2 hardware "
          "security key as their second factor."),
    ("p", "Staff must use the company password manager, 1Password, for any password that is not "
          "covered by single sign-on, and Google Workspace passwords must be at least 14 "
          "characters long. Every person has their own named account. Shared or generic accounts "
          "are not permitted; the only exceptions are the break-glass accounts described below."),
    ("p", "Kestrel does not run Microsoft Windows servers or a Windows Active Directory domain. We "
          "do not currently enforce device-based conditional access, so staff can sign in to "
          "Google Workspace from a device that is not managed by Kestrel, provided they complete "
          "multi-factor authentication."),
    ("h1", "Granting access"),
    ("p", "Access is granted on a need-to-know basis according to the person's role, must be "
          "approved by their line manager and the owner of the system, and is removed when the "
          "need no longer exists. Requests are made through the IT service desk so that every "
          "grant is recorded. Only three people hold Google Workspace super administrator rights."),
    ("h1", "Privileged access to production"),
    ("p", "Engineers reach AWS through AWS IAM Identity Center, which issues short-lived "
          "credentials after single sign-on. Nobody has standing write access to the production "
          "database; engineers request just-in-time access, which a second engineer approves and "
          "which expires after four hours."),
    ("p", "There is no SSH or RDP access to production; workloads run on AWS ECS Fargate, which has "
          "no servers for engineers to log in to. Application containers authenticate to AWS "
          "services with IAM task roles, so no long-lived AWS access keys are stored in the "
          "application."),
    ("h2", "Break-glass accounts"),
    ("p", "The AWS root account and one Google Workspace emergency administrator account are our "
          "two break-glass accounts, and their use is governed by the break-glass procedure in "
          "this standard. Their credentials and hardware keys are kept in the office safe, any "
          "use raises an alert to the Head of Security, and the credentials are rotated after "
          "each use."),
    ("h1", "Access reviews"),
    ("p", "Administrative access to AWS accounts and to the production database is reviewed every "
          "quarter by the Head of Security and the Head of Engineering. Access to other business "
          "applications is reviewed twice a year by each system owner. Permissions that are no "
          "longer needed are removed during the review, and the evidence is kept for two years."),
    ("h1", "Leavers and role changes"),
    ("p", "When someone leaves, their Google Workspace account is suspended on their last working "
          "day, which ends their access to every application connected through single sign-on. "
          "Access to systems outside single sign-on is removed within 24 hours using the leaver "
          "checklist, and the key fob and laptop are collected. When someone changes role, access "
          "they no longer need is removed within five working days."),
    ("h1", "Customer access to Kestrel Insight"),
    ("p", "Customer users sign in with an email address and password, with Google sign-in, or "
          "through SAML 2.0 single sign-on, which is available on the Enterprise plan. SCIM "
          "provisioning is not supported; customer administrators add and remove users in the "
          "workspace settings or through SAML just-in-time provisioning. Customer users can turn "
          "on time-based one-time password (TOTP) multi-factor authentication, and a workspace "
          "owner can make it mandatory for everyone in the workspace."),
    ("p", "Customer passwords must be at least 12 characters long and are checked against a list of "
          "known breached passwords. Passwords are stored as salted bcrypt hashes with a cost "
          "factor of 12. Users can change their password at any time, and password resets use a "
          "single-use link sent by email that expires after 30 minutes."),
    ("p", "Sessions in Kestrel Insight expire after 60 minutes of inactivity and after 12 hours in "
          "any case. Signing out invalidates the session on the server, not only the cookie in the "
          "browser. Session cookies are set with the Secure, HttpOnly and SameSite=Lax "
          "attributes."),
    ("p", "Kestrel Insight has four built-in roles: Owner, Admin, Analyst and Viewer. Custom roles "
          "are not supported. Kestrel support staff can view a customer's workspace only when a "
          "workspace owner grants time-limited support access from the settings page, and every "
          "such session is logged."),
]

DOCS[DPR] = [
    ("title", "Kestrel Analytics Ltd - Data Protection and Retention Policy"),
    ("meta", "Version 2.3, effective 6 January 2025. Owner: Head of Operations (privacy lead), with "
             "the Head of Security."),
    ("h1", "1. Our role"),
    ("p", "This policy sets out what data Kestrel holds, where it is stored, how it is protected, "
          "how long it is kept and how it is destroyed. For the data customers send to Kestrel "
          "Insight, Kestrel acts as a data processor and the customer is the controller. We sign a "
          "Data Processing Agreement with every customer, and we process customer data only to "
          "provide the service and on the customer's documented instructions."),
    ("p", "Kestrel has not appointed a Data Protection Officer, because it is not required to under "
          "UK GDPR; the Head of Operations acts as privacy lead. Privacy questions from customers "
          "go to privacy@kestrel-analytics.example."),
    ("h1", "2. What data we hold"),
    ("p", "Customer data consists of order histories, product catalogues and the names, email "
          "addresses and postcodes of our customers' shoppers. Kestrel Insight does not store, "
          "process or transmit payment card data. Customers are asked not to send special "
          "category data, and the ingestion API rejects fields that look like card numbers."),
    ("h1", "3. Classification"),
    ("p", "Information is classified as Public, Internal, Confidential or Customer Data. Customer "
          "Data is the highest level: it may only be held in the production environment and in "
          "the approved tools listed on our sub-processor page, and it is never stored on "
          "laptops. Confidential information, such as contracts and security reports, is shared "
          "only with the people who need it."),
    ("h1", "4. Where data is stored"),
    ("p", "All customer data is stored and processed in the AWS eu-west-1 (Ireland) region. Daily "
          "backup copies are kept in the AWS eu-central-1 (Frankfurt) region. Apart from the "
          "account contact details described in our sub-processor list, customer data does not "
          "leave the European Economic Area."),
    ("h1", "5. Encryption"),
    ("p", "All customer data is encrypted at rest with AES-256 using keys managed in AWS KMS. This "
          "covers the PostgreSQL databases, S3 buckets, backups and the storage used by our "
          "containers. Automatic rotation is enabled on every KMS key, so key material is rotated "
          "once a year."),
    ("p", "We do not operate hardware security modules of our own, such as AWS CloudHSM; all "
          "encryption keys are managed in AWS KMS. We do not offer customer-managed keys (BYOK); "
          "all encryption keys are managed by Kestrel."),
    ("p", "All connections to Kestrel Insight use TLS 1.2 or higher, and TLS 1.0 and 1.1 are "
          "disabled. The load balancers use an AWS security policy that offers only TLS 1.2 and "
          "TLS 1.3 with forward-secret cipher suites. HTTP Strict Transport Security (HSTS) is "
          "enabled on all Kestrel domains. TLS certificates are issued and stored by AWS "
          "Certificate Manager, so private keys are never held on our application servers. "
          "Connections from the application to the database require TLS, and traffic between the "
          "load balancer and application containers is also encrypted with TLS."),
    ("h1", "6. Use of customer data"),
    ("p", "Production customer data is never copied into development or test environments; tests "
          "use synthetic data. Churn forecasts are calculated separately for each customer "
          "workspace, and one customer's data is never used to train models for another "
          "customer. We do not sell customer data or use it for advertising."),
    ("p", "Customers can export all of their data at any time as CSV or Parquet files from the "
          "workspace settings. The API provides an endpoint for erasing an individual shopper's "
          "records, so customers can fulfil erasure requests from data subjects."),
    ("h1", "7. Retention and deletion"),
    ("p", "Customer data is kept for as long as the customer's subscription is active. When a "
          "subscription ends, the customer has 30 days to export their data, and all customer "
          "data is then deleted from production systems within 30 days after the end of the "
          "subscription. Backups expire after 35 days, so the last copies are gone no later than "
          "65 days after the subscription ends. A written confirmation of deletion is available "
          "on request."),
    ("p", "Other records follow their own schedules:"),
    ("ul", [
        "invoices and accounting records: six years, as UK law requires;",
        "support tickets: two years after they are closed;",
        "security and audit logs: 13 months (see the Information Security Policy);",
        "recruitment files of unsuccessful candidates: six months.",
    ]),
    ("p", "Laptops are wiped with a cryptographic erase before they are reissued or recycled. "
          "Storage media in AWS data centres are sanitised by AWS."),
    ("h1", "8. Data subject requests and breaches"),
    ("p", "We help customers answer requests from their shoppers to access, correct or erase their "
          "data, normally within five working days of the customer asking. Suspected personal "
          "data breaches are handled under the Incident Response Plan, which sets out how and "
          "when customers are told."),
]

DOCS[IRP] = [
    ("title", "Kestrel Analytics Ltd - Incident Response Plan"),
    ("meta", "Version 2.0, effective 6 January 2025. Owner: Head of Security. Approved by: Chief "
             "Technology Officer."),
    ("h1", "1. Purpose and scope"),
    ("p", "This plan describes how Kestrel detects, responds to and learns from security incidents "
          "that affect Kestrel Insight, our corporate systems or customer data. It is Kestrel's "
          "documented incident response procedure, and every engineer on the on-call rota must "
          "read it when they join the rota and after every revision."),
    ("h1", "2. Roles"),
    ("ul", [
        "Incident Commander: the on-call engineering lead, who runs the response, decides on "
        "containment and keeps the incident timeline.",
        "Security Lead: the Head of Security, who leads the investigation and decides whether "
        "personal data is affected.",
        "Communications Lead: the Head of Operations, who writes to customers and, where "
        "required, to the Information Commissioner's Office.",
    ]),
    ("p", "The Head of Security and the on-call engineers lead investigations themselves, and we "
          "have a retainer with an external incident response firm for forensic support."),
    ("h1", "3. Detection and reporting"),
    ("p", "Incidents are detected through AWS GuardDuty findings, Datadog monitors, reports from "
          "customers and reports from staff. Kestrel does not operate a security information and "
          "event management (SIEM) system; security alerts come from AWS GuardDuty and Datadog "
          "monitors. An engineer is on call around the clock through PagerDuty, and a "
          "high-severity alert must be acknowledged within 15 minutes."),
    ("p", "Staff must report anything suspicious, such as a phishing email, a lost laptop or data "
          "sent to the wrong person, to security@kestrel-analytics.example straight away. "
          "Customers and researchers can use the same address."),
    ("h1", "4. Severity levels"),
    ("ul", [
        "SEV1: customer data is exposed or the service is unavailable for all customers. All "
        "hands; updates to customers every hour.",
        "SEV2: a security control has failed or a single customer is affected. Response within "
        "one hour during working hours and within four hours otherwise.",
        "SEV3: a suspicious event with no confirmed impact. Triaged the next working day.",
    ]),
    ("h1", "5. Response steps"),
    ("p", "The Incident Commander opens an incident channel and record, then works through "
          "triage, containment, eradication and recovery. Evidence such as logs, disk snapshots "
          "and CloudTrail records is preserved before systems are changed, and every action is "
          "written into the incident timeline with the time and the person who took it."),
    ("p", "Containment options are prepared in advance in the on-call runbooks: revoking "
          "credentials in AWS IAM Identity Center, rotating secrets in AWS Secrets Manager, "
          "blocking addresses in AWS WAF, suspending a Google Workspace account and scaling a "
          "compromised service down to zero. The Incident Commander may use any of them without "
          "further approval when customer data is at risk."),
    ("h1", "6. Notification"),
    ("p", "We notify affected customers of a personal data breach without undue delay and in any "
          "case within 48 hours of confirming it. The notice describes what happened, which data "
          "is affected, what we have done and what the customer may need to do. Where Kestrel is "
          "the controller of the data, the Head of Operations notifies the Information "
          "Commissioner's Office within 72 hours when the law requires it."),
    ("h1", "7. Communication during an incident"),
    ("p", "Internal updates are posted in the incident channel at least every 30 minutes for a "
          "SEV1 and every two hours for a SEV2. Service-affecting incidents are published on "
          "status.kestrel-analytics.example. Nobody outside the response team discusses an open "
          "incident with customers, suppliers or the press unless the Communications Lead has "
          "agreed the wording."),
    ("h1", "8. After an incident"),
    ("p", "Every SEV1 and SEV2 incident has a blameless post-incident review within 10 business "
          "days. Actions from the review are tracked as tickets with owners and due dates, and "
          "the Security Steering Group checks their progress every month. All incidents are "
          "recorded in the incident register."),
    ("h1", "9. Testing and history"),
    ("p", "The plan is tested with a tabletop exercise at least once a year. The most recent "
          "exercise, in October 2024, simulated a leaked AWS access key and led to two changes in "
          "our alerting. Kestrel has not had a security breach involving customer data since the "
          "company was founded in 2019."),
]

DOCS[BCP] = [
    ("title", "Kestrel Analytics Ltd - Business Continuity and Backup Plan"),
    ("meta", "Version 1.4, effective 6 January 2025. Owner: Head of Engineering, with the Head of "
             "Operations."),
    ("h1", "1. Scope"),
    ("p", "This plan explains how Kestrel keeps Kestrel Insight available, how customer data is "
          "backed up and restored, and how the company keeps working if people, offices or "
          "suppliers become unavailable."),
    ("h1", "2. Hosting and resilience"),
    ("p", "Kestrel does not operate its own data centres; all production systems run in AWS "
          "eu-west-1 (Ireland). Physical and environmental security of the data centres is "
          "therefore the responsibility of AWS, and we rely on AWS's own SOC 2 and ISO 27001 "
          "reports for those controls."),
    ("p", "Production runs across three availability zones in eu-west-1, and the database uses "
          "Multi-AZ deployment with automatic failover. Every service runs at least three "
          "containers, one in each availability zone. For the loss of a single availability "
          "zone, the service fails over automatically within minutes and no data is lost."),
    ("h1", "3. Backups"),
    ("p", "The production database is backed up automatically every day, and point-in-time "
          "recovery lets us restore it to any moment in the last 35 days. Backups are encrypted "
          "with AES-256 and copied every day to a separate AWS backup account in eu-central-1 "
          "(Frankfurt). We do not replicate data to a second AWS region in real time; backups are "
          "copied to eu-central-1 once a day."),
    ("p", "Backups are never written to tapes, disks or other removable media. Backup frequency and "
          "retention are the same for all customers and cannot be changed per customer. Backups "
          "expire after 35 days."),
    ("h1", "4. Restore testing"),
    ("p", "A restore of the production database from backup is tested every quarter, and the "
          "result is recorded. The test restores the latest backup into an isolated account, "
          "checks row counts and checksums against production, and then deletes the copy."),
    ("h1", "5. Recovery objectives"),
    ("p", "Our recovery time objective (RTO) is 8 hours and our recovery point objective (RPO) is "
          "24 hours for the loss of the whole eu-west-1 region. We do not run a warm standby in a "
          "second AWS region; after the loss of eu-west-1 the service would be rebuilt in "
          "eu-central-1 from Terraform and backups."),
    ("h1", "6. Business continuity"),
    ("p", "All staff can work remotely, so the loss of the Leeds office does not interrupt the "
          "service or customer support. At least two engineers can perform each critical "
          "operational task, and the runbooks for those tasks are kept in the engineering "
          "handbook. If a key supplier fails, the Head of Operations leads the response using the "
          "supplier list in the trust page."),
    ("h1", "7. Roles during a disruption"),
    ("p", "The Head of Engineering leads the technical recovery and decides when to invoke the "
          "regional recovery procedure. The Head of Operations leads communication with customers "
          "and staff, and the Chief Executive Officer decides on any change to customer "
          "commitments. If the Head of Engineering is unavailable, the on-call engineering lead "
          "takes that role until they return."),
    ("h1", "8. Critical suppliers"),
    ("p", "The suppliers that Kestrel Insight cannot run without are AWS, Datadog and Postmark. "
          "For each of them we record how we would notice a failure, what the service can still "
          "do without it and how we would communicate with customers. If Postmark is unavailable, "
          "sign-in links and scheduled reports are queued for up to 24 hours. If Datadog is "
          "unavailable, the service keeps running and the on-call engineer falls back to AWS "
          "CloudWatch alarms."),
    ("h1", "9. Testing"),
    ("p", "The business continuity plan is reviewed and tested with a tabletop exercise once a "
          "year. Once a year we also rehearse disaster recovery by rebuilding the full production "
          "stack in eu-central-1 from Terraform and the latest backups; the last rehearsal, in "
          "November 2024, took 5 hours and 40 minutes."),
]

DOCS[SDP] = [
    ("title", "Kestrel Analytics Ltd - Secure Development Policy"),
    ("meta", "Version 3.0, effective 6 January 2025. Owner: Head of Engineering, with the Head of "
             "Security."),
    ("h1", "1. Scope"),
    ("p", "This policy covers how Kestrel designs, builds, tests and releases Kestrel Insight and "
          "the infrastructure it runs on. It applies to every engineer and contractor who writes "
          "or reviews code or infrastructure definitions."),
    ("h1", "2. Source control and code review"),
    ("p", "All code lives in GitHub, and the main branch of every repository is protected. Every "
          "change to production code or infrastructure is made through a pull request that must "
          "be approved by at least one other engineer before it can be merged. Authors cannot "
          "approve their own pull requests."),
    ("p", "Every change must pass the automated unit and integration test suite before it is "
          "merged. The test suite includes security tests for tenant isolation, CSRF protection "
          "and role permissions."),
    ("h1", "3. Change management"),
    ("p", "Changes are classified as standard, significant or emergency. Significant changes, such "
          "as changes to authentication, encryption or large database migrations, also need "
          "sign-off from the Head of Engineering and are announced before release. Emergency "
          "changes may be deployed by the on-call lead with one reviewer and are reviewed again "
          "within two working days."),
    ("p", "Every production deployment is recorded with its pull request, approver and time. All "
          "changes, including dependency and base-image updates, are deployed to the staging "
          "environment and pass the automated tests before they reach production."),
    ("h1", "4. Secure coding standards"),
    ("p", "The backend is written in Python with Django, and the frontend in TypeScript with React. "
          "Database access goes through the Django ORM; raw SQL is only allowed through "
          "parameterised queries, and string concatenation must never be used to build a query. "
          "All state-changing requests are protected against cross-site request forgery by the "
          "Django CSRF middleware."),
    ("p", "Every database query is scoped to the customer's workspace, and automated tests check "
          "that users of one workspace cannot read another workspace's data. All pages are served "
          "with the X-Frame-Options: DENY header and a Content Security Policy. Templates escape "
          "output automatically, and disabling escaping needs a second reviewer."),
    ("p", "Application secrets, API keys and database passwords are stored in AWS Secrets Manager "
          "and are never committed to source code. GitHub secret scanning with push protection "
          "blocks commits that contain credentials. Engineers complete secure coding training "
          "based on the OWASP Top 10 every year."),
    ("h1", "5. Security testing"),
    ("p", "Semgrep static analysis runs on every pull request, and findings of high severity block "
          "the merge. Dependabot checks third-party dependencies for known vulnerabilities every "
          "day and opens pull requests for fixes. Amazon Inspector continuously scans container "
          "images and the AWS accounts for known vulnerabilities. We do not currently run dynamic "
          "application security testing (DAST) against the application. The Head of Security "
          "performs an internal security review of every significant new feature before it is "
          "released."),
    ("p", "Kestrel has not yet commissioned a penetration test from an independent third party. The "
          "first external penetration test is planned for Q3 2025, and its executive summary will "
          "be shared with customers under a non-disclosure agreement."),
    ("h1", "6. Infrastructure and build standards"),
    ("p", "All cloud infrastructure is defined in Terraform, and every change to it goes through a "
          "reviewed pull request. Container images are built from a minimal, hardened base image "
          "maintained by the platform team, and the build standard is documented in the "
          "engineering handbook. Base images are rebuilt weekly with the latest operating system "
          "and library patches, and AWS applies patches to the managed database service in a "
          "weekly maintenance window."),
    ("h1", "7. Vulnerability management"),
    ("p", "Findings are rated using CVSS together with our own view of exposure. Critical "
          "vulnerabilities are fixed within 7 days, high within 30 days and medium within 90 "
          "days. When a critical vulnerability is published in a component we use, an emergency "
          "fix can be released the same day outside the normal release schedule."),
    ("h1", "8. Vulnerability disclosure"),
    ("p", "We publish a security.txt file and a vulnerability disclosure policy, and external "
          "researchers can report vulnerabilities to security@kestrel-analytics.example. We do "
          "not run a paid bug bounty programme. We acknowledge reports within three working days "
          "and do not take legal action against researchers who follow the policy."),
]

DOCS[TRUST] = [
    ("title", "Kestrel Analytics Ltd - Trust Page and Sub-processors"),
    ("meta", "Last updated 6 January 2025. Published at kestrel-analytics.example/trust."),
    ("p", "This trust page describes how Kestrel protects the security and privacy of the data "
          "customers entrust to us. Kestrel Insight is delivered only as a hosted service; there "
          "is no on-premises version. Security questions can be sent to "
          "security@kestrel-analytics.example."),
    ("h1", "Security at a glance"),
    ("ul", [
        "Hosting in AWS eu-west-1 (Ireland), with backups in eu-central-1 (Frankfurt).",
        "Encryption at rest with AES-256 and in transit with TLS 1.2 or higher.",
        "Single sign-on and multi-factor authentication for every Kestrel employee.",
        "Cyber Essentials Plus certified. We do not currently hold SOC 2 or ISO 27001 "
        "certification.",
        "Security policies available to customers on request.",
    ]),
    ("h1", "Data location and ownership"),
    ("p", "Customers own the data they send to Kestrel Insight, and we process it only to "
          "provide the service under the Data Processing Agreement. Customer data is stored in "
          "Ireland, and backups are kept in Germany. When a subscription ends, customers have 30 "
          "days to export their data before it is deleted."),
    ("h1", "Access to customer data"),
    ("p", "Kestrel staff do not browse customer workspaces. Support staff can see a workspace only "
          "when a workspace owner grants time-limited support access, and engineers reach "
          "production data only through approved, logged and time-limited access. Every "
          "employee is screened before joining, signs a confidentiality agreement and completes "
          "security awareness training every year."),
    ("h1", "Security documents"),
    ("p", "Under a non-disclosure agreement, customers and prospects can receive our Information "
          "Security Policy, Access Control Standard, Data Protection and Retention Policy, Secure "
          "Development Policy, Incident Response Plan, Business Continuity and Backup Plan and "
          "our Cyber Essentials Plus certificate. We are happy to complete security "
          "questionnaires, and we keep our previous answers up to date so that replies are "
          "consistent."),
    ("h1", "Availability"),
    ("p", "We commit to 99.5% monthly availability of Kestrel Insight for customers on the "
          "Enterprise plan, with service credits if we miss it. Live service health and past "
          "incidents are published at status.kestrel-analytics.example. Planned maintenance is "
          "announced at least five days in advance. Customers on the Starter and Growth plans run "
          "on exactly the same infrastructure, but their agreements do not include service "
          "credits. Our monthly availability figures for the past year are shown on the status "
          "page."),
    ("h1", "Sub-processors"),
    ("p", "These third parties process customer data on our behalf:"),
    ("ul", [
        "Amazon Web Services - hosting, databases, storage and backups - Ireland and Germany.",
        "Datadog (EU1 site) - logs and monitoring - European Union.",
        "Postmark - transactional email such as sign-in links and scheduled reports - United "
        "States.",
        "Intercom - in-app support chat - United States.",
        "Stripe - subscription billing for our customers' billing contacts - Ireland and United "
        "States.",
    ]),
    ("p", "Postmark and Intercom process the names and email addresses of customer users in the "
          "United States under Standard Contractual Clauses. Company email runs on Google "
          "Workspace, which does not receive customer data apart from support correspondence."),
    ("p", "We give customers at least 30 days' notice by email before we add a new sub-processor, "
          "so they can object. If a customer objects and we cannot address the concern, the "
          "customer may end the affected part of the service without penalty."),
    ("h1", "Supplier security"),
    ("p", "Before we engage a new supplier that will have access to customer data, the Head of "
          "Security reviews its security, including certifications such as SOC 2 or ISO 27001, "
          "and records the outcome. Every sub-processor has signed a data processing agreement "
          "that requires it to protect the security and confidentiality of customer data. "
          "Supplier reviews are repeated every year."),
    ("h1", "Reporting a vulnerability"),
    ("p", "If you believe you have found a security vulnerability in Kestrel Insight, please email "
          "security@kestrel-analytics.example with the details and the steps to reproduce it. "
          "Please do not access other customers' data or degrade the service while testing. Our "
          "vulnerability disclosure policy and security.txt file explain what we consider in "
          "scope."),
    ("h1", "Contact"),
    ("p", "Security: security@kestrel-analytics.example. Privacy: "
          "privacy@kestrel-analytics.example. Status: status.kestrel-analytics.example."),
]


def doc_texts(name):
    """The paragraphs (and list items) of a document, as written into the file."""
    out = []
    for kind, text in DOCS[name]:
        out.extend(text if kind == "ul" else [text])
    return out


def render_md(name):
    lines = []
    for kind, text in DOCS[name]:
        if kind == "title":
            lines += [f"# {text}", ""]
        elif kind == "meta":
            lines += [f"*{text}*", ""]
        elif kind == "h1":
            lines += [f"## {text}", ""]
        elif kind == "h2":
            lines += [f"### {text}", ""]
        elif kind == "p":
            lines += [text, ""]
        elif kind == "ul":
            lines += [f"- {item}" for item in text] + [""]
    return "\n".join(lines).rstrip("\n") + "\n"


def render_docx(name):
    doc = Document()
    cp = doc.core_properties
    cp.title = "Access Control Standard"
    cp.subject = "Kestrel Analytics access control standard (synthetic evaluation fixture)"
    cp.author = "Kestrel Analytics Security"
    cp.last_modified_by = "Kestrel Analytics Security"
    cp.comments = "Synthetic fixture written for rfpq, CC0"
    cp.keywords = ""
    cp.revision = 1
    cp.created = FIXED
    cp.modified = FIXED
    cp.last_printed = FIXED
    doc.styles["Normal"].font.name = "Calibri"
    doc.styles["Normal"].font.size = Pt(11)
    for kind, text in DOCS[name]:
        if kind == "title":
            doc.add_heading(text, level=0)
        elif kind == "meta":
            doc.add_paragraph(text).runs[0].italic = True
        elif kind == "h1":
            doc.add_heading(text, level=1)
        elif kind == "h2":
            doc.add_heading(text, level=2)
        elif kind == "p":
            doc.add_paragraph(text)
        elif kind == "ul":
            for item in text:
                doc.add_paragraph(item, style="List Bullet")
    buf = io.BytesIO()
    doc.save(buf)
    return normalize_zip(buf.getvalue())


class PlanPDF(FPDF):
    def footer(self):
        self.set_y(-15)
        self.set_font("Helvetica", "I", 8)
        self.cell(0, 10, f"Kestrel Analytics Ltd - Incident Response Plan v2.0 - "
                         f"Page {self.page_no()} of {{nb}}", align="C")


def render_pdf(name):
    pdf = PlanPDF(format="A4")
    pdf.set_creation_date(FIXED.replace(tzinfo=datetime.timezone.utc))
    pdf.set_title("Incident Response Plan")
    pdf.set_author("Kestrel Analytics Security")
    pdf.set_subject("Incident response plan (synthetic evaluation fixture)")
    pdf.set_creator("rfpq scripts/make-eval-fixtures.py")
    pdf.set_producer("rfpq scripts/make-eval-fixtures.py")
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(True, margin=22)
    pdf.add_page()
    for kind, text in DOCS[name]:
        if kind == "title":
            pdf.set_font("Helvetica", "B", 18)
            pdf.multi_cell(0, 9, text, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
        elif kind == "meta":
            pdf.set_font("Helvetica", "I", 10)
            pdf.multi_cell(0, 5.6, text, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
        elif kind == "h1":
            pdf.ln(2)
            pdf.set_font("Helvetica", "B", 13)
            pdf.multi_cell(0, 8, text, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1)
        elif kind == "p":
            pdf.set_font("Helvetica", "", 10.5)
            pdf.multi_cell(0, 5.6, text, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
        elif kind == "ul":
            pdf.set_font("Helvetica", "", 10.5)
            for item in text:
                pdf.set_x(26)
                pdf.multi_cell(0, 5.6, "- " + item, new_x="LMARGIN", new_y="NEXT")
                pdf.ln(1)
            pdf.ln(1)
    return bytes(pdf.output())


# ============================================================================================
# Past questionnaire (answered last year; CC0, written for rfpq)
# ============================================================================================

PAST_TITLE = "Kestrel Analytics - Customer Security Questionnaire (answered September 2024)"
PAST = [
    ("Governance", [
        ("GOV-01", "Do you have a documented information security policy that has been approved by "
                   "senior management?", "Yes",
         "Our Information Security Policy is approved by the Chief Executive Officer and reviewed "
         "at least once a year."),
        ("GOV-02", "Is a named individual responsible for information security within your "
                   "organisation?", "Yes",
         "The Head of Security is responsible for the security and privacy programme and reports "
         "to the Chief Technology Officer."),
        ("GOV-03", "Do you have a current SOC 2 Type II report?", "No",
         "We do not hold a SOC 2 report. A SOC 2 Type I readiness assessment is planned for 2025."),
        ("GOV-04", "Is your organisation certified to ISO/IEC 27001?", "No",
         "We are not ISO 27001 certified; we hold Cyber Essentials Plus."),
        ("GOV-05", "Do you hold Cyber Essentials or Cyber Essentials Plus certification?", "Yes",
         "Cyber Essentials Plus certification is renewed every year."),
        ("GOV-06", "Do you perform a formal information security risk assessment at least "
                   "annually?", "Yes",
         "A formal risk assessment is carried out every year and the risk register is reviewed "
         "quarterly by the Security Steering Group."),
        ("GOV-07", "Do you hold cyber insurance?", "Yes",
         "Kestrel holds cyber liability insurance with cover of GBP 2 million."),
    ]),
    ("Human Resources", [
        ("HR-01", "Are background checks performed on all new employees before they start?", "Yes",
         "Identity, right to work, employment references and a basic DBS criminal record check are "
         "completed before the start date."),
        ("HR-02", "Do all employees complete security awareness training at onboarding and at "
                  "least annually?", "Yes",
         "Training is completed in the first week and repeated every year by all staff."),
        ("HR-03", "Do employees and contractors sign confidentiality or non-disclosure "
                  "agreements?", "Yes",
         "All employees and contractors sign a confidentiality agreement before they get access "
         "to company systems."),
    ]),
    ("Access Control", [
        ("AC-01", "Is multi-factor authentication enforced for all employee accounts?", "Yes",
         "All staff sign in through Google Workspace single sign-on with MFA; administrators use "
         "FIDO2 hardware keys."),
        ("AC-02", "Are user access rights to production systems reviewed at least quarterly?",
         "Yes",
         "Administrative access to AWS and the production database is reviewed every quarter."),
        ("AC-03", "Is access removed within 24 hours when an employee or contractor leaves?", "Yes",
         "Google Workspace accounts are suspended on the last working day; other access is "
         "removed within 24 hours."),
        ("AC-04", "Are shared or generic accounts used to administer production systems?", "No",
         "Every administrator has a personal named account; shared accounts are not permitted."),
        ("AC-05", "Does the application support SAML-based single sign-on for customer users?",
         "Yes", "SAML 2.0 single sign-on is available on the Enterprise plan."),
        ("AC-06", "Are customer passwords stored using a salted, adaptive hashing algorithm (e.g. "
                  "bcrypt, PBKDF2)?", "Yes",
         "Customer passwords are stored as salted bcrypt hashes with a cost factor of 12."),
    ]),
    ("Cryptography", [
        ("CR-01", "Is customer data encrypted at rest?", "Yes",
         "All customer data is encrypted at rest with AES-256 using keys in AWS KMS."),
        ("CR-02", "Is TLS 1.2 or higher enforced for all data in transit over public networks?",
         "Yes", "TLS 1.0 and 1.1 are disabled; only TLS 1.2 and 1.3 are accepted."),
        ("CR-03", "Are encryption keys stored in hardware security modules (HSMs) operated by "
                  "you?", "No",
         "Keys are managed in AWS KMS; we do not operate our own HSMs such as AWS CloudHSM."),
        ("CR-04", "Can customers supply or manage their own encryption keys (BYOK)?", "No",
         "Customer-managed keys are not offered; all keys are managed by Kestrel."),
    ]),
    ("Data Protection", [
        ("DP-01", "Is customer data hosted in data centres located in the EU/EEA?", "Yes",
         "Production data is stored in AWS eu-west-1 (Ireland) and backups in eu-central-1 "
         "(Frankfurt)."),
        ("DP-02", "Is customer data deleted after termination of the contract?", "Yes",
         "Customer data is deleted from production within 30 days after the subscription ends; "
         "backups expire after a further 35 days."),
        ("DP-03", "Is production customer data used in development or test environments?", "No",
         "Production customer data is never copied into development or test environments; tests "
         "use synthetic data."),
        ("DP-04", "If you store or process payment card data, are you PCI DSS compliant?", "N/A",
         "Kestrel Insight does not store, process or transmit payment card data."),
    ]),
    ("Security Operations", [
        ("OPS-01", "Are security logs collected centrally and retained for at least 12 months?",
         "Yes", "Security and audit logs are sent to Datadog and retained for 13 months."),
        ("OPS-02", "Do you operate a SIEM with 24x7 monitoring?", "No",
         "We do not operate a SIEM; alerts come from AWS GuardDuty and Datadog monitors and page "
         "the on-call engineer."),
        ("OPS-03", "Is anti-malware or EDR software installed on all endpoints?", "Yes",
         "EDR software runs on every company laptop."),
        ("OPS-04", "Are endpoint data loss prevention (DLP) controls deployed?", "No",
         "Endpoint DLP is not deployed. Copying customer data to removable media is prohibited "
         "by policy."),
    ]),
    ("Vulnerability Management", [
        ("VM-01", "Has an independent third-party penetration test been performed in the last 12 "
                  "months?", "No",
         "No independent penetration test has been performed yet; the first is planned for Q3 "
         "2025."),
        ("VM-02", "Are vulnerability scans performed at least monthly?", "Yes",
         "Amazon Inspector continuously scans container images and the AWS accounts."),
        ("VM-03", "Do you operate a bug bounty programme?", "No",
         "We do not run a paid bug bounty; researchers can report issues under our vulnerability "
         "disclosure policy."),
        ("VM-04", "Are critical vulnerabilities remediated within 14 days?", "Yes",
         "Critical vulnerabilities are fixed within 7 days and high ones within 30 days."),
        ("SD-01", "Are all code changes peer reviewed before release to production?", "Yes",
         "Every pull request needs approval from another engineer, and authors cannot approve "
         "their own changes."),
    ]),
    ("Resilience", [
        ("BC-01", "Are backups taken at least daily and tested regularly?", "Yes",
         "The database is backed up daily with point-in-time recovery, and a restore is tested "
         "every quarter."),
        ("BC-02", "Do you have a business continuity and disaster recovery plan that is tested at "
                  "least annually?", "Yes",
         "The plan is tested every year, including a full rebuild of production in eu-central-1."),
        ("BC-03", "If backups are stored on tapes or other removable media, is that media "
                  "encrypted?", "N/A",
         "Backups are never written to tapes or other removable media."),
        ("PH-01", "Is physical access to the data centres that host customer data restricted and "
                  "logged?", "N/A",
         "We do not operate data centres; production runs in AWS, whose physical controls are "
         "covered by AWS's SOC 2 and ISO 27001 reports."),
    ]),
    ("Incident Response and Suppliers", [
        ("IR-01", "Do you have a documented incident response plan?", "Yes",
         "Our Incident Response Plan defines roles, severity levels, response steps and "
         "notification duties."),
        ("IR-02", "Will you notify customers of a security breach affecting their data within 72 "
                  "hours?", "Yes",
         "Affected customers are notified within 48 hours of confirming a personal data breach."),
        ("VEN-01", "Do you notify customers before adding or replacing a sub-processor?", "Yes",
         "Customers receive at least 30 days' notice by email before a new sub-processor is "
         "added."),
        ("VEN-02", "Do you assess the security of third-party suppliers before engaging them?",
         "Yes",
         "The Head of Security reviews each new supplier's security before it is given access to "
         "customer data."),
        ("PRD-01", "If software is installed on customer premises, are the installation packages "
                   "code-signed?", "N/A",
         "Kestrel Insight is delivered only as SaaS; there is no on-premises software."),
    ]),
]
PAST_BY_ID = {qid: (q, a, c) for _, rows in PAST for qid, q, a, c in rows}

# ============================================================================================
# Question specs for the new questionnaires
# ============================================================================================
# Origins: ("vsaq", bank, item id, "verbatim" | "edited"), ("azure", file, statement) (a
# checklist statement in column C, turned into a question), or ("rfpq",) (wording written for
# rfpq, CC0).

SEC = "security_privacy_programs.json"
WEB = "webapp.json"
INF = "infrastructure.json"
PHY = "physical_and_datacenter.json"
AZS = "security_checklist.en.xlsx"
AZD = "datasecurity_checklist.en.xlsx"
RFPQ = ("rfpq",)


def V(bank, item, mode="verbatim"):
    return ("vsaq", bank, item, mode)


def A(file, statement):
    return ("azure", file, statement)


def L(text, origin, past_id, comment=None):
    """Paraphrase of a past-questionnaire question: the truth is the past answer."""
    _, answer, past_comment = PAST_BY_ID[past_id]
    return dict(text=text, origin=origin, basis="library", source=past_id, answer=answer,
                evidence=PAST_BY_ID[past_id][0], comment=comment or past_comment)


def D(text, origin, answer, doc, evidence, comment=None):
    """Decided by one sentence (or sentence run) in a company document."""
    return dict(text=text, origin=origin, basis="document", source=doc, answer=answer,
                evidence=evidence, comment=comment or evidence)


def S(text, origin, answer, comment):
    """Not covered by any document: the company's honest answer; a filler should abstain."""
    return dict(text=text, origin=origin, basis="silent", source="", answer=answer, evidence="",
                comment=comment)


NO_DC = ("Kestrel does not operate its own data centres; all production systems run in AWS "
         "eu-west-1 (Ireland).")
NO_DC_COMMENT = ("We do not operate data centres; production runs in AWS eu-west-1, whose physical "
                 "and environmental controls are covered by AWS's SOC 2 and ISO 27001 reports.")

MAIN_TITLE = "Harbour Retail Group - Vendor Security Assessment"
MAIN_INSTRUCTIONS = ("Please answer every question in column C by choosing Yes, No or N/A from the "
                     "list, and give a short explanation or evidence in column D. Use N/A only "
                     "where the control cannot apply to your service, and say why. Return the "
                     "completed file to your Harbour Retail Group procurement contact.")
MAIN_SHEET = "Vendor Assessment"
MAIN = [
    ("Governance and Compliance", [
        L("Has your company selected an individual or team to be responsible for managing the "
          "information security and privacy program?", V(SEC, "secprog_team"), "GOV-02"),
        D("Does your company review its security and privacy policies at least annually to ensure "
          "they are up to date?", V(SEC, "secprog_policies_review", "edited"), "Yes", ISP,
          "This policy and every policy it references are reviewed at least once a year by the "
          "Head of Security and approved by the Chief Executive Officer.",
          "All security policies are reviewed at least once a year by the Head of Security and "
          "approved by the Chief Executive Officer."),
        L("Is your security program certified against ISO 27001 or a comparable information "
          "security management standard?", V(SEC, "secprog_standard", "edited"), "GOV-04"),
        L("Do you have a current independent SSAE 16 / SOC 2 audit report?",
          V(SEC, "secprog_standard", "edited"), "GOV-03"),
        D("Does an independent third party perform audits of your security and privacy program? "
          "(Note: this should not include penetration tests or other technical assessments; "
          "rather, it refers to security reviews of your organizational processes, procedures, and "
          "policies.)", V(SEC, "secprog_extaudits", "edited"), "No", ISP,
          "No independent third party audits our information security programme as a whole.",
          "No independent third party audits our security programme as a whole; the annual Cyber "
          "Essentials Plus assessment covers only a set of technical controls."),
        D("Do you publish an external policy or notice to the public, users, or customers, "
          "describing how you protect the security and privacy of data?",
          V(SEC, "secprog_privacy_policy", "edited"), "Yes", TRUST,
          "This trust page describes how Kestrel protects the security and privacy of the data "
          "customers entrust to us.",
          "Our public trust page describes how we protect the security and privacy of customer "
          "data; security policies are available under NDA."),
        S("Do you have written job descriptions for employees with access to confidential or "
          "sensitive information?", V(SEC, "secprog_peopleops_jobdesc"), "Yes",
          "Every role has a written job description, agreed at hiring and updated when the role "
          "changes."),
        L("Do you hold cyber liability insurance?", RFPQ, "GOV-07"),
    ]),
    ("Human Resources Security", [
        L("Do you perform background checks for personnel who are entrusted with sensitive "
          "information or granted access to sensitive systems?",
          V(SEC, "secprog_background_checks"), "HR-01"),
        D("Do you require temps, interns, and contractors to undergo security and privacy "
          "training?", V(SEC, "secprog_train_tvc"), "Yes", ISP,
          "Contractors and interns complete the same security awareness training as employees "
          "before they receive access to company systems."),
        D("Do you have a disciplinary process in place for handling policy violations?",
          V(SEC, "secprog_peopleops_disciplinary_process"), "Yes", ISP,
          "Breaches of this policy are handled through the disciplinary procedure, which can lead "
          "to dismissal.",
          "Breaches of the Information Security Policy are handled through the disciplinary "
          "procedure, which can lead to dismissal."),
        D("Do you test your staff with simulated phishing campaigns?", RFPQ, "No", ISP,
          "We do not currently run simulated phishing campaigns."),
    ]),
    ("Identity and Access Management", [
        L("Is multi-factor authentication (MFA) enabled for all users in your organisation?",
          A(AZS, "Access Controls:  MFA enabled for all users"), "AC-01"),
        D("Have you enabled single sign-on for your workforce applications?",
          A(AZS, "Enable single sign-on"), "Yes", ACS,
          "Google Workspace is our identity provider, and every business application that "
          "supports it is connected through single sign-on."),
        L("Do you have processes in place to make sure access (both physical and logical) is "
          "revoked when an employee, intern, vendor, contractor, or other associate leaves the "
          "company or a contract ends?", V(SEC, "secprog_peopleops_leaver", "edited"), "AC-03"),
        D("Do you have processes in place to ensure that access to data is granted solely on a "
          "\"need-to-know\" basis, in accordance with the job descriptions and responsibilities of "
          "users? Do these processes also revoke access when the need no longer exists?",
          V(SEC, "secprog_peopleops_needtoknow"), "Yes", ACS,
          "Access is granted on a need-to-know basis according to the person's role, must be "
          "approved by their line manager and the owner of the system, and is removed when the "
          "need no longer exists."),
        D("Do you implement just-in-time (JIT) access to lower the exposure time for privileged "
          "accounts and reduce standing access?",
          A(AZS, "Implement 'just in time' (JIT) access to further lower the exposure time for "
                 "privileged accounts (reduce standing access)"), "Yes", ACS,
          "Nobody has standing write access to the production database; engineers request "
          "just-in-time access, which a second engineer approves and which expires after four "
          "hours."),
        D("Have at least two break-glass accounts been created, and does a policy around their "
          "use exist?",
          A(AZS, "At least two break glass accounts have been created and policy around their use "
                 "exists"), "Yes", ACS,
          "The AWS root account and one Google Workspace emergency administrator account are our "
          "two break-glass accounts, and their use is governed by the break-glass procedure in "
          "this standard."),
        D("Do you require devices to be marked as compliant before they can access company "
          "resources?", A(AZS, "Access Controls: Require devices to be marked as compliant"), "No",
          ACS,
          "We do not currently enforce device-based conditional access, so staff can sign in to "
          "Google Workspace from a device that is not managed by Kestrel, provided they complete "
          "multi-factor authentication."),
        L("Do administrators share a common login when they manage production systems?", RFPQ,
          "AC-04"),
        D("Do your Windows domain administrators have separate accounts with lower privileges "
          "that they use for day-to-day tasks?", V(INF, "servers_admin_windows_da_accounts"),
          "N/A", ACS,
          "Kestrel does not run Microsoft Windows servers or a Windows Active Directory domain."),
        S("Is there a policy to track guest user accounts (usage, deletion, disabling)?",
          A(AZS, "Is there a policy to track guest user accounts (i.e. usage/delete/disable)?"),
          "No", "We have no written policy for guest accounts; guest access is rarely used."),
        S("Are ordinary users prevented from registering applications in your identity "
          "directory?", A(AZS, "Disable 'Users can register applications'"), "No",
          "Users can authorise third-party applications with their Google account; this is not "
          "restricted today."),
        S("Are only validated domains registered in your identity directory?",
          A(AZS, "Only validated customer domains are registered"), "Yes",
          "Our Google Workspace tenant contains only our own verified domain."),
    ]),
    ("Application Security", [
        L("Is your application integrated with SAML 2.0 single sign-on?",
          V(WEB, "application_authentication_sso_saml", "edited"), "AC-05"),
        L("Does the application store passwords only as salted hashes produced by a slow "
          "key-derivation function such as PBKDF2 or bcrypt?",
          V(WEB, "application_custom_auth_storage", "edited"), "AC-06"),
        D("Does the application enforce minimum password security requirements (e.g., a certain "
          "length, character classes, etc.)?", V(WEB, "application_custom_auth_pwdreq"), "Yes",
          ACS,
          "Customer passwords must be at least 12 characters long and are checked against a list "
          "of known breached passwords."),
        D("Do sessions automatically time out after a specified period of inactivity?",
          V(WEB, "application_auth_cookies_timeout"), "Yes", ACS,
          "Sessions in Kestrel Insight expire after 60 minutes of inactivity and after 12 hours in "
          "any case."),
        D("Does your application protect all state-changing actions against XSRF?",
          V(WEB, "application_authz_xsrf"), "Yes", SDP,
          "All state-changing requests are protected against cross-site request forgery by the "
          "Django CSRF middleware."),
        D("Do you take special steps (policies, code reviews, audits, etc.) to ensure that "
          "prepared statements are used consistently, and that string concatenation is never used "
          "to construct database queries?", V(WEB, "application_sqli_prepared_consistent"), "Yes",
          SDP,
          "Database access goes through the Django ORM; raw SQL is only allowed through "
          "parameterised queries, and string concatenation must never be used to build a query."),
        D("Horizontal access control: does the application ensure isolation between users of the "
          "same role, so that the users of one customer cannot access another customer's data?",
          V(WEB, "application_authz_horizontal", "edited"), "Yes", SDP,
          "Every database query is scoped to the customer's workspace, and automated tests check "
          "that users of one workspace cannot read another workspace's data."),
        D("Does the application use the X-Frame-Options response header to tell the browser not "
          "to render pages that are framed from a different origin?",
          V(WEB, "application_authz_clickjacking", "edited"), "Yes", SDP,
          "All pages are served with the X-Frame-Options: DENY header and a Content Security "
          "Policy."),
        D("Can customer users enable multi-factor authentication when they sign in to your "
          "application?",
          A(AZD, "Configure single sign-on and unified login. Enable multi-factor authentication."),
          "Yes", ACS,
          "Customer users can turn on time-based one-time password (TOTP) multi-factor "
          "authentication, and a workspace owner can make it mandatory for everyone in the "
          "workspace."),
        D("Do you support SCIM synchronization of users and groups?",
          A(AZD, "SCIM synchronization of users and groups."), "No", ACS,
          "SCIM provisioning is not supported; customer administrators add and remove users in "
          "the workspace settings or through SAML just-in-time provisioning."),
        L("Are the installation packages of any software you provide for use on our premises "
          "digitally signed?", RFPQ, "PRD-01"),
        S("Does the application use a secure cryptographic pseudo random number generator (PRNG) "
          "to generate session IDs?", V(WEB, "application_auth_cookies_prng", "edited"), "Yes",
          "Session IDs are generated by Django's session framework from the operating system's "
          "cryptographic random number generator."),
        S("Does the application set a valid and appropriate content type and character set for "
          "each page (in the Content-Type HTTP header)?",
          V(WEB, "application_xss_content_type", "edited"), "Yes",
          "Every response sets Content-Type with a UTF-8 character set."),
        S("Do your engineers and your QA team look for potential security issues during release "
          "testing, and have they been trained to do so?",
          V(WEB, "application_testing_qa_security"),
          "No", "We have no separate QA team, and release testing does not include a dedicated "
                "security check."),
    ]),
    ("Data Protection and Encryption", [
        L("Is encryption of data at rest enabled by default?",
          A(AZD, "Enable data at rest encryption by default"), "CR-01"),
        L("Can customers use a customer-managed key option for data at rest encryption when they "
          "require it?",
          A(AZD, "Use customer-managed key option in data at rest encryption when required"),
          "CR-04"),
        L("Are your encryption keys generated and held in dedicated hardware security modules "
          "(HSMs) that you operate?", RFPQ, "CR-03"),
        D("Do you rotate encryption keys periodically?",
          A(AZD, "Regenerate/rotate keys if using them periodically"), "Yes", DPR,
          "Automatic rotation is enabled on every KMS key, so key material is rotated once a "
          "year."),
        D("Do you store passwords, secrets and keys in a dedicated key vault or secrets manager?",
          A(AZD, "Store passwords, secerts and keys in Azure key vault"), "Yes", SDP,
          "Application secrets, API keys and database passwords are stored in AWS Secrets Manager "
          "and are never committed to source code."),
        L("Are all data centers that store our data located in the European Union?",
          V(PHY, "dc_countries", "edited"), "DP-01"),
        L("Is live customer data ever copied into non-production environments such as "
          "development or testing?", RFPQ, "DP-03"),
        L("If you process payment card data, is that processing compliant with PCI DSS?",
          V(SEC, "secprog_standard", "edited"), "DP-04"),
        D("Have you appointed a Data Protection Officer (DPO)?", RFPQ, "No", DPR,
          "Kestrel has not appointed a Data Protection Officer, because it is not required to "
          "under UK GDPR; the Head of Operations acts as privacy lead."),
        D("Can customers export all of their data in a machine-readable format?", RFPQ, "Yes",
          DPR,
          "Customers can export all of their data at any time as CSV or Parquet files from the "
          "workspace settings."),
        D("Is our data used to train machine-learning models that serve other customers?", RFPQ,
          "No", DPR,
          "Churn forecasts are calculated separately for each customer workspace, and one "
          "customer's data is never used to train models for another customer."),
        S("Do you implement row-level security, column-level security and data masking on your "
          "SQL workloads?",
          A(AZD, "Implement RLS, CLS and data masking on sql workloads in dedicated sql pool to "
                 "add additional layer of security"), "No",
          "Tenant isolation is enforced in the application; we do not use database row-level "
          "security or data masking."),
    ]),
    ("Infrastructure and Network Security", [
        D("Firewalls are a basic network security control. Does your company use firewalls to "
          "restrict traffic into and out of your network at strategic points?",
          V(INF, "network_firewalls"), "Yes", ISP,
          "In AWS, security groups and network access control lists restrict traffic into and out "
          "of every production VPC."),
        D("Does your company implement a network zoning concept that separates systems by "
          "function, value, and risk level?", V(INF, "network_separation"), "Yes", ISP,
          "Production, staging and development run in separate AWS accounts with separate VPCs."),
        D("Do you operate wireless networks that allow access to private aspects of your "
          "infrastructure (i.e., Wi-Fi networks, excluding networks that only allow guests access "
          "to the Internet)?", V(INF, "network_wifi"), "No", ISP,
          "The office Wi-Fi provides internet access only; no production systems or internal "
          "services are reachable from the office network."),
        D("Do you operate a VPN that allows remote access to your network?",
          V(INF, "network_vpn"), "No", ISP, "Kestrel does not operate a corporate VPN.",
          "Kestrel does not operate a corporate VPN; internal tools are SaaS applications behind "
          "SSO and MFA."),
        D("Are all external-facing web services behind a web application firewall (WAF)?",
          A(AZS, "AppGW All external facing web services are behind Application Gateways with WAF "
                 "enabled"), "Yes", ISP,
          "All public endpoints are behind AWS WAF with the AWS managed core rule set enabled."),
        D("Is direct login to servers over RDP or SSH from the internet disabled?",
          A(AZS, "Remove direct logging into servers using RDP/SSH from internet and implement "
                 "VPN or express route"), "Yes", ACS,
          "There is no SSH or RDP access to production; workloads run on AWS ECS Fargate, which "
          "has no servers for engineers to log in to."),
        D("Do you use ExpressRoute or a VPN to reach your cloud resources from on-premises "
          "environments?",
          A(AZS, "Use ExpressRoute or VPN to access Azure resources from on-premises "
                 "environments"), "N/A", ISP,
          "Kestrel has no on-premises servers or data centre; all systems run in AWS or in SaaS "
          "applications."),
        D("Do the Windows images you deploy to servers have the most recent level of updates?",
          A(AZS, "Ensure Windows images for deployment have the most recent level of updates"),
          "N/A", ACS,
          "Kestrel does not run Microsoft Windows servers or a Windows Active Directory domain."),
        D("Do you have a process for installing operating system and application updates and "
          "security patches on servers?", V(INF, "servers_patching"), "Yes", SDP,
          "Base images are rebuilt weekly with the latest operating system and library patches, "
          "and AWS applies patches to the managed database service in a weekly maintenance "
          "window."),
        S("Do you use Domain-based Message Authentication, Reporting and Conformance (DMARC) to "
          "protect the email domains you own against spoofed or forged emails?",
          V(INF, "email_security_dmarc", "edited"), "No",
          "SPF and DKIM are configured for our domain; a DMARC policy has not been published yet."),
        S("Do you publish a restricted Sender Policy Framework (SPF) policy for the email domains "
          "you own, allowing the fewest hosts possible with a SOFTFAIL or FAIL default?",
          V(INF, "email_security_spf_policy", "edited"), "Yes",
          "Our SPF record allows only Google Workspace and Postmark, with a hard fail (-all) "
          "default."),
        S("Does your outbound email infrastructure use Opportunistic TLS (STARTTLS) to request "
          "remote servers upgrade to an encrypted connection?",
          V(INF, "servers_email_outbound_starttls"), "Yes",
          "Company email runs on Google Workspace, which uses STARTTLS for outbound mail."),
        S("Does your inbound email infrastructure support Transport Layer Security (TLS) 1.2 with "
          "cipher suites with forward secrecy (e.g. ECDHE)?",
          V(INF, "servers_email_inbound_tls"), "Yes",
          "Inbound mail is received by Google Workspace, which supports TLS 1.2 with ECDHE cipher "
          "suites."),
        S("Do you have a written set of guidelines for the configuration, maintenance, and use of "
          "your network?", V(INF, "network_config_guidelines", "edited"), "No",
          "Network configuration is defined in Terraform, but there are no separate written "
          "network guidelines."),
    ]),
    ("Endpoint Security", [
        L("Do you have controls in place to protect client systems from malware?",
          V(INF, "clients_av"), "OPS-03"),
        D("Do you fully encrypt the hard disks of laptops and other portable client devices?",
          V(INF, "clients_laptops_hd_encrypted"), "Yes", ISP,
          "FileVault full-disk encryption is enforced on every company laptop through Jamf."),
        D("Do all clients use the same local administrator/root password?",
          V(INF, "clients_admin_samepassword"), "No", ISP,
          "Each laptop has its own local administrator password, generated and escrowed by Jamf."),
        D("Do regular users work without administrator rights on their workstations and laptops?",
          V(INF, "clients_admin_restricted", "edited"), "Yes", ISP,
          "Staff do not have local administrator rights on their laptops; software is installed "
          "from the Jamf Self Service catalogue."),
        L("Have you enabled data exfiltration protection, such as endpoint data loss prevention "
          "(DLP), on employee devices?", A(AZD, "Enable Data Exfiltration Protection (DEP)"),
          "OPS-04"),
        S("Do you retain client system security event logs for at least three months?",
          V(INF, "clients_logging_retention"), "No",
          "Laptop security events are kept by the EDR tool for 30 days."),
        S("Do you review and/or audit the standard builds that form the basis of your client "
          "fleet, to ensure that they conform to your security policies and requirements?",
          V(INF, "clients_standardbuild_audit"), "No",
          "The Jamf configuration profile is not audited on a schedule."),
    ]),
    ("Logging, Monitoring and Incident Response", [
        L("Do you retain security event logs for at least six months, and do you monitor them "
          "regularly?", V(INF, "servers_logging_retention"), "OPS-01"),
        D("Are your systems configured to log security-relevant events, such as authentication, "
          "data access, etc.?", V(INF, "servers_logging"), "Yes", ISP,
          "Application logs, authentication events, administrative actions in the product and "
          "AWS CloudTrail events are sent to Datadog."),
        D("Do you retain logs produced by networking devices (such as firewalls, routers, DNS "
          "servers, DHCP servers, etc.) for at least six months, and do you monitor them "
          "regularly?", V(INF, "network_monitoring_logging"), "No", ISP,
          "VPC flow logs and AWS WAF logs are kept for 90 days.",
          "Network logs (VPC flow logs and AWS WAF logs) are kept for 90 days, which is less than "
          "six months."),
        L("Do you have a SIEM (such as Microsoft Sentinel) enabled and monitoring all of your "
          "environments?",
          A(AZS, "All tenants contain have Sentinel enabled on at least one Log Analytics "
                 "workspace"), "OPS-02"),
        D("Do you monitor your network for security events?", V(INF, "network_monitoring_security"),
          "Yes", ISP,
          "AWS GuardDuty monitors all AWS accounts for suspicious activity, and its high-severity "
          "findings page the on-call engineer."),
        L("Do you inform affected customers about security incidents?",
          V(SEC, "secprog_incidents_inform"), "IR-02"),
        D("Do you have the resources to internally conduct incident investigations?",
          V(SEC, "secprog_incidents_knowhow"), "Yes", IRP,
          "The Head of Security and the on-call engineers lead investigations themselves, and we "
          "have a retainer with an external incident response firm for forensic support."),
        D("Is your incident response plan tested at least once a year?", RFPQ, "Yes", IRP,
          "The plan is tested with a tabletop exercise at least once a year.",
          "The incident response plan is tested with a tabletop exercise at least once a year; "
          "the last one was in October 2024."),
        D("Have you had a security breach involving customer data in the last three years?", RFPQ,
          "No", IRP,
          "Kestrel has not had a security breach involving customer data since the company was "
          "founded in 2019."),
        S("Have you configured user and entity behaviour analytics (UEBA)?",
          A(AZS, "UEBA Configured (Sentinel/Settings/Settings/Configure UEBA)"), "No",
          "We do not use UEBA tooling."),
    ]),
    ("Vulnerability Management and Secure Development", [
        L("Does an independent third party regularly perform penetration tests on all systems "
          "used to provide services to customers?", V(INF, "testing_pentests"), "VM-01"),
        D("Are you willing to share a management summary of the most recent penetration testing "
          "reports?", V(INF, "testing_pentests_sharesummary"), "N/A", SDP,
          "Kestrel has not yet commissioned a penetration test from an independent third party.",
          "No third-party penetration test has been performed yet, so there is no report; the "
          "first test is planned for Q3 2025 and its summary will be shared under NDA."),
        L("Are all of the systems used in this project scanned for host-level vulnerabilities? "
          "(Note: This question does not refer to anti-malware scans. Instead, it refers to scans "
          "that look for known vulnerabilities and misconfiguration of the software running on "
          "servers.)", V(INF, "testing_scans"), "VM-02"),
        L("Do you pay rewards to external researchers who report security vulnerabilities (a bug "
          "bounty)?", RFPQ, "VM-03"),
        D("Do you have an easily discoverable way for external researchers to report security "
          "vulnerabilities in your systems?", V(WEB, "application_vm_securitycontact"), "Yes", SDP,
          "We publish a security.txt file and a vulnerability disclosure policy, and external "
          "researchers can report vulnerabilities to security@kestrel-analytics.example."),
        D("Is static application security testing (SAST) run automatically on code changes?",
          RFPQ, "Yes", SDP,
          "Semgrep static analysis runs on every pull request, and findings of high severity "
          "block the merge."),
        D("Do you perform black-box (dynamic) security testing of software developed internally?",
          V(INF, "testing_inhouse_blackbox", "edited"), "No", SDP,
          "We do not currently run dynamic application security testing (DAST) against the "
          "application."),
        L("Are critical vulnerabilities remediated within two weeks of discovery?", RFPQ, "VM-04"),
        L("Is every code change reviewed and approved by a second person before it is deployed?",
          RFPQ, "SD-01"),
        D("Is your change management process formally documented, and does it classify changes "
          "by impact and size?", V(SEC, "secprog_changemgmt_documented"), "Yes", SDP,
          "Changes are classified as standard, significant or emergency.",
          "The Secure Development Policy documents change management; changes are classified as "
          "standard, significant or emergency."),
        S("Does your change review board include representatives from the teams that are "
          "responsible for security and privacy?", V(SEC, "secprog_changemgmt_secrep"), "No",
          "We do not have a change review board; changes are approved in pull requests."),
    ]),
    ("Business Continuity and Backup", [
        L("Do you regularly test your backups?", V(INF, "servers_backup_test"), "BC-01"),
        D("Do you sync data to a different region in near real time?",
          V(INF, "servers_backup_dcsync", "edited"), "No", BCP,
          "We do not replicate data to a second AWS region in real time; backups are copied to "
          "eu-central-1 once a day."),
        D("Do you store backups on disks, tapes, or other kinds of removable media?",
          V(INF, "servers_backup_media"), "No", BCP,
          "Backups are never written to tapes, disks or other removable media."),
        L("Are the backups that are stored on removable media (e.g., disks, tapes, etc.) "
          "encrypted?", V(INF, "servers_backup_media_encryption"), "BC-03"),
        D("Do you store backup media in an off-site facility that is protected against potential "
          "disaster?", V(INF, "servers_backup_media_offsite"), "N/A", BCP,
          "Backups are never written to tapes, disks or other removable media.",
          "There is no backup media: backups are never written to removable media; they are "
          "copied daily to a separate AWS account in eu-central-1."),
        D("Do you deploy your workloads across multiple availability zones?",
          A(AZS, "Availability Zones"), "Yes", BCP,
          "Production runs across three availability zones in eu-west-1, and the database uses "
          "Multi-AZ deployment with automatic failover."),
    ]),
    ("Physical Security", [
        D("Do you use Google Cloud, Amazon Web Services, or a similar outsourced, "
          "virtual-machine-based data center?", V(PHY, "dc_outsourced"), "Yes", BCP, NO_DC,
          "All production systems run in AWS eu-west-1 (Ireland); we do not operate data centres "
          "of our own."),
        D("Do you have a written policy that lists the physical security requirements for office "
          "facilities?", V(PHY, "office_policy"), "Yes", ISP,
          "This section sets out the physical security requirements for the Leeds office.",
          "The Information Security Policy sets out the physical security requirements for our "
          "Leeds office."),
        S("Are physical entry logs for your offices kept for at least six months?",
          V(PHY, "office_acclogs", "edited"), "No",
          "The building's fob system is run by the landlord; we do not keep entry logs ourselves."),
        S("Does your company review the physical and environmental risks that your office "
          "facilities are exposed to, and do you have procedures in place to evaluate and, if "
          "necessary, address them?", V(PHY, "office_ra"), "No",
          "No separate physical risk review is done for the office."),
        D("Do you have a written policy that lists the physical security requirements for data "
          "centers?", V(PHY, "dc_policy"), "N/A", BCP, NO_DC, NO_DC_COMMENT),
        L("Do you have an auditable process in place for granting and revoking physical access to "
          "data centers?", V(PHY, "dc_access"), "PH-01"),
        D("Do all data centers have monitoring and alerting in place for power supply, HVAC, and "
          "temperature?", V(PHY, "dc_monitoring"), "N/A", BCP, NO_DC, NO_DC_COMMENT),
        D("Are physical entry logs for your data centers kept for at least six months?",
          V(PHY, "dc_acclogs", "edited"), "N/A", BCP, NO_DC, NO_DC_COMMENT),
        D("Does your company review the physical and environmental risks that your data centers "
          "are exposed to, and do you have procedures in place to evaluate and, if necessary, "
          "address them?", V(PHY, "dc_ra"), "N/A", BCP, NO_DC, NO_DC_COMMENT),
    ]),
    ("Third-Party Management", [
        D("Do your written contracts with relevant third parties require them to adequately "
          "protect the privacy and security of all confidential information they may get access "
          "to during the partnership?", V(SEC, "secprog_vendorsec_clauses"), "Yes", TRUST,
          "Every sub-processor has signed a data processing agreement that requires it to protect "
          "the security and confidentiality of customer data."),
        L("Will you give us advance notice before adding a new sub-processor?", RFPQ, "VEN-01"),
        D("Is any of our data processed by sub-processors outside the European Economic Area?",
          RFPQ, "Yes", TRUST,
          "Postmark and Intercom process the names and email addresses of customer users in the "
          "United States under Standard Contractual Clauses."),
        S("Do you perform on-site audits of your key suppliers?", RFPQ, "No",
          "Supplier reviews are done remotely from their certifications and contracts."),
    ]),
]

DEMO_TITLE = "Brightwater Foods - Supplier Security Questionnaire"
DEMO_INSTRUCTIONS = ("Please select Yes, No or N/A for each question in the Answer column and add "
                     "a brief comment. If a question does not apply to your service, choose N/A "
                     "and explain why in the Comments column.")
DEMO_SHEET = "Security Questionnaire"
DEMO = [
    ("Company and Compliance", [
        L("Do you have an information security policy that is approved by management?", RFPQ,
          "GOV-01"),
        L("Is there a named individual who is responsible for information security at your "
          "company?", RFPQ, "GOV-02"),
        L("Do you perform a formal information security risk assessment at least once a year?",
          RFPQ, "GOV-06"),
        L("Do you have a current SOC 2 Type II report?", RFPQ, "GOV-03"),
        L("Are you ISO 27001 certified?", RFPQ, "GOV-04"),
        L("Do you hold Cyber Essentials Plus certification?", RFPQ, "GOV-05"),
        D("Are your security policies reviewed at least once a year?", RFPQ, "Yes", ISP,
          "This policy and every policy it references are reviewed at least once a year by the "
          "Head of Security and approved by the Chief Executive Officer.",
          "All security policies are reviewed at least once a year by the Head of Security and "
          "approved by the Chief Executive Officer."),
        L("Do you have cyber insurance cover?", RFPQ, "GOV-07"),
    ]),
    ("People", [
        L("Do you carry out background checks on new employees before they start?", RFPQ,
          "HR-01"),
        L("Does all staff complete security awareness training when they join and at least "
          "annually?", RFPQ, "HR-02"),
        L("Do employees and contractors sign a confidentiality or non-disclosure agreement?",
          RFPQ, "HR-03"),
        D("Do you run phishing simulations for your staff?", RFPQ, "No", ISP,
          "We do not currently run simulated phishing campaigns."),
    ]),
    ("Access Control", [
        L("Is multi-factor authentication enforced on all employee accounts?", RFPQ, "AC-01"),
        L("Do you review access to production systems at least every quarter?", RFPQ, "AC-02"),
        L("When an employee or contractor leaves, is their access removed within 24 hours?",
          RFPQ, "AC-03"),
        L("Do your engineers use shared admin accounts on production?", RFPQ, "AC-04"),
        L("Can our users log in with SAML single sign-on?", RFPQ, "AC-05"),
        L("Are our users' passwords stored with a salted, adaptive hashing algorithm such as "
          "bcrypt or PBKDF2?", RFPQ, "AC-06"),
        D("Can our administrators make MFA mandatory for all users in our account?", RFPQ, "Yes",
          ACS,
          "Customer users can turn on time-based one-time password (TOTP) multi-factor "
          "authentication, and a workspace owner can make it mandatory for everyone in the "
          "workspace."),
        D("Is SCIM user provisioning supported?", RFPQ, "No", ACS,
          "SCIM provisioning is not supported; customer administrators add and remove users in "
          "the workspace settings or through SAML just-in-time provisioning."),
        D("Do user sessions time out after a period of inactivity?", RFPQ, "Yes", ACS,
          "Sessions in Kestrel Insight expire after 60 minutes of inactivity and after 12 hours in "
          "any case."),
        D("Do staff have local administrator rights on their laptops?", RFPQ, "No", ISP,
          "Staff do not have local administrator rights on their laptops; software is installed "
          "from the Jamf Self Service catalogue."),
    ]),
    ("Data Protection", [
        L("Is our data encrypted at rest?", RFPQ, "CR-01"),
        L("Do you enforce TLS 1.2 or higher for all data in transit over public networks?", RFPQ,
          "CR-02"),
        L("Can we manage our own encryption keys (BYOK)?", RFPQ, "CR-04"),
        L("Do you store encryption keys in hardware security modules (HSMs) that you operate "
          "yourselves?", RFPQ, "CR-03"),
        L("Will our data be hosted in the EU?", RFPQ, "DP-01"),
        L("Is customer data deleted after termination of the contract?", RFPQ, "DP-02"),
        D("Can we export all our data in a machine-readable format?", RFPQ, "Yes", DPR,
          "Customers can export all of their data at any time as CSV or Parquet files from the "
          "workspace settings."),
        L("Do you use production customer data in test or development environments?", RFPQ,
          "DP-03"),
        D("Have you appointed a Data Protection Officer?", RFPQ, "No", DPR,
          "Kestrel has not appointed a Data Protection Officer, because it is not required to "
          "under UK GDPR; the Head of Operations acts as privacy lead."),
        L("If you process card payments for us, are you PCI DSS compliant?", RFPQ, "DP-04"),
        D("Are secrets such as API keys stored in a secrets manager rather than in source code?",
          RFPQ, "Yes", SDP,
          "Application secrets, API keys and database passwords are stored in AWS Secrets Manager "
          "and are never committed to source code."),
    ]),
    ("Security Operations", [
        L("Do you operate a SIEM with 24x7 monitoring?", RFPQ, "OPS-02"),
        L("Do you collect security logs centrally and retain them for at least 12 months?", RFPQ,
          "OPS-01"),
        L("Is endpoint data loss prevention (DLP) deployed?", RFPQ, "OPS-04"),
        L("Do all your endpoints have anti-malware or EDR software installed?", RFPQ, "OPS-03"),
        D("Are company laptops protected with full-disk encryption?", RFPQ, "Yes", ISP,
          "FileVault full-disk encryption is enforced on every company laptop through Jamf."),
        D("Is a web application firewall in front of the service?", RFPQ, "Yes", ISP,
          "All public endpoints are behind AWS WAF with the AWS managed core rule set enabled."),
        D("Do staff connect to internal systems through a corporate VPN?", RFPQ, "No", ISP,
          "Kestrel does not operate a corporate VPN.",
          "Kestrel does not operate a corporate VPN; internal tools are SaaS applications behind "
          "SSO and MFA."),
        L("Have you had an independent penetration test in the last 12 months?", RFPQ, "VM-01"),
        L("Do you remediate critical vulnerabilities within 14 days?", RFPQ, "VM-04"),
        L("Do you have a bug bounty programme?", RFPQ, "VM-03"),
        L("Is every code change peer reviewed before it is released to production?", RFPQ,
          "SD-01"),
        L("Are installation packages code-signed for any software installed on our premises?",
          RFPQ, "PRD-01"),
        D("Is static code analysis part of your build pipeline?", RFPQ, "Yes", SDP,
          "Semgrep static analysis runs on every pull request, and findings of high severity "
          "block the merge."),
        D("Is the application protected against cross-site request forgery (CSRF)?", RFPQ, "Yes",
          SDP,
          "All state-changing requests are protected against cross-site request forgery by the "
          "Django CSRF middleware."),
        D("Do you have a published way for researchers to report vulnerabilities?", RFPQ, "Yes",
          SDP,
          "We publish a security.txt file and a vulnerability disclosure policy, and external "
          "researchers can report vulnerabilities to security@kestrel-analytics.example."),
    ]),
    ("Incidents and Resilience", [
        L("Do you have a documented incident response plan?", RFPQ, "IR-01"),
        L("Will you notify us within 72 hours of a breach affecting our data?", RFPQ, "IR-02"),
        D("Have you had a security breach involving customer data in the last three years?", RFPQ,
          "No", IRP,
          "Kestrel has not had a security breach involving customer data since the company was "
          "founded in 2019."),
        L("Are backups taken daily and restore-tested?", RFPQ, "BC-01"),
        L("If backups are stored on tapes or other removable media, is the media encrypted?",
          RFPQ, "BC-03"),
        D("Are backups copied to a separate location from production?", RFPQ, "Yes", BCP,
          "Backups are encrypted with AES-256 and copied every day to a separate AWS backup "
          "account in eu-central-1 (Frankfurt)."),
        D("Is production spread across multiple availability zones?", RFPQ, "Yes", BCP,
          "Production runs across three availability zones in eu-west-1, and the database uses "
          "Multi-AZ deployment with automatic failover."),
        D("Do you keep a warm standby of the service in a second region?", RFPQ, "No", BCP,
          "We do not run a warm standby in a second AWS region; after the loss of eu-west-1 the "
          "service would be rebuilt in eu-central-1 from Terraform and backups."),
        L("Is your business continuity and disaster recovery plan tested at least annually?",
          RFPQ, "BC-02"),
        D("Are physical entry logs at your data centres kept for at least six months?", RFPQ,
          "N/A", BCP, NO_DC, NO_DC_COMMENT),
    ]),
    ("Suppliers", [
        L("Do you notify customers before adding a new sub-processor?", RFPQ, "VEN-01"),
        L("Do you assess the security of your suppliers before you engage them?", RFPQ, "VEN-02"),
        S("Do you perform on-site audits of your key suppliers?", RFPQ, "No",
          "Supplier reviews are done remotely from their certifications and contracts."),
        S("Do you publish a DMARC policy for your email domains?", RFPQ, "No",
          "SPF and DKIM are configured for our domain; a DMARC policy has not been published yet."),
    ]),
]

# ============================================================================================
# Workbooks
# ============================================================================================

BOLD = Font(bold=True)
WRAP = Alignment(wrap_text=True, vertical="top")
HEAD_FILL = PatternFill("solid", fgColor="1F3864")
SECTION_FILL = PatternFill("solid", fgColor="D9E1F2")


def new_workbook(title, creator):
    wb = openpyxl.Workbook()
    wb.properties.creator = creator
    wb.properties.lastModifiedBy = creator
    wb.properties.title = title
    wb.properties.created = FIXED
    wb.properties.modified = FIXED
    return wb


def questionnaire_sheet(ws, title, instructions, sections, id_of, filled, list_ref):
    """Title row, instruction row, blank row, header row, then section banners (bold, merged
    A:D) and question rows. Returns [(row, id, spec)] for the question rows."""
    ws["A1"] = title
    ws["A1"].font = Font(bold=True, size=14)
    ws.merge_cells("A1:D1")
    ws["A2"] = instructions
    ws["A2"].alignment = WRAP
    ws.merge_cells("A2:D2")
    ws.row_dimensions[2].height = 45
    for col, head in enumerate(["ID", "Question", "Answer", "Comments"], start=1):
        cell = ws.cell(row=4, column=col, value=head)
        cell.font = Font(bold=True, color="FFFFFF")
        cell.fill = HEAD_FILL
    dv = DataValidation(type="list", formula1=list_ref, allow_blank=True)
    dv.error = "Please choose Yes, No or N/A"
    dv.errorTitle = "Invalid answer"
    dv.showErrorMessage = True
    rows = []
    r = 5
    for s, (section, specs) in enumerate(sections, start=1):
        cell = ws.cell(row=r, column=1, value=f"{s}. {section}" if id_of else section)
        cell.font = BOLD
        cell.fill = SECTION_FILL
        ws.merge_cells(start_row=r, start_column=1, end_row=r, end_column=4)
        r += 1
        first = r
        for i, spec in enumerate(specs, start=1):
            qid = id_of(s, i, spec) if id_of else spec[0]
            ws.cell(row=r, column=1, value=qid).alignment = WRAP
            ws.cell(row=r, column=2, value=spec["text"] if id_of else spec[1]).alignment = WRAP
            if filled:
                ws.cell(row=r, column=3, value=spec["answer"] if id_of else spec[2])
                ws.cell(row=r, column=4, value=spec["comment"] if id_of else spec[3]).alignment = WRAP
            rows.append((r, qid, spec))
            r += 1
        dv.add(f"C{first}:C{r - 1}")
    ws.add_data_validation(dv)
    for col, width in (("A", 10), ("B", 70), ("C", 12), ("D", 60)):
        ws.column_dimensions[col].width = width
    ws.freeze_panes = "A5"
    return rows


def lists_sheet(wb):
    ls = wb.create_sheet("Lists")
    for i, v in enumerate(CHOICES, start=1):
        ls.cell(row=i, column=1, value=v)
    ls.sheet_state = "hidden"


def make_questionnaire(title, instructions, sheet, sections, filled):
    """The main set numbers questions by section (1.01, 1.02, ...), the demo runs Q01, Q02, ..."""
    wb = new_workbook(title, "Harbour Retail Group Procurement" if sections is MAIN
                      else "Brightwater Foods Procurement")
    ws = wb.active
    ws.title = sheet
    if sections is MAIN:
        def id_of(s, i, spec):
            return f"{s}.{i:02d}"
    else:
        order = {id(spec): n for n, spec in enumerate(
            (spec for _, specs in sections for spec in specs), start=1)}

        def id_of(s, i, spec):
            return f"Q{order[id(spec)]:02d}"
    rows = questionnaire_sheet(ws, title, instructions, sections, id_of, filled,
                               "Lists!$A$1:$A$3")
    lists_sheet(wb)
    return wb, rows


def make_past():
    wb = new_workbook("Customer Security Questionnaire - answered", "Kestrel Analytics Security")
    ws = wb.active
    ws.title = "Questionnaire"
    questionnaire_sheet(ws, PAST_TITLE,
                        "Completed by Kestrel Analytics Ltd for a customer's vendor review. Answers "
                        "were correct on the date of completion, 12 September 2024.",
                        PAST, None, True, '"Yes,No,N/A"')
    return wb


def save_xlsx(wb, path):
    buf = io.BytesIO()
    wb.save(buf)
    path.write_bytes(normalize_zip(buf.getvalue()))


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


# ============================================================================================
# Checks
# ============================================================================================

def check_documents():
    for name in DOCS:
        words = sum(len(t.split()) for t in doc_texts(name))
        assert 600 <= words <= 1500, (name, words)
        for t in doc_texts(name):
            if name == IRP:
                t.encode("latin-1")  # core PDF fonts
            assert "\n" not in t, (name, t[:40])


def check_specs(sections, label):
    texts = set()
    for _, specs in sections:
        for spec in specs:
            assert spec["answer"] in CHOICES, spec
            assert spec["text"] not in texts, spec["text"]
            texts.add(spec["text"])
            if spec["basis"] == "document":
                hits = [t for t in doc_texts(spec["source"]) if spec["evidence"] in t]
                assert hits, f"{label}: evidence not verbatim in {spec['source']}: {spec['evidence']}"
            elif spec["basis"] == "library":
                assert spec["answer"] == PAST_BY_ID[spec["source"]][1]
                if sections is MAIN:  # the main set tests paraphrase, not copy
                    assert spec["text"] != PAST_BY_ID[spec["source"]][0], spec["text"]


def check_origins(sections):
    """Azure statements must exist in column C of the checklist; VSAQ verbatim texts must equal
    the bank text (when the banks are available). Returns {text: origin string}."""
    azure = {}
    for f in (AZS, AZD):
        ws = openpyxl.load_workbook(AZURE_DIR / f, read_only=True)["Checklist"]
        for r, row in enumerate(ws.iter_rows(min_col=3, max_col=3, values_only=True), start=1):
            if isinstance(row[0], str):
                azure.setdefault((f, row[0].strip()), r)
    vsaq = load_vsaq()
    out = {}
    for _, specs in sections:
        for spec in specs:
            o = spec["origin"]
            if o[0] == "azure":
                key = (o[1], o[2].strip())
                assert key in azure, f"not in {o[1]}: {o[2]!r}"
                out[spec["text"]] = (f"Azure review checklist {o[1]}, Checklist!C{azure[key]} "
                                     f"(statement turned into a question)")
            elif o[0] == "vsaq":
                if vsaq is not None:
                    assert (o[1], o[2]) in vsaq, o
                    if o[3] == "verbatim":
                        assert vsaq[(o[1], o[2])] == spec["text"], (o, vsaq[(o[1], o[2])])
                out[spec["text"]] = f"VSAQ {o[1]} #{o[2]} ({o[3]})"
            else:
                out[spec["text"]] = "rfpq (written for this set)"
    return out


def load_vsaq():
    """{(bank, id): plain text} for every item and checkgroup choice, or None without banks."""
    if not VSAQ_DIR.is_dir():
        print(f"note: {VSAQ_DIR} not found; VSAQ origins not checked", file=sys.stderr)
        return None
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "vsaqfx", ROOT / "scripts" / "make-vsaq-fixture.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = {}

    def walk(bank, items):
        for it in items:
            if it.get("type") == "block":
                walk(bank, it.get("items", []))
                continue
            if it.get("id"):
                out.setdefault((bank, it["id"]), mod.clean(it.get("text")))
            for c in it.get("choices", []):
                cid, text = next(iter(c.items()))
                out.setdefault((bank, cid), mod.clean(text))
            # Anonymous radiogroups are named by their choices' common prefix.
            if it.get("type") == "radiogroup" and not it.get("id"):
                rid = mod.common_prefix(mod.choice_ids(it)).rstrip("_")
                out.setdefault((bank, rid), mod.clean(it.get("text")))

    for bank in (WEB, INF, SEC, PHY):
        walk(bank, mod.load_bank(VSAQ_DIR / bank)["questionnaire"][0]["items"])
    return out


# ============================================================================================
# Outputs
# ============================================================================================

def shares(rows):
    n = len(rows)
    ans = {c: sum(1 for r in rows if r["answer"] == c) for c in CHOICES}
    basis = {b: sum(1 for r in rows if r["basis"] == b) for b in ("library", "document", "silent")}
    return n, ans, basis


def pct(k, n):
    return f"{k} ({100 * k / n:.0f} %)"


def write_set(prefix, title, instructions, sheet, sections, origins):
    wb, rows = make_questionnaire(title, instructions, sheet, sections, filled=False)
    save_xlsx(wb, OUT / f"{prefix}questionnaire.xlsx")
    wb, rows = make_questionnaire(title, instructions, sheet, sections, filled=True)
    save_xlsx(wb, OUT / f"{prefix}truth.xlsx")
    records = []
    for r, qid, spec in rows:
        records.append({
            "sheet": sheet, "row": r, "id": qid, "question": spec["text"],
            "answer": spec["answer"], "basis": spec["basis"], "source": spec["source"],
            "evidence": spec["evidence"], "comment": spec["comment"],
            "origin": origins[spec["text"]],
        })
    with open(OUT / f"{prefix}truth.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return records


def main():
    check_documents()
    check_specs(MAIN, "questionnaire")
    check_specs(DEMO, "demo")
    origins = check_origins(MAIN)
    origins.update({s["text"]: "rfpq (written for this set)" for _, specs in DEMO for s in specs
                    if s["origin"] == RFPQ})
    assert all(s["origin"] == RFPQ for _, specs in DEMO for s in specs)

    COMPANY_DIR.mkdir(parents=True, exist_ok=True)
    for name in DOCS:
        path = COMPANY_DIR / name
        if name.endswith(".md"):
            path.write_text(render_md(name), encoding="utf-8", newline="\n")
        elif name.endswith(".docx"):
            path.write_bytes(render_docx(name))
        else:
            path.write_bytes(render_pdf(name))
    save_xlsx(make_past(), OUT / "past-questionnaire.xlsx")
    main_rows = write_set("", MAIN_TITLE, MAIN_INSTRUCTIONS, MAIN_SHEET, MAIN, origins)
    demo_rows = write_set("demo-", DEMO_TITLE, DEMO_INSTRUCTIONS, DEMO_SHEET, DEMO, origins)

    past_rows = [dict(answer=a, basis="library") for _, rs in PAST for _, _, a, _ in rs]
    n, ans, basis = shares(main_rows)
    assert 90 <= n <= 120, n
    assert 0.50 <= ans["Yes"] / n <= 0.60 and 0.25 <= ans["No"] / n <= 0.35, ans
    assert 0.10 <= ans["N/A"] / n <= 0.15, ans
    assert 0.25 <= basis["library"] / n <= 0.30, basis
    assert 0.45 <= basis["document"] / n <= 0.55 and 0.15 <= basis["silent"] / n <= 0.25, basis
    dn, dans, dbasis = shares(demo_rows)
    assert 55 <= dn <= 65, dn
    pn, pans, _ = shares(past_rows)
    assert 35 <= pn <= 45 and 0.25 <= (pans["No"] + pans["N/A"]) / pn <= 0.35, pans

    words = {name: sum(len(t.split()) for t in doc_texts(name)) for name in DOCS}
    kinds = [origins[r["question"]] for r in main_rows]
    origin_counts = ", ".join(f"{k} {label}" for k, label in (
        (sum(o.startswith("VSAQ") and o.endswith("(verbatim)") for o in kinds),
         "VSAQ verbatim"),
        (sum(o.startswith("VSAQ") and o.endswith("(edited)") for o in kinds), "VSAQ edited"),
        (sum(o.startswith("Azure") for o in kinds), "Azure checklist statements"),
        (sum(o.startswith("rfpq") for o in kinds), "written for rfpq")))
    (OUT / "SOURCE.md").write_text(source_md(words, (n, ans, basis), (dn, dans, dbasis),
                                             (pn, pans), origin_counts),
                                   encoding="utf-8", newline="\n")
    for label, (k, a, b) in (("questionnaire", (n, ans, basis)), ("demo", (dn, dans, dbasis))):
        print(f"{label}: {k} rows; " + ", ".join(f"{c} {pct(a[c], k)}" for c in CHOICES) + "; "
              + ", ".join(f"{x} {pct(b[x], k)}" for x in b))
    print(f"past questionnaire: {pn} rows; " + ", ".join(f"{c} {pct(pans[c], pn)}" for c in CHOICES))


def source_md(words, main, demo, past, origin_counts):
    def table(stats):
        k, a, b = stats
        return (f"| {k} | " + " | ".join(pct(a[c], k) for c in CHOICES) + " | "
                + " | ".join(pct(b[x], k) for x in ("library", "document", "silent")) + " |")

    docs = "\n".join(f"| `company/{name}` | {words[name]} |" for name in DOCS)
    pk, pa = past
    azure_license = (AZURE_DIR / "LICENSE").read_text(encoding="utf-8").strip()
    return f"""# Evaluation set: Kestrel Analytics Ltd

A labelled set for measuring answer quality (precision of written answers, recall of "No" and
"N/A", abstention on uncovered questions) against trivial baselines such as "always Yes" or
"copy last year's questionnaire". Everything is generated by

    python3 scripts/make-eval-fixtures.py [VSAQ_BANK_DIR]

(openpyxl 3.1.5, python-docx 1.2.0, fpdf2 2.8.9; the output is byte-reproducible). Edit the
script and regenerate rather than editing the files. The script asserts that every `evidence`
sentence occurs verbatim in its document, that every library row's truth equals the past answer,
and that the shares below stay in their intended ranges.

## Files

| File | What it is |
|---|---|
| `company/` | The knowledge-base source folder: 7 documents of a fictional B2B SaaS company, Kestrel Analytics Ltd (5 Markdown, 1 Word, 1 PDF). |
| `past-questionnaire.xlsx` | Last year's questionnaire as the company answered it; ingest it by path as answer-library records. |
| `questionnaire.xlsx` | A new customer questionnaire ("Harbour Retail Group - Vendor Security Assessment"), Answer and Comments empty. |
| `truth.xlsx` | The same workbook with every Answer (Yes/No/N/A) and Comments cell filled with the true answer. |
| `truth.jsonl` | One JSON object per question row of `questionnaire.xlsx`. |
| `demo-questionnaire.xlsx`, `demo-truth.xlsx`, `demo-truth.jsonl` | A short questionnaire ("Brightwater Foods - Supplier Security Questionnaire") that the KB covers well, for `rfpq demo`. |

Typical use:

    rfpq kb ingest fixtures/eval/company fixtures/eval/past-questionnaire.xlsx --kb /tmp/evalkb
    rfpq fill fixtures/eval/questionnaire.xlsx --kb /tmp/evalkb -o /tmp/filled.xlsx
    rfpq eval /tmp/filled.xlsx fixtures/eval/truth.xlsx

### Company documents

| File | Words |
|---|---|
{docs}

The documents read like a small company's own policies. They state controls one fact per
sentence where natural, and they state gaps plainly, so that "No" and "N/A" have evidence: no
SOC 2 or ISO 27001 certification, no HSMs of our own (keys in AWS KMS), no customer-managed keys,
no third-party penetration test yet (planned for Q3 2025), no DAST, no SIEM, no endpoint DLP,
no phishing simulations, no SCIM, no corporate VPN, no own data centres (production in AWS
eu-west-1, so data-centre controls are N/A), no Windows servers or domain, no removable backup
media, no real-time cross-region replication. Some topics (DMARC, guest accounts, UEBA, office
entry logs, QA security testing, ...) are covered by no document at all.

### Workbook layout

All questionnaires: one question sheet; row 1 title (merged A:D), row 2 instructions (merged
A:D), row 3 empty, row 4 header `ID | Question | Answer | Comments`, then bold, shaded section
banners (merged A:D, text in A) before each group of question rows. The Answer column has a
list validation Yes/No/N/A: on the new and demo questionnaires it points to a hidden `Lists`
sheet (`Lists!$A$1:$A$3`), on the past questionnaire it is inline (`"Yes,No,N/A"`). IDs are
`1.01`, `1.02`, ... (section.row) on the new questionnaire, `Q01`, `Q02`, ... on the demo and
`GOV-01`-style on the past questionnaire (no ID is shared between the sets).

How `rfpq inspect` reads the filled copies (`truth.xlsx`, `demo-truth.xlsx`,
`past-questionnaire.xlsx`): a "Yes" in the Answer column is the dropdown's first value, which
detection treats as an untouched default, so "Yes" rows are listed as questions with a choice
slot; "No"/"N/A" rows have every answer cell filled and are listed as `no_answer_cell` rows with
prefilled cells. `rfpq eval` and the answer library read both kinds, so every question row
counts.

### truth.jsonl / demo-truth.jsonl

`{{"sheet", "row", "id", "question", "answer", "basis", "source", "evidence", "comment", "origin"}}`,
with `row` the 1-based worksheet row and:

- `basis: "library"`: the question is a paraphrase (on the demo: a paraphrase or a near-verbatim
  repeat) of a past-questionnaire question; `source` is the past ID (`GOV-03`), `evidence` the past
  question, and `answer` the past answer.
- `basis: "document"`: `source` is the file under `company/`, `evidence` the sentence(s) that
  decide the answer, verbatim from the document (checked by the script).
- `basis: "silent"`: no document covers it; `answer` is the company's honest answer (mostly
  "No") and `source`/`evidence` are empty. An honest filler abstains here.
- `comment` is the truth Comments cell; `origin` says where the question wording came from.

## Counts

| Set | Rows | Yes | No | N/A | library | document | silent |
|---|---|---|---|---|---|---|---|
| `questionnaire.xlsx` | {table(main)[2:]}
| `demo-questionnaire.xlsx` | {table(demo)[2:]}

Question wording of `questionnaire.xlsx`: {origin_counts}. The demo questionnaire's wording
is all written for rfpq.

`past-questionnaire.xlsx`: {pk} answered rows; Yes {pct(pa["Yes"], pk)}, No {pct(pa["No"], pk)},
N/A {pct(pa["N/A"], pk)}.

## Licences

- Company documents, past questionnaire, truth labels, comments, the demo questionnaire and
  every question marked `rfpq` in `origin`: written for rfpq, CC0-1.0
  (https://creativecommons.org/publicdomain/zero/1.0/). Kestrel Analytics Ltd, Harbour Retail
  Group and Brightwater Foods are fictional.
- Question wording marked `VSAQ` in `truth.jsonl` is derived from Google's VSAQ question banks
  (`google/vsaq`, `questionnaires/*.json`, commit `366d670e7e2a544166f74182e1093e6162786eb7`):
  verbatim (HTML removed) or edited into a single yes/no question. Apache License 2.0,
  Copyright 2016 Google Inc. All rights reserved
  (https://www.apache.org/licenses/LICENSE-2.0). The changes are the edits described in
  `origin` (`verbatim` or `edited`).
- Question wording marked `Azure review checklist` is derived from the Azure review checklists
  (`Azure/review-checklists`, `spreadsheet/macrofree/security_checklist.en.xlsx` and
  `datasecurity_checklist.en.xlsx`, commit `56cc3adc6ecc98de305c83917b7fc788d518592e`; copies
  in `fixtures/azure-review-checklists/`): a checklist statement (column C) turned into a
  question. MIT License, (c) Microsoft Corporation:

```
{azure_license}
```
"""


if __name__ == "__main__":
    main()
