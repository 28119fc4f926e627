"""Reading the environment, and refusing to run in production with unsafe values.

Every variable read here is listed in docs/configuration.md. ``FileAwareEnv`` lets each secret be
given as ``NAME_FILE=/run/secrets/name`` instead of ``NAME=value`` (Docker and Kubernetes secrets).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

env = environ.FileAwareEnv()

#: Values that mean "nobody set this yet". Compared case-insensitively, after stripping.
PLACEHOLDER_VALUES = frozenset(
    {
        "",
        "placeholder",
        "changeme",
        "change-me",
        "change_me",
        "changethis",
        "xxx",
        "xxxx",
        "todo",
        "secret",
        "password",
        "example",
        "default",
        "none",
        "null",
        "dummy",
        "test",
        "your-secret-key",
    }
)

#: Secret keys that ship with this repository or with Django's project template.
DEVELOPMENT_SECRET_KEYS = frozenset(
    {
        "django-insecure-development-only-key-do-not-use-in-production-0123456789",
        "django-insecure-test-only-key-do-not-use-in-production-0123456789abcdef",
    }
)

#: Variables holding a credential: when set, they must not be a placeholder.
CREDENTIAL_VARIABLES = (
    "SECRET_KEY",
    "FIELD_ENCRYPTION_KEYS",
    "METRICS_TOKEN",
    "EMAIL_HOST_PASSWORD",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
)

#: Variables holding a URL whose password part is a credential.
URL_CREDENTIAL_VARIABLES = ("DATABASE_URL", "REDIS_URL", "Q_REDIS_URL")

MIN_SECRET_KEY_LENGTH = 50


def is_placeholder(value: str) -> bool:
    """Return True when ``value`` is one of the well-known "fill me in" values."""
    return value.strip().lower() in PLACEHOLDER_VALUES


def check_production_environment(
    environ_: Mapping[str, str], *, secret_key: str, allowed_hosts: Iterable[str]
) -> None:
    """Refuse unsafe production settings.

    Called by the settings modules when DEBUG is off. Raises ImproperlyConfigured naming the
    variable at fault; returns None when everything is acceptable.
    """
    if not secret_key:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set: production needs a random value of at least "
            f"{MIN_SECRET_KEY_LENGTH} characters."
        )
    if secret_key in DEVELOPMENT_SECRET_KEYS or secret_key.startswith("django-insecure"):
        raise ImproperlyConfigured(
            "SECRET_KEY is a known development value: generate a new one for production."
        )
    if is_placeholder(secret_key):
        raise ImproperlyConfigured("SECRET_KEY is a placeholder value: set a real secret.")
    if len(secret_key) < MIN_SECRET_KEY_LENGTH:
        raise ImproperlyConfigured(
            f"SECRET_KEY is {len(secret_key)} characters long: production needs at least "
            f"{MIN_SECRET_KEY_LENGTH}."
        )
    if not [host for host in allowed_hosts if host.strip()]:
        raise ImproperlyConfigured(
            "ALLOWED_HOSTS is empty: list the host names this site answers to, comma-separated."
        )
    for name in CREDENTIAL_VARIABLES:
        if name in environ_ and is_placeholder(environ_[name]):
            raise ImproperlyConfigured(
                f"{name} is a placeholder value ({environ_[name]!r}): set the real credential "
                "or remove the variable."
            )
        file_name = f"{name}_FILE"
        if file_name in environ_ and not environ_[file_name].strip():
            raise ImproperlyConfigured(f"{file_name} is empty: give the path of the secret file.")
    for name in URL_CREDENTIAL_VARIABLES:
        if name in environ_:
            password = urlsplit(environ_[name]).password
            if password is not None and is_placeholder(password):
                raise ImproperlyConfigured(
                    f"{name} carries a placeholder password: set the real credential."
                )
    if not (environ_.get("FIELD_ENCRYPTION_KEYS") or environ_.get("FIELD_ENCRYPTION_KEYS_FILE")):
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS is not set: production needs a Fernet key to encrypt channel "
            "secrets at rest."
        )
    if not environ_.get("REDIS_URL"):
        raise ImproperlyConfigured(
            "REDIS_URL is not set: production needs a shared cache for rate limits and "
            "API throttles (redis://host:6379/0)."
        )
    site_url = urlsplit(environ_.get("SITE_URL", "").strip())
    if site_url.scheme != "https" or not site_url.hostname:
        # Every email's List-Unsubscribe one-click URL is built on it, and RFC 8058 requires
        # https there; the links are the subscribers' only credential, too.
        raise ImproperlyConfigured(
            "SITE_URL must be the site's public https:// address (e.g. https://news.example.org): "
            "the emails' links and RFC 8058 one-click unsubscribe URLs are built on it."
        )
    if environ_.get("OUTBOUND_ALLOWED_HOSTS", "").strip(" ,"):
        # Letting channel URLs reach internal hosts is for development and tests (decision 0071).
        raise ImproperlyConfigured(
            "OUTBOUND_ALLOWED_HOSTS is set: production sends to public addresses only; "
            "remove the variable."
        )
