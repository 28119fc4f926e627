"""Each reader's digest in the order of their interest, with a reason per item (decision 0080).

The ranking itself (term vectors stored per version, TF-IDF, the matrix products) is
publishing.ranking, which reads no subscriber; this module gathers what it needs about readers:
the topics they follow, the publications they clicked as people (events classified human: a
click on a publication's email, or on its entry in a digest), and their "more/less like this"
(subscribers.ReaderFeedback). Signals older than MAX_HALF_LIVES half-lives are not read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings

from channels.models import Delivery, DeliveryEngagement, Digest, EngagementEvent
from publishing import ranking
from publishing.models import Publication, Topic
from subscribers.models import ReaderFeedback

if TYPE_CHECKING:
    from channels.digests import DigestItem


def _age_days(now: datetime, at: datetime) -> float:
    return (now - at).total_seconds() / 86400


def reader_signals(subscriber_ids: Iterable[int], now: datetime) -> dict[int, list[ranking.Signal]]:
    """What each subscriber read (human clicks) and told us (feedback) up to MAX_HALF_LIVES
    half-lives before ``now``, as signals. Four queries, whatever the number of subscribers."""
    ids = list(subscriber_ids)
    since = now - timedelta(days=settings.RANKING_HALF_LIFE_DAYS * ranking.MAX_HALF_LIVES)
    signals: dict[int, list[ranking.Signal]] = defaultdict(list)
    # Clicks on publication emails: their delivery's engagement row keeps the first human one.
    for subscriber_id, publication_id, at in DeliveryEngagement.objects.filter(
        delivery__subscriber_id__in=ids, first_human_click_at__gte=since
    ).values_list("delivery__subscriber_id", "publication_id", "first_human_click_at"):
        if subscriber_id is None or at is None:
            continue
        signals[subscriber_id].append(
            ranking.Signal(publication_id, ranking.READ, _age_days(now, at))
        )
    for subscriber_id, publication_id, at in _digest_clicks(ids, since):
        signals[subscriber_id].append(
            ranking.Signal(publication_id, ranking.READ, _age_days(now, at))
        )
    kinds: dict[str, str] = {
        ReaderFeedback.Choice.MORE: ranking.LIKED,
        ReaderFeedback.Choice.LESS: ranking.DISLIKED,
    }
    for subscriber_id, publication_id, choice, at in ReaderFeedback.objects.filter(
        subscriber_id__in=ids, updated_at__gte=since
    ).values_list("subscriber_id", "publication_id", "choice", "updated_at"):
        signals[subscriber_id].append(
            ranking.Signal(publication_id, kinds[choice], _age_days(now, at))
        )
    return dict(signals)


def _digest_clicks(
    subscriber_ids: Sequence[int], since: datetime
) -> list[tuple[int, int, datetime]]:
    """(subscriber, publication, time) of human clicks on digest entries: a digest's click
    names a link position, its Digest row the links, and its publications their URLs."""
    clicks = list(
        EngagementEvent.objects.filter(
            kind=EngagementEvent.Kind.CLICK,
            verdict=EngagementEvent.Verdict.HUMAN,
            occurred_at__gte=since,
            delivery__kind=Delivery.Kind.DIGEST,
            delivery__subscriber_id__in=subscriber_ids,
        ).values_list("delivery__subscriber_id", "delivery_id", "link_index", "occurred_at")
    )
    if not clicks:
        return []
    digests = {
        digest.delivery_id: digest
        for digest in Digest.objects.filter(
            delivery_id__in={delivery_id for _, delivery_id, _, _ in clicks}
        ).prefetch_related("publications")
    }
    found: list[tuple[int, int, datetime]] = []
    for subscriber_id, delivery_id, index, at in clicks:
        digest = digests.get(delivery_id)
        if digest is None or index is None or not 0 <= index < len(digest.links):
            continue
        by_url = {
            settings.SITE_URL + publication.get_absolute_url(): publication.pk
            for publication in digest.publications.all()
        }
        publication_id = by_url.get(str(digest.links[index]))
        if publication_id is not None:
            found.append((subscriber_id, publication_id, at))
    return found


def rank_digest_items(
    subscriber_id: int, items: Sequence[DigestItem], topic_ids: Iterable[int], now: datetime
) -> list[DigestItem]:
    """``items`` (newest first, all on the subscriber's ``topic_ids``) in the order of the
    subscriber's interest at ``now``, each with its reason; newest first, each "because you
    follow ..." when the subscriber has no history. Uses ranking.rank as a batch of one."""
    if not items:
        return []
    signals = reader_signals([subscriber_id], now).get(subscriber_id, [])
    reader = ranking.Reader(frozenset(topic_ids), tuple(signals))
    vectors = ranking.load_vectors(
        {item.publication_id for item in items} | {s.publication_id for s in signals}
    )
    candidates = [
        ranking.Candidate(item.publication_id, item.published_at, item.topic_ids) for item in items
    ]
    result = ranking.rank(
        ranking.ReaderArrays.build([reader], settings.RANKING_HALF_LIFE_DAYS),
        candidates,
        vectors,
        recency_weight=settings.RANKING_RECENCY_WEIGHT,
    )
    topics = dict(Topic.objects.filter(pk__in=reader.topic_ids).values_list("pk", "name"))
    titles = dict(vectors.titles)
    missing = {s.publication_id for s in signals} - set(titles)
    titles.update(Publication.objects.filter(pk__in=missing).values_list("pk", "title"))
    return [
        replace(items[position], reason=reason)
        for position, reason in result.reasons(0, titles, topics)
    ]
