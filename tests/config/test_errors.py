"""One error family (decision 0069): every app's errors are ProjectErrors, and the API answers any
ProjectError, even one it has never heard of, from what the base class carries."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import URLPattern, URLResolver, path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from channels.backends import BackendError
from channels.configuration import ChannelConfigurationError as FromConfiguration
from channels.exceptions import ChannelConfigurationError
from config.api.views import ApiViewMixin, translate
from config.errors import ProjectError
from config.urls import handler404, handler500
from publishing.api_keys import ApiKeyError
from publishing.exceptions import (
    FieldProblem,
    InvalidPublicationError,
    PublicationStateError,
    PublishingError,
    PublishingPermissionError,
    UnknownChannelKindError,
)
from subscribers.exceptions import ImportFileError, InvalidLinkError, SubscribersError

__all__ = ["handler404", "handler500"]

pytestmark = pytest.mark.urls("tests.config.test_errors")


# --- The base class's contract ------------------------------------------------------------------


def test_a_project_error_carries_code_status_message_and_field() -> None:
    plain = ProjectError("Something is off.")
    assert (plain.code, plain.status, plain.message, plain.field) == (
        "error",
        400,
        "Something is off.",
        None,
    )
    assert str(plain) == "Something is off."
    assert plain.field_errors() == {}

    named = ProjectError("Too long.", code="too_long", field="title")
    assert (named.code, named.field) == ("too_long", "title")
    assert str(named) == "title: Too long."
    assert named.field_errors() == {"title": ["Too long."]}
    # A code given to one instance leaves the class's alone.
    assert ProjectError.code == "error"


@pytest.mark.parametrize(
    ("error", "code", "status"),
    [
        (PublishingError("x"), "publishing_error", 400),
        (InvalidPublicationError([FieldProblem("slug", "slug_taken", "x")]), "slug_taken", 400),
        (PublicationStateError("x"), "invalid_state", 409),
        (PublishingPermissionError("x"), "permission_denied", 403),
        (UnknownChannelKindError("x"), "unknown_channel_kind", 400),
        (SubscribersError("x"), "subscribers_error", 400),
        (InvalidLinkError("x", code="expired_link"), "expired_link", 400),
        (ImportFileError("x"), "import_file", 400),
        (ApiKeyError("name", "x"), "invalid_api_key", 400),
        (ChannelConfigurationError({"kind": ["x"]}), "invalid_channel_configuration", 400),
        (BackendError("x"), "channel_error", 409),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else None,
)
def test_every_apps_error_family_derives_from_project_error(
    error: ProjectError, code: str, status: int
) -> None:
    assert isinstance(error, ProjectError)
    assert (error.code, error.status) == (code, status)
    assert not hasattr(error, "http_status")


def test_the_families_keep_what_their_callers_rely_on() -> None:
    key_error = ApiKeyError("scopes", "Give at least one scope.")
    assert isinstance(key_error, ValueError)
    assert (key_error.field, key_error.message) == ("scopes", "Give at least one scope.")
    assert str(key_error) == "scopes: Give at least one scope."

    assert isinstance(UnknownChannelKindError("No renderer."), KeyError)
    assert str(UnknownChannelKindError("No renderer.", field="kind")) == "No renderer."

    # Existing callers import it from the configuration services: the same class.
    assert FromConfiguration is ChannelConfigurationError
    configuration = ChannelConfigurationError({"batch_size": ["Too big."], "__all__": ["Bad."]})
    assert str(configuration) == "batch_size: Too big.; Bad."
    assert configuration.message == str(configuration)
    assert configuration.field_errors() == {"batch_size": ["Too big."], "__all__": ["Bad."]}

    invalid = InvalidPublicationError(
        [FieldProblem("title", "required", "A."), FieldProblem("title", "too_long", "B.")]
    )
    assert invalid.field_errors() == {"title": ["A.", "B."]}


def test_anything_else_reaches_the_api_unchanged() -> None:
    error = RuntimeError("a bug")
    assert translate(error) is error


# --- Through the API, for errors it has never heard of -------------------------------------------


class UnheardOfConflictError(ProjectError):
    code = "unheard_of_conflict"
    status = 409


class UnheardOfInputError(ProjectError):
    code = "unheard_of_input"


class WholeInputError(ProjectError):
    """An error about several inputs at once, one of them the input as a whole."""

    code = "whole_input"

    def field_errors(self) -> dict[str, list[str]]:
        return {"__all__": ["Pick one of a and b."], "a": ["Not both."]}


RAISED: dict[str, ProjectError] = {
    "conflict": UnheardOfConflictError("The thing is locked.", field="thing"),
    "input": UnheardOfInputError("Must be blue.", field="colour"),
    "no-field": UnheardOfInputError("Nothing works today."),
    "whole": WholeInputError("Pick one of a and b."),
}


class RaisingView(ApiViewMixin, APIView):
    """The smallest API view: no key, no scope; raises the error its URL names."""

    authentication_classes = []
    permission_classes = [AllowAny]

    def get(self, request: Request, name: str) -> Response:
        raise RAISED[name]


urlpatterns: list[URLPattern | URLResolver] = [
    path("api/test/raise/<str:name>/", RaisingView.as_view()),
]


@pytest.fixture(autouse=True)
def empty_cache() -> Any:
    cache.clear()
    yield
    cache.clear()


PROBLEMS = "https://publishing.example.org/problems/"


def test_an_unknown_error_with_its_own_status_is_a_problem_with_its_code(client: Client) -> None:
    response = client.get("/api/test/raise/conflict/")
    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    # The field is not shown: a conflict is about the resource's state, not an input to fix.
    assert response.json() == {
        "type": PROBLEMS + "unheard_of_conflict",
        "title": "Conflict",
        "status": 409,
        "detail": "The thing is locked.",
        "code": "unheard_of_conflict",
        "instance": "/api/test/raise/conflict/",
    }


def test_an_unknown_error_naming_a_field_is_a_validation_problem_on_that_field(
    client: Client,
) -> None:
    response = client.get("/api/test/raise/input/")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json() == {
        "type": PROBLEMS + "validation_error",
        "title": "Bad Request",
        "status": 400,
        "detail": "The request has invalid fields: colour",
        "code": "validation_error",
        "instance": "/api/test/raise/input/",
        "errors": [{"field": "colour", "message": "Must be blue.", "code": "invalid"}],
    }


def test_an_unknown_error_naming_no_field_is_a_problem_with_its_code(client: Client) -> None:
    response = client.get("/api/test/raise/no-field/")
    assert response.status_code == 400
    assert response.json() == {
        "type": PROBLEMS + "unheard_of_input",
        "title": "Bad Request",
        "status": 400,
        "detail": "Nothing works today.",
        "code": "unheard_of_input",
        "instance": "/api/test/raise/no-field/",
    }


def test_errors_about_the_whole_input_are_the_requests_own(client: Client) -> None:
    response = client.get("/api/test/raise/whole/")
    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == "The request has invalid fields: (request), a"
    assert body["errors"] == [
        {"field": "", "message": "Pick one of a and b.", "code": "invalid"},
        {"field": "a", "message": "Not both.", "code": "invalid"},
    ]
