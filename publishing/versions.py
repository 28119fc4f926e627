"""Read-only views of a publication's versions: numbering and a readable diff between two."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from publishing.models import Publication, Topic, count_versions_up_to

DIFF_FIELDS = (("title", "Title"), ("summary", "Summary"), ("body", "Body"))


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "same", "added", "removed"
    text: str


@dataclass
class FieldDiff:
    name: str
    label: str
    lines: list[DiffLine] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed) or any(line.kind != "same" for line in self.lines)


@dataclass(frozen=True)
class VersionRow:
    number: int
    version: Any

    @property
    def topics(self) -> list[str]:
        return topic_names(self.version)


def versions_of(publication: Publication) -> list[VersionRow]:
    """Every version, newest first, numbered from 1 (the first)."""
    history = list(publication.history.order_by("history_id").select_related("history_user"))
    rows = [VersionRow(number, version) for number, version in enumerate(history, start=1)]
    return list(reversed(rows))


def version_number(version: Any) -> int:
    """1 for a publication's first version, 2 for the next, and so on: the one number shown
    for a version everywhere (admin, dispatches, API, webhook payloads; decision 0076)."""
    return count_versions_up_to(version)


def topic_names(version: Any) -> list[str]:
    ids = list(version.topics.values_list("topic_id", flat=True))
    names = dict(Topic.objects.filter(pk__in=ids).values_list("pk", "name"))
    # A topic deleted since still shows, by id.
    return sorted(names.get(topic_id, f"(deleted topic {topic_id})") for topic_id in ids)


def _line_diff(old: str, new: str) -> list[DiffLine]:
    lines = []
    for line in difflib.ndiff(old.splitlines(), new.splitlines()):
        marker, text = line[:2], line[2:]
        if marker == "? ":
            continue  # ndiff's intraline hints: the line pairs already say enough
        kind = {"+ ": "added", "- ": "removed"}.get(marker, "same")
        lines.append(DiffLine(kind, text))
    return lines


def diff_versions(old: Any, new: Any) -> list[FieldDiff]:
    """What changed from ``old`` to ``new`` in title, summary, body (line by line) and topics."""
    diffs = []
    for name, label in DIFF_FIELDS:
        diffs.append(
            FieldDiff(name, label, lines=_line_diff(getattr(old, name), getattr(new, name)))
        )
    old_topics, new_topics = set(topic_names(old)), set(topic_names(new))
    diffs.append(
        FieldDiff(
            "topics",
            "Topics",
            added=sorted(new_topics - old_topics),
            removed=sorted(old_topics - new_topics),
            unchanged=sorted(old_topics & new_topics),
        )
    )
    return diffs
