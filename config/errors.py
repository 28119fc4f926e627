"""The one error family: every error an app raises on purpose derives from ``ProjectError``.

Each error carries a stable machine-readable ``code``, the HTTP ``status`` it answers with, a
human ``message`` and, when one input is to blame, the ``field`` it names. Apps subclass it
(``publishing.exceptions.PublishingError``, ``subscribers.exceptions.SubscribersError``,
``publishing.api_keys.ApiKeyError``, ``channels.exceptions.ChannelConfigurationError``,
``channels.backends.base.BackendError``), setting ``code`` and ``status`` as class attributes;
the API (config.api.views), the admin and the commands turn any of them into an answer without
knowing the app that raised it (decision 0069). This module is part of the config toolkit: it
imports no app.
"""

from __future__ import annotations


class ProjectError(Exception):
    """An error a service raises on purpose, with what every caller needs to answer it.

    ``code`` and ``status`` are class attributes each family and subclass sets; ``code`` may
    also be given per instance. ``str()`` is ``"field: message"`` when a field is named, else the
    message.
    """

    #: Stable, machine-readable: the last segment of the API's problem type.
    code: str = "error"
    #: The HTTP status the error answers with (400: the caller's input is wrong).
    status: int = 400

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message

    def field_errors(self) -> dict[str, list[str]]:
        """The messages by input field, ``"__all__"`` (Django's NON_FIELD_ERRORS) for the input
        as a whole; empty when no input is to blame. One entry for ``field`` here; an error about
        several inputs overrides it. With a status of 400, the API answers a non-empty mapping as
        a validation problem with one entry per message."""
        return {self.field: [self.message]} if self.field else {}
