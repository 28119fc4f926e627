"""Amazon SNS messages posted to our HTTPS endpoint: parsing and signature verification.

Follows AWS's "Verifying the signatures of Amazon SNS messages": the canonical string of the
message's fields (``Key\\nValue\\n`` in a fixed order, per message type) is verified with the
public key of the X.509 certificate at ``SigningCertURL`` (RSA PKCS#1 v1.5 with SHA1 for
SignatureVersion 1, SHA256 for 2). The certificate is fetched only from an https URL whose
``host[:port]`` matches SES_FEEDBACK_CERT_HOST_PATTERN (AWS's SNS hosts by default), with TLS
verification on, and kept per URL for the life of the process. Decision 0043 says why this is
ours rather than a package's.

Every refusal is an ``SnsMessageError`` with a code, an HTTP status and a sentence naming the
problem; nothing here writes to the database.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.conf import settings

from channels.exceptions import SnsMessageError
from config.outbound import (
    OutboundAddressError,
    UnresolvedHostError,
    check_url,
    connections_limited_to,
)

logger = logging.getLogger(__name__)

NOTIFICATION = "Notification"
SUBSCRIPTION_CONFIRMATION = "SubscriptionConfirmation"
UNSUBSCRIBE_CONFIRMATION = "UnsubscribeConfirmation"

#: The fields signed, in the order AWS concatenates them, per message type. ``Subject`` is
#: signed only when the notification has one.
SIGNED_FIELDS: dict[str, tuple[str, ...]] = {
    NOTIFICATION: ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    SUBSCRIPTION_CONFIRMATION: (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
SIGNED_FIELDS[UNSUBSCRIBE_CONFIRMATION] = SIGNED_FIELDS[SUBSCRIPTION_CONFIRMATION]
OPTIONAL_FIELDS = frozenset({"Subject"})
ENVELOPE_FIELDS = ("SignatureVersion", "Signature", "SigningCertURL")
HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
#: A notification may be at most this far in the future (clock skew between AWS and us).
MAX_CLOCK_SKEW = timedelta(minutes=5)
HTTP_TIMEOUT_SECONDS = 10.0
MAX_CACHED_CERTIFICATES = 32

_CERTIFICATES: dict[str, rsa.RSAPublicKey] = {}
_CERTIFICATES_LOCK = threading.Lock()


def parse_message(body: bytes) -> dict[str, str]:
    """The SNS message in ``body``: a JSON object with the fields its type requires.

    Raises SnsMessageError (``malformed``) when the body is not such an object.
    """
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SnsMessageError("The body is not JSON.", code="malformed") from None
    if not isinstance(data, dict):
        raise SnsMessageError("The body is not a JSON object.", code="malformed")
    kind = data.get("Type")
    if not isinstance(kind, str) or kind not in SIGNED_FIELDS:
        raise SnsMessageError(f"Unknown SNS message Type: {kind!r}.", code="malformed")
    required = [
        name for name in (*SIGNED_FIELDS[kind], *ENVELOPE_FIELDS) if name not in OPTIONAL_FIELDS
    ]
    missing = [name for name in required if name not in data]
    if missing:
        raise SnsMessageError(f"The {kind} message lacks {', '.join(missing)}.", code="malformed")
    wrong = [
        name
        for name in (*SIGNED_FIELDS[kind], *ENVELOPE_FIELDS)
        if name in data and not isinstance(data[name], str)
    ]
    if wrong:
        raise SnsMessageError(f"Fields not strings: {', '.join(wrong)}.", code="malformed")
    return {name: value for name, value in data.items() if isinstance(value, str)}


def canonical_string(message: dict[str, str]) -> bytes:
    """The bytes SNS signs: ``Name\\nvalue\\n`` for each signed field present, in order."""
    parts: list[str] = []
    for name in SIGNED_FIELDS[message["Type"]]:
        if name in message:
            parts.extend((name, "\n", message[name], "\n"))
    return "".join(parts).encode()


def check_topic(message: dict[str, str]) -> None:
    """Refuse a message whose TopicArn is not in SES_FEEDBACK_TOPIC_ARNS (403)."""
    allowed = [arn.strip() for arn in settings.SES_FEEDBACK_TOPIC_ARNS if arn.strip()]
    if not allowed:
        raise SnsMessageError(
            "No SNS topic is allowed: set SES_FEEDBACK_TOPIC_ARNS to accept SES feedback.",
            code="no_topics_configured",
            status=403,
        )
    if message["TopicArn"] not in allowed:
        raise SnsMessageError(
            f"Topic {message['TopicArn']} is not in SES_FEEDBACK_TOPIC_ARNS.",
            code="topic_not_allowed",
            status=403,
        )


def parse_timestamp(value: str) -> datetime:
    """An SNS Timestamp (ISO 8601 in UTC, e.g. 2026-11-28T17:08:39.123Z) as an aware datetime."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SnsMessageError(f"Timestamp {value!r} is not ISO 8601.", code="malformed") from None
    if moment.tzinfo is None:
        raise SnsMessageError(f"Timestamp {value!r} has no time zone.", code="malformed")
    return moment


def check_timestamp(message: dict[str, str], now: datetime) -> datetime:
    """Refuse a message older than SES_FEEDBACK_MAX_AGE_SECONDS, or from the future (400).

    The window bounds how long a captured message can be replayed; SNS's own retries of an
    HTTP delivery end well inside the default hour.
    """
    moment = parse_timestamp(message["Timestamp"])
    max_age = timedelta(seconds=settings.SES_FEEDBACK_MAX_AGE_SECONDS)
    if moment < now - max_age:
        raise SnsMessageError(
            f"Timestamp {message['Timestamp']} is older than "
            f"SES_FEEDBACK_MAX_AGE_SECONDS ({settings.SES_FEEDBACK_MAX_AGE_SECONDS} s).",
            code="too_old",
        )
    if moment > now + MAX_CLOCK_SKEW:
        raise SnsMessageError(
            f"Timestamp {message['Timestamp']} is in the future.", code="from_the_future"
        )
    return moment


def check_sns_url(url: str, field: str) -> str:
    """Refuse ``url`` unless it is https on a host[:port] matching SES_FEEDBACK_CERT_HOST_PATTERN.

    Used for SigningCertURL and SubscribeURL, the two URLs of a message we fetch. Returns it.
    """
    parts = urlsplit(url)
    pattern = settings.SES_FEEDBACK_CERT_HOST_PATTERN
    if parts.scheme != "https" or not re.fullmatch(pattern, parts.netloc, flags=re.IGNORECASE):
        raise SnsMessageError(
            f"{field} {url!r} is not https on a host matching SES_FEEDBACK_CERT_HOST_PATTERN.",
            code="untrusted_url",
            status=403,
        )
    return url


def guarded_get(url: str, field: str) -> requests.Response:
    """GET ``url`` (already matched against SES_FEEDBACK_CERT_HOST_PATTERN) through the outbound
    guard: its host must resolve to public addresses (or be in OUTBOUND_ALLOWED_HOSTS), and the
    connection may reach only the addresses checked (decision 0071).

    Raises SnsMessageError ``untrusted_url`` (403) when the guard refuses the address.
    """
    try:
        target = check_url(url, field=field)
        with connections_limited_to(target, field=field):
            return requests.get(url, timeout=HTTP_TIMEOUT_SECONDS, allow_redirects=False)
    except UnresolvedHostError as exc:
        raise requests.ConnectionError(str(exc)) from None
    except OutboundAddressError as exc:
        raise SnsMessageError(
            f"{field} leads to a refused address: {exc}", code="untrusted_url", status=403
        ) from None


def signing_key(url: str) -> rsa.RSAPublicKey:
    """The RSA public key of the certificate at ``url`` (already checked), cached per URL.

    Raises SnsMessageError: ``certificate_unavailable`` (502) when it cannot be fetched,
    ``bad_certificate`` (403) when it is not a current X.509 certificate with an RSA key.
    """
    with _CERTIFICATES_LOCK:
        key = _CERTIFICATES.get(url)
    if key is not None:
        return key
    try:
        answer = guarded_get(url, "SigningCertURL")
    except requests.RequestException as exc:
        logger.warning("sns: signing certificate unreachable: %s", type(exc).__name__)
        raise SnsMessageError(
            "The signing certificate could not be fetched.",
            code="certificate_unavailable",
            status=502,
        ) from None
    if answer.status_code != 200:
        raise SnsMessageError(
            f"The signing certificate URL answered HTTP {answer.status_code}.",
            code="certificate_unavailable",
            status=502,
        )
    try:
        certificate = x509.load_pem_x509_certificate(answer.content)
    except ValueError:
        raise SnsMessageError(
            "SigningCertURL does not hold a PEM certificate.", code="bad_certificate", status=403
        ) from None
    public_key = certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise SnsMessageError(
            "The signing certificate's key is not RSA.", code="bad_certificate", status=403
        )
    with _CERTIFICATES_LOCK:
        if len(_CERTIFICATES) >= MAX_CACHED_CERTIFICATES:
            _CERTIFICATES.clear()
        _CERTIFICATES[url] = public_key
    return public_key


def clear_certificate_cache() -> None:
    with _CERTIFICATES_LOCK:
        _CERTIFICATES.clear()


def verify_signature(message: dict[str, str]) -> None:
    """Refuse a message whose Signature does not verify (403) or whose version is unknown (400).

    The certificate URL is checked before anything is fetched.
    """
    algorithm = HASHES.get(message["SignatureVersion"])
    if algorithm is None:
        raise SnsMessageError(
            f"SignatureVersion {message['SignatureVersion']!r} is not supported (1 or 2).",
            code="unsupported_signature_version",
        )
    url = check_sns_url(message["SigningCertURL"], "SigningCertURL")
    try:
        signature = base64.b64decode(message["Signature"], validate=True)
    except (binascii.Error, ValueError):
        raise SnsMessageError(
            "Signature is not base64.", code="bad_signature", status=403
        ) from None
    key = signing_key(url)
    try:
        key.verify(signature, canonical_string(message), padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise SnsMessageError(
            "The message signature does not verify.", code="bad_signature", status=403
        ) from None


def verified_message(body: bytes, now: datetime) -> dict[str, str]:
    """Parse and authenticate one SNS message: structure, topic, age, then signature.

    The cheap checks run first, so an unknown topic or a stale message costs no certificate
    fetch. Returns the message; raises SnsMessageError.
    """
    message = parse_message(body)
    check_topic(message)
    check_timestamp(message, now)
    verify_signature(message)
    return message


def confirm_subscription(message: dict[str, str]) -> None:
    """GET the SubscribeURL of a verified SubscriptionConfirmation (only an SNS https URL).

    Raises SnsMessageError: ``untrusted_url`` (403), ``confirmation_failed`` (502).
    """
    url = check_sns_url(message.get("SubscribeURL", ""), "SubscribeURL")
    try:
        answer = guarded_get(url, "SubscribeURL")
    except requests.RequestException as exc:
        logger.warning("sns: subscription confirmation failed: %s", type(exc).__name__)
        raise SnsMessageError(
            "SubscribeURL could not be reached.", code="confirmation_failed", status=502
        ) from None
    if answer.status_code != 200:
        raise SnsMessageError(
            f"SubscribeURL answered HTTP {answer.status_code}.",
            code="confirmation_failed",
            status=502,
        )


def ses_event(message: dict[str, str]) -> dict[str, Any] | None:
    """The SES event a notification carries (its ``Message`` as a JSON object), else None."""
    try:
        event = json.loads(message["Message"])
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) else None
