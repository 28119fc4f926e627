"""The channels app's errors that are not a backend's: each is a ``config.errors.ProjectError``
(decision 0069).

``BackendError`` stays in ``channels.backends.base`` (backends import nothing else from
channels).
"""

from __future__ import annotations

from collections.abc import Mapping

from config.errors import ProjectError


class ChannelConfigurationError(ProjectError):
    """A channel's settings are invalid.

    ``errors`` maps a field name (``kind``, ``batch_size``, ``rate_limit_per_second``, a config
    field of the backend, or ``__all__``) to its messages; ``message`` (and ``str()``) joins
    them all; ``field`` is None, as several fields may be to blame.
    """

    code = "invalid_channel_configuration"
    status = 400

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors = {field: list(messages) for field, messages in errors.items()}
        super().__init__(
            "; ".join(
                f"{field}: {' '.join(messages)}" if field != "__all__" else " ".join(messages)
                for field, messages in self.errors.items()
            )
        )

    def field_errors(self) -> dict[str, list[str]]:
        return {field: list(messages) for field, messages in self.errors.items()}


class DigestError(ProjectError, ValueError):
    """A digest run was asked for something impossible (an unknown frequency, a future time)."""

    code = "invalid_digest_request"
    status = 400


class SnsMessageError(ProjectError):
    """An SNS message refused at /hooks/ses/: ``code`` names the problem, ``status`` is the HTTP
    answer (400 malformed, 403 untrusted, 502 when AWS cannot be reached...)."""

    def __init__(self, message: str, *, code: str, status: int = 400) -> None:
        super().__init__(message, code=code)
        self.status = status
