"""Configuring a channel: validated settings, encrypted secrets, masked display, test sends.

Every writer of a channel's configuration (the admin, an API, a command) goes through
``save_channel``: the backend's ``config_form`` validates the values (field-level errors in a
ChannelConfigurationError), the secret fields are split out and encrypted (channels.crypto),
and nothing is stored when anything is invalid. Secrets are write-only: an empty value for a
secret field keeps the stored one, and they are shown back only masked (``xoxb-••••abcd``).
ChannelConfigurationError lives in channels.exceptions and is re-exported here, beside the
services that raise it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction

from channels.backends import Backend, BackendError, Message, Outcome, get_backend_class, registry
from channels.crypto import InvalidToken, decrypt_secrets, encrypt_secrets, rotate_secrets
from channels.exceptions import ChannelConfigurationError as ChannelConfigurationError
from channels.models import Channel
from publishing.rendering import render_email, render_for_kind

logger = logging.getLogger(__name__)
EMAIL_KIND_PREFIX = "email"  # email_ses, email_smtp, email_file: as Channel.objects.default_email

MASK = "••••"
MAX_BATCH_SIZE = 10_000
#: The delivery id of a test message: it has no ledger row.
TEST_DELIVERY_ID = 0
_SECRET_PREFIX = re.compile(r"^[A-Za-z]{2,6}[-_]")


@dataclass(frozen=True)
class ChannelConfig:
    """A validated configuration: ``config`` is stored in clear, ``secrets`` encrypted."""

    kind: str
    config: dict[str, Any]
    secrets: dict[str, str]


def kind_choices() -> list[tuple[str, str]]:
    """(kind, label) of every registered backend a channel may be created with, by label
    (internal kinds, such as event endpoints' channels, are made by their own feature)."""
    return sorted(
        ((kind, cls.label) for kind, cls in registry.items() if not cls.is_internal),
        key=lambda c: c[1],
    )


def check_channel_config(
    kind: str,
    data: Mapping[str, Any],
    *,
    current_secrets: Mapping[str, str] | None = None,
    batch_size: int | None = None,
    rate_limit_per_second: float | None = None,
) -> ChannelConfig:
    """Validate ``data`` against the schema of ``kind``; return it split into config and secrets.

    An empty value for a secret field keeps the one in ``current_secrets``. Raises
    ChannelConfigurationError with every field's errors; touches nothing.
    """
    errors: dict[str, list[str]] = {}
    if batch_size is not None and not 1 <= batch_size <= MAX_BATCH_SIZE:
        errors["batch_size"] = [f"The batch size must be between 1 and {MAX_BATCH_SIZE}."]
    if rate_limit_per_second is not None and rate_limit_per_second <= 0:
        errors["rate_limit_per_second"] = ["The rate limit must be more than 0 (or empty)."]
    try:
        backend_class = get_backend_class(kind)
    except BackendError:
        known = ", ".join(sorted(registry))
        errors["kind"] = [f"Unknown channel kind {kind!r}. Known kinds: {known}."]
        raise ChannelConfigurationError(errors) from None

    form_class = backend_class.config_form
    values = dict(data)
    for name in values:
        if name not in form_class.base_fields:
            errors[name] = [f"Unknown setting for a {kind} channel."]
    current = current_secrets or {}
    for name in backend_class.secret_fields:
        if not values.get(name) and current.get(name):
            values[name] = current[name]
    form = form_class(data={k: v for k, v in values.items() if v is not None})
    if not form.is_valid():
        for field, messages in form.errors.items():
            errors.setdefault(field, []).extend(str(m) for m in messages)
    if errors:
        raise ChannelConfigurationError(errors)

    cleaned = form.cleaned_data
    config = {k: v for k, v in cleaned.items() if k not in backend_class.secret_fields}
    secrets = {k: str(cleaned[k]) for k in sorted(backend_class.secret_fields) if cleaned.get(k)}
    return ChannelConfig(kind=kind, config=config, secrets=secrets)


def save_channel(channel: Channel, data: Mapping[str, Any]) -> Channel:
    """Validate ``data`` against the channel's kind, then store it with the channel's fields.

    Saves ``channel`` (new or existing) with its other fields as they are on the instance.
    A channel saved with ``is_default_email`` becomes the one default email channel: in the
    same transaction, the previous default stops being it (decision 0031; only email kinds).
    Raises ChannelConfigurationError, storing nothing, when anything is invalid.
    """
    if channel.is_default_email and not channel.kind.startswith(EMAIL_KIND_PREFIX):
        raise ChannelConfigurationError(
            {"is_default_email": ["Only an email channel can be the default email channel."]}
        )
    current = stored_secrets_or_none(channel)
    validated = check_channel_config(
        channel.kind,
        data,
        current_secrets=current,
        batch_size=channel.batch_size,
        rate_limit_per_second=channel.rate_limit_per_second,
    )
    channel.config = validated.config
    channel.secrets_encrypted = encrypt_secrets(validated.secrets)
    if channel.is_enabled:
        # Enabled again after the engine disabled it (decision 0085): the reason is history.
        channel.disabled_reason = ""
        channel.disabled_at = None
    with transaction.atomic():
        if channel.is_default_email:
            _take_default_email(channel)
        channel.save()
    logger.info("channel %s (%s) configured", channel.pk, channel.kind)
    return channel


def _take_default_email(channel: Channel) -> None:
    """Unmark the current default email channel (not ``channel``), inside the caller's
    transaction. Locking the email channels first serializes two requests naming two defaults:
    the second waits, then sees and unmarks the first's, so the unique constraint
    "one_default_email_channel" is never hit."""
    email_channels = Channel.objects.select_for_update().filter(kind__startswith=EMAIL_KIND_PREFIX)
    list(email_channels.order_by("pk").values_list("pk", flat=True))
    others = Channel.objects.filter(is_default_email=True)
    if channel.pk:
        others = others.exclude(pk=channel.pk)
    others.update(is_default_email=False)


def channel_secrets(channel: Channel) -> dict[str, str]:
    """The channel's secrets in clear. Raises BackendError when no key decrypts them."""
    try:
        return decrypt_secrets(channel.secrets_encrypted)
    except InvalidToken:
        raise BackendError(
            f"The secrets of channel {channel.pk} cannot be decrypted with any key of "
            "FIELD_ENCRYPTION_KEYS."
        ) from None


def stored_secrets_or_none(channel: Channel) -> dict[str, str]:
    """The channel's stored secrets, or {} when there are none or no key decrypts them.

    Saving a channel whose secrets were lost (a key removed too early) must work once the
    operator enters them again, so the unreadable ones count as absent.
    """
    if not channel.pk or not channel.secrets_encrypted:
        return {}
    try:
        return channel_secrets(channel)
    except BackendError:
        logger.warning("channel %s: stored secrets cannot be decrypted", channel.pk)
        return {}


def mask_secret(value: str) -> str:
    """Enough of a secret to recognise it, never enough to use it: ``xoxb-••••abcd``.

    URLs keep their scheme and host; short values show nothing but the mask.
    """
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme in {"http", "https"} and parts.netloc:
        tail = value[-4:] if len(value) >= 24 else ""
        return f"{parts.scheme}://{parts.netloc}/{MASK}{tail}"
    if len(value) < 12:
        return MASK
    match = _SECRET_PREFIX.match(value)
    return f"{match.group(0) if match else ''}{MASK}{value[-4:]}"


def masked_secrets(channel: Channel) -> dict[str, str]:
    """Each stored secret of the channel, masked. Undecryptable secrets show as the mask."""
    try:
        secrets = channel_secrets(channel)
    except BackendError:
        return {"secrets": f"{MASK} (cannot be decrypted)"}
    return {name: mask_secret(value) for name, value in sorted(secrets.items())}


def build_backend(channel: Channel) -> Backend:
    """The channel's backend, configured. Raises BackendError (unknown kind, bad secrets)."""
    backend_class = get_backend_class(channel.kind)
    return backend_class(channel.config, channel_secrets(channel))


def check_channel(channel: Channel) -> None:
    """Validate the stored configuration again, then ask the backend to reach its provider.

    Raises ChannelConfigurationError (the stored values no longer pass the schema) or
    BackendError (undecryptable secrets, provider unreachable or refusing the credentials).
    """
    secrets = channel_secrets(channel)
    check_channel_config(channel.kind, {**channel.config, **secrets})
    backend = build_backend(channel)
    try:
        backend.check()
    finally:
        backend.close()


@dataclass
class _Sample:
    title: str
    slug: str
    summary: str
    body: str
    language: str = "en"


def sample_message(channel: Channel, *, to: str = "") -> Message:
    """A sample publication rendered for the channel's kind, as the engine would render it."""
    sample = _Sample(
        title=f"Test message from {settings.SITE_NAME}",
        slug="test-message",
        summary=f"This is a test of the channel “{channel.name}”. It works.",
        body=f"This is a test of the channel **{channel.name}**, sent from the admin.",
    )
    if not get_backend_class(channel.kind).is_broadcast:
        template = render_email(sample)
        html, text = template.personalize(
            name="there", preferences_url=settings.SITE_URL, unsubscribe_url=settings.SITE_URL
        )
        return Message(
            delivery_id=TEST_DELIVERY_ID, to=to, subject=template.subject, text=text, html=html
        )
    payload: dict[str, Any] = {"text": sample.title, "summary": sample.summary}
    try:
        rendered = render_for_kind(sample, channel.kind)
    except KeyError:
        # A kind publishing.rendering does not know yet: a plain payload.
        rendered = payload
    if isinstance(rendered, dict):
        payload = rendered
    return Message(delivery_id=TEST_DELIVERY_ID, subject=sample.title, payload=payload)


def send_test_message(channel: Channel, *, to: str = "") -> Outcome:
    """Send a sample message through the channel's backend and return its outcome.

    Email channels send to ``to``. Writes nothing to the ledger or the channel's state.
    Raises ChannelConfigurationError when an email channel gets no address, BackendError
    when the backend cannot be built.
    """
    backend_class = get_backend_class(channel.kind)
    if not backend_class.is_broadcast and not to:
        raise ChannelConfigurationError(
            {"to": ["An email channel needs an address to send the test message to."]}
        )
    backend = build_backend(channel)
    try:
        outcome = backend.send([sample_message(channel, to=to)])[0]
    finally:
        backend.close()
    logger.info("test message on channel %s: %s", channel.pk, outcome.status)
    return outcome


def rotate_channel_secrets() -> int:
    """Re-encrypt every channel's secrets with the newest key; return how many were rotated.

    One transaction with the rows locked: either every channel is rotated or none. Raises
    BackendError naming the channel whose secrets no configured key decrypts.
    """
    rotated = 0
    with transaction.atomic():
        channels = Channel.objects.select_for_update().exclude(secrets_encrypted="")
        for channel in channels.order_by("pk"):
            try:
                channel.secrets_encrypted = rotate_secrets(channel.secrets_encrypted)
            except InvalidToken:
                raise BackendError(
                    f"The secrets of channel {channel.pk} cannot be decrypted with any key of "
                    "FIELD_ENCRYPTION_KEYS; nothing was rotated."
                ) from None
            channel.save(update_fields=["secrets_encrypted", "updated_at"])
            rotated += 1
    logger.info("rotated the secrets of %s channels", rotated)
    return rotated
