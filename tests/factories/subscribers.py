from __future__ import annotations

import factory
from django.utils import timezone

from subscribers.models import ConsentEvent, Subscriber, Subscription, Suppression, email_hash
from tests.factories.publishing import TopicFactory


class SubscriberFactory(factory.django.DjangoModelFactory[Subscriber]):
    class Meta:
        model = Subscriber

    email = factory.Sequence(lambda n: f"reader{n}@example.com")
    name = factory.Sequence(lambda n: f"Reader {n}")
    status = Subscriber.Status.ACTIVE
    confirmed_at = factory.LazyFunction(timezone.now)


class PendingSubscriberFactory(SubscriberFactory):
    status = Subscriber.Status.PENDING
    confirmed_at = None  # type: ignore[assignment]


class SubscriptionFactory(factory.django.DjangoModelFactory[Subscription]):
    class Meta:
        model = Subscription

    subscriber = factory.SubFactory(SubscriberFactory)
    topic = factory.SubFactory(TopicFactory)


class SuppressionFactory(factory.django.DjangoModelFactory[Suppression]):
    class Meta:
        model = Suppression
        exclude = ("email",)

    email = factory.Sequence(lambda n: f"suppressed{n}@example.com")
    email_hash = factory.LazyAttribute(lambda o: email_hash(o.email))
    reason = Suppression.Reason.UNSUBSCRIBED


class ConsentEventFactory(factory.django.DjangoModelFactory[ConsentEvent]):
    class Meta:
        model = ConsentEvent

    subscriber = factory.SubFactory(SubscriberFactory)
    email_hash = factory.LazyAttribute(lambda o: o.subscriber.email_hash)
    action = ConsentEvent.Action.SIGNUP
