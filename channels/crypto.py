"""Encryption at rest of channel secrets (Fernet; several keys for rotation: MultiFernet).

FIELD_ENCRYPTION_KEYS lists Fernet keys, newest first: new values are encrypted with the first,
any listed key decrypts. Rotation (docs/adding-a-channel.md, "Secrets and key rotation"): put a
new key in front, deploy, run ``manage.py rotate_channel_secrets`` (re-encrypts every channel
with the new key), then drop the old key.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver


@lru_cache(maxsize=1)
def _fernet() -> MultiFernet:
    keys: list[str] = list(settings.FIELD_ENCRYPTION_KEYS)
    if not keys:
        if not settings.DEBUG and not getattr(settings, "TESTING", False):
            raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is not set.")
        # Development only: a key derived from SECRET_KEY.
        digest = hashlib.sha256(f"channels:{settings.SECRET_KEY}".encode()).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key.strip()))
        except ValueError:
            raise ImproperlyConfigured(
                f"FIELD_ENCRYPTION_KEYS: key number {position} is not a Fernet key "
                "(32 url-safe base64-encoded bytes)."
            ) from None
    return MultiFernet(fernets)


@receiver(setting_changed)
def _forget_keys(*, setting: str, **kwargs: Any) -> None:
    # Tests (and override_settings) change the keys: build the MultiFernet again.
    if setting in {"FIELD_ENCRYPTION_KEYS", "SECRET_KEY", "DEBUG"}:
        _fernet.cache_clear()


def encrypt_secrets(secrets: Mapping[str, str]) -> str:
    """Encrypt a mapping of secret values; an empty mapping is stored as ""."""
    if not secrets:
        return ""
    return _fernet().encrypt(json.dumps(dict(secrets), sort_keys=True).encode()).decode()


def decrypt_secrets(token: str) -> dict[str, str]:
    """Decrypt what encrypt_secrets produced. Raises InvalidToken when no key fits."""
    if not token:
        return {}
    data: dict[str, str] = json.loads(_fernet().decrypt(token.encode()))
    return data


def rotate_secrets(token: str) -> str:
    """Re-encrypt with the newest key (after adding one at the front of the list).

    Raises InvalidToken when no configured key decrypts ``token``.
    """
    return _fernet().rotate(token.encode()).decode() if token else ""


__all__ = ["InvalidToken", "decrypt_secrets", "encrypt_secrets", "rotate_secrets"]
