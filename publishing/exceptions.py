"""The publishing error family: each error has a stable ``code``, an HTTP status and, when one
input is to blame, the ``field`` it names. Every one is a ``config.errors.ProjectError`` (decision
0069): views, the admin, commands and the API turn these into answers in one place each;
services raise them."""

from __future__ import annotations

from dataclasses import dataclass

from config.errors import ProjectError


class PublishingError(ProjectError):
    """Base of every error the publishing services raise on purpose."""

    code = "publishing_error"
    status = 400


@dataclass(frozen=True)
class FieldProblem:
    field: str
    code: str
    message: str


class InvalidPublicationError(PublishingError):
    """One or more fields are invalid; ``problems`` lists each, the first sets field and code."""

    code = "invalid"
    status = 400

    def __init__(self, problems: list[FieldProblem]) -> None:
        if not problems:
            raise ValueError("InvalidPublicationError needs at least one problem")
        self.problems = problems
        message = "; ".join(f"{p.field}: {p.message}" for p in problems)
        super().__init__(message, code=problems[0].code, field=problems[0].field)

    def __str__(self) -> str:
        return self.message

    def by_field(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {}
        for problem in self.problems:
            result.setdefault(problem.field, []).append(problem.message)
        return result

    def field_errors(self) -> dict[str, list[str]]:
        # Every problem, not only the first one that sets ``field``.
        return self.by_field()


class InvalidTopicError(InvalidPublicationError):
    """One or more fields of a topic are invalid; ``problems`` lists each, as for a
    publication (the first sets field and code)."""


class PublicationStateError(PublishingError):
    """The operation does not apply in the publication's current status (e.g. publish archived)."""

    code = "invalid_state"
    status = 409


class PublishingPermissionError(PublishingError):
    """The acting user lacks the permission the operation needs."""

    code = "permission_denied"
    status = 403


class UnknownChannelKindError(PublishingError, KeyError):
    """No renderer for this channel kind (also a KeyError, as a lookup by kind failed)."""

    code = "unknown_channel_kind"
    status = 400

    def __str__(self) -> str:
        return self.message
