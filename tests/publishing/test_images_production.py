"""Uploaded images under the production settings: a real gunicorn serves `/media/` from the
file-system storage (WhiteNoise serves `/static/` only). tests/config/test_static_files.py
checks that `collectstatic` collects the editor's scripts and stylesheets."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.config.test_settings import production_environment
from tests.config.test_static_files import free_port, get
from tests.conftest import REPO_ROOT

IMAGE = "images/2026/01/" + "0123456789abcdef" * 2 + ".png"


@pytest.fixture(scope="module")
def media_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("media")
    (root / IMAGE).parent.mkdir(parents=True)
    Image.new("RGB", (64, 32), (200, 0, 0)).save(root / IMAGE, format="PNG")
    (root / "images" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def gunicorn_with_media(
    media_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    port = free_port()
    env = production_environment(
        MEDIA_ROOT=str(media_root),
        STATIC_ROOT=str(tmp_path_factory.mktemp("empty-static")),
        ALLOWED_HOSTS="127.0.0.1",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", f"--bind=127.0.0.1:{port}"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if get(base, "/healthz")[0] == 200:
                    break
            except OSError:
                assert process.poll() is None, "gunicorn exited during start-up"
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_stored_image_answers_200_under_gunicorn(gunicorn_with_media: str) -> None:
    status, headers, body = get(gunicorn_with_media, f"/media/{IMAGE}")

    assert status == 200
    assert headers["Content-Type"] == "image/png"
    assert "immutable" in headers["Cache-Control"]
    with Image.open(io.BytesIO(body)) as image:
        assert image.size == (64, 32)


def test_other_files_of_the_storage_are_not_served(gunicorn_with_media: str) -> None:
    assert get(gunicorn_with_media, "/media/images/notes.txt")[0] == 404
    assert get(gunicorn_with_media, "/media/images/../../etc/passwd")[0] == 404
