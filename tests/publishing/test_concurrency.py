"""Races on PostgreSQL: real threads and processes, each with its own connection."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone
from django_q.models import Schedule, Task

from publishing import services, tasks
from publishing.models import Dispatch, Publication, Topic
from tests.concurrency import run_at_once
from tests.conftest import REPO_ROOT
from tests.publishing.conftest import make_publication


def _schedule_due(paula: User, topic: Topic, count: int) -> list[Publication]:
    publications = []
    for number in range(count):
        publication = make_publication(by=paula, topics=[topic], slug=f"due-{number}")
        services.schedule(publication, timezone.now() + timedelta(seconds=1), by=paula)
        publications.append(publication)
    # Make them due without waiting: the schedule rule (future only) applied when they were set.
    Publication.objects.filter(pk__in=[p.pk for p in publications]).update(
        publish_at=timezone.now() - timedelta(minutes=1)
    )
    return publications


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_publishes_create_one_dispatch_and_one_task(
    paula: User, topic: Topic
) -> None:
    publication = make_publication(by=paula, topics=[topic])

    def publish() -> int:
        copy = Publication.objects.get(pk=publication.pk)
        return services.publish(copy, by=paula).pk

    first, second = run_at_once(publish, publish).all_results()

    assert first == second
    dispatch = Dispatch.objects.get()
    assert dispatch.pk == first
    assert Publication.objects.get(pk=publication.pk).status == Publication.Status.PUBLISHED
    assert publication.history.filter(status=Publication.Status.PUBLISHED).count() == 1
    assert [task.args for task in Task.objects.filter(func=services.PLAN_DISPATCH_TASK)] == [
        (dispatch.pk,)
    ]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_publish_each_due_publication_exactly_once(paula: User, topic: Topic) -> None:
    publications = _schedule_due(paula, topic, 12)

    first, second = run_at_once(services.publish_due, services.publish_due).all_results()

    published_ids = [d.publication_id for d in first] + [d.publication_id for d in second]
    assert sorted(published_ids) == sorted(p.pk for p in publications)
    assert Dispatch.objects.count() == 12
    for publication in publications:
        assert publication.dispatches.count() == 1
        assert Publication.objects.get(pk=publication.pk).status == Publication.Status.PUBLISHED
    assert Task.objects.filter(func=services.PLAN_DISPATCH_TASK).count() == 12


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_worker_processes_running_the_scheduled_task_publish_each_once(
    paula: User, topic: Topic
) -> None:
    publications = _schedule_due(paula, topic, 20)
    name = connection.settings_dict["NAME"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{name}",
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "TEST_QUIET_LOGGING": "true",
    }
    code = "from publishing import tasks; print(tasks.publish_due())"
    command = [sys.executable, "manage.py", "shell", "-c", code]
    workers = [
        subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    counts = [
        int(worker.communicate(timeout=120)[0].strip().splitlines()[-1]) for worker in workers
    ]

    assert all(worker.returncode == 0 for worker in workers)
    assert sum(counts) == 20
    assert Dispatch.objects.count() == 20
    assert all(p.dispatches.count() == 1 for p in publications)


@pytest.mark.django_db
def test_the_scheduled_task_publishes_what_is_due(paula: User, topic: Topic) -> None:
    _schedule_due(paula, topic, 2)

    assert tasks.publish_due() == 2
    assert tasks.publish_due() == 0
    assert Dispatch.objects.count() == 2


@pytest.mark.django_db
def test_a_migration_schedules_publish_due_every_minute() -> None:
    schedule = Schedule.objects.get(name="publishing.publish_due")

    assert schedule.func == "publishing.tasks.publish_due"
    assert schedule.schedule_type == Schedule.MINUTES
    assert schedule.minutes == 1
    assert schedule.repeats == -1
