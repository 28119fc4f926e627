"""Scopes per view and action.

A view declares ``required_scopes``: a mapping from the action (``list``, ``retrieve``,
``publish``...) to the scope it needs, or a tuple of scopes any one of which is enough.
A key lacking it gets 403, or 404 for the actions in ``hidden_actions`` (on objects whose
existence a key without the scope must not learn). Staff sessions (the browsable API) hold every
scope; the services then apply the user's own permissions.
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, permissions
from rest_framework.request import Request

from config.api.keys import api_keys


def scope_of(view: Any) -> tuple[str, ...]:
    action = getattr(view, "action", None) or (view.request.method or "").lower()
    required = getattr(view, "required_scopes", {})
    scope = required.get(action)
    if scope is None:
        # Deny by default: an action nobody mapped is a mistake, not an open door.
        return ("__unmapped__",)
    return (scope,) if isinstance(scope, str) else tuple(scope)


def has_scope(request: Request, *scopes: str) -> bool:
    key = request.auth
    if api_keys().is_key(key):
        return any(key.has_scope(scope) for scope in scopes)
    return bool(request.user and request.user.is_authenticated and request.user.is_staff)


class HasScope(permissions.BasePermission):
    message = "This API key does not have the scope this action needs."

    def has_permission(self, request: Request, view: Any) -> bool:
        if request.auth is None and not (request.user and request.user.is_authenticated):
            raise exceptions.NotAuthenticated()
        if getattr(view, "action_map", None) is not None and view.action is None:
            return True  # no handler for this method: let DRF answer 405
        scopes = scope_of(view)
        if has_scope(request, *scopes):
            return True
        if getattr(view, "action", None) in getattr(view, "hidden_actions", ()):
            raise exceptions.NotFound()
        self.message = f"This API key lacks the scope {' or '.join(scopes)}."
        return False
