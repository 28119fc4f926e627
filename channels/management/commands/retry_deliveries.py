"""Re-queue failed (or, with --dead, dead; with --uncertain, uncertain) deliveries, as the
Delivery admin's action does."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from channels import services
from channels.models import Channel, Delivery
from publishing.models import Dispatch


class Command(BaseCommand):
    help = (
        "Put failed deliveries (or dead ones, with --dead; uncertain ones a skip policy did not "
        "resend, with --uncertain) back in the queue with fresh attempts. Limit them with "
        "--channel and --dispatch."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dead", action="store_true", help="Re-queue dead deliveries instead of failed ones."
        )
        parser.add_argument(
            "--uncertain",
            action="store_true",
            help="Re-queue uncertain deliveries (handed over, no answer, not resent): their "
            "recipients may get them twice.",
        )
        parser.add_argument("--channel", help="Only deliveries of this channel (by name).")
        parser.add_argument("--dispatch", type=int, help="Only deliveries of this dispatch (id).")

    def handle(self, *args: Any, **options: Any) -> None:
        channel_id = None
        if options["channel"]:
            channel = Channel.objects.filter(name=options["channel"]).first()
            if channel is None:
                raise CommandError(f"No channel named {options['channel']!r} (--channel).")
            channel_id = channel.pk
        if (
            options["dispatch"] is not None
            and not Dispatch.objects.filter(pk=options["dispatch"]).exists()
        ):
            raise CommandError(f"No dispatch with id {options['dispatch']} (--dispatch).")
        if options["dead"] and options["uncertain"]:
            raise CommandError("Choose --dead or --uncertain, not both.")
        status = Delivery.Status.FAILED
        if options["dead"]:
            status = Delivery.Status.DEAD
        elif options["uncertain"]:
            status = Delivery.Status.UNCERTAIN
        count = services.requeue_matching(
            statuses=[status], channel_id=channel_id, dispatch_id=options["dispatch"]
        )
        self.stdout.write(self.style.SUCCESS(f"Re-queued {count} {status} deliveries."))
