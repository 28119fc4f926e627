"""Benchmark: digest ranking quality (precision@5, NDCG@10) against recency only and topic
match only, on a synthetic corpus with planted reader interests; and the time to rank 100,000
readers' digests.

    python bench/ranking.py [--readers 2000] [--seed 7] [--timing-readers 100000]

The corpus: 2,000 publications over 100 days (20 a day) in 20 topics; each topic has 5 themes,
each theme its own words, on top of the topic's words and words common to everything. Each
reader follows 3 topics and is interested in 2 themes among them (planted). Training window
(days 0-79): every reader receives the publications of their topics and clicks, as a person,
half of those on their themes and 4% of the others; they press "more like this" on 10% of the
ones on their themes they clicked and "less like this" on 3% of the others. Held-out window
(days 80-99): three weekly digests per reader, each listing the publications of their topics
published that week; a listed item is relevant when it is on one of the reader's themes.

Three orders of each digest: the ranker (publishing.ranking.rank with the product's settings,
over TF-IDF vectors from the product's own functions), recency only (newest first), and topic
match only (the reader's topics ordered by how often they clicked each, newest first within
one). Bootstrap over readers (2,000 resamples) gives 95% intervals of the differences.

The timing: 100,000 readers, each following 3 of 20 topics with 10 signals among the 1,600
training publications, ranking one weekly digest of 140 candidates with publishing.ranking
(ReaderArrays.from_columns, then rank): one process, no database.

Prints Markdown tables for docs/personalization.md and docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TOPICS = 20
THEMES = 5
PER_DAY = 20
DAYS = 100
TRAIN_DAYS = 80
START = datetime(2026, 1, 1, 7, 0, tzinfo=UTC)


def words(rng: np.random.Generator, count: int) -> list[str]:
    """Pronounceable made-up words (the corpus's vocabulary), all distinct."""
    consonants, vowels = "bcdfghjklmnprstvz", "aeiou"
    found: set[str] = set()
    while len(found) < count:
        syllables = rng.integers(2, 4)
        found.add(
            "".join(
                rng.choice(list(consonants)) + rng.choice(list(vowels)) for _ in range(syllables)
            )
        )
    return sorted(found)


def corpus(rng: np.random.Generator) -> list[dict[str, Any]]:
    vocabulary = words(rng, 400 + TOPICS * 20 + TOPICS * THEMES * 25)
    common = vocabulary[:400]
    topic_words = [vocabulary[400 + t * 20 : 420 + t * 20] for t in range(TOPICS)]
    base = 400 + TOPICS * 20
    theme_words = [
        [
            vocabulary[base + (t * THEMES + s) * 25 : base + (t * THEMES + s + 1) * 25]
            for s in range(THEMES)
        ]
        for t in range(TOPICS)
    ]

    def text(topic: int, theme: int, length: int) -> str:
        pools = (theme_words[topic][theme], topic_words[topic], common)
        picks = rng.choice(3, size=length, p=(0.25, 0.15, 0.60))
        return " ".join(str(rng.choice(pools[p])) for p in picks)

    publications = []
    for n in range(DAYS * PER_DAY):
        topic, theme = int(rng.integers(TOPICS)), int(rng.integers(THEMES))
        publications.append(
            {
                "id": n + 1,
                "topic": topic + 1,
                "theme": (topic, theme),
                "at": START + timedelta(days=n // PER_DAY, minutes=int(rng.integers(0, 1440))),
                "title": text(topic, theme, 6),
                "summary": text(topic, theme, 18),
                "body": text(topic, theme, 150),
            }
        )
    return sorted(publications, key=lambda p: p["at"])


def simulate(
    rng: np.random.Generator, publications: list[dict[str, Any]], readers: int
) -> list[dict[str, Any]]:
    """Readers with planted themes, and their training clicks and feedback."""
    train_end = START + timedelta(days=TRAIN_DAYS)
    people = []
    for _ in range(readers):
        topics = [int(t) for t in rng.choice(TOPICS, size=3, replace=False)]
        themes = {(t, int(rng.integers(THEMES))) for t in rng.choice(topics, size=2)}
        while len(themes) < 2:
            themes.add((int(rng.choice(topics)), int(rng.integers(THEMES))))
        signals = []
        for p in publications:
            if p["at"] >= train_end or p["topic"] - 1 not in topics:
                continue
            liked = p["theme"] in themes
            age = (train_end - p["at"]).total_seconds() / 86400
            if rng.random() < (0.5 if liked else 0.04):
                signals.append((p["id"], "read", age))
                if liked and rng.random() < 0.10:
                    signals.append((p["id"], "liked", age))
            if not liked and rng.random() < 0.03:
                signals.append((p["id"], "disliked", age))
        people.append({"topics": {t + 1 for t in topics}, "themes": themes, "signals": signals})
    return people


def precision_at(relevant: np.ndarray, k: int) -> float:
    return float(relevant[:k].sum() / k)


def ndcg_at(relevant: np.ndarray, k: int) -> float:
    gains = relevant[:k] / np.log2(np.arange(2, min(k, len(relevant)) + 2))
    ideal = np.sort(relevant)[::-1][:k] / np.log2(np.arange(2, min(k, len(relevant)) + 2))
    return float(gains.sum() / ideal.sum()) if ideal.sum() else 0.0


def evaluate(
    publications: list[dict[str, Any]], people: list[dict[str, Any]]
) -> dict[str, np.ndarray]:
    from django.conf import settings

    from publishing import ranking

    texts = [ranking.document_text(p["title"], p["summary"], p["body"]) for p in publications]
    ids = [p["id"] for p in publications]
    vectors = ranking.Vectors.from_counts(
        ids,
        ranking.term_counts(texts),
        None,
        {p["id"]: [p["topic"]] for p in publications},
        {p["id"]: p["title"] for p in publications},
    )
    by_id = {p["id"]: p for p in publications}
    scores: dict[str, list[list[float]]] = {
        f"{name} {metric}": [[] for _ in people]
        for name in ("ranker", "recency", "topic")
        for metric in ("p@5", "ndcg@10")
    }
    for week in range(3):
        start = START + timedelta(days=TRAIN_DAYS + 7 * week)
        end = start + timedelta(days=7)
        listed = [p for p in publications if start <= p["at"] < end][::-1]  # newest first
        candidates = [ranking.Candidate(p["id"], p["at"], frozenset({p["topic"]})) for p in listed]
        shift = (end - (START + timedelta(days=TRAIN_DAYS))).total_seconds() / 86400
        readers = [
            ranking.Reader(
                frozenset(person["topics"]),
                tuple(ranking.Signal(p, kind, age + shift) for p, kind, age in person["signals"]),
            )
            for person in people
        ]
        result = ranking.rank(
            ranking.ReaderArrays.build(readers, settings.RANKING_HALF_LIFE_DAYS),
            candidates,
            vectors,
            recency_weight=settings.RANKING_RECENCY_WEIGHT,
        )
        for r, person in enumerate(people):
            order = result.order[r, : result.listed[r]]
            mine = [c for c in range(len(listed)) if listed[c]["topic"] in person["topics"]]
            clicks: dict[int, int] = {}
            for p, kind, _age in person["signals"]:
                if kind == "read":
                    clicks[by_id[p]["topic"]] = clicks.get(by_id[p]["topic"], 0) + 1
            by_topic = sorted(mine, key=lambda c: -clicks.get(listed[c]["topic"], 0))
            for name, ranked in (("ranker", list(order)), ("recency", mine), ("topic", by_topic)):
                relevant = np.array(
                    [1.0 if listed[c]["theme"] in person["themes"] else 0.0 for c in ranked]
                )
                if not relevant.sum():
                    continue
                scores[f"{name} p@5"][r].append(precision_at(relevant, 5))
                scores[f"{name} ndcg@10"][r].append(ndcg_at(relevant, 10))
    return {
        key: np.array([np.mean(v) if v else np.nan for v in rows]) for key, rows in scores.items()
    }


def bootstrap(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float]:
    """Mean of a - b over readers and its 95% percentile interval (2,000 resamples)."""
    difference = (a - b)[~np.isnan(a - b)]
    means = [rng.choice(difference, size=len(difference)).mean() for _ in range(2000)]
    return (
        float(difference.mean()),
        float(np.percentile(means, 2.5)),
        float(np.percentile(means, 97.5)),
    )


def timing(
    rng: np.random.Generator, publications: list[dict[str, Any]], readers: int
) -> tuple[float, float]:
    """Seconds to build the readers' arrays and to rank them, best of 3."""
    from django.conf import settings

    from publishing import ranking

    train = [p for p in publications if p["at"] < START + timedelta(days=TRAIN_DAYS)]
    week = [p for p in publications if p["at"] >= START + timedelta(days=TRAIN_DAYS)][-140:][::-1]
    texts = [ranking.document_text(p["title"], p["summary"], p["body"]) for p in train + week]
    ids = [p["id"] for p in train + week]
    vectors = ranking.Vectors.from_counts(
        ids, ranking.term_counts(texts), None, {p["id"]: [p["topic"]] for p in train + week}
    )
    candidates = [ranking.Candidate(p["id"], p["at"], frozenset({p["topic"]})) for p in week]
    follow_reader = np.repeat(np.arange(readers), 3)
    follow_topic = np.concatenate(
        [rng.choice(TOPICS, size=3, replace=False) + 1 for _ in range(readers)]
    )
    signal_reader = np.repeat(np.arange(readers), 10)
    signal_publication = rng.choice([p["id"] for p in train], size=readers * 10)
    kinds = rng.choice(3, size=readers * 10, p=(0.85, 0.1, 0.05))
    base = np.array([1.0, 3.0, -3.0], dtype=np.float32)[kinds]
    ages = rng.uniform(0, 80, size=readers * 10).astype(np.float32)
    build_times, rank_times = [], []
    for _ in range(3):
        started = time.perf_counter()
        arrays = ranking.ReaderArrays.from_columns(
            readers,
            follow_reader,
            follow_topic,
            signal_reader,
            signal_publication,
            base,
            ages,
            settings.RANKING_HALF_LIFE_DAYS,
        )
        built = time.perf_counter()
        result = ranking.rank(
            arrays, candidates, vectors, recency_weight=settings.RANKING_RECENCY_WEIGHT
        )
        build_times.append(built - started)
        rank_times.append(time.perf_counter() - built)
    if result.order.shape != (readers, len(candidates)):
        raise SystemExit("the ranking did not cover every reader")
    return min(build_times), min(rank_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--readers", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timing-readers", type=int, default=100_000)
    options = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings

    rng = np.random.default_rng(options.seed)
    started = time.perf_counter()
    publications = corpus(rng)
    people = simulate(rng, publications, options.readers)
    results = evaluate(publications, people)
    quality_s = time.perf_counter() - started
    signals = sum(len(p["signals"]) for p in people) / len(people)
    print(
        f"\n{time.strftime('%Y-%m-%d %H:%M')} UTC, load {os.getloadavg()[0]:.1f}: "
        f"{len(publications):,} publications, {TOPICS} topics x {THEMES} themes, "
        f"{options.readers:,} readers ({signals:.1f} training signals each), seed {options.seed}, "
        f"RANKING_HALF_LIFE_DAYS={settings.RANKING_HALF_LIFE_DAYS:g}, "
        f"RANKING_RECENCY_WEIGHT={settings.RANKING_RECENCY_WEIGHT:g} ({quality_s:.0f} s)\n"
    )
    print("| Order | precision@5 | NDCG@10 |")
    print("|---|---:|---:|")
    for name, label in (
        ("ranker", "ranker"),
        ("recency", "recency only"),
        ("topic", "topic match only"),
    ):
        print(
            f"| {label} | {np.nanmean(results[f'{name} p@5']):.3f} | "
            f"{np.nanmean(results[f'{name} ndcg@10']):.3f} |"
        )
    print("\n| Difference (ranker minus) | precision@5, 95% CI | NDCG@10, 95% CI |")
    print("|---|---:|---:|")
    for name, label in (("recency", "recency only"), ("topic", "topic match only")):
        cells = []
        for metric in ("p@5", "ndcg@10"):
            mean, low, high = bootstrap(
                results[f"ranker {metric}"], results[f"{name} {metric}"], rng
            )
            cells.append(f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]")
        print(f"| {label} | {cells[0]} | {cells[1]} |")
    build_s, rank_s = timing(rng, publications, options.timing_readers)
    print(
        f"\n| Ranking {options.timing_readers:,} readers' weekly digests (140 candidates, 10 "
        "signals each) | best of 3 (s) |"
    )
    print("|---|---:|")
    print(f"| readers' arrays (ReaderArrays.from_columns) | {build_s:.2f} |")
    print(f"| ranking with reasons (rank) | {rank_s:.2f} |")


if __name__ == "__main__":
    main()
