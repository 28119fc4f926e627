from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from subscribers import services
from subscribers.exceptions import ImportFileError


class Command(BaseCommand):
    help = (
        "Import subscribers from a CSV file with a header naming an email column (optional: "
        "name, locale, timezone). Streams the file; prints a report with each skipped line."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("file", type=Path, help="CSV file, UTF-8")
        parser.add_argument("--topics", default="", help="Topic slugs, comma-separated")
        parser.add_argument(
            "--confirmed",
            action="store_true",
            help="These people already consented: make them active (needs --consent-note)",
        )
        parser.add_argument(
            "--consent-note", default="", help="Where and when they consented (consent log)"
        )
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument("--no-progress", action="store_true", help="No progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"file: {path} does not exist or is not a file.")
        if options["batch_size"] is not None and options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        import_options = services.ImportOptions(
            topics=[slug for slug in options["topics"].split(",") if slug.strip()],
            confirmed=options["confirmed"],
            consent_note=options["consent_note"],
            batch_size=options["batch_size"],
            progress=not options["no_progress"],
        )
        try:
            report = services.import_subscribers(path, import_options)
        except ImportFileError as exc:
            raise CommandError(exc.message) from exc
        for _line, explanation in report.problems:
            self.stderr.write(f"skipped {explanation}")
        hidden = report.skipped - len(report.problems)
        if hidden > 0:
            self.stderr.write(f"... and {hidden} more skipped rows (counted, not listed)")
        self.stdout.write(self.style.SUCCESS(report.summary()))
