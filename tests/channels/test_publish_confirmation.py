"""The publish confirmation page: its counts are the deliveries the fan-out creates.

Subscribers and channels that must not receive the publication are built with the factories
next to those that must, then a Publisher opens the page, confirms, and the fan-out runs: the
number per channel and the total on the page equal the deliveries created, one by one.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any, cast

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from channels.engine import fanout
from channels.models import Channel, Delivery
from publishing import services
from publishing.models import Dispatch, Publication, Topic
from publishing.roles import EDITOR, PUBLISHER, assign_role_permissions
from subscribers.models import Subscriber, Subscription
from tests.factories import (
    ChannelFactory,
    PendingSubscriberFactory,
    SubscriberFactory,
    SubscriptionFactory,
    SuppressionFactory,
    TopicFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def member(username: str, role: str) -> User:
    assign_role_permissions()
    user = cast(User, UserFactory.create(username=username))
    user.groups.add(Group.objects.get(name=role))
    return User.objects.get(pk=user.pk)


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def confirm_url(publication: Publication) -> str:
    return reverse("admin:publishing_publication_publish", args=[publication.pk])


def subscribed(topic: Topic, subscriber: Subscriber | None = None, **fields: Any) -> Subscriber:
    subscriber = subscriber or cast(Subscriber, SubscriberFactory())
    SubscriptionFactory(subscriber=subscriber, topic=topic, **fields)
    return subscriber


def build_audience(topic: Topic, other: Topic) -> list[Subscriber]:
    """Four subscribers who must get it; a dozen who must not. Returns the four."""
    today = timezone.localdate()
    readers = [subscribed(topic) for _ in range(3)]
    both = subscribed(topic)
    subscribed(other, both)  # two matching... one topic of the publication: one delivery
    readers.append(both)
    back = subscribed(topic, paused_until=today - dt.timedelta(days=1))  # pause over: included
    readers.append(back)
    # Must not receive it:
    subscribed(topic, cast(Subscriber, PendingSubscriberFactory()))  # unconfirmed
    subscribed(topic, cast(Subscriber, SubscriberFactory(status=Subscriber.Status.UNSUBSCRIBED)))
    subscribed(topic, cast(Subscriber, SubscriberFactory(status=Subscriber.Status.BOUNCED)))
    subscribed(topic, cast(Subscriber, SubscriberFactory(status=Subscriber.Status.COMPLAINED)))
    suppressed = subscribed(topic)
    SuppressionFactory(email=suppressed.email)  # active, but on the suppression list
    subscribed(topic, paused_until=today + dt.timedelta(days=3))  # paused for a while
    subscribed(topic, frequency=Subscription.Frequency.PAUSED, paused_until=None)
    subscribed(topic, frequency=Subscription.Frequency.DAILY)  # gets it in a digest instead
    subscribed(topic, frequency=Subscription.Frequency.WEEKLY)
    subscribed(other)  # wrong topic
    return readers


@pytest.mark.postgres
def test_the_confirmation_count_is_the_number_of_deliveries_the_fan_out_creates(
    settings: Any, tmp_path: Any
) -> None:
    settings.EMAIL_OUTBOX_DIR = tmp_path
    topic = cast(Topic, TopicFactory(name="Releases", slug="releases"))
    other = cast(Topic, TopicFactory(name="Security", slug="security"))
    email = cast(
        Channel, ChannelFactory(name="Newsletter", kind="email_file", is_default_email=True)
    )
    ChannelFactory(name="Second mail", kind="email_file")  # not the default: subscribers not here
    slack = cast(Channel, ChannelFactory(name="Team Slack", kind="slack"))
    slack.topics.set([topic])
    everything = cast(Channel, ChannelFactory(name="CRM hook", kind="webhook"))  # no filter: all
    security_only = cast(Channel, ChannelFactory(name="Security Discord", kind="discord"))
    security_only.topics.set([other])
    ChannelFactory(name="Old hook", kind="webhook", is_enabled=False)
    readers = build_audience(topic, other)
    paula = member("paula", PUBLISHER)
    publication = services.create_publication(
        services.PublicationInput(
            title="Spring release", slug="spring-release", summary="", body="Hi.", topics=[topic]
        ),
        by=paula,
    )
    client = client_for(paula)

    page = client.get(confirm_url(publication))

    assert page.status_code == 200
    shown = {row.name: row.count for row in page.context["plans"][0].channels}
    assert shown == {
        "Newsletter": 5,
        "CRM hook": 1,
        "Security Discord": 0,
        "Team Slack": 1,
    }
    assert page.context["total"] == 7
    html = page.content.decode()
    assert 'value="Publish to 7 recipients"' in html
    assert "Subject: <strong" in html and "Spring release" in html

    response = client.post(confirm_url(publication), {"expected_total": "7", "publish": "1"})
    dispatch = Dispatch.objects.get(publication=publication)
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:publishing_dispatch_change", args=[dispatch.pk])
    created = fanout.plan_dispatch(dispatch.pk)

    deliveries = Delivery.objects.filter(dispatch=dispatch)
    assert created == deliveries.count() == page.context["total"]
    per_channel = Counter(deliveries.values_list("channel__name", flat=True))
    assert per_channel == {name: count for name, count in shown.items() if count}
    assert set(deliveries.filter(channel=email).values_list("subscriber_id", flat=True)) == {
        reader.pk for reader in readers
    }
    assert deliveries.filter(channel__in=[slack, everything], subscriber__isnull=True).count() == 2


def test_a_changed_audience_is_shown_again_before_anything_is_sent() -> None:
    topic = cast(Topic, TopicFactory())
    ChannelFactory(name="Newsletter", kind="email_file", is_default_email=True)
    subscribed(topic)
    paula = member("paula", PUBLISHER)
    publication = services.create_publication(
        services.PublicationInput(title="T", slug="t", summary="", body="B", topics=[topic]),
        by=paula,
    )
    client = client_for(paula)
    assert client.get(confirm_url(publication)).context["total"] == 1
    subscribed(topic)  # someone confirms meanwhile

    response = client.post(confirm_url(publication), {"expected_total": "1", "publish": "1"})

    assert response.status_code == 200
    assert response.context["total"] == 2
    assert (
        "The audience changed while this page was open: it is now 2." in response.content.decode()
    )
    assert not Dispatch.objects.exists()


def test_the_final_test_goes_to_the_publisher_only_and_comes_back_here() -> None:
    topic = cast(Topic, TopicFactory())
    paula = member("paula", PUBLISHER)
    publication = services.create_publication(
        services.PublicationInput(title="T", slug="t", summary="", body="B", topics=[topic]),
        by=paula,
    )

    response = client_for(paula).post(confirm_url(publication), {"send_test": "1"})

    assert response.status_code == 302
    assert response["Location"] == confirm_url(publication)
    assert [message.to for message in mail.outbox] == [[paula.email]]
    assert mail.outbox[0].subject == "[Test] T"
    assert not Dispatch.objects.exists()


def test_an_editor_may_not_open_the_confirmation() -> None:
    topic = cast(Topic, TopicFactory())
    alice = member("alice", EDITOR)
    publication = services.create_publication(
        services.PublicationInput(title="T", slug="t", summary="", body="B", topics=[topic]),
        by=alice,
    )
    client = client_for(alice)

    assert client.get(confirm_url(publication)).status_code == 403
    assert client.post(confirm_url(publication), {"expected_total": "0"}).status_code == 403
    assert not Dispatch.objects.exists()
