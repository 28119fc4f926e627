"""The whole walk of issue 14 in one real browser (Playwright driving Debian's Chromium), as an
editor and then a reader would take it:

write with the live preview and an uploaded image -> preview every channel -> save -> the
publish confirmation with the exact audience -> watch the dispatch move without a reload ->
read the publication in the archive -> subscribe from its page.

The test is the worker (tasks wait in the queue; it runs the fan-out and one batch at a time
between two polls). Screenshots at 1280 and 375 px go to test-output/<test name>/.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django_q.conf import Conf
from PIL import Image

from channels.engine import batches, fanout
from channels.models import Channel, Delivery
from publishing.models import Dispatch, Publication, Topic
from subscribers.models import Subscriber, Subscription
from tests.factories import (
    ChannelFactory,
    PendingSubscriberFactory,
    SubscriberFactory,
    SubscriptionFactory,
    TopicFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
READERS = 8
BATCH = 4
PASSWORD = "correct horse battery staple"


def shoot(page: Any, output_dir: Path, name: str) -> None:
    for width in (1280, 375):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(output_dir / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def stripes(width: int, height: int) -> bytes:
    image = Image.new("RGB", (width, height), (30, 110, 200))
    for x in range(0, width, 160):
        image.paste((250, 200, 40), (x, 0, x + 80, height))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_from_a_blank_form_to_a_new_reader(
    browser_page: Any,
    live_server: Any,
    output_dir: Path,
    paula: User,
    topic: Topic,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    settings.SITE_URL = live_server.url
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EMAIL_OUTBOX_DIR = tmp_path / "outbox"
    monkeypatch.setattr(Conf, "SYNC", False)
    email = ChannelFactory.create(
        name="Newsletter", kind="email_file", is_default_email=True, batch_size=BATCH
    )
    assert isinstance(email, Channel)
    for _ in range(READERS):
        SubscriptionFactory.create(subscriber=SubscriberFactory.create(), topic=topic)
    # Not in the audience: unconfirmed, another topic, a weekly digest reader.
    SubscriptionFactory.create(subscriber=PendingSubscriberFactory.create(), topic=topic)
    SubscriptionFactory.create(subscriber=SubscriberFactory.create(), topic=TopicFactory.create())
    SubscriptionFactory.create(topic=topic, frequency=Subscription.Frequency.WEEKLY)

    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", paula.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")

    # 1. Write, with the live preview and an image.
    page.goto(f"{live_server.url}/admin/publishing/publication/add/")
    page.fill("#id_title", "Autumn release")
    page.fill("#id_summary", "What changed this autumn.")
    page.select_option("#id_topics_from", label="Releases")
    page.click("#id_topics_add")
    page.fill(
        "#id_body", "# What is new\n\nFaster **sending** and [the notes](https://example.org)."
    )
    preview = page.locator(".markdownx-preview")
    preview.locator("h1", has_text="What is new").wait_for()
    page.set_input_files(
        ".publication-editor-image-file",
        files=[{"name": "stripes.png", "mimeType": "image/png", "buffer": stripes(2000, 800)}],
    )
    page.fill(".publication-editor-image-alt", "Blue and yellow stripes")
    page.click("text=Upload and insert")
    page.wait_for_selector("text=Image inserted.")
    preview.locator("img[alt='Blue and yellow stripes']").wait_for()
    shoot(page, output_dir, "1-write")

    # 2. Every channel, before saving.
    with page.expect_popup() as popup:
        page.click("input[value='Preview every channel (not saved)']")
    channels = popup.value
    channels.wait_for_load_state()
    email_frame = channels.frame_locator("iframe[title='Email HTML']")
    assert email_frame.locator("h1").first.inner_text() == "Autumn release"
    email_frame.locator("img[alt='Blue and yellow stripes']").wait_for()
    assert channels.locator("[data-testid='slack-mockup'] .slack-header").inner_text() == (
        "Autumn release"
    )
    shoot(channels, output_dir, "2-preview-every-channel")
    channels.close()
    assert not Publication.objects.exists()  # nothing saved by previewing

    # 3. Save, then Publish: the confirmation counts the audience the fan-out will use.
    page.click("input[name=_continue]")
    page.wait_for_selector("#publish-link")
    publication = Publication.objects.get(title="Autumn release")
    assert publication.slug == "autumn-release"  # filled from the title as it was typed
    page.click("#publish-link")
    page.wait_for_selector("#confirm-publish")
    assert page.inner_text(f"#plan-total-{publication.pk}") == str(READERS)
    assert page.get_attribute("#confirm-publish", "value") == f"Publish to {READERS} recipients"
    shoot(page, output_dir, "3-publish-confirmation")

    # 4. Confirm and watch the dispatch move, with no reload.
    page.click("#confirm-publish")
    page.wait_for_selector("#dispatch-progress")
    dispatch = Dispatch.objects.get(publication=publication)
    page.evaluate("window.__stillTheSamePage = true")
    assert fanout.plan_dispatch(dispatch.pk) == READERS
    for sent in range(BATCH, READERS + 1, BATCH):
        batches.send_batch(email.pk, chain=False)
        fanout.finish_dispatches([dispatch.pk])
        page.wait_for_function(
            "document.getElementById('progress-counts').textContent"
            f".startsWith('{sent} of {READERS} deliveries')",
            timeout=10_000,
        )
        if sent == BATCH:
            shoot(page, output_dir, "4-dispatch-progress")
    assert page.evaluate("window.__stillTheSamePage") is True
    assert Delivery.objects.filter(dispatch=dispatch, status="sent").count() == READERS

    # 5. A reader finds it in the archive and reads it, image included.
    page.context.clear_cookies()
    page.goto(f"{live_server.url}/p/")
    page.click("text=Autumn release")
    page.wait_for_selector("article h1, main h1")
    assert "Faster sending" in page.inner_text("main")
    image = page.locator("main img[alt='Blue and yellow stripes']")
    image.wait_for()
    assert image.evaluate("img => img.complete && img.naturalWidth") == 1600
    shoot(page, output_dir, "5-read")

    # 6. ...and subscribes from its page: nothing ticked until they choose.
    form = page.locator("form.signup-form")
    assert form.locator("input[type=checkbox]:checked").count() == 0
    form.locator("input[type=email]").fill("new.reader@example.org")
    form.locator("label", has_text="Releases").locator("input").check()
    form.locator("button[type=submit]").click()
    page.wait_for_load_state()
    shoot(page, output_dir, "6-subscribed")
    reader = Subscriber.objects.get(email="new.reader@example.org")
    assert reader.status == Subscriber.Status.PENDING
    assert list(reader.subscriptions.values_list("topic__slug", flat=True)) == ["releases"]
