"""Waiting out a locked database (SQLite's single writer) instead of failing on it.

With WAL, a busy timeout and IMMEDIATE write transactions (config.settings.base, decision
0074), a SQLite writer waits for the lock; a lock that outlasts the timeout still raises
``OperationalError: database is locked``. Callers that can simply try again use
``retry_on_lock``; the error left after the last attempt is theirs to explain.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from django.db import OperationalError, connection

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds waited before each new attempt.
LOCK_RETRY_DELAYS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)


def is_lock_error(exc: BaseException) -> bool:
    """True for SQLite's "database is locked" and "database table is locked" errors."""
    return isinstance(exc, OperationalError) and "is locked" in str(exc)


def retry_on_lock(call: Callable[[], T], delays: Sequence[float] | None = None) -> T:
    """``call()``, called again after each of ``delays`` (LOCK_RETRY_DELAYS when None) while it
    raises a lock error.

    ``call`` must be safe to repeat: one transaction of its own, rolled back by the error.
    Inside a caller's transaction nothing is retried (the transaction is already broken).
    Any other error, or a lock error after the last delay, is raised unchanged.
    """
    for delay in (*(LOCK_RETRY_DELAYS if delays is None else delays), None):
        try:
            return call()
        except OperationalError as exc:
            if delay is None or not is_lock_error(exc) or connection.in_atomic_block:
                raise
            logger.info("database locked, trying again in %.1f s", delay)
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
