"""Wait until the database answers a real query, with exponential backoff and a deadline."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connections

from config.redaction import redact


class Command(BaseCommand):
    help = "Retry SELECT 1 with exponential backoff until it succeeds or the deadline passes."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--timeout", type=float, default=60.0, help="Deadline in seconds.")
        parser.add_argument("--initial-delay", type=float, default=0.25)
        parser.add_argument("--max-delay", type=float, default=5.0, help="Cap on one wait.")
        parser.add_argument("--database", default="default")

    def handle(self, *args: Any, **options: Any) -> None:
        deadline = time.monotonic() + options["timeout"]
        delay = options["initial_delay"]
        connection = connections[options["database"]]
        attempt = 0
        while True:
            attempt += 1
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT 1")
                    cursor.fetchone()
            except DatabaseError as exc:
                # A half-open connection would fail the same way forever: start afresh.
                if not connection.in_atomic_block:
                    connection.close()
                remaining = deadline - time.monotonic()
                error = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc))
                if remaining <= 0:
                    raise CommandError(
                        f"Database {options['database']!r} not reachable after "
                        f"{options['timeout']:g} s ({attempt} attempts): {error}"
                    ) from exc
                wait = min(delay, options["max_delay"], remaining)
                self.stderr.write(
                    f"Database not ready (attempt {attempt}): {error}; retrying in {wait:.2f} s"
                )
                time.sleep(wait)
                delay *= 2
            else:
                self.stdout.write(self.style.SUCCESS(f"Database ready after {attempt} attempt(s)."))
                return
