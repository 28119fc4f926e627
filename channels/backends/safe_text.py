"""Error text for the ledger and the logs, free of a channel's secrets.

Kept apart from channels.backends.base and .utils so that both can use it without importing
each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from config.redaction import redact

#: Longest error text a backend returns (Delivery.last_error holds 1,000 characters).
MAX_ERROR_LENGTH = 500


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
