"""The config toolkit reaches app code by dotted path (decision 0069): the API key settings,
resolved once, and the rate-limit page apps import from config.ratelimit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory, override_settings
from django.utils.module_loading import import_string

from config.api.keys import api_keys
from config.ratelimit import ratelimited
from publishing import api_keys as publishing_keys
from publishing.models import ApiKey


@pytest.fixture(autouse=True)
def resolved_afresh() -> Iterator[None]:
    api_keys.cache_clear()
    yield
    api_keys.cache_clear()


def no_prefix(key: str) -> str | None:
    return None


def test_the_api_key_settings_name_publishings_model_and_functions_resolved_once() -> None:
    resolved = api_keys()
    assert resolved.model is ApiKey
    assert resolved.authenticate is publishing_keys.authenticate_key
    assert resolved.prefix_of is publishing_keys.prefix_of
    assert resolved.snapshot_cache_key is publishing_keys.snapshot_cache_key
    assert api_keys() is resolved
    assert resolved.is_key(ApiKey(name="k", scopes=[]))
    assert not resolved.is_key(None)


def test_overriding_a_setting_resolves_them_again_and_ending_it_restores_them() -> None:
    with override_settings(API_KEY_PREFIX_OF="tests.config.test_toolkit.no_prefix"):
        assert api_keys().prefix_of is no_prefix
    assert api_keys().prefix_of is publishing_keys.prefix_of


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("API_KEY_MODEL", "publishing.NoSuchModel"),
        ("API_KEY_MODEL", "not-a-label"),
        ("API_KEY_AUTHENTICATE", "publishing.api_keys.no_such_function"),
        ("API_KEY_SNAPSHOT_CACHE_KEY", "no_such_module.snapshot_cache_key"),
    ],
)
def test_a_setting_that_does_not_resolve_is_named(setting: str, value: str) -> None:
    with override_settings(**{setting: value}), pytest.raises(ImproperlyConfigured, match=setting):
        api_keys()


def test_the_rate_limit_page_is_the_toolkits_and_answers_429() -> None:
    assert import_string(settings.RATELIMIT_VIEW) is ratelimited
    response = ratelimited(RequestFactory().get("/subscribe/"), Exception("limited"))
    assert response.status_code == 429
    assert response["Retry-After"] == "60"
