"""The editors' admin, acting as alice (Editor), paula (Publisher) and ada (Administrator)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group, Permission, User
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from publishing.models import Dispatch, Publication, Topic
from publishing.roles import ADMINISTRATOR, EDITOR, PUBLISHER, assign_role_permissions
from tests.factories.publishing import TopicFactory
from tests.publishing.conftest import make_publication

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:publishing_publication_changelist")
ADD = reverse("admin:publishing_publication_add")


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _change(publication: Publication) -> str:
    return reverse("admin:publishing_publication_change", args=[publication.pk])


def _operation(publication: Publication, name: str) -> str:
    return reverse("admin:publishing_publication_operation", args=[publication.pk, name])


def _publish_url(publication: Publication) -> str:
    return reverse("admin:publishing_publication_publish", args=[publication.pk])


def _publish(client: Client, publication: Publication, **extra: Any) -> Any:
    """Open the confirmation page, then confirm the total it shows (publish, or send again)."""
    page = client.get(_publish_url(publication))
    if page.status_code != 200 or not page.context["can_send"]:
        return page
    data = {"expected_total": page.context["total"], "publish": "1"}
    return client.post(_publish_url(publication), data, **extra)


def _form(topic: Topic, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "title": "From the admin",
        "slug": "from-the-admin",
        "summary": "Short.",
        "body": "Hello **world**.",
        "topics": [topic.pk],
        "language": "en",
        "change_reason": "First draft",
        "dispatches-TOTAL_FORMS": "0",
        "dispatches-INITIAL_FORMS": "0",
        "dispatches-MIN_NUM_FORMS": "0",
        "dispatches-MAX_NUM_FORMS": "1000",
    }
    data.update(overrides)
    return data


def _action(client: Client, action: str, *publications: Publication, **extra: Any) -> Any:
    data = {"action": action, ACTION_CHECKBOX_NAME: [p.pk for p in publications], **extra}
    return client.post(CHANGELIST, data, follow=True)


def test_an_editor_creates_a_draft_with_one_version(alice: User, topic: Topic) -> None:
    response = _client(alice).post(ADD, _form(topic))

    assert response.status_code == 302
    publication = Publication.objects.get(slug="from-the-admin")
    assert publication.status == Publication.Status.DRAFT
    assert publication.author == alice
    assert list(publication.topics.all()) == [topic]
    version = publication.history.get()
    assert version.history_user == alice
    assert version.history_change_reason == "First draft"


def test_an_editor_edits_a_draft_as_one_new_version(alice: User, draft: Publication) -> None:
    topic = draft.topics.get()
    response = _client(alice).post(
        _change(draft), _form(topic, slug=draft.slug, title="Better", change_reason="Title")
    )

    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.title == "Better"
    assert draft.history.count() == 2
    assert draft.history.order_by("-history_id").first().history_change_reason == "Title"


def test_an_editor_cannot_publish_through_the_admin(alice: User, draft: Publication) -> None:
    client = _client(alice)

    changelist = client.get(CHANGELIST)
    assert changelist.status_code == 200
    actions = dict(changelist.context["action_form"].fields["action"].choices)
    assert "publish_now" not in actions
    assert "archive_selected" not in actions
    assert "schedule_selected" not in actions
    assert "send_test_to_myself" in actions
    change_page = client.get(_change(draft))
    assert b"Publish\xe2\x80\xa6" not in change_page.content
    response = _action(client, "publish_now", draft)
    assert response.status_code == 200
    assert client.get(_publish_url(draft)).status_code == 403
    assert client.post(_publish_url(draft), {"expected_total": "0"}).status_code == 403
    assert client.post(_operation(draft, "archive")).status_code == 403
    schedule = reverse("admin:publishing_publication_schedule", args=[draft.pk])
    assert client.get(schedule).status_code == 403

    draft.refresh_from_db()
    assert draft.status == Publication.Status.DRAFT
    assert not Dispatch.objects.exists()


def test_a_publisher_publishes_from_the_list_once(paula: User, draft: Publication) -> None:
    client = _client(paula)

    confirmation = _action(client, "publish_now", draft)
    assert not Dispatch.objects.exists()  # the action asks first
    total = confirmation.context["total"]
    response = _action(client, "publish_now", draft, apply="1", expected_total=total)
    _action(client, "publish_now", draft, apply="1", expected_total=total)

    assert b"1 publication(s) published." in response.content
    draft.refresh_from_db()
    assert draft.status == Publication.Status.PUBLISHED
    dispatch = Dispatch.objects.get()
    assert dispatch.created_by == paula
    assert dispatch.version.history_user == paula


def test_a_publisher_publishes_resends_and_archives_from_the_publication_page(
    paula: User, draft: Publication
) -> None:
    client = _client(paula)
    assert _publish_url(draft).encode() in client.get(_change(draft)).content

    assert _publish(client, draft).status_code == 302
    assert _publish(client, draft).status_code == 302  # published: the page sends it again
    assert client.post(_operation(draft, "archive")).status_code == 302

    draft.refresh_from_db()
    assert draft.status == Publication.Status.ARCHIVED
    assert list(Dispatch.objects.values_list("kind", flat=True).order_by("pk")) == [
        "publish",
        "resend",
    ]
    assert client.get(_operation(draft, "archive")).status_code == 405
    assert client.post(_operation(draft, "explode")).status_code == 404


def test_an_editor_cannot_change_a_published_publication(
    alice: User, paula: User, draft: Publication
) -> None:
    _publish(_client(paula), draft)
    client = _client(alice)

    page = client.get(_change(draft))
    response = client.post(_change(draft), _form(draft.topics.get(), slug=draft.slug, title="X"))

    assert page.status_code == 200
    assert b'name="title"' not in page.content  # read-only for her
    assert response.status_code == 403
    draft.refresh_from_db()
    assert draft.title == "Spring release"


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"title": ""}, "title", "This field is required."),
        ({"title": "x" * 201}, "title", "at most 200 characters"),
        ({"summary": "s" * 501}, "summary", "at most 500 characters"),
        ({"body": ""}, "body", "This field is required."),
        ({"topics": []}, "topics", "This field is required."),
        ({"topics": [999_999]}, "topics", "Select a valid choice"),
        ({"slug": "spring-release"}, "slug", "Another publication uses the slug"),
        ({"slug": "no spaces"}, "slug", "Enter a valid “slug”"),
    ],
)
def test_the_admin_names_the_field_of_bad_input(
    alice: User,
    draft: Publication,
    topic: Topic,
    overrides: dict[str, Any],
    field: str,
    message: str,
) -> None:
    response = _client(alice).post(ADD, _form(topic, **overrides))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors[field])
    assert Publication.objects.count() == 1


def test_the_admin_refuses_more_than_fifty_topics(alice: User) -> None:
    topics = [TopicFactory.create() for _ in range(51)]

    response = _client(alice).post(ADD, _form(topics[0], topics=[t.pk for t in topics]))

    assert response.status_code == 200
    assert "the limit is 50" in " ".join(response.context["adminform"].form.errors["topics"])
    assert not Publication.objects.exists()


def test_scheduling_in_the_past_is_refused_on_the_field(paula: User, draft: Publication) -> None:
    past = timezone.now() - timedelta(days=1)
    response = _action(
        _client(paula),
        "schedule_selected",
        draft,
        apply="1",
        publish_at_0=past.strftime("%Y-%m-%d"),
        publish_at_1=past.strftime("%H:%M:%S"),
    )

    assert response.status_code == 200
    assert "is in the past" in " ".join(response.context["form"].errors["publish_at"])
    draft.refresh_from_db()
    assert draft.status == Publication.Status.DRAFT


def test_a_publisher_schedules_from_the_list_and_from_the_page(
    paula: User, draft: Publication, topic: Topic
) -> None:
    other = make_publication(by=paula, topics=[topic], slug="other")
    at = (timezone.now() + timedelta(days=2)).replace(microsecond=0)
    fields = {"publish_at_0": at.strftime("%Y-%m-%d"), "publish_at_1": at.strftime("%H:%M:%S")}
    client = _client(paula)

    first_step = _action(client, "schedule_selected", draft)
    response = _action(client, "schedule_selected", draft, apply="1", **fields)
    page = reverse("admin:publishing_publication_schedule", args=[other.pk])
    assert client.get(page).status_code == 200
    client.post(page, fields)

    assert first_step.templates[0].name == "publishing/admin/schedule.html"
    assert b"1 publication(s) scheduled." in response.content
    for publication in (draft, other):
        publication.refresh_from_db()
        assert publication.status == Publication.Status.SCHEDULED
        assert publication.publish_at == at
    assert client.post(_operation(other, "unschedule")).status_code == 302
    assert Publication.objects.get(pk=other.pk).status == Publication.Status.DRAFT


def test_send_a_test_to_myself_uses_django_mail(alice: User, draft: Publication) -> None:
    response = _action(_client(alice), "send_test_to_myself", draft)

    assert b"sent to alice@example.com" in response.content
    assert [m.to for m in mail.outbox] == [["alice@example.com"]]
    assert mail.outbox[0].subject == "[Test] Spring release"
    assert not Dispatch.objects.exists()
    _client(alice).post(_operation(draft, "send-test"))
    assert len(mail.outbox) == 2


def test_a_publisher_archives_from_the_list(paula: User, draft: Publication) -> None:
    _action(_client(paula), "archive_selected", draft)

    draft.refresh_from_db()
    assert draft.status == Publication.Status.ARCHIVED


def test_the_list_filters_and_searches(paula: User, topic: Topic) -> None:
    other_topic = TopicFactory.create(name="Security", slug="security")
    make_publication(by=paula, topics=[topic], slug="kept", title="Quarterly report")
    hidden = make_publication(by=paula, topics=[other_topic], slug="hidden", title="Incident")
    client = _client(paula)
    _publish(client, hidden)

    def titles(**query: Any) -> set[str]:
        response = client.get(CHANGELIST, query)
        assert response.status_code == 200
        return {p.title for p in response.context["cl"].result_list}

    assert titles(status__exact="draft") == {"Quarterly report"}
    assert titles(status__exact="published") == {"Incident"}
    assert titles(topics__id__exact=other_topic.pk) == {"Incident"}
    assert titles(author__id__exact=paula.pk) == {"Quarterly report", "Incident"}
    assert titles(q="quarterly") == {"Quarterly report"}
    assert titles(published_at__isnull="True") == {"Quarterly report"}


def test_the_preview_shows_every_channel(alice: User, draft: Publication) -> None:
    url = reverse("admin:publishing_publication_preview", args=[draft.pk])

    response = _client(alice).get(url)

    assert response.status_code == 200
    body = response.content.decode()
    assert "Subject:</strong> Spring release" in body
    assert "srcdoc=" in body and "sandbox" in body
    assert "Hello Alice," in body  # personalised with the viewer's name
    for kind in ("slack", "discord", "webhook"):
        assert f'id="{kind}"' in body
    assert "&quot;blocks&quot;" in body
    assert "&quot;embeds&quot;" in body
    assert "publication.published" in body


def test_versions_diff_and_restore_through_the_admin(alice: User, draft: Publication) -> None:
    client = _client(alice)
    topic = draft.topics.get()
    security = TopicFactory.create(name="Security", slug="security")
    client.post(
        _change(draft),
        _form(
            topic,
            slug=draft.slug,
            title="Spring release, revised",
            body="# Hello\n\nA new paragraph.",
            topics=[topic.pk, security.pk],
            change_reason="Rewrote",
        ),
    )
    first, second = draft.history.order_by("history_id")

    versions = client.get(reverse("admin:publishing_publication_history", args=[draft.pk]))
    diff = client.get(
        reverse("admin:publishing_publication_diff", args=[draft.pk]),
        {"a": second.history_id, "b": first.history_id},
    )
    restore = reverse("admin:publishing_publication_restore", args=[draft.pk, first.history_id])
    response = client.post(restore, follow=True)

    assert versions.status_code == 200
    assert [row.number for row in versions.context["rows"]] == [2, 1]
    assert b"Rewrote" in versions.content
    assert b"Restore this version" in versions.content
    assert diff.status_code == 200
    assert diff.context["old_number"] == 1 and diff.context["new_number"] == 2
    text = diff.content.decode()
    assert "- Spring release</span>" in text
    assert "+ Spring release, revised</span>" in text
    assert "+ A new paragraph.</span>" in text
    assert "+ Security</li>" in text
    assert b"Version 1 restored as version 3." in response.content
    draft.refresh_from_db()
    assert draft.title == "Spring release"
    assert list(draft.topics.all()) == [topic]
    assert draft.history.count() == 3
    kept = draft.history.get(history_id=second.history_id)
    assert kept.title == "Spring release, revised"  # history is not rewritten
    assert client.get(restore).status_code == 302


def test_a_diff_needs_two_versions(alice: User, draft: Publication) -> None:
    url = reverse("admin:publishing_publication_diff", args=[draft.pk])

    assert _client(alice).get(url).status_code == 404
    assert _client(alice).get(url, {"a": "x", "b": "1"}).status_code == 404


def test_an_editor_cannot_restore_a_published_publication(
    alice: User, paula: User, draft: Publication
) -> None:
    _publish(_client(paula), draft)
    first = draft.history.order_by("history_id").first()
    restore = reverse("admin:publishing_publication_restore", args=[draft.pk, first.history_id])

    assert _client(alice).post(restore).status_code == 403
    assert draft.history.count() == 2


def test_someone_without_a_role_sees_nothing(mallory: User, draft: Publication) -> None:
    client = _client(mallory)

    assert client.get(CHANGELIST).status_code == 403
    assert client.get(_publish_url(draft)).status_code == 403
    assert not Dispatch.objects.exists()


def test_the_roles_carry_their_permissions_including_other_apps(roles: None) -> None:
    assign_role_permissions()  # idempotent

    def codenames(role: str) -> set[str]:
        permissions = Group.objects.get(name=role).permissions.select_related("content_type")
        return {f"{p.content_type.app_label}.{p.codename}" for p in permissions}

    assert "publishing.publish_publication" not in codenames(EDITOR)
    assert "publishing.change_publication" in codenames(EDITOR)
    assert "publishing.publish_publication" in codenames(PUBLISHER)
    assert "publishing.archive_publication" in codenames(PUBLISHER)
    assert "channels.change_channel" not in codenames(PUBLISHER)
    assert "channels.change_channel" in codenames(ADMINISTRATOR)
    assert len(codenames(ADMINISTRATOR)) == Permission.objects.count()


def test_an_administrator_may_delete_an_unsent_draft_only(
    ada: User, paula: User, draft: Publication, topic: Topic
) -> None:
    sent = make_publication(by=paula, topics=[topic], slug="sent")
    _publish(_client(paula), sent)
    client = _client(ada)

    delete_sent = client.get(reverse("admin:publishing_publication_delete", args=[sent.pk]))
    client.post(reverse("admin:publishing_publication_delete", args=[draft.pk]), {"post": "yes"})

    assert delete_sent.status_code == 403
    assert not Publication.objects.filter(pk=draft.pk).exists()
    assert client.get(reverse("admin:publishing_dispatch_changelist")).status_code == 200
    assert client.get(reverse("admin:publishing_topic_changelist")).status_code == 200


def test_refused_operations_are_reported_not_hidden(paula: User, draft: Publication) -> None:
    client = _client(paula)
    client.post(_operation(draft, "archive"))

    action = _action(client, "publish_now", draft)
    operation = client.get(_publish_url(draft))
    first = draft.history.order_by("history_id").first()
    restore = reverse("admin:publishing_publication_restore", args=[draft.pk, first.history_id])
    page = reverse("admin:publishing_publication_schedule", args=[draft.pk])
    at = timezone.now() + timedelta(days=1)
    fields = {"publish_at_0": at.strftime("%Y-%m-%d"), "publish_at_1": at.strftime("%H:%M:%S")}
    scheduled = client.post(page, fields)

    assert b"An archived publication cannot be published." in action.content
    assert b"An archived publication cannot be published." in operation.content
    assert client.post(restore).status_code == 403  # archived: frozen for everyone
    assert scheduled.status_code == 200
    assert b"cannot be scheduled" in scheduled.content
    assert Publication.objects.get(pk=draft.pk).status == Publication.Status.ARCHIVED
    assert not Dispatch.objects.exists()


def test_a_restore_that_fails_says_why(alice: User, draft: Publication) -> None:
    first = draft.history.get()
    draft.topics.all().delete()  # every topic of version 1 is gone
    draft.topics.add(TopicFactory.create())
    restore = reverse("admin:publishing_publication_restore", args=[draft.pk, first.history_id])

    response = _client(alice).post(restore, follow=True)

    assert b"Choose at least 1 topic." in response.content
