"""API key authentication: ``Authorization: Bearer pk_XXXXXXXX_...``.

Its ``authenticate_header`` makes DRF answer 401 (with ``WWW-Authenticate: Bearer``) when
credentials are missing, instead of 403. ``request.auth`` is the ApiKey; ``request.user`` is the
key's owner (loaded when first used), or an anonymous user for a key acting as the system.
The key model and the function that checks a key are the ones the API_KEY_* settings name
(config.api.keys): this module imports no app.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.utils.functional import SimpleLazyObject
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from config.api.keys import ApiKeyLike, api_keys
from config.api.prefetch import prefetched

MAX_KEY_LENGTH = 200


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiKeyLike] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2 or len(header[1]) > MAX_KEY_LENGTH:
            raise exceptions.AuthenticationFailed("Give the key as 'Authorization: Bearer <key>'.")
        try:
            key = header[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed("The API key is not valid.") from None
        found = prefetched(request)
        authenticate = api_keys().authenticate
        # Without a prefetch, the key's own check reads its snapshot.
        api_key = authenticate(key, cached=found.snapshot) if found else authenticate(key)
        if api_key is None:
            # One answer for unknown, wrong, revoked and expired keys: nothing to probe.
            raise exceptions.AuthenticationFailed("The API key is not valid, or has expired.")
        if api_key.owner_id is None:
            return (AnonymousUser(), api_key)
        # The owner is read only when something asks for it (the services, on writes): a read
        # checked against the key's cached snapshot makes no query at all.
        return (SimpleLazyObject(lambda: api_key.owner), api_key)

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'


class StaffSessionAuthentication(authentication.SessionAuthentication):
    """Staff sessions for the browsable API; CSRF is enforced on unsafe methods as usual."""

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        result = super().authenticate(request)
        if result is None or not result[0].is_staff:
            return None
        return result
