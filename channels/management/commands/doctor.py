"""Check a sender's setup: DNS (SPF, DKIM, DMARC, MX, PTR), one-click unsubscribe, SES, rates.

Exit status: 0 when every finding is ok, 1 when the worst is a warning, 2 when any failure
(the convention of monitoring plugins), so a deploy pipeline or a cron job can act on it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from channels import doctor
from channels.doctor import Level


class Command(BaseCommand):
    help = (
        "Check deliverability: SPF, DKIM, DMARC (RFC 9989), MX and PTR of each sending domain, "
        "SITE_URL and one-click unsubscribe, SES quota and status, bounce and complaint rates. "
        "Exit 0 all ok, 1 warnings, 2 failures."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the findings as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        report = doctor.run()
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        else:
            self._print(report)
        sys.exit(report.worst.exit_code)

    def _print(self, report: doctor.Report) -> None:
        styles = {
            Level.OK: self.style.SUCCESS,
            Level.WARNING: self.style.WARNING,
            Level.FAILURE: self.style.ERROR,
        }
        labels = {Level.OK: "OK  ", Level.WARNING: "WARN", Level.FAILURE: "FAIL"}
        for finding in report.findings:
            self.stdout.write(
                styles[finding.level](f"{labels[finding.level]} {finding.check:<16}")
                + f" {finding.subject}: {finding.message}"
            )
            if finding.fix:
                self.stdout.write(f"     fix: {finding.fix}")
        self.stdout.write(
            f"{report.count(Level.OK)} ok, {report.count(Level.WARNING)} warning(s), "
            f"{report.count(Level.FAILURE)} failure(s)."
        )
