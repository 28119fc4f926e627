"""manage.py list_publications [--status STATUS]: one line per publication, newest first."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from publishing.models import Publication


class Command(BaseCommand):
    help = "List publications: id, status, when, slug and title."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--status", choices=Publication.Status.values)

    def handle(self, *args: Any, **options: Any) -> None:
        publications = Publication.objects.order_by("-created_at", "-pk")
        if options["status"]:
            publications = publications.filter(status=options["status"])
        self.stdout.write(f"{'ID':>6}  {'STATUS':<9}  {'WHEN':<20}  {'SLUG':<30}  TITLE")
        count = 0
        for publication in publications.iterator():
            when = publication.published_at or publication.publish_at
            stamp = when.strftime("%Y-%m-%d %H:%M UTC") if when else "-"
            self.stdout.write(
                f"{publication.pk:>6}  {publication.status:<9}  {stamp:<20}  "
                f"{publication.slug:<30}  {publication.title}"
            )
            count += 1
        self.stdout.write(f"{count} publication(s).")
