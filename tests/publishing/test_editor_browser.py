"""Writing in a real browser (Playwright driving Debian's Chromium): the live preview follows the
text, an uploaded image appears in it scaled down, and every channel is previewed before saving.
Screenshots at 1280 and 375 px go to test-output/<test name>/."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.test import Client
from PIL import Image

from publishing.models import Publication

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DESKTOP = {"width": 1280, "height": 900}
MOBILE = {"width": 375, "height": 812}


@pytest.fixture(autouse=True)
def _site_is_the_live_server(settings: Any, live_server: Any, tmp_path: Path) -> None:
    # Image URLs in renderings are absolute on SITE_URL: point it at the server under test.
    settings.SITE_URL = live_server.url
    settings.MEDIA_ROOT = tmp_path / "media"


def _log_in(page: Any, live_server: Any, user: User) -> None:
    client = Client()
    client.force_login(user)
    cookie = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies(
        [{"name": django_settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}]
    )


def _png(width: int, height: int) -> bytes:
    image = Image.new("RGB", (width, height), (30, 110, 200))
    for x in range(0, width, 200):  # stripes, to see the scaling in a screenshot
        image.paste((250, 200, 40), (x, 0, x + 100, height))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _natural_width(locator: Any) -> int:
    locator.wait_for()
    locator.evaluate("img => img.complete || new Promise(r => img.addEventListener('load', r))")
    width: int = locator.evaluate("img => img.naturalWidth")
    return width


def test_write_with_a_live_preview_upload_an_image_and_preview_every_channel_unsaved(
    browser_page: Any, live_server: Any, alice: User, draft: Publication, output_dir: Path
) -> None:
    page = browser_page
    page.set_viewport_size(DESKTOP)
    _log_in(page, live_server, alice)
    versions = draft.history.count()

    page.goto(f"{live_server.url}/admin/publishing/publication/{draft.pk}/change/")
    preview = page.locator(".markdownx-preview")
    preview.locator("h1", has_text="Hello").wait_for()  # the saved body, rendered on load
    page.fill("#id_title", "Autumn release")
    page.fill("#id_body", "# Live heading\n\nSome **bold** text and a [link](https://example.org).")
    preview.locator("h1", has_text="Live heading").wait_for()
    assert preview.locator("strong").inner_text() == "bold"
    assert preview.locator("a").get_attribute("rel") == "noopener noreferrer"  # nh3's rendering

    # An image: refused without alt text, then uploaded with it, scaled down to 1600 px.
    page.set_input_files(
        ".publication-editor-image-file",
        files=[{"name": "wide.png", "mimeType": "image/png", "buffer": _png(2400, 1000)}],
    )
    page.click("text=Upload and insert")
    status = page.locator(".publication-editor-image-status")
    assert "alt text is required" in status.inner_text()
    page.fill(".publication-editor-image-alt", "Blue and yellow stripes")
    page.click("text=Upload and insert")
    page.wait_for_selector("text=Image inserted.")
    body = page.input_value("#id_body")
    assert "![Blue and yellow stripes](/media/images/" in body
    image = preview.locator("img[alt='Blue and yellow stripes']")
    assert _natural_width(image) == 1600
    page.screenshot(path=str(output_dir / "editor-1280.png"), full_page=True)

    # Every channel, from the form as it stands, in a new tab; nothing saved.
    with page.expect_popup() as popup_info:
        page.click("input[value='Preview every channel (not saved)']")
    channels = popup_info.value
    channels.set_viewport_size(DESKTOP)
    channels.wait_for_load_state()
    frame = channels.frame_locator("iframe[title='Email HTML']")
    assert frame.locator("h1").first.inner_text() == "Autumn release"
    assert "Hello Alice," in frame.locator(".greeting").inner_text()
    assert _natural_width(frame.locator("img[alt='Blue and yellow stripes']")) == 1600
    slack = channels.locator("[data-testid='slack-mockup']")
    assert slack.locator(".slack-header").inner_text() == "Autumn release"
    assert slack.locator("strong", has_text="bold").count() == 1
    discord = channels.locator("[data-testid='discord-mockup']")
    assert discord.locator(".discord-title").inner_text() == "Autumn release"
    assert (
        discord.locator(".discord-embed").evaluate("e => getComputedStyle(e).borderLeftColor")
        == "rgb(46, 125, 50)"
    )
    assert discord.locator("strong", has_text="bold").count() == 1
    webhook = channels.locator("#webhook-json")
    assert '"title": "Autumn release"' in webhook.inner_text()
    assert webhook.locator(".json-key").count() > 5
    channels.screenshot(path=str(output_dir / "channels-1280.png"), full_page=True)

    channels.click("label[for='email-width-mobile']")
    iframe = channels.locator("iframe[title='Email HTML']")
    channels.wait_for_function(
        "() => document.querySelector(\"iframe[title='Email HTML']\").offsetWidth === 375"
    )
    iframe.screenshot(path=str(output_dir / "email-375-in-preview.png"))
    channels.set_viewport_size(MOBILE)
    channels.screenshot(path=str(output_dir / "channels-375.png"), full_page=True)
    page.set_viewport_size(MOBILE)
    page.screenshot(path=str(output_dir / "editor-375.png"), full_page=True)

    draft.refresh_from_db()
    assert draft.title == "Spring release"
    assert draft.history.count() == versions


def test_an_image_dropped_into_the_text_is_asked_for_its_alt_text(
    browser_page: Any, live_server: Any, alice: User, draft: Publication, output_dir: Path
) -> None:
    page = browser_page
    page.set_viewport_size(DESKTOP)
    _log_in(page, live_server, alice)
    page.goto(f"{live_server.url}/admin/publishing/publication/{draft.pk}/change/")
    page.locator(".markdownx-preview h1").wait_for()
    page.once("dialog", lambda dialog: dialog.accept("A dropped square"))

    # A real drop event carrying a PNG file, as the browser makes it for a file dragged in.
    page.evaluate(
        """b64 => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "square.png", {type: "image/png"}));
            const editor = document.querySelector("#id_body");
            editor.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
        }""",
        base64.b64encode(_png(300, 300)).decode(),
    )

    image = page.locator(".markdownx-preview img[alt='A dropped square']")
    assert _natural_width(image) == 300
    body = page.input_value("#id_body")
    assert body.startswith("![A dropped square](/media/images/")
    assert ".png)\n\n# Hello" in body  # on its own paragraph: the heading stays one
    page.locator(".markdownx-preview h1", has_text="Hello").wait_for()
    page.screenshot(path=str(output_dir / "editor-dropped-image.png"), full_page=True)
