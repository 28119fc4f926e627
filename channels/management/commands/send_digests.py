"""Send the daily and weekly digests due now (or at --now), as the quarter-hourly schedule
does."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from channels import digests
from channels.exceptions import DigestError


def parse_time(value: str) -> datetime:
    """An ISO 8601 time; without an offset it is read as UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as error:
        raise CommandError(
            f"--now must be an ISO 8601 time such as 2026-03-02T07:00:00Z, not {value!r}."
        ) from error
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Write and send the digests whose period has ended by now (or by --now), each "
        "subscriber's at their hour in their time zone: daily and weekly, or only --frequency. "
        "Running it again sends nothing twice (decisions 0025 and 0081)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--frequency",
            help=f"Only this frequency ({' or '.join(digests.FREQUENCIES)}); default: both.",
        )
        parser.add_argument(
            "--now",
            help="Send the digests due at this past time (ISO 8601, UTC unless it has an offset).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        frequencies: tuple[str, ...] = digests.FREQUENCIES
        try:
            if options["frequency"] is not None:
                frequencies = (digests.check_frequency(options["frequency"]),)
            now = parse_time(options["now"]) if options["now"] else None
            reports = digests.send_digests(now, frequencies=frequencies)
        except DigestError as error:
            raise CommandError(str(error)) from error
        if not reports:
            raise CommandError("No enabled email channel: no digest was written.")
        for report in reports:
            self.stdout.write(
                f"{report.frequency} digests due at {report.now.isoformat()}: "
                f"{report.created} written ({report.candidates} subscribers due)."
            )
        self.stdout.write(self.style.SUCCESS("Digests queued for sending."))
