"""Exit 0 when a django-q2 cluster on this host has written a heartbeat recently (Docker health)."""

from __future__ import annotations

import socket
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from channels.models import WorkerHeartbeat


class Command(BaseCommand):
    help = "Check that a worker on this host polled the queue within WORKER_HEARTBEAT_MAX_AGE."

    def handle(self, *args: Any, **options: Any) -> None:
        cutoff = timezone.now() - timedelta(seconds=settings.WORKER_HEARTBEAT_MAX_AGE)
        host = socket.gethostname()
        beats = WorkerHeartbeat.objects.filter(name__startswith=f"{host}:", seen_at__gte=cutoff)
        if not beats.exists():
            max_age = settings.WORKER_HEARTBEAT_MAX_AGE
            raise CommandError(f"No worker heartbeat from {host} in the last {max_age} s.")
        self.stdout.write(self.style.SUCCESS(f"A worker on {host} is alive."))
