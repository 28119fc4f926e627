"""A/B subjects under real workers: two django-q2 clusters (two worker processes each) race to
decide the same test and send the rest; each subscriber receives one message, with one subject,
and the ledger's variant is the subject that subscriber received (decision 0079)."""

from __future__ import annotations

import email
import email.policy
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from django_q.conf import Conf
from django_q.tasks import async_task

from channels.engine import batches, fanout
from channels.models import Channel, Delivery, DeliveryEngagement
from publishing.models import Dispatch, Topic
from tests.channels.cluster import running_cluster, wait_for
from tests.channels.conftest import SmtpSink, add_subscribers, make_dispatch

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SUBJECTS = ["Spring is here", "Ten things to do in spring", "Spring, finally"]
AUDIENCE = 600
SWEEP_TASK = "channels.tasks.sweep"


def engage_first(dispatch: Dispatch, variant: int, clicked: int) -> None:
    """People opened and clicked the first ``clicked`` test messages of the subject."""
    now = timezone.now()
    rows = Delivery.objects.filter(dispatch=dispatch, variant=variant).order_by("pk")
    DeliveryEngagement.objects.bulk_create(
        DeliveryEngagement(
            delivery_id=pk,
            publication_id=dispatch.publication_id,
            first_human_open_at=now,
            first_human_click_at=now,
            human_opens=1,
            human_clicks=1,
        )
        for pk in rows.values_list("pk", flat=True)[:clicked]
    )


@pytest.mark.django_db(transaction=True)
def test_two_clusters_deciding_at_once_send_each_subscriber_one_message_with_one_subject(
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
    topic: Topic,
    smtp_channel: Channel,
    sink: SmtpSink,
    tmp_path: Path,
) -> None:
    monkeypatch.setattr(Conf, "SYNC", False)  # tasks go to the ORM queue the clusters read
    add_subscribers(topic, AUDIENCE)
    dispatch = make_dispatch(topic, subjects=SUBJECTS, ab_share=30, ab_min_sample=20)
    fanout.plan_dispatch(dispatch.pk)
    # The test share (30%: 60 a subject) is sent by this process, then engaged with.
    while batches.send_batch(smtp_channel.pk, chain=False).claimed:
        pass
    test_rows = Delivery.objects.filter(dispatch=dispatch)
    assert test_rows.count() == 180
    assert Counter(test_rows.values_list("variant", flat=True)) == {0: 60, 1: 60, 2: 60}
    engage_first(dispatch, 0, 3)
    engage_first(dispatch, 1, 30)
    engage_first(dispatch, 2, 4)
    # The decision is due: both clusters' workers find it at the same moment.
    Dispatch.objects.filter(pk=dispatch.pk).update(
        ab_decide_at=timezone.now() - timedelta(seconds=1)
    )
    for _ in range(8):
        async_task(SWEEP_TASK)

    env = {"Q_WORKERS": "2", "DELIVERY_SWEEP_STALE_SECONDS": "60"}
    with (
        running_cluster(tmp_path / "first.log", **env),
        running_cluster(tmp_path / "second.log", **env),
    ):
        wait_for(lambda: len(sink.messages) >= AUDIENCE, timeout=90)
        wait_for(
            lambda: (
                not Delivery.objects.filter(dispatch=dispatch)
                .exclude(status=Delivery.Status.SENT)
                .exists()
            ),
            timeout=30,
        )

    dispatch.refresh_from_db()
    assert dispatch.ab_winner == 1
    assert dispatch.ab_result["significant"] is True
    assert dispatch.ab_result["rest"] == AUDIENCE - 180
    rows = Delivery.objects.filter(dispatch=dispatch)
    assert rows.count() == AUDIENCE
    assert rows.values("subscriber_id").distinct().count() == AUDIENCE
    # One message per delivery, and the subject each person received is their row's variant.
    assert sink.delivery_ids() == dict.fromkeys(rows.values_list("pk", flat=True), 1)
    variant_of = dict(rows.values_list("subscriber__email", "variant"))
    assert None not in variant_of.values()
    received: dict[str, list[str]] = {}
    for raw, recipient in zip(sink.messages, sink.recipients, strict=True):
        message = email.message_from_bytes(raw, policy=email.policy.default)
        received.setdefault(recipient, []).append(str(message["Subject"]))
    assert len(received) == AUDIENCE
    assert all(len(subjects) == 1 for subjects in received.values())
    assert all(SUBJECTS[variant_of[r] or 0] == subjects[0] for r, subjects in received.items())
    assert Counter(s[0] for s in received.values()) == {
        SUBJECTS[0]: 60,
        SUBJECTS[1]: 60 + AUDIENCE - 180,
        SUBJECTS[2]: 60,
    }
