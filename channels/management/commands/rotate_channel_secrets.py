"""Re-encrypt every channel's secrets with the newest key of FIELD_ENCRYPTION_KEYS."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from channels.backends import BackendError
from channels.configuration import rotate_channel_secrets


class Command(BaseCommand):
    help = (
        "Re-encrypt channel secrets with the first key of FIELD_ENCRYPTION_KEYS. Run it after "
        "putting a new key first; then the old key can be removed."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            rotated = rotate_channel_secrets()
        except BackendError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted the secrets of {rotated} channel(s)."))
