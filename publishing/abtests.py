"""A/B subjects of a publication (decision 0079): what an editor may set, and what a version's
subjects mean to the email it sends.

A publication carries no subjects (its title is the subject) or two to four; the first is the
default, sent to everyone when no subject wins. The test settings (share, wait, metric, minimum
sample) are fields of the publication, so a version keeps the test it was published with. The
engine (channels.engine.abtest) runs the test; this module only checks and reads the fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from publishing.exceptions import FieldProblem
from publishing.models import (
    AB_MAX_SUBJECTS,
    AB_MIN_SAMPLE_MAX,
    AB_MIN_SAMPLE_MIN,
    AB_MIN_SUBJECTS,
    AB_SHARE_MAX,
    AB_SHARE_MIN,
    AB_SUBJECT_MAX_LENGTH,
    AB_WAIT_MAX_HOURS,
    AB_WAIT_MIN_HOURS,
    Publication,
)
from publishing.rendering.markup import WHITESPACE

METRICS = tuple(Publication.AbMetric.values)


def check_ab_test(
    subjects: Sequence[Any], share: Any, wait_hours: Any, metric: Any, min_sample: Any
) -> list[FieldProblem]:
    """Every problem of an A/B test's settings, each naming its field and limit. The settings
    are checked even without subjects, so that a bad value never waits in a draft."""
    problems: list[FieldProblem] = []

    def problem(field: str, code: str, message: str) -> None:
        problems.append(FieldProblem(field, code, message))

    if not isinstance(subjects, list | tuple) or not all(isinstance(s, str) for s in subjects):
        problem("subjects", "invalid", "The subjects must be a list of texts.")
    elif subjects:
        if len(subjects) < AB_MIN_SUBJECTS or len(subjects) > AB_MAX_SUBJECTS:
            problem(
                "subjects",
                "count",
                f"{len(subjects)} subject(s) given; an A/B test needs {AB_MIN_SUBJECTS} to "
                f"{AB_MAX_SUBJECTS} (or none, to send the title as the subject).",
            )
        for number, subject in enumerate(subjects, start=1):
            if not subject.strip():
                problem("subjects", "required", f"Subject {number} is empty.")
            elif len(subject) > AB_SUBJECT_MAX_LENGTH:
                problem(
                    "subjects",
                    "too_long",
                    f"Subject {number} has {len(subject)} characters; the limit is "
                    f"{AB_SUBJECT_MAX_LENGTH}.",
                )
            elif any(ord(c) < 32 or ord(c) == 127 for c in subject):
                problem(
                    "subjects",
                    "invalid",
                    f"Subject {number} holds a line break or control character.",
                )
        normalised = [clean_subject(s).casefold() for s in subjects]
        if len(set(normalised)) < len(normalised):
            problem("subjects", "duplicate", "The subjects must differ from each other.")
    for field, value, low, high, unit in (
        ("ab_share", share, AB_SHARE_MIN, AB_SHARE_MAX, "percent"),
        ("ab_wait_hours", wait_hours, AB_WAIT_MIN_HOURS, AB_WAIT_MAX_HOURS, "hours"),
        ("ab_min_sample", min_sample, AB_MIN_SAMPLE_MIN, AB_MIN_SAMPLE_MAX, "messages"),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            problem(field, "out_of_range", f"Give a whole number from {low} to {high} ({unit}).")
    if metric not in METRICS:
        problem("ab_metric", "invalid", f"Choose one of: {', '.join(METRICS)}.")
    return problems


def clean_subject(subject: str) -> str:
    """A subject as sent: one line, spaces collapsed (a newline would end the header)."""
    return WHITESPACE.sub(" ", subject).strip()


def subjects_of(version: Any) -> list[str]:
    """The A/B subjects of a version (a history row or a publication); empty without a test."""
    subjects = getattr(version, "subjects", None) or []
    return [clean_subject(s) for s in subjects] if len(subjects) >= AB_MIN_SUBJECTS else []


def subject_for(version: Any, variant: int | None) -> str | None:
    """The subject a delivery of ``variant`` carries: that subject of the version's test, the
    first when the delivery has none (a resend, or mail sent before the test was set); None
    when the version has no A/B subjects (the title is the subject)."""
    subjects = subjects_of(version)
    if not subjects:
        return None
    if variant is None or not 0 <= variant < len(subjects):
        return subjects[0]
    return subjects[variant]


def test_size(audience: int, share: int) -> int:
    """How many of ``audience`` get the test at ``share`` percent: rounded up, so a small
    audience still tests (the fan-out's SQL computes the same)."""
    return (audience * share + 99) // 100
