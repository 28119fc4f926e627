"""The OpenAPI schema: committed, up to date, and every operation documented with a summary,
a description, its scope and problem-details error responses; Swagger UI served locally."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import call_command
from django.test import Client

REPO = Path(__file__).resolve().parent.parent.parent
COMMITTED = REPO / "docs" / "openapi.yaml"
REGENERATE = (
    "DJANGO_SETTINGS_MODULE=config.settings.test python manage.py spectacular "
    "--file docs/openapi.yaml --validate"
)


def current_schema() -> str:
    out = StringIO()
    call_command("spectacular", "--validate", stdout=out, stderr=StringIO())
    return out.getvalue()


def test_the_committed_schema_is_up_to_date() -> None:
    assert COMMITTED.read_text() == current_schema(), (
        f"docs/openapi.yaml is out of date; regenerate it with: {REGENERATE}"
    )


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    schema = yaml.safe_load(COMMITTED.read_text())
    return [
        (path, method, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if path.startswith("/api/v1/") and path != "/api/v1/subscribe"
    ]


def test_every_operation_has_a_summary_a_description_and_problem_responses() -> None:
    found = operations()
    assert len(found) >= 30
    for path, method, operation in found:
        where = f"{method.upper()} {path}"
        assert operation.get("summary"), where
        assert len(operation.get("description", "")) > 20, where
        for status in ("401", "403", "404", "429"):
            content = operation["responses"][status]["content"]
            assert "application/problem+json" in content or "application/json" in content, where
            assert next(iter(content.values()))["examples"], where
        if method in ("post", "put", "patch"):
            assert "422" in operation["responses"], where
        assert {"apiKey": []} in operation["security"], where


def test_writes_document_a_request_example() -> None:
    examples = [
        (path, method)
        for path, method, operation in operations()
        if method == "post"
        and path.endswith(("/publications/", "/subscribers/", "/channels/"))
        and next(iter(operation["requestBody"]["content"].values())).get("examples")
    ]
    assert len(examples) == 3


@pytest.mark.django_db
def test_swagger_ui_and_the_schema_are_served_without_a_cdn(client: Client) -> None:
    page = client.get("/api/docs/")
    assert page.status_code == 200
    assert b"swagger-ui" in page.content
    assert b"cdn" not in page.content.lower()
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/publications/" in schema.content
