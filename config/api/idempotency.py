"""Idempotent POSTs: the same Idempotency-Key with the same body replays the stored answer.

- same key, same body, finished: the stored status, body and Location are returned, with
  ``Idempotent-Replayed: true``; the view does not run again;
- same key, another body: 422;
- same key while the first request is still running: 409;
- keys are scoped to the caller (API key, user, or client IP for the public endpoints), so one
  client never sees another's answer, and they expire after IDEMPOTENCY_TTL (24 h).

Records live in the shared cache (Redis in production): its atomic ``add`` is the in-flight lock.
A 5xx answer is not stored, so the client may retry with the same key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response

MAX_KEY_LENGTH = 255
REPLAYED_HEADERS = ("Location", "ETag", "Content-Type")


class IdempotencyConflict(exceptions.APIException):
    status_code = 409
    default_detail = "A request with this Idempotency-Key is still being processed."
    default_code = "idempotency_in_progress"


class IdempotencyMismatch(exceptions.APIException):
    status_code = 422
    default_detail = "This Idempotency-Key was used with a different request body."
    default_code = "idempotency_key_reused"


@dataclass
class IdempotentRequest:
    cache_key: str
    lock_key: str
    fingerprint: str


def caller_scope(request: Request) -> str:
    api_key = getattr(request, "auth", None)
    if api_key is not None and getattr(api_key, "pk", None) is not None:
        return f"key:{api_key.pk}"
    if request.user and request.user.is_authenticated:
        return f"user:{request.user.pk}"
    return f"ip:{request.META.get('REMOTE_ADDR', '')}"


def begin(request: Request, key: str) -> tuple[IdempotentRequest, Response | None]:
    """Start an idempotent request. Returns the record and, on a replay, the stored response."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise exceptions.ValidationError(
            {"Idempotency-Key": [f"Must be 1 to {MAX_KEY_LENGTH} characters long."]}
        )
    scope = caller_scope(request)
    digest = hashlib.sha256(f"{scope}\n{key}".encode()).hexdigest()
    record = IdempotentRequest(
        cache_key=f"idem:{digest}",
        lock_key=f"idem-lock:{digest}",
        fingerprint=hashlib.sha256(
            f"{request.method} {request.path}\n".encode() + request.body
        ).hexdigest(),
    )
    stored: dict[str, Any] | None = cache.get(record.cache_key)
    if stored is not None:
        if stored["fingerprint"] != record.fingerprint:
            raise IdempotencyMismatch()
        replay = Response(stored["data"], status=stored["status"])
        for header, value in stored["headers"].items():
            replay[header] = value
        replay["Idempotent-Replayed"] = "true"
        return record, replay
    if not cache.add(record.lock_key, record.fingerprint, timeout=settings.IDEMPOTENCY_LOCK_TTL):
        if cache.get(record.lock_key) not in (None, record.fingerprint):
            raise IdempotencyMismatch()
        raise IdempotencyConflict()
    return record, None


def finish(record: IdempotentRequest, response: Response) -> None:
    """Store a finished answer (not a 5xx) and release the in-flight lock."""
    try:
        if response.status_code < 500:
            cache.set(
                record.cache_key,
                {
                    "fingerprint": record.fingerprint,
                    "status": response.status_code,
                    "data": response.data,
                    "headers": {h: response[h] for h in REPLAYED_HEADERS if h in response},
                },
                timeout=settings.IDEMPOTENCY_TTL,
            )
    finally:
        cache.delete(record.lock_key)


class IdempotentMixin:
    """Mix into DRF views (before the DRF base class) to honour Idempotency-Key on POST."""

    _idempotent_request: IdempotentRequest | None = None

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        self._idempotent_request = None
        key = request.headers.get("Idempotency-Key")
        if request.method != "POST" or key is None:
            return
        record, replay = begin(request, key)
        if replay is not None:
            # The view must not act again: its handler is swapped for the stored answer.
            self.post = lambda *args, **kwargs: replay
            return
        self._idempotent_request = record

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        if self._idempotent_request is not None:
            finish(self._idempotent_request, response)
            self._idempotent_request = None
        return response
