"""The subscribers app's errors: each carries a code and the HTTP status it maps to."""

from __future__ import annotations


class SubscribersError(Exception):
    code = "subscribers_error"
    http_status = 400

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidLinkError(SubscribersError):
    """A link's token is forged, altered, expired or no longer matches a subscriber.

    ``code`` is ``invalid_link`` or ``expired_link``; pages show a clear explanation for each.
    """

    code = "invalid_link"
    http_status = 400


class ImportFileError(SubscribersError):
    """The import file cannot be read at all (no header, no email column, not text)."""

    code = "import_file"
