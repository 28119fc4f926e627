"""A digest's items in its reader's language (decision 0082): a publication translated into
the subscriber's language is listed by its translation's title, summary and page; any other
keeps the original's. Chosen when the digest is written (channels.digests.create_digest), one
query per digest."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Protocol, TypeVar

from publishing.translations import texts_in


class Listed(Protocol):
    @property
    def publication_id(self) -> int: ...


Item = TypeVar("Item", bound=Listed)


def in_language(items: Sequence[Item], language: str) -> list[Item]:
    """``items`` (frozen dataclasses with ``publication_id``, ``title``, ``summary`` and
    ``url``) with those translated into ``language`` in that language, in the same order."""
    texts = texts_in(language, {item.publication_id for item in items})
    result: list[Item] = []
    for item in items:
        text = texts.get(item.publication_id)
        if text is None:
            result.append(item)
            continue
        changed: Any = replace(  # type: ignore[type-var]
            item, title=text.title, summary=text.summary, url=text.url
        )
        result.append(changed)
    return result
