"""Channel backends: one module per kind, registered by kind name (see docs/adding-a-channel.md)."""

from __future__ import annotations

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
