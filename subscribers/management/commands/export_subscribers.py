from __future__ import annotations

import sys
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand

from subscribers import services
from subscribers.models import Subscriber


class Command(BaseCommand):
    help = "Export subscribers as CSV (the format import_subscribers reads) to a file or stdout."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--output", "-o", type=Path, default=None, help="File (default stdout)")
        parser.add_argument("--status", choices=Subscriber.Status.values, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        output: Path | None = options["output"]
        if output is None:
            count = services.export_subscribers(sys.stdout, status=options["status"])
        else:
            with output.open("w", encoding="utf-8", newline="") as handle:
                count = services.export_subscribers(handle, status=options["status"])
        self.stderr.write(f"Exported {count} subscribers.")
