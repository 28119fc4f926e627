"""The public theme in a real browser: every public and subscriber page fits a 320 px screen,
turns dark with the reader's system, and axe-core finds no serious or critical violation on it,
in light and dark mode. Screenshots at 1280 and 375 px go to test-output/ (docs/subscribers.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from django.urls import reverse

from publishing import services as publishing_services
from publishing import translations
from publishing.models import Topic
from subscribers import services, tokens
from subscribers.consent import Origin
from subscribers.models import Subscriber
from tests.factories import PendingSubscriberFactory, TopicFactory
from tests.publishing.conftest import make_publication

pytestmark = [pytest.mark.browser]

#: axe-core as the axe-playwright-python package ships it (requirements-dev.txt): no network.
AXE_SCRIPT = files("axe_playwright_python").joinpath("axe.min.js")
#: What the issue asks of every page: no violation with these impacts.
BLOCKING_IMPACTS = {"serious", "critical"}
WIDTHS = (1280, 375)
NARROW = (320, 375)

BODY = """Spring is here, and so is a release with a long list of changes.

## What is new

- A much faster archive, with pages that stay readable on a phone.
- Dark mode that follows your system setting.
- A link that is very long and must wrap: https://example.com/a/very/long/path/that/keeps/on/going/and/going/without/any/space/in/it

```
$ make run   # a code block wider than a phone: it scrolls on its own, the page does not move
```

| Version | Date | Notes |
|---|---|---|
| 2.0 | spring | the release this page is about, with a note long enough to need room |

> Quoted from the team: "We read every reply."
"""


@dataclass
class PublicSite:
    """A site with something in it, and the address of each public and subscriber page."""

    pages: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def close_connections() -> Iterator[None]:
    """Close connections outside Playwright's event loop once the browser is gone."""
    yield
    connections.close_all()


@pytest.fixture
def site(transactional_db: None) -> PublicSite:
    releases = TopicFactory.create(
        name="Releases", slug="releases", description="What changed in each version."
    )
    events = TopicFactory.create(name="Events", slug="events")
    publication = make_publication(
        topics=[releases, events],
        slug="spring-release",
        title="Spring release: a faster archive, dark mode and more",
        body=BODY,
    )
    publishing_services.publish(publication, by=None)
    # A translated publication: its pages carry the links between the languages.
    translations.add_translation(
        publication,
        translations.TranslationInput(
            "fr", "Version de printemps : une archive plus rapide", BODY, "Les nouveautés."
        ),
        by=None,
    )
    older = make_publication(
        topics=[releases], slug="winter-notes", title="Winter notes", summary="A quiet season."
    )
    publishing_services.publish(older, by=None)

    reader = subscribed_reader([releases, events])
    pending = PendingSubscriberFactory.create(email="pending@example.com", name="")
    return PublicSite(
        pages={
            "home": "/",
            "archive": reverse("publishing:archive"),
            "publication": publication.get_absolute_url(),
            "publication-fr": publication.get_absolute_url() + "fr/",
            "topic": releases.get_absolute_url(),
            "signup": reverse("subscribers:signup"),
            "signup-thanks": reverse("subscribers:signup_thanks"),
            "confirm": reverse(
                "subscribers:confirm",
                args=[tokens.confirmation_token(pending.pk, pending.token_key)],
            ),
            "preferences": reverse(
                "subscribers:preferences", args=[services.manage_token_for(reader)]
            ),
            "unsubscribe": reverse(
                "subscribers:unsubscribe", args=[services.unsubscribe_token_for(reader)]
            ),
            "erase": reverse("subscribers:erase", args=[services.manage_token_for(reader)]),
            "link-error": reverse("subscribers:confirm", args=["not-a-real-token"]),
        }
    )


def subscribed_reader(topics: list[Topic]) -> Subscriber:
    """A confirmed subscriber made through the real services, so the consent log is real."""
    services.sign_up(
        email="camille.reader@example.com",
        name="Camille",
        topics=topics,
        locale="en",
        time_zone="Europe/Paris",
        origin=Origin(via="page", form_version="signup-2026-11", ip_address="192.0.2.0"),
    )
    subscriber = Subscriber.objects.get(email="camille.reader@example.com")
    services.confirm_subscription(
        tokens.confirmation_token(subscriber.pk, subscriber.token_key),
        Origin(via="page", form_version="confirm"),
    )
    subscriber.refresh_from_db()
    return subscriber


def overflow(page: Any) -> tuple[int, int]:
    """(document width, viewport width): the page overflows when the first is larger."""
    scroll_width, inner_width = page.evaluate(
        "[document.scrollingElement.scrollWidth, window.innerWidth]"
    )
    return int(scroll_width), int(inner_width)


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's violations on the page as loaded, run inside the page itself."""
    page.evaluate(AXE_SCRIPT.read_text(encoding="utf-8"))
    results = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    violations: list[dict[str, Any]] = results["violations"]
    return violations


def describe(violations: list[dict[str, Any]]) -> str:
    return json.dumps(
        [
            {
                "id": v["id"],
                "impact": v["impact"],
                "help": v["help"],
                "targets": [node["target"] for node in v["nodes"]][:5],
            }
            for v in violations
        ],
        indent=2,
    )


def test_every_page_fits_a_320_px_screen_and_is_screenshotted_at_1280_and_375(
    close_connections: None, live_server: Any, site: PublicSite, browser_page: Any, output_dir: Path
) -> None:
    page = browser_page
    too_wide: dict[str, tuple[int, int]] = {}
    for name, path in site.pages.items():
        for width in sorted({*WIDTHS, *NARROW}, reverse=True):
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(live_server.url + path)
            assert page.locator("link[rel=stylesheet]").count() >= 1
            if width in NARROW:
                scroll_width, inner_width = overflow(page)
                if scroll_width > inner_width:
                    too_wide[f"{name}@{width}"] = (scroll_width, inner_width)
            if width in WIDTHS:
                page.screenshot(path=str(output_dir / f"{name}-{width}.png"), full_page=True)
    # The sign-up page after a submission with no topic ticked: the error names the field.
    page.set_viewport_size({"width": 375, "height": 900})
    page.goto(live_server.url + site.pages["signup"])
    page.fill("input[name=email]", "no.topic@example.com")
    page.click("form.signup-form button[type=submit]")
    page.wait_for_selector(".error-summary")
    assert "Topics: Choose at least one topic." in page.inner_text(".error-summary")
    assert overflow(page)[0] <= overflow(page)[1]
    page.screenshot(path=str(output_dir / "signup-error-375.png"), full_page=True)

    assert too_wide == {}, f"pages wider than the screen (document, viewport): {too_wide}"


def test_dark_mode_follows_the_system_setting(
    close_connections: None, live_server: Any, site: PublicSite, browser_page: Any, output_dir: Path
) -> None:
    page = browser_page
    backgrounds: dict[str, dict[str, str]] = {}
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for name in ("home", "publication", "preferences"):
            page.goto(live_server.url + site.pages[name])
            colour = page.evaluate("getComputedStyle(document.body).backgroundColor")
            text = page.evaluate("getComputedStyle(document.body).color")
            backgrounds.setdefault(name, {})[scheme] = f"{colour} / {text}"
            if scheme == "dark":
                page.set_viewport_size({"width": 1280, "height": 900})
                page.screenshot(path=str(output_dir / f"{name}-dark-1280.png"), full_page=True)
    for name, by_scheme in backgrounds.items():
        assert by_scheme["light"] != by_scheme["dark"], name
        light_background = by_scheme["light"].split(" / ")[0]
        dark_background = by_scheme["dark"].split(" / ")[0]
        assert brightness(light_background) > 200 > 60 > brightness(dark_background), by_scheme


def brightness(css_colour: str) -> float:
    """The mean of the red, green and blue of an ``rgb(...)`` value (0 to 255)."""
    channels = css_colour.removeprefix("rgba(").removeprefix("rgb(").rstrip(")").split(",")
    return sum(float(channel) for channel in channels[:3]) / 3


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_core_finds_no_serious_or_critical_violation(
    close_connections: None, live_server: Any, site: PublicSite, browser_page: Any, scheme: str
) -> None:
    page = browser_page
    page.emulate_media(color_scheme=scheme)
    found: dict[str, list[dict[str, Any]]] = {}
    checked = 0
    for name, path in site.pages.items():
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(live_server.url + path)
            violations = axe_violations(page)
            checked += 1
            blocking = [v for v in violations if v["impact"] in BLOCKING_IMPACTS]
            if blocking:
                found[f"{name}@{width}"] = blocking
    assert checked == len(site.pages) * len(WIDTHS)
    assert found == {}, "\n".join(f"{page}: {describe(v)}" for page, v in found.items())
