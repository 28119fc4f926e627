"""Fan-out: the deliveries of a dispatch, created in SQL, once (docs/delivery.md "The flow").

INSERT ... SELECT ... ON CONFLICT DO NOTHING from the audience ``audience_by_channel``
compiles (the publish confirmation page counts the same querysets), the email audience in
ranges of subscriber ids so that sending starts before the fan-out ends (decision 0088);
running it again creates nothing. Also the end of a dispatch: done once every delivery is settled.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import DatabaseError, connection, transaction
from django.db.models import Count, Exists, Max, Min, OuterRef, Q, QuerySet, Value
from django.utils import timezone

from channels.backends.base import (
    BackendError,
    get_backend_class,
)
from channels.engine.queue import due_rows, enqueue_due_batches
from channels.models import Channel, Delivery
from events import recorder
from events.models import EventType
from publishing.abtests import subjects_of
from publishing.models import Dispatch, Publication
from subscribers.models import Subscriber, Subscription

logger = logging.getLogger(__name__)

#: A range of subscriber ids: (after, up to), None for an open end.
Range = tuple[int | None, int | None]


def is_broadcast_kind(kind: str) -> bool:
    try:
        return get_backend_class(kind).is_broadcast
    except BackendError:
        return not kind.startswith("email")


def version_topic_ids(dispatch: Dispatch) -> list[int]:
    """Topics of the exact version sent (its history), else the publication's current topics."""
    through = apps.get_model("publishing", "HistoricalPublication_topics")
    ids = list(
        through.objects.filter(history_id=dispatch.version_id).values_list("topic_id", flat=True)
    )
    if not ids:
        ids = list(dispatch.publication.topics.values_list("pk", flat=True))
    return sorted({i for i in ids if i is not None})


@dataclass(frozen=True)
class ChannelAudience:
    """Who one channel sends a publication to: one delivery per row of ``recipients``.

    ``recipients`` is a queryset of primary keys, compiled into the fan-out's INSERT ... SELECT:
    subscribers for the email channel (``kind`` "subscriber"), the channel itself for a
    broadcast channel whose topic filter matches (``kind`` "broadcast"). The publish
    confirmation page counts the same queryset, so its numbers are the fan-out's by
    construction.
    """

    channel: Channel
    kind: str
    recipients: QuerySet[Any]

    def count(self) -> int:
        try:
            return int(self.recipients.count())
        except EmptyResultSet:  # pragma: no cover - Django usually answers 0 itself
            return 0


def audience_by_channel(topic_ids: Sequence[int], now: datetime) -> list[ChannelAudience]:
    """The audience of a publication of ``topic_ids`` sent at ``now``, channel by channel.

    The default email channel reaches every reachable subscriber with an immediate, unpaused
    subscription to one of the topics (the subscribers' own querysets, ``reachable`` and
    ``receiving_immediately``: one definition of who may receive mail); each enabled broadcast
    channel is one recipient when it carries every topic (no filter) or one of these. Channels
    that would receive nothing are listed too (a count of 0), email first, then by name.
    """
    topic_ids = list(topic_ids)
    result: list[ChannelAudience] = []
    email_channel = Channel.objects.default_email()
    if email_channel is not None:
        result.append(
            ChannelAudience(
                email_channel, Delivery.Kind.SUBSCRIBER, email_recipients(topic_ids, now)
            )
        )
    through = Channel.topics.through.objects
    for channel in Channel.objects.filter(is_enabled=True).exclude(kind__startswith="email"):
        if not is_broadcast_kind(channel.kind):
            continue
        carried = through.filter(channel_id=OuterRef("pk"))
        matches = Exists(carried.filter(topic_id__in=topic_ids)) if topic_ids else Value(False)
        target = Channel.objects.filter(pk=channel.pk).filter(Q(~Exists(carried)) | Q(matches))
        result.append(
            ChannelAudience(channel, Delivery.Kind.BROADCAST, target.order_by().values_list("pk"))
        )
    return result


def email_recipients(
    topic_ids: Sequence[int], now: datetime, bounds: Range = (None, None)
) -> QuerySet[Any]:
    """The ids of the subscribers a publication of ``topic_ids`` is emailed to at ``now``
    (``audience_by_channel``), within the id range ``bounds`` (after, up to; None: open): the
    range bounds the subscriptions read too, so a range reads its own rows of both tables
    through their indexes."""
    subscriptions = Subscription.objects.receiving_immediately(timezone.localdate(now))
    subscribers = Subscriber.objects.reachable()
    after, up_to = bounds
    if after is not None:
        subscribers = subscribers.filter(pk__gt=after)
        subscriptions = subscriptions.filter(subscriber_id__gt=after)
    if up_to is not None:
        subscribers = subscribers.filter(pk__lte=up_to)
        subscriptions = subscriptions.filter(subscriber_id__lte=up_to)
    matching = subscriptions.filter(subscriber_id=OuterRef("pk"), topic_id__in=topic_ids)
    subscribers = subscribers.filter(Exists(matching))
    if not topic_ids:
        subscribers = subscribers.none()
    return subscribers.order_by().values_list("pk")


@dataclass(frozen=True)
class TestShare:
    """The A/B test's part of an email audience (decision 0079): ``share`` percent of it, in
    a random order fixed by the dispatch (a hash of the dispatch and subscriber ids), the
    n-th of them given subject n modulo ``subjects``: an even split, sizes within one."""

    share: int
    subjects: int


def _random_order() -> str:
    """An SQL expression ordering the audience at random, the same way for every run of one
    dispatch (``%s`` is the dispatch id): running the fan-out again picks the same people.
    PostgreSQL has md5(); Django's SQLite backend registers it on every connection."""
    return "md5(CAST(%s AS text) || ':' || CAST(audience.id AS text))"


def ranked_audience() -> str:
    """The CTE ``ranked (id, n, total)``: the CTE ``audience (id)`` numbered from 0 in the
    dispatch's random order (one ``%s`` parameter, the dispatch id), with its size."""
    return f"""ranked (id, n, total) AS (
        SELECT audience.id, ROW_NUMBER() OVER (ORDER BY {_random_order()}, audience.id) - 1,
            COUNT(*) OVER () FROM audience)"""  # noqa: S608 (no input)


def _insert_deliveries(
    dispatch_id: int,
    audience: ChannelAudience,
    now: datetime,
    *,
    variant: int | None = None,
    test: TestShare | None = None,
    languages: Sequence[str] = (),
    status: str = Delivery.Status.QUEUED,
) -> int:
    """One INSERT ... SELECT: a delivery of the dispatch in ``status`` (queued, or held for a
    paused dispatch) for each row of the audience,
    with no row through Python; an existing one (a second run) is left alone. ``variant``:
    the A/B subject every row carries; ``test``: only the test share, split between the
    subjects. ``languages``: the dispatch's translations (decision 0082); a subscriber whose
    language is one of them gets that translation (``Delivery.language``) and no A/B subject
    (the subjects are in the original's language)."""
    try:
        select, select_params = audience.recipients.query.sql_with_params()
    except EmptyResultSet:
        return 0
    if audience.kind == Delivery.Kind.SUBSCRIBER:
        channel_column, subscriber_column = "%s", "audience.id"
        channel_params: list[Any] = [audience.channel.pk]
    else:
        channel_column, subscriber_column = "audience.id", "NULL"
        channel_params = []
    delivery = Delivery._meta.db_table
    source, variant_column, where = "audience", "%s", "true"
    ranking = ""
    ranking_params: list[Any] = []
    variant_params: list[Any] = [variant]
    where_params: list[Any] = []
    if test is not None:
        # The audience numbered in the dispatch's random order; the first share of it tests.
        ranking = ", " + ranked_audience()
        ranking_params = [dispatch_id]
        source, variant_column = "ranked AS audience", "audience.n %% %s"
        variant_params = [test.subjects]
        where, where_params = "audience.n < (audience.total * %s + 99) / 100", [test.share]
    language_column, join, join_params = "''", "", []
    if audience.kind == Delivery.Kind.SUBSCRIBER and languages:
        subscriber = Subscriber._meta
        locale = str(subscriber.get_field("locale").column)
        join = (
            f"LEFT JOIN {subscriber.db_table} AS reader ON reader.{subscriber.pk.column} = "
            f"audience.id AND reader.{locale} IN ({', '.join(['%s'] * len(languages))})"
        )
        join_params = list(languages)
        language_column = f"COALESCE(reader.{locale}, '')"
        # Typed: a NULL parameter (no subject) would otherwise be text inside the CASE.
        variant_column = (
            f"CASE WHEN reader.{locale} IS NULL THEN CAST({variant_column} AS integer) END"
        )
    # "WHERE <condition>": SQLite reads an upsert's ON after a bare FROM as a join constraint.
    # The audience is a CTE with a column list: SQLite has no column list on a subquery's
    # alias. The statement starts with INSERT, or Python's sqlite3 reports no rowcount.
    sql = f"""
        INSERT INTO {delivery} (kind, dispatch_id, channel_id, subscriber_id, recipient, priority,
            status, attempts, next_attempt_at, last_error, provider_message_id, created_at,
            updated_at, variant, language)
        WITH audience (id) AS ({select}){ranking}
        SELECT %s, %s, {channel_column}, {subscriber_column}, '', %s, %s, 0, %s, '', '', %s, %s,
            {variant_column}, {language_column}
        FROM {source} {join}
        WHERE {where}
        ON CONFLICT DO NOTHING
    """  # noqa: S608 (table name from model metadata, the audience compiled by the ORM)
    params: list[Any] = [
        *select_params,
        *ranking_params,
        audience.kind,
        dispatch_id,
        *channel_params,
        Delivery.PRIORITY_BULK,
        status,
        now,
        now,
        now,
        *variant_params,
        *join_params,
        *where_params,
    ]
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # For this transaction only: a million rows take longer than the connection's
            # statement_timeout allows any other query (decision 0087).
            cursor.execute(
                "SELECT set_config('statement_timeout', %s, true)",
                [str(settings.FANOUT_STATEMENT_TIMEOUT_MS)],
            )
        cursor.execute(sql, params)
        return int(max(cursor.rowcount, 0))


def resend_variant(dispatch: Dispatch) -> int | None:
    """The A/B subject a resend carries: the one that won its publication's test when the
    resent version has the same subjects, else none (the first subject, decision 0079)."""
    first = (
        Dispatch.objects.filter(publication_id=dispatch.publication_id, kind=Dispatch.Kind.PUBLISH)
        .exclude(pk=dispatch.pk)
        .values_list("ab_winner", "version_id")
        .first()
    )
    if first is None or first[0] is None:
        return None
    history = Publication.history.model.objects
    tested = history.filter(history_id=first[1]).values_list("subjects", flat=True).first()
    resent = history.filter(history_id=dispatch.version_id).values_list("subjects", flat=True)
    return int(first[0]) if tested and tested == resent.first() else None


def plan_dispatch(dispatch_id: int) -> int:
    """Create the deliveries of a dispatch and enqueue the batches that send them.

    Per-subscriber email goes through the default email channel; each enabled broadcast
    channel whose topic filter matches gets one delivery. Who receives it is
    ``audience_by_channel``, the function the publish confirmation counts.

    Sending starts before the fan-out ends (decision 0088): the subscribers are inserted in
    ranges of their ids, each range one INSERT ... SELECT committed on its own (the first
    FANOUT_FIRST_RANGE ids, each next range four times larger, up to FANOUT_RANGE), so the
    workers send the first rows while the next are written. The dispatch is ``sending``
    from the first commit, which lets a guardrail or an editor pause or cancel it at once;
    ``planned_at`` is set when the last range is in, and a dispatch without it is never
    closed as done. An A/B test numbers its whole audience, so its share is one statement.
    Idempotent: running it again creates nothing new (the unique constraints, ON CONFLICT DO
    NOTHING) and only enqueues hints; a run cut short is finished by the sweeper's next run.
    Returns the number of deliveries created.
    """
    dispatch = Dispatch.objects.select_related("publication").filter(pk=dispatch_id).first()
    if dispatch is None or not _plannable(dispatch.status, dispatch.planned_at):
        return 0
    with _planning(dispatch.pk) as alone:
        if not alone:
            # Another worker is planning this dispatch (the sweeper found it unfinished).
            return 0
        created = _plan(dispatch)
    finish_dispatches([dispatch.pk])
    return created


@contextlib.contextmanager
def _planning(dispatch_id: int) -> Iterator[bool]:
    """Whether this process is the only one planning the dispatch, for the block: a session
    advisory lock on PostgreSQL, released at the end or when the connection closes (a
    worker that dies). SQLite runs one worker: always True."""
    if connection.vendor != "postgresql":
        yield True
        return
    key = [PLANNING_LOCK, dispatch_id]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", key)
        (alone,) = cursor.fetchone()
    try:
        yield bool(alone)
    finally:
        if alone:
            # A connection that broke took its lock with it.
            with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", key)


#: The first key of the fan-out's advisory locks (the second is the dispatch id).
PLANNING_LOCK = 0x66616E  # "fan"


def subscriber_ranges(lowest: int, highest: int) -> list[Range]:
    """The (after, up to) subscriber id ranges of a fan-out over ids ``lowest`` to
    ``highest``: FANOUT_FIRST_RANGE ids, each next range four times larger up to FANOUT_RANGE;
    the first is open below and the last open above (a subscriber created meanwhile gets a
    higher id)."""
    size = max(settings.FANOUT_FIRST_RANGE, 1)
    ranges: list[Range] = []
    after: int | None = None
    up_to = lowest - 1 + size
    while up_to < highest:
        ranges.append((after, up_to))
        after, size = up_to, min(size * 4, max(settings.FANOUT_RANGE, size))
        up_to = after + size
    ranges.append((after, None))
    return ranges


def _plan(dispatch: Dispatch) -> int:
    now = timezone.now()
    topic_ids = version_topic_ids(dispatch)
    version = Publication.history.model.objects.filter(history_id=dispatch.version_id).first()
    subjects = subjects_of(version) if version is not None else []
    test: TestShare | None = None
    variant: int | None = None
    if subjects and dispatch.kind == Dispatch.Kind.PUBLISH and version is not None:
        test = TestShare(share=version.ab_share, subjects=len(subjects))
    elif subjects:
        variant = resend_variant(dispatch)
    languages = sorted(dispatch.translation_versions or {})
    audiences = audience_by_channel(topic_ids, now)
    email = next((a for a in audiences if a.kind == Delivery.Kind.SUBSCRIBER), None)
    ranges: list[Range] = [(None, None)]
    if email is not None and test is None:
        ids = Subscriber.objects.aggregate(lowest=Min("pk"), highest=Max("pk"))
        ranges = subscriber_ranges(ids["lowest"] or 0, ids["highest"] or 0)

    def insert_range(email: ChannelAudience, bounds: Range, status: str) -> int:
        return _insert_deliveries(
            dispatch.pk,
            replace(email, recipients=email_recipients(topic_ids, now, bounds)),
            now,
            variant=variant,
            test=test,  # only with a single range
            languages=languages,
            status=_row_status(status),
        )

    created = 0
    with transaction.atomic():
        status = _locked_status(dispatch.pk)
        if status is None or not _plannable(status, None):
            return 0
        # Slack, Discord, webhooks (no subject to test, sent at once) and the first range.
        for audience in audiences:
            if audience.kind != Delivery.Kind.SUBSCRIBER:
                created += _insert_deliveries(dispatch.pk, audience, now)
        if email is not None:
            created += insert_range(email, ranges[0], status)
        planned: dict[str, Any] = {"status": Dispatch.Status.SENDING}
        if test is not None and version is not None:
            planned["ab_decide_at"] = now + timedelta(hours=version.ab_wait_hours)
        Dispatch.objects.filter(pk=dispatch.pk, status=Dispatch.Status.PLANNING).update(**planned)
        transaction.on_commit(lambda: enqueue_due_batches(dispatch_id=dispatch.pk))
    for bounds in ranges[1:]:
        assert email is not None  # noqa: S101 (ranges beyond the first only with an audience)
        with transaction.atomic():
            status = _locked_status(dispatch.pk)
            if status is None or not _plannable(status, None):
                break
            backlog = _short_queue(email.channel)
            created += insert_range(email, bounds, status)
            if backlog:
                # The senders may have caught up with the fan-out and ended their chains.
                transaction.on_commit(lambda: enqueue_due_batches(dispatch_id=dispatch.pk))
    Dispatch.objects.filter(pk=dispatch.pk, planned_at__isnull=True).update(planned_at=now)
    logger.info("Dispatch %s planned: %s deliveries created", dispatch.pk, created)
    return created


def _plannable(status: str, planned_at: datetime | None) -> bool:
    """Whether a dispatch in ``status`` may get deliveries: planning, sending, or paused
    before its fan-out ended (decision 0088)."""
    return status in (Dispatch.Status.PLANNING, Dispatch.Status.SENDING) or (
        status == Dispatch.Status.PAUSED and planned_at is None
    )


def _locked_status(dispatch_id: int) -> str | None:
    """The dispatch's status under its row lock, which pause and cancel also take: a
    cancelled dispatch gets no more rows, a paused one gets them held (decision 0085)."""
    return (
        Dispatch.objects.select_for_update()
        .filter(pk=dispatch_id)
        .values_list("status", flat=True)
        .first()
    )


def _row_status(dispatch_status: str) -> str:
    if dispatch_status == Dispatch.Status.PAUSED:
        return str(Delivery.Status.HELD)
    return str(Delivery.Status.QUEUED)


def _short_queue(channel: Channel) -> bool:
    """Whether fewer rows are due on the channel than its concurrent batches take: its
    senders may have caught up with the fan-out and ended their chains."""
    enough = max(channel.batch_size, 1) * settings.DELIVERY_CHANNEL_CONCURRENCY
    due = Delivery.objects.due(timezone.now()).filter(channel_id=channel.pk)
    return due_rows(due, enough) < enough


def finish_dispatches(
    dispatch_ids: Iterable[int] | None = None, *, wanted: frozenset[str] | None = None
) -> int:
    """Mark done the sending dispatches whose deliveries are all settled, except an A/B test
    still waiting for its decision (the rest is yet to come). Returns how many.

    When an endpoint listens to ``dispatch.completed`` (``wanted``, read when not given), each
    dispatch is closed in a transaction of its own with its event; else one UPDATE closes
    them all.
    """
    unsettled = Delivery.objects.filter(dispatch_id=OuterRef("pk")).unsettled()
    dispatches = (
        Dispatch.objects.filter(status=Dispatch.Status.SENDING)
        # A fan-out still running has more rows to come (decision 0088).
        .exclude(planned_at__isnull=True)
        .exclude(ab_decide_at__isnull=False, ab_decided_at__isnull=True)
        .exclude(Exists(unsettled))
    )
    if dispatch_ids is not None:
        dispatches = dispatches.filter(pk__in=list(dispatch_ids))
    now = timezone.now()
    wanted = recorder.listened() if wanted is None else wanted
    if EventType.DISPATCH_COMPLETED not in wanted:
        return dispatches.update(status=Dispatch.Status.DONE, finished_at=now)
    finished = 0
    for pk, publication_id, kind in dispatches.values_list("pk", "publication_id", "kind"):
        with transaction.atomic():
            # The same conditions again: only the caller that closes the dispatch records it.
            if not dispatches.filter(pk=pk).update(status=Dispatch.Status.DONE, finished_at=now):
                continue
            counts = dict(
                Delivery.objects.filter(dispatch_id=pk)
                .order_by()
                .values_list("status")
                .annotate(count=Count("pk"))
            )
            data = {
                "dispatch_id": pk,
                "publication_id": publication_id,
                "kind": kind,
                "deliveries": {str(status): int(n) for status, n in sorted(counts.items())},
            }
            recorder.record_many(
                [recorder.NewEvent(EventType.DISPATCH_COMPLETED, data)], wanted=wanted
            )
        finished += 1
    return finished
