"""Capturing log output as production writes it: every record through the redacting filter."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from config.logging import JsonFormatter, RedactingFilter


@contextmanager
def production_logs(level: int = logging.DEBUG) -> Iterator[io.StringIO]:
    """Yield a buffer receiving every log line (any logger, DEBUG and up) as production would."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.setLevel(level)
    root = logging.getLogger()
    previous = root.level
    # Loggers with propagate=False (django, django_q) are covered by their own handlers.
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
