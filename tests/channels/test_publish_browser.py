"""Publishing and watching in a real browser (Playwright driving Debian's Chromium).

A Publisher opens "Publish…", reads the exact audience, confirms, lands on the dispatch page,
and watches it move while the engine sends batch after batch, with no reload: the page polls.
The engine runs here, in the test, one batch at a time between two polls, through the same
functions a worker calls (fan-out, send_batch), so each step is a number the page must show.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from django.contrib.auth.models import Group, User
from django_q.conf import Conf

from channels.engine import batches, fanout
from channels.models import Channel, Delivery
from publishing import services
from publishing.models import Dispatch, Publication, Topic
from publishing.roles import PUBLISHER, assign_role_permissions
from subscribers.models import Subscription
from tests.factories import (
    ChannelFactory,
    PendingSubscriberFactory,
    SubscriberFactory,
    SubscriptionFactory,
    TopicFactory,
    UserFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct horse battery staple"
READERS = 12
BATCH = 4
WIDTHS = (1280, 375)


def log_in(page: Any, live_server: Any) -> User:
    assign_role_permissions()
    user = cast(User, UserFactory.create(username="paula", first_name="Paula"))
    user.groups.add(Group.objects.get(name=PUBLISHER))
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "paula")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")
    return user


def shoot(page: Any, output_dir: Path, name: str) -> None:
    """The page at desktop and phone widths, then back to desktop."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(output_dir / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})


def audience(topic: Topic) -> None:
    for _ in range(READERS):
        SubscriptionFactory(subscriber=SubscriberFactory(), topic=topic)
    # Not counted, not sent: unconfirmed, another topic, a digest reader.
    SubscriptionFactory(subscriber=PendingSubscriberFactory(), topic=topic)
    SubscriptionFactory(subscriber=SubscriberFactory(), topic=TopicFactory())
    SubscriptionFactory(topic=topic, frequency=Subscription.Frequency.WEEKLY)


def test_a_publisher_confirms_the_exact_audience_and_watches_the_sending_move(
    browser_page: Any,
    live_server: Any,
    output_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
    tmp_path: Path,
) -> None:
    # Tasks wait in the queue: the test is the worker, one batch at a time.
    monkeypatch.setattr(Conf, "SYNC", False)
    settings.EMAIL_OUTBOX_DIR = tmp_path
    topic = cast(Topic, TopicFactory(name="Releases", slug="releases"))
    email = cast(
        Channel,
        ChannelFactory(
            name="Newsletter", kind="email_file", is_default_email=True, batch_size=BATCH
        ),
    )
    audience(topic)
    page = browser_page
    paula = log_in(page, live_server)
    publication = services.create_publication(
        services.PublicationInput(
            title="Spring release",
            slug="spring-release",
            summary="What is new.",
            body="# Hello\n\nNews.",
            topics=[topic],
        ),
        by=paula,
    )

    page.goto(f"{live_server.url}/admin/publishing/publication/{publication.pk}/change/")
    page.click("#publish-link")
    page.wait_for_selector("#confirm-publish")
    assert page.inner_text(f"#plan-total-{publication.pk}") == str(READERS)
    assert page.inner_text("td[data-channel='Newsletter']") == str(READERS)
    assert page.inner_text("#confirm-subject") == "Spring release"
    assert page.get_attribute("#confirm-publish", "value") == f"Publish to {READERS} recipients"
    shoot(page, output_dir, "publish-confirmation")

    page.click("#confirm-publish")
    page.wait_for_selector("#dispatch-progress")
    dispatch = Dispatch.objects.get(publication=publication)
    assert Publication.objects.get(pk=publication.pk).status == Publication.Status.PUBLISHED
    dispatch_url = page.url
    assert dispatch_url.endswith(f"/admin/publishing/dispatch/{dispatch.pk}/change/")
    assert "Published: 12 recipient(s)." in page.inner_text(".messagelist")
    assert page.inner_text("#progress-counts") == "0 of 0 deliveries"
    # A reload or a navigation would drop this: it proves the numbers change in place.
    page.evaluate("window.__stillTheSamePage = true")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    assert fanout.plan_dispatch(dispatch.pk) == READERS
    page.wait_for_function(
        "document.getElementById('progress-counts').textContent === '0 of 12 deliveries'"
    )
    seen = []
    for sent in range(BATCH, READERS + 1, BATCH):
        report = batches.send_batch(email.pk, chain=False)
        assert report.claimed == BATCH
        fanout.finish_dispatches([dispatch.pk])
        expected = f"{sent} of {READERS} deliveries"
        page.wait_for_function(
            f"document.getElementById('progress-counts').textContent.startsWith('{expected}')",
            timeout=10_000,
        )
        seen.append(page.inner_text("#progress-percent"))
        if sent == 2 * BATCH:
            page.wait_for_function(
                "document.getElementById('progress-rate').textContent.includes('messages/s')"
            )
            assert "Time left: about" in page.inner_text("#progress-eta")
            shoot(page, output_dir, "dispatch-progress-sending")

    page.wait_for_function(
        "document.getElementById('progress-rate').textContent === 'Finished.'", timeout=10_000
    )
    assert seen == ["33.3%", "66.7%", "100.0%"]
    assert page.inner_text("#progress-status") == "Done"
    assert page.inner_text(".field-status .readonly") == "Done"  # the page's field follows too
    assert page.inner_text(".field-finished_at .readonly") != "-"
    assert page.inner_text(".field-version_number .readonly") == "2"
    assert page.inner_text("#progress-rows td:nth-child(5)") == str(READERS)  # the Sent column
    assert page.evaluate("window.__stillTheSamePage") is True
    assert navigations == []
    assert page.url == dispatch_url
    assert Delivery.objects.filter(dispatch=dispatch, status="sent").count() == READERS
    assert len(list(tmp_path.glob("*.eml"))) == READERS
    shoot(page, output_dir, "dispatch-progress-done")

    # The publication's page links its dispatch and shows the latest one's progress.
    page.goto(f"{live_server.url}/admin/publishing/publication/{publication.pk}/change/")
    assert page.inner_text("#dispatches-link") == "Dispatches (1)"
    assert page.inner_text("#progress-counts") == f"{READERS} of {READERS} deliveries"
    assert page.inner_text("#progress-dispatch-link") == (
        "First publication of “Spring release”, version 2"
    )
    page.locator("#dispatch-progress").scroll_into_view_if_needed()
    shoot(page, output_dir, "publication-latest-dispatch")
