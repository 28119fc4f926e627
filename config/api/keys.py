"""The API keys the toolkit checks, taken by dotted path from the app that owns them.

API keys belong to an app (publishing: the ``ApiKey`` model and its cached snapshots, decisions
0050 and 0054). The toolkit authenticates requests with them, counts each key's requests and
tells views who acts, without importing that app (decision 0069). Four settings name what it
uses (docs/configuration.md):

- ``API_KEY_MODEL``: the key model, ``"app_label.ModelName"`` (``apps.get_model``). Its
  instances are ``ApiKeyLike``: ``owner``, ``owner_id`` and ``has_scope(scope)``.
- ``API_KEY_AUTHENTICATE``: ``authenticate(key, cached=...)``, the usable key matching the
  clear ``key`` or None; ``cached`` is the key's snapshot as the caller read it from the cache
  (None: nothing cached), left out when the caller has not read it.
- ``API_KEY_PREFIX_OF``: ``prefix_of(key)``, the key's visible prefix (naming its per-key rate
  limit and its snapshot, read before the key is checked), or None when ``key`` does not have
  the shape of a key.
- ``API_KEY_SNAPSHOT_CACHE_KEY``: ``snapshot_cache_key(prefix)``, the cache key under which the
  snapshot of the key with this visible prefix is stored as JSON.

``api_keys()`` resolves them on first use and keeps them: a request makes one cached call, no
import or model lookup (authentication is on the API's hot path, bench/api.py). A test that
overrides one of these settings gets them resolved again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.db.models import Model
from django.dispatch import receiver
from django.utils.module_loading import import_string

SETTINGS = (
    "API_KEY_MODEL",
    "API_KEY_AUTHENTICATE",
    "API_KEY_PREFIX_OF",
    "API_KEY_SNAPSHOT_CACHE_KEY",
)


class ApiKeyLike(Protocol):
    """What the toolkit uses of a key: who acts (``owner``, None for the system) and its scopes."""

    @property
    def owner_id(self) -> Any: ...

    @property
    def owner(self) -> Any: ...

    def has_scope(self, scope: str) -> bool: ...


@dataclass(frozen=True)
class ApiKeys:
    """The key model and functions the settings name, resolved."""

    model: type[Model]
    authenticate: Callable[..., ApiKeyLike | None]
    prefix_of: Callable[[str], str | None]
    snapshot_cache_key: Callable[[str], str]

    def is_key(self, value: object) -> TypeGuard[ApiKeyLike]:
        """Whether ``value`` (a request's ``auth``) is an API key, rather than None (a staff
        session) or another authentication's credentials."""
        return isinstance(value, self.model)


def _function(setting: str) -> Callable[..., Any]:
    path = getattr(settings, setting)
    try:
        function: Callable[..., Any] = import_string(path)
    except ImportError as error:
        raise ImproperlyConfigured(f"{setting}: cannot import {path!r} ({error}).") from error
    return function


@functools.cache
def api_keys() -> ApiKeys:
    """The resolved API key settings: ImproperlyConfigured names the one that does not resolve.
    Call it while handling a request, not at import time (the model needs the app registry)."""
    try:
        model = apps.get_model(settings.API_KEY_MODEL)
    except (LookupError, ValueError) as error:
        raise ImproperlyConfigured(
            f"API_KEY_MODEL: no model {settings.API_KEY_MODEL!r} ({error})."
        ) from error
    return ApiKeys(
        model=model,
        authenticate=_function("API_KEY_AUTHENTICATE"),
        prefix_of=_function("API_KEY_PREFIX_OF"),
        snapshot_cache_key=_function("API_KEY_SNAPSHOT_CACHE_KEY"),
    )


@receiver(setting_changed)
def _forget_resolved(*, setting: str, **kwargs: Any) -> None:
    if setting in SETTINGS:
        api_keys.cache_clear()
