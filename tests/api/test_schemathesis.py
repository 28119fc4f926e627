"""schemathesis against the live schema: every operation, a bounded number of generated requests
with a key holding every scope; no server error, and no answer outside the schema."""

from __future__ import annotations

from typing import Any, cast

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from config.api.throttles import IPRateThrottle, KeyRateThrottle
from publishing.api_keys import create_api_key
from publishing.models import ApiScope
from tests.factories import (
    DeliveryFactory,
    PublicationFactory,
    SubscriberFactory,
    SubscriptionFactory,
    TopicFactory,
)

MAX_EXAMPLES = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture
def api_key(transactional_db: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    # Hundreds of requests a minute from one address: the throttles are not under test here.
    monkeypatch.setattr(KeyRateThrottle, "rate", "100000/min", raising=False)
    monkeypatch.setattr(IPRateThrottle, "rate", "100000/min", raising=False)
    topic = TopicFactory.create(slug="news")
    publication = PublicationFactory.create(slug="seed", topics=[topic])
    subscriber = SubscriberFactory.create()
    SubscriptionFactory.create(subscriber=subscriber, topic=topic)
    DeliveryFactory.create(dispatch__publication=PublicationFactory.create(slug="sent"))
    assert publication.pk
    return create_api_key(name="schemathesis", scopes=list(ApiScope.values)).key


def test_the_api_answers_every_generated_request_within_its_schema(
    live_server: Any, api_key: str
) -> None:
    # schemathesis' pytest plugin does not load under pytest 9; its Python API does the same:
    # one hypothesis run of MAX_EXAMPLES generated requests per operation of the live schema.
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/")
    schema.config.update(base_url=live_server.url)
    operations = [
        cast(Any, result).ok()
        for result in schema.include(path_regex=r"^/api/v1/(?!subscribe$)").get_all_operations()
    ]
    assert len(operations) >= 30
    failures: list[str] = []
    statuses: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: Any) -> None:
            response = case.call_and_validate(
                headers={"Authorization": f"Bearer {api_key}"}, checks=CHECKS
            )
            statuses.append(response.status_code)

        try:
            run()
        except Exception as error:
            failures.append(f"{operation.label}: {error}")
    assert not failures, "\n\n".join(failures)
    # The run did reach the API, and not only with errors.
    assert len(statuses) >= 2 * len(operations)
    assert sum(1 for status in statuses if status < 300) >= len(operations) // 2
