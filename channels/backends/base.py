"""The contract every channel backend follows, and the registry that maps kinds to classes.

A backend knows messages and outcomes only: it never queries subscribers or publications. It
reports each recipient's failure as an Outcome and raises nothing for it; BackendError is for
a broken configuration or an unreachable provider when asked to ``check`` it.
"""

from __future__ import annotations

import enum
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from django import forms

from channels.backends.safe_text import safe_error
from config.errors import ProjectError


class BackendError(ProjectError):
    """The channel cannot work at all (bad configuration, provider unreachable).

    A ProjectError (decision 0069): the API answers it 409 ``channel_error`` with the message,
    as it always has (the channel's state, not the request, is what is wrong).
    """

    code = "channel_error"
    status = 409


class JournalUnavailableError(Exception):
    """Raised by ``Handover.handing_over`` when the sent journal cannot follow the message:
    the backend must not hand it over (decision 0068)."""


@dataclass(frozen=True)
class Message:
    """One message to hand to a backend.

    ``delivery_id`` is the idempotency key: backends pass it to providers that accept one.
    Email backends use ``to``, ``subject``, ``html``, ``text``, ``headers`` or, when set, the
    pre-built MIME bytes in ``raw``. Broadcast backends (Slack, Discord, webhook) use
    ``payload``, the channel-specific JSON rendered by publishing.rendering.
    """

    delivery_id: int
    to: str = ""
    subject: str = ""
    text: str = ""
    html: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    payload: Mapping[str, Any] = field(default_factory=dict)
    raw: bytes | None = None


class OutcomeStatus(enum.StrEnum):
    SENT = "sent"
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    RATE_LIMITED = "rate_limited"
    #: The message was handed over (the final dot of DATA, the whole HTTP request) and no
    #: answer came: the provider may or may not have it. The channel's policy decides
    #: (resend or skip, decision 0068); never a plain failure.
    UNCERTAIN = "uncertain"


class UncertainPolicy(enum.StrEnum):
    """What recovery does with a message that may have arrived (decision 0068)."""

    #: At least once: send it again (receivers deduplicate by Message-ID or webhook-id).
    RESEND = "resend"
    #: At most once: do not send it again; an operator may re-queue it.
    SKIP = "skip"


@dataclass(frozen=True)
class ResponseInfo:
    """What an HTTP endpoint answered to one attempt, for the admin's attempts list (event
    webhooks, decision 0084): the status (None: no answer), the time the request took and the
    first characters of the body."""

    status_code: int | None
    latency_ms: float
    excerpt: str = ""


@dataclass(frozen=True)
class Outcome:
    """What happened to one message. ``error`` must already be free of secrets."""

    delivery_id: int
    status: OutcomeStatus
    provider_message_id: str = ""
    error: str = ""
    #: Seconds the provider asked us to wait (RATE_LIMITED, or TRANSIENT with Retry-After).
    retry_after: float | None = None
    #: The endpoint told us it is gone for good (a webhook's 410): disable the channel.
    disable_channel: bool = False
    #: The HTTP answer, when the backend keeps it (event webhooks).
    response: ResponseInfo | None = None


class Handover(Protocol):
    """What a backend tells the sent journal while it sends (decision 0068)."""

    def handing_over(self, delivery_id: int) -> None:
        """Called just before the step that hands the message over (the content and final
        dot of SMTP's DATA, the HTTP request): the journal records it as in flight. Raises
        JournalUnavailableError when it cannot: the message must not be handed over."""

    def answered(self, outcome: Outcome) -> None:
        """Called with the message's outcome as soon as it is known, before the next message
        is handed over: the journal records it as accepted or refused."""

    def answered_later(self, outcome: Outcome) -> None:
        """As ``answered``, but the journal may write the entry with its next write (the next
        message's ``handing_over``, or ``flush``): one write for the two. The caller promises
        to call ``flush`` before anything that waits for a peer (decision 0068: an entry is
        never held while the worker waits)."""

    def flush(self) -> None:
        """Write the entries ``answered_later`` holds."""


class Backend(ABC):
    """Base class of channel backends.

    Subclasses set ``kind`` (the registry key), ``label``, ``is_broadcast`` (one message per
    channel rather than per subscriber), ``config_form`` (a Django form: the typed schema of
    the channel's configuration, giving field-level errors in the admin and the API) and
    ``secret_fields`` (names in that form stored encrypted and shown masked).
    """

    kind: ClassVar[str]
    label: ClassVar[str]
    is_broadcast: ClassVar[bool] = False
    #: Not offered as a channel kind: the channels of another feature (event endpoints).
    is_internal: ClassVar[bool] = False
    config_form: ClassVar[type[forms.Form]]
    secret_fields: ClassVar[frozenset[str]] = frozenset()
    #: What recovery does with this kind's uncertain messages unless the channel says.
    default_uncertain_policy: ClassVar[UncertainPolicy] = UncertainPolicy.RESEND

    def __init__(self, config: Mapping[str, Any], secrets: Mapping[str, str]) -> None:
        self.config = config
        self.secrets = secrets

    @abstractmethod
    def send(self, batch: Sequence[Message]) -> list[Outcome]:
        """Send every message of the batch; return one Outcome per message, in order."""

    def send_each(self, batch: Sequence[Message], handover: Handover) -> list[Outcome]:
        """Send the messages in order, telling ``handover`` before each message is handed
        over and as soon as its outcome is known, before the next one (the sent journal,
        decisions 0039 and 0068). Returns the outcomes. By default, one ``send`` call per
        message; a backend may overlap what does not hand a message over (SMTP's envelope,
        decision 0067) and should report ``handing_over`` as late as it can."""
        outcomes: list[Outcome] = []
        for message in batch:
            handover.handing_over(message.delivery_id)
            for outcome in self.send([message]):
                handover.answered(outcome)
                outcomes.append(outcome)
        return outcomes

    def outcome(
        self,
        message: Message,
        status: OutcomeStatus,
        error: str,
        retry_after: float | None = None,
        *,
        disable_channel: bool = False,
    ) -> Outcome:
        """The Outcome of a message that was not simply sent, its ``error`` free of this
        channel's secrets (``safe_error``), logged at debug level with the delivery id only."""
        error = safe_error(error, self.secrets.values())
        logging.getLogger(type(self).__module__).debug(
            "%s delivery %s: %s (%s)", self.kind, message.delivery_id, status, error
        )
        return Outcome(
            message.delivery_id,
            status,
            error=error,
            retry_after=retry_after,
            disable_channel=disable_channel,
        )

    def check(self) -> None:
        """Raise BackendError when the provider cannot be reached with this configuration."""
        return None

    def close(self) -> None:
        """Release connections held between batches."""
        return None


registry: dict[str, type[Backend]] = {}


def register(backend: type[Backend]) -> type[Backend]:
    """Class decorator: make ``backend`` available under its ``kind``."""
    registry[backend.kind] = backend
    return backend


def get_backend_class(kind: str) -> type[Backend]:
    try:
        return registry[kind]
    except KeyError:
        raise BackendError(f"Unknown channel kind {kind!r}.") from None
