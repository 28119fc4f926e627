"""The Dispatch admin's progress view and re-queueing, as paula (Publisher), alice (Editor)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from django.contrib.auth.models import Group, User
from django.db.models import Count
from django.test import Client
from django_q.conf import Conf

from channels.models import Channel, Delivery
from publishing.models import Dispatch
from publishing.roles import EDITOR, PUBLISHER, assign_role_permissions
from tests.factories import ChannelFactory, DeliveryFactory, DispatchFactory, UserFactory

PASSWORD = "correct horse battery staple"


def member(username: str, role: str) -> User:
    assign_role_permissions()
    user = cast(User, UserFactory.create(username=username, is_staff=True))
    user.groups.add(Group.objects.get(name=role))
    return User.objects.get(pk=user.pk)


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def dispatch_with_outcomes() -> tuple[Dispatch, Channel, Channel]:
    dispatch = cast(Dispatch, DispatchFactory(status="sending"))
    mail = cast(Channel, ChannelFactory(name="Newsletter mail"))
    slack = cast(Channel, ChannelFactory(name="Team Slack", kind="slack"))
    for status, count in {"sent": 5, "queued": 2, "failed": 2, "dead": 1}.items():
        for _ in range(count):
            DeliveryFactory(dispatch=dispatch, channel=mail, status=status)
    DeliveryFactory(dispatch=dispatch, channel=slack, status="sent", kind="broadcast")
    return dispatch, mail, slack


@pytest.mark.django_db
def test_a_publisher_sees_the_progress_of_a_dispatch_by_status_and_channel() -> None:
    dispatch, _, _ = dispatch_with_outcomes()
    paula = client_for(member("paula", PUBLISHER))

    response = paula.get(f"/admin/publishing/dispatch/{dispatch.pk}/change/")

    page = response.content.decode()
    assert response.status_code == 200
    assert '<strong id="progress-percent">81.8%</strong>' in page  # 9 of 11 settled
    assert "9 of 11 deliveries" in page
    assert "<td>Newsletter mail</td>" in page and "<td>Team Slack</td>" in page
    assert 'id="requeue-failed" value="Re-queue 2 failed"' in page
    assert 'id="requeue-dead" value="Re-queue 1 dead"' in page


@pytest.mark.django_db
def test_a_publisher_requeues_the_failed_deliveries_of_a_dispatch(
    monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    monkeypatch.setattr(Conf, "SYNC", False)
    dispatch, mail, _ = dispatch_with_outcomes()
    other = DeliveryFactory(channel=mail, status="failed")  # another dispatch: untouched
    paula = client_for(member("paula", PUBLISHER))

    with django_capture_on_commit_callbacks(execute=True):
        response = paula.post(
            f"/admin/publishing/dispatch/{dispatch.pk}/requeue/",
            {"statuses": "failed"},
            follow=True,
        )

    assert response.status_code == 200
    assert "2 deliveries re-queued." in response.content.decode()
    counts = dict(
        Delivery.objects.filter(dispatch=dispatch, channel=mail)
        .values_list("status")
        .annotate(n=Count("id"))
    )
    assert counts == {"sent": 5, "queued": 4, "dead": 1}
    assert Delivery.objects.get(pk=other.pk).status == "failed"


@pytest.mark.django_db
def test_an_editor_sees_the_progress_but_may_not_requeue() -> None:
    dispatch, _, _ = dispatch_with_outcomes()
    alice = client_for(member("alice", EDITOR))

    page = alice.get(f"/admin/publishing/dispatch/{dispatch.pk}/change/").content.decode()
    refused = alice.post(f"/admin/publishing/dispatch/{dispatch.pk}/requeue/", {"statuses": "both"})

    assert "Delivery progress" in page
    assert "requeue-failed" not in page
    assert refused.status_code == 403
    assert Delivery.objects.filter(status__in=["failed", "dead"]).count() == 3


@pytest.mark.django_db
def test_requeueing_names_a_bad_choice_and_refuses_get() -> None:
    dispatch, _, _ = dispatch_with_outcomes()
    paula = client_for(member("paula", PUBLISHER))
    url = f"/admin/publishing/dispatch/{dispatch.pk}/requeue/"

    bad = paula.post(url, {"statuses": "everything"}, follow=True)

    page = bad.content.decode()
    assert "Statuses must be one of failed, dead, both, uncertain." in page
    assert paula.get(url).status_code == 405
    assert Delivery.objects.filter(status__in=["failed", "dead"]).count() == 3


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_dispatch_progress_page_renders_in_a_browser_and_requeues_dead_deliveries(
    browser_page: Any, live_server: Any, output_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Conf, "SYNC", False)
    dispatch, _, _ = dispatch_with_outcomes()
    paula = member("paula", PUBLISHER)
    paula.set_password(PASSWORD)
    paula.save()
    page = browser_page
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "paula")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")

    page.goto(f"{live_server.url}/admin/publishing/dispatch/{dispatch.pk}/change/")
    assert page.inner_text("#progress-percent") == "81.8%"
    rows = page.locator("#progress-table tbody tr").all_inner_texts()
    assert [r.split("\t")[0] for r in rows] == ["Newsletter mail", "Team Slack"]
    assert page.get_attribute("[role=progressbar]", "aria-valuenow") == "81.8"
    page.screenshot(path=str(output_dir / "dispatch-progress.png"), full_page=True)

    page.click("#requeue-dead")
    page.wait_for_selector("text=1 deliveries re-queued.")
    assert page.inner_text("#progress-percent") == "72.7%"
    assert not page.locator("#requeue-dead").count()
    page.screenshot(path=str(output_dir / "dispatch-progress-requeued.png"), full_page=True)
    assert Delivery.objects.filter(status="dead").count() == 0


@pytest.mark.django_db
def test_the_progress_json_answers_whoever_may_view_the_page_and_nobody_else() -> None:
    dispatch, _, _ = dispatch_with_outcomes()
    url = f"/admin/publishing/dispatch/{dispatch.pk}/progress.json"
    alice = client_for(member("alice", EDITOR))
    stranger = client_for(cast(User, UserFactory.create(username="sam", is_staff=True)))

    response = alice.get(url)

    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]
    data = response.json()
    assert data["total"] == 11 and data["settled"] == 9 and data["sent"] == 6
    assert data["percent"] == 81.8 and data["done"] is False
    assert data["statuses"][:5] == ["queued", "held", "sending", "sent", "failed"]
    assert data["channels"] == [
        {
            "name": "Newsletter mail",
            "counts": {
                "queued": 2,
                "held": 0,
                "sending": 0,
                "sent": 5,
                "failed": 2,
                "dead": 1,
                "cancelled": 0,
                "uncertain": 0,
            },
            "total": 10,
        },
        {
            "name": "Team Slack",
            "counts": {
                "queued": 0,
                "held": 0,
                "sending": 0,
                "sent": 1,
                "failed": 0,
                "dead": 0,
                "cancelled": 0,
                "uncertain": 0,
            },
            "total": 1,
        },
    ]
    assert data["fields"]["status"] == "Sending"
    assert stranger.get(url).status_code == 403
    assert Client().get(url).status_code == 302  # to the login page
    assert alice.get("/admin/publishing/dispatch/999999/progress.json").status_code == 404
