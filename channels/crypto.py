"""Encryption at rest of channel secrets (Fernet; several keys for rotation: MultiFernet).

FIELD_ENCRYPTION_KEYS lists Fernet keys, newest first: new values are encrypted with the first,
any listed key decrypts. See docs/operations.md for rotation.
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@lru_cache(maxsize=1)
def _fernet() -> MultiFernet:
    keys: list[str] = list(settings.FIELD_ENCRYPTION_KEYS)
    if not keys:
        if not settings.DEBUG and not getattr(settings, "TESTING", False):
            raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is not set.")
        # Development only: a key derived from SECRET_KEY.
        digest = hashlib.sha256(f"channels:{settings.SECRET_KEY}".encode()).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
    return MultiFernet([Fernet(key) for key in keys])


def encrypt_secrets(secrets: dict[str, str]) -> str:
    """Encrypt a mapping of secret values; an empty mapping is stored as ""."""
    if not secrets:
        return ""
    return _fernet().encrypt(json.dumps(secrets, sort_keys=True).encode()).decode()


def decrypt_secrets(token: str) -> dict[str, str]:
    """Decrypt what encrypt_secrets produced. Raises InvalidToken when no key fits."""
    if not token:
        return {}
    data: dict[str, str] = json.loads(_fernet().decrypt(token.encode()))
    return data


def rotate_secrets(token: str) -> str:
    """Re-encrypt with the newest key (after adding one at the front of the list)."""
    return _fernet().rotate(token.encode()).decode() if token else ""


__all__ = ["InvalidToken", "decrypt_secrets", "encrypt_secrets", "rotate_secrets"]
