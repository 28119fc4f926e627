"""manage.py dispatch_status and retry_deliveries, acting on a real ledger."""

from __future__ import annotations

from io import StringIO
from typing import Any, cast

import pytest
from django.core.management import CommandError, call_command
from django_q.conf import Conf
from django_q.models import OrmQ

from channels.models import Channel, Delivery
from publishing.models import Dispatch
from tests.factories import ChannelFactory, DeliveryFactory, DispatchFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Enqueued batches wait in the ORM queue instead of running inline."""
    monkeypatch.setattr(Conf, "SYNC", False)


def a_dispatch(slug: str, **statuses: int) -> tuple[Dispatch, Channel]:
    dispatch = cast(Dispatch, DispatchFactory(publication__slug=slug, status="sending"))
    channel = cast(Channel, ChannelFactory(name=f"{slug}-mail"))
    for status, count in statuses.items():
        for _ in range(count):
            DeliveryFactory(dispatch=dispatch, channel=channel, status=status)
    return dispatch, channel


def test_it_prints_a_dispatchs_deliveries_by_status_and_channel() -> None:
    dispatch, _ = a_dispatch("spring", sent=3, queued=1, failed=1)
    out = StringIO()

    call_command("dispatch_status", "spring", stdout=out)

    text = out.getvalue()
    assert f"Dispatch {dispatch.pk} of 'spring' (sending): 4/5 settled (80.0%)" in text
    row = next(line for line in text.splitlines() if "spring-mail" in line)
    assert row.split()[1:] == ["1", "0", "0", "3", "1", "0", "0", "0", "5"]


def test_without_a_slug_it_reports_the_dispatches_still_sending() -> None:
    a_dispatch("finished", sent=2)
    Dispatch.objects.update(status="done")
    a_dispatch("ongoing", queued=2)
    out = StringIO()

    call_command("dispatch_status", stdout=out)

    assert "'ongoing'" in out.getvalue()
    assert "'finished'" not in out.getvalue()


def test_watch_shows_a_progress_bar_and_ends_once_every_delivery_is_settled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dispatch, _ = a_dispatch("watched", queued=4, sent=1)
    waits: list[float] = []

    def workers_progress(seconds: float) -> None:
        # Each refresh, the workers have sent two more deliveries.
        waits.append(seconds)
        queued = Delivery.objects.filter(status="queued").values_list("pk", flat=True)[:2]
        Delivery.objects.filter(pk__in=list(queued)).update(status="sent")
        if not Delivery.objects.filter(status="queued").exists():
            Dispatch.objects.filter(pk=dispatch.pk).update(status="done")

    monkeypatch.setattr("channels.management.commands.dispatch_status.time.sleep", workers_progress)
    out, err = StringIO(), StringIO()

    call_command(
        "dispatch_status", "watched", "--watch", "--interval", "0.5", stdout=out, stderr=err
    )

    assert waits == [0.5, 0.5]
    assert "settled" in err.getvalue() and "5/5" in err.getvalue()
    assert out.getvalue().rstrip().endswith("Settled.")
    assert "5/5 settled (100.0%)" in out.getvalue()
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}


def test_watch_gives_up_after_its_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    a_dispatch("stuck", queued=1)
    monkeypatch.setattr("channels.management.commands.dispatch_status.time.sleep", lambda s: None)
    clock = iter(range(0, 1000, 10))
    monkeypatch.setattr(
        "channels.management.commands.dispatch_status.time.monotonic", lambda: next(clock)
    )

    with pytest.raises(CommandError, match="--timeout"):
        call_command(
            "dispatch_status",
            "stuck",
            "--watch",
            "--timeout",
            "15",
            stdout=StringIO(),
            stderr=StringIO(),
        )


def test_it_names_an_unknown_publication_and_a_bad_interval() -> None:
    with pytest.raises(CommandError, match="slug 'nope'"):
        call_command("dispatch_status", "nope", stdout=StringIO())
    with pytest.raises(CommandError, match="--interval"):
        call_command("dispatch_status", "--interval", "0", stdout=StringIO())


def test_retry_requeues_failed_deliveries_and_leaves_dead_ones(
    queued_tasks: None, django_capture_on_commit_callbacks: Any
) -> None:
    dispatch, _channel = a_dispatch("retry", failed=2, dead=1, sent=1)
    Dispatch.objects.filter(pk=dispatch.pk).update(status="done")
    out = StringIO()

    with django_capture_on_commit_callbacks(execute=True):
        call_command("retry_deliveries", stdout=out)

    assert "Re-queued 2 failed deliveries." in out.getvalue()
    statuses = sorted(Delivery.objects.values_list("status", "attempts"))
    assert statuses == [("dead", 0), ("queued", 0), ("queued", 0), ("sent", 0)]
    assert Dispatch.objects.get(pk=dispatch.pk).status == "sending"
    assert OrmQ.objects.count() == 1  # a batch of the channel is on its way


def test_retry_with_dead_requeues_only_dead_ones_of_the_channel_and_dispatch_given(
    queued_tasks: None,
) -> None:
    first, channel = a_dispatch("one", dead=2, failed=1)
    _second, _ = a_dispatch("two", dead=1)
    other_channel = cast(Channel, ChannelFactory(name="elsewhere"))
    DeliveryFactory(dispatch=first, channel=other_channel, status="dead")
    out = StringIO()

    call_command(
        "retry_deliveries",
        "--dead",
        "--channel",
        channel.name,
        "--dispatch",
        str(first.pk),
        stdout=out,
    )

    assert "Re-queued 2 dead deliveries." in out.getvalue()
    assert Delivery.objects.filter(status="queued").count() == 2
    assert set(
        Delivery.objects.filter(status="queued").values_list("dispatch_id", "channel_id")
    ) == {(first.pk, channel.pk)}
    assert Delivery.objects.filter(status="dead").count() == 2
    assert Delivery.objects.filter(status="failed").count() == 1


def test_retry_names_an_unknown_channel_or_dispatch_and_changes_nothing() -> None:
    a_dispatch("safe", failed=1)

    with pytest.raises(CommandError, match="No channel named 'ghost' \\(--channel\\)"):
        call_command("retry_deliveries", "--channel", "ghost", stdout=StringIO())
    with pytest.raises(CommandError, match="No dispatch with id 999999 \\(--dispatch\\)"):
        call_command("retry_deliveries", "--dispatch", "999999", stdout=StringIO())

    assert list(Delivery.objects.values_list("status", flat=True)) == ["failed"]


def test_retry_handles_more_rows_than_one_statement_may_carry(
    queued_tasks: None, monkeypatch: Any
) -> None:
    monkeypatch.setattr("channels.services.REQUEUE_CHUNK", 2)
    a_dispatch("many", failed=5)

    call_command("retry_deliveries", stdout=StringIO())

    assert set(Delivery.objects.values_list("status", flat=True)) == {"queued"}
