"""A/B subjects (decision 0079): the test share and its even split, the decision on fixed data,
and exactly one message, with one subject, per subscriber when two workers decide at once."""

from __future__ import annotations

import email
import email.policy
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.utils import ConnectionHandler
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_q.conf import Conf

from channels import ab_statistics
from channels.ab_statistics import Sample, two_proportion_z_test, wilson_interval
from channels.engine import abtest, batches, fanout
from channels.models import Channel, Delivery, DeliveryEngagement
from publishing.models import Dispatch, Topic
from subscribers.models import Subscriber
from tests.api.conftest import make_key as make_key  # a fixture, used by name
from tests.channels.conftest import SmtpSink, add_subscribers, make_dispatch
from tests.concurrency import run_at_once
from tests.factories import PublicationFactory, UserFactory

SUBJECTS = ["Spring is here", "Ten things to do in spring"]

# --- The statistics, against published values ---------------------------------------------------


def test_the_z_test_matches_known_values() -> None:
    # 200 of 1000 against 150 of 1000: z = 2.9424, p = 0.00326 (statsmodels'
    # proportions_ztest gives the same, pooled and two-sided).
    z, p = two_proportion_z_test(200, 1000, 150, 1000)
    assert z == pytest.approx(2.94245, abs=1e-4)
    assert p == pytest.approx(0.003256, abs=1e-5)
    # Symmetric, and no difference at all gives p = 1.
    assert two_proportion_z_test(150, 1000, 200, 1000)[1] == pytest.approx(p)
    assert two_proportion_z_test(30, 100, 30, 100) == (0.0, 1.0)
    assert two_proportion_z_test(0, 100, 0, 100) == (0.0, 1.0)


def test_wilson_intervals_match_known_values() -> None:
    assert wilson_interval(50, 100) == pytest.approx((0.40383, 0.59617), abs=1e-5)
    # 81 of 263, the example of Newcombe (1998) and statsmodels' proportion_confint.
    assert wilson_interval(81, 263) == pytest.approx((0.25529, 0.36621), abs=1e-5)
    low, high = wilson_interval(0, 10)
    assert low == 0.0
    assert high == pytest.approx(0.27753, abs=1e-5)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_a_clear_winner_wins() -> None:
    decision = ab_statistics.decide([Sample(20, 400), Sample(60, 400)], min_sample=100)
    assert decision.significant
    assert decision.winner == 1
    assert decision.reason == ab_statistics.REASON_SIGNIFICANT
    assert decision.p_value is not None and decision.p_value < 0.001


def test_no_significant_difference_sends_the_first_subject() -> None:
    # 10% against 12%: p = 0.37.
    decision = ab_statistics.decide([Sample(40, 400), Sample(48, 400)], min_sample=100)
    assert not decision.significant
    assert decision.best == 1
    assert decision.winner == 0
    assert decision.reason == ab_statistics.REASON_NOT_SIGNIFICANT
    assert decision.p_value == pytest.approx(two_proportion_z_test(48, 400, 40, 400)[1])


def test_a_sample_below_the_minimum_sends_the_first_subject() -> None:
    decision = ab_statistics.decide([Sample(0, 50), Sample(40, 50)], min_sample=100)
    assert decision.winner == 0
    assert decision.reason == ab_statistics.REASON_SAMPLE_TOO_SMALL


def test_with_more_subjects_the_p_values_are_corrected() -> None:
    # Best (3) against 1: p = 0.021 alone, 0.063 once multiplied by the 3 comparisons.
    samples = [Sample(50, 500), Sample(50, 500), Sample(50, 500), Sample(72, 500)]
    alone = two_proportion_z_test(72, 500, 50, 500)[1]
    assert alone < 0.05
    decision = ab_statistics.decide(samples, min_sample=100)
    assert decision.best == 3
    assert decision.p_value == pytest.approx(min(1.0, alone * 3))
    assert decision.winner == 0


# --- The fan-out ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_only_the_test_share_gets_deliveries_split_evenly_between_the_subjects(
    topic: Topic,
) -> None:
    Channel.objects.create(name="Outbox", kind="email_file", is_default_email=True)
    add_subscribers(topic, 250)
    dispatch = make_dispatch(topic, subjects=["A", "B", "C"], ab_share=20, ab_wait_hours=6)

    created = fanout.plan_dispatch(dispatch.pk)

    # 20% of 250 = 50, split 17 / 17 / 16.
    assert created == 50
    rows = Delivery.objects.filter(dispatch=dispatch)
    assert sorted(Counter(rows.values_list("variant", flat=True)).values()) == [16, 17, 17]
    dispatch.refresh_from_db()
    assert dispatch.planned_at is not None
    assert dispatch.ab_decide_at == dispatch.planned_at + timedelta(hours=6)
    # Planned again (a lost task): the same people, nothing new.
    picked = set(rows.values_list("subscriber_id", "variant"))
    Dispatch.objects.filter(pk=dispatch.pk).update(status=Dispatch.Status.PLANNING)
    assert fanout.plan_dispatch(dispatch.pk) == 0
    assert set(rows.values_list("subscriber_id", "variant")) == picked
    # The share is not the first or last subscribers: the order is random.
    ids = sorted(pk for pk, _ in picked)
    everyone = sorted(Subscriber.objects.values_list("pk", flat=True))
    assert ids != everyone[:50] and ids != everyone[-50:]


def split_on(cursor: Any, dispatch_id: int) -> list[tuple[int, int]]:
    """The fan-out's random split of 1,000 ids (20% tested, three subjects) on ``cursor``."""
    cursor.execute(
        f"""WITH audience (id) AS (SELECT id FROM ab_ids), {fanout.ranked_audience()}
        SELECT id, n %% 3 FROM ranked WHERE n < (total * 20 + 99) / 100 ORDER BY id""",
        [dispatch_id],
    )
    return [(int(pk), int(variant)) for pk, variant in cursor.fetchall()]


@pytest.mark.parametrize("vendor", ["sqlite", "postgresql"])
@pytest.mark.django_db
def test_the_random_split_is_even_fixed_by_the_dispatch_and_spread_on_both_databases(
    vendor: str,
) -> None:
    """The order is md5 of the dispatch and subscriber ids, on PostgreSQL and on SQLite (whose
    md5 Django registers): it runs on a real database of each kind (SQLite in memory beside the
    suite's PostgreSQL)."""
    if vendor != connection.vendor and vendor != "sqlite":
        pytest.skip("the suite runs on SQLite: PostgreSQL's expression is not reachable")
    handler = ConnectionHandler(
        {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
    )
    database = connection if vendor == connection.vendor else handler["default"]
    try:
        with database.cursor() as cursor:
            cursor.execute("CREATE TEMPORARY TABLE ab_ids (id integer primary key)")
            cursor.executemany(
                "INSERT INTO ab_ids (id) VALUES (%s)", [(i,) for i in range(1, 1001)]
            )
            first = split_on(cursor, 41)
            again = split_on(cursor, 41)
            other = split_on(cursor, 42)
            cursor.execute("DROP TABLE ab_ids")
    finally:
        if database is not connection:
            database.close()
    assert first == again  # the same people every run of one dispatch
    assert len(first) == 200
    assert sorted(Counter(variant for _, variant in first).values()) == [66, 67, 67]
    # Another dispatch tests other people; the share is spread over the whole range.
    ids = {pk for pk, _ in first}
    assert len(ids & {pk for pk, _ in other}) < 100
    assert 60 <= sum(pk <= 500 for pk in ids) <= 140
    assert all(40 <= sum(lo < pk <= lo + 250 for pk in ids) <= 60 for lo in range(0, 1000, 250))


@pytest.mark.django_db
def test_broadcast_channels_go_out_at_once_and_a_small_audience_still_tests(topic: Topic) -> None:
    Channel.objects.create(name="Outbox", kind="email_file", is_default_email=True)
    Channel.objects.create(
        name="Hook", kind="webhook", config={"url": "https://hooks.example.com/x"}
    )
    add_subscribers(topic, 3)
    dispatch = make_dispatch(topic, subjects=SUBJECTS, ab_share=10)

    fanout.plan_dispatch(dispatch.pk)

    rows = Delivery.objects.filter(dispatch=dispatch)
    assert rows.filter(kind=Delivery.Kind.BROADCAST).count() == 1
    # 10% of 3, rounded up: one subscriber tests.
    assert rows.filter(kind=Delivery.Kind.SUBSCRIBER).count() == 1


@pytest.mark.django_db
def test_a_dispatch_whose_test_is_settled_waits_for_its_decision(topic: Topic) -> None:
    Channel.objects.create(name="Outbox", kind="email_file", is_default_email=True)
    add_subscribers(topic, 10)
    dispatch = make_dispatch(topic, subjects=SUBJECTS, ab_share=50)
    fanout.plan_dispatch(dispatch.pk)
    Delivery.objects.filter(dispatch=dispatch).update(status=Delivery.Status.SENT)

    assert fanout.finish_dispatches([dispatch.pk]) == 0
    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.SENDING


# --- The decision, on fixed data, through a real SMTP server --------------------------------------


def subjects_by_recipient(sink: SmtpSink) -> dict[str, list[str]]:
    received: dict[str, list[str]] = {}
    for raw, recipient in zip(sink.messages, sink.recipients, strict=True):
        message = email.message_from_bytes(raw, policy=email.policy.default)
        received.setdefault(recipient, []).append(str(message["Subject"]))
    return received


def drain(channel: Channel) -> int:
    total = 0
    while (claimed := batches.send_batch(channel.pk, chain=False).claimed) > 0:
        total += claimed
    return total


def engage(dispatch: Dispatch, variant: int, *, opened: int, clicked: int) -> None:
    """Fixed engagement: the first ``opened`` test messages of the subject opened by people,
    the first ``clicked`` of those clicked (what the classifier records, channels.analytics)."""
    now = timezone.now()
    rows = Delivery.objects.filter(dispatch=dispatch, variant=variant).order_by("pk")
    DeliveryEngagement.objects.bulk_create(
        DeliveryEngagement(
            delivery_id=pk,
            publication_id=dispatch.publication_id,
            first_human_open_at=now,
            first_human_click_at=now if index < clicked else None,
            human_opens=1,
            human_clicks=int(index < clicked),
        )
        for index, pk in enumerate(rows.values_list("pk", flat=True)[:opened])
    )


def run_test(topic: Topic, channel: Channel, count: int, **fields: Any) -> Dispatch:
    add_subscribers(topic, count)
    dispatch = make_dispatch(topic, subjects=SUBJECTS, ab_wait_hours=2, **fields)
    fanout.plan_dispatch(dispatch.pk)
    drain(channel)
    return dispatch


@pytest.fixture
def tasks_wait_in_the_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    """Enqueued tasks stay in the ORM queue: the test drains the channel itself."""
    monkeypatch.setattr(Conf, "SYNC", False)


@pytest.mark.postgres
def test_a_clear_winner_goes_to_the_rest(
    transactional_db: None,
    tasks_wait_in_the_queue: None,
    topic: Topic,
    smtp_channel: Channel,
    sink: SmtpSink,
) -> None:
    dispatch = run_test(topic, smtp_channel, 400, ab_share=50, ab_min_sample=100)
    assert len(sink.messages) == 200
    engage(dispatch, 0, opened=40, clicked=10)
    engage(dispatch, 1, opened=45, clicked=40)
    dispatch.refresh_from_db()
    assert dispatch.ab_decide_at is not None

    assert not abtest.decide(dispatch.pk, dispatch.ab_decide_at - timedelta(seconds=1))
    assert abtest.decide(dispatch.pk, dispatch.ab_decide_at)
    drain(smtp_channel)

    dispatch.refresh_from_db()
    assert dispatch.ab_winner == 1
    result = dispatch.ab_result
    assert result["significant"] is True
    assert result["reason"] == "significant"
    assert result["method"].startswith("Two-proportion z-test")
    assert result["p_value"] < 0.001
    assert [(v["delivered"], v["clicked"]) for v in result["variants"]] == [(100, 10), (100, 40)]
    received = subjects_by_recipient(sink)
    assert len(received) == 400
    assert all(len(subjects) == 1 for subjects in received.values())
    assert Counter(s[0] for s in received.values()) == {SUBJECTS[0]: 100, SUBJECTS[1]: 300}
    assert set(Delivery.objects.filter(dispatch=dispatch).values_list("status", flat=True)) == {
        "sent"
    }
    # Once the rest is sent, the dispatch is done (the send path closes it).
    fanout.finish_dispatches([dispatch.pk])
    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.DONE


@pytest.mark.postgres
def test_without_a_significant_difference_the_first_subject_goes_to_the_rest(
    transactional_db: None,
    tasks_wait_in_the_queue: None,
    topic: Topic,
    smtp_channel: Channel,
    sink: SmtpSink,
) -> None:
    dispatch = run_test(topic, smtp_channel, 400, ab_share=50, ab_min_sample=100, ab_metric="opens")
    engage(dispatch, 0, opened=20, clicked=0)
    engage(dispatch, 1, opened=24, clicked=24)  # more clicks, but the test is on opens

    assert abtest.decide_due(timezone.now() + timedelta(hours=3)) == 1
    drain(smtp_channel)

    dispatch.refresh_from_db()
    assert dispatch.ab_winner == 0
    assert dispatch.ab_result["significant"] is False
    assert dispatch.ab_result["reason"] == "not_significant"
    assert dispatch.ab_result["best"] == 1
    assert dispatch.ab_result["p_value"] > 0.05
    received = subjects_by_recipient(sink)
    assert Counter(s[0] for s in received.values()) == {SUBJECTS[0]: 300, SUBJECTS[1]: 100}
    assert all(len(subjects) == 1 for subjects in received.values())


@pytest.mark.postgres
def test_the_rest_goes_through_the_channel_the_test_went_through(
    transactional_db: None,
    tasks_wait_in_the_queue: None,
    topic: Topic,
    smtp_channel: Channel,
    sink: SmtpSink,
) -> None:
    """The default email channel changed during the test: the rest still goes through the
    test's channel, so the ledger's unique constraint keeps the test's people out of it."""
    dispatch = run_test(topic, smtp_channel, 100, ab_share=50, ab_min_sample=10)
    engage(dispatch, 1, opened=30, clicked=30)
    Channel.objects.filter(pk=smtp_channel.pk).update(is_default_email=False)
    other = Channel.objects.create(name="Outbox", kind="email_file", is_default_email=True)

    assert abtest.decide_due(timezone.now() + timedelta(hours=3)) == 1
    drain(smtp_channel)

    rows = Delivery.objects.filter(dispatch=dispatch)
    assert rows.count() == 100
    assert not rows.filter(channel=other).exists()
    received = subjects_by_recipient(sink)
    assert len(received) == 100
    assert all(len(subjects) == 1 for subjects in received.values())
    assert Counter(s[0] for s in received.values()) == {SUBJECTS[0]: 25, SUBJECTS[1]: 75}


@pytest.mark.django_db
def test_a_resend_runs_no_test_and_carries_the_winner_while_the_subjects_are_unchanged(
    topic: Topic,
) -> None:
    Channel.objects.create(name="Outbox", kind="email_file", is_default_email=True)
    add_subscribers(topic, 40)
    dispatch = make_dispatch(topic, subjects=SUBJECTS, ab_share=50)
    fanout.plan_dispatch(dispatch.pk)
    Dispatch.objects.filter(pk=dispatch.pk).update(
        ab_decided_at=timezone.now(), ab_winner=1, status=Dispatch.Status.DONE
    )
    publication = dispatch.publication

    def resend() -> Dispatch:
        resent = Dispatch.objects.create(
            publication=publication,
            version=publication.history.latest(),
            kind=Dispatch.Kind.RESEND,
        )
        fanout.plan_dispatch(resent.pk)
        resent.refresh_from_db()
        return resent

    same = resend()
    assert same.ab_decide_at is None  # no test: everyone at once
    rows = Delivery.objects.filter(dispatch=same)
    assert rows.count() == 40
    assert set(rows.values_list("variant", flat=True)) == {1}

    publication.subjects = ["Summer is here", "Ten things to do in summer"]
    publication.save()
    changed = resend()
    assert changed.ab_decide_at is None
    assert set(Delivery.objects.filter(dispatch=changed).values_list("variant", flat=True)) == {
        None
    }  # the first subject of the new version (subject_for)


@pytest.mark.postgres
def test_two_workers_deciding_at_once_send_each_subscriber_one_message_with_one_subject(
    transactional_db: None,
    tasks_wait_in_the_queue: None,
    topic: Topic,
    smtp_channel: Channel,
    sink: SmtpSink,
) -> None:
    dispatch = run_test(topic, smtp_channel, 300, ab_share=20, ab_min_sample=10)
    engage(dispatch, 0, opened=5, clicked=1)
    engage(dispatch, 1, opened=25, clicked=20)
    later = timezone.now() + timedelta(hours=3)

    def worker() -> int:
        decided = abtest.decide_due(later)
        return decided + drain(smtp_channel)

    results = run_at_once(worker, worker).all_results()

    drain(smtp_channel)
    dispatch.refresh_from_db()
    assert dispatch.ab_winner == 1
    rows = Delivery.objects.filter(dispatch=dispatch)
    assert rows.count() == 300
    assert rows.values("subscriber_id").distinct().count() == 300
    assert sum(results) >= 1
    assert sink.delivery_ids() == dict.fromkeys(rows.values_list("pk", flat=True), 1)
    received = subjects_by_recipient(sink)
    assert len(received) == 300
    assert all(len(subjects) == 1 for subjects in received.values())
    assert Counter(s[0] for s in received.values()) == {SUBJECTS[0]: 30, SUBJECTS[1]: 270}


# --- The admin: each subject's rate and interval, the method, the decision -----------------------


@pytest.fixture
def admin_client(db: None) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("ada", "ada@example.com", "x" * 12))
    return client


def decided_dispatch(topic: Topic, clicks: tuple[int, int]) -> Dispatch:
    """A test of 200 (100 a subject), delivered, with fixed clicks, decided."""
    Channel.objects.create(name="Outbox", kind="email_file", is_default_email=True)
    add_subscribers(topic, 400)
    dispatch = make_dispatch(topic, subjects=SUBJECTS, ab_share=50, ab_min_sample=100)
    fanout.plan_dispatch(dispatch.pk)
    Delivery.objects.filter(dispatch=dispatch).update(status=Delivery.Status.SENT)
    engage(dispatch, 0, opened=clicks[0], clicked=clicks[0])
    engage(dispatch, 1, opened=clicks[1], clicked=clicks[1])
    return dispatch


@pytest.mark.django_db
def test_the_dispatch_page_shows_each_subject_with_its_interval_and_when_it_decides(
    topic: Topic, admin_client: Client
) -> None:
    dispatch = decided_dispatch(topic, (10, 40))
    page = reverse("admin:publishing_dispatch_change", args=[dispatch.pk])

    before = admin_client.get(page).content.decode()
    assert "Decision due" in before
    assert ab_statistics.METHOD in before
    assert "leading" in before

    dispatch.refresh_from_db()
    assert abtest.decide(dispatch.pk, dispatch.ab_decide_at)
    html = admin_client.get(page).content.decode()

    # 10 of 100 and 40 of 100, with their Wilson intervals.
    low, high = wilson_interval(10, 100)
    assert f"{100 * low:.1f}% \u2013 {100 * high:.1f}%" in html
    assert "10.0%" in html and "40.0%" in html
    low, high = wilson_interval(40, 100)
    assert f"{100 * low:.1f}% \u2013 {100 * high:.1f}%" in html
    assert "Subject 2 won (“Ten things to do in spring”)" in html
    assert "sent to the rest" in html
    assert "(p &lt; 0.0001)" in html
    assert "200 more message(s) created" in html
    # The publication's analytics page shows the same test.
    analytics = admin_client.get(
        reverse("admin:channels_publicationanalytics_change", args=[dispatch.publication_id])
    ).content.decode()
    assert "Subject 2 won" in analytics and f"{100 * high:.1f}%" in analytics


@pytest.mark.django_db
def test_the_admin_says_when_no_subject_won(topic: Topic, admin_client: Client) -> None:
    dispatch = decided_dispatch(topic, (20, 24))
    dispatch.refresh_from_db()
    abtest.decide(dispatch.pk, dispatch.ab_decide_at)

    html = admin_client.get(
        reverse("admin:publishing_dispatch_change", args=[dispatch.pk])
    ).content.decode()
    assert (
        "No significant difference between the subjects: the first subject "
        "(“Spring is here”) was sent to the rest." in html
    )


@pytest.mark.django_db
def test_the_publish_confirmation_says_who_tests_and_who_waits(
    topic: Topic, admin_client: Client
) -> None:
    Channel.objects.create(name="Outbox", kind="email_file", is_default_email=True)
    add_subscribers(topic, 90)
    publication = PublicationFactory.create(
        topics=[topic], subjects=SUBJECTS, ab_share=20, ab_wait_hours=3, ab_min_sample=100
    )

    html = admin_client.get(
        reverse("admin:publishing_publication_publish", args=[publication.pk])
    ).content.decode()

    assert "18 subscribers (20%) get the test" in html
    assert "the other 72 get the winner by click rate (people) after 3 hours" in html
    assert "Publish to 90 recipients" in html
    # 9 a subject, below the minimum sample of 100: the editor is told before sending.
    assert "Each subject gets about 9 test messages, fewer than the minimum sample of 100" in html


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_dispatch_page_in_a_browser(
    browser_page: Any, live_server: Any, output_dir: Path, topic: Topic
) -> None:
    dispatch = decided_dispatch(topic, (10, 40))
    dispatch.refresh_from_db()
    abtest.decide(dispatch.pk, dispatch.ab_decide_at)
    UserFactory.create(username="root", is_superuser=True)
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "correct horse battery staple")
    page.click("input[type=submit]")

    page.goto(f"{live_server.url}/admin/publishing/dispatch/{dispatch.pk}/change/")
    test = page.locator("#ab-test")
    assert "Ten things to do in spring" in test.locator("tr.ab-winner").inner_text()
    assert "Subject 2 won" in page.locator("#ab-decision").inner_text()
    test.scroll_into_view_if_needed()
    page.screenshot(path=str(output_dir / "ab-test-dispatch.png"), full_page=True)


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_stats_api_gives_each_subject_with_its_interval_and_the_decision(
    topic: Topic, make_key: Any
) -> None:
    from tests.api.conftest import ApiClient

    dispatch = decided_dispatch(topic, (10, 40))
    dispatch.refresh_from_db()
    assert abtest.decide(dispatch.pk, dispatch.ab_decide_at)
    api = ApiClient(make_key("publications:read"))

    body = api.get(f"/api/v1/publications/{dispatch.publication_id}/stats/").json()

    [test] = body["ab_tests"]
    assert (test["dispatch"], test["winner"], test["reason"]) == (dispatch.pk, 2, "significant")
    assert test["method"] == ab_statistics.METHOD
    assert test["p_value"] < 0.0001
    low, high = wilson_interval(40, 100)
    assert [
        (v["subject"], v["delivered"], v["successes"], v["rate"]) for v in test["variants"]
    ] == [
        (SUBJECTS[0], 100, 10, 10.0),
        (SUBJECTS[1], 100, 40, 40.0),
    ]
    assert (test["variants"][1]["ci_low"], test["variants"][1]["ci_high"]) == (
        round(100 * low, 1),
        round(100 * high, 1),
    )
