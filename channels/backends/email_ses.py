"""Amazon SES (API v2) through boto3: one raw MIME message per recipient.

The MIME bytes are ``Message.raw`` when the engine pre-built them, else an HTML + text
message built here from the fields, with the given headers (List-Unsubscribe and
List-Unsubscribe-Post from subscribers.tokens) and a Message-ID. Each send is tagged with the
delivery id (``EmailTags``), so SES events can be matched to the ledger row. botocore's own
retries are off: throttling comes back as RATE_LIMITED for the engine to schedule.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping, Sequence
from email.utils import make_msgid, parseaddr
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    HTTPClientError,
    ParamValidationError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from django import forms
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.validators import validate_email
from urllib3.exceptions import ProtocolError

from channels.backends.base import Backend, BackendError, Message, Outcome, OutcomeStatus, register
from channels.backends.safe_text import safe_error
from channels.backends.utils import (
    network_error_text,
    parse_retry_after,
    protocol_error_failure,
)

logger = logging.getLogger(__name__)

DEFAULT_REGION = "us-east-1"
DEFAULT_TIMEOUT = 10.0
#: Error codes meaning "slow down": the message is retried later, not failed.
THROTTLING_CODES = frozenset(
    {
        "TooManyRequestsException",
        "Throttling",
        "ThrottlingException",
        "MaxSendingRateExceeded",
        "LimitExceededException",
    }
)
#: Account-wide stops (a review, a suspension): every message would fail the same way, so
#: they are transient and let the channel's circuit breaker hold the deliveries back.
ACCOUNT_PAUSED_CODES = frozenset({"SendingPausedException", "AccountSuspendedException"})
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


class SesConfigForm(forms.Form):
    from_email = forms.CharField(
        label="From",
        max_length=254,
        help_text='A verified SES identity, e.g. "News <news@example.com>".',
    )
    region = forms.CharField(max_length=30, initial=DEFAULT_REGION, help_text="e.g. eu-west-1")
    configuration_set = forms.CharField(
        required=False,
        max_length=64,
        help_text="SES configuration set (event publishing, dedicated IPs); optional.",
    )
    endpoint_url = forms.URLField(
        label="Endpoint URL",
        required=False,
        max_length=200,
        assume_scheme="https",
        help_text="Leave empty for the region's SES endpoint.",
    )
    access_key_id = forms.CharField(
        label="Access key id",
        required=False,
        max_length=128,
        help_text="Empty: the server's AWS credentials (environment, instance role).",
    )
    secret_access_key = forms.CharField(label="Secret access key", required=False, max_length=128)
    timeout = forms.FloatField(
        label="Timeout (seconds)", required=False, min_value=0.1, max_value=120
    )

    def clean_from_email(self) -> str:
        value: str = self.cleaned_data["from_email"].strip()
        _name, address = parseaddr(value)
        try:
            validate_email(address)
        except ValidationError:
            raise forms.ValidationError(
                "Enter an address like news@example.com or News <news@example.com>."
            ) from None
        return value

    def clean_region(self) -> str:
        region: str = self.cleaned_data["region"].strip()
        if not _REGION.match(region):
            raise forms.ValidationError("Enter an AWS region such as eu-west-1.")
        return region

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        if bool(data.get("access_key_id")) != bool(data.get("secret_access_key")):
            missing = "secret_access_key" if data.get("access_key_id") else "access_key_id"
            self.add_error(missing, "Give both the access key id and the secret, or neither.")
        return data


#: sesv2 clients by (region, endpoint, key id, secret, timeout), per process.
_CLIENTS: dict[tuple[Any, ...], Any] = {}
_CLIENTS_LOCK = threading.Lock()
MAX_CACHED_CLIENTS = 16


@register
class SesBackend(Backend):
    kind = "email_ses"
    label = "Email through Amazon SES"
    config_form = SesConfigForm
    secret_fields = frozenset({"access_key_id", "secret_access_key"})

    def __init__(self, config: Mapping[str, Any], secrets: Mapping[str, str]) -> None:
        super().__init__(config, secrets)
        self.from_email = str(config["from_email"])
        self.configuration_set = str(config.get("configuration_set") or "")
        self.timeout = float(config.get("timeout") or DEFAULT_TIMEOUT)
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The sesv2 client of this configuration, shared by every batch of this process.

        Making a client (a boto3 session loading the service model) costs about 100 ms, as
        much as sending dozens of messages; clients are thread-safe and keep their connections.
        """
        if self._client is None:
            key = (
                str(self.config.get("region") or DEFAULT_REGION),
                self.config.get("endpoint_url") or None,
                self.secrets.get("access_key_id") or None,
                self.secrets.get("secret_access_key") or None,
                self.timeout,
            )
            with _CLIENTS_LOCK:
                client = _CLIENTS.get(key)
                if client is None:
                    if len(_CLIENTS) >= MAX_CACHED_CLIENTS:
                        _CLIENTS.clear()
                    client = _CLIENTS[key] = boto3.session.Session().client(
                        "sesv2",
                        region_name=key[0],
                        endpoint_url=key[1],
                        aws_access_key_id=key[2],
                        aws_secret_access_key=key[3],
                        config=Config(
                            connect_timeout=self.timeout,
                            read_timeout=self.timeout,
                            retries={"total_max_attempts": 1},
                        ),
                    )
            self._client = client
        return self._client

    def build_mime(self, message: Message) -> bytes:
        """The message as MIME bytes: ``raw`` as given, else built from the fields."""
        if message.raw is not None:
            return message.raw
        headers = dict(message.headers)
        if not any(name.lower() == "message-id" for name in headers):
            domain = parseaddr(self.from_email)[1].rpartition("@")[2]
            headers["Message-ID"] = make_msgid(idstring=f"d{message.delivery_id}", domain=domain)
        email = EmailMultiAlternatives(
            subject=message.subject,
            body=message.text,
            from_email=self.from_email,
            to=[message.to],
            headers=headers,
        )
        if message.html:
            email.attach_alternative(message.html, "text/html")
        # Django's SafeMIME classes take linesep (as its SMTP backend uses them); typeshed
        # knows only email.message.Message's signature.
        return email.message().as_bytes(linesep="\r\n")  # type: ignore[call-arg]

    def send(self, batch: Sequence[Message]) -> list[Outcome]:
        return [self._send_one(message) for message in batch]

    def _send_one(self, message: Message) -> Outcome:
        request: dict[str, Any] = {
            "FromEmailAddress": self.from_email,
            "Destination": {"ToAddresses": [message.to]},
            "Content": {"Raw": {"Data": self.build_mime(message)}},
            "EmailTags": [{"Name": "delivery_id", "Value": str(message.delivery_id)}],
        }
        if self.configuration_set:
            request["ConfigurationSetName"] = self.configuration_set
        try:
            response = self.client.send_email(**request)
        except ClientError as exc:
            return self._client_error_outcome(message, exc)
        except ParamValidationError as exc:
            return self.outcome(message, OutcomeStatus.PERMANENT, f"invalid request: {exc}")
        except (BotoConnectionError, HTTPClientError) as exc:
            status = network_failure(exc)
            return self.outcome(message, status, network_error_text(status, exc, self.timeout))
        except BotoCoreError as exc:
            # Raised before anything was sent (missing credentials, say).
            return self.outcome(message, OutcomeStatus.TRANSIENT, str(exc))
        message_id = response.get("MessageId")
        if not message_id:
            # A 200 whose body was cut short (botocore reads to the end without checking the
            # length): SES has the message or not.
            return self.outcome(
                message,
                OutcomeStatus.UNCERTAIN,
                "the answer was cut short: no MessageId after the request was sent (uncertain)",
            )
        return Outcome(message.delivery_id, OutcomeStatus.SENT, provider_message_id=message_id)

    def _client_error_outcome(self, message: Message, exc: ClientError) -> Outcome:
        error = exc.response.get("Error", {})
        metadata = exc.response.get("ResponseMetadata", {})
        code = str(error.get("Code", ""))
        http_status = int(metadata.get("HTTPStatusCode") or 0)
        detail = f"{code} (HTTP {http_status}): {error.get('Message', '')}"
        retry_after = parse_retry_after(metadata.get("HTTPHeaders", {}).get("retry-after"))
        if code in THROTTLING_CODES or http_status == 429:
            return self.outcome(message, OutcomeStatus.RATE_LIMITED, detail, retry_after)
        if http_status >= 500 or code in ACCOUNT_PAUSED_CODES:
            return self.outcome(message, OutcomeStatus.TRANSIENT, detail, retry_after)
        return self.outcome(message, OutcomeStatus.PERMANENT, detail)

    def check(self) -> None:
        """The sender (its address, or else its domain) is a verified identity of the account."""
        address = parseaddr(self.from_email)[1]
        for identity in (address, address.rpartition("@")[2]):
            try:
                answer = self.client.get_email_identity(EmailIdentity=identity)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "NotFoundException":
                    continue
                raise BackendError(
                    safe_error(f"SES refused: {exc}", self.secrets.values())
                ) from None
            except BotoCoreError as exc:
                raise BackendError(
                    safe_error(f"SES unreachable: {exc}", self.secrets.values())
                ) from None
            if not answer.get("VerifiedForSendingStatus", False):
                raise BackendError(f"SES identity {identity} is not verified for sending.")
            return
        raise BackendError(f"No SES identity for {address} or its domain.")

    def close(self) -> None:
        # The client stays in the process's cache for the next batch (see ``client``).
        self._client = None


def network_failure(exc: BotoCoreError) -> OutcomeStatus:
    """Whether the request botocore failed with ``exc`` may have reached SES.

    Before the request was fully sent, TRANSIENT: ConnectTimeoutError, EndpointConnectionError
    and botocore's other ConnectionErrors (TLS, proxy). After it, UNCERTAIN: ReadTimeoutError
    (no answer in time), ConnectionClosedError (closed or reset instead of an answer, unless
    urllib3 timed out writing the request) and ResponseStreamingError (an answer cut short).
    """
    if isinstance(exc, ConnectionClosedError):
        error = exc.kwargs.get("error")
        if isinstance(error, ProtocolError):
            return protocol_error_failure(error)
        return OutcomeStatus.UNCERTAIN
    if isinstance(exc, ReadTimeoutError | ResponseStreamingError):
        return OutcomeStatus.UNCERTAIN
    return OutcomeStatus.TRANSIENT
