"""No list endpoint runs a query per row: the count is the same for 3 rows and for 30."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from publishing.models import Publication
from tests.api.conftest import ApiClient
from tests.factories import (
    ChannelFactory,
    DeliveryFactory,
    DispatchFactory,
    PublicationFactory,
    SubscriberFactory,
    SubscriptionFactory,
    TopicFactory,
)

pytestmark = pytest.mark.django_db


def _publication(n: int) -> None:
    topics = [TopicFactory.create(slug=f"t{n}"), TopicFactory.create(slug=f"u{n}")]
    PublicationFactory.create(slug=f"p{n}", topics=topics)


def _subscriber(n: int) -> None:
    subscriber = SubscriberFactory.create()
    SubscriptionFactory.create(subscriber=subscriber, topic=TopicFactory.create(slug=f"s{n}"))


def _channel(n: int) -> None:
    channel = ChannelFactory.create()
    channel.topics.add(TopicFactory.create(slug=f"c{n}"))


def _versions(n: int) -> None:
    publication = Publication.objects.first() or PublicationFactory.create(slug="v")
    publication.title = f"v{n}"
    publication.save()


LISTS: list[tuple[str, Callable[[int], Any]]] = [
    ("/api/v1/topics/", lambda n: TopicFactory.create(slug=f"x{n}")),
    ("/api/v1/publications/", _publication),
    ("/api/v1/subscribers/", _subscriber),
    ("/api/v1/channels/", _channel),
    ("/api/v1/dispatches/", lambda n: DispatchFactory.create()),
    ("/api/v1/deliveries/", lambda n: DeliveryFactory.create()),
    ("/api/v1/publications/{publication}/versions/", _versions),
]


def _count(api: ApiClient, url: str) -> tuple[int, int]:
    if "{publication}" in url:
        url = url.format(publication=Publication.objects.get().pk)
    with CaptureQueriesContext(connection) as queries:
        response = api.get(url)
    assert response.status_code == 200
    return len(queries.captured_queries), len(response.json()["results"])


@pytest.mark.parametrize(("url", "make"), LISTS, ids=[url for url, _ in LISTS])
def test_the_query_count_stays_flat_as_rows_grow(
    api: ApiClient, url: str, make: Callable[[int], Any]
) -> None:
    api.get("/api/v1/topics/")  # the key's first use writes last_used_at: not a per-row cost
    for n in range(3):
        make(n)
    few, rows_few = _count(api, url)
    for n in range(3, 30):
        make(n)
    many, rows_many = _count(api, url)
    assert rows_many > rows_few >= 3
    assert many == few
