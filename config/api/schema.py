"""OpenAPI helpers: the problem-details schema, the error responses each operation documents,
and the bearer security scheme of API keys (drf-spectacular)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers

from config.api.exceptions import PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_BASE

ProblemSerializer = inline_serializer(
    "Problem",
    {
        "type": serializers.CharField(),
        "title": serializers.CharField(),
        "status": serializers.IntegerField(),
        "detail": serializers.CharField(),
        "code": serializers.CharField(),
        "instance": serializers.CharField(required=False),
        "errors": serializers.ListField(
            child=inline_serializer(
                "ProblemFieldError",
                {
                    "field": serializers.CharField(),
                    "message": serializers.CharField(),
                    "code": serializers.CharField(),
                },
            ),
            required=False,
        ),
    },
)

_EXAMPLES: dict[int, tuple[str, str]] = {
    400: ("validation_error", "The request has invalid fields: title"),
    401: ("not_authenticated", "Authentication credentials were not provided."),
    403: ("permission_denied", "This API key lacks the scope publications:write."),
    404: ("not_found", "No Publication matches the given query."),
    405: ("method_not_allowed", 'Method "PUT" not allowed.'),
    409: ("invalid_state", "An archived publication cannot be published."),
    412: ("precondition_failed", "The resource changed since you read it."),
    415: ("unsupported_media_type", 'Unsupported media type "text/plain" in request.'),
    422: ("idempotency_key_reused", "This Idempotency-Key was used with a different body."),
    429: ("throttled", "Request was throttled. Expected available in 12 seconds."),
}
READ_ERRORS = (400, 401, 403, 404, 405, 429)
WRITE_ERRORS = (400, 401, 403, 404, 405, 409, 412, 415, 422, 429)


def problem_responses(statuses: Iterable[int]) -> dict[tuple[int, str], OpenApiResponse]:
    responses = {}
    for status in statuses:
        code, detail = _EXAMPLES[status]
        example: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + code,
            "title": HTTPStatus(status).phrase,
            "status": status,
            "detail": detail,
            "code": code,
        }
        if status == 400:
            example["errors"] = [
                {
                    "field": "title",
                    "message": "Ensure this field has no more than 200 characters.",
                    "code": "max_length",
                }
            ]
        responses[(status, PROBLEM_CONTENT_TYPE)] = OpenApiResponse(
            response=ProblemSerializer,
            description=HTTPStatus(status).phrase + " (problem details, RFC 9457)",
            examples=[OpenApiExample(code, value=example, status_codes=[status])],
        )
    return responses


def document(
    *,
    summary: str,
    description: str,
    responses: dict[int, Any],
    errors: Iterable[int] = READ_ERRORS,
    request: Any = None,
    examples: list[OpenApiExample] | None = None,
    parameters: list[Any] | None = None,
) -> Callable[[Any], Any]:
    """extend_schema with the error responses every operation documents."""
    return extend_schema(
        summary=summary,
        description=description,
        request=request,
        responses={**responses, **problem_responses(errors)},
        examples=examples or [],
        parameters=parameters or [],
    )


class ApiKeyScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "config.api.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key: `Authorization: Bearer pk_XXXXXXXX_...`.",
        }


class StaffSessionScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "config.api.authentication.StaffSessionAuthentication"
    name = "staffSession"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}
