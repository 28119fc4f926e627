from __future__ import annotations

from typing import Any

from channels.checks import check_delivery_timeouts


def test_the_default_settings_pass_the_engine_checks() -> None:
    assert check_delivery_timeouts() == []


def test_it_refuses_a_retry_or_a_lease_not_above_the_task_timeout(settings: Any) -> None:
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 200, "retry": 180}
    settings.DELIVERY_LEASE_SECONDS = 150

    assert [e.id for e in check_delivery_timeouts()] == ["channels.E001", "channels.E002"]


def test_it_refuses_a_sent_journal_that_expires_before_the_lease(settings: Any) -> None:
    settings.DELIVERY_JOURNAL_TTL_SECONDS = settings.DELIVERY_LEASE_SECONDS

    assert [e.id for e in check_delivery_timeouts()] == ["channels.E003"]


def test_it_refuses_a_task_time_above_a_quarter_of_the_task_timeout(settings: Any) -> None:
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 120, "retry": 180}
    settings.DELIVERY_TASK_SECONDS = 31

    errors = check_delivery_timeouts()

    assert [e.id for e in errors] == ["channels.E004"]
    assert "DELIVERY_TASK_SECONDS (31)" in errors[0].msg
