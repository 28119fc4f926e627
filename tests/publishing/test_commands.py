from __future__ import annotations

from io import StringIO

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from publishing.models import Dispatch, Publication

pytestmark = pytest.mark.django_db


def _run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_publish_publishes_now_and_only_once(draft: Publication) -> None:
    first = _run("publish", draft.slug)
    second = _run("publish", draft.slug)

    dispatch = Dispatch.objects.get()
    assert first == f"Published {draft.slug}: dispatch {dispatch.pk}.\n"
    assert "already published" in second
    draft.refresh_from_db()
    assert draft.status == Publication.Status.PUBLISHED
    assert dispatch.created_by is None
    assert dispatch.version.history_user is None


@time_machine.travel("2026-06-01 08:00Z", tick=False)
def test_publish_at_schedules_and_reads_a_naive_time_as_utc(draft: Publication) -> None:
    out = _run("publish", draft.slug, "--at", "2026-06-02T09:30")

    assert out == f"Scheduled {draft.slug} for 2026-06-02T09:30:00+00:00.\n"
    draft.refresh_from_db()
    assert draft.status == Publication.Status.SCHEDULED
    assert draft.publish_at is not None
    assert draft.publish_at.isoformat() == "2026-06-02T09:30:00+00:00"
    assert not Dispatch.objects.exists()


@time_machine.travel("2026-06-01 08:00Z", tick=False)
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--at", "2026-05-01T00:00Z"], r"publish_at: 2026-05-01T00:00:00\+00:00 is in the past"),
        (["--at", "tomorrow"], "--at: 'tomorrow' is not an ISO 8601 date and time"),
    ],
)
def test_publish_names_the_bad_argument(draft: Publication, args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        _run("publish", draft.slug, *args)

    draft.refresh_from_db()
    assert draft.status == Publication.Status.DRAFT


def test_publish_refuses_an_unknown_slug_or_an_archived_publication(
    draft: Publication, paula: User
) -> None:
    with pytest.raises(CommandError, match="slug: no publication with the slug 'nope'"):
        _run("publish", "nope")
    draft.status = Publication.Status.ARCHIVED
    draft.save()
    with pytest.raises(
        CommandError, match=r"status: An archived publication cannot be published. \(archived\)"
    ):
        _run("publish", draft.slug)
    assert not Dispatch.objects.exists()


def test_list_publications_lists_and_filters_by_status(draft: Publication, paula: User) -> None:
    from tests.publishing.conftest import make_publication

    other = make_publication(by=paula, slug="other", title="Other one")
    _run("publish", other.slug)

    everything = _run("list_publications")
    published = _run("list_publications", "--status", "published")

    assert "spring-release" in everything and "other" in everything
    assert everything.endswith("2 publication(s).\n")
    assert "Other one" in published and "spring-release" not in published
    assert published.endswith("1 publication(s).\n")
    with pytest.raises(CommandError, match="invalid choice"):
        _run("list_publications", "--status", "lost")
