from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ, Schedule

from channels import tasks
from channels.engine import claims, fanout, sweeper
from channels.models import Channel, Delivery
from publishing.models import Dispatch, Topic
from tests.channels.conftest import SmtpSink, add_subscribers, make_dispatch

pytestmark = pytest.mark.django_db


def test_the_sweeper_runs_every_minute_from_a_schedule() -> None:
    schedule = Schedule.objects.get(name="channels.sweep")

    assert (schedule.func, schedule.schedule_type, schedule.minutes, schedule.repeats) == (
        "channels.tasks.sweep",
        Schedule.MINUTES,
        1,
        -1,
    )


def test_it_requeues_deliveries_whose_worker_died_and_buries_those_on_their_last_attempt(
    topic: Topic, smtp_channel: Channel, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Conf, "SYNC", False)
    settings.DELIVERY_MAX_ATTEMPTS = 3
    add_subscribers(topic, 4)
    dispatch = make_dispatch(topic)
    fanout.plan_dispatch(dispatch.pk)
    rows, _ = claims.claim(smtp_channel, 4, timezone.now())  # then the worker dies
    Delivery.objects.filter(pk=rows[0].pk).update(attempts=3)

    with time_machine.travel(timezone.now() + dt.timedelta(minutes=5)):
        report = sweeper.sweep()

    assert (report.requeued, report.dead) == (3, 1)
    statuses = sorted(Delivery.objects.values_list("status", "attempts"))
    assert statuses == [("dead", 3), ("queued", 1), ("queued", 1), ("queued", 1)]


def test_it_leaves_live_leases_alone(topic: Topic, smtp_channel: Channel) -> None:
    add_subscribers(topic, 2)
    fanout.plan_dispatch(make_dispatch(topic).pk)
    claims.claim(smtp_channel, 2, timezone.now())

    report = sweeper.sweep()

    assert report.requeued == 0
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sending"}


def test_it_rebuilds_lost_batch_tasks_from_the_ledger_without_flooding_the_queue(
    topic: Topic, smtp_channel: Channel, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Conf, "SYNC", False)
    settings.DELIVERY_CHANNEL_CONCURRENCY = 3
    Channel.objects.filter(pk=smtp_channel.pk).update(batch_size=10)
    add_subscribers(topic, 100)
    fanout.plan_dispatch(make_dispatch(topic).pk)
    OrmQ.objects.all().delete()  # the tasks are lost (a rotated SECRET_KEY, a flushed Redis)

    fresh = sweeper.sweep()
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=1)):
        stale = sweeper.sweep()

    assert fresh.enqueued == 0  # work that just became due is somebody's already
    assert stale.enqueued == 3
    assert OrmQ.objects.count() == 3


def test_it_plans_again_a_dispatch_whose_planning_task_was_lost(
    topic: Topic, smtp_channel: Channel, sink: SmtpSink
) -> None:
    add_subscribers(topic, 3)
    dispatch = make_dispatch(topic)

    with time_machine.travel(timezone.now() + dt.timedelta(minutes=1)):
        report = sweeper.sweep()

    assert report.replanned == 1
    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.SENDING
    assert Delivery.objects.filter(dispatch=dispatch).count() == 3


def test_it_finishes_dispatches_whose_deliveries_are_all_settled(
    topic: Topic, smtp_channel: Channel
) -> None:
    add_subscribers(topic, 2)
    dispatch = make_dispatch(topic)
    fanout.plan_dispatch(dispatch.pk)
    assert sweeper.sweep().finished == 0
    Delivery.objects.update(status="failed")

    tasks.sweep()  # what the schedule runs

    assert Delivery.objects.filter(status="failed").count() == 2
    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.DONE
