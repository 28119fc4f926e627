from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from subscribers import services
from subscribers.models import Suppression


class Command(BaseCommand):
    help = "Unsubscribe an address from everything (suppressing it even if it is not a subscriber)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("email")

    def handle(self, *args: Any, **options: Any) -> None:
        email = options["email"]
        subscriber = services.subscriber_status(email).subscriber
        if subscriber is None:
            services.suppress_email(email, Suppression.Reason.UNSUBSCRIBED, note="command")
            self.stdout.write("No subscriber with this address; it is now suppressed.")
            return
        changed = services.unsubscribe(subscriber, services.Origin(via="command"))
        self.stdout.write(
            f"Subscriber {subscriber.pk} unsubscribed."
            if changed
            else f"Subscriber {subscriber.pk} was already unsubscribed."
        )
