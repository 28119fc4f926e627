"""The engine's queries keep their cost whatever the ledger's size (issue 18): each is checked
with EXPLAIN on PostgreSQL against a dispatch of 200,000 due rows that share one
``next_attempt_at``, as a fan-out leaves them. None may sort or scan the whole ledger: the
claim reads a batch's worth of index entries, and the periodic queries (the sweeper, the
wake-up and the enqueueing of due batches, the guardrails, closing dispatches) read at most a
few thousand rows, whatever the queue's length."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, cast

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.conf import Conf

from channels.engine import abtest, guardrails, queue, sweeper
from channels.engine.claims import claim, claimable, next_queued_dispatch
from channels.engine.fanout import finish_dispatches
from channels.models import Channel, Delivery
from publishing.models import Dispatch
from tests.factories import DispatchFactory

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

DUE_ROWS = 200_000
#: The most rows any of these queries may read from the ledger (a few batches).
BOUND = 5_000
TABLE = Delivery._meta.db_table


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def explain(sql: str, params: Any = None) -> dict[str, Any]:
    """The executed plan of one statement (EXPLAIN ANALYZE, JSON, with buffers)."""
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", params)
        row = cursor.fetchone()
    assert row is not None
    data = json.loads(row[0]) if isinstance(row[0], str) else row[0]
    return dict(data[0]["Plan"])


def rows_of(node: dict[str, Any]) -> float:
    """Rows a node read: those it returned and those its filter removed, over its loops."""
    read = float(node.get("Actual Rows", node.get("Plan Rows", 0)))
    read += float(node.get("Rows Removed by Filter", 0))
    return read * float(node.get("Actual Loops", 1) or 1)


def ledger_reads(plan: dict[str, Any]) -> list[tuple[str, str, float]]:
    """Each read of the ledger in ``plan``: (node type, index, rows read)."""
    return [
        (node["Node Type"], str(node.get("Index Name", "")), rows_of(node))
        for node in nodes(plan)
        if node.get("Relation Name") == TABLE
    ]


def check_bounded(plan: dict[str, Any], sql: str) -> None:
    for kind, index, rows in ledger_reads(plan):
        assert rows <= BOUND, f"{kind} {index} read {rows:.0f} rows: {sql}"
    for node in nodes(plan):
        if node["Node Type"] == "Sort":
            assert rows_of(node) <= BOUND, f"a sort of {rows_of(node):.0f} rows: {sql}"


def plans_of(work: Callable[[], object]) -> list[tuple[str, dict[str, Any]]]:
    """Run ``work``, then EXPLAIN each statement it sent that reads the ledger."""
    with CaptureQueriesContext(connection) as captured:
        work()
    plans = []
    for query in captured.captured_queries:
        sql = query["sql"]
        if TABLE not in sql or sql.startswith(("SAVEPOINT", "RELEASE", "ROLLBACK")):
            continue
        # Executed, to count the rows each node really read, and rolled back.
        with transaction.atomic():
            plans.append((sql, explain(sql)))
            transaction.set_rollback(True)
    return plans


@pytest.fixture
def crowded_ledger(db: None, monkeypatch: pytest.MonkeyPatch) -> Channel:
    """A ledger of 400,000 rows: 200,000 sent by an earlier dispatch on another channel, then
    a sending dispatch of 200,000 queued rows all due at the same instant; fresh statistics.
    A query that scans the ledger reads past the sent ones. Tasks go to the queue."""
    monkeypatch.setattr(Conf, "SYNC", False)
    old = Channel.objects.create(name="Old", kind="email_file")
    channel = Channel.objects.create(name="Bulk", kind="email_file", is_default_email=True)
    earlier = cast(Dispatch, DispatchFactory(status=Dispatch.Status.DONE))
    dispatch = cast(Dispatch, DispatchFactory(status=Dispatch.Status.SENDING))
    now = timezone.now() - timedelta(minutes=10)
    insert = f"""INSERT INTO {TABLE} (kind, dispatch_id, channel_id, recipient, priority,
            status, attempts, next_attempt_at, last_error, provider_message_id, created_at,
            updated_at)
        SELECT 'subscriber', %s, %s, '', 100, %s, 0, %s, '', '', %s, %s
        FROM generate_series(1, %s)"""
    with connection.cursor() as cursor:
        cursor.execute(insert, [earlier.pk, old.pk, "sent", now, now, now, DUE_ROWS])
        cursor.execute(insert, [dispatch.pk, channel.pk, "queued", now, now, now, DUE_ROWS])
        cursor.execute(f"ANALYZE {TABLE}")
    return channel


def test_the_claim_reads_its_batch_in_index_order_without_sorting_the_queue(
    crowded_ledger: Channel,
) -> None:
    sql, params = claimable(crowded_ledger.pk, timezone.now())[:500].query.sql_with_params()

    plan = explain(sql, params)

    kinds = [node["Node Type"] for node in nodes(plan)]
    assert "Sort" not in kinds, kinds
    reads = ledger_reads(plan)
    assert [(index, rows <= 500) for _, index, rows in reads] == [("delivery_due", True)], reads


def test_the_claim_as_sent_reads_and_updates_one_batch_in_one_statement(
    crowded_ledger: Channel,
) -> None:
    """The statement claim() sends (the SELECT in a WITH with its UPDATE): the same index
    range scan, no sort of the ledger, and no read of it beyond the batch."""
    now = timezone.now()
    with CaptureQueriesContext(connection) as captured:
        rows, lease = claim(crowded_ledger, 500, now)
    statements = [q["sql"] for q in captured.captured_queries if TABLE in q["sql"]]
    assert len(rows) == 500
    assert len(statements) == 1, statements
    assert Delivery.objects.filter(status="sending", lease_expires_at=lease).count() == 500

    with transaction.atomic():
        plan = explain(statements[0])
        transaction.set_rollback(True)
    # One sort: the batch's 500 claimed rows, read back from the WITH in claim order; none
    # over the ledger.
    sorts = [node for node in nodes(plan) if node["Node Type"] == "Sort"]
    sorted_inputs = [
        [c["Node Type"] for c in sort["Plans"] if c["Parent Relationship"] == "Outer"]
        for sort in sorts
    ]
    assert (sorted_inputs, [sort["Actual Rows"] for sort in sorts]) == ([["CTE Scan"]], [500])
    reads = [read for read in ledger_reads(plan) if read[0] != "ModifyTable"]
    # The claim's index range scan, then the UPDATE's lookups of the 500 rows by primary key.
    assert sorted((kind, index, rows) for kind, index, rows in reads) == [
        ("Index Scan", "channels_delivery_pkey", 500.0),
        ("Index Scan", "delivery_due", 500.0),
    ], reads
    check_bounded(plan, statements[0])


def send_first(channel: Channel, count: int) -> None:
    """Mark the first ``count`` queued rows of ``channel`` sent: each leaves a dead entry at
    the front of ``delivery_due`` (and in every index) until VACUUM."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {TABLE} SET status = 'sent' WHERE id IN (
                SELECT id FROM {TABLE} WHERE channel_id = %s AND status = 'queued'
                ORDER BY id LIMIT %s)""",
            [channel.pk, count],
        )


def test_a_claim_resuming_after_its_last_batch_does_not_walk_the_rows_claimed_before(
    crowded_ledger: Channel, settings: Any
) -> None:
    """Decision 0092. Every row that left the queue leaves a dead entry at the front of
    ``delivery_due`` until VACUUM: here 150,000. A claim from the queue's start walks them all;
    the next claim of the same process starts after its last batch's last row."""
    settings.DELIVERY_CLAIM_RESCAN_SECONDS = 60
    send_first(crowded_ledger, 150_000)
    now = timezone.now()
    with CaptureQueriesContext(connection) as captured:
        first, _ = claim(crowded_ledger, 500, now)
        second, _ = claim(crowded_ledger, 500, now)
    statements = [q["sql"] for q in captured.captured_queries if TABLE in q["sql"]]
    assert len(statements) == 2
    assert second[0].pk > first[-1].pk

    buffers = []
    for sql in statements:
        with transaction.atomic():
            plan = explain(sql)
            transaction.set_rollback(True)
        (scan,) = [node for node in nodes(plan) if node.get("Index Name") == "delivery_due"]
        buffers.append(scan["Shared Hit Blocks"] + scan["Shared Read Blocks"])
    from_start, resumed = buffers
    assert resumed <= 100, buffers
    assert from_start >= 10 * resumed, buffers


def test_the_probe_after_a_full_batch_starts_where_the_batch_ended(
    crowded_ledger: Channel,
) -> None:
    """Decision 0093: after a full batch the engine asks which dispatch the channel's queue
    goes on with; the probe starts at the batch's last key, past the 150,000 dead entries.
    Asking whether the dispatch has any unsettled row left, which the probe spares, walks
    them (until VACUUM): a hundred times the buffers."""
    sending = Dispatch.objects.get(status=Dispatch.Status.SENDING)
    Dispatch.objects.filter(pk=sending.pk).update(planned_at=timezone.now())
    send_first(crowded_ledger, 150_000)
    rows, _ = claim(crowded_ledger, 500, timezone.now())
    key = rows[-1].claim_key
    assert key is not None

    assert next_queued_dispatch(crowded_ledger.pk, key) == sending.pk
    ((sql, plan),) = plans_of(lambda: next_queued_dispatch(crowded_ledger.pk, key))
    (scan,) = [node for node in nodes(plan) if node.get("Index Name") == "delivery_due"]
    probe = scan["Shared Hit Blocks"] + scan["Shared Read Blocks"]
    assert probe <= 20, sql
    check_bounded(plan, sql)
    ((sql, plan),) = plans_of(lambda: finish_dispatches([sending.pk]))
    (check,) = [node for node in nodes(plan) if node.get("Relation Name") == TABLE]
    assert check["Actual Loops"] == 1, sql  # the dispatch's rows were looked at
    assert check["Shared Hit Blocks"] + check["Shared Read Blocks"] >= 100 * probe


@pytest.mark.parametrize(
    "work",
    [
        pytest.param(lambda: queue.enqueue_due_batches(), id="enqueue-due-batches"),
        pytest.param(
            lambda: queue.enqueue_due_batches(stale_before=timezone.now()), id="enqueue-stale"
        ),
        pytest.param(
            lambda: queue.enqueue_due_batches(
                dispatch_id=Dispatch.objects.values_list("pk", flat=True).get(status="sending")
            ),
            id="enqueue-dispatch",
        ),
        pytest.param(
            lambda: queue.wake_due_channels(timezone.now() - timedelta(hours=1), timezone.now()),
            id="wake-due-channels",
        ),
        pytest.param(finish_dispatches, id="finish-dispatches"),
        pytest.param(guardrails.check_sending, id="guardrails"),
        pytest.param(abtest.decide_due, id="ab-decisions"),
        pytest.param(sweeper.sweep, id="sweep"),
    ],
)
def test_periodic_queries_read_a_bounded_part_of_the_ledger(
    crowded_ledger: Channel, work: Callable[[], object]
) -> None:
    plans = plans_of(work)

    assert plans or work is abtest.decide_due, "the work read nothing of the ledger"
    for sql, plan in plans:
        check_bounded(plan, sql)


def test_the_ledger_carries_only_the_indexes_its_queries_use(db: None) -> None:
    """Each index costs an entry at every row version (three per message): the ledger has
    the ones a query needs and no single-column index that a composite one already begins
    with (docs/performance.md)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", [TABLE])
        names = {row[0] for row in cursor.fetchall()}
    assert names == {
        "channels_delivery_pkey",
        "channels_delivery_subscriber_id_a9da4f22",  # erasure, a subscriber's deliveries
        "delivery_due",  # the claim
        "delivery_lease",  # the sweeper's expired leases
        "delivery_dispatch_status",  # progress, guardrails, closing a dispatch
        "delivery_channel_status",  # a channel's recent sends, its cascade
        "delivery_uncertain",  # uncertain hand-overs (partial: a handful of rows)
        "delivery_provider_message_id",  # SES feedback finds its delivery (partial)
        "one_delivery_per_recipient",  # exactly once, per subscriber
        "one_broadcast_per_channel",  # exactly once, per broadcast channel
        "one_delivery_per_event_and_endpoint",  # exactly once, per event and endpoint
        "delivery_event",  # an event's deliveries (partial: event rows only)
    }
