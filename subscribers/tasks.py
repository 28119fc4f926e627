"""django-q2 entry points of the subscribers app."""

from __future__ import annotations

from subscribers import growth


def refresh_growth() -> int:
    return growth.refresh()
