from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import OperationalError

from config.locks import is_lock_error, retry_on_lock
from subscribers import services
from subscribers.models import Suppression


class Command(BaseCommand):
    help = "Unsubscribe an address from everything (suppressing it even if it is not a subscriber)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("email")

    def handle(self, *args: Any, **options: Any) -> None:
        email = options["email"]
        try:
            # Each attempt is whole transactions of the services, safe to repeat: a locked
            # database (SQLite while an import or the worker writes) is waited out.
            message = retry_on_lock(lambda: self.unsubscribe(email))
        except OperationalError as exc:
            if not is_lock_error(exc):
                raise
            raise CommandError(
                "The database stayed locked by another process (an import or the worker "
                "writing); nothing was changed. Run the command again in a moment."
            ) from exc
        self.stdout.write(message)

    def unsubscribe(self, email: str) -> str:
        """Unsubscribe or suppress ``email``; the sentence saying which."""
        subscriber = services.subscriber_status(email).subscriber
        if subscriber is None:
            services.suppress_email(email, Suppression.Reason.UNSUBSCRIBED, note="command")
            return "No subscriber with this address; it is now suppressed."
        changed = services.unsubscribe(subscriber, services.Origin(via="command"))
        return (
            f"Subscriber {subscriber.pk} unsubscribed."
            if changed
            else f"Subscriber {subscriber.pk} was already unsubscribed."
        )
