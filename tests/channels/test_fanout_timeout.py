"""A large fan-out is one INSERT ... SELECT, longer than the statement_timeout every other
query runs under: it gets FANOUT_STATEMENT_TIMEOUT_MS for its own transaction (decision
0087), and the connection keeps its short limit for everything else."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.utils import OperationalError

from channels.engine import fanout
from channels.models import Channel, Delivery
from publishing.models import Dispatch, Topic
from tests.channels.conftest import add_subscribers, make_dispatch

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

#: Far shorter than the fan-out of the audience below takes.
SHORT = "5ms"
AUDIENCE = 20_000


def timeout() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        (value,) = cursor.fetchone()
    return str(value)


def test_a_fan_out_longer_than_the_statement_timeout_completes(
    topic: Topic, smtp_channel: Channel
) -> None:
    add_subscribers(topic, AUDIENCE)
    dispatch = make_dispatch(topic)
    [audience] = fanout.audience_by_channel([topic.pk], dispatch.created_at)
    with connection.cursor() as cursor:
        cursor.execute(f"SET statement_timeout = '{SHORT}'")
    try:
        # The fan-out's statement alone: the rest of plan_dispatch runs under the short limit.
        created = fanout._insert_deliveries(dispatch.pk, audience, dispatch.created_at)
        assert timeout() == SHORT  # only the fan-out's transaction had the long limit
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET statement_timeout")
    assert created == AUDIENCE == Delivery.objects.filter(dispatch=dispatch).count()


def test_without_the_longer_limit_the_same_fan_out_is_cancelled(
    topic: Topic, smtp_channel: Channel, settings: Any
) -> None:
    add_subscribers(topic, AUDIENCE)
    dispatch = make_dispatch(topic)
    settings.FANOUT_STATEMENT_TIMEOUT_MS = 5
    settings.FANOUT_FIRST_RANGE = 1_000_000_000  # one range: one statement (decision 0088)
    with pytest.raises(OperationalError, match="statement timeout"):
        fanout.plan_dispatch(dispatch.pk)
    assert not Delivery.objects.filter(dispatch=dispatch).exists()
    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.PLANNING
