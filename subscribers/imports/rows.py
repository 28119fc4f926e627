"""Reading an import's CSV: the header's columns, then each row validated and deduplicated, or
recorded in the report as skipped with its line number and why."""

from __future__ import annotations

import csv
import hashlib
import re
import zoneinfo
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple, TextIO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from subscribers.exceptions import ImportFileError
from subscribers.imports.report import ImportReport
from subscribers.models import EMAIL_MAX_LENGTH, Subscriber

NAME_MAX_LENGTH = Subscriber._meta.get_field("name").max_length or 200
COLUMN_ALIASES = {
    "email": ("email", "e-mail", "email_address", "email address", "mail"),
    "name": ("name", "full_name", "full name"),
    "locale": ("locale", "language", "lang"),
    "timezone": ("timezone", "time_zone", "tz"),
}
# Most addresses match this quickly; anything else goes to Django's full validator, so the
# import accepts exactly what the sign-up form accepts.
_SIMPLE_EMAIL = re.compile(
    r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)


class Row(NamedTuple):
    """A valid row, in the column order of the PostgreSQL COPY."""

    line: int
    email: str
    lower: str
    hashed: str
    name: str
    locale: str
    time_zone: str


@dataclass(frozen=True)
class _Layout:
    """Where the header puts each column, and what the locale and time zone may be."""

    email_at: int
    name_at: int | None
    locale_at: int | None
    tz_at: int | None
    languages: set[str]
    default_locale: str
    zones: set[str]


def _columns(header: list[str]) -> dict[str, int]:
    lowered = [column.strip().lower() for column in header]
    positions: dict[str, int] = {}
    for name, aliases in COLUMN_ALIASES.items():
        for alias in aliases:
            if alias in lowered:
                positions[name] = lowered.index(alias)
                break
    if "email" not in positions:
        raise ImportFileError(
            "The first line must be a header naming an email column "
            f"(one of: {', '.join(COLUMN_ALIASES['email'])})."
        )
    return positions


def _layout(reader: Iterator[list[str]]) -> _Layout:
    """Read the header line; ImportFileError when there is none or it names no email column."""
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFileError("The file is empty: expected a header line.") from None
    except csv.Error as exc:
        raise ImportFileError(f"The header line cannot be read: {exc}.") from exc
    columns = _columns(header)
    return _Layout(
        email_at=columns["email"],
        name_at=columns.get("name"),
        locale_at=columns.get("locale"),
        tz_at=columns.get("timezone"),
        languages={code for code, _ in settings.LANGUAGES},
        default_locale=settings.LANGUAGE_CODE,
        zones=zoneinfo.available_timezones(),
    )


def read_rows(
    stream: TextIO, report: ImportReport, on_progress: Callable[[int], None] | None
) -> Iterator[Row]:
    """Validated, deduplicated rows; every other row is recorded in the report as skipped.

    ``on_progress`` receives the number of CSV rows read so far (blank lines included), every
    1,000 rows and once at the end.
    """
    reader = csv.reader(stream)
    layout = _layout(reader)
    # Python's 64-bit string hash of each address already seen: ~70 bytes per row instead of
    # the address itself. Two distinct addresses colliding is ~1 in 10^10 for a million rows.
    seen: set[int] = set()
    count = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            if on_progress is not None:
                on_progress(count)
            return
        except csv.Error as exc:
            report.rows_read += 1
            report.skip(reader.line_num, "malformed", f"line {reader.line_num}: {exc}")
            continue
        line = reader.line_num
        count += 1
        if on_progress is not None and count % 1_000 == 0:
            on_progress(count)
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank lines are not rows
        report.rows_read += 1
        valid = _check_row(row, line, layout, seen, report)
        if valid is not None:
            yield valid


def _check_row(
    row: list[str], line: int, layout: _Layout, seen: set[int], report: ImportReport
) -> Row | None:
    """The row, valid and not seen before (its address is then added to ``seen``); or None,
    the report recording why it is skipped."""
    email_at, name_at = layout.email_at, layout.name_at
    locale_at, tz_at = layout.locale_at, layout.tz_at
    email = row[email_at].strip() if email_at < len(row) else ""
    if not email:
        report.skip(line, "missing_email", f"line {line}: email is empty")
        return None
    if len(email) > EMAIL_MAX_LENGTH:
        report.skip(
            line,
            "invalid_email",
            f"line {line}: email is longer than {EMAIL_MAX_LENGTH} characters",
        )
        return None
    lower = email.lower()
    if _SIMPLE_EMAIL.fullmatch(lower) is None:
        try:
            validate_email(email)
        except ValidationError:
            report.skip(line, "invalid_email", f"line {line}: email is not a valid address")
            return None
    key = hash(lower)
    if key in seen:
        report.skip(line, "duplicate", f"line {line}: same address as an earlier row")
        return None
    name = row[name_at].strip() if name_at is not None and name_at < len(row) else ""
    if len(name) > NAME_MAX_LENGTH or "\x00" in name:
        report.skip(
            line,
            "invalid_name",
            f"line {line}: name is longer than {NAME_MAX_LENGTH} characters",
        )
        return None
    locale = row[locale_at].strip() if locale_at is not None and locale_at < len(row) else ""
    if locale and locale not in layout.languages:
        report.skip(
            line,
            "invalid_locale",
            f"line {line}: locale must be one of {', '.join(sorted(layout.languages))}",
        )
        return None
    time_zone = row[tz_at].strip() if tz_at is not None and tz_at < len(row) else ""
    if time_zone and time_zone not in layout.zones:
        report.skip(
            line, "invalid_timezone", f"line {line}: timezone is not an IANA time zone name"
        )
        return None
    seen.add(key)
    return Row(
        line,
        email,
        lower,
        hashlib.sha256(lower.encode()).hexdigest(),
        name,
        locale or layout.default_locale,
        time_zone or "UTC",
    )


def in_batches(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    """The rows in lists of ``size`` (the last one shorter)."""
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
