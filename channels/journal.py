"""The sent journal: which deliveries a provider accepted, kept outside SQL (decision 0039).

A batch records its outcomes in one UPDATE at its end. A worker killed before that UPDATE
leaves rows ``sending`` whose messages the provider may already have accepted; without a
trace of that acceptance the sweeper re-queues them and they are sent again. So, right after
the provider accepts each message, the send loop writes one cache entry
(delivery id -> provider message id, the claim's lease, the time), and every path that takes
back a row whose earlier attempt may have sent it (the sweeper's recovery of expired leases,
the claim of a retried row) reads the entries in one bulk read and records those rows as
``sent`` instead of sending them again. Entries are deleted once the batch's own UPDATE has
recorded them, and expire after ``DELIVERY_JOURNAL_TTL_SECONDS`` otherwise.

The store is named by ``DELIVERY_JOURNAL_URL``: ``redis://`` (shared by every host: the
production setting, and the default whenever ``REDIS_URL`` is set), ``file:///dir`` (shared by
the processes of one host: the development default), ``locmem://`` (one process: unit tests)
or ``off``. A failing store never stops sending: the engine falls back to the behaviour without
a journal (the batch in flight may be sent again) and logs it.
"""

from __future__ import annotations

import hashlib
import logging
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


@dataclass(frozen=True)
class Acceptance:
    """One journal entry: the provider accepted ``delivery_id`` under the claim ``lease``."""

    delivery_id: int
    provider_message_id: str
    lease: str
    accepted_at: datetime

    def encode(self) -> str:
        return f"{self.lease}|{self.accepted_at.timestamp():.6f}|{self.provider_message_id}"

    @classmethod
    def decode(cls, delivery_id: int, value: object) -> Acceptance | None:
        if not isinstance(value, str):
            return None
        try:
            lease, stamp, provider_id = value.split("|", 2)
            accepted_at = datetime.fromtimestamp(float(stamp), tz=UTC)
        except ValueError:
            return None
        return cls(delivery_id, provider_id, lease, accepted_at)


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


def record(delivery_id: int, provider_message_id: str, lease: datetime) -> bool:
    """Write one entry (what a BatchWriter does for each message of a batch). Returns whether
    it was written; a failing store is logged, never raised."""
    writer = BatchWriter(lease)
    writer.record(delivery_id, provider_message_id)
    writer.close()
    return writer.works


class BatchWriter:
    """The journal writes of one batch, each made before the provider gets the next message.

    On Redis the writes are pipelined on one connection: an entry's ``SET`` leaves at once and
    its reply is read just before the next ``SET``, while the next message is with the provider,
    so the journal adds no round trip of its own to the batch. The command is in Redis's socket
    before the next message leaves, so a worker killed then still leaves the entry behind.
    A failing store is logged once and left alone for the rest of the batch.
    """

    def __init__(self, lease: datetime) -> None:
        self.cache = store()
        self.lease = lease_token(lease)
        self.works = self.cache is not None
        self._connection: Any = None
        self._pending = 0
        self._ttl = str(getattr(self.cache, "default_timeout", 0) or 0).encode()

    def record(self, delivery_id: int, provider_message_id: str) -> None:
        if not self.works or self.cache is None:
            return
        entry = Acceptance(delivery_id, provider_message_id, self.lease, datetime.now(tz=UTC))
        try:
            if isinstance(self.cache, RedisCache):
                self._send(self.cache, _key(delivery_id), entry.encode())
            else:
                self.cache.set(_key(delivery_id), entry.encode())
        except Exception:  # the store is a boundary: Redis down must not stop a batch
            logger.warning("Sent journal: cannot record delivery %s", delivery_id, exc_info=True)
            self.works = False
            self._drop()

    def _send(self, cache: RedisCache, key: str, value: str) -> None:
        if self._connection is None:
            self._connection = redis_client(cache).connection_pool.get_connection()
        self._read_replies()
        # The command packed here, as RESP, costs a third of redis-py's generic packer.
        self._connection.send_packed_command(
            [
                _resp_set(
                    cache.make_key(key).encode(),
                    cache._cache._serializer.dumps(value),  # type: ignore[attr-defined]
                    self._ttl,
                )
            ],
            check_health=False,
        )
        self._pending += 1

    def _read_replies(self) -> None:
        while self._pending:
            self._pending -= 1
            self._connection.read_response()

    def close(self) -> None:
        """Wait for the last replies and give the connection back."""
        if self._connection is None:
            return
        try:
            self._read_replies()
        except Exception:
            logger.warning("Sent journal: the last writes of a batch failed", exc_info=True)
            self._drop()
            return
        if isinstance(self.cache, RedisCache):  # only Redis opens a connection
            redis_client(self.cache).connection_pool.release(self._connection)
        self._connection = None

    def _drop(self) -> None:
        if self._connection is not None and isinstance(self.cache, RedisCache):
            self._connection.disconnect()
            redis_client(self.cache).connection_pool.release(self._connection)
        self._connection = None
        self._pending = 0


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


def accepted(rows: Iterable[tuple[int, datetime | None]]) -> dict[int, Acceptance]:
    """The journal entries of ``rows`` ((delivery id, created_at) pairs), in one bulk read.

    An entry older than its row (less CLOCK_TOLERANCE) belongs to an earlier row with the same
    id and is ignored. A failing store is logged and reads as empty.
    """
    cache = store()
    wanted = dict(rows)
    if cache is None or not wanted:
        return {}
    keys = {_key(delivery_id): delivery_id for delivery_id in wanted}
    try:
        values = cache.get_many(list(keys))
    except Exception:  # the store is a boundary: recovery then behaves as without a journal
        logger.warning("Sent journal: cannot read %s entries", len(keys), exc_info=True)
        return {}
    found: dict[int, Acceptance] = {}
    for key, value in values.items():
        delivery_id = keys[key]
        entry = Acceptance.decode(delivery_id, value)
        created = wanted[delivery_id]
        if entry is None or (created is not None and entry.accepted_at < created - CLOCK_TOLERANCE):
            continue
        found[delivery_id] = entry
    return found


def forget(delivery_ids: Iterable[int]) -> None:
    """Delete the entries of rows whose outcome the ledger now holds (one bulk delete)."""
    cache = store()
    keys = [_key(delivery_id) for delivery_id in delivery_ids]
    if cache is None or not keys:
        return
    try:
        cache.delete_many(keys)
    except Exception:  # the store is a boundary; the entries expire on their own
        logger.warning("Sent journal: cannot delete %s entries", len(keys), exc_info=True)
