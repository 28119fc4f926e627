from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django_q.models import Task

from publishing import services
from publishing.exceptions import (
    InvalidPublicationError,
    PublicationStateError,
    PublishingError,
    PublishingPermissionError,
)
from publishing.models import Dispatch, Publication, Topic
from tests.factories.publishing import TopicFactory
from tests.publishing.conftest import make_publication

pytestmark = pytest.mark.django_db
NAIVE = datetime(2999, 1, 1)  # noqa: DTZ001 - deliberately without a time zone


def _input(**overrides: object) -> services.PublicationInput:
    values: dict[str, object] = {
        "title": "A title",
        "slug": "a-title",
        "summary": "",
        "body": "Body.",
        "topics": ["releases"],
    }
    values.update(overrides)
    return services.PublicationInput(**values)  # type: ignore[arg-type]


def test_it_creates_a_draft_with_exactly_one_version(alice: User, topic: Topic) -> None:
    publication = services.create_publication(_input(), by=alice, reason="First draft")

    assert publication.status == Publication.Status.DRAFT
    assert publication.author == alice
    versions = list(publication.history.all())
    assert len(versions) == 1
    assert versions[0].history_type == "+"
    assert versions[0].history_user == alice
    assert versions[0].history_change_reason == "First draft"
    assert list(versions[0].topics.values_list("topic_id", flat=True)) == [topic.pk]


def test_it_records_one_version_per_edit_with_the_editor_and_reason(
    draft: Publication, alice: User
) -> None:
    other = TopicFactory(slug="security")
    services.update_publication(
        draft,
        _input(title="New title", slug=draft.slug, topics=["releases", "security"]),
        by=alice,
        reason="Fixed the title",
    )

    assert draft.title == "New title"
    latest = draft.history.order_by("-history_id").first()
    assert draft.history.count() == 2
    assert latest.history_change_reason == "Fixed the title"
    assert latest.history_user == alice
    assert set(latest.topics.values_list("topic_id", flat=True)) == {
        Topic.objects.get(slug="releases").pk,
        other.pk,
    }


@pytest.mark.parametrize(
    ("overrides", "field", "code"),
    [
        ({"title": ""}, "title", "required"),
        ({"title": "   "}, "title", "required"),
        ({"title": "x" * 201}, "title", "too_long"),
        ({"slug": ""}, "slug", "required"),
        ({"slug": "not a slug"}, "slug", "invalid"),
        ({"summary": "s" * 501}, "summary", "too_long"),
        ({"body": ""}, "body", "required"),
        ({"body": "b" * 100_001}, "body", "too_long"),
        ({"topics": []}, "topics", "required"),
        ({"topics": ["no-such-topic"]}, "topics", "unknown_topic"),
        ({"language": "xx"}, "language", "invalid"),
    ],
)
def test_it_refuses_bad_input_naming_the_field(
    alice: User, topic: Topic, overrides: dict[str, object], field: str, code: str
) -> None:
    with pytest.raises(InvalidPublicationError) as caught:
        services.create_publication(_input(**overrides), by=alice)

    assert caught.value.field == field
    assert caught.value.code == code
    assert field in str(caught.value)
    assert caught.value.status == 400
    assert not Publication.objects.exists()


def test_it_names_the_limit_when_there_are_too_many_topics(alice: User) -> None:
    slugs = [TopicFactory(slug=f"t-{n}").slug for n in range(51)]

    with pytest.raises(InvalidPublicationError) as caught:
        services.create_publication(_input(topics=slugs), by=alice)

    assert caught.value.field == "topics"
    assert caught.value.code == "too_many"
    assert "50" in caught.value.message
    fifty = services.create_publication(_input(topics=slugs[:50]), by=alice)
    assert fifty.topics.count() == 50


def test_it_refuses_a_slug_clash_and_keeps_what_was_stored(draft: Publication, alice: User) -> None:
    other = make_publication(by=alice, slug="other", title="Other")

    with pytest.raises(InvalidPublicationError) as caught:
        services.update_publication(other, _input(slug=draft.slug, title="Changed"), by=alice)

    assert caught.value.field == "slug"
    assert caught.value.code == "slug_taken"
    other.refresh_from_db()
    assert other.title == "Other"
    assert other.history.count() == 1


def test_it_publishes_once_records_the_version_and_enqueues_after_commit(
    draft: Publication, paula: User, django_capture_on_commit_callbacks: object
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:  # type: ignore[operator]
        dispatch = services.publish(draft, by=paula)
        assert Task.objects.count() == 0  # nothing enqueued before the commit

    # Ours is the first; the engine's plan_dispatch, run inline, may enqueue more after it.
    assert len(callbacks) >= 1
    draft.refresh_from_db()
    assert draft.status == Publication.Status.PUBLISHED
    assert draft.published_at is not None
    assert dispatch.kind == Dispatch.Kind.PUBLISH
    assert dispatch.created_by == paula
    assert dispatch.version == draft.history.order_by("-history_id").first()
    assert dispatch.version.status == Publication.Status.PUBLISHED
    task = Task.objects.get(func="channels.tasks.plan_dispatch")
    assert task.args == (dispatch.pk,)


def test_it_creates_no_second_dispatch_when_publishing_again(
    draft: Publication, paula: User, django_capture_on_commit_callbacks: object
) -> None:
    first = services.publish(draft, by=paula)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:  # type: ignore[operator]
        again = services.publish(draft, by=paula)

    assert again == first
    assert callbacks == []
    assert Dispatch.objects.filter(publication=draft).count() == 1


def test_it_resends_deliberately_as_a_new_dispatch(
    draft: Publication, paula: User, django_capture_on_commit_callbacks: object
) -> None:
    first = services.publish(draft, by=paula)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:  # type: ignore[operator]
        second = services.resend(draft, by=paula)

    assert len(callbacks) >= 1  # the engine, run inline, may enqueue after ours
    assert second.kind == Dispatch.Kind.RESEND
    assert second.pk != first.pk
    assert Dispatch.objects.filter(publication=draft).count() == 2


def test_it_refuses_to_resend_a_draft(draft: Publication, paula: User) -> None:
    with pytest.raises(PublicationStateError) as caught:
        services.resend(draft, by=paula)

    assert caught.value.code == "not_published"
    assert not Dispatch.objects.exists()


def test_an_editor_cannot_publish_schedule_or_archive(draft: Publication, alice: User) -> None:
    with pytest.raises(PublishingPermissionError):
        services.publish(draft, by=alice)
    with pytest.raises(PublishingPermissionError):
        services.schedule(draft, timezone.now() + timedelta(days=1), by=alice)
    with pytest.raises(PublishingPermissionError):
        services.archive(draft, by=alice)

    draft.refresh_from_db()
    assert draft.status == Publication.Status.DRAFT
    assert not Dispatch.objects.exists()


def test_an_editor_cannot_change_a_published_publication(
    draft: Publication, alice: User, paula: User
) -> None:
    services.publish(draft, by=paula)

    with pytest.raises(PublishingPermissionError):
        services.update_publication(draft, _input(slug=draft.slug), by=alice)
    services.update_publication(draft, _input(slug=draft.slug, title="Correction"), by=paula)
    assert Publication.objects.get(pk=draft.pk).title == "Correction"


def test_it_schedules_for_the_future_only(draft: Publication, paula: User) -> None:
    with pytest.raises(InvalidPublicationError) as caught:
        services.schedule(draft, timezone.now() - timedelta(minutes=1), by=paula)
    assert caught.value.field == "publish_at"
    assert caught.value.code == "in_past"
    with pytest.raises(InvalidPublicationError) as missing:
        services.schedule(draft, None, by=paula)
    assert missing.value.code == "required"
    draft.refresh_from_db()
    assert draft.status == Publication.Status.DRAFT

    at = timezone.now() + timedelta(hours=2)
    services.schedule(draft, at, by=paula)

    draft.refresh_from_db()
    assert draft.status == Publication.Status.SCHEDULED
    assert draft.publish_at == at
    assert (
        draft.history.order_by("-history_id")
        .first()
        .history_change_reason.startswith("Scheduled for")
    )


def test_it_unschedules_back_to_draft(draft: Publication, paula: User) -> None:
    services.schedule(draft, timezone.now() + timedelta(hours=1), by=paula)

    services.unschedule(draft, by=paula)

    draft.refresh_from_db()
    assert draft.status == Publication.Status.DRAFT
    assert draft.publish_at is None
    with pytest.raises(PublicationStateError):
        services.unschedule(draft, by=paula)


def test_it_publishes_due_publications_once_on_schedule(
    paula: User, topic: Topic, django_capture_on_commit_callbacks: object
) -> None:
    due = make_publication(by=paula, topics=[topic], slug="due")
    later = make_publication(by=paula, topics=[topic], slug="later")
    with time_machine.travel("2026-03-01 09:00Z", tick=False):
        services.schedule(due, timezone.now() + timedelta(minutes=5), by=paula)
        services.schedule(later, timezone.now() + timedelta(hours=5), by=paula)
    with (
        time_machine.travel("2026-03-01 09:06Z", tick=False),
        django_capture_on_commit_callbacks(execute=True),  # type: ignore[operator]
    ):
        dispatches = services.publish_due()
        again = services.publish_due()

    assert [d.publication_id for d in dispatches] == [due.pk]
    assert again == []
    due.refresh_from_db()
    later.refresh_from_db()
    assert due.status == Publication.Status.PUBLISHED
    assert later.status == Publication.Status.SCHEDULED
    assert dispatches[0].version.history_change_reason == "Published on schedule"


def test_it_archives_and_refuses_to_publish_or_edit_an_archived_one(
    draft: Publication, paula: User
) -> None:
    services.archive(draft, by=paula)
    services.archive(draft, by=paula)

    draft.refresh_from_db()
    assert draft.status == Publication.Status.ARCHIVED
    assert draft.history.count() == 2
    with pytest.raises(PublicationStateError) as caught:
        services.publish(draft, by=paula)
    assert caught.value.code == "archived"
    assert caught.value.status == 409
    with pytest.raises(PublishingError):
        services.update_publication(draft, _input(slug=draft.slug), by=paula)
    assert not Dispatch.objects.exists()


def test_it_sends_a_test_to_the_acting_user_through_django_mail(
    draft: Publication, paula: User, mailoutbox: list[object]
) -> None:
    address = services.send_test(draft, paula)

    assert address == "paula@example.com"
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.subject == "[Test] Spring release"
    assert message.to == ["paula@example.com"]
    assert "Hello Paula," in message.body
    html, kind = message.alternatives[0]
    assert kind == "text/html"
    assert "<strong>Markdown</strong>" in html
    assert not Dispatch.objects.exists()


def test_a_test_send_needs_an_address(draft: Publication, paula: User) -> None:
    paula.email = ""
    with pytest.raises(InvalidPublicationError) as caught:
        services.send_test(draft, paula)
    assert caught.value.field == "email"


def test_publish_due_leaves_a_broken_publication_and_publishes_the_others(
    paula: User, topic: Topic
) -> None:
    broken = make_publication(by=paula, topics=[topic], slug="broken")
    fine = make_publication(by=paula, topics=[topic], slug="fine")
    with time_machine.travel("2026-03-01 09:00Z", tick=False):
        services.schedule(broken, timezone.now() + timedelta(minutes=1), by=paula)
        services.schedule(fine, timezone.now() + timedelta(minutes=1), by=paula)
    broken.topics.clear()  # behind the services' back

    with time_machine.travel("2026-03-01 09:02Z", tick=False):
        dispatches = services.publish_due()

    assert [d.publication_id for d in dispatches] == [fine.pk]
    assert Publication.objects.get(pk=broken.pk).status == Publication.Status.SCHEDULED


def test_the_error_family_carries_code_field_and_status() -> None:
    error = PublicationStateError("Nope.", code="archived", field="status")

    assert isinstance(error, PublishingError)
    assert (error.code, error.field, error.status, str(error)) == (
        "archived",
        "status",
        409,
        "status: Nope.",
    )
    assert PublishingPermissionError("No.").status == 403
    assert str(PublishingError("Plain.")) == "Plain."
    with pytest.raises(ValueError, match="at least one problem"):
        InvalidPublicationError([])


@pytest.mark.parametrize(
    ("call", "field", "code"),
    [
        # A naive time is refused: which zone was meant is unknown.
        (lambda p, u: services.schedule(p, NAIVE, by=u), "publish_at", "invalid"),
        (
            lambda p, u: services.update_publication(
                p, _input(slug=p.slug), by=u, reason="r" * 101
            ),
            "change_reason",
            "too_long",
        ),
        (
            lambda p, u: services.update_publication(p, _input(slug="s" * 201), by=u),
            "slug",
            "too_long",
        ),
    ],
)
def test_it_names_the_field_of_other_bad_input(
    draft: Publication, paula: User, call: Any, field: str, code: str
) -> None:
    with pytest.raises(InvalidPublicationError) as caught:
        call(draft, paula)

    assert (caught.value.field, caught.value.code) == (field, code)
    assert caught.value.by_field() == {field: [caught.value.problems[0].message]}
    assert draft.history.count() == 1


def test_only_drafts_and_scheduled_publications_can_be_scheduled(
    draft: Publication, paula: User
) -> None:
    services.publish(draft, by=paula)

    with pytest.raises(PublicationStateError) as caught:
        services.schedule(draft, timezone.now() + timedelta(days=1), by=paula)

    assert caught.value.code == "not_schedulable"


def test_a_publication_without_topics_can_be_neither_scheduled_nor_published(
    draft: Publication, paula: User
) -> None:
    draft.topics.clear()

    with pytest.raises(InvalidPublicationError) as scheduling:
        services.schedule(draft, timezone.now() + timedelta(days=1), by=paula)
    with pytest.raises(InvalidPublicationError) as publishing:
        services.publish(draft, by=paula)

    assert scheduling.value.field == publishing.value.field == "topics"
    assert not Dispatch.objects.exists()


def test_who_can_edit_what(draft: Publication, alice: User, paula: User, mallory: User) -> None:
    assert services.can_edit(draft, alice)
    assert not services.can_edit(draft, mallory)
    services.archive(draft, by=paula)
    assert not services.can_edit(draft, paula)
    assert not services.can_edit(draft, None)


def test_someone_without_a_role_can_neither_create_nor_change(
    draft: Publication, mallory: User
) -> None:
    with pytest.raises(PublishingPermissionError, match="create publications"):
        services.create_publication(_input(slug="new"), by=mallory)
    with pytest.raises(PublishingPermissionError, match="change publications"):
        services.update_publication(draft, _input(slug=draft.slug), by=mallory)

    assert Publication.objects.count() == 1
    assert draft.history.count() == 1


def test_nothing_is_enqueued_when_the_surrounding_transaction_rolls_back(
    draft: Publication, paula: User, django_capture_on_commit_callbacks: Any
) -> None:
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        services.publish(draft, by=paula)
        raise RuntimeError("the caller failed after publishing")

    assert callbacks == []
    assert not Task.objects.exists()
    assert not Dispatch.objects.exists()
    assert Publication.objects.get(pk=draft.pk).status == Publication.Status.DRAFT
