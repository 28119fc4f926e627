"""The email_smtp and email_file backends against real peers (aiosmtpd, the file system)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core import mail

from channels.backends.base import BackendError, Message, Outcome
from channels.backends.email_file import FileBackend
from channels.backends.email_smtp import SmtpBackend, SmtpConfigForm
from channels.models import Delivery
from tests.channels.conftest import SmtpSink


def test_smtp_config_refuses_starttls_and_ssl_together() -> None:
    form = SmtpConfigForm(
        {"host": "mail.example.com", "port": 465, "timeout": 10, "use_tls": True, "use_ssl": True}
    )

    assert not form.is_valid()
    assert form.errors["__all__"] == ["Choose STARTTLS or SSL, not both."]


def test_smtp_sends_a_batch_over_one_connection_and_classifies_refusals(
    smtp_sink: tuple[SmtpSink, int],
) -> None:
    sink, port = smtp_sink
    sink.refuse_rcpt = {"nobody@example.com"}
    sink.answer = lambda content, rcpt: "452 4.2.2 Mailbox full" if b"full" in content else None
    backend = SmtpBackend({"host": "127.0.0.1", "port": port, "timeout": 5}, {})
    batch = [
        Message(delivery_id=1, to="ana@example.com", subject="Hi", text="hello"),
        Message(delivery_id=2, to="nobody@example.com", subject="Hi", text="hello"),
        Message(delivery_id=3, to="bo@example.com", subject="Hi", text="full"),
        Message(delivery_id=4, to="cy@example.com", subject="Hi", text="hi", html="<p>hi</p>"),
    ]

    outcomes = backend.send(batch)
    backend.check()
    backend.close()

    assert [(o.delivery_id, o.status) for o in outcomes] == [
        (1, "sent"),
        (2, "permanent"),
        (3, "transient"),
        (4, "sent"),
    ]
    assert outcomes[1].error.startswith("SMTP 550")
    assert outcomes[2].error.startswith("SMTP 452")
    assert "queued" in outcomes[0].provider_message_id
    assert sink.recipients == ["ana@example.com", "cy@example.com"]


def test_smtp_sends_to_an_address_with_a_display_name_through_smtplibs_own_parsing(
    smtp_sink: tuple[SmtpSink, int],
) -> None:
    sink, port = smtp_sink
    backend = SmtpBackend(
        {"host": "127.0.0.1", "port": port, "from_email": "News <news@example.com>"}, {}
    )

    outcomes = backend.send(
        [
            Message(delivery_id=1, to="Zoë <zoe@example.com>", subject="Hi", text="hello"),
            Message(delivery_id=2, to="plain@example.com", subject="Hi", text="hello"),
        ]
    )
    backend.close()

    assert [o.status for o in outcomes] == ["sent", "sent"]
    assert sink.recipients == ["zoe@example.com", "plain@example.com"]


class PipeliningSink(SmtpSink):
    """The sink announcing PIPELINING (RFC 2920), as Postfix does."""

    def __init__(self) -> None:
        super().__init__(pipelining=True)


def test_smtp_pipelines_commands_when_the_server_allows_it_and_classifies_each_refusal() -> None:
    from aiosmtpd.controller import Controller

    from tests.channels.conftest import free_port

    sink = PipeliningSink()
    sink.refuse_rcpt = {"nobody@example.com"}
    sink.answer = lambda content, rcpt: "452 4.2.2 Mailbox full" if b"full" in content else None
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    try:
        backend = SmtpBackend({"host": "127.0.0.1", "port": port, "timeout": 5}, {})
        outcomes = backend.send(
            [
                Message(delivery_id=1, to="ana@example.com", subject="Hi", text=".dot\nhello"),
                Message(delivery_id=2, to="nobody@example.com", subject="Hi", text="hello"),
                Message(delivery_id=3, to="bo@example.com", subject="Hi", text="full"),
                Message(delivery_id=4, to="cy@example.com", subject="Hi", text="bye"),
            ]
        )
        assert backend._connection().has_extn("pipelining")
        backend.close()
    finally:
        controller.stop()

    assert [(o.delivery_id, o.status) for o in outcomes] == [
        (1, "sent"),
        (2, "permanent"),
        (3, "transient"),
        (4, "sent"),
    ]
    assert outcomes[1].error.startswith("SMTP 550")
    assert outcomes[2].error.startswith("SMTP 452")
    assert sink.recipients == ["ana@example.com", "cy@example.com"]
    assert b"\r\n.dot\r\nhello" in sink.messages[0]  # the doubled dot is removed again


def test_smtp_sends_each_next_envelope_with_a_content_and_gives_each_outcome_before_it() -> None:
    from aiosmtpd.controller import Controller

    from tests.channels.conftest import free_port

    sink = PipeliningSink()
    sink.refuse_rcpt = {"nobody@example.com"}
    given: list[int] = []
    handed: list[int] = []
    # How many outcomes the engine had been given, and which message it had journaled as in
    # flight last, when each content reached the sink.
    seen: list[tuple[int, int]] = []

    def answer(content: bytes, rcpt: list[str]) -> str | None:
        seen.append((len(given), handed[-1]))
        return "452 4.2.2 Mailbox full" if b"full" in content else None

    class Journal:
        def handing_over(self, delivery_id: int) -> None:
            handed.append(delivery_id)

        def answered(self, outcome: Outcome) -> None:
            given.append(outcome.delivery_id)

        def answered_later(self, outcome: Outcome) -> None:
            given.append(outcome.delivery_id)

        def flush(self) -> None:
            return None

    sink.answer = answer
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    try:
        backend = SmtpBackend({"host": "127.0.0.1", "port": port, "timeout": 5}, {})
        outcomes = backend.send_each(
            [
                Message(delivery_id=1, to="ana@example.com", subject="Hi", text="one"),
                # Not a plain address: one command at a time, nothing sent ahead of it.
                Message(delivery_id=2, to="Zoe Example <zoe@example.com>", text="two"),
                # Refused after its content, with message 4's envelope already sent.
                Message(delivery_id=3, to="bo@example.com", subject="Hi", text="full"),
                Message(delivery_id=4, to="nobody@example.com", subject="Hi", text="four"),
                Message(delivery_id=5, to="eve@example.com", subject="Hi", text=".five"),
                # Refused last, with nothing in flight after it.
                Message(delivery_id=6, to="cy@example.com", subject="Hi", text="full"),
            ],
            Journal(),
        )
        # The connection is still in step: the next batch goes through it.
        again = backend.send([Message(delivery_id=7, to="di@example.com", text="seven")])
        backend.close()
    finally:
        controller.stop()

    assert given == [1, 2, 3, 4, 5, 6]
    assert [o.status for o in outcomes] == [
        "sent",
        "sent",
        "transient",
        "permanent",
        "sent",
        "transient",
    ]
    assert outcomes[3].error.startswith("SMTP 550")
    # Each content left after its own in-flight entry and every earlier outcome; message 4,
    # refused at RCPT, was never handed over; message 7 went through a plain send.
    assert seen == [(0, 1), (1, 2), (2, 3), (4, 5), (5, 6), (6, 6)]
    assert handed == [1, 2, 3, 5, 6]
    assert [o.status for o in again] == ["sent"]
    assert sink.recipients == [
        "ana@example.com",
        "zoe@example.com",
        "eve@example.com",
        "di@example.com",
    ]
    assert b"\r\n.five" in sink.messages[2]


def test_the_file_backend_reports_an_unusable_folder_as_transient(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    backend = FileBackend({"directory": str(blocker / "outbox")}, {})

    outcomes = backend.send([Message(delivery_id=1, to="ana@example.com", text="x")])

    assert outcomes[0].status == "transient"
    assert "Outbox unusable" in outcomes[0].error
    with pytest.raises(BackendError):
        backend.check()


@pytest.mark.django_db
def test_with_no_email_channel_site_mail_lands_in_the_outbox_folder(
    settings: Any, tmp_path: Path
) -> None:
    settings.EMAIL_BACKEND = "channels.mail.LedgerEmailBackend"
    settings.EMAIL_OUTBOX_DIR = tmp_path

    assert mail.send_mail("Hi", "Body", None, ["ana@example.com"]) == 1

    (written,) = tmp_path.iterdir()
    assert written.suffix == ".eml"
    assert b"To: ana@example.com" in written.read_bytes()
    assert Delivery.objects.count() == 0


@pytest.mark.django_db
def test_the_ledger_backend_fails_loudly_unless_told_to_be_silent(settings: Any) -> None:
    settings.EMAIL_BACKEND = "channels.mail.LedgerEmailBackend"
    settings.LEDGER_FALLBACK_EMAIL_BACKEND = "channels.missing.Backend"

    with pytest.raises(ImportError):
        mail.send_mail("Hi", "Body", None, ["ana@example.com"])
    assert mail.send_mail("Hi", "Body", None, ["ana@example.com"], fail_silently=True) == 0
