"""Importing subscribers from CSV in bounded memory, and exporting them as CSV.

Reached through subscribers.services (``import_subscribers``, ``export_subscribers``).

On PostgreSQL each batch is one transaction: a COPY of the validated rows into a temporary
table, one ``INSERT ... SELECT ... ON CONFLICT`` into the subscriber table, then set-based
inserts of subscriptions and consent events. Other databases (SQLite in development) take a
slower ORM path with the same rules and the same report. See docs/decisions/0024-import.md.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import queue
import re
import sys
import threading
import zoneinfo
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, NamedTuple, TextIO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Prefetch
from django.utils import timezone

from publishing.models import Topic
from subscribers.exceptions import ImportFileError
from subscribers.models import (
    EMAIL_MAX_LENGTH,
    ConsentEvent,
    Subscriber,
    Subscription,
    Suppression,
)

logger = logging.getLogger(__name__)

NAME_MAX_LENGTH = Subscriber._meta.get_field("name").max_length or 200
#: Bad rows kept with their line number in the report; further ones are only counted.
MAX_REPORTED_PROBLEMS = 100_000
COLUMN_ALIASES = {
    "email": ("email", "e-mail", "email_address", "email address", "mail"),
    "name": ("name", "full_name", "full name"),
    "locale": ("locale", "language", "lang"),
    "timezone": ("timezone", "time_zone", "tz"),
}
# Most addresses match this quickly; anything else goes to Django's full validator, so the
# import accepts exactly what the sign-up form accepts.
_SIMPLE_EMAIL = re.compile(
    r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)
_ACTIVE_STATES = (Subscriber.Status.PENDING, Subscriber.Status.ACTIVE)


@dataclass(frozen=True)
class ImportOptions:
    """How to import: topics (slugs) to subscribe every row to, and whether consent was given.

    ``confirmed`` makes new and pending rows active and logs an ``import`` consent event per
    row, quoting ``consent_note`` (required with ``confirmed``). Without it rows are pending.
    """

    topics: Sequence[str] = ()
    confirmed: bool = False
    consent_note: str = ""
    source: str = "import"
    batch_size: int | None = None
    #: Writer threads on PostgreSQL (each with its own connection); None: the setting.
    workers: int | None = None
    progress: bool = False


@dataclass
class ImportReport:
    rows_read: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    #: (line number, explanation) for each skipped row, up to MAX_REPORTED_PROBLEMS.
    problems: list[tuple[int, str]] = field(default_factory=list)

    def skip(self, line: int, reason: str, explanation: str) -> None:
        self.skipped += 1
        self.reasons[reason] += 1
        if len(self.problems) < MAX_REPORTED_PROBLEMS:
            self.problems.append((line, explanation))

    def merge(self, other: ImportReport) -> None:
        self.rows_read += other.rows_read
        self.created += other.created
        self.updated += other.updated
        self.skipped += other.skipped
        self.reasons.update(other.reasons)
        room = MAX_REPORTED_PROBLEMS - len(self.problems)
        self.problems.extend(other.problems[:room])

    def summary(self) -> str:
        text = (
            f"Rows read: {self.rows_read}; created: {self.created}; updated: {self.updated}; "
            f"skipped: {self.skipped}"
        )
        if self.reasons:
            text += " (" + ", ".join(f"{k}: {v}" for k, v in sorted(self.reasons.items())) + ")"
        return text


class _Row(NamedTuple):
    line: int
    email: str
    lower: str
    hashed: str
    name: str
    locale: str
    time_zone: str


@dataclass
class _Context:
    options: ImportOptions
    report: ImportReport
    topic_ids: list[int]
    now: datetime
    consent_detail: dict[str, Any]
    #: Set once a batch met an existing address: later batches go straight to the upsert.
    seen_conflict: bool = False


def _resolve_topics(slugs: Sequence[str]) -> list[int]:
    wanted = [slug.strip() for slug in slugs if slug.strip()]
    found = dict(Topic.objects.filter(slug__in=wanted).values_list("slug", "pk"))
    missing = [slug for slug in wanted if slug not in found]
    if missing:
        raise ImportFileError(f"topics: no topic with the slug {', '.join(missing)}.")
    return [found[slug] for slug in wanted]


def _columns(header: list[str]) -> dict[str, int]:
    lowered = [column.strip().lower() for column in header]
    positions: dict[str, int] = {}
    for name, aliases in COLUMN_ALIASES.items():
        for alias in aliases:
            if alias in lowered:
                positions[name] = lowered.index(alias)
                break
    if "email" not in positions:
        raise ImportFileError(
            "The first line must be a header naming an email column "
            f"(one of: {', '.join(COLUMN_ALIASES['email'])})."
        )
    return positions


def _rows(
    stream: TextIO, report: ImportReport, on_progress: Callable[[], None] | None
) -> Iterator[_Row]:
    """Validated, deduplicated rows; every other row is recorded in the report as skipped."""
    reader = csv.reader(stream)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFileError("The file is empty: expected a header line.") from None
    except csv.Error as exc:
        raise ImportFileError(f"The header line cannot be read: {exc}.") from exc
    columns = _columns(header)
    email_at = columns["email"]
    name_at = columns.get("name")
    locale_at = columns.get("locale")
    tz_at = columns.get("timezone")
    languages = {code for code, _ in settings.LANGUAGES}
    default_locale = settings.LANGUAGE_CODE
    zones = zoneinfo.available_timezones()
    # Python's 64-bit string hash of each address already seen: ~70 bytes per row instead of
    # the address itself. Two distinct addresses colliding is ~1 in 10^10 for a million rows.
    seen: set[int] = set()
    count = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            report.rows_read += 1
            report.skip(reader.line_num, "malformed", f"line {reader.line_num}: {exc}")
            continue
        line = reader.line_num
        count += 1
        if on_progress is not None and count % 10_000 == 0:
            on_progress()
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank lines are not rows
        report.rows_read += 1
        email = row[email_at].strip() if email_at < len(row) else ""
        if not email:
            report.skip(line, "missing_email", f"line {line}: email is empty")
            continue
        if len(email) > EMAIL_MAX_LENGTH:
            report.skip(
                line,
                "invalid_email",
                f"line {line}: email is longer than {EMAIL_MAX_LENGTH} characters",
            )
            continue
        lower = email.lower()
        if _SIMPLE_EMAIL.fullmatch(lower) is None:
            try:
                validate_email(email)
            except ValidationError:
                report.skip(line, "invalid_email", f"line {line}: email is not a valid address")
                continue
        key = hash(lower)
        if key in seen:
            report.skip(line, "duplicate", f"line {line}: same address as an earlier row")
            continue
        name = row[name_at].strip() if name_at is not None and name_at < len(row) else ""
        if len(name) > NAME_MAX_LENGTH or "\x00" in name:
            report.skip(
                line,
                "invalid_name",
                f"line {line}: name is longer than {NAME_MAX_LENGTH} characters",
            )
            continue
        locale = row[locale_at].strip() if locale_at is not None and locale_at < len(row) else ""
        if locale and locale not in languages:
            report.skip(
                line,
                "invalid_locale",
                f"line {line}: locale must be one of {', '.join(sorted(languages))}",
            )
            continue
        time_zone = row[tz_at].strip() if tz_at is not None and tz_at < len(row) else ""
        if time_zone and time_zone not in zones:
            report.skip(
                line, "invalid_timezone", f"line {line}: timezone is not an IANA time zone name"
            )
            continue
        seen.add(key)
        yield _Row(
            line,
            email,
            lower,
            hashlib.sha256(lower.encode()).hexdigest(),
            name,
            locale or default_locale,
            time_zone or "UTC",
        )


def _batches(rows: Iterator[_Row], size: int) -> Iterator[list[_Row]]:
    batch: list[_Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def import_subscribers(
    source: str | Path | IO[bytes], options: ImportOptions | None = None
) -> ImportReport:
    """Import a CSV file (a path or a binary stream) and return the report.

    Streams the file in batches of SUBSCRIBERS_IMPORT_BATCH_SIZE rows, each committed on its
    own: a bad row is skipped with its line number, and a batch the database refuses is
    retried row by row, so good rows are never lost. Addresses on the suppression list, and
    subscribers who unsubscribed, bounced or complained, are skipped, never re-added.
    Raises ImportFileError when the file has no usable header or names an unknown topic.
    """
    options = options or ImportOptions()
    if options.confirmed and not options.consent_note.strip():
        raise ImportFileError(
            "consent_note: say where and when these people consented (required with confirmed)."
        )
    report = ImportReport()
    context = _Context(
        options=options,
        report=report,
        topic_ids=_resolve_topics(options.topics),
        now=timezone.now(),
        consent_detail={"via": "import", "note": options.consent_note.strip()[:500]},
    )
    size = options.batch_size or settings.SUBSCRIBERS_IMPORT_BATCH_SIZE
    binary: IO[bytes]
    if isinstance(source, str | Path):
        binary = Path(source).open("rb")  # noqa: SIM115 (closed in the finally below)
        total = Path(source).stat().st_size
    else:
        binary, total = source, 0
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="replace", newline="")
    progress = _progress_bar(options.progress, total)
    last_position = 0

    def advance() -> None:
        nonlocal last_position
        if progress is not None:
            try:
                position = binary.tell()
            except (OSError, ValueError):
                return
            progress.update(position - last_position)
            last_position = position

    batches = _batches(_rows(text, report, advance), size)
    workers = options.workers or settings.SUBSCRIBERS_IMPORT_WORKERS
    try:
        if connection.vendor != "postgresql":
            for batch in batches:
                _apply_safely(batch, context, _apply_batch_orm)
        elif connection.in_atomic_block or workers <= 1:
            # Inside a caller's transaction, other connections could not see its rows.
            for batch in batches:
                _apply_safely(batch, context, _apply_batch_copy)
        else:
            _apply_in_parallel(batches, context, workers)
    finally:
        if progress is not None:
            advance()
            progress.close()
        text.detach()
        if isinstance(source, str | Path):
            binary.close()
    report.problems.sort()
    logger.info(
        "subscribers: import read %s rows, created %s, updated %s, skipped %s",
        report.rows_read,
        report.created,
        report.updated,
        report.skipped,
    )
    return report


def _apply_in_parallel(batches: Iterator[list[_Row]], context: _Context, workers: int) -> None:
    """Parse in this thread while ``workers`` threads, each with its own connection, write.

    PostgreSQL does most of the work of an import; two connections keep both cores busy while
    this thread reads the next rows. The queue is bounded, so memory stays bounded. Batches
    hold distinct addresses (deduplicated above), so concurrent batches never conflict.
    """
    batch_queue: queue.Queue[list[_Row] | None] = queue.Queue(maxsize=workers * 2)
    failures: list[BaseException] = []
    reports = [ImportReport() for _ in range(workers)]

    def work(report: ImportReport) -> None:
        own = _Context(
            options=context.options,
            report=report,
            topic_ids=context.topic_ids,
            now=context.now,
            consent_detail=context.consent_detail,
        )
        try:
            while (batch := batch_queue.get()) is not None:
                if not failures:
                    _apply_safely(batch, own, _apply_batch_copy)
        except BaseException as exc:
            failures.append(exc)
            while batch_queue.get() is not None:
                pass  # keep draining so the reader never blocks on a full queue
        finally:
            connection.close()

    threads = [
        threading.Thread(target=work, args=(report,), name=f"import-{n}", daemon=True)
        for n, report in enumerate(reports)
    ]
    for thread in threads:
        thread.start()
    try:
        for batch in batches:
            if failures:
                break
            batch_queue.put(batch)
    finally:
        for _ in threads:
            batch_queue.put(None)
        for thread in threads:
            thread.join()
    for report in reports:
        context.report.merge(report)
    if failures:
        raise failures[0]


def _progress_bar(enabled: bool, total: int) -> Any:
    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total or None, unit="B", unit_scale=True, desc="Importing", file=sys.stderr)


def _apply_safely(
    batch: list[_Row], context: _Context, apply_batch: Callable[[list[_Row], _Context], None]
) -> None:
    try:
        with transaction.atomic():
            apply_batch(batch, context)
        return
    except DatabaseError:
        if len(batch) == 1:
            row = batch[0]
            logger.warning("subscribers: import row at line %s refused by the database", row.line)
            context.report.skip(row.line, "database", f"line {row.line}: refused by the database")
            return
    # Isolate the row the database refused; the report counts nothing of the failed attempt.
    for row in batch:
        _apply_safely([row], context, apply_batch)


def _status_explanation(line: int, status: str) -> str:
    return f"line {line}: the subscriber with this address has status {status}; not re-added"


def _suppression_explanation(line: int, reason: str) -> str:
    return f"line {line}: the address is on the suppression list ({reason}); not re-added"


def _apply_batch_copy(batch: list[_Row], context: _Context) -> None:
    """One batch on PostgreSQL: COPY into a temporary table, then set-based statements."""
    subscriber_table = Subscriber._meta.db_table
    options = context.options
    status = Subscriber.Status.ACTIVE if options.confirmed else Subscriber.Status.PENDING
    confirmed_at = context.now if options.confirmed else None
    by_lower = {row.lower: row for row in batch}
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS subscriber_import ("
            " line bigint, email text, lower_email text, email_hash text, name text,"
            " locale text, timezone text)"
        )
        cursor.execute("TRUNCATE subscriber_import")
        with cursor.copy(
            "COPY subscriber_import (line, email, lower_email, email_hash, name, locale, timezone)"
            " FROM STDIN"
        ) as copy:
            for row in batch:
                copy.write_row(row)
        cursor.execute(
            f"DELETE FROM subscriber_import i USING {Suppression._meta.db_table} s"  # noqa: S608
            " WHERE s.email_hash = i.email_hash RETURNING i.lower_email, s.reason"
        )
        suppressed = cursor.fetchall()
        columns = (
            f"INSERT INTO {subscriber_table} AS x"  # noqa: S608
            " (email, email_hash, name, locale, timezone, status, email_format, source,"
            "  token_key, created_at, updated_at, confirmed_at)"
            " SELECT i.email, i.email_hash, i.name, i.locale, i.timezone, %s, %s, %s,"
            "  gen_random_uuid(), %s, %s, %s FROM subscriber_import i"
        )
        values: list[Any] = [
            status.value,
            Subscriber.EmailFormat.HTML.value,
            options.source,
            context.now,
            context.now,
            confirmed_at,
        ]
        inserted = False
        if not context.seen_conflict:
            # A plain INSERT is much cheaper than an upsert (no speculative insertion); most
            # batches of a new list have no existing address. The first batch that does
            # switches this writer to the upsert for good.
            try:
                with transaction.atomic():
                    cursor.execute(columns + " RETURNING x.id, true", values)
                inserted = True
            except IntegrityError:
                context.seen_conflict = True
        if not inserted:
            # The conflict target is the unique index on lower(email); rows of subscribers who
            # left (unsubscribed, bounced, complained) are left untouched and not returned.
            cursor.execute(
                columns + " ON CONFLICT (lower(email)) DO UPDATE SET"
                "  name = CASE WHEN EXCLUDED.name <> '' THEN EXCLUDED.name ELSE x.name END,"
                "  status = CASE WHEN %s THEN 'active' ELSE x.status END,"
                "  confirmed_at = COALESCE(x.confirmed_at, EXCLUDED.confirmed_at),"
                "  updated_at = EXCLUDED.updated_at"
                " WHERE x.status IN ('pending', 'active')"
                " RETURNING x.id, (x.xmax = 0)",
                [*values, options.confirmed],
            )
        written = cursor.fetchall()
        ids = [item[0] for item in written]
        created = sum(1 for item in written if item[1])
        if context.topic_ids and ids:
            cursor.execute(
                f"INSERT INTO {Subscription._meta.db_table}"  # noqa: S608
                " (subscriber_id, topic_id, frequency, created_at, updated_at)"
                " SELECT s, t, %s, %s, %s FROM unnest(%s::bigint[]) s"
                " CROSS JOIN unnest(%s::bigint[]) t"
                " ON CONFLICT (subscriber_id, topic_id) DO NOTHING",
                [
                    Subscription.Frequency.IMMEDIATE.value,
                    context.now,
                    context.now,
                    ids,
                    context.topic_ids,
                ],
            )
        if options.confirmed and ids:
            cursor.execute(
                f"INSERT INTO {ConsentEvent._meta.db_table}"  # noqa: S608
                " (subscriber_id, email_hash, action, form_version, user_agent, detail, created_at)"
                f" SELECT id, email_hash, %s, %s, '', %s::jsonb, %s FROM {subscriber_table}"
                " WHERE id = ANY(%s)",
                [
                    ConsentEvent.Action.IMPORT.value,
                    "import",
                    _json(context.consent_detail),
                    context.now,
                    ids,
                ],
            )
        left: dict[str, str] = {}
        if len(written) + len(suppressed) < len(batch):
            # Rare: some addresses belong to subscribers who left; find which, for the report.
            refused = {lower for lower, _ in suppressed}
            cursor.execute(
                f"SELECT lower(email), status FROM {subscriber_table}"  # noqa: S608
                " WHERE lower(email) = ANY(%s) AND status NOT IN ('pending', 'active')",
                [[lower for lower in by_lower if lower not in refused]],
            )
            left = dict(cursor.fetchall())
    report = context.report
    report.created += created
    report.updated += len(written) - created
    for lower, reason in suppressed:
        line = by_lower[lower].line
        report.skip(line, "suppressed", _suppression_explanation(line, reason))
    for lower, status_left in left.items():
        line = by_lower[lower].line
        report.skip(line, "left", _status_explanation(line, status_left))


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value)


def _apply_batch_orm(batch: list[_Row], context: _Context) -> None:
    """One batch through the ORM (SQLite and other databases): same rules, fewer rows/s."""
    options = context.options
    report = context.report
    for start in range(0, len(batch), 500):
        chunk = batch[start : start + 500]
        hashes = [row.hashed for row in chunk]
        suppressed = dict(
            Suppression.objects.filter(email_hash__in=hashes).values_list("email_hash", "reason")
        )
        existing = {s.email_hash: s for s in Subscriber.objects.filter(email_hash__in=hashes)}
        new: list[Subscriber] = []
        touched: list[Subscriber] = []
        for row in chunk:
            if row.hashed in suppressed:
                report.skip(
                    row.line,
                    "suppressed",
                    _suppression_explanation(row.line, suppressed[row.hashed]),
                )
                continue
            subscriber = existing.get(row.hashed)
            if subscriber is None:
                new.append(
                    Subscriber(
                        email=row.email,
                        email_hash=row.hashed,
                        name=row.name,
                        locale=row.locale,
                        timezone=row.time_zone,
                        status=(
                            Subscriber.Status.ACTIVE
                            if options.confirmed
                            else Subscriber.Status.PENDING
                        ),
                        source=options.source,
                        confirmed_at=context.now if options.confirmed else None,
                    )
                )
                continue
            if subscriber.status not in _ACTIVE_STATES:
                report.skip(row.line, "left", _status_explanation(row.line, subscriber.status))
                continue
            subscriber.name = row.name or subscriber.name
            if options.confirmed:
                subscriber.status = Subscriber.Status.ACTIVE
                subscriber.confirmed_at = subscriber.confirmed_at or context.now
            subscriber.updated_at = context.now
            touched.append(subscriber)
        created = Subscriber.objects.bulk_create(new)
        Subscriber.objects.bulk_update(touched, ["name", "status", "confirmed_at", "updated_at"])
        report.created += len(created)
        report.updated += len(touched)
        written = [*created, *touched]
        if context.topic_ids:
            Subscription.objects.bulk_create(
                [
                    Subscription(subscriber_id=s.pk, topic_id=topic_id)
                    for s in written
                    for topic_id in context.topic_ids
                ],
                ignore_conflicts=True,
            )
        if options.confirmed:
            ConsentEvent.objects.bulk_create(
                [
                    ConsentEvent(
                        subscriber_id=s.pk,
                        email_hash=s.email_hash,
                        action=ConsentEvent.Action.IMPORT,
                        form_version="import",
                        detail=context.consent_detail,
                    )
                    for s in written
                ]
            )


EXPORT_COLUMNS = (
    "email",
    "name",
    "status",
    "locale",
    "timezone",
    "email_format",
    "source",
    "created_at",
    "confirmed_at",
    "topics",
)


class _Echo:
    def write(self, value: str) -> str:
        return value


def export_rows(status: str | None = None) -> Iterator[list[str]]:
    """Every subscriber as CSV cells (header first), read in chunks of 2,000."""
    yield list(EXPORT_COLUMNS)
    queryset = Subscriber.objects.order_by("pk").prefetch_related(
        Prefetch("subscriptions", queryset=Subscription.objects.select_related("topic"))
    )
    if status:
        queryset = queryset.filter(status=status)
    for subscriber in queryset.iterator(chunk_size=2000):
        yield [
            subscriber.email,
            subscriber.name,
            subscriber.status,
            subscriber.locale,
            subscriber.timezone,
            subscriber.email_format,
            subscriber.source,
            subscriber.created_at.isoformat(),
            subscriber.confirmed_at.isoformat() if subscriber.confirmed_at else "",
            " ".join(sorted(s.topic.slug for s in subscriber.subscriptions.all())),
        ]


def export_lines(status: str | None = None) -> Iterator[str]:
    """The export as CSV text, one line at a time (for a streaming HTTP response)."""
    writer = csv.writer(_Echo())
    for cells in export_rows(status):
        yield writer.writerow(cells)


def export_subscribers(out: TextIO, status: str | None = None) -> int:
    """Write every subscriber (optionally of one status) as CSV to ``out``; returns rows written.

    The file imports back with import_subscribers (same column names).
    """
    writer = csv.writer(out)
    count = -1
    for cells in export_rows(status):
        writer.writerow(cells)
        count += 1
    return count
