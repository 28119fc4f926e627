"""The base every API viewset builds on: key or staff-session authentication, scopes,
conditional requests, idempotent POSTs, and the apps' errors as problem details.

Part of the config toolkit: it imports no app. Every app's errors are ``ProjectError``s
(config.errors) and are answered from what the base class carries (decision 0069); the key
model comes from the API_KEY_MODEL setting (config.api.keys).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request
from rest_framework.response import Response

from config.api.authentication import ApiKeyAuthentication, StaffSessionAuthentication
from config.api.conditional import ConditionalMixin
from config.api.exceptions import ProblemError
from config.api.idempotency import IdempotentMixin
from config.api.keys import api_keys
from config.api.permissions import HasScope
from config.api.prefetch import bearer_prefix, prefetch
from config.api.throttles import refusals
from config.errors import ProjectError

if TYPE_CHECKING:
    from rest_framework.permissions import _PermissionClass
else:
    _PermissionClass = Any

#: Django's key for errors about the input as a whole (NON_FIELD_ERRORS), and DRF's.
_WHOLE_INPUT = "__all__"
_NON_FIELD = "non_field_errors"


def translate(exc: Exception) -> Exception:
    """A ``ProjectError`` as the API exception carrying its code, status, message and fields;
    any other exception unchanged.

    With status 400 and input fields to blame (``field_errors()``), a validation problem with
    one entry per message (``__all__`` becomes the request as a whole); otherwise a problem with
    the error's code, status and message.
    """
    if not isinstance(exc, ProjectError):
        return exc
    by_field = exc.field_errors()
    if exc.status == 400 and by_field:
        return exceptions.ValidationError(
            {
                (_NON_FIELD if field == _WHOLE_INPUT else field): messages
                for field, messages in by_field.items()
            }
        )
    return ProblemError(exc.message, code=exc.code, status_code=exc.status)


class ApiViewMixin(ConditionalMixin, IdempotentMixin):
    """Mix into every API viewset, before the DRF base class."""

    authentication_classes: Sequence[type[BaseAuthentication]] = [
        ApiKeyAuthentication,
        StaffSessionAuthentication,
    ]
    permission_classes: Sequence[_PermissionClass] = [HasScope]
    required_scopes: dict[str, str | tuple[str, ...]] = {}
    hidden_actions: tuple[str, ...] = ()

    def filter_queryset(self, queryset: Any) -> Any:
        # Query-string filters apply to lists; one object's URL names it already.
        if getattr(self, "action", None) != "list":
            return queryset
        return super().filter_queryset(queryset)  # type: ignore[misc]

    _throttles_checked = False

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        if bearer_prefix(request) is not None:
            # A request with a key is counted before its key is checked, so a flood of wrong
            # keys meets the rate limits too (429, not an endless run of 401s). On Redis the
            # key's snapshot and the counters come in one round trip (decision 0054).
            prefetch(request, self)  # type: ignore[arg-type]
            self.check_throttles(request)
            self._throttles_checked = True
        super().initial(request, *args, **kwargs)

    def check_throttles(self, request: Request) -> None:
        if self._throttles_checked:
            return
        # Every scope's counter in one round trip (DRF's own loop makes one per throttle).
        waits = refusals(self.get_throttles(), request, self)  # type: ignore[attr-defined,arg-type]
        if waits:
            self.throttled(request, max(waits))  # type: ignore[attr-defined]

    def handle_exception(self, exc: Exception) -> Response:
        return super().handle_exception(translate(exc))  # type: ignore[misc,no-any-return]

    def actor(self) -> Any:
        """Who the services see acting: the key's owner, None (the system) for an ownerless
        key, the staff user for a session."""
        request: Request = self.request  # type: ignore[attr-defined]
        key = request.auth
        if api_keys().is_key(key):
            return key.owner
        return request.user
