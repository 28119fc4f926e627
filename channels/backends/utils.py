"""Helpers shared by the backends: Retry-After parsing, error text free of secrets, whether a
failed HTTP request may have reached its peer, the outbound-URL guard's form validator, and
one-system-call socket writes."""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import requests
from django import forms
from urllib3.exceptions import MaxRetryError, ProtocolError, ReadTimeoutError

from channels.backends.base import BackendError, OutcomeStatus
from config.outbound import OutboundAddressError, UnresolvedHostError, check_url


def validate_outbound_url(value: str) -> None:
    """A config form's validator: ``value`` must reach public addresses only (decision 0071).

    Raises forms.ValidationError, so the admin and the API name the URL's field; an empty value
    is left to the field's ``required``. A host that does not resolve now passes: each request
    checks it again as it leaves.
    """
    if not value:
        return
    try:
        check_url(value)
    except UnresolvedHostError:
        return
    except OutboundAddressError as exc:
        raise forms.ValidationError(exc.message, code="outbound_address_refused") from None


def refused_outcome_status(exc: OutboundAddressError) -> OutcomeStatus:
    """A send the outbound guard stopped before anything left: PERMANENT when the address is
    refused (retrying will not make it public), TRANSIENT when the host did not resolve."""
    if isinstance(exc, UnresolvedHostError):
        return OutcomeStatus.TRANSIENT
    return OutcomeStatus.PERMANENT


def http_status_text(status: int) -> str:
    """What an error shows of a peer's non-2xx answer: its status and a fixed text, never its
    body (the peer may be anything; its body must not reach the API, decision 0071)."""
    return f"HTTP {status}: the endpoint refused the message"


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


def send_all(sock: socket.socket, data: bytes) -> None:
    """``sock.sendall(data)`` in one system call when the kernel takes every byte at once.

    CPython polls a socket that has a timeout before each send (two system calls a write);
    such a socket is non-blocking underneath, so ``os.write`` either takes what fits at once or
    raises BlockingIOError, and ``sendall`` (with its timeout) sends the rest. Either way every
    byte has been handed to the kernel on return, as with ``sendall``; errors are the same
    OSErrors. A TLS socket goes through ``sendall``: its bytes are encrypted first.
    """
    if isinstance(sock, ssl.SSLSocket):
        sock.sendall(data)
        return
    try:
        sent = os.write(sock.fileno(), data)
    except BlockingIOError:
        sent = 0
    if sent < len(data):
        sock.sendall(memoryview(data)[sent:])
