"""What the email backends share: the envelope sender and MIME bytes for a message."""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import parseaddr
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, EmailMultiAlternatives

from channels.backends.base import Message


def sender(config: Mapping[str, Any]) -> str:
    """The From value: the channel's ``from_email``, else DEFAULT_FROM_EMAIL."""
    return str(config.get("from_email") or settings.DEFAULT_FROM_EMAIL)


def envelope_sender(config: Mapping[str, Any]) -> str:
    return parseaddr(sender(config))[1]


def message_bytes(message: Message, config: Mapping[str, Any]) -> bytes:
    """The message as sent: its pre-built ``raw`` bytes, else built by Django from its fields."""
    if message.raw is not None:
        return message.raw
    email = EmailMultiAlternatives(
        subject=message.subject,
        body=message.text,
        from_email=sender(config),
        to=[message.to],
        headers=dict(message.headers),
    )
    if message.html:
        email.attach_alternative(message.html, "text/html")
    return crlf_bytes(email)


def crlf_bytes(email: EmailMessage) -> bytes:
    """The message as SMTP sends it (CRLF line endings), as Django's SMTP backend makes it."""
    # Django's MIME classes accept linesep; the stubs type them as the stdlib Message.
    return email.message().as_bytes(linesep="\r\n")  # type: ignore[call-arg]
