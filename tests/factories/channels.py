from __future__ import annotations

import factory
from django.utils import timezone

from channels.models import Channel, Delivery
from tests.factories.publishing import DispatchFactory


class ChannelFactory(factory.django.DjangoModelFactory[Channel]):
    class Meta:
        model = Channel

    name = factory.Sequence(lambda n: f"channel-{n}")
    kind = "email_smtp"
    config = factory.LazyFunction(dict)


class DeliveryFactory(factory.django.DjangoModelFactory[Delivery]):
    class Meta:
        model = Delivery

    dispatch = factory.SubFactory(DispatchFactory)
    channel = factory.SubFactory(ChannelFactory)
    next_attempt_at = factory.LazyFunction(timezone.now)
