"""What the doctor reports: findings with a level, what is wrong and what fixes it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Level(StrEnum):
    """How bad a finding is; the command's exit status is the worst level's ``exit_code``."""

    OK = "ok"
    WARNING = "warning"
    FAILURE = "failure"

    @property
    def exit_code(self) -> int:
        """0, 1 or 2, as monitoring plugins count OK, WARNING and CRITICAL."""
        return {Level.OK: 0, Level.WARNING: 1, Level.FAILURE: 2}[self]


@dataclass(frozen=True)
class Finding:
    """One check's result on one subject (a domain, a channel, a setting).

    ``message`` says what was found (what is wrong, when something is); ``fix`` is the exact
    record to publish or setting to change, empty when there is nothing to do; ``source`` names
    the rule (an RFC section or a mailbox provider's guideline).
    """

    check: str
    subject: str
    level: Level
    message: str
    fix: str = ""
    source: str = ""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["level"] = self.level.value
        return data


@dataclass
class Report:
    """Every finding of one run, in the order the checks ran."""

    findings: list[Finding] = field(default_factory=list)

    def add(
        self,
        check: str,
        subject: str,
        level: Level,
        message: str,
        fix: str = "",
        source: str = "",
    ) -> Finding:
        finding = Finding(check, subject, level, message, fix, source)
        self.findings.append(finding)
        return finding

    @property
    def worst(self) -> Level:
        levels = {finding.level for finding in self.findings}
        for level in (Level.FAILURE, Level.WARNING):
            if level in levels:
                return level
        return Level.OK

    def count(self, level: Level) -> int:
        return sum(1 for finding in self.findings if finding.level == level)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.worst.value,
            "counts": {level.value: self.count(level) for level in Level},
            "findings": [finding.as_dict() for finding in self.findings],
        }
