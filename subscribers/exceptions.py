"""The subscribers app's errors: each carries a code and the HTTP status it maps to. Every one is
a ``config.errors.ProjectError`` (decision 0069)."""

from __future__ import annotations

from config.errors import ProjectError


class SubscribersError(ProjectError):
    """Base of every error the subscribers services raise on purpose."""

    code = "subscribers_error"
    status = 400


class InvalidLinkError(SubscribersError):
    """A link's token is forged, altered, expired or no longer matches a subscriber.

    ``code`` is ``invalid_link`` or ``expired_link``; pages show a clear explanation for each.
    """

    code = "invalid_link"
    status = 400


class ImportFileError(SubscribersError):
    """The import file cannot be read at all (no header, no email column, not text)."""

    code = "import_file"
