"""Retry arithmetic, MIME building and the engine's reaction to what backends report."""

from __future__ import annotations

import email
import email.policy
import random
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import pytest
from django import forms
from django.utils import timezone

from channels.backends.base import (
    Backend,
    BackendError,
    Message,
    Outcome,
    OutcomeStatus,
    register,
    registry,
)
from channels.configuration import build_backend
from channels.engine import batches, outcomes, pacing
from channels.engine.mime import PreparedEmail, encode_address, encode_body
from channels.models import Channel, Delivery
from publishing.rendering import EmailTemplate
from subscribers.tokens import SubscriberLinks
from tests.channels.conftest import body, make_smtp_channel
from tests.factories import DeliveryFactory


def test_every_status_is_either_settled_or_unsettled() -> None:
    """``unsettled()`` names its statuses (an index range), so a new status must be put on
    one side or the other."""
    assert set(Delivery.SETTLED).isdisjoint(Delivery.UNSETTLED)
    assert {*Delivery.SETTLED, *Delivery.UNSETTLED} == set(Delivery.Status)


def test_backoff_grows_exponentially_with_full_jitter_under_a_cap(settings: Any) -> None:
    settings.DELIVERY_BACKOFF_BASE_SECONDS = 10
    settings.DELIVERY_BACKOFF_CAP_SECONDS = 60
    random.seed(5)

    waits = {n: [outcomes.backoff_seconds(n) for _ in range(200)] for n in (1, 2, 3, 10)}

    assert all(0 <= w <= 10 for w in waits[1])
    assert all(0 <= w <= 20 for w in waits[2])
    assert max(waits[3]) > 20
    assert all(0 <= w <= 60 for w in waits[10])
    assert len(set(waits[10])) == 200  # jitter: no two workers retry in step


def test_backoff_honours_a_providers_retry_after(settings: Any) -> None:
    settings.DELIVERY_BACKOFF_BASE_SECONDS = 1

    assert outcomes.backoff_seconds(1, retry_after=120) == 120


def test_a_body_with_overlong_lines_is_sent_quoted_printable() -> None:
    short = encode_body("Bonjour à tous\nligne deux")
    long = encode_body("x" * 2000 + " é")

    assert short == (b"8bit", "Bonjour à tous\r\nligne deux".encode())
    assert long[0] == b"quoted-printable"
    assert max(len(line) for line in long[1].split(b"\r\n")) <= 78


@pytest.mark.parametrize(
    ("name", "paragraph"),
    [
        ("Ana <&>", "short line"),
        ("Zoë Ünïcode", "long é line " * 200),  # over 998 octets: quoted-printable
        ("N" * 400, "long line " * 200),  # a value too long for a slot: built in full
    ],
)
def test_prepared_mime_decodes_to_exactly_what_personalize_gives(name: str, paragraph: str) -> None:
    template = EmailTemplate(
        subject="Été 2026",
        html=f"<p>Hi [[[name]]] <a href='[[[unsubscribe_url]]]'>x</a></p>\n<p>{paragraph}</p>",
        text=f"Hi [[[name]]]\n{paragraph}\n[[[preferences_url]]] [[[unsubscribe_url]]]",
    )
    prepared = PreparedEmail.prepare(template, "Équipe <news@example.com>")
    preferences, unsubscribe = "https://x/p?a=1&b=2", "https://x/u"

    raw = prepared.build(
        to="ana@example.com",
        message_id="delivery-1@example.com",
        date="Sat, 28 Nov 2026 10:00:00 +0000",
        name=name,
        preferences_url=preferences,
        unsubscribe_url=unsubscribe,
        headers={"X-Delivery-ID": "1"},
    )

    html, text = template.personalize(
        name=name, preferences_url=preferences, unsubscribe_url=unsubscribe
    )
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == "Été 2026"
    assert parsed["From"].addresses[0].display_name == "Équipe"
    assert body(raw, "plain").replace("\r\n", "\n").rstrip("\n") == text
    assert body(raw, "html").replace("\r\n", "\n").rstrip("\n") == html
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


@pytest.mark.parametrize(
    "address",
    [
        "ana@example.com",
        "ana.maria+news@mail.example.co.uk",
        "o_k-1@x-y.example",
        "Ana <ana@example.com>",
        "Zoë <zoe@example.com>",
        "a..b@example.com",
        ".lead@example.com",
        "tail.@example.com",
        "ana@example..com",
        '"quoted local"@example.com',
        "ana @example.com",
    ],
)
def test_a_to_header_is_what_parseaddr_would_give(address: str) -> None:
    from email.utils import formataddr, parseaddr

    name, parsed = parseaddr(address)
    expected = formataddr((name, parsed), charset="utf-8") if name else parsed

    assert encode_address(address) == expected.encode()


class GoneForm(forms.Form):
    pass


class GoneBackend(Backend):
    """A provider that answers like a webhook endpoint which no longer exists (HTTP 410)."""

    kind = "webhook"
    label = "Gone"
    is_broadcast = True
    config_form = GoneForm
    sent: ClassVar[list[int]] = []

    def send(self, batch: Sequence[Message]) -> list[Outcome]:
        return [
            Outcome(m.delivery_id, OutcomeStatus.PERMANENT, error="410 Gone", disable_channel=True)
            for m in batch
        ]


class RateLimitedBackend(GoneBackend):
    kind = "slack"

    def send(self, batch: Sequence[Message]) -> list[Outcome]:
        return [Outcome(m.delivery_id, OutcomeStatus.RATE_LIMITED, retry_after=42) for m in batch]


@pytest.fixture
def test_backends() -> Iterator[None]:
    """Stand in for the webhook and Slack backends (their own tests use real HTTP peers)."""
    saved = {kind: registry.get(kind) for kind in ("webhook", "slack")}
    register(GoneBackend)
    register(RateLimitedBackend)
    yield
    for kind, backend in saved.items():
        if backend is None:
            registry.pop(kind)
        else:
            registry[kind] = backend


@pytest.mark.django_db
def test_an_endpoint_that_is_gone_disables_its_channel(test_backends: None) -> None:
    delivery = DeliveryFactory(
        kind=Delivery.Kind.BROADCAST, channel__kind="webhook", next_attempt_at=timezone.now()
    )

    batches.send_batch(delivery.channel_id)

    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert Channel.objects.get(pk=delivery.channel_id).is_enabled is False


@pytest.mark.django_db
def test_a_rate_limited_answer_waits_as_told_without_spending_an_attempt(
    test_backends: None,
) -> None:
    delivery = DeliveryFactory(
        kind=Delivery.Kind.BROADCAST, channel__kind="slack", next_attempt_at=timezone.now()
    )
    before = timezone.now()

    batches.send_batch(delivery.channel_id)

    row = Delivery.objects.get(pk=delivery.pk)
    assert (row.status, row.attempts) == ("queued", 0)
    wait = (row.next_attempt_at - before).total_seconds()
    assert 42 <= wait < 45
    channel = Channel.objects.get(pk=delivery.channel_id)
    assert (channel.circuit_state, channel.consecutive_failures) == ("closed", 0)


@pytest.mark.django_db
def test_a_channel_whose_smtp_server_is_down_reports_transient_failures() -> None:
    from tests.channels.conftest import free_port

    channel = make_smtp_channel(free_port())
    delivery = DeliveryFactory(
        kind=Delivery.Kind.TRANSACTIONAL,
        channel=channel,
        recipient="ana@example.com",
        raw_message=b"Subject: x\r\n\r\nbody\r\n",
    )

    report = batches.send_batch(channel.pk)

    delivery.refresh_from_db()
    assert report.outcomes == {"queued": 1}
    assert delivery.last_error.startswith("SMTP connection failed: ConnectionRefusedError")
    with pytest.raises(BackendError):
        build_backend(channel).check()


@pytest.mark.django_db
def test_rate_reservations_queue_up_one_after_another() -> None:
    channel = make_smtp_channel(25)

    first = pacing.reserve_rate(channel.pk, rate=10, count=10)
    second = pacing.reserve_rate(channel.pk, rate=10, count=5)
    third = pacing.reserve_rate(channel.pk, rate=10, count=1)

    assert first < 0.05
    assert 0.9 < second <= 1.0
    assert 1.4 < third <= 1.5


@pytest.mark.django_db
def test_paced_sending_hands_each_message_over_at_its_slot(tmp_path: Any) -> None:
    channel = Channel.objects.create(
        name="Files", kind="email_file", config={"directory": str(tmp_path)}
    )
    backend = build_backend(channel)
    messages = [Message(delivery_id=i, to="a@example.com", text="x") for i in range(4)]
    waits: list[float] = []

    outcomes = pacing.send_paced(backend, messages, 20.0, channel.pk, sleep=waits.append)

    assert [o.status for o in outcomes] == ["sent"] * 4
    # The sleep is recorded, not slept: slots 50 ms apart, the first one now.
    assert len(waits) == 3
    assert waits == sorted(waits)
    assert 0.14 < waits[-1] <= 0.15


def test_batch_links_equal_what_subscribers_tokens_builds() -> None:
    from subscribers.tokens import (
        list_unsubscribe_headers,
        manage_token,
        preferences_url,
        unsubscribe_token,
        unsubscribe_url,
    )

    links = SubscriberLinks.build()
    key = "5b0c7c9e-2f6e-4a59-9d9a-3c1f0b7e8a11"
    manage, unsubscribe = manage_token(42, key), unsubscribe_token(42, key)
    odd = "needs quoting?"

    for pair in ((manage, unsubscribe), (odd, odd)):
        assert links.for_tokens(*pair) == (
            preferences_url(pair[0]),
            unsubscribe_url(pair[1]),
            list_unsubscribe_headers(pair[1]),
        )
    assert links.for_subscriber(42, key) == links.for_tokens(manage, unsubscribe)


def test_batch_links_put_the_unsubscribe_token_and_never_the_manage_token_in_the_headers() -> None:
    from subscribers.tokens import manage_token, read_unsubscribe_token

    key = "5b0c7c9e-2f6e-4a59-9d9a-3c1f0b7e8a11"
    _preferences, unsubscribe, headers = SubscriberLinks.build().for_subscriber(42, key)

    token = unsubscribe.rstrip("/").rsplit("/", 1)[1]
    assert read_unsubscribe_token(token).subscriber_id == 42
    assert manage_token(42, key) not in headers["List-Unsubscribe"] + unsubscribe
    assert token in headers["List-Unsubscribe"]
