from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth import get_user_model

from publishing.models import Dispatch, Publication, Topic


class UserFactory(factory.django.DjangoModelFactory[Any]):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.django.Password("correct horse battery staple")
    is_staff = True


class TopicFactory(factory.django.DjangoModelFactory[Topic]):
    class Meta:
        model = Topic
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Topic {n}")
    slug = factory.Sequence(lambda n: f"topic-{n}")
    description = "A topic."


class PublicationFactory(factory.django.DjangoModelFactory[Publication]):
    class Meta:
        model = Publication
        skip_postgeneration_save = True

    title = factory.Sequence(lambda n: f"Publication {n}")
    slug = factory.Sequence(lambda n: f"publication-{n}")
    summary = "A short summary."
    body = "# Hello\n\nSome **Markdown** with a [link](https://example.com/)."

    @factory.post_generation
    def topics(self, create: bool, extracted: Any, **kwargs: Any) -> None:
        if not create:
            return
        self.topics.set(extracted if extracted else [TopicFactory()])


class DispatchFactory(factory.django.DjangoModelFactory[Dispatch]):
    class Meta:
        model = Dispatch

    publication = factory.SubFactory(PublicationFactory)
    version = factory.LazyAttribute(lambda o: o.publication.history.latest())
