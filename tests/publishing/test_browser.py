"""The admin and the archive in a real browser (Playwright driving Debian's Chromium)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from publishing.models import Dispatch, Publication

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _log_in(page: Any, live_server: Any, user: User) -> None:
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}]
    )


def test_a_publisher_previews_and_publishes_and_readers_see_the_page(
    browser_page: Any, live_server: Any, paula: User, draft: Publication, output_dir: Path
) -> None:
    page = browser_page
    _log_in(page, live_server, paula)

    page.goto(f"{live_server.url}/admin/publishing/publication/{draft.pk}/change/")
    page.click("text=Preview the saved version")
    frame = page.frame_locator("iframe[title='Email HTML']")
    assert frame.locator("h1").first.inner_text() == "Spring release"
    assert "Hello Paula," in frame.locator(".greeting").inner_text()
    page.screenshot(path=str(output_dir / "preview.png"), full_page=True)
    page.go_back()
    page.click("#publish-link")
    page.wait_for_selector("#confirm-publish")
    assert Dispatch.objects.count() == 0  # the confirmation page sends nothing
    page.click("#confirm-publish")
    page.wait_for_selector("text=Published: 0 recipient(s).")
    page.screenshot(path=str(output_dir / "published.png"), full_page=True)
    page.goto(f"{live_server.url}/p/{draft.slug}/")
    heading = page.locator("article h1").first.inner_text()
    page.screenshot(path=str(output_dir / "public-page.png"), full_page=True)

    assert heading == "Spring release"
    assert Publication.objects.get(pk=draft.pk).status == Publication.Status.PUBLISHED
    assert Dispatch.objects.filter(publication=draft).count() == 1


def test_an_editor_sees_no_publish_button(
    browser_page: Any, live_server: Any, alice: User, draft: Publication, output_dir: Path
) -> None:
    page = browser_page
    _log_in(page, live_server, alice)

    page.goto(f"{live_server.url}/admin/publishing/publication/{draft.pk}/change/")
    page.screenshot(path=str(output_dir / "editor.png"), full_page=True)

    assert page.locator("#publish-link").count() == 0
    assert page.locator("input[value='Send a test to myself']").count() == 1
    options = page.locator("select[name='action'] option").all_inner_texts()
    assert "Publish…" not in options


def test_the_schedule_page_speaks_the_browsers_time_zone(
    browser_page: Any, live_server: Any, paula: User, draft: Publication, output_dir: Path
) -> None:
    context = browser_page.context.browser.new_context(timezone_id="America/New_York")
    page = context.new_page()
    _log_in(page, live_server, paula)

    # The first visit learns the zone and reloads once; the page then names it.
    page.goto(f"{live_server.url}/admin/publishing/publication/{draft.pk}/schedule/")
    page.wait_for_function(
        "document.getElementById('schedule-zone').textContent === 'America/New_York'"
    )
    assert page.inner_text("#content-main .form-row label") == "Publish at (America/New_York):"
    page.fill("#id_publish_at_0", "2030-07-04")
    page.fill("#id_publish_at_1", "09:30:00")
    for width in (1280, 375):
        page.set_viewport_size({"width": width, "height": 800})
        page.screenshot(path=str(output_dir / f"schedule-{width}.png"), full_page=True)
    page.click("input[value='Schedule']")
    page.wait_for_selector("text=Scheduled.")

    draft.refresh_from_db()
    assert draft.publish_at is not None
    assert draft.publish_at.isoformat() == "2030-07-04T13:30:00+00:00"  # 09:30 EDT
    assert "for 2030-07-04 09:30 (America/New_York)" in page.inner_text(".publication-actions")
    context.close()
