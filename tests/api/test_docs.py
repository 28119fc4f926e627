"""docs/api.md's curl examples, run in order against a live server: they must all succeed."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from publishing.api_keys import create_api_key
from publishing.models import ApiScope

GUIDE = Path(__file__).resolve().parent.parent.parent / "docs" / "api.md"


def shell_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="needs curl and jq")
def test_the_guides_examples_run_against_a_live_server(
    live_server: Any, transactional_db: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # The guide's examples run against `make run`'s demo data, as a reader's would.
    call_command("load_demo", stdout=io.StringIO())
    key = create_api_key(name="docs", scopes=list(ApiScope.values)).key
    blocks = shell_blocks()
    assert len(blocks) >= 6
    script = "set -euo pipefail\n" + "\n".join(blocks)
    result = subprocess.run(
        ["bash", "-c", script],
        env={**os.environ, "API": live_server.url, "KEY": key},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert '"product-news"' in lines
    assert '["weekly",null]' in lines
    assert "Security advisories" in lines
    assert any(line.startswith("whsec_") and len(line) == 50 for line in lines)
    assert "scheduled" in lines and "draft" in lines
    assert "active" in lines and "unsubscribed" in lines
    assert "whsec_••••LaSw" in lines
    assert '"title"' in lines and '"topics"' in lines
