"""Relevance ranking (decision 0080): term vectors stored once per version, reasons on a fixed
corpus, recency for readers without history, and many readers ranked at once."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from publishing import ranking
from publishing.models import Publication, PublicationVector, Topic
from tests.factories import PublicationFactory, TopicFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 4, 7, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _fresh_idf() -> None:
    ranking.clear_idf_cache()


def make(topic: Topic, title: str, body: str, hours_ago: float) -> Publication:
    publication = PublicationFactory.create(
        title=title, slug=title.lower().replace(" ", "-"), summary="", body=body, topics=[topic]
    )
    Publication.objects.filter(pk=publication.pk).update(
        published_at=NOW - dt.timedelta(hours=hours_ago)
    )
    publication.refresh_from_db()
    return publication


@pytest.fixture
def corpus() -> dict[str, Publication]:
    releases = TopicFactory.create(name="Releases", slug="releases")
    garden = TopicFactory.create(name="Garden", slug="garden")
    return {
        "march": make(
            releases,
            "March release notes",
            "The database migration tool now checks foreign keys and indexes.",
            24 * 20,
        ),
        "tomatoes": make(
            garden, "Tomatoes in spring", "Sow tomatoes indoors, water seedlings daily.", 24 * 15
        ),
        "april": make(
            releases,
            "April database release",
            "Foreign keys and indexes: the migration tool rebuilds indexes online.",
            10,
        ),
        "party": make(releases, "Office party", "Cake and music on the roof on Friday.", 2),
        "roses": make(garden, "Pruning roses", "Prune roses in spring; water seedlings.", 5),
    }


def candidates(*publications: Publication) -> list[ranking.Candidate]:
    """Newest first, as digests list them."""
    ordered = sorted(publications, key=lambda p: p.published_at or NOW, reverse=True)
    return [
        ranking.Candidate(
            p.pk, p.published_at or NOW, frozenset(p.topics.values_list("pk", flat=True))
        )
        for p in ordered
    ]


def rank(readers: list[ranking.Reader], items: list[ranking.Candidate]) -> ranking.Ranking:
    vectors = ranking.load_vectors(
        {c.publication_id for c in items} | {s.publication_id for r in readers for s in r.signals}
    )
    return ranking.rank(
        ranking.ReaderArrays.build(readers, half_life_days=30), items, vectors, recency_weight=0.1
    )


def listed(
    result: ranking.Ranking, reader: int, items: list[ranking.Candidate]
) -> list[tuple[str, str, str]]:
    titles = dict(Publication.objects.values_list("pk", "title"))
    topics = dict(Topic.objects.values_list("pk", "name"))
    return [
        (titles[items[position].publication_id], reason.kind, reason.label)
        for position, reason in result.reasons(reader, titles, topics)
    ]


def test_a_reader_without_history_gets_the_newest_first_because_they_follow_the_topic(
    corpus: dict[str, Publication],
) -> None:
    releases = Topic.objects.get(slug="releases")
    items = candidates(corpus["april"], corpus["party"])

    result = rank([ranking.Reader(frozenset({releases.pk}))], items)

    assert listed(result, 0, items) == [
        ("Office party", "follow", "Releases"),
        ("April database release", "follow", "Releases"),
    ]


def test_what_a_reader_read_brings_similar_items_first_with_that_reason(
    corpus: dict[str, Publication],
) -> None:
    releases = Topic.objects.get(slug="releases")
    reader = ranking.Reader(
        frozenset({releases.pk}), (ranking.Signal(corpus["march"].pk, ranking.READ, 20),)
    )
    items = candidates(corpus["april"], corpus["party"])

    assert listed(rank([reader], items), 0, items) == [
        ("April database release", "read", "March release notes"),
        ("Office party", "follow", "Releases"),
    ]


def test_a_publication_read_then_disliked_is_never_named_as_a_reason(
    corpus: dict[str, Publication],
) -> None:
    releases = Topic.objects.get(slug="releases")
    reader = ranking.Reader(
        frozenset({releases.pk}),
        (
            ranking.Signal(corpus["march"].pk, ranking.READ, 20),
            ranking.Signal(corpus["march"].pk, ranking.DISLIKED, 19),
        ),
    )
    items = candidates(corpus["april"], corpus["party"])

    reasons = listed(rank([reader], items), 0, items)

    assert all(label != "March release notes" for _, _, label in reasons), reasons
    assert [kind for _, kind, _ in reasons] == ["follow", "follow"]


def test_a_like_is_named_as_a_like_and_a_dislike_pushes_similar_items_down(
    corpus: dict[str, Publication],
) -> None:
    releases = Topic.objects.get(slug="releases")
    garden = Topic.objects.get(slug="garden")
    fan = ranking.Reader(
        frozenset({releases.pk, garden.pk}),
        (
            ranking.Signal(corpus["march"].pk, ranking.READ, 20),
            ranking.Signal(corpus["march"].pk, ranking.LIKED, 19),
            ranking.Signal(corpus["tomatoes"].pk, ranking.DISLIKED, 15),
        ),
    )
    items = candidates(corpus["april"], corpus["party"], corpus["roses"])

    result = listed(rank([fan], items), 0, items)

    assert result[0] == ("April database release", "liked", "March release notes")
    assert [title for title, _, _ in result][-1] == "Pruning roses"
    assert result[-1][1:] == ("follow", "Garden")


def test_only_items_on_a_followed_topic_are_listed(corpus: dict[str, Publication]) -> None:
    garden = Topic.objects.get(slug="garden")
    items = candidates(corpus["april"], corpus["roses"])

    result = rank([ranking.Reader(frozenset({garden.pk}))], items)

    assert [title for title, _, _ in listed(result, 0, items)] == ["Pruning roses"]


def test_many_readers_at_once_rank_as_each_alone(corpus: dict[str, Publication]) -> None:
    releases = Topic.objects.get(slug="releases")
    garden = Topic.objects.get(slug="garden")
    readers = [
        ranking.Reader(frozenset({releases.pk})),
        ranking.Reader(
            frozenset({releases.pk, garden.pk}),
            (ranking.Signal(corpus["tomatoes"].pk, ranking.READ, 3),),
        ),
        ranking.Reader(
            frozenset({releases.pk}), (ranking.Signal(corpus["march"].pk, ranking.LIKED, 1),)
        ),
    ]
    items = candidates(corpus["april"], corpus["party"], corpus["roses"])

    together = rank(readers, items)

    for index, reader in enumerate(readers):
        alone = rank([reader], items)
        assert listed(together, index, items) == listed(alone, 0, items)
        np.testing.assert_allclose(together.scores[index], alone.scores[0], rtol=1e-5)


def test_signals_fade_with_the_half_life() -> None:
    arrays = ranking.ReaderArrays.build(
        [
            ranking.Reader(
                frozenset(),
                (
                    ranking.Signal(1, ranking.READ, 0),
                    ranking.Signal(2, ranking.READ, 30),
                    ranking.Signal(3, ranking.LIKED, 60),
                    ranking.Signal(4, ranking.READ, 30 * ranking.MAX_HALF_LIVES + 1),
                ),
            )
        ],
        half_life_days=30,
    )

    assert arrays.signal_publication.tolist() == [1, 2, 3]
    np.testing.assert_allclose(arrays.signal_weight, [1.0, 0.5, 0.75])


def test_term_vectors_are_stored_once_per_version_and_new_publications_leave_them_alone(
    corpus: dict[str, Publication],
) -> None:
    march = corpus["march"]
    ranking.load_vectors([march.pk])
    stored = PublicationVector.objects.get(publication=march)
    before = (bytes(stored.terms), bytes(stored.counts))

    ranking.load_vectors([march.pk, corpus["april"].pk])  # a new publication arrives
    ranking.load_vectors([march.pk])

    assert PublicationVector.objects.filter(publication=march).count() == 1
    stored.refresh_from_db()
    assert (bytes(stored.terms), bytes(stored.counts)) == before

    march.title = "March release notes, corrected"
    march.save()  # a new version (simple-history)
    vectors = ranking.load_vectors([march.pk])

    assert PublicationVector.objects.filter(publication=march).count() == 2
    assert vectors.index == {march.pk: 0}


def test_the_idf_is_refitted_when_a_publication_arrives(corpus: dict[str, Publication]) -> None:
    ranking.load_vectors([corpus["march"].pk])
    first = ranking.idf_weights()

    ranking.load_vectors([corpus["april"].pk])

    assert ranking.idf_weights() is not first
    assert ranking.idf_weights() is ranking.idf_weights()  # unchanged corpus: no refit
