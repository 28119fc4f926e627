from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from subscribers import services
from subscribers.models import Suppression


class Command(BaseCommand):
    help = "Erase everything stored about an address; only its hash stays, as a suppression."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("email")

    def handle(self, *args: Any, **options: Any) -> None:
        email = options["email"]
        subscriber = services.subscriber_status(email).subscriber
        if subscriber is None:
            suppression = services.suppress_email(email, Suppression.Reason.ERASED, note="command")
            self.stdout.write(
                f"No subscriber with this address; its hash {suppression.email_hash[:12]}… "
                "is on the suppression list."
            )
            return
        subscriber_id = subscriber.pk
        hashed = services.erase_subscriber(subscriber, services.Origin(via="command"))
        self.stdout.write(f"Subscriber {subscriber_id} erased; hash {hashed[:12]}… kept.")
