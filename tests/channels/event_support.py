"""Helpers for the event webhook tests: an endpoint on a pytest-httpserver receiver that
verifies every request as an integrator would, with the standardwebhooks package."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook, WebhookVerificationError
from werkzeug import Request, Response

from channels import webhook_events
from channels.engine import batches, relay
from channels.models import WebhookEndpoint
from tests.factories import UserFactory


@dataclass
class Receiver:
    """What the endpoint received: each request's headers and body, and which of the
    secrets it knows verified it."""

    secrets: list[str]
    status: int = 200
    answer: str = "ok"
    requests: list[dict[str, Any]] = field(default_factory=list)

    def handler(self, request: Request) -> Response:
        body = request.get_data()
        headers = dict(request.headers)
        verified: list[str] = []
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            verified.append(secret)
        self.requests.append(
            {"headers": headers, "payload": json.loads(body), "verified_by": verified}
        )
        return Response(self.answer, status=self.status)


def make_endpoint(
    httpserver: HTTPServer, event_types: list[str], **fields: Any
) -> tuple[WebhookEndpoint, Receiver]:
    owner = UserFactory.create(username=f"owner{WebhookEndpoint.objects.count()}")
    owner.email = "owner@example.com"
    owner.save()
    endpoint, secret = webhook_events.create_endpoint(
        webhook_events.EndpointInput(
            url=httpserver.url_for("/hooks"),
            event_types=event_types,
            owner_id=owner.pk,
            timeout=2,
            **fields,
        )
    )
    receiver = Receiver([secret])
    httpserver.expect_request("/hooks", method="POST").respond_with_handler(receiver.handler)
    return endpoint, receiver


def send_events(endpoint: WebhookEndpoint) -> batches.BatchReport:
    """Relay what was recorded, then one batch of the endpoint's due deliveries, as the
    workers do (the test's transaction never commits, so no relay task runs by itself)."""
    relay.relay_events()
    return batches.send_batch(endpoint.channel_id)
