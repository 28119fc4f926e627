"""Images in an S3 bucket (MEDIA_STORAGE=s3, django-storages) against moto's S3 server, and the
settings that choose the storage."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from moto.server import ThreadedMotoServer
from PIL import Image

from tests.conftest import REPO_ROOT

BUCKET = "publication-media"
REGION = "eu-west-1"
KEYS = {"access_key": "AKIAIOSFODNN7EXAMPLE", "secret_key": "moto-secret-key-not-real"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_storage(s3_endpoint: str, settings: Any) -> str:
    requests.post(f"{s3_endpoint}/moto-api/reset", timeout=5)
    s3 = boto3.client(
        "s3",
        region_name=REGION,
        endpoint_url=s3_endpoint,
        aws_access_key_id=KEYS["access_key"],
        aws_secret_access_key=KEYS["secret_key"],
    )
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    # What docs/deployment.md asks of the bucket: anybody may read its objects.
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{BUCKET}/*",
            }
        ],
    }
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(policy))
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "region_name": REGION,
                "endpoint_url": s3_endpoint,
                "querystring_auth": False,
                "file_overwrite": False,
                **KEYS,
            },
        },
    }
    return s3_endpoint


def test_an_uploaded_image_goes_to_the_bucket_and_its_url_answers(
    alice: User, s3_storage: str
) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (2000, 500), (10, 160, 90)).save(buffer, format="PNG")
    client = Client()
    client.force_login(alice)

    response = client.post(
        reverse("admin:publishing_publication_upload"),
        {"image": io.BytesIO(buffer.getvalue()), "alt": "Green band"},
        headers={"x-requested-with": "XMLHttpRequest"},
    )

    assert response.status_code == 200, response.content
    url = response.json()["url"]
    assert url.startswith(f"{s3_storage}/{BUCKET}/images/")
    assert "Signature" not in url and "X-Amz" not in url  # a plain URL, fit for an email
    fetched = requests.get(url, timeout=10)
    assert fetched.status_code == 200
    with Image.open(io.BytesIO(fetched.content)) as image:
        assert image.format == "PNG"
        assert image.size == (1600, 400)


def _settings_value(expression: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key in {"PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV"}
    }
    environment.update({"DJANGO_SETTINGS_MODULE": "config.settings.test", **env})
    code = f"import django; django.setup(); from django.conf import settings; print({expression})"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_media_storage_s3_configures_django_storages_from_the_environment() -> None:
    result = _settings_value(
        "settings.STORAGES['default']",
        MEDIA_STORAGE="s3",
        MEDIA_S3_BUCKET="media-bucket",
        MEDIA_S3_REGION="eu-west-3",
        MEDIA_S3_CUSTOM_DOMAIN="media.example.org",
    )

    assert result.returncode == 0, result.stderr
    assert "'BACKEND': 'storages.backends.s3.S3Storage'" in result.stdout
    assert "'bucket_name': 'media-bucket'" in result.stdout
    assert "'region_name': 'eu-west-3'" in result.stdout
    assert "'custom_domain': 'media.example.org'" in result.stdout
    assert "'querystring_auth': False" in result.stdout


def test_the_default_is_the_file_system_and_an_unknown_storage_stops_the_process() -> None:
    default = _settings_value("settings.STORAGES['default']['BACKEND']")
    unknown = _settings_value("1", MEDIA_STORAGE="ftp")
    no_bucket = _settings_value("1", MEDIA_STORAGE="s3")

    assert default.stdout.strip() == "django.core.files.storage.FileSystemStorage"
    assert unknown.returncode != 0
    assert "MEDIA_STORAGE must be 'filesystem' or 's3', not 'ftp'." in unknown.stderr
    assert no_bucket.returncode != 0
    assert "MEDIA_S3_BUCKET" in no_bucket.stderr
