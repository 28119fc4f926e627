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
    page.click("input[value='Publish now']")
    page.wait_for_selector("text=Published.")
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

    assert page.locator("input[value='Publish now']").count() == 0
    assert page.locator("input[value='Send a test to myself']").count() == 1
    options = page.locator("select[name='action'] option").all_inner_texts()
    assert "Publish now" not in options
