"""The sent journal: what became of each message a batch handed over, kept outside SQL.

A batch records its outcomes in one UPDATE at its end (decision 0032). A worker killed before
that UPDATE leaves rows ``sending``; the journal tells recovery what happened to each one
(decisions 0039 and 0068). For every message the send loop writes one cache entry (key:
database + delivery id) twice:

- ``F`` (in flight) just before the step that hands the message over (the content and final
  dot of SMTP's DATA, the HTTP request), under the claim's lease;
- ``A`` (accepted, with the provider's message id) or ``R`` (refused, with the outcome) as soon
  as the answer is read, before the next message is handed over.

Recovery (the sweeper, for expired leases) reads the entries in one bulk read and sorts the
rows: accepted (recorded as sent), refused under this claim (the outcome applied), in flight
under this claim (*uncertain*: the provider may have it; the channel's policy resends or
skips it) and no entry of this claim (never started: sent). The claim of a retried row also
reads the journal and records as sent a row some earlier claim had accepted. Entries are
deleted once the batch's own UPDATE has recorded them, and expire after
``DELIVERY_JOURNAL_TTL_SECONDS`` otherwise.

The store is named by ``DELIVERY_JOURNAL_URL``: ``redis://`` (shared by every host: the
production setting, and the default whenever ``REDIS_URL`` is set), ``file:///dir`` (shared by
the processes of one host: the development default), ``locmem://`` (one process: unit tests)
or ``off``. A batch whose journal write fails stops handing messages over (the rest are
retried later, decision 0068); a recovery whose journal read fails leaves the rows for the
next sweep. With ``off`` there is nothing to read: every expired row is uncertain.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.filebased import FileBasedCache
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from django.db import connection

from channels.backends.base import JournalUnavailableError, Outcome, OutcomeStatus
from channels.backends.utils import send_all
from config.cache import redis_client

logger = logging.getLogger(__name__)

#: An entry written before its row was created belongs to an earlier row with the same id (SQLite
#: reuses the ids of deleted rows); this much clock difference between hosts is tolerated.
CLOCK_TOLERANCE = timedelta(seconds=60)
KEY_PREFIX = "delivery-journal"
#: The file store lists its folder on every write (Django's culling), so it must stay small:
#: entries are deleted once recorded, and culling only starts past this many.
FILE_MAX_ENTRIES = 1_000_000

_stores: dict[tuple[str, int], BaseCache | None] = {}
#: Journal commands a batch writes to Redis before it reads their replies: enough that it never
#: waits for one (they arrive within a round trip), few enough to fit any socket buffer.
REPLY_WINDOW = 32


class State(enum.StrEnum):
    IN_FLIGHT = "F"
    ACCEPTED = "A"
    REFUSED = "R"


@dataclass(frozen=True)
class Entry:
    """One journal entry: what became of ``delivery_id`` under the claim ``lease``.

    ``detail`` is the provider's message id (accepted) or ``<outcome status>|<error>``
    (refused); empty while in flight.
    """

    delivery_id: int
    state: State
    lease: str
    at: datetime
    detail: str = ""

    @property
    def provider_message_id(self) -> str:
        return self.detail if self.state == State.ACCEPTED else ""

    @property
    def accepted_at(self) -> datetime:
        return self.at

    def refusal(self) -> tuple[str, str]:
        """(outcome status, error) of a refused entry."""
        status, _, error = self.detail.partition("|")
        return status, error

    def encode(self) -> str:
        return f"{self.state}|{self.lease}|{self.at.timestamp():.6f}|{self.detail}"

    @classmethod
    def decode(cls, delivery_id: int, value: object) -> Entry | None:
        if not isinstance(value, str):
            return None
        try:
            state, lease, stamp, detail = value.split("|", 3)
            at = datetime.fromtimestamp(float(stamp), tz=UTC)
            return cls(delivery_id, State(state), lease, at, detail)
        except ValueError:
            return None


#: The name the earlier code and its tests use for an accepted entry.
Acceptance = Entry


def _build(url: str, ttl: int) -> BaseCache | None:
    scheme = urlsplit(url).scheme
    params: dict[str, Any] = {"TIMEOUT": ttl, "KEY_PREFIX": KEY_PREFIX}
    if scheme in ("redis", "rediss", "unix"):
        # A store that hangs must cost a batch one short wait, not the task's timeout.
        params["OPTIONS"] = {"socket_connect_timeout": 1.0, "socket_timeout": 1.0}
        return RedisCache(url, params)
    if scheme == "file":
        params["OPTIONS"] = {"MAX_ENTRIES": FILE_MAX_ENTRIES}
        return FileBasedCache(urlsplit(url).path, params)
    if scheme == "locmem":
        params["OPTIONS"] = {"MAX_ENTRIES": FILE_MAX_ENTRIES}
        return LocMemCache(url, params)
    return None


def store() -> BaseCache | None:
    """The journal's cache, built once per process and URL; None when the journal is off."""
    url = str(settings.DELIVERY_JOURNAL_URL or "off")
    ttl = int(settings.DELIVERY_JOURNAL_TTL_SECONDS)
    if (url, ttl) not in _stores:
        _stores[(url, ttl)] = _build(url, ttl)
    return _stores[(url, ttl)]


def is_enabled() -> bool:
    return store() is not None


def _key(delivery_id: int) -> str:
    return f"{_database_tag(str(connection.settings_dict.get('NAME') or ''))}:{delivery_id}"


@lru_cache(maxsize=8)
def _database_tag(database: str) -> str:
    # Several databases (a staging copy, parallel test runs) may share one Redis: their ids
    # overlap, so the key names the database too.
    return hashlib.sha256(database.encode()).hexdigest()[:12]


def lease_token(lease: datetime) -> str:
    """The text that identifies a claim (its lease) in journal entries."""
    return lease.isoformat()


def record(
    delivery_id: int, provider_message_id: str, lease: datetime, state: State = State.ACCEPTED
) -> bool:
    """Write one entry (what a BatchWriter does for each message of a batch). Returns whether
    it was written; a failing store is logged, never raised."""
    writer = BatchWriter(lease)
    entry = Entry(delivery_id, state, writer.lease, datetime.now(tz=UTC), provider_message_id)
    with contextlib.suppress(JournalUnavailableError):
        writer.write(entry)
    writer.close()
    return writer.works


class BatchWriter:
    """The journal writes of one batch: the ``Handover`` a backend's ``send_each`` reports to.

    On Redis the writes are pipelined on one connection: each entry's ``SET`` is written to the
    socket at once (an ``F`` before its message is handed over, an ``A``/``R`` as soon as the
    answer is read), and the replies are read only every REPLY_WINDOW commands and at
    ``close``, by which time they have long arrived: the journal never waits for Redis while
    the batch sends. A worker killed after a write still leaves the entry behind. An answer
    given with ``answered_later`` (SMTP with PIPELINING, whose next envelope's replies are
    often already read with the answer) leaves in the same write as the next message's ``F``,
    or at ``flush``, which the backend calls before it waits for any peer. A failing
    store is logged, and ``handing_over`` then raises JournalUnavailableError: a message the
    journal cannot follow is not handed over (decision 0068).
    """

    def __init__(self, lease: datetime) -> None:
        self.cache = store()
        self.lease = lease_token(lease)
        self.works = self.cache is not None
        self._connection: Any = None
        self._pending = 0
        #: Entries of ``answered_later``, sent with the next write.
        self._held: list[tuple[int, bytes]] = []
        self._ttl = str(getattr(self.cache, "default_timeout", 0) or 0).encode()
        self._redis = self.cache if isinstance(self.cache, RedisCache) else None
        # The Redis key of delivery n is head + n: built once per batch (decision 0064).
        self._head = _redis_head(self._redis) if self._redis is not None else b""

    def handing_over(self, delivery_id: int) -> None:
        """Record ``delivery_id`` as in flight; raise JournalUnavailableError when the journal
        cannot be written (this entry or an earlier one of the batch)."""
        self._write(delivery_id, f"F|{self.lease}|{time.time():.6f}|")

    def answered(self, outcome: Outcome) -> None:
        """Record the answer: accepted, or refused with its outcome. An uncertain outcome (no
        answer) leaves the entry in flight, which is what it is."""
        if outcome.status == OutcomeStatus.UNCERTAIN or not self.works:
            return
        # On failure the next handing_over raises; this answer is recorded by the batch.
        with contextlib.suppress(JournalUnavailableError):
            self._write(outcome.delivery_id, self._answer(outcome))

    def answered_later(self, outcome: Outcome) -> None:
        """Record the answer with the next write (the next ``handing_over`` or ``flush``):
        on Redis the two entries leave in one write. The backend calls ``flush`` before it
        waits for any peer, so an entry is held only while the worker computes. Other stores
        write it now."""
        if self._redis is None or outcome.status == OutcomeStatus.UNCERTAIN or not self.works:
            self.answered(outcome)
            return
        try:
            self._held.append(self._command(outcome.delivery_id, self._answer(outcome)))
        except Exception as error:  # the store is a boundary: as a failed write, the batch stops
            with contextlib.suppress(JournalUnavailableError):
                self._failed(outcome.delivery_id, error)

    def flush(self) -> None:
        """Write the entries ``answered_later`` holds; a failure is logged and the next
        ``handing_over`` raises."""
        if not self._held:
            return
        with contextlib.suppress(JournalUnavailableError):
            self._guarded(self._held[0][0], None)

    def _answer(self, outcome: Outcome) -> str:
        if outcome.status == OutcomeStatus.SENT:
            return f"A|{self.lease}|{time.time():.6f}|{outcome.provider_message_id}"
        return f"R|{self.lease}|{time.time():.6f}|{outcome.status}|{outcome.error[:200]}"

    def write(self, entry: Entry) -> None:
        """Write one entry now."""
        self._write(entry.delivery_id, entry.encode())

    def _write(self, delivery_id: int, value: str) -> None:
        if not self.works or self.cache is None:
            raise JournalUnavailableError("the sent journal cannot be written")
        if self._redis is None:
            try:
                self.cache.set(_key(delivery_id), value)
            except Exception as error:  # the store is a boundary: logged, the batch stops
                self._failed(delivery_id, error)
            return
        self._guarded(delivery_id, self._command(delivery_id, value))

    def _command(self, delivery_id: int, value: str) -> tuple[int, bytes]:
        """The Redis command writing ``value`` as delivery_id's entry (and the id, for logs)."""
        assert self._redis is not None  # noqa: S101 (only called on Redis)
        serialized = self._redis._cache._serializer.dumps(value)  # type: ignore[attr-defined]
        return delivery_id, _resp_set(b"%s%d" % (self._head, delivery_id), serialized, self._ttl)

    def _guarded(self, delivery_id: int, command: tuple[int, bytes] | None) -> None:
        """Send the held entries and ``command`` in one write."""
        commands = [*self._held, command] if command is not None else list(self._held)
        self._held.clear()
        try:
            self._send(commands)
        except Exception as error:  # the store is a boundary: logged, then the batch stops
            self._failed(delivery_id, error)

    def _failed(self, delivery_id: int, error: Exception) -> None:
        logger.warning("Sent journal: cannot record delivery %s", delivery_id, exc_info=error)
        self.works = False
        self._drop()
        raise JournalUnavailableError("the sent journal cannot be written") from error

    def _send(self, commands: list[tuple[int, bytes]]) -> None:
        if self._connection is None and self._redis is not None:
            self._connection = redis_client(self._redis).connection_pool.get_connection()
        data = [command for _, command in commands]
        sock = self._connection._sock
        if sock is None:  # not connected yet: redis-py connects, then sends
            self._connection.send_packed_command(data, check_health=False)
        else:
            send_all(sock, b"".join(data))
        self._pending += len(data)
        if self._pending >= REPLY_WINDOW:
            self._read_replies()

    def _read_replies(self) -> None:
        while self._pending:
            self._pending -= 1
            self._connection.read_response()

    def close(self) -> None:
        """Write what is held, wait for the last replies and give the connection back."""
        self.flush()
        if self._connection is None:
            return
        try:
            self._read_replies()
        except Exception:
            logger.warning("Sent journal: the last writes of a batch failed", exc_info=True)
            self._drop()
            return
        if self._redis is not None:  # only Redis opens a connection
            redis_client(self._redis).connection_pool.release(self._connection)
        self._connection = None

    def _drop(self) -> None:
        if self._connection is not None and self._redis is not None:
            self._connection.disconnect()
            redis_client(self._redis).connection_pool.release(self._connection)
        self._connection = None
        self._pending = 0
        self._held.clear()


def _redis_head(cache: RedisCache) -> bytes:
    """The Redis key of delivery n is this prefix + n (what ``cache.make_key(_key(n))`` gives,
    without Django's key building and checks per key)."""
    return cache.make_key(_key(0))[:-1].encode()


def _resp_set(key: bytes, value: bytes, ttl: bytes) -> bytes:
    """``SET key value EX ttl`` in Redis's wire protocol (RESP)."""
    return b"".join(
        [
            b"*5\r\n$3\r\nSET\r\n$%d\r\n" % len(key),
            key,
            b"\r\n$%d\r\n" % len(value),
            value,
            b"\r\n$2\r\nEX\r\n$%d\r\n" % len(ttl),
            ttl,
            b"\r\n",
        ]
    )


class JournalReadError(Exception):
    """The journal could not be read: what became of the rows is unknown for now."""


def read(rows: Iterable[tuple[int, datetime | None]]) -> dict[int, Entry]:
    """The journal entries of ``rows`` ((delivery id, created_at) pairs), in one bulk read.

    An entry older than its row (less CLOCK_TOLERANCE) belongs to an earlier row with the same
    id and is ignored. Raises JournalReadError when the store fails (logged); returns {} when
    the journal is off.
    """
    cache = store()
    wanted = dict(rows)
    if cache is None or not wanted:
        return {}
    keys = {_key(delivery_id): delivery_id for delivery_id in wanted}
    try:
        values = cache.get_many(list(keys))
    except Exception as error:  # the store is a boundary: the caller decides what to do
        logger.warning("Sent journal: cannot read %s entries", len(keys), exc_info=True)
        raise JournalReadError(str(error)) from error
    found: dict[int, Entry] = {}
    for key, value in values.items():
        delivery_id = keys[key]
        entry = Entry.decode(delivery_id, value)
        created = wanted[delivery_id]
        if entry is None or (created is not None and entry.at < created - CLOCK_TOLERANCE):
            continue
        found[delivery_id] = entry
    return found


def accepted(rows: Iterable[tuple[int, datetime | None]]) -> dict[int, Entry]:
    """The accepted entries among ``rows`` (see ``read``); a failing store reads as empty."""
    try:
        entries = read(rows)
    except JournalReadError:
        return {}
    return {pk: entry for pk, entry in entries.items() if entry.state == State.ACCEPTED}


def forget(delivery_ids: Iterable[int]) -> None:
    """Delete the entries of rows whose outcome the ledger now holds (one bulk delete)."""
    cache = store()
    ids = list(delivery_ids)
    if cache is None or not ids:
        return
    try:
        if isinstance(cache, RedisCache):
            # One DEL of the raw keys: delete_many builds and checks each key through the
            # cache API (about 4% of a worker's time in a batch of 500).
            head = _redis_head(cache)
            redis_client(cache).delete(*(b"%s%d" % (head, delivery_id) for delivery_id in ids))
        else:
            cache.delete_many([_key(delivery_id) for delivery_id in ids])
    except Exception:  # the store is a boundary; the entries expire on their own
        logger.warning("Sent journal: cannot delete %s entries", len(ids), exc_info=True)
