"""A person's whole path in a real browser: sign up, confirm from the email, choose, leave."""

from __future__ import annotations

import email
import email.policy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.db import connections

from channels.configuration import save_channel
from channels.models import Channel
from subscribers.models import Subscriber, Subscription
from tests.factories import TopicFactory
from tests.subscribers.conftest import LINK

pytestmark = [pytest.mark.browser]


@pytest.fixture
def close_connections() -> Iterator[None]:
    """Close database connections outside Playwright's event loop once the browser is gone.

    Django keeps connections per asyncio context; the ORM calls made while Playwright's loop
    runs use another context's connection, which would otherwise outlive the test database.
    """
    yield
    connections.close_all()


def confirmation_link_in_outbox(outbox: Path) -> str:
    """The confirm link of the one .eml file the engine wrote into ``outbox``."""
    deadline = time.monotonic() + 10
    while not list(outbox.glob("*.eml")) and time.monotonic() < deadline:
        time.sleep(0.1)
    (eml,) = outbox.glob("*.eml")
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    text = message.get_body(preferencelist=("plain",))
    assert text is not None
    for match in LINK.finditer(str(text.get_content())):
        if match.group(1) == "confirm":
            return urlsplit(match.group(0)).path
    raise AssertionError(f"no confirm link in {eml}")


def test_a_person_signs_up_confirms_chooses_and_unsubscribes_in_a_browser(
    close_connections: None,
    live_server: Any,
    transactional_db: None,
    settings: Any,
    tmp_path: Path,
    browser_page: Any,
    output_dir: Path,
) -> None:
    # browser_page comes last so that it closes first: Chromium keeps HTTP connections alive,
    # and each holds a server thread with its own database connection until it closes.
    TopicFactory.create(name="News", slug="news")
    TopicFactory.create(name="Events", slug="events")
    # The real mail path: Django's mail API -> the delivery ledger -> the engine -> .eml files.
    settings.EMAIL_BACKEND = "channels.mail.LedgerEmailBackend"
    outbox = tmp_path / "outbox"
    save_channel(
        Channel(name="Outbox", kind="email_file", is_default_email=True), {"directory": str(outbox)}
    )
    page = browser_page

    page.goto(f"{live_server.url}/subscribe/")
    page.screenshot(path=str(output_dir / "1-sign-up.png"), full_page=True)
    page.fill("input[name=email]", "Browser.Person@example.com")
    page.fill("input[name=name]", "Browser Person")
    # Nothing is ticked in advance (decision 0075): the person ticks what they want.
    assert not page.is_checked("text=News") and not page.is_checked("text=Events")
    page.check("text=News")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Check your inbox")
    page.screenshot(path=str(output_dir / "2-check-your-inbox.png"), full_page=True)

    subscriber = Subscriber.objects.get()
    assert subscriber.status == Subscriber.Status.PENDING
    assert subscriber.timezone != ""  # set by the page's script, UTC at worst
    confirm_path = confirmation_link_in_outbox(outbox)

    page.goto(live_server.url + confirm_path)
    page.screenshot(path=str(output_dir / "3-confirm.png"), full_page=True)
    assert Subscriber.objects.get().status == Subscriber.Status.PENDING  # a GET changes nothing
    page.click("text=Confirm my subscription")
    page.wait_for_selector("text=You are subscribed")
    page.screenshot(path=str(output_dir / "4-confirmed.png"), full_page=True)
    assert Subscriber.objects.get().status == Subscriber.Status.ACTIVE

    page.click("text=Manage your preferences")
    page.wait_for_selector("text=Your preferences")
    page.check("text=Events")
    page.check("text=Weekly digest")
    page.click("button[value=save]")
    page.wait_for_selector("text=Your preferences are saved.")
    page.screenshot(path=str(output_dir / "5-preferences-saved.png"), full_page=True)
    chosen = sorted(Subscription.objects.values_list("topic__slug", "frequency"))
    assert chosen == [("events", "weekly"), ("news", "weekly")]

    page.click("text=Unsubscribe from everything")
    page.wait_for_selector("text=You are unsubscribed: we will not email you any more.")
    page.screenshot(path=str(output_dir / "6-unsubscribed.png"), full_page=True)
    assert Subscriber.objects.get().status == Subscriber.Status.UNSUBSCRIBED
    connections.close_all()
