"""The admin's Deliverability page: the doctor's findings for those who may view channels, in a
real browser (Playwright driving Debian's Chromium) with a screenshot, and refused to others."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from channels.models import Channel
from publishing.roles import ADMINISTRATOR, PUBLISHER
from tests.channels.dns_peer import Zone
from tests.channels.doctor_support import dns_peer, good_smtp, zone
from tests.factories import UserFactory

__all__ = ["dns_peer", "good_smtp", "zone"]  # fixtures

URL = "/admin/channels/channel/doctor/"


@pytest.mark.django_db
@pytest.mark.postgres
def test_a_publisher_may_not_see_the_page_and_an_administrator_may(
    good_smtp: Channel, client: Client
) -> None:
    publisher = UserFactory.create(username="paula")
    publisher.groups.add(Group.objects.get(name=PUBLISHER))
    client.force_login(publisher)
    assert client.get(URL).status_code == 403

    administrator = UserFactory.create(username="ada")
    administrator.groups.add(Group.objects.get(name=ADMINISTRATOR))
    client.force_login(administrator)
    response = client.get(URL)
    assert response.status_code == 200
    assert response.context["status"] == "ok"
    changelist = client.get("/admin/channels/channel/")
    assert URL.encode() in changelist.content


@pytest.mark.browser
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_deliverability_page_shows_each_finding_and_its_fix(
    browser_page: Any, live_server: Any, output_dir: Path, good_smtp: Channel, zone: Zone
) -> None:
    zone.set("_dmarc.example.com", "TXT", "v=DMARC1; p=none; pct=50; rua=mailto:d@example.com")
    zone.remove("example.com", "MX")
    UserFactory.create(username="root", is_superuser=True)
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "correct horse battery staple")
    page.click("input[type=submit]")

    page.goto(f"{live_server.url}/admin/channels/channel/")
    page.click("text=Deliverability")

    summary = page.locator("#doctor-summary").inner_text()
    assert "failure" in summary and "1 failure" in summary
    rows = page.locator("#doctor-findings tbody tr")
    failure = rows.filter(has_text="MX example.com 10")
    assert failure.locator("td.level").inner_text() == "failure"
    dmarc = rows.filter(has_text="removed by DMARCbis")
    assert dmarc.locator("td.level").inner_text() == "warning"
    assert 'TXT _dmarc.example.com "v=DMARC1; p=none; rua=mailto:d@example.com"' in (
        dmarc.locator("code.fix").inner_text()
    )
    assert rows.filter(has_text="SITE_URL is https://news.example.com").count() == 1
    page.screenshot(path=str(output_dir / "deliverability-1280.png"), full_page=True)
    page.set_viewport_size({"width": 375, "height": 800})
    page.screenshot(path=str(output_dir / "deliverability-375.png"), full_page=True)
