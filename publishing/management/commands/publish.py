"""manage.py publish <slug> [--at ISO-datetime]: publish now, or schedule for a later time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from publishing import services
from publishing.exceptions import PublishingError
from publishing.models import Dispatch, Publication


class Command(BaseCommand):
    help = "Publish a publication now, or schedule it with --at (ISO 8601; UTC when no offset)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--at", help="When to publish, e.g. 2026-12-01T09:00:00+01:00.")

    def handle(self, *args: Any, **options: Any) -> None:
        slug: str = options["slug"]
        try:
            publication = Publication.objects.get(slug=slug)
        except Publication.DoesNotExist:
            raise CommandError(f"slug: no publication with the slug {slug!r}.") from None
        try:
            if options["at"]:
                at = _parse_at(options["at"])
                services.schedule(publication, at, by=None)
                self.stdout.write(f"Scheduled {slug} for {at.isoformat()}.")
                return
            existing = publication.dispatches.filter(kind=Dispatch.Kind.PUBLISH).first()
            dispatch = services.publish(publication, by=None)
        except PublishingError as error:
            raise CommandError(f"{error} ({error.code})") from None
        if existing is not None:
            self.stdout.write(
                f"{slug} was already published (dispatch {dispatch.pk}); not sent again."
            )
        else:
            self.stdout.write(f"Published {slug}: dispatch {dispatch.pk}.")


def _parse_at(value: str) -> datetime:
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(
            f"--at: {value!r} is not an ISO 8601 date and time, e.g. 2026-12-01T09:00:00Z."
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)
