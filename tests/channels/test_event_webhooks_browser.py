"""The admin's list of an endpoint's recent attempts, in a real browser (decision 0084)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from channels.models import Delivery, EventAttempt
from events.models import EventType
from subscribers import services
from tests.channels.event_support import make_endpoint, send_events
from tests.factories import SubscriberFactory, UserFactory


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_an_operator_reads_the_attempts_and_replays_an_event_in_a_browser(
    browser_page: Any, live_server: Any, output_dir: Path, httpserver: HTTPServer
) -> None:
    # The ORM work happens before the browser opens (Playwright's loop runs in this thread).
    UserFactory.create(username="root", is_superuser=True, is_staff=True)
    endpoint, receiver = make_endpoint(httpserver, [EventType.SUBSCRIBER_UNSUBSCRIBED])
    receiver.status, receiver.answer = 500, '{"error": "database is down"}'
    services.unsubscribe(SubscriberFactory.create(), services.Origin(via="test"))
    send_events(endpoint)
    receiver.status, receiver.answer = 200, "thanks"
    Delivery.objects.filter(kind=Delivery.Kind.EVENT).update(next_attempt_at="2000-01-01T00:00Z")
    send_events(endpoint)
    event_id = Delivery.objects.get(kind=Delivery.Kind.EVENT).event_id
    assert EventAttempt.objects.count() == 2

    page = browser_page
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "correct horse battery staple")
    page.click("input[type=submit]")
    page.goto(f"{live_server.url}/admin/channels/webhookendpoint/{endpoint.pk}/change/")

    rows = page.locator("#recent-attempts tbody tr")
    assert rows.count() == 2
    newest, oldest = rows.nth(0).inner_text(), rows.nth(1).inner_text()
    assert "sent" in newest and "200" in newest and "thanks" in newest
    assert "transient" in oldest and "500" in oldest and "database is down" in oldest
    assert f"evt_{event_id}" in oldest and "subscriber.unsubscribed" in oldest
    assert " ms" in oldest
    page.screenshot(path=str(output_dir / "endpoint-attempts.png"), full_page=True)

    page.click(f"[aria-label='Replay event evt_{event_id}'] >> nth=0")
    assert f"Event evt_{event_id} queued again." in page.inner_text(".messagelist")
    page.screenshot(path=str(output_dir / "endpoint-replayed.png"), full_page=True)
    assert len(receiver.requests) == 3  # the replay was sent (tasks run inline in tests)
