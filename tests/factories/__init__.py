"""factory-boy factories, one module per app; import them from here."""

from tests.factories.channels import ChannelFactory, DeliveryFactory
from tests.factories.publishing import (
    DispatchFactory,
    PublicationFactory,
    TopicFactory,
    UserFactory,
)
from tests.factories.subscribers import (
    ConsentEventFactory,
    PendingSubscriberFactory,
    SubscriberFactory,
    SubscriptionFactory,
    SuppressionFactory,
)

__all__ = [
    "ChannelFactory",
    "ConsentEventFactory",
    "DeliveryFactory",
    "DispatchFactory",
    "PendingSubscriberFactory",
    "PublicationFactory",
    "SubscriberFactory",
    "SubscriptionFactory",
    "SuppressionFactory",
    "TopicFactory",
    "UserFactory",
]
