from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from subscribers import services


class Command(BaseCommand):
    help = "Show what is stored about one address: status, topics, suppression."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("email")

    def handle(self, *args: Any, **options: Any) -> None:
        status = services.subscriber_status(options["email"])
        subscriber = status.subscriber
        if subscriber is None:
            self.stdout.write("subscriber: none")
        else:
            self.stdout.write(f"subscriber: {subscriber.pk}")
            self.stdout.write(f"status: {subscriber.status}")
            self.stdout.write(f"created: {subscriber.created_at.isoformat()}")
            confirmed = subscriber.confirmed_at.isoformat() if subscriber.confirmed_at else "no"
            self.stdout.write(f"confirmed: {confirmed}")
            self.stdout.write(f"source: {subscriber.source}")
            self.stdout.write(f"topics: {', '.join(status.topics) or 'none'}")
        suppression = status.suppression
        self.stdout.write(
            f"suppressed: {suppression.reason} since {suppression.created_at.isoformat()}"
            if suppression
            else "suppressed: no"
        )
