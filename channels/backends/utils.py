"""Helpers shared by the backends: Retry-After parsing, error text free of secrets, and whether a
failed HTTP request may have reached its peer."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import requests
from urllib3.exceptions import MaxRetryError, ProtocolError, ReadTimeoutError

from channels.backends.base import BackendError, OutcomeStatus


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or an HTTP date), or None."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds)


def required_secret(secrets: Mapping[str, str], name: str, kind: str) -> str:
    """``secrets[name]``, or BackendError when the channel has none (a configuration gap)."""
    value = secrets.get(name, "")
    if not value:
        raise BackendError(f"The {kind} channel has no {name}: configure it in the admin.")
    return value


def requests_failure(exc: requests.RequestException) -> OutcomeStatus:
    """Whether the request that requests failed with ``exc`` may have reached the peer.

    TRANSIENT when it failed before the request was fully sent: no connection (DNS, refused,
    connect timeout, TLS, proxy) or an error while writing it. UNCERTAIN when it failed after:
    no answer in time, the connection closed or reset instead of an answer, an answer cut short.
    """
    if isinstance(exc, requests.ConnectTimeout):
        return OutcomeStatus.TRANSIENT
    if isinstance(
        exc,
        requests.ReadTimeout
        | requests.exceptions.ChunkedEncodingError
        | requests.exceptions.ContentDecodingError,
    ):
        return OutcomeStatus.UNCERTAIN
    if isinstance(exc, requests.ConnectionError):
        # requests wraps urllib3's error: a MaxRetryError (its ``reason`` is NewConnectionError,
        # NameResolutionError, ConnectTimeoutError, SSLError: no connection), a ProtocolError
        # (a failure while sending or waiting for the answer) or, while reading the body, a
        # ReadTimeoutError.
        reason = exc.args[0] if exc.args else None
        if isinstance(reason, MaxRetryError):
            reason = reason.reason
        if isinstance(reason, ReadTimeoutError):
            return OutcomeStatus.UNCERTAIN
        if isinstance(reason, ProtocolError):
            return protocol_error_failure(reason)
    return OutcomeStatus.TRANSIENT


def protocol_error_failure(error: ProtocolError) -> OutcomeStatus:
    """Whether urllib3's "Connection aborted" ``error`` came before or after the request was sent.

    urllib3 turns a timeout while waiting for the answer into a ReadTimeoutError, never a
    ProtocolError: one around a TimeoutError is a timeout while writing the request, so the
    peer did not get it whole. Anything else (RemoteDisconnected, ConnectionResetError, a bad
    status line) came after the request was written.
    """
    cause = error.args[1] if len(error.args) > 1 else error.__cause__ or error.__context__
    if isinstance(cause, TimeoutError):
        return OutcomeStatus.TRANSIENT
    return OutcomeStatus.UNCERTAIN


def network_error_text(status: OutcomeStatus, exc: BaseException, timeout: float) -> str:
    """The error text of a request that failed with ``exc``, classified as ``status``."""
    timed_out = _timed_out(exc)
    if status == OutcomeStatus.UNCERTAIN:
        if timed_out:
            return f"no answer within {timeout}s after the request was sent (uncertain)"
        return f"connection lost after the request was sent, no full answer (uncertain): {exc}"
    if timed_out:
        return f"timed out after {timeout}s before the request was fully sent: {exc}"
    return f"connection error: {exc}"


def _timed_out(exc: BaseException) -> bool:
    """Whether a socket timeout is at the root of ``exc`` (libraries chain the one they wrap)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, TimeoutError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
