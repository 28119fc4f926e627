"""django-q2 entry points of the publishing app: load, call a service."""

from __future__ import annotations

from publishing import services


def publish_due() -> int:
    """Publish every scheduled publication whose time has come; return how many."""
    return len(services.publish_due())
