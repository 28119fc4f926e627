"""Signed tokens in the links sent to subscribers, and the URLs and headers built from them.

Contract used by the delivery engine, which must not query per recipient:
``manage_token(subscriber_id, token_key)`` and ``unsubscribe_token(subscriber_id, token_key)``
need only two columns it already loaded; ``preferences_url`` builds on the manage token,
``unsubscribe_url`` and ``list_unsubscribe_headers`` on the unsubscribe token. Rotating a
subscriber's ``token_key`` invalidates every link sent before.

Three kinds, three salts, none accepted as another (docs/decisions/0020-subscriber-tokens.md,
0072-an-unsubscribe-only-token.md): the manage token opens the preference center (data download
and erasure included); the unsubscribe token can only unsubscribe, so the List-Unsubscribe header
a mailbox provider keeps, or a log line, cannot read or erase anyone; the confirmation token
confirms. Manage and unsubscribe tokens do not expire: an unsubscribe link in a months-old email
must still work. Confirmation tokens expire after ``SUBSCRIBERS_CONFIRMATION_MAX_AGE_DAYS``.

Tokens are not compressed (decision 0066): a subscriber id and a random key never shrink under
zlib, and trying cost a bulk email three deflate states; tokens signed compressed before still
read, as ``signing.loads`` accepts both forms.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.urls import reverse

from subscribers.exceptions import SubscribersError

MANAGE_SALT = "subscribers.manage"
UNSUBSCRIBE_SALT = "subscribers.unsubscribe"
CONFIRM_SALT = "subscribers.confirm"
FEEDBACK_SALT = "subscribers.feedback"
#: The two answers a "more like this" / "less like this" link can carry (the URL's last part).
FEEDBACK_CHOICES = ("more", "less")


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
    """A token for the preference-center links (and nothing else: not the one-click POST)."""
    return signing.dumps([subscriber_id, str(token_key)], salt=MANAGE_SALT)


def unsubscribe_token(subscriber_id: int, token_key: uuid.UUID | str) -> str:
    """A token for the unsubscribe links only (List-Unsubscribe, the emails' footer link)."""
    return signing.dumps([subscriber_id, str(token_key)], salt=UNSUBSCRIBE_SALT)


#: ``json.dumps(..., separators=(",", ":"))`` as ``signing.dumps`` encodes, built once (with
#: those arguments ``json.dumps`` builds an encoder at every call).
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


class ManageTokenSigner:
    """``manage_token`` for many subscribers: the same tokens, signed with a key derived once.

    ``signing.dumps`` derives the HMAC key from the salt and SECRET_KEY (one hash) and builds a
    signer for every token: about 40 µs, more than the rest of a bulk email's personalisation.
    This signer derives the key once (for one batch) and copies a keyed HMAC per token; the
    output is byte for byte what ``manage_token`` gives at the same second (a test compares
    them), so ``read_manage_token`` reads it as any other. With ``salt=UNSUBSCRIBE_SALT`` it
    gives ``unsubscribe_token``'s tokens instead.
    """

    def __init__(self, salt: str = MANAGE_SALT) -> None:
        signer = signing.TimestampSigner(salt=salt)
        self._sep = signer.sep
        digest = getattr(hashlib, signer.algorithm)
        key = digest(_bytes(signer.salt) + b"signer" + _bytes(signer.key)).digest()
        self._mac = hmac.new(key, digestmod=digest)
        # The timestamp's text, made once a second, not once a token.
        self._second = -1
        self._stamp = ""

    def __call__(self, subscriber_id: int, token_key: uuid.UUID | str) -> str:
        return self.dumps([subscriber_id, str(token_key)])

    def dumps(self, payload: list[int | str]) -> str:
        """``signing.dumps(payload, salt=...)``, with the key derived once."""
        encoded = signing.b64_encode(_COMPACT_JSON.encode(payload).encode()).decode()
        second = int(time.time())
        if second != self._second:
            self._second, self._stamp = second, signing.b62_encode(second)
        value = f"{encoded}{self._sep}{self._stamp}"
        mac = self._mac.copy()
        mac.update(value.encode())
        return f"{value}{self._sep}{signing.b64_encode(mac.digest()).decode()}"


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def confirmation_token(subscriber_id: int, token_key: uuid.UUID | str) -> str:
    """A token for the double opt-in link; it expires (see ``read_confirmation_token``)."""
    return signing.dumps([subscriber_id, str(token_key)], salt=CONFIRM_SALT)


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
    """The claims of a preference-center token (an unsubscribe token is refused).

    Raises TokenError("invalid") when the signature does not match. Whether the subscriber
    still exists with that token_key is for the caller (services.access_subscriber) to check.
    """
    return _read(token, MANAGE_SALT, None)


def read_unsubscribe_token(token: str) -> TokenClaims:
    """The claims of an unsubscribe token (a manage token is refused); never expires."""
    return _read(token, UNSUBSCRIBE_SALT, None)


def read_confirmation_token(token: str) -> TokenClaims:
    """The claims of a confirmation token; TokenError("expired") once it is too old."""
    return _read(token, CONFIRM_SALT, confirmation_max_age())


@dataclass(frozen=True)
class FeedbackClaims:
    """What a valid feedback token says: the subscriber (and token_key) and the publication."""

    subscriber_id: int
    token_key: str
    publication_id: int


def feedback_token(subscriber_id: int, token_key: uuid.UUID | str, publication_id: int) -> str:
    """A token for one subscriber's "more/less like this" links to one publication (decision
    0080); it expires after FEEDBACK_LINK_MAX_AGE_DAYS and can do nothing else."""
    return signing.dumps([subscriber_id, str(token_key), publication_id], salt=FEEDBACK_SALT)


def read_feedback_token(token: str) -> FeedbackClaims:
    """The claims of a feedback token: TokenError("expired") once older than
    FEEDBACK_LINK_MAX_AGE_DAYS, TokenError("invalid") when forged, altered or of another kind."""
    try:
        payload = signing.loads(
            token,
            salt=FEEDBACK_SALT,
            max_age=timedelta(days=settings.FEEDBACK_LINK_MAX_AGE_DAYS),
        )
    except signing.SignatureExpired as exc:
        raise TokenError("expired") from exc
    except signing.BadSignature as exc:
        raise TokenError("invalid") from exc
    if (
        not isinstance(payload, list)
        or len(payload) != 3
        or not isinstance(payload[0], int)
        or not isinstance(payload[1], str)
        or not isinstance(payload[2], int)
    ):
        raise TokenError("invalid")
    return FeedbackClaims(payload[0], payload[1], payload[2])


def feedback_url(token: str, choice: str) -> str:
    """The page confirming ``choice`` ("more" or "less") for the publication ``token`` names."""
    return settings.SITE_URL + reverse("subscribers:feedback", args=[token, choice])


def preferences_url(token: str) -> str:
    return settings.SITE_URL + reverse("subscribers:preferences", args=[token])


def unsubscribe_url(token: str) -> str:
    return settings.SITE_URL + reverse("subscribers:unsubscribe", args=[token])


def confirm_url(token: str) -> str:
    return settings.SITE_URL + reverse("subscribers:confirm", args=[token])


def list_unsubscribe_headers(token: str) -> dict[str, str]:
    """RFC 2369 / RFC 8058 headers for a bulk email to this subscriber; ``token`` is their
    unsubscribe token (mailbox providers keep these headers: never the manage token)."""
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

    subscribers.tokens builds them once around sample tokens (one manage, one unsubscribe);
    each recipient's are then the same strings with their own tokens in place (three reverse()
    calls per recipient cost more than the whole MIME message). A token outside the signing
    alphabet, which reverse() would have to quote, goes through subscribers.tokens directly.
    """

    preferences: list[str]
    unsubscribe: list[str]
    headers: dict[str, list[str]]
    #: Signs each recipient's manage token with a key derived once per batch.
    sign: ManageTokenSigner
    #: Signs each recipient's unsubscribe token with a key derived once per batch.
    sign_unsubscribe: ManageTokenSigner
    #: The "more like this" and "less like this" URLs around a sample feedback token.
    feedback: dict[str, list[str]]
    #: Signs each recipient's feedback token with a key derived once per batch.
    sign_feedback: ManageTokenSigner

    @classmethod
    def build(cls) -> SubscriberLinks:
        key = "00000000-0000-0000-0000-000000000000"
        manage, unsubscribe = manage_token(0, key), unsubscribe_token(0, key)
        feedback = feedback_token(0, key, 0)
        return cls(
            preferences=preferences_url(manage).split(manage),
            unsubscribe=unsubscribe_url(unsubscribe).split(unsubscribe),
            headers={
                k: v.split(unsubscribe) for k, v in list_unsubscribe_headers(unsubscribe).items()
            },
            sign=ManageTokenSigner(),
            sign_unsubscribe=ManageTokenSigner(salt=UNSUBSCRIBE_SALT),
            feedback={
                choice: feedback_url(feedback, choice).split(feedback)
                for choice in FEEDBACK_CHOICES
            },
            sign_feedback=ManageTokenSigner(salt=FEEDBACK_SALT),
        )

    def feedback_for(
        self, subscriber_id: int, token_key: uuid.UUID | str, publication_id: int
    ) -> tuple[str, str]:
        """("more like this" URL, "less like this" URL) of one recipient and publication."""
        token = self.sign_feedback.dumps([subscriber_id, str(token_key), publication_id])
        if not _TOKEN_ALPHABET.fullmatch(token) or any(
            len(parts) < 2 for parts in self.feedback.values()
        ):
            return feedback_url(token, "more"), feedback_url(token, "less")
        return token.join(self.feedback["more"]), token.join(self.feedback["less"])

    def for_subscriber(
        self, subscriber_id: int, token_key: uuid.UUID | str
    ) -> tuple[str, str, dict[str, str]]:
        """(preferences URL, unsubscribe URL, List-Unsubscribe headers) for one recipient."""
        return self.for_tokens(
            self.sign(subscriber_id, token_key), self.sign_unsubscribe(subscriber_id, token_key)
        )

    def for_tokens(self, manage: str, unsubscribe: str) -> tuple[str, str, dict[str, str]]:
        """(preferences URL, unsubscribe URL, List-Unsubscribe headers) for these tokens."""
        if (
            len(self.preferences) < 2
            or len(self.unsubscribe) < 2
            or not _TOKEN_ALPHABET.fullmatch(manage)
            or not _TOKEN_ALPHABET.fullmatch(unsubscribe)
        ):
            return (
                preferences_url(manage),
                unsubscribe_url(unsubscribe),
                list_unsubscribe_headers(unsubscribe),
            )
        return (
            manage.join(self.preferences),
            unsubscribe.join(self.unsubscribe),
            {key: unsubscribe.join(parts) for key, parts in self.headers.items()},
        )
