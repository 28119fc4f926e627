"""The Digest admin: what went to whom, read-only."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client

from channels.models import Channel, Digest
from publishing.models import Topic
from tests.channels.conftest import SmtpSink
from tests.channels.digests_support import DAILY, WEDNESDAY, publish, run, subscriber


@pytest.mark.django_db
def test_the_admin_shows_which_digest_went_to_whom(
    smtp_channel: Channel, sink: SmtpSink, topic: Topic, admin_client: Client
) -> None:
    reader = subscriber(topic, DAILY, "reader")
    publish(topic, WEDNESDAY - dt.timedelta(hours=2), "Listed story")
    run(WEDNESDAY + dt.timedelta(minutes=1))
    digest = Digest.objects.get()

    listing = admin_client.get("/admin/channels/digest/")
    detail = admin_client.get(f"/admin/channels/digest/{digest.pk}/change/")

    assert listing.status_code == detail.status_code == 200
    assert reader.email in listing.content.decode()
    assert "Listed story" in detail.content.decode()
    assert b'name="_save"' not in detail.content  # read-only
