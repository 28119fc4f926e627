"""The publishing error family: each error has a stable ``code``, an HTTP status and, when one
input is to blame, the ``field`` it names. Views, the admin, commands and the API turn these into
answers in one place each; services raise them."""

from __future__ import annotations

from dataclasses import dataclass


class PublishingError(Exception):
    """Base of every error the publishing services raise on purpose."""

    code: str = "publishing_error"
    status: int = 400

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


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
