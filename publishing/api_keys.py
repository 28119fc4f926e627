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
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from config.cache import cache_add_json, cache_get_json, cache_set_json
from config.errors import ProjectError
from publishing.models import API_KEY_PREFIX_LENGTH, ApiKey, ApiScope

logger = logging.getLogger(__name__)

KEY_PREFIX = "pk_"
_ALPHABET = string.ascii_letters + string.digits
MAX_NAME_LENGTH = 100


class ApiKeyError(ProjectError, ValueError):
    """Invalid input for a key: ``field`` names it; ``str()`` is ``"field: message"``.

    A ProjectError like every app's error (decision 0069), and still a ValueError, which it was
    first: callers catching that keep working.
    """

    code = "invalid_api_key"
    status = 400

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)


@dataclass(frozen=True)
class NewApiKey:
    api_key: ApiKey
    #: The key in clear: give it to its user now, it cannot be shown again.
    key: str


def prefix_of(key: str) -> str | None:
    """The visible prefix of ``key``, or None when it does not have the shape of a key."""
    prefix = key[:API_KEY_PREFIX_LENGTH]
    if not prefix.startswith(KEY_PREFIX) or not prefix.isascii() or len(key) <= len(prefix):
        return None
    return prefix


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


# --- Checking keys ------------------------------------------------------------------------------
#
# A request checks its key against a snapshot kept in the shared cache under the key's prefix (one
# Redis GET, about 0.1 ms) instead of an ORM query (about 1 ms, most of it building the query).
# The snapshot lives API_KEY_LAST_USED_INTERVAL seconds: the request that refills it from the
# database is the one that records the key's last use, so a busy key writes once per interval.
# A change that can make a key unusable replaces its snapshot with a tombstone for
# TOMBSTONE_TTL seconds (the key's own save or deletion: revocation, cascades; its owner's save
# or deletion: deactivation), both at once and after the transaction commits. Snapshots are
# only ever written where nothing is stored (SET NX), so a request that read the key just before
# it was revoked cannot put the old state back (decision 0054). Expiry dates are checked on
# every request.

TOMBSTONE_TTL = 30
_TOMBSTONE = {"forgotten": True}
_SNAPSHOT_FIELDS = ("id", "name", "owner_id", "scopes", "prefix", "hashed_key")
_SNAPSHOT_DATES = ("created_at", "last_used_at", "expires_at", "revoked_at")


def snapshot_cache_key(prefix: str) -> str:
    return f"api-key:{prefix}"


def snapshot(api_key: ApiKey, owner_active: bool) -> dict[str, Any]:
    data: dict[str, Any] = {name: getattr(api_key, name) for name in _SNAPSHOT_FIELDS}
    for name in _SNAPSHOT_DATES:
        value = getattr(api_key, name)
        data[name] = value.isoformat() if value is not None else None
    data["owner_active"] = owner_active
    return data


def _from_snapshot(data: dict[str, Any]) -> tuple[ApiKey, bool]:
    fields = {name: data[name] for name in _SNAPSHOT_FIELDS}
    for name in _SNAPSHOT_DATES:
        value = data[name]
        fields[name] = datetime.fromisoformat(value) if value is not None else None
    return ApiKey(**fields), bool(data["owner_active"])


#: ``authenticate_key``'s ``cached`` when the snapshot was not read beforehand.
UNREAD: Any = object()


def _lookup(prefix: str, now: datetime, cached: Any) -> tuple[ApiKey, bool] | None:
    """The key with this prefix and whether its owner (if any) is active, from its snapshot or
    else from the database (one query; this request then records the key's use)."""
    cache_key = snapshot_cache_key(prefix)
    if cached is UNREAD:
        cached = cache_get_json(cache_key)
    if cached is not None and "forgotten" not in cached:
        return _from_snapshot(cached)
    api_key = next(iter(ApiKey.objects.select_related("owner").filter(prefix=prefix)), None)
    if api_key is None:
        return None
    owner_active = api_key.owner is None or api_key.owner.is_active
    interval = settings.API_KEY_LAST_USED_INTERVAL
    last_used = api_key.last_used_at
    recent = last_used is not None and now - last_used < timedelta(seconds=interval)
    if owner_active and api_key.is_usable(now) and not recent:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    if cached is None and interval > 0:
        cache_add_json(cache_key, snapshot(api_key, owner_active), interval)
    return api_key, owner_active


def forget_snapshots(prefixes: Iterable[str]) -> None:
    """Replace these keys' snapshots with tombstones, now and once the transaction commits:
    until then and for TOMBSTONE_TTL seconds after, each use of these keys reads the database."""
    keys = [snapshot_cache_key(prefix) for prefix in prefixes]

    def bury() -> None:
        for key in keys:
            cache_set_json(key, _TOMBSTONE, TOMBSTONE_TTL)

    if keys:
        bury()
        transaction.on_commit(bury)


def authenticate_key(key: str, now: datetime | None = None, cached: Any = UNREAD) -> ApiKey | None:
    """The usable key matching ``key``, or None (unknown, wrong secret, revoked, expired, or
    owned by a deactivated user).

    At most one query, none while the key's snapshot is cached; the comparison of hashes takes
    constant time. The key's ``owner`` is loaded when first used. ``cached``: the snapshot as
    read from the cache by the caller (None if absent), when it read it already.
    """
    now = now or timezone.now()
    prefix = prefix_of(key)
    if prefix is None:
        return None
    found = _lookup(prefix, now, cached)
    if found is None:
        return None
    api_key, owner_active = found
    if not hmac.compare_digest(api_key.hashed_key, hash_key(key)):
        return None
    if not owner_active or not api_key.is_usable(now):
        return None
    return api_key


def forget_key_snapshot(sender: type[ApiKey], instance: ApiKey, **kwargs: Any) -> None:
    """post_save and post_delete of a key. A new key has no snapshot yet (unknown prefixes are
    not cached)."""
    if not kwargs.get("created"):
        forget_snapshots([instance.prefix])


def forget_owner_snapshots(sender: type[User], instance: User, **kwargs: Any) -> None:
    """post_save of a user: the snapshots of the user's keys carry whether the user is active.
    A login, which writes only ``last_login``, changes nothing here."""
    update_fields = kwargs.get("update_fields")
    if instance.pk is None or (update_fields is not None and set(update_fields) <= {"last_login"}):
        return
    forget_snapshots(ApiKey.objects.filter(owner=instance).values_list("prefix", flat=True))


def revoke_api_key(api_key: ApiKey) -> ApiKey:
    """Revoke a key from now on; revoking twice keeps the first time."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        logger.info("API key %s revoked", api_key.pk)
    return api_key
