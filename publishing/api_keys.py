"""API keys: creation (the only moment the key exists in clear), checking, revocation.

A key reads ``pk_XXXXXXXX_<43 characters>``: the first 11 characters are the visible prefix
(stored, indexed, shown in the admin so a leaked key can be found), the whole key is stored only
as its SHA-256. The secret part carries 256 random bits, so a fast hash is enough: nobody can
guess such a key from its hash (decision 0050).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone

from publishing.models import API_KEY_PREFIX_LENGTH, ApiKey, ApiScope

logger = logging.getLogger(__name__)

KEY_PREFIX = "pk_"
_ALPHABET = string.ascii_letters + string.digits
MAX_NAME_LENGTH = 100


class ApiKeyError(ValueError):
    """Invalid input for a key: ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class NewApiKey:
    api_key: ApiKey
    #: The key in clear: give it to its user now, it cannot be shown again.
    key: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_scopes(scopes: Iterable[str]) -> list[str]:
    """The scopes, deduplicated and sorted. Raises ApiKeyError naming an unknown one."""
    wanted = sorted(set(scopes))
    unknown = [scope for scope in wanted if scope not in ApiScope.values]
    if unknown:
        raise ApiKeyError(
            "scopes",
            f"Unknown scope {unknown[0]!r}; known scopes: {', '.join(ApiScope.values)}.",
        )
    if not wanted:
        raise ApiKeyError("scopes", "Give at least one scope.")
    return wanted


def create_api_key(
    *,
    name: str,
    scopes: Iterable[str],
    owner: User | None = None,
    expires_at: datetime | None = None,
) -> NewApiKey:
    """Create a key and return it with its clear text (shown once). Raises ApiKeyError."""
    name = name.strip()
    if not name:
        raise ApiKeyError("name", "Give the key a name.")
    if len(name) > MAX_NAME_LENGTH:
        raise ApiKeyError("name", f"The name is longer than {MAX_NAME_LENGTH} characters.")
    checked = check_scopes(scopes)
    if expires_at is not None and expires_at <= timezone.now():
        raise ApiKeyError("expires", "The expiry date is in the past.")
    while True:
        prefix = KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(8))
        if not ApiKey.objects.filter(prefix=prefix).exists():
            break
    key = f"{prefix}_{secrets.token_urlsafe(32)}"
    assert len(prefix) == API_KEY_PREFIX_LENGTH  # noqa: S101 (a constant's invariant)
    api_key = ApiKey.objects.create(
        name=name,
        owner=owner,
        scopes=checked,
        prefix=prefix,
        hashed_key=hash_key(key),
        expires_at=expires_at,
    )
    logger.info("API key %s (%s) created", api_key.pk, prefix)
    return NewApiKey(api_key=api_key, key=key)


def authenticate_key(key: str, now: datetime | None = None) -> ApiKey | None:
    """The usable key matching ``key``, or None (unknown, wrong secret, revoked or expired).

    One query; the comparison of hashes takes constant time. Records the use at most once per
    API_KEY_LAST_USED_INTERVAL seconds, so a busy key does not write on every request.
    """
    now = now or timezone.now()
    prefix = key[:API_KEY_PREFIX_LENGTH]
    if not prefix.startswith(KEY_PREFIX) or len(key) <= API_KEY_PREFIX_LENGTH:
        return None
    api_key = next(iter(ApiKey.objects.select_related("owner").filter(prefix=prefix)), None)
    if api_key is None or not hmac.compare_digest(api_key.hashed_key, hash_key(key)):
        return None
    if not api_key.is_usable(now):
        return None
    interval = timedelta(seconds=settings.API_KEY_LAST_USED_INTERVAL)
    if api_key.last_used_at is None or now - api_key.last_used_at >= interval:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


def revoke_api_key(api_key: ApiKey) -> ApiKey:
    """Revoke a key from now on; revoking twice keeps the first time."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        logger.info("API key %s revoked", api_key.pk)
    return api_key
