"""Validate each enabled channel's configuration and try to reach its provider.

Exits with status 1 when any channel fails, so it can run in a deploy pipeline or a cron job.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from channels.backends import BackendError
from channels.configuration import ChannelConfigurationError, check_channel
from channels.models import Channel
from config.redaction import redact


class Command(BaseCommand):
    help = "Validate every enabled channel's configuration and reachability (Backend.check)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("names", nargs="*", help="Only these channels (by name).")
        parser.add_argument("--all", action="store_true", help="Include disabled channels as well.")

    def handle(self, *args: Any, **options: Any) -> None:
        channels = Channel.objects.order_by("name")
        if options["names"]:
            channels = channels.filter(name__in=options["names"])
            missing = set(options["names"]) - set(channels.values_list("name", flat=True))
            if missing:
                raise CommandError(f"No channel named {', '.join(sorted(missing))}.")
        elif not options["all"]:
            channels = channels.filter(is_enabled=True)
        failed = 0
        for channel in channels:
            try:
                check_channel(channel)
            except (ChannelConfigurationError, BackendError) as exc:
                failed += 1
                self.stdout.write(
                    self.style.ERROR(f"FAIL {channel.name} ({channel.kind}): {redact(str(exc))}")
                )
            else:
                self.stdout.write(self.style.SUCCESS(f"OK   {channel.name} ({channel.kind})"))
        if failed:
            raise CommandError(f"{failed} channel(s) failed the check.")
