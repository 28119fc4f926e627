"""A/B subjects as editors set them (decision 0079): in the admin form and through the API, with
errors naming the field and the limit; kept in each version. The API's side is in
tests/api/test_ab_subjects.py."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from publishing import services
from publishing.exceptions import InvalidPublicationError
from publishing.models import Publication, Topic
from tests.publishing.test_admin import ADD, _client, _form

pytestmark = pytest.mark.django_db

BAD_INPUT = [
    ({"subjects": ["Only one"]}, "subjects", "1 subject(s) given; an A/B test needs 2 to 4"),
    ({"subjects": ["a", "b", "c", "d", "e"]}, "subjects", "5 subject(s) given"),
    (
        {"subjects": ["Fine", "x" * 201]},
        "subjects",
        "Subject 2 has 201 characters; the limit is 200",
    ),
    ({"subjects": ["Same", " same "]}, "subjects", "must differ"),
    ({"subjects": ["Fine", "   "]}, "subjects", "Subject 2 is empty"),
    ({"subjects": ["Fine", "Two\r\nBcc: x@example.com"]}, "subjects", "line break"),
    ({"ab_share": 4}, "ab_share", "from 5 to 50"),
    ({"ab_share": 51}, "ab_share", "from 5 to 50"),
    ({"ab_wait_hours": 0}, "ab_wait_hours", "from 1 to 72"),
    ({"ab_min_sample": 5}, "ab_min_sample", "from 10 to 100000"),
    ({"ab_metric": "bounces"}, "ab_metric", "clicks, opens"),
]


def _input(topic: Topic, **ab: Any) -> services.PublicationInput:
    return services.PublicationInput(
        title="Spring", slug="spring", body="Hello.", topics=[topic], **ab
    )


@pytest.mark.parametrize(("ab", "field", "message"), BAD_INPUT)
def test_the_service_names_the_field_and_the_limit(
    alice: User, topic: Topic, ab: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(InvalidPublicationError) as raised:
        services.create_publication(_input(topic, **ab), by=alice)

    assert {problem.field for problem in raised.value.problems} == {field}
    assert message in str(raised.value)
    assert not Publication.objects.exists()


def test_subjects_and_settings_are_kept_in_the_version(alice: User, topic: Topic) -> None:
    publication = services.create_publication(
        _input(topic, subjects=["One", "Two", "Three"], ab_share=30, ab_metric="opens"),
        by=alice,
    )
    version = publication.history.get()
    assert version.subjects == ["One", "Two", "Three"]
    assert (version.ab_share, version.ab_metric) == (30, "opens")


def test_the_admin_takes_one_subject_a_line(alice: User, topic: Topic) -> None:
    response = _client(alice).post(
        ADD,
        _form(
            topic,
            subjects="Spring is here\n\n  Ten things to do in spring  \n",
            ab_share="25",
            ab_wait_hours="6",
            ab_metric="clicks",
            ab_min_sample="200",
        ),
    )

    assert response.status_code == 302
    publication = Publication.objects.get()
    assert publication.subjects == ["Spring is here", "Ten things to do in spring"]
    assert (publication.ab_share, publication.ab_wait_hours, publication.ab_min_sample) == (
        25,
        6,
        200,
    )
    page = _client(alice).get(reverse("admin:publishing_publication_change", args=[publication.pk]))
    assert "Spring is here\nTen things to do in spring" in page.content.decode()


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"subjects": "Only one"}, "subjects", "an A/B test needs 2 to 4"),
        ({"subjects": "A\nB\nC\nD\nE"}, "subjects", "5 subject(s) given"),
        ({"subjects": "A\n" + "x" * 201}, "subjects", "the limit is 200"),
        ({"subjects": "Same\nsame"}, "subjects", "must differ"),
        ({"subjects": "A\nB", "ab_share": "60"}, "ab_share", "from 5 to 50"),
    ],
)
def test_the_admin_shows_each_error_on_its_field(
    alice: User, topic: Topic, overrides: dict[str, Any], field: str, message: str
) -> None:
    response = _client(alice).post(ADD, _form(topic, **overrides))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors[field])
    assert not Publication.objects.exists()


def test_a_client_without_the_fields_changes_nothing(alice: User, topic: Topic) -> None:
    publication = services.create_publication(_input(topic, subjects=["A", "B"]), by=alice)
    client: Client = _client(alice)
    data = _form(topic, slug="spring", title="Spring again")
    del data["change_reason"]
    response = client.post(
        reverse("admin:publishing_publication_change", args=[publication.pk]),
        {**data, "subjects": "A\nB"},
    )
    assert response.status_code == 302
    publication.refresh_from_db()
    assert publication.subjects == ["A", "B"]
    assert publication.ab_share == 20
