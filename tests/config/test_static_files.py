"""Static files under the production settings: collectstatic, then a real gunicorn serves them.

WhiteNoise (decision 0073) answers `/static/` from the web process: the admin's stylesheet and
the Swagger UI's script must answer 200, hashed names with far-future caching, compressed when
the client asks. `.ci/run` runs this module by name.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.config.test_settings import production_environment
from tests.conftest import REPO_ROOT

SWAGGER_SCRIPT = "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"
ADMIN_STYLESHEET = "admin/css/base.css"
THEME_STYLESHEET = "publishing/theme.css"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def static_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A STATIC_ROOT filled by `collectstatic` under the production settings."""
    root = tmp_path_factory.mktemp("static")
    env = production_environment(STATIC_ROOT=str(root))
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "--verbosity", "0"],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        timeout=300,
    )
    return root


@pytest.fixture(scope="module")
def manifest(static_root: Path) -> dict[str, str]:
    """Original name to hashed name, as written by the manifest storage."""
    paths: dict[str, str] = json.loads((static_root / "staticfiles.json").read_text())["paths"]
    return paths


@pytest.fixture(scope="module")
def gunicorn(static_root: Path) -> Iterator[str]:
    """The base URL of a real gunicorn running config.wsgi with config.settings.prod."""
    port = free_port()
    env = production_environment(STATIC_ROOT=str(static_root), ALLOWED_HOSTS="127.0.0.1")
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
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert process.poll() is None, "gunicorn exited during start-up"
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def get(base: str, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    """GET ``path`` from the server at ``base``; the status, the headers and the body."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        # The load balancer terminates TLS and says so: without it, prod redirects to HTTPS.
        connection.request("GET", path, headers={"X-Forwarded-Proto": "https", **headers})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_collectstatic_writes_hashed_names_and_compressed_copies(
    static_root: Path, manifest: dict[str, str]
) -> None:
    hashed = manifest[ADMIN_STYLESHEET]
    assert hashed != ADMIN_STYLESHEET
    assert (static_root / f"{hashed}.gz").is_file()
    assert (static_root / f"{hashed}.br").is_file()


def test_the_admin_stylesheet_answers_200_with_far_future_caching_under_gunicorn(
    gunicorn: str, manifest: dict[str, str]
) -> None:
    status, headers, body = get(gunicorn, f"/static/{manifest[ADMIN_STYLESHEET]}")
    assert status == 200
    assert b"body" in body
    assert "max-age=315360000" in headers["Cache-Control"]
    assert "immutable" in headers["Cache-Control"]


def test_the_swagger_ui_script_answers_200_under_gunicorn(
    gunicorn: str, manifest: dict[str, str]
) -> None:
    status, headers, body = get(gunicorn, f"/static/{manifest[SWAGGER_SCRIPT]}")
    assert status == 200
    assert headers["Content-Type"].startswith(("text/javascript", "application/javascript"))
    assert len(body) > 100_000


def test_static_files_are_compressed_when_the_client_asks(
    gunicorn: str, manifest: dict[str, str]
) -> None:
    path = f"/static/{manifest[SWAGGER_SCRIPT]}"
    status, headers, _ = get(gunicorn, path, **{"Accept-Encoding": "gzip"})
    assert (status, headers.get("Content-Encoding")) == (200, "gzip")
    status, headers, _ = get(gunicorn, path, **{"Accept-Encoding": "br, gzip"})
    assert (status, headers.get("Content-Encoding")) == (200, "br")
    assert "Accept-Encoding" in headers["Vary"]


def test_an_unhashed_name_is_served_without_far_future_caching(gunicorn: str) -> None:
    status, headers, _ = get(gunicorn, f"/static/{ADMIN_STYLESHEET}")
    assert status == 200
    assert "immutable" not in headers.get("Cache-Control", "")


def test_collectstatic_picks_up_the_public_theme_and_gunicorn_serves_it(
    gunicorn: str, manifest: dict[str, str]
) -> None:
    """The public pages' one stylesheet (publishing/static/, docs/theming.md)."""
    hashed = manifest[THEME_STYLESHEET]
    assert hashed != THEME_STYLESHEET
    status, headers, body = get(gunicorn, f"/static/{hashed}")
    assert status == 200
    assert headers["Content-Type"].startswith("text/css")
    assert b"prefers-color-scheme: dark" in body
    assert "immutable" in headers["Cache-Control"]


def test_collectstatic_collects_the_publication_editor(manifest: dict[str, str]) -> None:
    # Without them the publication form answers 500 in production (a name missing from the
    # manifest fails loudly).
    for name in (
        "markdownx/js/markdownx.min.js",
        "markdownx/admin/css/markdownx.min.css",
        "publishing/editor.js",
        "publishing/editor.css",
        "publishing/preview.css",
    ):
        assert name in manifest
