"""A/B subjects through the publications API (decision 0079): read, written, kept by an edit
that does not mention them, refused with the field named."""

from __future__ import annotations

import pytest

from publishing.models import Topic
from tests.api.conftest import ApiClient

pytestmark = pytest.mark.django_db


def test_the_api_reads_and_writes_the_test_and_an_edit_keeps_it(api: ApiClient) -> None:
    Topic.objects.create(name="News", slug="news")
    draft = {"title": "Autumn", "slug": "autumn", "body": "# Hello", "topics": ["news"]}

    created = api.post(
        "/api/v1/publications/",
        {**draft, "subjects": ["Autumn", "Leaves are falling"], "ab_share": 10},
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["subjects"] == ["Autumn", "Leaves are falling"]
    assert (body["ab_share"], body["ab_wait_hours"], body["ab_metric"]) == (10, 4, "clicks")

    url = f"/api/v1/publications/{body['id']}/"

    def etag() -> str:
        return str(api.get(url)["ETag"])

    edited = api.patch(url, {"title": "Autumn!"}, **{"If-Match": etag()})
    assert edited.status_code == 200, edited.json()
    assert edited.json()["subjects"] == ["Autumn", "Leaves are falling"]

    bad = api.patch(url, {"subjects": ["One"]}, **{"If-Match": etag()})
    assert bad.status_code == 400
    assert [error["field"] for error in bad.json()["errors"]] == ["subjects"]
    assert "2 to 4" in bad.json()["errors"][0]["message"]
    out_of_range = api.patch(url, {"ab_share": 80}, **{"If-Match": etag()})
    assert out_of_range.status_code == 400
    assert [error["field"] for error in out_of_range.json()["errors"]] == ["ab_share"]

    cleared = api.patch(url, {"subjects": []}, **{"If-Match": etag()})
    assert cleared.status_code == 200
    assert cleared.json()["subjects"] == []
