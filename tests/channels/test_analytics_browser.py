"""The analytics page in a real browser (Playwright driving Debian's Chromium): after a seeded
send whose opens and clicks were classified, the funnel, the links and the 72-hour chart."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from channels import engagement, tracking
from channels.models import Delivery, EngagementEvent
from tests.factories import DeliveryFactory, DispatchFactory, PublicationFactory, UserFactory

BROWSER_UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko)"
GMAIL = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"


def seed() -> int:
    publication = PublicationFactory.create(title="Spring release", status="published")
    dispatch = DispatchFactory.create(publication=publication)
    tracking.store_links(
        dispatch.version_id, "email", ["https://example.org/notes", "https://example.org/code"]
    )
    start = dispatch.created_at
    for number in range(40):
        delivery = DeliveryFactory.create(
            dispatch=dispatch, status=Delivery.Status.SENT, sent_at=start
        )
        hour = number % 30
        hits: list[tuple[str, int | None, str]] = [
            ("open", None, BROWSER_UA if number % 2 == 0 else GMAIL)
        ]
        if number % 3 == 0:
            hits.append(("click", number % 2, BROWSER_UA))
        if number % 10 == 0:
            hits.append(("click", 0, "python-requests/2.31.0"))
        for kind, link, user_agent in hits:
            EngagementEvent.objects.create(
                delivery=delivery,
                kind=kind,
                link_index=link,
                occurred_at=start + timedelta(hours=hour, minutes=5),
                method="GET",
                user_agent=user_agent,
            )
    engagement.classify_pending(now=start + timedelta(days=4))
    return int(publication.pk)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_analytics_page_shows_the_funnel_links_and_chart(
    browser_page: Any, live_server: Any, output_dir: Path
) -> None:
    publication_id = seed()
    UserFactory.create(username="root", is_superuser=True)
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "correct horse battery staple")
    page.click("input[type=submit]")

    page.goto(f"{live_server.url}/admin/channels/publicationanalytics/")
    row = page.locator("#result_list tbody tr", has_text="Spring release")
    assert row.locator("td.field-opened_by_humans").inner_text() == "27"
    row.locator("a", has_text="Spring release").click()

    funnel = page.locator("#funnel").inner_text()
    assert "Targeted\t40" in funnel
    # 20 browser opens, and 7 clicks on Gmail-proxied messages (images shown by the proxy).
    assert "Opened by people\t27\t68%" in funnel
    assert "Clicked by people\t14" in funnel
    apart = page.locator("#apart").inner_text()
    assert "Opened (proxy)\t20" in apart
    assert "Machine clicks\t4" in apart
    links = page.locator("#links").inner_text()
    assert "https://example.org/notes\temail, link 1\t7\t4" in links
    page.wait_for_selector("#hours-chart[data-ready=true]")
    drawn = page.evaluate(
        "() => { const c = document.getElementById('hours-chart');"
        " return [c.width, c.height, window.Chart.getChart(c).data.datasets.length]; }"
    )
    assert drawn[0] > 300 and drawn[1] > 100 and drawn[2] == 4
    page.screenshot(path=str(output_dir / "analytics-1280.png"), full_page=True)
    page.set_viewport_size({"width": 375, "height": 800})
    page.screenshot(path=str(output_dir / "analytics-375.png"), full_page=True)
    assert publication_id
