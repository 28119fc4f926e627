"""Sending starts before the fan-out ends (decision 0088): the subscribers are inserted in
ranges of ids, each committed on its own. The tests stop the fan-out between two ranges and
look: what is committed is sent, the dispatch is not closed early, a pause or a cancel between
ranges holds or stops the rest, and a planner that dies between ranges is finished by the
sweeper with every subscriber planned once."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.db import connection, connections
from django.utils import timezone

from channels.engine import fanout, guardrails
from channels.engine.batches import send_batch
from channels.engine.sweeper import sweep
from channels.models import Channel, Delivery
from channels.progress import dispatch_progress
from publishing.models import Dispatch, Topic
from tests.channels.conftest import SmtpSink, add_subscribers, make_dispatch

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

AUDIENCE = 300


@pytest.fixture(autouse=True)
def small_ranges(settings: Any) -> None:
    # Ranges of 10, 40, 100, 100... ids: several ranges for a few hundred subscribers.
    settings.FANOUT_FIRST_RANGE = 10
    settings.FANOUT_RANGE = 100


def between_ranges(
    monkeypatch: pytest.MonkeyPatch, action: Callable[[int], None]
) -> list[tuple[int, str | None]]:
    """Call ``action(n)`` as range n (from 2) begins, before the planner locks its dispatch,
    in the planner's own thread and transaction; returns each range's status and dispatch."""
    calls: list[tuple[int, str | None]] = []
    locked_status = fanout._locked_status

    def spy(dispatch_id: int) -> str | None:
        calls.append((len(calls) + 1, None))
        if len(calls) > 1:
            action(len(calls))
        status = locked_status(dispatch_id)
        calls[-1] = (calls[-1][0], status)
        return status

    monkeypatch.setattr(fanout, "_locked_status", spy)
    return calls


def in_another_connection(work: Callable[[], Any]) -> Any:
    """Run ``work`` in a thread of its own, so on a database connection of its own (another
    worker), with a lock timeout: a wait on the planner's locks fails instead of hanging."""
    result: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = '3s'")
            result.append(work())
        except BaseException as error:  # re-raised in the test's thread
            errors.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    if errors:
        raise errors[0]
    return result[0] if result else None


def test_what_a_range_commits_is_sent_before_the_next_range_and_the_dispatch_closes_once(
    topic: Topic, smtp_channel: Channel, sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    Channel.objects.filter(pk=smtp_channel.pk).update(batch_size=20)
    readers = add_subscribers(topic, AUDIENCE)
    dispatch = make_dispatch(topic)
    seen: list[dict[str, Any]] = []

    def look(n: int) -> None:
        # Another worker, as range n begins: it sends what is there and tries to close.
        def work() -> dict[str, Any]:
            report = send_batch(smtp_channel.pk, chain=False)
            closed = fanout.finish_dispatches([dispatch.pk])
            row = Dispatch.objects.values("status", "planned_at").get(pk=dispatch.pk)
            progress = dispatch_progress(Dispatch.objects.get(pk=dispatch.pk))
            return {
                # What the dispatch's admin page polls: not done while ranges remain.
                "page_done": progress.as_json()["done"],
                "page_settled": progress.settled == progress.total,
                "range": n,
                "received": len(sink.messages),
                "rows": Delivery.objects.filter(dispatch=dispatch).count(),
                "claimed": report.claimed,
                "closed": closed,
                **row,
            }

        seen.append(in_another_connection(work))

    calls = between_ranges(monkeypatch, look)

    created = fanout.plan_dispatch(dispatch.pk)

    assert created == AUDIENCE
    assert len(calls) >= 4, "the fan-out was one statement"
    first = seen[0]
    # The first range was committed, sent (the chain enqueued at its commit, run at once
    # here) and the dispatch was sending, not closed, though every row in sight was settled.
    assert 0 < first["rows"] < AUDIENCE
    assert first["received"] == first["rows"]
    assert first["status"] == Dispatch.Status.SENDING
    assert first["planned_at"] is None
    assert all(look["closed"] == 0 for look in seen)
    assert first["page_settled"] is True
    assert all(look["page_done"] is False for look in seen)
    assert all(look["received"] < AUDIENCE for look in seen)
    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.DONE
    assert dispatch.planned_at is not None
    counts = Counter(sink.recipients)
    assert set(counts) == {reader.email for reader in readers}
    assert set(counts.values()) == {1}


def test_a_dispatch_paused_between_ranges_gets_the_rest_held_and_cancelled_gets_no_more(
    topic: Topic, smtp_channel: Channel, sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    editor = get_user_model().objects.create_superuser("editor", "editor@example.com", "x")
    add_subscribers(topic, AUDIENCE)
    dispatch = make_dispatch(topic)

    def pause_at_second_range(n: int) -> None:
        if n == 2:
            in_another_connection(lambda: guardrails.pause(dispatch.pk, "Checking the list."))

    calls = between_ranges(monkeypatch, pause_at_second_range)
    fanout.plan_dispatch(dispatch.pk)

    assert calls[1][1] == Dispatch.Status.PAUSED
    sent = len(sink.messages)
    assert 0 < sent < AUDIENCE
    rows = Delivery.objects.filter(dispatch=dispatch)
    assert rows.count() == AUDIENCE
    assert rows.filter(status=Delivery.Status.HELD).count() == AUDIENCE - sent
    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.PAUSED
    assert dispatch.planned_at is not None

    guardrails.resume(dispatch.pk, editor)

    assert len(sink.messages) == AUDIENCE
    assert Counter(Counter(sink.recipients).values()) == {1: AUDIENCE}

    # A second dispatch, cancelled between ranges: what was committed and sent stays sent,
    # nothing more is planned, nothing is left queued.
    other = make_dispatch(topic, slug="second")
    before = len(sink.messages)

    def cancel_at_third_range(n: int) -> None:
        if n == 3:

            def stop() -> None:
                guardrails.pause(other.pk, "Wrong list.")
                guardrails.cancel(other.pk, editor)

            in_another_connection(stop)

    calls = between_ranges(monkeypatch, cancel_at_third_range)
    fanout.plan_dispatch(other.pk)

    assert calls[-1] == (3, Dispatch.Status.CANCELLED)
    rows = Delivery.objects.filter(dispatch=other)
    sent_then = len(sink.messages) - before
    assert 0 < rows.count() < AUDIENCE
    assert rows.filter(status=Delivery.Status.SENT).count() == sent_then
    assert not rows.filter(status__in=(Delivery.Status.QUEUED, Delivery.Status.HELD)).exists()
    other.refresh_from_db()
    assert other.status == Dispatch.Status.CANCELLED


class PlannerDied(Exception):
    pass


def test_a_planner_that_dies_between_ranges_is_finished_by_the_sweeper_once(
    topic: Topic, smtp_channel: Channel, sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    readers = add_subscribers(topic, AUDIENCE)
    dispatch = make_dispatch(topic)

    def die(n: int) -> None:
        if n == 3:
            raise PlannerDied

    between_ranges(monkeypatch, die)
    with pytest.raises(PlannerDied):
        fanout.plan_dispatch(dispatch.pk)

    planned = Delivery.objects.filter(dispatch=dispatch).count()
    assert 0 < planned < AUDIENCE
    assert len(sink.messages) == planned
    assert fanout.finish_dispatches([dispatch.pk]) == 0
    dispatch.refresh_from_db()
    assert (dispatch.status, dispatch.planned_at) == (Dispatch.Status.SENDING, None)

    monkeypatch.undo()
    # A second planner while the first still holds the dispatch (its connection alive)
    # plans nothing.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [fanout.PLANNING_LOCK, dispatch.pk])
    try:
        assert in_another_connection(lambda: fanout.plan_dispatch(dispatch.pk)) == 0
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [fanout.PLANNING_LOCK, dispatch.pk])
    assert Delivery.objects.filter(dispatch=dispatch).count() == planned

    with time_machine.travel(timezone.now() + timezone.timedelta(minutes=5)):
        report = sweep()

    assert report.replanned == 1
    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.DONE
    assert dispatch.planned_at is not None
    assert Delivery.objects.filter(dispatch=dispatch).count() == AUDIENCE
    counts = Counter(sink.recipients)
    assert set(counts) == {reader.email for reader in readers}
    assert set(counts.values()) == {1}


def test_ranges_cover_every_id_once_growing_to_the_largest(settings: Any) -> None:
    settings.FANOUT_FIRST_RANGE = 2_000
    settings.FANOUT_RANGE = 128_000

    ranges = fanout.subscriber_ranges(1, 1_000_000)

    assert ranges[0] == (None, 2_000)
    assert ranges[-1][1] is None
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    sizes = [int(b[0] or 0) - int(a[0] or 0) for a, b in itertools.pairwise(ranges[1:])]
    assert sizes[:3] == [8_000, 32_000, 128_000]
    assert max(sizes) == 128_000
    assert len(ranges) == 11
    assert fanout.subscriber_ranges(7, 7) == [(None, None)]
    assert fanout.subscriber_ranges(500_001, 500_100) == [(None, None)]
