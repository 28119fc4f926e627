"""Fixtures of the subscribers tests: topics, a clean rate-limit cache, mail helpers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.core.cache import cache

from publishing.models import Topic
from tests.factories import TopicFactory

LINK = re.compile(r"https?://[^\s\"<>]+/(confirm|preferences|unsubscribe)/([^/\s\"<>]+)/")


@pytest.fixture(autouse=True)
def _clean_rate_limits() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def news(db: None) -> Topic:
    return TopicFactory.create(name="News", slug="news")


@pytest.fixture
def events(db: None) -> Topic:
    return TopicFactory.create(name="Events", slug="events")


def link_in(message: mail.EmailMessage, kind: str) -> str:
    """The path of the first ``kind`` link in a message's plain-text body."""
    for match in LINK.finditer(str(message.body)):
        if match.group(1) == kind:
            return urlsplit(match.group(0)).path
    raise AssertionError(f"no {kind} link in: {message.body}")


def token_of(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[1]
