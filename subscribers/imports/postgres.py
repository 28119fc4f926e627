"""Writing one import batch on PostgreSQL: a COPY of the validated rows into a temporary table,
one ``INSERT ... SELECT`` (an upsert once an existing address was met) into the subscriber
table, then set-based inserts of subscriptions and consent events. See
docs/decisions/0024-import.md."""

from __future__ import annotations

import json
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.backends.utils import CursorWrapper

from subscribers.imports.report import (
    ImportContext,
    record_created,
    status_explanation,
    suppression_explanation,
)
from subscribers.imports.rows import Row
from subscribers.models import ConsentEvent, Subscriber, Subscription, Suppression


def apply_batch_copy(batch: list[Row], context: ImportContext) -> None:
    """One batch on PostgreSQL: COPY into a temporary table, then set-based statements."""
    by_lower = {row.lower: row for row in batch}
    with connection.cursor() as cursor:
        _copy_into_temporary_table(cursor, batch)
        cursor.execute(
            f"DELETE FROM subscriber_import i USING {Suppression._meta.db_table} s"  # noqa: S608
            " WHERE s.email_hash = i.email_hash RETURNING i.lower_email, s.reason"
        )
        suppressed = cursor.fetchall()
        written = _write_subscribers(cursor, context)
        ids = [item[0] for item in written]
        created = sum(1 for item in written if item[1])
        _subscribe_and_log_consent(cursor, ids, context)
        record_created([item[0] for item in written if item[1]], context)
        left: dict[str, str] = {}
        if len(written) + len(suppressed) < len(batch):
            # Rare: some addresses belong to subscribers who left; find which, for the report.
            refused = {lower for lower, _ in suppressed}
            left = _left(cursor, [lower for lower in by_lower if lower not in refused])
    report = context.report
    report.created += created
    report.updated += len(written) - created
    for lower, reason in suppressed:
        line = by_lower[lower].line
        report.skip(line, "suppressed", suppression_explanation(line, reason))
    for lower, status_left in left.items():
        line = by_lower[lower].line
        report.skip(line, "left", status_explanation(line, status_left))


def _copy_into_temporary_table(cursor: CursorWrapper, batch: list[Row]) -> None:
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


def _write_subscribers(cursor: CursorWrapper, context: ImportContext) -> list[tuple[Any, ...]]:
    """Insert the rows left in the temporary table; (id, created) of each subscriber written."""
    options = context.options
    status = Subscriber.Status.ACTIVE if options.confirmed else Subscriber.Status.PENDING
    confirmed_at = context.now if options.confirmed else None
    columns = (
        f"INSERT INTO {Subscriber._meta.db_table} AS x"  # noqa: S608
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
    return list(cursor.fetchall())


def _subscribe_and_log_consent(
    cursor: CursorWrapper, ids: list[int], context: ImportContext
) -> None:
    """Subscribe the written subscribers to the import's topics; log their consent if given."""
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
    if context.options.confirmed and ids:
        cursor.execute(
            f"INSERT INTO {ConsentEvent._meta.db_table}"  # noqa: S608
            " (subscriber_id, email_hash, action, form_version, user_agent, detail, created_at)"
            f" SELECT id, email_hash, %s, %s, '', %s::jsonb, %s FROM {Subscriber._meta.db_table}"
            " WHERE id = ANY(%s)",
            [
                ConsentEvent.Action.IMPORT.value,
                "import",
                json.dumps(context.consent_detail),
                context.now,
                ids,
            ],
        )


def _left(cursor: CursorWrapper, lowers: list[str]) -> dict[str, str]:
    """The status of each of these addresses whose subscriber left (not pending or active)."""
    cursor.execute(
        f"SELECT lower(email), status FROM {Subscriber._meta.db_table}"  # noqa: S608
        " WHERE lower(email) = ANY(%s) AND status NOT IN ('pending', 'active')",
        [lowers],
    )
    return dict(cursor.fetchall())
