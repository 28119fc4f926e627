"""Fixtures of the delivery engine: a real SMTP sink, channels pointing at it, audiences."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import re
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone
from pytest_httpserver import HTTPServer

from channels import sns as sns_module
from channels.engine import journal
from channels.engine.claims import ClaimedRow
from channels.models import Channel
from publishing.models import Dispatch, Publication, Topic
from subscribers.models import Subscriber, Subscription, email_hash
from tests.channels.sns_peer import CERT_PATH, TOPIC_ARN, SnsPeer, server_context
from tests.factories import DispatchFactory, PublicationFactory, TopicFactory

DELIVERY_ID = re.compile(rb"^X-Delivery-ID: (\d+)\r?$", re.MULTILINE)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(autouse=True)
def sent_journal(settings: Any) -> Iterator[None]:
    """Each engine test starts with an empty sent journal of its own process (decision 0039);
    tests that need one shared with a worker process point it at Redis themselves."""
    settings.DELIVERY_JOURNAL_URL = "locmem://tests"
    store = journal.store()
    assert store is not None
    store.clear()
    yield
    store.clear()


class SmtpSink:
    """An aiosmtpd handler recording each accepted message as the server received it.

    ``answer`` may return an SMTP reply (e.g. "451 4.3.0 try later") to refuse a message.
    With ``pipelining`` it announces PIPELINING (RFC 2920), as Postfix does; aiosmtpd reads
    commands one after another from the stream, so pipelined commands work.

    ``hold_when(n)`` (n: messages received, this one included) holds the reply to the message
    just received: the sink has it, the sender does not know. ``held`` is set while a reply is
    held; setting ``release`` lets it go (a real provider's processing time, stretched).
    """

    def __init__(self, *, pipelining: bool = False) -> None:
        self.pipelining = pipelining
        self.messages: list[bytes] = []
        self.recipients: list[str] = []
        self.refused = 0
        self.answer: Callable[[bytes, list[str]], str | None] | None = None
        self.refuse_rcpt: set[str] = set()
        self.hold_when: Callable[[int], bool] | None = None
        self.held = threading.Event()
        self.release = threading.Event()
        #: The messages whose reply was held, as received.
        self.held_messages: list[bytes] = []
        self._lock = threading.Lock()

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if not self.pipelining:
            return responses
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.refuse_rcpt:
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content: bytes = envelope.content
        with self._lock:
            reply = self.answer(content, envelope.rcpt_tos) if self.answer else None
            if reply:
                self.refused += 1
                return reply
            self.messages.append(content)
            self.recipients.extend(envelope.rcpt_tos)
            hold = self.hold_when is not None and self.hold_when(len(self.messages))
            if hold:
                self.held_messages.append(content)
        if hold:
            self.held.set()
            try:
                while not self.release.is_set():
                    await asyncio.sleep(0.005)
            finally:  # also when aiosmtpd cancels the session: its client is gone
                self.held.clear()
        return "250 2.0.0 Ok: queued"

    def delivery_ids(self) -> Counter[int]:
        """How many times the sink received each delivery (by its X-Delivery-ID header)."""
        counts: Counter[int] = Counter()
        for message in list(self.messages):
            match = DELIVERY_ID.search(message)
            if match:
                counts[int(match.group(1))] += 1
        return counts


@pytest.fixture
def smtp_sink() -> Iterator[tuple[SmtpSink, int]]:
    sink = SmtpSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


@pytest.fixture
def sink(smtp_sink: tuple[SmtpSink, int]) -> SmtpSink:
    return smtp_sink[0]


def make_smtp_channel(port: int, **fields: Any) -> Channel:
    defaults: dict[str, Any] = {
        "name": f"SMTP {port}",
        "kind": "email_smtp",
        "config": {"host": "127.0.0.1", "port": port, "timeout": 5},
        "is_default_email": True,
        "batch_size": 50,
    }
    defaults.update(fields)
    return Channel.objects.create(**defaults)


@pytest.fixture
def smtp_channel(smtp_sink: tuple[SmtpSink, int]) -> Channel:
    return make_smtp_channel(smtp_sink[1])


@pytest.fixture
def topic() -> Topic:
    return cast(Topic, TopicFactory(slug="engine-news", name="Engine news"))


def add_subscribers(
    topic: Topic,
    count: int,
    *,
    prefix: str = "reader",
    frequency: str = Subscription.Frequency.IMMEDIATE,
    status: str = Subscriber.Status.ACTIVE,
    **fields: Any,
) -> list[Subscriber]:
    """Create ``count`` subscribers of ``topic`` in bulk (two INSERTs, whatever the count)."""
    now = timezone.now()
    people = [
        Subscriber(
            email=f"{prefix}{i}@example.com",
            email_hash=email_hash(f"{prefix}{i}@example.com"),
            name=f"Reader {i}",
            status=status,
            confirmed_at=now if status == Subscriber.Status.ACTIVE else None,
            **fields,
        )
        for i in range(count)
    ]
    created = Subscriber.objects.bulk_create(people)
    Subscription.objects.bulk_create(
        Subscription(subscriber=person, topic=topic, frequency=frequency) for person in created
    )
    return created


def make_dispatch(topic: Topic, **fields: Any) -> Dispatch:
    publication = cast(Publication, PublicationFactory(topics=[topic], **fields))
    publication.status = Publication.Status.PUBLISHED
    publication.published_at = timezone.now()
    publication.save()
    return cast(
        Dispatch, DispatchFactory(publication=publication, version=publication.history.latest())
    )


def body(message: bytes, subtype: str) -> str:
    """The text of the ``subtype`` ("plain" or "html") part of a raw message."""
    parsed = email.message_from_bytes(message, policy=email.policy.default)
    part = parsed.get_body(preferencelist=(subtype,))
    assert part is not None, f"no text/{subtype} part"
    return str(part.get_content())


@pytest.fixture(scope="session")
def sns_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnsPeer]:
    """SNS's signing side: an RSA key, its self-signed certificate served over HTTPS on
    loopback (the same certificate is the server's TLS certificate, trusted through
    REQUESTS_CA_BUNDLE by the ``sns`` fixture)."""
    context, key, ca_bundle = server_context(tmp_path_factory.mktemp("sns"), "sns.test")
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context, threaded=True)
    server.start()
    try:
        yield SnsPeer(key=key, server=server, ca_bundle=ca_bundle)
    finally:
        server.clear()
        if server.is_running():
            server.stop()


@pytest.fixture
def sns(sns_server: SnsPeer, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[SnsPeer]:
    """The SNS peer for one test: the endpoint trusts its host and topic, its certificate is
    served, no certificate is cached from an earlier test."""
    settings.SES_FEEDBACK_TOPIC_ARNS = [TOPIC_ARN]
    settings.SES_FEEDBACK_CERT_HOST_PATTERN = r"127\.0\.0\.1:\d+"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sns_server.ca_bundle))
    sns_module.clear_certificate_cache()
    sns_server.server.clear()
    sns_server.server.expect_request(CERT_PATH, method="GET").respond_with_data(
        sns_server.ca_bundle.read_bytes(), content_type="application/x-pem-file"
    )
    yield sns_server
    sns_module.clear_certificate_cache()
    sns_server.server.clear()


def claimed_batch(
    topic: Topic, channel: Channel, count: int, *, subscribers: int | None = None
) -> tuple[list[ClaimedRow], dt.datetime]:
    """``count`` deliveries of a new dispatch to ``subscribers`` (default ``count``) new
    subscribers of ``topic``, claimed on ``channel``: the rows in id order and the lease."""
    from channels.engine import claims, fanout

    add_subscribers(topic, count if subscribers is None else subscribers)
    fanout.plan_dispatch(make_dispatch(topic).pk)
    rows, lease = claims.claim(channel, count, timezone.now())
    return sorted(rows, key=lambda row: row.pk), lease
