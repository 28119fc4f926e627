"""Idempotent POSTs: the same Idempotency-Key with the same body replays the stored answer.

- same key, same body, finished: the stored status, body and Location are returned, with
  ``Idempotent-Replayed: true``; the view does not run again;
- same key, another body: 422;
- same key while the first request is still running: 409;
- keys are scoped to the caller (API key, user, or client IP for the public endpoints), so one
  client never sees another's answer, and they expire after IDEMPOTENCY_TTL (24 h).

Records live in the shared cache (Redis in production): its atomic ``add`` is the in-flight lock.

Only answers of requests that ran are stored (Stripe's rule): a 2xx or 3xx, and a 4xx given after
the view wrote to the database (a change began). A 4xx refused before any write (invalid input,
an unknown topic, a failed precondition) and any 5xx are not stored: the client corrects the
request, or retries it, with the same key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response

MAX_KEY_LENGTH = 255
WRITE_STATEMENTS = ("INSERT", "UPDATE", "DELETE", "MERGE")
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
    #: Set once the view sends a write statement to the database: a change began.
    wrote: bool = False
    watching: ExitStack = field(default_factory=ExitStack)

    def watch_writes(self) -> None:
        """Note any INSERT, UPDATE or DELETE the view sends, until ``finish``."""
        self.watching.enter_context(connection.execute_wrapper(self._observe))

    def _observe(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        if not self.wrote and sql.lstrip().upper().startswith(WRITE_STATEMENTS):
            self.wrote = True
        return execute(sql, params, many, context)


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


def should_store(record: IdempotentRequest, status_code: int) -> bool:
    """Whether the answer is kept for replays: a success, or a 4xx after a change began."""
    if status_code < 400:
        return True
    return status_code < 500 and record.wrote


def finish(record: IdempotentRequest, response: Response) -> None:
    """Store the answer of a request that ran (``should_store``) and release the in-flight
    lock; stop watching the view's writes."""
    record.watching.close()
    try:
        if should_store(record, response.status_code):
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
        record.watch_writes()
        self._idempotent_request = record

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
        finally:
            # Still set only when the view raised past DRF (a 500): nothing is stored; the
            # lock and the watch end.
            record, self._idempotent_request = self._idempotent_request, None
            if record is not None:
                record.watching.close()
                cache.delete(record.lock_key)

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        if self._idempotent_request is not None:
            finish(self._idempotent_request, response)
            self._idempotent_request = None
        return response
