"""Production refuses unsafe settings, and `check --deploy` is clean with good ones."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from config.env import DEVELOPMENT_SECRET_KEYS
from tests.conftest import REPO_ROOT

GOOD_SECRET_KEY = "k3Jx9-vQ2mZr7Lw0pT4sYb8NcHd1FgUe6Ai5Ko2Rj9Xq3Vn7Mt0Wz4Sy8Bu1Pc6Ld"


def production_environment(**overrides: str) -> dict[str, str]:
    """A complete, acceptable production environment, with some values changed or removed."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key in {"PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV"}
        or key.startswith("COVERAGE_")
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.prod",
            "SECRET_KEY": GOOD_SECRET_KEY,
            "ALLOWED_HOSTS": "news.example.org",
            "SITE_URL": "https://news.example.org",
            "DATABASE_URL": "postgres://app:s3cr3t-Pa55word@db.internal:5432/publishing",
            "REDIS_URL": "redis://redis.internal:6379/0",
            "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        }
    )
    for key, value in overrides.items():
        if value == "<unset>":
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_deploy_prints_no_warning_with_a_good_production_environment() -> None:
    result = run_manage(production_environment(), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert "WARNINGS" not in result.stderr


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"SECRET_KEY": "<unset>"}, "SECRET_KEY is not set"),
        ({"SECRET_KEY": "too-short-but-random-9f8e7d6c5b4a"}, "SECRET_KEY is 33 characters long"),
        ({"SECRET_KEY": sorted(DEVELOPMENT_SECRET_KEYS)[0]}, "SECRET_KEY is a known development"),
        ({"SECRET_KEY": "changeme"}, "SECRET_KEY is a placeholder"),
        ({"ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS is empty"),
        ({"ALLOWED_HOSTS": "<unset>"}, "ALLOWED_HOSTS is empty"),
        ({"AWS_SECRET_ACCESS_KEY": "placeholder"}, "AWS_SECRET_ACCESS_KEY is a placeholder"),
        ({"AWS_ACCESS_KEY_ID": ""}, "AWS_ACCESS_KEY_ID is a placeholder"),
        ({"EMAIL_HOST_PASSWORD": "xxx"}, "EMAIL_HOST_PASSWORD is a placeholder"),
        ({"METRICS_TOKEN": "ChangeMe"}, "METRICS_TOKEN is a placeholder"),
        (
            {"DATABASE_URL": "postgres://app:changeme@db:5432/publishing"},
            "DATABASE_URL carries a placeholder password",
        ),
        ({"REDIS_URL": "<unset>"}, "REDIS_URL is not set"),
        ({"FIELD_ENCRYPTION_KEYS": "<unset>"}, "FIELD_ENCRYPTION_KEYS is not set"),
        ({"FIELD_ENCRYPTION_KEYS": "placeholder"}, "FIELD_ENCRYPTION_KEYS is a placeholder"),
        ({"OUTBOUND_ALLOWED_HOSTS": "127.0.0.1"}, "OUTBOUND_ALLOWED_HOSTS is set"),
        ({"SITE_URL": "http://news.example.org"}, "SITE_URL must be the site's public https://"),
        ({"SITE_URL": "<unset>"}, "SITE_URL must be the site's public https://"),
    ],
)
def test_production_refuses_to_start_naming_the_variable(
    overrides: dict[str, str], expected: str
) -> None:
    result = run_manage(production_environment(**overrides), "check")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert expected in result.stderr


def test_development_settings_with_debug_off_refuse_unsafe_values_too() -> None:
    env = production_environment(DJANGO_SETTINGS_MODULE="config.settings.dev", DEBUG="false")
    env.pop("SECRET_KEY")
    result = run_manage(env, "check")
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_development_needs_no_variables_at_all(tmp_path: object) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key in {"PATH", "HOME"} or key.startswith("COVERAGE_")
    }
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.dev"
    env["VAR_DIR"] = str(tmp_path)
    result = run_manage(env, "check")
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_ratelimit_cache_checks_are_silenced_only_outside_production() -> None:
    from config.settings import dev, test

    silenced = ["django_ratelimit.E003", "django_ratelimit.W001"]
    assert silenced == test.SILENCED_SYSTEM_CHECKS
    assert silenced == dev.SILENCED_SYSTEM_CHECKS
    result = run_manage(
        production_environment(),
        "shell",
        "-c",
        "from django.conf import settings; print(settings.SILENCED_SYSTEM_CHECKS, "
        "settings.CACHES['default']['BACKEND'])",
    )
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.strip().splitlines()[-1] == "[] django.core.cache.backends.redis.RedisCache"
    )
