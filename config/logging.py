"""JSON logging with a request id on every line of a request, and redaction of personal data.

``RequestIdMiddleware`` takes the id from the ``X-Request-ID`` header (when it looks sane) or
makes one, keeps it in a context variable for the filter, and echoes it in the response.
"""

from __future__ import annotations

import contextvars
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

from django.core.signals import request_finished
from django.http import HttpRequest, HttpResponse
from pythonjsonlogger.json import JsonFormatter as BaseJsonFormatter

from config.redaction import redact

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    """Give every request an id, visible in each log line it causes and in X-Request-ID."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SANE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        # Not reset on the way out: Django logs a 4xx/5xx after the middleware chain returns.
        # request_finished (below) clears it once the response is closed.
        request_id_var.set(request_id)
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


def clear_request_id(**kwargs: Any) -> None:
    request_id_var.set("-")


request_finished.connect(clear_request_id, dispatch_uid="config.logging.clear_request_id")


class RequestIdFilter(logging.Filter):
    """Put the current request id (or "-") on the record as ``request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


class RedactingFilter(logging.Filter):
    """Mask email addresses and remove tokens and secrets from the message and the traceback.

    The message is formatted here (``getMessage``) so that arguments are redacted too, and the
    exception text is rendered and redacted once, so no formatter sees the raw text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            formatter = logging.Formatter()
            record.exc_text = redact(formatter.formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key in _STANDARD_ATTRIBUTES or value is None:
                continue
            if isinstance(value, bool | int | float):
                continue
            # Anything else is written as text by the formatter: Django's ``request`` extra
            # (``<WSGIRequest: GET '/preferences/<token>/'>``) included. Redact that text.
            setattr(record, key, redact(value if isinstance(value, str) else str(value)))
        return True


_STANDARD_ATTRIBUTES = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
) | {"message", "asctime", "request_id"}


class JsonFormatter(BaseJsonFormatter):
    """One JSON object per line; the traceback, already redacted, goes under ``exc_info``."""

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        if record.exc_text and "exc_info" not in log_data:
            log_data["exc_info"] = record.exc_text
