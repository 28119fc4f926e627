"""docs/configuration.md lists every variable the code reads."""

from __future__ import annotations

import re

from tests.conftest import REPO_ROOT

READ = re.compile(r"env\.(?:str|int|bool|list|float|path|db_url|url)\(\s*\"([A-Z0-9_]+)\"")
SOURCES = ("config", "publishing", "subscribers", "channels")


def test_every_environment_variable_read_by_the_code_is_documented() -> None:
    documented = (REPO_ROOT / "docs" / "configuration.md").read_text()
    read: set[str] = set()
    for source in SOURCES:
        for path in (REPO_ROOT / source).rglob("*.py"):
            read.update(READ.findall(path.read_text()))
    assert len(read) > 50
    missing = sorted(name for name in read if f"`{name}`" not in documented)
    assert missing == []
