"""Email through any SMTP server, with Django's SMTP backend managing the connection.

One connection serves a whole batch (opened on the first send, closed by ``close``). A 4xx
answer is transient, a 5xx answer permanent; a dropped connection is transient for the
message in flight and the rest of the batch, also across ``send`` calls: a connection that
failed is not tried again before ``close``. With the sent journal (decision 0039) the engine
calls ``send_each``; with PIPELINING, each next envelope leaves with the content before it
(decision 0067). A connection lost after a message's final dot, before the answer, leaves that
message UNCERTAIN (decision 0068).
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import Any

from django import forms
from django.core.mail.backends.smtp import EmailBackend

from channels.backends.base import (
    Backend,
    BackendError,
    Handover,
    JournalUnavailableError,
    Message,
    Outcome,
    OutcomeStatus,
    register,
)
from channels.backends.email_common import envelope_sender, message_bytes
from channels.backends.utils import send_all


class SmtpConfigForm(forms.Form):
    host = forms.CharField(max_length=255)
    port = forms.IntegerField(min_value=1, max_value=65535, initial=587)
    username = forms.CharField(max_length=255, required=False)
    password = forms.CharField(max_length=255, required=False, widget=forms.PasswordInput)
    use_tls = forms.BooleanField(required=False, help_text="STARTTLS after connecting.")
    use_ssl = forms.BooleanField(required=False, help_text="TLS from the first byte (port 465).")
    timeout = forms.FloatField(min_value=1, max_value=120, initial=30)
    from_email = forms.CharField(max_length=254, required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("use_tls") and data.get("use_ssl"):
            raise forms.ValidationError("Choose STARTTLS or SSL, not both.", code="tls_and_ssl")
        return data


#: A plain ASCII address needs none of smtplib's quoteaddr() parsing (about 30 us a call).
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")
#: Lines starting with a dot are sent with a second one (RFC 5321 4.5.2), as smtplib.data does.
_DOT_LINE = re.compile(rb"(?m)^\.")


def _envelope(smtp: smtplib.SMTP, side: str, address: str) -> tuple[int, bytes]:
    """MAIL FROM (``side`` "from") or RCPT TO ("to") for ``address``: what smtplib's mail() and
    rcpt() send, without their address parsing when the address is plain."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return smtp.docmd("mail" if side == "from" else "rcpt", f"{side.upper()}:<{address}>")
    return smtp.mail(address) if side == "from" else smtp.rcpt(address)


def _envelope_commands(sender: str, to: str) -> bytes:
    """MAIL FROM, RCPT TO and DATA for plain addresses, as one pipelined write."""
    return f"MAIL FROM:<{sender}>\r\nRCPT TO:<{to}>\r\nDATA\r\n".encode()


def _content(data: bytes) -> bytes:
    """The message as DATA carries it: dot-stuffed, ending with CRLF (the final dot follows).
    Most messages have no line starting with a dot: the regex over 5 KB is skipped then."""
    content = _DOT_LINE.sub(b"..", data) if data[:1] == b"." or b"\n." in data else data
    return content if content.endswith(b"\r\n") else content + b"\r\n"


def _send(smtp: smtplib.SMTP, data: bytes) -> None:
    """``smtp.send(data)`` (a message's content, with the next envelope when pipelining) in one
    system call where it can (``send_all``); a lost connection is smtplib's
    SMTPServerDisconnected, as from ``smtp.send``."""
    if smtp.sock is None:
        smtp.send(data)  # raises SMTPServerDisconnected
        return
    try:
        send_all(smtp.sock, data)
    except OSError as error:
        smtp.close()
        raise smtplib.SMTPServerDisconnected("Server not connected") from error


class _Replies:
    """The server's replies as smtplib reads them (``SMTP.file``), from a buffer of our own:
    before it waits for the server, it calls ``before_wait`` (the journal writes what it
    holds, decision 0090). smtplib's reader is a BufferedReader over the socket, which cannot
    tell whether a reply is already in hand or will be waited for."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()
        self.before_wait: Callable[[], None] | None = None

    def readline(self, limit: int = -1) -> bytes:
        """One line (at most ``limit`` bytes), as BufferedReader.readline; b"" once the server
        closed the connection. Socket errors (a timeout) are smtplib's to handle."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0 or 0 <= limit <= len(self._buffer):
                size = end + 1 if end >= 0 else limit
                if limit >= 0:
                    size = min(size, limit)
                line = bytes(self._buffer[:size])
                del self._buffer[:size]
                return line
            if self.before_wait is not None:
                self.before_wait()
            chunk = self._sock.recv(8192)
            if not chunk:
                line = bytes(self._buffer)
                self._buffer.clear()
                return line
            self._buffer += chunk

    def close(self) -> None:
        self._buffer.clear()


class _NoAnswerError(Exception):
    """The connection was lost after a message's final dot left, before its answer."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class _NoJournal:
    """The Handover of a plain ``send``: nothing is journaled."""

    def handing_over(self, delivery_id: int) -> None:
        return None

    def answered(self, outcome: Outcome) -> None:
        return None

    def answered_later(self, outcome: Outcome) -> None:
        return None

    def flush(self) -> None:
        return None


_NO_JOURNAL = _NoJournal()


def _classify(code: int, text: bytes | str, delivery_id: int) -> Outcome:
    detail = text.decode(errors="replace") if isinstance(text, bytes) else text
    status = OutcomeStatus.PERMANENT if 500 <= code < 600 else OutcomeStatus.TRANSIENT
    return Outcome(delivery_id, status, error=f"SMTP {code}: {detail}"[:1000])


@register
class SmtpBackend(Backend):
    kind = "email_smtp"
    label = "Email (SMTP)"
    config_form = SmtpConfigForm
    secret_fields = frozenset({"password"})

    def __init__(self, config: Any, secrets: Any) -> None:
        super().__init__(config, secrets)
        self._django: EmailBackend | None = None
        self._failure: BaseException | None = None
        # Parsed on the first send and kept for the batch (decision 0064).
        self._sender: str | None = None

    def _connection(self) -> smtplib.SMTP:
        if self._django is None or self._django.connection is None:
            self._django = EmailBackend(
                host=self.config.get("host"),
                port=int(self.config.get("port") or 25),
                username=self.config.get("username") or "",
                password=self.secrets.get("password", ""),
                use_tls=bool(self.config.get("use_tls")),
                use_ssl=bool(self.config.get("use_ssl")),
                timeout=float(self.config.get("timeout") or 30),
                fail_silently=False,
            )
            self._django.open()
            assert self._django.connection is not None  # noqa: S101 (open() raised otherwise)
            # Django's open() leaves the greeting to sendmail(); we talk MAIL/RCPT/DATA.
            self._django.connection.ehlo_or_helo_if_needed()
            smtp = self._django.connection
            if smtp.sock is not None:
                # Nothing is left unread after the greeting: read the rest through _Replies.
                if smtp.file is not None:
                    smtp.file.close()
                smtp.file = _Replies(smtp.sock)
        connection = self._django.connection
        assert connection is not None  # noqa: S101
        return connection

    def send(self, batch: Sequence[Message]) -> list[Outcome]:
        return self.send_each(batch, _NO_JOURNAL)

    def send_each(self, batch: Sequence[Message], handover: Handover) -> list[Outcome]:
        """Send the batch over one connection, telling ``handover`` just before each message's
        content and final dot leave and as soon as the server's answer to them is read.

        With PIPELINING, the next message's MAIL, RCPT and DATA leave in the same write as this
        message's content (RFC 2920 allows the content to open a group): one round trip per
        message. An envelope hands nothing over (the content follows its 354 only after this
        message's answer is recorded), so the journal's guarantee is unchanged. A connection
        lost after the final dot left makes that message UNCERTAIN (the server may have it),
        and the rest of the batch TRANSIENT.
        """
        outcomes: list[Outcome] = []

        def give(outcome: Outcome, *, later: bool = False) -> None:
            # ``later``: the next envelope left with this message; its replies often came
            # with this answer, and the answer can leave with the next in-flight entry
            # (_Replies flushes it before any wait for the server).
            if later:
                handover.answered_later(outcome)
            else:
                handover.answered(outcome)
            outcomes.append(outcome)

        if self._sender is None:
            self._sender = envelope_sender(self.config)
        sender = self._sender
        if self._failure is not None:
            for message in batch:
                give(self._broken(message.delivery_id, self._failure))
            return outcomes
        try:
            smtp = self._connection()
        except (OSError, smtplib.SMTPException, ssl.SSLError) as error:
            self._failure = error
            for message in batch:
                give(self._broken(message.delivery_id, error))
            return outcomes
        replies = smtp.file if isinstance(smtp.file, _Replies) else None
        if replies is not None:
            replies.before_wait = handover.flush
        try:
            return self._send_all(smtp, sender, batch, handover, give, outcomes)
        finally:
            if replies is not None:
                replies.before_wait = None
            handover.flush()

    def _send_all(
        self,
        smtp: smtplib.SMTP,
        sender: str,
        batch: Sequence[Message],
        handover: Handover,
        give: Callable[..., None],
        outcomes: list[Outcome],
    ) -> list[Outcome]:
        """send_each's loop over ``batch`` on a connection that is open."""
        pipelining = smtp.has_extn("pipelining") and bool(_PLAIN_ADDRESS.fullmatch(sender))
        # The envelope of batch[index] already left with the previous message's content.
        ahead = False
        for index, message in enumerate(batch):
            try:
                if pipelining and _PLAIN_ADDRESS.fullmatch(message.to):
                    following = batch[index + 1] if index + 1 < len(batch) else None
                    outcome, ahead = self._send_pipelined(
                        smtp, sender, message, handover, ahead=ahead, following=following
                    )
                else:
                    outcome, ahead = self._send_one(smtp, sender, message, handover), False
            except _NoAnswerError as no_answer:
                self._abort(no_answer.error)
                give(
                    Outcome(
                        message.delivery_id,
                        OutcomeStatus.UNCERTAIN,
                        error=(
                            "SMTP connection lost after the message was handed over, before "
                            f"the server answered (uncertain): {no_answer.error!r}"
                        )[:1000],
                    )
                )
                for rest in batch[index + 1 :]:
                    give(self._broken(rest.delivery_id, no_answer.error))
                break
            except (OSError, smtplib.SMTPServerDisconnected) as error:
                # The connection is gone before this message was handed over: it and the
                # rest are retried later.
                self._abort(error)
                for rest in batch[index:]:
                    give(self._broken(rest.delivery_id, error))
                break
            except JournalUnavailableError as error:
                # Nothing may be handed over that the journal cannot follow; the server is
                # waiting for content, so the connection is dropped, not closed politely.
                self._abort(error)
                for rest in batch[index:]:
                    outcomes.append(
                        Outcome(
                            rest.delivery_id,
                            OutcomeStatus.TRANSIENT,
                            error=f"Not handed over: {error}.",
                        )
                    )
                break
            give(outcome, later=ahead)
        return outcomes

    def _abort(self, error: BaseException) -> None:
        """Drop the connection without QUIT (the dialogue may be mid-DATA) and remember why."""
        if self._django is not None and self._django.connection is not None:
            with contextlib.suppress(OSError):
                self._django.connection.close()
            self._django.connection = None
        self._django = None
        self._failure = error

    @staticmethod
    def _broken(delivery_id: int, error: BaseException) -> Outcome:
        return Outcome(
            delivery_id,
            OutcomeStatus.TRANSIENT,
            error=f"SMTP connection failed: {type(error).__name__}: {error}"[:1000],
        )

    @staticmethod
    def _hand_over(
        smtp: smtplib.SMTP, message: Message, content: bytes, handover: Handover
    ) -> tuple[int, bytes]:
        """Journal the message as in flight, send ``content`` (which ends with the final dot)
        and read the answer at once. A connection lost while reading raises _NoAnswerError."""
        handover.handing_over(message.delivery_id)
        _send(smtp, content)
        try:
            return smtp.getreply()
        except (OSError, smtplib.SMTPServerDisconnected) as error:
            raise _NoAnswerError(error) from error

    def _send_one(
        self, smtp: smtplib.SMTP, sender: str, message: Message, handover: Handover
    ) -> Outcome:
        """One command at a time: servers without PIPELINING, addresses that need parsing."""
        data = message_bytes(message, self.config)
        code, text = _envelope(smtp, "from", sender)
        if code != 250:
            smtp.rset()
            return _classify(code, text, message.delivery_id)
        code, text = _envelope(smtp, "to", message.to)
        if code not in (250, 251):
            smtp.rset()
            return _classify(code, text, message.delivery_id)
        code, text = smtp.docmd("data")
        if code != 354:
            smtp.rset()
            return _classify(code, text, message.delivery_id)
        code, text = self._hand_over(smtp, message, _content(data) + b".\r\n", handover)
        if code != 250:
            smtp.rset()
            return _classify(code, text, message.delivery_id)
        provider_id = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
        return Outcome(message.delivery_id, OutcomeStatus.SENT, provider_message_id=provider_id)

    def _send_pipelined(
        self,
        smtp: smtplib.SMTP,
        sender: str,
        message: Message,
        handover: Handover,
        *,
        ahead: bool,
        following: Message | None,
    ) -> tuple[Outcome, bool]:
        """MAIL, RCPT and DATA in one write (RFC 2920), then the content, with the envelope of
        ``following`` (when it can be pipelined) in the same write. ``ahead``: this message's
        envelope already left. Returns the outcome and whether the next envelope left.

        The answers are read in order, so each refusal is classified exactly as in the
        one-command-at-a-time dialogue. RSET is sent only while nothing else is in flight: a
        finished DATA (250 or not) ends its transaction anyway.
        """
        if not ahead:
            smtp.send(_envelope_commands(sender, message.to))
        mail, rcpt, start = smtp.getreply(), smtp.getreply(), smtp.getreply()
        refused = next(
            (reply for reply, ok in ((mail, (250,)), (rcpt, (250, 251))) if reply[0] not in ok),
            None,
        )
        if start[0] != 354:
            smtp.rset()
            code, text = refused or start
            return _classify(code, text, message.delivery_id), False
        if refused is not None:
            # The server opened DATA without a valid transaction: send nothing, end it.
            smtp.send(b".\r\n")
            smtp.getreply()
            smtp.rset()
            return _classify(refused[0], refused[1], message.delivery_id), False
        content = _content(message_bytes(message, self.config))
        envelope = b""
        if following is not None and _PLAIN_ADDRESS.fullmatch(following.to):
            envelope = _envelope_commands(sender, following.to)
        code, text = self._hand_over(smtp, message, content + b".\r\n" + envelope, handover)
        if code != 250:
            if not envelope:
                smtp.rset()
            return _classify(code, text, message.delivery_id), bool(envelope)
        provider_id = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
        outcome = Outcome(message.delivery_id, OutcomeStatus.SENT, provider_message_id=provider_id)
        return outcome, bool(envelope)

    def check(self) -> None:
        try:
            self._connection().noop()
        except (OSError, smtplib.SMTPException) as error:
            raise BackendError(f"Cannot reach the SMTP server: {error}") from error
        finally:
            self.close()

    def close(self) -> None:
        self._failure = None
        if self._django is not None:
            self._django.close()
            self._django = None
