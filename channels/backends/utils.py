"""Helpers shared by the backends: Retry-After parsing and error text free of secrets."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from channels.backends.base import BackendError
from config.redaction import redact

#: Longest error text a backend returns (Delivery.last_error holds 1,000 characters).
MAX_ERROR_LENGTH = 500


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or an HTTP date), or None."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds)


def _secret_fragments(secrets: Iterable[str]) -> list[str]:
    fragments: list[str] = []
    for secret in secrets:
        if len(secret) < 4:
            continue
        fragments.append(secret)
        # A webhook URL is a credential: its path can appear alone in a library's error text.
        parts = urlsplit(secret)
        if parts.scheme in {"http", "https"} and len(parts.path) > 1:
            fragments.append(parts.path + (f"?{parts.query}" if parts.query else ""))
            fragments.append(parts.path)
    # Longest first, so a URL is removed whole before its path is looked for.
    return sorted(set(fragments), key=len, reverse=True)


def safe_error(text: object, secrets: Iterable[str] = ()) -> str:
    """Error text for logs and the ledger: known secret values removed, then redacted, shortened.

    ``secrets`` are the channel's own secret values (tokens, webhook URLs): they are removed
    verbatim, since config.redaction.redact only knows the shapes of well-known secrets.
    """
    message = str(text)
    for fragment in _secret_fragments(secrets):
        message = message.replace(fragment, "[redacted]")
    message = redact(message)
    if len(message) > MAX_ERROR_LENGTH:
        message = message[: MAX_ERROR_LENGTH - 1] + "…"
    return message


def required_secret(secrets: Mapping[str, str], name: str, kind: str) -> str:
    """``secrets[name]``, or BackendError when the channel has none (a configuration gap)."""
    value = secrets.get(name, "")
    if not value:
        raise BackendError(f"The {kind} channel has no {name}: configure it in the admin.")
    return value
