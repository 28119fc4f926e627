"""Channel backends: one module per kind, registered by kind name (see docs/adding-a-channel.md).

Importing this package imports every backend module, and importing a module registers its
backend. A backend module imports the contract from ``channels.backends.base`` (never from this
package, which is still loading when it runs).
"""

from __future__ import annotations

import channels.backends.discord
import channels.backends.email_file
import channels.backends.email_ses
import channels.backends.email_smtp
import channels.backends.event_webhook
import channels.backends.slack
import channels.backends.webhook  # noqa: F401
from channels.backends.base import (
    Backend,
    BackendError,
    Message,
    Outcome,
    OutcomeStatus,
    get_backend_class,
    register,
    registry,
)

__all__ = [
    "Backend",
    "BackendError",
    "Message",
    "Outcome",
    "OutcomeStatus",
    "get_backend_class",
    "register",
    "registry",
]
