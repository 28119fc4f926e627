"""Every API error as RFC 9457 problem details (application/problem+json), in one place.

DRF's exceptions arrive through ``problem_exception_handler`` (REST_FRAMEWORK's
EXCEPTION_HANDLER); URLs under /api/ that match no view, and unhandled errors, arrive through
``handler404``/``handler500`` in config/urls.py, which call ``problem_response``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://publishing.example.org/problems/"


class ProblemError(exceptions.APIException):
    """An API error with a stable machine-readable ``code`` (the problem type's last segment).

    Services raise ``config.errors.ProjectError``s; API views translate them into this (or into
    a validation error) in ``config.api.views.translate``.
    """

    def __init__(self, detail: str, *, code: str, status_code: int = 400) -> None:
        self.status_code = status_code
        super().__init__(detail=detail, code=code)


def flatten_errors(data: Any, prefix: str = "") -> list[dict[str, str]]:
    """Turn DRF's nested error structure into a flat list of {field, message, code}."""
    errors: list[dict[str, str]] = []
    if isinstance(data, Mapping):
        for key, value in data.items():
            field = key if key != "non_field_errors" else ""
            name = f"{prefix}.{field}" if prefix and field else (field or prefix)
            errors.extend(flatten_errors(value, name))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            if isinstance(value, Mapping | list):
                errors.extend(flatten_errors(value, f"{prefix}[{index}]" if prefix else str(index)))
            else:
                errors.extend(flatten_errors(value, prefix))
    else:
        code = getattr(data, "code", "invalid")
        errors.append({"field": prefix, "message": str(data), "code": str(code)})
    return errors


def problem_body(
    status: int,
    *,
    detail: str,
    code: str,
    instance: str = "",
    errors: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = errors
    return body


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """REST_FRAMEWORK["EXCEPTION_HANDLER"]: DRF's handling, reshaped as problem details."""
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = exception_handler(exc, context)
    request = context.get("request")
    instance = request.get_full_path() if request is not None else ""
    if response is None:
        # Not an API exception: a bug. Log it (redacted by the logging filter) and answer 500.
        logger.error("Unhandled API error", exc_info=exc)
        response = Response(status=500)
        response.data = problem_body(
            500, detail="An unexpected error occurred.", code="server_error", instance=instance
        )
        response.content_type = PROBLEM_CONTENT_TYPE
        return response

    if isinstance(exc, exceptions.ValidationError):
        errors = flatten_errors(exc.detail)
        detail = "The request has invalid fields: " + ", ".join(
            sorted({error["field"] or "(request)" for error in errors})
        )
        response.data = problem_body(
            response.status_code,
            detail=detail,
            code="validation_error",
            instance=instance,
            errors=errors,
        )
    elif isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else "error"
        response.data = problem_body(
            response.status_code, detail=str(exc.detail), code=code, instance=instance
        )
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


def problem_response(request: HttpRequest, status: int, detail: str, code: str) -> HttpResponse:
    return JsonResponse(
        problem_body(status, detail=detail, code=code, instance=request.get_full_path()),
        status=status,
        content_type=PROBLEM_CONTENT_TYPE,
    )
