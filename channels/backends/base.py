"""The contract every channel backend follows, and the registry that maps kinds to classes.

A backend knows messages and outcomes only: it never queries subscribers or publications. It
reports each recipient's failure as an Outcome and raises nothing for it; BackendError is for
a broken configuration or an unreachable provider when asked to ``check`` it.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django import forms


class BackendError(Exception):
    """The channel cannot work at all (bad configuration, provider unreachable)."""


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
    config_form: ClassVar[type[forms.Form]]
    secret_fields: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: Mapping[str, Any], secrets: Mapping[str, str]) -> None:
        self.config = config
        self.secrets = secrets

    @abstractmethod
    def send(self, batch: Sequence[Message]) -> list[Outcome]:
        """Send every message of the batch; return one Outcome per message, in order."""

    def send_each(
        self, batch: Sequence[Message], on_outcome: Callable[[Outcome], None]
    ) -> list[Outcome]:
        """Send the messages in order, calling ``on_outcome`` with each message's outcome
        before the provider gets the next one (the sent journal's write, decision 0039).
        Returns the outcomes. By default, one ``send`` call per message; a backend may
        overlap what does not hand a message over (SMTP's envelope, decision 0067)."""
        outcomes: list[Outcome] = []
        for message in batch:
            for outcome in self.send([message]):
                on_outcome(outcome)
                outcomes.append(outcome)
        return outcomes

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
