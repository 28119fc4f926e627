"""The base every API viewset builds on: key or staff-session authentication, scopes,
conditional requests, idempotent POSTs, and the apps' service errors as problem details."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request
from rest_framework.response import Response

from channels.backends import BackendError
from channels.configuration import ChannelConfigurationError
from config.api.authentication import ApiKeyAuthentication, StaffSessionAuthentication
from config.api.conditional import ConditionalMixin
from config.api.exceptions import ProblemError
from config.api.idempotency import IdempotentMixin
from config.api.permissions import HasScope
from config.api.prefetch import bearer_prefix, prefetch
from config.api.throttles import refusals
from publishing.api_keys import ApiKeyError
from publishing.exceptions import InvalidPublicationError, PublishingError
from publishing.models import ApiKey
from subscribers.exceptions import SubscribersError

if TYPE_CHECKING:
    from rest_framework.permissions import _PermissionClass
else:
    _PermissionClass = Any


def translate(exc: Exception) -> Exception:
    """A service error as the API exception carrying its field, code and status."""
    if isinstance(exc, InvalidPublicationError):
        return exceptions.ValidationError(exc.by_field())
    if isinstance(exc, PublishingError):
        if exc.field and exc.status == 400:
            return exceptions.ValidationError({exc.field: [exc.message]})
        return ProblemError(exc.message, code=exc.code, status_code=exc.status)
    if isinstance(exc, ChannelConfigurationError):
        return exceptions.ValidationError(
            {("non_field_errors" if k == "__all__" else k): v for k, v in exc.errors.items()}
        )
    if isinstance(exc, BackendError):
        return ProblemError(str(exc), code="channel_error", status_code=409)
    if isinstance(exc, SubscribersError):
        return ProblemError(exc.message, code=exc.code, status_code=exc.http_status)
    if isinstance(exc, ApiKeyError):
        return exceptions.ValidationError({exc.field: [exc.message]})
    return exc


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
        if isinstance(request.auth, ApiKey):
            return request.auth.owner
        return request.user
