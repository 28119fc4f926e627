"""Personas and publications for the publishing tests.

alice is an Editor, paula a Publisher, ada an Administrator, mallory staff with no role.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group, User

from publishing import rendering, services
from publishing.models import Publication, Topic
from publishing.roles import ADMINISTRATOR, EDITOR, PUBLISHER, assign_role_permissions
from tests.factories.publishing import TopicFactory, UserFactory


@pytest.fixture(autouse=True)
def _fresh_render_cache() -> Iterator[None]:
    rendering.clear_cache()
    yield
    rendering.clear_cache()


@pytest.fixture
def roles(db: Any) -> None:
    # A transactional test flushes the groups the migration made: make sure they exist.
    assign_role_permissions()


def _member(username: str, role: str | None) -> User:
    user: User = UserFactory.create(username=username, first_name=username.title())
    if role:
        user.groups.add(Group.objects.get(name=role))
    return User.objects.get(pk=user.pk)  # fresh permission cache


@pytest.fixture
def alice(roles: None) -> User:
    return _member("alice", EDITOR)


@pytest.fixture
def paula(roles: None) -> User:
    return _member("paula", PUBLISHER)


@pytest.fixture
def ada(roles: None) -> User:
    return _member("ada", ADMINISTRATOR)


@pytest.fixture
def mallory(roles: None) -> User:
    return _member("mallory", None)


@pytest.fixture
def topic(db: Any) -> Topic:
    topic: Topic = TopicFactory.create(name="Releases", slug="releases")
    return topic


def make_publication(
    by: User | None = None, topics: list[Topic] | None = None, **fields: Any
) -> Publication:
    """A draft made through the service, so it has exactly one version."""
    values: dict[str, Any] = {
        "title": "Spring release",
        "slug": "spring-release",
        "summary": "What is new this spring.",
        "body": "# Hello\n\nSome **Markdown** with a [link](https://example.com/).",
        "topics": topics or [TopicFactory()],
    }
    values.update(fields)
    return services.create_publication(services.PublicationInput(**values), by=by)


@pytest.fixture
def draft(topic: Topic, alice: User) -> Publication:
    return make_publication(by=alice, topics=[topic])
