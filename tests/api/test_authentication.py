"""API keys: shown once, stored as a hash with a visible prefix, refused when missing, wrong,
expired or revoked (401), last use recorded at most once a minute; staff sessions with CSRF."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.cache import cache_add_json, cache_get_json, cache_set_json
from publishing.api_keys import (
    authenticate_key,
    create_api_key,
    hash_key,
    revoke_api_key,
    snapshot,
    snapshot_cache_key,
)
from publishing.models import ApiKey, Publication
from tests.api.conftest import ApiClient, KeyMaker
from tests.factories import TopicFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_the_command_prints_the_key_once_and_stores_only_its_hash_and_prefix() -> None:
    UserFactory.create(username="integrator")
    out, err = StringIO(), StringIO()
    call_command(
        "create_api_key",
        "--name=CRM",
        "--scopes=publications:read,subscribers:read",
        "--owner=integrator",
        "--expires=2099-01-01T00:00:00",
        stdout=out,
        stderr=err,
    )
    key = out.getvalue().strip()
    stored = ApiKey.objects.get()
    assert key.startswith(stored.prefix + "_")
    assert stored.prefix.startswith("pk_") and len(stored.prefix) == 11
    assert stored.hashed_key == hash_key(key)
    assert key not in str(ApiKey.objects.values().get())
    assert stored.scopes == ["publications:read", "subscribers:read"]
    assert stored.owner is not None and stored.owner.username == "integrator"
    assert stored.expires_at is not None and stored.expires_at.year == 2099
    assert "not shown again" in err.getvalue()
    assert ApiClient(key).get("/api/v1/topics/").status_code == 200


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--name=x", "--scopes=publications:everything"], "scopes: Unknown scope"),
        (["--name=x", "--scopes=publications:read", "--owner=nobody"], "owner: no user"),
        (["--name=x", "--scopes=publications:read", "--expires=soon"], "expires:"),
        (["--name=x", "--scopes=publications:read", "--expires=2001-01-01"], "expires:"),
        (["--name=" + "x" * 101, "--scopes=publications:read"], "name:"),
    ],
)
def test_the_command_names_the_bad_argument(arguments: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("create_api_key", *arguments, stdout=StringIO(), stderr=StringIO())
    assert not ApiKey.objects.exists()


def test_a_request_without_credentials_gets_401_with_the_bearer_challenge() -> None:
    response = ApiClient().get("/api/v1/publications/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize(
    "header",
    ["Bearer pk_nothere_xxxxxxxx", "Bearer", "Bearer a b", "Bearer " + "x" * 300],
)
def test_an_unknown_or_malformed_key_gets_401(header: str) -> None:
    response = ApiClient().get("/api/v1/topics/", Authorization=header)
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_a_key_with_a_wrong_secret_but_a_real_prefix_gets_401(make_key: KeyMaker) -> None:
    key = make_key()
    forged = key[:12] + ("A" if key[12] != "A" else "B") + key[13:]
    assert ApiClient(forged).get("/api/v1/topics/").status_code == 401


def test_an_expired_key_gets_401(make_key: KeyMaker) -> None:
    key = make_key(expires_at=timezone.now() + timedelta(hours=1))
    assert ApiClient(key).get("/api/v1/topics/").status_code == 200
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        response = ApiClient(key).get("/api/v1/topics/")
    assert response.status_code == 401
    assert response.json()["detail"] == "The API key is not valid, or has expired."


def test_a_revoked_key_gets_401_from_then_on() -> None:
    created = create_api_key(name="x", scopes=["publications:read"])
    assert ApiClient(created.key).get("/api/v1/topics/").status_code == 200
    revoke_api_key(created.api_key)
    revoke_api_key(created.api_key)
    assert ApiClient(created.key).get("/api/v1/topics/").status_code == 401
    assert ApiKey.objects.get().revoked_at is not None


def test_last_use_is_written_at_most_once_a_minute(
    make_key: KeyMaker, django_assert_num_queries: object
) -> None:
    key = make_key("publications:read")
    with time_machine.travel("2026-11-01 10:00:00+00:00", tick=False):
        ApiClient(key).get("/api/v1/topics/")
        first = ApiKey.objects.get().last_used_at
    with time_machine.travel("2026-11-01 10:00:30+00:00", tick=False):
        ApiClient(key).get("/api/v1/topics/")
        assert ApiKey.objects.get().last_used_at == first
    with time_machine.travel("2026-11-01 10:01:01+00:00", tick=False):
        ApiClient(key).get("/api/v1/topics/")
        later = ApiKey.objects.get().last_used_at
    assert first is not None and later is not None
    assert later - first == timedelta(seconds=61)


def test_a_staff_session_works_for_the_browsable_api_and_needs_csrf_to_write() -> None:
    TopicFactory.create(slug="news")
    admin = User.objects.create_superuser("root", "root@example.com", "pw")
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    page = client.get("/api/v1/publications/", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert b"Publication" in page.content
    body = {"title": "T", "slug": "t", "body": "b", "topics": ["news"]}
    refused = client.post("/api/v1/publications/", body, content_type="application/json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    client.get("/admin/login/")
    token = client.cookies["csrftoken"].value
    created = client.post(
        "/api/v1/publications/",
        body,
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    assert created.status_code == 201
    assert created.json()["slug"] == "t"


def test_a_non_staff_session_is_not_enough() -> None:
    user = UserFactory.create(is_staff=False)
    client = Client()
    client.force_login(user)
    assert client.get("/api/v1/topics/").status_code == 401


def test_the_admin_shows_a_new_key_once_and_stores_its_hash(admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/publishing/apikey/add/",
        {"name": "Zapier", "scopes": ["deliveries:read"], "expires_at": ""},
        follow=True,
    )
    assert response.status_code == 200
    stored = ApiKey.objects.get()
    shown = [str(m) for m in response.context["messages"]]
    key = shown[0].split("The new API key is ")[1].split(" ")[0]
    assert stored.hashed_key == hash_key(key)
    assert stored.scopes == ["deliveries:read"]
    again = admin_client.get(f"/admin/publishing/apikey/{stored.pk}/change/")
    assert key.encode() not in again.content
    assert stored.prefix.encode() in again.content


def test_the_admin_revokes_keys(admin_client: Client) -> None:
    created = create_api_key(name="old", scopes=["deliveries:read"])
    admin_client.post(
        "/admin/publishing/apikey/",
        {"action": "revoke", "_selected_action": [created.api_key.pk]},
    )
    assert ApiKey.objects.get().revoked_at is not None
    assert ApiClient(created.key).get("/api/v1/deliveries/").status_code == 401


def test_the_admin_refuses_an_expiry_in_the_past(admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/publishing/apikey/add/",
        {
            "name": "x",
            "scopes": ["deliveries:read"],
            "expires_at_0": "2001-01-01",
            "expires_at_1": "00:00:00",
        },
    )
    assert response.status_code == 200
    assert b"The expiry date is in the past." in response.content
    assert not ApiKey.objects.exists()


# --- The key's cached snapshot (decision 0054) ---------------------------------------------------


@pytest.fixture(params=["local memory", "redis"])
def any_cache(request: pytest.FixtureRequest) -> None:
    """Each snapshot test runs on the test settings' cache and on the real Redis."""
    if request.param == "redis":
        request.getfixturevalue("redis_cache")


def test_a_known_key_is_checked_without_a_query_once_its_snapshot_is_cached(
    any_cache: None, django_assert_num_queries: Any
) -> None:
    created = create_api_key(name="x", scopes=["publications:read"])
    with django_assert_num_queries(2):  # the lookup, and the first use recorded
        assert authenticate_key(created.key) is not None
    with django_assert_num_queries(0):
        found = authenticate_key(created.key)
    assert found is not None
    assert found.pk == created.api_key.pk
    assert found.scopes == ["publications:read"]
    assert found.hashed_key == created.api_key.hashed_key


def test_a_wrong_secret_is_refused_from_the_snapshot_too(any_cache: None) -> None:
    created = create_api_key(name="x", scopes=["publications:read"])
    assert authenticate_key(created.key) is not None
    forged = created.key[:-1] + ("A" if created.key[-1] != "A" else "B")
    assert authenticate_key(forged) is None


def test_a_cached_key_revoked_in_the_admin_is_refused_on_the_next_request(
    any_cache: None, admin_client: Client
) -> None:
    created = create_api_key(name="x", scopes=["publications:read"])
    assert ApiClient(created.key).get("/api/v1/topics/").status_code == 200
    response = admin_client.post(
        "/admin/publishing/apikey/",
        {"action": "revoke", "_selected_action": [created.api_key.pk]},
    )
    assert response.status_code == 302
    assert ApiClient(created.key).get("/api/v1/topics/").status_code == 401


def test_a_cached_key_whose_owner_is_deactivated_or_deleted_is_refused(any_cache: None) -> None:
    owner = UserFactory.create()
    created = create_api_key(name="x", scopes=["publications:read"], owner=owner)
    assert ApiClient(created.key).get("/api/v1/topics/").status_code == 200
    owner.is_active = False
    owner.save()
    assert ApiClient(created.key).get("/api/v1/topics/").status_code == 401
    owner.is_active = True
    owner.save()
    assert ApiClient(created.key).get("/api/v1/topics/").status_code == 200
    owner.delete()
    assert ApiClient(created.key).get("/api/v1/topics/").status_code == 401


def test_a_login_by_the_owner_keeps_the_snapshot(
    any_cache: None, django_assert_num_queries: Any
) -> None:
    owner = UserFactory.create()
    created = create_api_key(name="x", scopes=["publications:read"], owner=owner)
    assert authenticate_key(created.key) is not None
    owner.last_login = timezone.now()
    owner.save(update_fields=["last_login"])
    with django_assert_num_queries(0):
        assert authenticate_key(created.key) is not None


def test_a_request_that_read_the_key_before_its_revocation_cannot_cache_the_old_state(
    any_cache: None,
) -> None:
    created = create_api_key(name="x", scopes=["publications:read"])
    stale = snapshot(ApiKey.objects.get(), owner_active=True)  # read before the revocation
    revoke_api_key(created.api_key)
    # The late request's write finds the tombstone and stores nothing.
    assert not cache_add_json(snapshot_cache_key(created.api_key.prefix), stale, 60)
    assert authenticate_key(created.key) is None
    assert ApiClient(created.key).get("/api/v1/topics/").status_code == 401


def test_an_expired_key_is_refused_from_its_snapshot(any_cache: None) -> None:
    created = create_api_key(
        name="x", scopes=["publications:read"], expires_at=timezone.now() + timedelta(seconds=30)
    )
    assert authenticate_key(created.key) is not None
    later = timezone.now() + timedelta(seconds=31)
    assert authenticate_key(created.key, now=later) is None


def test_a_read_with_an_owned_key_makes_no_query_for_the_key_or_its_owner(
    any_cache: None,
) -> None:
    TopicFactory.create(slug="news")
    owner = UserFactory.create()
    owned = ApiClient(create_api_key(name="x", scopes=["publications:read"], owner=owner).key)
    system = ApiClient(create_api_key(name="y", scopes=["publications:read"]).key)
    for client in (owned, system):
        assert client.get("/api/v1/topics/").status_code == 200  # fills the snapshot
    for client in (owned, system):
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/api/v1/topics/").json()["count"] == 1
        tables = " ".join(query["sql"] for query in queries.captured_queries)
        assert "publishing_topic" in tables
        assert "publishing_apikey" not in tables
        assert "auth_user" not in tables


def test_a_write_with_an_owned_key_acts_as_its_owner(any_cache: None) -> None:
    TopicFactory.create(slug="news")
    owner = User.objects.create_superuser("chief", "chief@example.com", "pw")
    client = ApiClient(create_api_key(name="x", scopes=["publications:write"], owner=owner).key)
    body = {"title": "T", "slug": "t", "body": "b", "topics": ["news"]}
    assert client.get("/api/v1/topics/").status_code == 403  # the snapshot is cached now
    created = client.post("/api/v1/publications/", body)
    assert created.status_code == 201
    version = Publication.history.get()
    assert version.history_user == owner


def test_the_tombstone_is_written_again_once_the_revocation_commits(
    any_cache: None, django_capture_on_commit_callbacks: Any
) -> None:
    created = create_api_key(name="x", scopes=["publications:read"])
    key = snapshot_cache_key(created.api_key.prefix)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        revoke_api_key(created.api_key)
    # A request that read the key before the commit filled the slot meanwhile (say the
    # tombstone expired); the commit buries it again.
    cache_set_json(key, snapshot(ApiKey.objects.get(), owner_active=True), 60)
    for callback in callbacks:
        callback()
    assert cache_get_json(key) == {"forgotten": True}
    assert authenticate_key(created.key) is None
