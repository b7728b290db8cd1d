#!/usr/bin/env python3
"""Writes fixtures/legacy/vendor-questionnaire.xls, the Excel 97-2003 test workbook.

rfpq cannot create .xls files itself, so this one is generated once with xlwt 1.3.0
(`pip install xlwt==1.3.0`) and committed. It is synthetic (no third-party content):
a merged banner, an instruction row, a header, a section row, five questions, a date in
the 1904 date system, a footer, and a hidden scoring sheet.
"""
import datetime
import pathlib
import xlwt

out = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "legacy" / "vendor-questionnaire.xls"
wb = xlwt.Workbook()
wb.dates_1904 = True
ws = wb.add_sheet("Questionnaire")
ws.write_merge(0, 0, 0, 3, "Acme Vendor Security Questionnaire")
ws.write(1, 0, "Instructions: answer every question in column C and explain in column D. "
         "Questions marked with * are mandatory.")
for col, head in enumerate(["ID", "Question", "Answer (Yes/No/N/A)", "Comments"]):
    ws.write(2, col, head)
ws.write(3, 0, "Access Control")
questions = [
    ("AC-01", "Do you enforce multi-factor authentication for all administrative access?"),
    ("AC-02", "Are user access rights reviewed at least quarterly?"),
    ("AC-03", "Is access revoked within 24 hours of an employee leaving?"),
    ("AC-04", "Describe how privileged accounts are monitored."),
    ("AC-05", "Do you use single sign-on for internal applications?"),
]
for i, (qid, text) in enumerate(questions):
    ws.write(4 + i, 0, qid)
    ws.write(4 + i, 1, text)
ws.write(10, 0, "Last reviewed")
ws.write(10, 1, datetime.date(2024, 5, 20), xlwt.easyxf(num_format_str="yyyy-mm-dd"))
ws.write(12, 0, "End of questionnaire")
scoring = wb.add_sheet("Scoring")
scoring.visibility = 1  # hidden
scoring.write(0, 0, "Weight")
scoring.write(1, 0, 3)
wb.save(str(out))
print(out)
