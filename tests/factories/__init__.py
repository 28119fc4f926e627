"""factory-boy factories, one module per app; import them from here."""

from tests.factories.channels import ChannelFactory, DeliveryFactory
from tests.factories.publishing import (
    DispatchFactory,
    PublicationFactory,
    TopicFactory,
    UserFactory,
)
from tests.factories.subscribers import SubscriberFactory, SubscriptionFactory

__all__ = [
    "ChannelFactory",
    "DeliveryFactory",
    "DispatchFactory",
    "PublicationFactory",
    "SubscriberFactory",
    "SubscriptionFactory",
    "TopicFactory",
    "UserFactory",
]
