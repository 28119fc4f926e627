"""Conditional requests for API views: ETag and Last-Modified on reads, If-Match on writes.

GET and HEAD answers carry a strong ETag: the hash of the representation's JSON as the API
sends it (hashed from the response's own bytes when it is JSON, so it is serialised once), and
Last-Modified where the object has a timestamp; a matching If-None-Match or If-Modified-Since
answers 304.
PUT, PATCH, DELETE and POST actions on one object compare If-Match with the object's current
ETag and answer 412 when it is stale, so two editors cannot overwrite each other silently.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from django.utils.cache import get_conditional_response
from django.utils.http import parse_etags
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

UNSAFE_METHODS = frozenset({"PUT", "PATCH", "DELETE", "POST"})


class PreconditionFailed(exceptions.APIException):
    status_code = 412
    default_detail = "The resource changed since you read it (If-Match does not match its ETag)."
    default_code = "precondition_failed"


def etag_of(content: bytes) -> str:
    return '"' + hashlib.sha256(content).hexdigest()[:32] + '"'


def etag_for(data: Any) -> str:
    """A strong ETag for a representation: the hash of its JSON as JSONRenderer writes it."""
    return etag_of(JSONRenderer().render(data))


def etag_of_response(response: Response) -> str:
    """The response's ETag, from its own rendered bytes when it is the API's plain JSON (DRF's
    JSONRenderer, no indent), else from the JSON its data would render to."""
    renderer = getattr(response, "accepted_renderer", None)
    media_type = getattr(response, "accepted_media_type", "") or ""
    if type(renderer) is JSONRenderer and "indent" not in media_type:
        response.render()
        return etag_of(response.content)
    return etag_for(response.data)


class ConditionalMixin:
    """Mix into a DRF GenericAPIView or ViewSet (before the DRF base class).

    ``last_modified_field`` names the object's timestamp used for Last-Modified on detail reads.
    """

    last_modified_field: str | None = "updated_at"
    _conditional_object: Any = None

    def get_object(self) -> Any:
        obj = super().get_object()  # type: ignore[misc]
        self._conditional_object = obj
        request: Request = self.request  # type: ignore[attr-defined]
        if_match = request.headers.get("If-Match")
        if request.method in UNSAFE_METHODS and if_match:
            current = etag_for(self.get_serializer(obj).data)  # type: ignore[attr-defined]
            etags = parse_etags(if_match)
            if "*" not in etags and current not in etags:
                raise PreconditionFailed()
        return obj

    def get_last_modified(self) -> datetime | None:
        if self._conditional_object is None or not self.last_modified_field:
            return None
        value = getattr(self._conditional_object, self.last_modified_field, None)
        return value if isinstance(value, datetime) else None

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        if (
            request.method in ("GET", "HEAD")
            and response.status_code == 200
            and isinstance(response, Response)
            and response.data is not None
        ):
            etag = etag_of_response(response)
            last_modified = self.get_last_modified()
            response["ETag"] = etag
            if last_modified is not None:
                from django.utils.http import http_date

                response["Last-Modified"] = http_date(last_modified.timestamp())
            conditional = get_conditional_response(
                request._request,
                etag=etag,
                last_modified=int(last_modified.timestamp()) if last_modified else None,
                response=response,
            )
            if conditional is not None and conditional is not response:
                # A bare 304 (or 412) from Django: DRF returns any HttpResponse as is.
                return conditional  # type: ignore[return-value]
        return response
