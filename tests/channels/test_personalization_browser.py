"""A digest email with its reasons, opened in a real browser, and its "more like this" link
followed to the confirmation page and confirmed (decision 0080). Screenshots under
test-output/."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from django.utils import timezone

from channels import digests
from channels.models import Channel
from publishing import ranking
from publishing.models import Topic
from subscribers.models import ReaderFeedback
from tests.channels.conftest import SmtpSink, body
from tests.channels.digests_support import DAILY, messages_to, run, subscriber
from tests.channels.test_personalized_digests import story

pytestmark = [pytest.mark.browser]


@pytest.fixture
def close_connections() -> Iterator[None]:
    """Close database connections outside Playwright's event loop once the browser is gone."""
    yield
    connections.close_all()


def test_a_reader_sees_why_each_item_is_there_and_asks_for_more_like_one(
    close_connections: None,
    live_server: Any,
    transactional_db: None,
    settings: Any,
    smtp_channel: Channel,
    sink: SmtpSink,
    topic: Topic,
    browser_page: Any,
    output_dir: Path,
) -> None:
    settings.SITE_URL = live_server.url
    ranking.clear_idf_cache()
    now = timezone.now()
    end = digests.period_end(DAILY, now)
    reader = subscriber(topic, DAILY, "reader")
    liked = story(
        topic,
        end - dt.timedelta(days=3),
        "March database release",
        "The migration tool checks foreign keys and rebuilds indexes online.",
    )
    ReaderFeedback.objects.create(subscriber=reader, publication=liked, choice="more")
    story(
        topic,
        end - dt.timedelta(hours=6),
        "April database release",
        "Foreign keys and indexes: the migration tool now rebuilds indexes faster.",
    )
    party = story(topic, end - dt.timedelta(hours=1), "Office party", "Cake and music on Friday.")
    run(now)
    (message,) = messages_to(sink, reader.email)
    html_file = output_dir / "digest.html"
    html_file.write_text(body(message.as_bytes(), "html"))
    page = browser_page

    page.set_viewport_size({"width": 700, "height": 900})
    page.goto(html_file.as_uri())
    page.screenshot(path=str(output_dir / "1-digest-with-reasons.png"), full_page=True)
    reasons = page.locator(".reason").all_inner_texts()
    titles = page.locator("h2").all_inner_texts()
    assert titles == ["April database release", "Office party"]
    assert reasons == [
        "Like “March database release”, which you liked",
        "Because you follow Engine news",
    ]
    # "More like this" under the second item: the office party.
    page.locator(".feedback a", has_text="More like this").nth(1).click()
    page.wait_for_url("**/feedback/**")
    page.screenshot(path=str(output_dir / "2-feedback-confirmation.png"), full_page=True)
    assert page.locator("h1").inner_text() == "More like this"
    assert "You would like more publications like “Office party”." in page.content()
    page.get_by_role("button", name="Yes, more like this").click()
    page.wait_for_selector("text=Thank you")
    page.screenshot(path=str(output_dir / "3-feedback-recorded.png"), full_page=True)
    assert "Noted: more publications like “Office party”." in page.content()

    rows = set(ReaderFeedback.objects.values_list("publication_id", "choice"))
    connections.close_all()  # this query ran in Playwright's context: its connection goes now
    assert rows == {(liked.pk, "more"), (party.pk, "more")}
