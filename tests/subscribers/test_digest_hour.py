# ruff: noqa: RUF001 (French typography uses the right single quotation mark)
"""The digest hour and time zone in the preference center and the API (decision 0081): chosen
or picked for the reader, the effective hour and why shown in English and French, bad input
refused naming the field and the limit with nothing stored changed, and the zone the sign-up
form sends kept."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from publishing.models import Topic
from subscribers import tokens
from subscribers.models import ConsentEvent, Subscriber, Subscription
from tests.api.conftest import ApiClient
from tests.api.conftest import api as api  # fixtures, used by name
from tests.api.conftest import make_key as make_key
from tests.factories import SubscriberFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def ana(news: Topic) -> Subscriber:
    subscriber = SubscriberFactory.create(
        email="ana@example.com", name="Ana", timezone="Europe/Paris"
    )
    SubscriptionFactory.create(subscriber=subscriber, topic=news, frequency="daily")
    return subscriber


def page(subscriber: Subscriber) -> str:
    return f"/preferences/{tokens.manage_token(subscriber.pk, subscriber.token_key)}/"


def choices(topics: list[Topic], **extra: str) -> dict[str, object]:
    return {
        "action": "save",
        "name": "Ana",
        "topics": [t.pk for t in topics],
        "frequency": "daily",
        "paused_until": "",
        "email_format": "html",
        "locale": "en",
        "timezone": "Europe/Paris",
        "digest_hour": "",
        **extra,
    }


def test_the_page_says_when_digests_go_and_why(client: Client, ana: Subscriber) -> None:
    shown = client.get(page(ana)).content.decode()
    assert "We send your digests at 08:00 (Europe/Paris). Once you have read a few" in shown
    assert "Weekly digests go out every Monday." in shown
    assert '<option value="" selected>Let us pick: when I usually read our emails' in shown

    Subscriber.objects.filter(pk=ana.pk).update(read_hour=7)
    shown = client.get(page(ana)).content.decode()
    assert "We send your digests at 07:00 (Europe/Paris), when you usually read our emails." in (
        shown
    )

    Subscriber.objects.filter(pk=ana.pk).update(digest_hour=18)
    shown = client.get(page(ana)).content.decode()
    assert "We send your digests at 18:00 (Europe/Paris), the hour you chose." in shown
    assert '<option value="18" selected>18:00</option>' in shown

    Subscriber.objects.filter(pk=ana.pk).update(digest_hour=None, tracking_opt_out=True)
    shown = client.get(page(ana)).content.decode()
    assert "We send your digests at 08:00 (Europe/Paris). You asked us not to count" in shown


def test_the_page_says_it_in_french(client: Client, ana: Subscriber) -> None:
    Subscriber.objects.filter(pk=ana.pk).update(locale="fr", read_hour=7)
    shown = client.get(page(ana)).content.decode()
    assert (
        "Nous envoyons vos résumés à 07:00 (Europe/Paris), l’heure à laquelle vous lisez "
        "d’habitude nos e-mails." in shown
    )
    assert "Les résumés hebdomadaires partent chaque lundi." in shown
    assert "Heure des résumés (quotidiens et hebdomadaires)" in shown
    assert "Laissez-nous choisir : quand je lis d’habitude vos e-mails" in shown

    Subscriber.objects.filter(pk=ana.pk).update(digest_hour=6)
    shown = client.get(page(ana)).content.decode()
    assert "Nous envoyons vos résumés à 06:00 (Europe/Paris), l’heure que vous avez choisie." in (
        shown
    )


def test_a_reader_chooses_an_hour_and_a_zone_then_lets_us_pick_again(
    client: Client, ana: Subscriber, news: Topic
) -> None:
    answer = client.post(page(ana), choices([news], digest_hour="7", timezone="Asia/Kolkata"))
    assert answer.status_code == 302
    ana.refresh_from_db()
    assert (ana.digest_hour, ana.timezone) == (7, "Asia/Kolkata")
    event = ConsentEvent.objects.get(action=ConsentEvent.Action.PREFERENCES)
    assert (event.detail["digest_hour"], event.detail["timezone"]) == (7, "Asia/Kolkata")
    shown = client.get(answer["Location"]).content.decode()
    assert "We send your digests at 07:00 (Asia/Kolkata), the hour you chose." in shown

    assert client.post(page(ana), choices([news], timezone="Asia/Kolkata")).status_code == 302
    ana.refresh_from_db()
    assert ana.digest_hour is None


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "digest_hour",
            "24",
            "Digest time (daily and weekly digests): Choose an hour from 00:00 to 23:00, "
            "or let us pick.",
        ),
        (
            "digest_hour",
            "7.5",
            "Digest time (daily and weekly digests): Choose an hour from 00:00 to 23:00, "
            "or let us pick.",
        ),
        ("timezone", "Mars/Olympus", "Time zone: Select a valid choice. Mars/Olympus is not"),
    ],
)
def test_a_bad_hour_or_zone_is_refused_naming_the_field_and_nothing_changes(
    client: Client,
    ana: Subscriber,
    news: Topic,
    events: Topic,
    field: str,
    value: str,
    message: str,
) -> None:
    Subscriber.objects.filter(pk=ana.pk).update(digest_hour=9)

    answer = client.post(page(ana), choices([news, events], **{field: value}))

    assert answer.status_code == 400
    assert message in answer.content.decode()
    ana.refresh_from_db()
    assert (ana.digest_hour, ana.timezone) == (9, "Europe/Paris")
    assert list(Subscription.objects.values_list("topic__slug", flat=True)) == ["news"]
    assert not ConsentEvent.objects.filter(action=ConsentEvent.Action.PREFERENCES).exists()


def test_what_we_store_lists_the_hours_and_the_download_has_them(
    client: Client, ana: Subscriber
) -> None:
    Subscriber.objects.filter(pk=ana.pk).update(read_hour=7)
    shown = client.get(page(ana)).content.decode()
    assert "<dt>Digest time</dt><dd>Not chosen: we pick it</dd>" in shown
    assert "<dt>Usual reading hour</dt><dd>07:00</dd>" in shown
    data = client.get(page(ana) + "data.json").json()
    assert (data["digest_hour"], data["read_hour"]) == (None, 7)


def test_the_sign_up_form_keeps_the_zone_the_browser_sent(client: Client, news: Topic) -> None:
    for email, zone, stored in (
        ("kolkata@example.com", "Asia/Kolkata", "Asia/Kolkata"),
        ("nowhere@example.com", "Mars/Olympus", "UTC"),
        ("nojs@example.com", "", "UTC"),
    ):
        answer = client.post("/subscribe/", {"email": email, "topics": [news.pk], "timezone": zone})
        assert answer.status_code == 302
        person = Subscriber.objects.get(email=email)
        assert (person.timezone, person.digest_hour) == (stored, None)


def test_the_api_sets_and_shows_the_digest_hour(api: ApiClient, ana: Subscriber) -> None:
    url = f"/api/v1/subscribers/{ana.pk}/"
    shown = api.get(url).json()
    assert (shown["digest_hour"], shown["digest_time"]) == (None, {"hour": 8, "reason": "default"})

    changed = api.patch(url, {"digest_hour": 6}).json()
    assert (changed["digest_hour"], changed["digest_time"]) == (6, {"hour": 6, "reason": "chosen"})
    ana.refresh_from_db()
    assert ana.digest_hour == 6

    # A PATCH without it keeps it; null lets us pick again.
    assert api.patch(url, {"email_format": "text"}).json()["digest_hour"] == 6
    Subscriber.objects.filter(pk=ana.pk).update(read_hour=21)
    picked = api.patch(url, {"digest_hour": None}).json()
    assert (picked["digest_hour"], picked["digest_time"]) == (
        None,
        {"hour": 21, "reason": "learned"},
    )


@pytest.mark.parametrize("value", [24, -1, "seven"])
def test_the_api_refuses_an_hour_out_of_range_naming_the_field_and_limit(
    api: ApiClient, ana: Subscriber, value: Any
) -> None:
    Subscriber.objects.filter(pk=ana.pk).update(digest_hour=9)

    answer = api.patch(f"/api/v1/subscribers/{ana.pk}/", {"digest_hour": value})

    assert answer.status_code == 400
    problem = answer.json()
    assert "digest_hour" in str(problem)
    if value != "seven":
        assert "Choose an hour from 0 to 23" in str(problem)
    ana.refresh_from_db()
    assert ana.digest_hour == 9
