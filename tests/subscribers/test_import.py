from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from publishing.models import Topic
from subscribers import services
from subscribers.exceptions import ImportFileError
from subscribers.models import ConsentEvent, Subscriber, Subscription, Suppression
from tests.factories import SubscriberFactory, SuppressionFactory


def csv_bytes(*lines: str) -> io.BytesIO:
    return io.BytesIO(("\n".join(lines) + "\n").encode())


GOOD_AND_BAD = (
    "Email,Name,Locale,Timezone",
    "alice@example.com,Alice,en,Europe/Paris",  # line 2
    "not-an-address,Nobody,,",  # 3
    "ALICE@example.com,Alice again,,",  # 4: duplicate
    ",No address,,",  # 5
    "carol@example.com,Carol,xx,",  # 6: bad locale
    "dave@example.com,Dave,,Mars/Base",  # 7: bad time zone
    "erin@example.com,Erin,fr,",  # 8
    "",  # blank line: not a row
    "frank@example.com",  # 10: short row
)


@pytest.mark.django_db
def test_it_imports_good_rows_and_reports_each_bad_one_with_its_line() -> None:
    report = services.import_subscribers(csv_bytes(*GOOD_AND_BAD))

    assert (report.rows_read, report.created, report.updated, report.skipped) == (8, 3, 0, 5)
    assert [line for line, _ in report.problems] == [3, 4, 5, 6, 7]
    assert "line 3: email is not a valid address" in dict(report.problems).values()
    assert report.reasons["duplicate"] == 1
    stored = dict(Subscriber.objects.values_list("email", "status"))
    assert stored == {
        "alice@example.com": "pending",
        "erin@example.com": "pending",
        "frank@example.com": "pending",
    }
    erin = Subscriber.objects.get(email="erin@example.com")
    assert (erin.locale, erin.timezone, erin.source) == ("fr", "UTC", "import")
    assert Subscriber.objects.get(email="alice@example.com").timezone == "Europe/Paris"


@pytest.mark.django_db
def test_it_sets_the_email_hash_that_suppression_and_fan_out_rely_on() -> None:
    from subscribers.models import email_hash

    services.import_subscribers(csv_bytes("email", "Mixed.Case@Example.com"))

    assert Subscriber.objects.get().email_hash == email_hash("mixed.case@example.com")


@pytest.mark.django_db
def test_it_updates_existing_subscribers_without_regard_to_case(news: Topic) -> None:
    SubscriberFactory.create(email="Alice@Example.com", name="Old")

    report = services.import_subscribers(
        csv_bytes("email,name", "alice@EXAMPLE.com,New"), services.ImportOptions(topics=["news"])
    )

    assert (report.created, report.updated) == (0, 1)
    alice = Subscriber.objects.get()
    assert alice.name == "New"
    assert alice.email == "Alice@Example.com"
    assert list(alice.subscriptions.values_list("topic__slug", flat=True)) == ["news"]


@pytest.mark.django_db
def test_it_never_re_adds_suppressed_or_departed_addresses() -> None:
    SuppressionFactory.create(email="bounced@example.com", reason=Suppression.Reason.BOUNCED)
    SubscriberFactory.create(email="gone@example.com", status=Subscriber.Status.COMPLAINED)

    report = services.import_subscribers(
        csv_bytes("email", "bounced@example.com", "GONE@example.com", "ok@example.com"),
        services.ImportOptions(confirmed=True, consent_note="Signed at the fair"),
    )

    assert (report.created, report.skipped) == (1, 2)
    assert report.problems == [
        (2, "line 2: the address is on the suppression list (bounced); not re-added"),
        (3, "line 3: the subscriber with this address has status complained; not re-added"),
    ]
    assert Subscriber.objects.get(email="gone@example.com").status == "complained"
    assert not Subscriber.objects.filter(email="bounced@example.com").exists()


@pytest.mark.django_db
def test_it_activates_confirmed_rows_subscribes_topics_and_logs_consent(
    news: Topic, events: Topic
) -> None:
    SubscriberFactory.create(email="pending@example.com", status="pending", confirmed_at=None)

    report = services.import_subscribers(
        csv_bytes("email", "new@example.com", "pending@example.com"),
        services.ImportOptions(
            topics=["news", "events"], confirmed=True, consent_note="Paper form, May 2026"
        ),
    )

    assert (report.created, report.updated) == (1, 1)
    assert set(Subscriber.objects.values_list("status", flat=True)) == {"active"}
    assert Subscriber.objects.filter(confirmed_at__isnull=True).count() == 0
    assert Subscription.objects.count() == 4
    events_logged = ConsentEvent.objects.filter(action=ConsentEvent.Action.IMPORT)
    assert events_logged.count() == 2
    first = events_logged.first()
    assert first is not None
    assert first.detail == {"via": "import", "note": "Paper form, May 2026"}


@pytest.mark.django_db
def test_it_refuses_confirmed_without_a_consent_note_and_unknown_topics() -> None:
    with pytest.raises(ImportFileError, match="consent_note"):
        services.import_subscribers(
            csv_bytes("email", "a@example.com"), services.ImportOptions(confirmed=True)
        )
    with pytest.raises(ImportFileError, match="topics: no topic with the slug nope"):
        services.import_subscribers(
            csv_bytes("email", "a@example.com"), services.ImportOptions(topics=["nope"])
        )
    assert not Subscriber.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (b"name,locale\nBob,en\n", "email column")],
)
def test_it_refuses_a_file_without_an_email_header(content: bytes, message: str) -> None:
    with pytest.raises(ImportFileError, match=message):
        services.import_subscribers(io.BytesIO(content))


@pytest.mark.django_db
def test_it_keeps_good_rows_around_undecodable_and_nul_bytes() -> None:
    content = (
        b"email,name\nok1@example.com,A\n\xff\xfe@bad.com,B\n"
        b"ok2@example.com,C\x00D\nok3@example.com,E\n"
    )

    report = services.import_subscribers(io.BytesIO(content))

    assert report.created == 2
    assert sorted(Subscriber.objects.values_list("email", flat=True)) == [
        "ok1@example.com",
        "ok3@example.com",
    ]
    assert [line for line, _ in report.problems] == [3, 4]


@pytest.mark.django_db
def test_it_imports_in_batches_and_the_result_is_the_same(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text(
        "email\n" + "".join(f"p{n}@example.com\n" for n in range(25)) + "p3@example.com\n"
    )

    report = services.import_subscribers(path, services.ImportOptions(batch_size=4))

    assert (report.rows_read, report.created, report.skipped) == (26, 25, 1)
    assert report.problems == [(27, "line 27: same address as an earlier row")]
    assert Subscriber.objects.count() == 25


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_imports_with_parallel_writers_outside_a_transaction(
    tmp_path: Path, news: Topic
) -> None:
    SuppressionFactory.create(email="p7@example.com")
    path = tmp_path / "people.csv"
    path.write_text("email\n" + "".join(f"p{n}@example.com\n" for n in range(500)) + "bad\n")

    report = services.import_subscribers(
        path,
        services.ImportOptions(
            topics=["news"], batch_size=37, confirmed=True, consent_note="test", workers=3
        ),
    )

    assert (report.rows_read, report.created, report.skipped) == (501, 499, 2)
    assert [line for line, _ in report.problems] == [9, 502]
    assert Subscriber.objects.filter(status="active").count() == 499
    assert Subscription.objects.count() == 499
    assert ConsentEvent.objects.filter(action="import").count() == 499


@pytest.mark.django_db
def test_the_command_prints_the_report_and_each_skipped_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], news: Topic
) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(b"email\nok@example.com\nbroken\n")

    call_command("import_subscribers", str(path), "--topics", "news", "--no-progress")

    out, err = capsys.readouterr()
    assert "Rows read: 2; created: 1; updated: 0; skipped: 1 (invalid_email: 1)" in out
    assert "skipped line 3: email is not a valid address" in err
    assert Subscription.objects.get().topic == news


@pytest.mark.django_db
def test_the_command_names_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="does not exist"):
        call_command("import_subscribers", str(tmp_path / "missing.csv"))
    path = tmp_path / "people.csv"
    path.write_text("email\na@example.com\n")
    with pytest.raises(CommandError, match="consent_note"):
        call_command("import_subscribers", str(path), "--confirmed")
    with pytest.raises(CommandError, match="batch-size"):
        call_command("import_subscribers", str(path), "--batch-size", "0")


@pytest.mark.django_db
def test_export_writes_what_import_reads_back(tmp_path: Path, news: Topic) -> None:
    services.import_subscribers(
        csv_bytes("email,name", "a@example.com,Ann", "b@example.com,Ben"),
        services.ImportOptions(topics=["news"]),
    )
    path = tmp_path / "export.csv"

    call_command("export_subscribers", "--output", str(path))

    lines = path.read_text().splitlines()
    assert (
        lines[0]
        == "email,name,status,locale,timezone,email_format,source,created_at,confirmed_at,topics"
    )
    assert len(lines) == 3
    assert lines[1].startswith("a@example.com,Ann,pending,en,UTC,html,import,")
    assert lines[1].endswith(",news")
    Subscriber.objects.all().delete()
    report = services.import_subscribers(path)
    assert report.created == 2


@pytest.mark.django_db
def test_it_skips_unreadable_and_oversized_rows_and_keeps_going() -> None:
    huge = "x" * 140_000  # over the csv module's field limit: a malformed row
    content = (
        f'email,name\nok1@example.com,A\n"{huge}",B\n{"a" * 250}@example.com,C\n'
        f"ok2@example.com,{'n' * 201}\nok3@example.com,D\n"
    ).encode()

    report = services.import_subscribers(io.BytesIO(content))

    assert report.created == 2
    assert report.reasons == {"malformed": 1, "invalid_email": 1, "invalid_name": 1}
    explanations = dict(report.problems)
    assert "field larger than field limit" in explanations[3]
    assert explanations[4] == "line 4: email is longer than 254 characters"
    assert explanations[5] == "line 5: name is longer than 200 characters"


@pytest.mark.django_db
def test_it_refuses_a_header_it_cannot_read() -> None:
    with pytest.raises(ImportFileError, match="header line cannot be read"):
        services.import_subscribers(io.BytesIO(b'"' + b"e" * 140_000 + b'"\n'))


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.django_db
def test_it_shows_a_progress_bar_on_a_terminal_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "people.csv"
    path.write_text("email\n" + "".join(f"p{n}@example.com\n" for n in range(10_050)))
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)

    services.import_subscribers(path, services.ImportOptions(progress=True))

    assert "Importing" in terminal.getvalue()
    assert "100%" in terminal.getvalue()
    assert Subscriber.objects.count() == 10_050


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_row_the_database_refuses_never_loses_the_good_ones() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        # Stands for any refusal the validation did not foresee; rolled back with the test.
        cursor.execute(
            "ALTER TABLE subscribers_subscriber ADD CONSTRAINT test_refuse_evil"
            " CHECK (email <> 'evil@example.com')"
        )

    report = services.import_subscribers(
        csv_bytes("email", "a@example.com", "evil@example.com", "b@example.com")
    )

    assert (report.created, report.skipped) == (2, 1)
    assert report.problems == [
        (
            3,
            "line 3: refused by the database: new row for relation"
            ' "subscribers_subscriber" violates check constraint "test_refuse_evil"',
        )
    ]
    assert sorted(Subscriber.objects.values_list("email", flat=True)) == [
        "a@example.com",
        "b@example.com",
    ]


@pytest.mark.django_db
def test_a_row_the_database_refuses_is_reported_with_the_databases_reason() -> None:
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("a SQLite trigger stands for the refusal; PostgreSQL has its own test above")
    with connection.cursor() as cursor:
        # Rolled back with the test, like any other statement.
        cursor.execute(
            "CREATE TRIGGER test_refuse_evil BEFORE INSERT ON subscribers_subscriber"
            " WHEN NEW.email = 'evil@example.com'"
            " BEGIN SELECT RAISE(ABORT, 'evil addresses are refused here'); END"
        )

    report = services.import_subscribers(
        csv_bytes("email", "a@example.com", "evil@example.com", "b@example.com")
    )

    assert (report.created, report.skipped) == (2, 1)
    assert report.problems == [
        (3, "line 3: refused by the database: evil addresses are refused here")
    ]


@pytest.mark.django_db
def test_the_import_commands_progress_bar_counts_rows_not_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "people.csv"
    path.write_text(
        "email,name\n" + "".join(f"p{n}@example.com,Person {n}\n" for n in range(2_500))
    )
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)

    call_command("import_subscribers", str(path), stdout=io.StringIO())

    bar = terminal.getvalue()
    assert "2500/2500" in bar
    assert " rows" in bar
    assert "kB" not in bar and "B/s" not in bar
