"""Signed tokens in the links sent to subscribers, and the URLs and headers built from them.

Contract used by the delivery engine, which must not query per recipient:
``manage_token(subscriber_id, token_key)`` needs only two columns it already loaded;
``preferences_url``, ``unsubscribe_url`` and ``list_unsubscribe_headers`` build on the token.
Rotating a subscriber's ``token_key`` invalidates every link sent before.

Manage tokens do not expire (docs/decisions/0020-subscriber-tokens.md): an unsubscribe link in a
months-old email must still work. Confirmation tokens expire after
``SUBSCRIBERS_CONFIRMATION_MAX_AGE_DAYS``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
import zlib
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.urls import reverse

from subscribers.exceptions import SubscribersError

MANAGE_SALT = "subscribers.manage"
CONFIRM_SALT = "subscribers.confirm"


class TokenError(SubscribersError):
    """A link's token cannot be used. ``reason`` is ``invalid`` (forged, altered) or ``expired``;
    the code is ``invalid_link`` or ``expired_link``, as InvalidLinkError's."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, code=f"{reason}_link")
        self.reason = reason


@dataclass(frozen=True)
class TokenClaims:
    """What a valid token says: which subscriber, and the token_key it was issued under."""

    subscriber_id: int
    token_key: str


def manage_token(subscriber_id: int, token_key: uuid.UUID | str) -> str:
    """A token for the preference center and one-click unsubscribe links."""
    return signing.dumps([subscriber_id, str(token_key)], salt=MANAGE_SALT, compress=True)


class ManageTokenSigner:
    """``manage_token`` for many subscribers: the same tokens, signed with a key derived once.

    ``signing.dumps`` derives the HMAC key from the salt and SECRET_KEY (one hash) and builds a
    signer for every token: about 40 µs, more than the rest of a bulk email's personalisation.
    This signer derives the key once (for one batch) and copies a keyed HMAC per token; the
    output is byte for byte what ``manage_token`` gives at the same second (a test compares
    them), so ``read_manage_token`` reads it as any other.
    """

    def __init__(self) -> None:
        signer = signing.TimestampSigner(salt=MANAGE_SALT)
        self._sep = signer.sep
        digest = getattr(hashlib, signer.algorithm)
        key = digest(_bytes(signer.salt) + b"signer" + _bytes(signer.key)).digest()
        self._mac = hmac.new(key, digestmod=digest)

    def __call__(self, subscriber_id: int, token_key: uuid.UUID | str) -> str:
        # signing.dumps(..., compress=True): JSON, zlib only when it saves more than a byte.
        data = json.dumps([subscriber_id, str(token_key)], separators=(",", ":")).encode("latin-1")
        compressed = zlib.compress(data)
        if len(compressed) < len(data) - 1:
            payload = "." + signing.b64_encode(compressed).decode()
        else:
            payload = signing.b64_encode(data).decode()
        value = f"{payload}{self._sep}{signing.b62_encode(int(time.time()))}"
        mac = self._mac.copy()
        mac.update(value.encode())
        return f"{value}{self._sep}{signing.b64_encode(mac.digest()).decode()}"


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def confirmation_token(subscriber_id: int, token_key: uuid.UUID | str) -> str:
    """A token for the double opt-in link; it expires (see ``read_confirmation_token``)."""
    return signing.dumps([subscriber_id, str(token_key)], salt=CONFIRM_SALT, compress=True)


def confirmation_max_age() -> timedelta:
    return timedelta(days=settings.SUBSCRIBERS_CONFIRMATION_MAX_AGE_DAYS)


def _read(token: str, salt: str, max_age: timedelta | None) -> TokenClaims:
    try:
        payload = signing.loads(token, salt=salt, max_age=max_age)
    except signing.SignatureExpired as exc:
        raise TokenError("expired") from exc
    except signing.BadSignature as exc:
        raise TokenError("invalid") from exc
    # A valid signature over an unexpected shape can only come from our own bug; still refuse it.
    if (
        not isinstance(payload, list)
        or len(payload) != 2
        or not isinstance(payload[0], int)
        or not isinstance(payload[1], str)
    ):
        raise TokenError("invalid")
    return TokenClaims(subscriber_id=payload[0], token_key=payload[1])


def read_manage_token(token: str) -> TokenClaims:
    """The claims of a preference-center or unsubscribe token.

    Raises TokenError("invalid") when the signature does not match. Whether the subscriber
    still exists with that token_key is for the caller (services.access_subscriber) to check.
    """
    return _read(token, MANAGE_SALT, None)


def read_confirmation_token(token: str) -> TokenClaims:
    """The claims of a confirmation token; TokenError("expired") once it is too old."""
    return _read(token, CONFIRM_SALT, confirmation_max_age())


def preferences_url(token: str) -> str:
    return settings.SITE_URL + reverse("subscribers:preferences", args=[token])


def unsubscribe_url(token: str) -> str:
    return settings.SITE_URL + reverse("subscribers:unsubscribe", args=[token])


def confirm_url(token: str) -> str:
    return settings.SITE_URL + reverse("subscribers:confirm", args=[token])


def list_unsubscribe_headers(token: str) -> dict[str, str]:
    """RFC 2369 / RFC 8058 headers for a bulk email to this subscriber."""
    targets = [f"<{unsubscribe_url(token)}>"]
    inbound = getattr(settings, "UNSUBSCRIBE_MAILTO", "")
    if inbound:
        targets.append(f"<mailto:{inbound}?subject=unsubscribe>")
    return {
        "List-Unsubscribe": ", ".join(targets),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


_TOKEN_ALPHABET = re.compile(r"[A-Za-z0-9_\-:.]+")


@dataclass(frozen=True)
class SubscriberLinks:
    """The preference and unsubscribe links and List-Unsubscribe headers of a batch.

    subscribers.tokens builds them once around a sample token; each recipient's are then the
    same strings with their own token in its place (three reverse() calls per recipient cost
    more than the whole MIME message). A token outside the signing alphabet, which reverse()
    would have to quote, goes through subscribers.tokens directly.
    """

    sample: str
    preferences: list[str]
    unsubscribe: list[str]
    headers: dict[str, list[str]]
    #: Signs each recipient's manage token with a key derived once per batch.
    sign: ManageTokenSigner

    @classmethod
    def build(cls) -> SubscriberLinks:
        sample = manage_token(0, "00000000-0000-0000-0000-000000000000")
        return cls(
            sample=sample,
            preferences=preferences_url(sample).split(sample),
            unsubscribe=unsubscribe_url(sample).split(sample),
            headers={k: v.split(sample) for k, v in list_unsubscribe_headers(sample).items()},
            sign=ManageTokenSigner(),
        )

    def for_token(self, token: str) -> tuple[str, str, dict[str, str]]:
        """(preferences URL, unsubscribe URL, List-Unsubscribe headers) for ``token``."""
        if (
            len(self.preferences) < 2
            or len(self.unsubscribe) < 2
            or not _TOKEN_ALPHABET.fullmatch(token)
        ):
            return preferences_url(token), unsubscribe_url(token), list_unsubscribe_headers(token)
        return (
            token.join(self.preferences),
            token.join(self.unsubscribe),
            {key: token.join(parts) for key, parts in self.headers.items()},
        )
