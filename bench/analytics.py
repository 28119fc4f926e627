"""Benchmark: the publication analytics page with 1,000,000 events, against the same funnel
counted from the events themselves.

    python bench/analytics.py [--events 1000000] [--deliveries 200000]

Creates the database pub_analytics_bench (dropped and re-created), one published publication
with --deliveries sent deliveries, --events classified open and click events spread over them
(generate_series, in SQL), and the aggregates the classifier would have kept for them (one
DeliveryEngagement row per engaged delivery, the per-publication counters). Then times, best of
5: ``channels.analytics.analytics()`` (what the admin page and the stats API read), the admin
analytics page through Django's test client (logged in), and, as the peer, the same human
opens/clicks counted with COUNT(DISTINCT) over the events table.

Prints a Markdown table for docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "pub_analytics_bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--deliveries", type=int, default=200_000)
    options = parser.parse_args()
    code = (
        "import psycopg; c = psycopg.connect('postgresql://postgres@127.0.0.1:5432/postgres',"
        f" autocommit=True); c.execute('DROP DATABASE IF EXISTS {DATABASE}');"
        f" c.execute('CREATE DATABASE {DATABASE}')"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{DATABASE}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    run(options.events, options.deliveries)


def best(function: object, times: int = 5) -> float:
    timings = []
    for _ in range(times):
        start = time.perf_counter()
        function()  # type: ignore[operator]
        timings.append(time.perf_counter() - start)
    return min(timings) * 1000


def run(events: int, deliveries: int) -> None:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from channels import analytics
    from channels.models import Channel
    from publishing import services
    from publishing.models import Dispatch, Topic

    topic = Topic.objects.create(name="News", slug="news")
    publication = services.create_publication(
        services.PublicationInput(
            title="Benchmarked",
            slug="benchmarked",
            body="[a](https://example.org/)",
            topics=[topic],
        ),
        by=None,
    )
    version = publication.history.latest()
    dispatch = Dispatch.objects.create(publication=publication, version=version)
    channel = Channel.objects.create(name="Mail", kind="email_smtp", is_default_email=True)
    now = timezone.now()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO channels_delivery (kind, dispatch_id, channel_id, recipient, priority,"
            " status, attempts, next_attempt_at, last_error, provider_message_id, created_at,"
            " updated_at, sent_at) SELECT 'subscriber', %s, %s, '', 10, 'sent', 1, %s, '', '',"
            " %s, %s, %s FROM generate_series(1, %s)",
            [dispatch.pk, channel.pk, now, now, now, now, deliveries],
        )
        cursor.execute("SELECT min(id) FROM channels_delivery")
        first = cursor.fetchone()[0]
        # Events: every delivery gets events in turn; a third are clicks, a fifth machines.
        cursor.execute(
            "INSERT INTO channels_engagementevent (delivery_id, kind, link_index, occurred_at,"
            " method, user_agent, verdict, reason) SELECT %s + (n %% %s),"
            " CASE WHEN n %% 3 = 0 THEN 'click' ELSE 'open' END,"
            " CASE WHEN n %% 3 = 0 THEN 0 END, %s + (n %% 259200) * interval '1 second', 'GET',"
            " 'Mozilla/5.0', CASE WHEN n %% 5 = 0 THEN 'machine' ELSE 'human' END,"
            " CASE WHEN n %% 5 = 0 THEN 'bot_user_agent' ELSE 'human' END"
            " FROM generate_series(1, %s) n",
            [first, deliveries, now, events],
        )
        # The aggregates the classifier keeps, built here in SQL from the same events.
        cursor.execute(
            "INSERT INTO channels_deliveryengagement (delivery_id, publication_id,"
            " first_human_open_at, first_human_click_at, first_proxy_open_at, human_opens,"
            " human_clicks, proxy_opens, machine_opens, machine_clicks)"
            " SELECT delivery_id, %s,"
            " min(occurred_at) FILTER (WHERE verdict = 'human'),"
            " min(occurred_at) FILTER (WHERE verdict = 'human' AND kind = 'click'), NULL,"
            " count(*) FILTER (WHERE verdict = 'human' AND kind = 'open'),"
            " count(*) FILTER (WHERE verdict = 'human' AND kind = 'click'), 0,"
            " count(*) FILTER (WHERE verdict = 'machine' AND kind = 'open'),"
            " count(*) FILTER (WHERE verdict = 'machine' AND kind = 'click')"
            " FROM channels_engagementevent GROUP BY delivery_id",
            [publication.pk],
        )
        cursor.execute(
            "INSERT INTO channels_engagementcounter (publication_id, metric, key, count)"
            " SELECT %s, 'opened_human', '', count(*) FROM channels_deliveryengagement"
            " WHERE first_human_open_at IS NOT NULL UNION ALL"
            " SELECT %s, 'clicked_human', '', count(*) FROM channels_deliveryengagement"
            " WHERE first_human_click_at IS NOT NULL UNION ALL"
            " SELECT %s, 'hour_open_human',"
            " (extract(epoch FROM occurred_at - %s)::int / 3600)::text,"
            " count(*) FROM channels_engagementevent WHERE kind = 'open' AND verdict = 'human'"
            " GROUP BY 3",
            [publication.pk, publication.pk, publication.pk, now],
        )
        cursor.execute("ANALYZE")
    seeded = time.perf_counter() - started
    result = analytics.analytics(publication.pk)

    def from_events() -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(DISTINCT e.delivery_id) FILTER (WHERE e.verdict = 'human'),"
                " count(DISTINCT e.delivery_id)"
                " FILTER (WHERE e.verdict = 'human' AND e.kind = 'click')"
                " FROM channels_engagementevent e JOIN channels_delivery d ON d.id = e.delivery_id"
                " JOIN publishing_dispatch p ON p.id = d.dispatch_id WHERE p.publication_id = %s",
                [publication.pk],
            )
            cursor.fetchall()

    admin = User.objects.create_superuser("bench", "bench@example.org", "x")
    client = Client()
    client.force_login(admin)
    page = f"/admin/channels/publicationanalytics/{publication.pk}/change/"
    if client.get(page).status_code != 200:
        raise SystemExit(f"{page} did not answer 200")
    aggregates_ms = best(lambda: analytics.analytics(publication.pk))
    page_ms = best(lambda: client.get(page))
    events_ms = best(from_events, times=3)
    print(
        f"\n{time.strftime('%Y-%m-%d %H:%M')} UTC, load {os.getloadavg()[0]:.1f}: "
        f"{events:,} events over {deliveries:,} deliveries (seeded in {seeded:.0f} s); "
        f"opened by people {result.funnel.opened_human:,}, "
        f"clicked {result.funnel.clicked_human:,}\n"
    )
    print("| What | best time (ms) |")
    print("|---|---:|")
    print(f"| analytics() from the aggregates (admin page and stats API) | {aggregates_ms:.1f} |")
    print(f"| the admin analytics page (test client, logged in) | {page_ms:.1f} |")
    print(f"| peer: the same two counts from the events (COUNT DISTINCT) | {events_ms:.1f} |")


if __name__ == "__main__":
    main()
