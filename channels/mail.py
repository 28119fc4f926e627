"""Django email backends of this project.

``LedgerEmailBackend`` is the site's EMAIL_BACKEND: mail sent through Django's API (a
confirmation, a test send) becomes a delivery of the default email channel, so suppression,
rate limits, retries and the circuit breaker apply to it, and no app needs to import the engine.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import EmailMessage
from django.utils import timezone


class OutboxEmailBackend(BaseEmailBackend):
    """Write each message as an .eml file under EMAIL_OUTBOX_DIR (development and demo)."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        outbox = Path(settings.EMAIL_OUTBOX_DIR)
        outbox.mkdir(parents=True, exist_ok=True)
        sent = 0
        for message in email_messages:
            stamp = timezone.now().strftime("%Y%m%dT%H%M%S%f")
            path = outbox / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
            path.write_bytes(message.message().as_bytes())
            sent += 1
        return sent


class LedgerEmailBackend(BaseEmailBackend):
    """Record each message in the delivery ledger; the engine sends it (decision 0034)."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        from channels.services import queue_site_mail

        try:
            return queue_site_mail(email_messages)
        except Exception:
            if not self.fail_silently:
                raise
            return 0
