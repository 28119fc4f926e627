from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from channels.broker import beat
from channels.models import WorkerHeartbeat


def test_healthz_answers_ok_without_touching_the_database(client: Client) -> None:
    # No django_db mark: any database access here would raise.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_unavailable_until_a_worker_is_seen(client: Client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["migrations"] == {"ok": True, "pending": 0}
    assert body["checks"]["worker"]["ok"] is False


@pytest.mark.django_db
def test_readyz_is_ready_with_a_fresh_worker_heartbeat(client: Client) -> None:
    beat_now()
    assert WorkerHeartbeat.objects.count() == 1
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.django_db
def test_readyz_is_unavailable_when_the_last_heartbeat_is_stale(client: Client) -> None:
    WorkerHeartbeat.objects.create(name="old", seen_at=timezone.now() - timedelta(minutes=2))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["worker"]["ok"] is False


@pytest.mark.django_db
def test_worker_alive_fails_without_a_heartbeat_from_this_host_and_passes_with_one() -> None:
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="No worker heartbeat from"):
        call_command("worker_alive")
    beat_now()
    call_command("worker_alive")


def beat_now() -> None:
    import channels.broker

    channels.broker._last_beat = 0.0
    beat()
