from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from publishing import services
from publishing.exceptions import InvalidPublicationError
from publishing.models import Publication, Topic
from publishing.versions import diff_versions, topic_names, versions_of
from tests.factories.publishing import TopicFactory
from tests.publishing.conftest import make_publication

pytestmark = pytest.mark.django_db


def _edit(publication: Publication, by: User, **changes: object) -> None:
    values: dict[str, object] = {
        "title": publication.title,
        "slug": publication.slug,
        "summary": publication.summary,
        "body": publication.body,
        "topics": list(publication.topics.all()),
        "language": publication.language,
    }
    values.update(changes)
    services.update_publication(publication, services.PublicationInput(**values), by=by)  # type: ignore[arg-type]


def test_the_diff_shows_each_field_line_by_line_and_topics_as_sets(
    draft: Publication, alice: User, topic: Topic
) -> None:
    security = TopicFactory.create(name="Security", slug="security")
    _edit(
        draft,
        alice,
        title="New title",
        body="# Hello\n\nSome **Markdown** with a [link](https://example.com/).\n\nMore.",
        topics=[security],
    )
    old, new = draft.history.order_by("history_id")

    diffs = {diff.name: diff for diff in diff_versions(old, new)}

    assert [(line.kind, line.text) for line in diffs["title"].lines] == [
        ("removed", "Spring release"),
        ("added", "New title"),
    ]
    assert not diffs["summary"].changed
    assert [line.kind for line in diffs["body"].lines] == ["same", "same", "same", "added", "added"]
    assert diffs["topics"].added == ["Security"]
    assert diffs["topics"].removed == ["Releases"]
    assert diffs["topics"].changed


def test_versions_are_numbered_from_the_first_and_listed_newest_first(
    draft: Publication, alice: User
) -> None:
    _edit(draft, alice, title="Two")
    _edit(draft, alice, title="Three")

    rows = versions_of(draft)

    assert [(row.number, row.version.title) for row in rows] == [
        (3, "Three"),
        (2, "Two"),
        (1, "Spring release"),
    ]
    assert rows[0].topics == ["Releases"]
    assert services.version_number(rows[0].version) == 3


def test_a_deleted_topic_still_shows_in_old_versions(alice: User) -> None:
    doomed = TopicFactory.create(name="Doomed", slug="doomed")
    publication = make_publication(by=alice, topics=[doomed, TopicFactory.create()])
    version = publication.history.get()
    publication.topics.remove(doomed)
    doomed_id = doomed.pk
    doomed.delete()

    assert f"(deleted topic {doomed_id})" in topic_names(version)


def test_restoring_skips_deleted_topics_and_refuses_when_none_is_left(alice: User) -> None:
    doomed = TopicFactory.create(name="Doomed", slug="doomed")
    kept = TopicFactory.create(name="Kept", slug="kept")
    publication = make_publication(by=alice, topics=[doomed])
    first = publication.history.get()
    _edit(publication, alice, topics=[kept])
    publication.topics.clear()
    doomed.delete()
    publication.topics.add(kept)
    versions_before = publication.history.count()

    with pytest.raises(InvalidPublicationError) as caught:
        services.restore_version(publication, first, by=alice)

    assert caught.value.field == "topics"
    assert publication.history.count() == versions_before


def test_a_version_of_another_publication_cannot_be_restored(
    draft: Publication, alice: User
) -> None:
    other = make_publication(by=alice, slug="other")

    with pytest.raises(InvalidPublicationError) as caught:
        services.restore_version(draft, other.history.get(), by=alice)

    assert caught.value.field == "version"
    assert draft.history.count() == 1


def test_restoring_leaves_out_a_topic_archived_since_unless_the_publication_still_has_it(
    alice: User,
) -> None:
    archived = TopicFactory.create(name="Old", slug="old")
    kept = TopicFactory.create(name="Kept", slug="kept")
    publication = make_publication(by=alice, topics=[archived, kept])
    first = publication.history.earliest("history_id")
    _edit(publication, alice, topics=[kept])
    Topic.objects.filter(pk=archived.pk).update(archived_at="2026-01-01T00:00Z")

    services.restore_version(publication, first, by=alice)
    assert list(publication.topics.values_list("slug", flat=True)) == ["kept"]

    # Still on the publication: an archived topic stays through a restore and an edit.
    publication.topics.add(archived)
    services.restore_version(publication, first, by=alice)
    _edit(publication, alice, body="Edited.")
    assert set(publication.topics.values_list("slug", flat=True)) == {"old", "kept"}
    with pytest.raises(InvalidPublicationError, match="Archived topic: old"):
        _edit(make_publication(by=alice, topics=[kept], slug="other"), alice, topics=[archived])
