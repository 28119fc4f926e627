"""Docker cannot run on our machines: these tests read the files and check their promises."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT

SECRETS = ("SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "POSTGRES_PASSWORD")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    return data


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (REPO_ROOT / "Dockerfile").read_text()


def test_compose_runs_postgres_redis_web_and_worker_each_with_a_healthcheck(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert {"postgres", "redis", "web", "worker"} <= set(services)
    for name in ("postgres", "redis", "web", "worker"):
        assert services[name]["healthcheck"]["test"], name


def test_web_and_worker_wait_for_healthy_dependencies_without_shell_loops(
    compose: dict[str, Any],
) -> None:
    for name in ("web", "worker"):
        service = compose["services"][name]
        depends = service["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
        command = " ".join(service.get("command", []))
        assert not re.search(r"\b(sh -c|while|sleep|nc -z)\b", command), name


def test_secrets_come_from_the_environment_with_no_default(compose: dict[str, Any]) -> None:
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    for secret in SECRETS:
        assert re.search(rf"\$\{{{secret}:\?[^}}]+\}}", text), (
            f"{secret} must use ${{VAR:?message}}"
        )
        assert not re.search(rf"\$\{{{secret}:?-", text), f"{secret} must have no default"
    assert "placeholder" not in text.lower()
    web_env = compose["services"]["web"]["environment"]
    assert web_env["SECRET_KEY"].startswith("${SECRET_KEY:?")


def test_dockerfile_is_multi_stage_and_runs_gunicorn_as_a_non_root_user(dockerfile: str) -> None:
    stages = re.findall(r"^FROM\s+\S+(?:\s+AS\s+(\w+))?", dockerfile, flags=re.MULTILINE)
    assert len(stages) >= 2
    user_lines = re.findall(r"^USER\s+(\S+)", dockerfile, flags=re.MULTILINE)
    assert user_lines, "the image must switch user"
    assert user_lines[-1].split(":")[0] not in {"root", "0"}
    last_user = dockerfile.rindex("\nUSER ")
    assert dockerfile.rindex("\nCMD ") > last_user
    assert '"gunicorn"' in dockerfile[dockerfile.rindex("\nCMD ") :]
    assert "config.wsgi:application" in dockerfile
