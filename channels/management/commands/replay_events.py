"""``manage.py replay_events``: send events to a webhook endpoint again (decision 0084)."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from channels import webhook_events
from channels.models import WebhookEndpoint
from config.errors import ProjectError


class Command(BaseCommand):
    help = (
        "Replay events to a webhook endpoint: one event (--event evt_123), or every event "
        "since a time that the endpoint did not take (--since, failed, dead or uncertain)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--endpoint", type=int, required=True, help="The endpoint's id.")
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--event", help="One event's id (evt_123 or 123).")
        which.add_argument("--since", help="ISO date-time (UTC unless it says): failed events.")

    def handle(self, *args: Any, **options: Any) -> None:
        endpoint = WebhookEndpoint.objects.select_related("channel").filter(pk=options["endpoint"])
        found = endpoint.first()
        if found is None:
            raise CommandError(f"--endpoint: no webhook endpoint {options['endpoint']}.")
        if options["event"]:
            try:
                delivery = webhook_events.replay_event(found, options["event"])
            except ProjectError as error:
                raise CommandError(f"--event: {error.message}") from None
            self.stdout.write(f"Event evt_{delivery.event_id} queued for {found.url}.")
            return
        since = parse_datetime(str(options["since"]))
        if since is None:
            raise CommandError("--since: give an ISO date-time, e.g. 2025-06-01T08:00:00Z.")
        if timezone.is_naive(since):
            since = timezone.make_aware(since, UTC)
        count = webhook_events.replay_failed_since(found, since)
        self.stdout.write(
            f"{count} failed events since {since.isoformat()} queued for {found.url}."
        )
