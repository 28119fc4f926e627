"""Importing subscribers from CSV in bounded memory.

Reached through subscribers.services (``import_subscribers``); the export is subscribers.exports.

The file is read and validated row by row (``rows``) and written in batches, each one
transaction: on PostgreSQL a COPY of the validated rows into a temporary table, one
``INSERT ... SELECT ... ON CONFLICT`` into the subscriber table, then set-based inserts of
subscriptions and consent events (``postgres``), by several writer threads at once; other
databases (SQLite in development) take a slower ORM path with the same rules and the same report
(``orm``). See docs/decisions/0024-import.md.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import queue
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from config.locks import retry_on_lock
from publishing.models import Topic
from subscribers.exceptions import ImportFileError
from subscribers.imports.orm import apply_batch_orm
from subscribers.imports.postgres import apply_batch_copy
from subscribers.imports.report import ImportContext, ImportOptions, ImportReport
from subscribers.imports.rows import Row, in_batches, read_rows

logger = logging.getLogger(__name__)

__all__ = ["ImportOptions", "ImportReport", "import_subscribers"]


def _resolve_topics(slugs: Sequence[str]) -> list[int]:
    wanted = [slug.strip() for slug in slugs if slug.strip()]
    found = dict(Topic.objects.filter(slug__in=wanted).values_list("slug", "pk"))
    missing = [slug for slug in wanted if slug not in found]
    if missing:
        raise ImportFileError(f"topics: no topic with the slug {', '.join(missing)}.")
    return [found[slug] for slug in wanted]


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
    context = ImportContext(
        options=options,
        report=report,
        topic_ids=_resolve_topics(options.topics),
        now=timezone.now(),
        consent_detail={"via": "import", "note": options.consent_note.strip()[:500]},
    )
    size = options.batch_size or settings.SUBSCRIBERS_IMPORT_BATCH_SIZE
    # A path is opened here and closed in the finally below.
    binary = Path(source).open("rb") if isinstance(source, str | Path) else source  # noqa: SIM115
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="replace", newline="")
    progress = _progress_bar(options.progress, source)
    counted = 0

    def advance(rows: int) -> None:
        nonlocal counted
        if progress is not None:
            progress.update(rows - counted)
        counted = rows

    batches = in_batches(read_rows(text, report, advance), size)
    workers = options.workers or settings.SUBSCRIBERS_IMPORT_WORKERS
    try:
        if connection.vendor != "postgresql":
            for batch in batches:
                _apply_safely(batch, context, apply_batch_orm)
        elif connection.in_atomic_block or workers <= 1:
            # Inside a caller's transaction, other connections could not see its rows.
            for batch in batches:
                _apply_safely(batch, context, apply_batch_copy)
        else:
            _apply_in_parallel(batches, context, workers)
    finally:
        if progress is not None:
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


def _apply_in_parallel(batches: Iterator[list[Row]], context: ImportContext, workers: int) -> None:
    """Parse in this thread while ``workers`` threads, each with its own connection, write.

    PostgreSQL does most of the work of an import; two connections keep both cores busy while
    this thread reads the next rows. The queue is bounded, so memory stays bounded. Batches
    hold distinct addresses (deduplicated above), so concurrent batches never conflict.
    """
    batch_queue: queue.Queue[list[Row] | None] = queue.Queue(maxsize=workers * 2)
    failures: list[BaseException] = []
    reports = [ImportReport() for _ in range(workers)]

    def work(report: ImportReport) -> None:
        own = ImportContext(
            options=context.options,
            report=report,
            topic_ids=context.topic_ids,
            now=context.now,
            consent_detail=context.consent_detail,
        )
        try:
            while (batch := batch_queue.get()) is not None:
                if not failures:
                    _apply_safely(batch, own, apply_batch_copy)
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


def _progress_bar(enabled: bool, source: str | Path | IO[bytes]) -> Any:
    """A tqdm bar counting CSV rows on a terminal, else None.

    Its total is the file's line count less the header (one quick pass over the bytes: an
    estimate when quoted fields hold newlines); a stream's total is unknown, the bar counts on.
    """
    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    total = None
    if isinstance(source, str | Path):
        with Path(source).open("rb") as counting:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: counting.read(1 << 20), b""))
        total = max(lines - 1, 0)
    return tqdm(total=total, unit=" rows", desc="Importing", file=sys.stderr)


def database_reason(exc: BaseException) -> str:
    """The database's own words for a refusal: its message's first line (PostgreSQL puts the
    row's values on a DETAIL line, which the report does not need), or the error's class name."""
    text = str(exc).strip().splitlines()
    return text[0] if text and text[0] else type(exc).__name__


def _apply_retrying_locks(
    batch: list[Row],
    context: ImportContext,
    apply_batch: Callable[[list[Row], ImportContext], None],
) -> None:
    """One transaction for ``batch``, tried again while the database is locked (a lock is
    somebody else's moment, not a fault of the rows: config.locks); any other error, or a lock
    outlasting the retries, is raised."""

    def attempt() -> None:
        # The batch counts into its own report, merged once committed: a rolled-back attempt
        # counts nothing, so a retried or isolated row is never counted twice.
        own = dataclasses.replace(context, report=ImportReport())
        with transaction.atomic():
            apply_batch(batch, own)
        context.report.merge(own.report)

    retry_on_lock(attempt)


def _apply_safely(
    batch: list[Row],
    context: ImportContext,
    apply_batch: Callable[[list[Row], ImportContext], None],
) -> None:
    try:
        _apply_retrying_locks(batch, context, apply_batch)
        return
    except DatabaseError as exc:
        if len(batch) == 1:
            row = batch[0]
            reason = database_reason(exc)
            logger.warning(
                "subscribers: import row at line %s refused by the database: %s", row.line, reason
            )
            context.report.skip(
                row.line, "database", f"line {row.line}: refused by the database: {reason}"
            )
            return
    # Isolate the row the database refused; the report counts nothing of the failed attempt.
    for row in batch:
        _apply_safely([row], context, apply_batch)
