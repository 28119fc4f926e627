"""The reader's zone and digest hour in a real browser (decision 0081): the sign-up page sends the
browser's time zone, and the preference center changes zone and hour and says when digests go
and why, in English and French. Screenshots under test-output/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from django.utils import timezone

from subscribers import tokens
from subscribers.models import Subscriber, Subscription
from tests.factories import TopicFactory

pytestmark = [pytest.mark.browser]


@pytest.fixture
def close_connections() -> Iterator[None]:
    """Close database connections outside Playwright's event loop once the browser is gone."""
    yield
    connections.close_all()


def test_a_reader_in_kolkata_signs_up_and_moves_their_digest_to_7_in_new_york(
    close_connections: None,
    live_server: Any,
    transactional_db: None,
    browser_page: Any,
    output_dir: Path,
) -> None:
    TopicFactory.create(name="News", slug="news")
    # A browser whose clock is set to India's zone, as a reader there has.
    context = browser_page.context.browser.new_context(
        timezone_id="Asia/Kolkata", viewport={"width": 1280, "height": 900}
    )
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/subscribe/")
        page.fill("input[name=email]", "reader@example.com")
        page.check("text=News")
        page.click("button[type=submit]")
        page.wait_for_selector("text=Check your inbox")

        reader = Subscriber.objects.get()
        # From the page's script, not the default. Chromium (ICU) names the zone by its older
        # IANA name, a link to Asia/Kolkata with the same rules.
        assert reader.timezone in {"Asia/Kolkata", "Asia/Calcutta"}
        zone = reader.timezone
        Subscriber.objects.filter(pk=reader.pk).update(
            status=Subscriber.Status.ACTIVE, confirmed_at=timezone.now()
        )
        Subscription.objects.update(frequency=Subscription.Frequency.DAILY)
        here = f"{live_server.url}/preferences/{tokens.manage_token(reader.pk, reader.token_key)}/"

        page.goto(here)
        explanation = page.locator("#digest-time")
        assert explanation.inner_text().startswith(
            f"We send your digests at 08:00 ({zone}). Once you have read a few"
        )
        assert page.input_value("select[name=timezone]") == zone
        assert page.input_value("select[name=digest_hour]") == ""
        page.locator("select[name=digest_hour]").scroll_into_view_if_needed()
        page.screenshot(path=str(output_dir / "1-digest-time-default.png"), full_page=True)

        page.select_option("select[name=timezone]", "America/New_York")
        page.select_option("select[name=digest_hour]", label="07:00")
        page.click("button[value=save]")
        page.wait_for_selector("text=Your preferences are saved.")
        assert explanation.inner_text() == (
            "We send your digests at 07:00 (America/New_York), the hour you chose. "
            "Weekly digests go out every Monday."
        )
        assert page.input_value("select[name=digest_hour]") == "7"
        page.locator("#digest-time").scroll_into_view_if_needed()
        page.screenshot(path=str(output_dir / "2-digest-time-chosen.png"), full_page=True)
        reader.refresh_from_db()
        assert (reader.timezone, reader.digest_hour) == ("America/New_York", 7)

        # Back to "let us pick", with a learned hour, in French.
        Subscriber.objects.filter(pk=reader.pk).update(locale="fr", read_hour=6)
        page.goto(here)
        page.select_option("select[name=digest_hour]", value="")
        page.click("button[value=save]")
        page.wait_for_selector("text=Vos préférences sont enregistrées.")
        assert explanation.inner_text().startswith(
            "Nous envoyons vos résumés à 06:00 (America/New_York), l’heure à laquelle vous "  # noqa: RUF001
            "lisez d’habitude nos e-mails."  # noqa: RUF001
        )
        page.set_viewport_size({"width": 375, "height": 800})
        page.locator("#digest-time").scroll_into_view_if_needed()
        page.screenshot(path=str(output_dir / "3-digest-time-learned-fr-375.png"), full_page=True)
        reader.refresh_from_db()
        assert reader.digest_hour is None
    finally:
        context.close()
    connections.close_all()
