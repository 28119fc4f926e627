"""Relevance ranking of digest items, each with a reason a reader understands (decision 0080;
docs/personalization.md explains the method for editors).

Three parts:

- **Term vectors, stored once per version.** A version's title (counted twice), summary and
  body text are hashed into a fixed space of 2**18 terms (scikit-learn's HashingVectorizer:
  no vocabulary to fit) and stored as term counts in ``PublicationVector`` the first time the
  version is ranked; never per reader. Because the space is fixed, a stored vector never goes
  stale when new publications arrive.
- **TF-IDF weights.** A TfidfTransformer (sublinear term frequency, smoothed IDF) is fitted on
  the latest ``REFERENCE_DOCUMENTS`` stored vectors, once per process while that set is
  unchanged (a new publication refits it once, for everybody), and turns any stored counts into
  unit-length TF-IDF vectors: every vector compared in one ranking is weighted by the same IDF.
- **Ranking many readers at once** (``rank``): a reader's profile is the weighted sum of the
  vectors of what they read (human clicks), liked and disliked, each weight halved every
  ``RANKING_HALF_LIFE_DAYS``; the content score of every reader and candidate (the cosine
  similarity between profile and candidate) is one sparse by dense matrix product (signal
  weights x history-by-candidate cosine similarities) over the profile's length, blended
  with the reader's topic affinity and the candidate's recency. A reader without history gets
  the candidates newest first. The reason of each item is the signal that contributed most when
  it is similar enough, else the followed topic.

This module reads no subscriber and no engagement row: callers (channels.personalization, the
benchmark) hand it the readers' topics and signals.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from django.db.models import Count, Max
from scipy import sparse
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer

from publishing.models import Publication, PublicationVector
from publishing.rendering import html_to_text, render_body_html

#: The hashed term space: large enough that unrelated words rarely share a slot.
N_FEATURES = 2**18
#: How many of the latest stored vectors the IDF weights are fitted on.
REFERENCE_DOCUMENTS = 5000
#: A signal's weight: a human click, a "more like this", a "less like this".
READ, LIKED, DISLIKED = "read", "liked", "disliked"
SIGNAL_WEIGHTS: dict[str, float] = {READ: 1.0, LIKED: 3.0, DISLIKED: -3.0}
#: Signals older than this many half-lives weigh under 1/256 of a new one: ignored.
MAX_HALF_LIVES = 8
#: Within the interest part of a score: the share of content similarity (the rest: topics).
CONTENT_SHARE = 0.75
#: A history item explains a candidate ("like X that you read") from this cosine similarity on.
RELATED_SIMILARITY = 0.12
#: Readers scored per block (bounds the memory of the reasons' intermediate arrays).
BLOCK = 5_000

#: Reason kinds, as ``Ranking.reason_kind`` holds them.
RECENT, FOLLOW, SIMILAR_READ, SIMILAR_LIKED = 0, 1, 2, 3
REASON_NAMES = {RECENT: "recent", FOLLOW: "follow", SIMILAR_READ: "read", SIMILAR_LIKED: "liked"}

_hasher = HashingVectorizer(
    n_features=N_FEATURES,
    alternate_sign=False,
    norm=None,
    lowercase=True,
    strip_accents="unicode",
    dtype=np.float32,
)


# --- Term vectors ---------------------------------------------------------------------------


def document_text(title: str, summary: str, body_text: str) -> str:
    """What a publication's vector is made of: the title counts twice (it says what the piece
    is about most densely), then the summary and the body."""
    return f"{title}\n{title}\n{summary}\n{body_text}"


def term_counts(texts: Sequence[str]) -> sparse.csr_matrix:
    """Hashed term counts of ``texts``, one row each (nothing to fit: the space is fixed)."""
    return sparse.csr_matrix(_hasher.transform(texts), dtype=np.float32)


def _pack(row: sparse.csr_matrix) -> tuple[bytes, bytes]:
    return (
        np.asarray(row.indices, dtype=np.int32).tobytes(),
        np.asarray(row.data, dtype=np.float32).tobytes(),
    )


def _unpack(rows: Sequence[tuple[Any, Any]]) -> sparse.csr_matrix:
    """Stored (terms, counts) pairs as a matrix, one row each."""
    indptr = [0]
    indices: list[np.ndarray] = []
    data: list[np.ndarray] = []
    for terms, counts in rows:
        indices.append(np.frombuffer(bytes(terms), dtype=np.int32))
        data.append(np.frombuffer(bytes(counts), dtype=np.float32))
        indptr.append(indptr[-1] + len(indices[-1]))
    return sparse.csr_matrix(
        (
            np.concatenate(data) if data else np.zeros(0, np.float32),
            np.concatenate(indices) if indices else np.zeros(0, np.int32),
            np.asarray(indptr, dtype=np.int64),
        ),
        shape=(len(rows), N_FEATURES),
    )


def latest_versions(publication_ids: Iterable[int]) -> dict[int, int]:
    """Each publication's latest version (history row id): the one its digest entry shows."""
    rows = (
        Publication.history.model.objects.filter(id__in=list(publication_ids))
        .values("id")
        .annotate(last=Max("history_id"))
        .values_list("id", "last")
    )
    return {int(publication_id): int(last) for publication_id, last in rows}


def store_vectors(version_ids: Iterable[int]) -> int:
    """Compute and store the term vectors of these versions that have none; returns how many
    were written. Concurrent callers may both compute one: the first insert wins."""
    wanted = set(version_ids) - set(
        PublicationVector.objects.filter(version_id__in=list(version_ids)).values_list(
            "version_id", flat=True
        )
    )
    if not wanted:
        return 0
    versions = list(Publication.history.model.objects.filter(history_id__in=wanted))
    texts = [document_text(v.title, v.summary, html_to_text(render_body_html(v))) for v in versions]
    counts = term_counts(texts)
    rows = []
    for position, version in enumerate(versions):
        terms, values = _pack(counts[position])
        rows.append(
            PublicationVector(
                version_id=version.history_id, publication_id=version.id, terms=terms, counts=values
            )
        )
    PublicationVector.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


_idf_lock = threading.Lock()
_idf: dict[tuple[Any, ...], TfidfTransformer] = {}


def idf_weights() -> TfidfTransformer | None:
    """The TF-IDF transformer fitted on the latest REFERENCE_DOCUMENTS stored vectors; refitted
    only when the stored set changed (one aggregate query per call). None before any vector."""
    state = PublicationVector.objects.aggregate(
        n=Count("pk"), last=Max("version_id"), at=Max("created_at")
    )
    if not state["n"]:
        return None
    key = (state["n"], state["last"], state["at"])
    with _idf_lock:
        if key in _idf:
            return _idf[key]
    rows = list(
        PublicationVector.objects.order_by("-version_id").values_list("terms", "counts")[
            :REFERENCE_DOCUMENTS
        ]
    )
    transformer = TfidfTransformer(sublinear_tf=True).fit(_unpack(rows))
    with _idf_lock:
        _idf.clear()
        _idf[key] = transformer
    return transformer


def clear_idf_cache() -> None:
    with _idf_lock:
        _idf.clear()


@dataclass(frozen=True)
class Vectors:
    """Unit-length TF-IDF vectors of some publications (row ``index[publication_id]`` of
    ``matrix``), their topics and titles, weighted by one IDF."""

    index: dict[int, int]
    matrix: sparse.csr_matrix
    topics: dict[int, frozenset[int]]
    titles: dict[int, str]

    @classmethod
    def from_counts(
        cls,
        publication_ids: Sequence[int],
        counts: sparse.csr_matrix,
        transformer: TfidfTransformer | None,
        topics: Mapping[int, Iterable[int]],
        titles: Mapping[int, str] | None = None,
    ) -> Vectors:
        """Weight ``counts`` (one row per id) by ``transformer``'s IDF (None: fit on them)."""
        weights = transformer or TfidfTransformer(sublinear_tf=True).fit(counts)
        matrix = sparse.csr_matrix(weights.transform(counts), dtype=np.float32)
        return cls(
            index={publication_id: row for row, publication_id in enumerate(publication_ids)},
            matrix=matrix,
            topics={p: frozenset(topics.get(p, ())) for p in publication_ids},
            titles=dict(titles or {}),
        )


def load_vectors(publication_ids: Iterable[int]) -> Vectors:
    """The TF-IDF vectors of these publications' latest versions, computing and storing the
    term counts of versions ranked for the first time. A few queries, whatever the count."""
    versions = latest_versions(publication_ids)
    store_vectors(versions.values())
    stored = {
        version_id: (terms, counts)
        for version_id, terms, counts in PublicationVector.objects.filter(
            version_id__in=list(versions.values())
        ).values_list("version_id", "terms", "counts")
    }
    ids = [p for p, version_id in versions.items() if version_id in stored]
    counts = _unpack([stored[versions[p]] for p in ids])
    topics: dict[int, set[int]] = {}
    for publication_id, topic_id in Publication.topics.through.objects.filter(
        publication_id__in=ids
    ).values_list("publication_id", "topic_id"):
        topics.setdefault(publication_id, set()).add(topic_id)
    titles = dict(Publication.objects.filter(pk__in=ids).values_list("pk", "title"))
    return Vectors.from_counts(ids, counts, idf_weights(), topics, titles)


# --- Readers and their ranking --------------------------------------------------------------


@dataclass(frozen=True)
class Signal:
    """One thing a reader did about a publication: read it (a human click), liked or disliked
    it ("more/less like this"), ``age_days`` ago."""

    publication_id: int
    kind: str
    age_days: float


@dataclass(frozen=True)
class Reader:
    topic_ids: frozenset[int]
    signals: tuple[Signal, ...] = ()


@dataclass(frozen=True)
class Candidate:
    """A publication a digest may list."""

    publication_id: int
    published_at: datetime
    topic_ids: frozenset[int]


@dataclass(frozen=True)
class Reason:
    """Why an item is where it is, as a reader reads it (the digest templates word it):
    ``kind`` "follow" (``label``: a topic's name), "read" or "liked" (``label``: the title of
    the publication it is like), or "recent"."""

    kind: str
    label: str = ""


@dataclass(frozen=True)
class Ranking:
    """Every reader's candidates ranked; rows are readers in the order given, columns the
    candidates' positions. ``order[r, :listed[r]]`` are reader r's listed candidates, best
    first (a candidate is listed when the reader follows one of its topics)."""

    order: np.ndarray
    listed: np.ndarray
    scores: np.ndarray
    reason_kind: np.ndarray
    #: A publication id (kinds read and liked) or a topic id (kind follow).
    reason_ref: np.ndarray

    def reasons(
        self, reader: int, titles: Mapping[int, str], topic_names: Mapping[int, str]
    ) -> list[tuple[int, Reason]]:
        """Reader ``reader``'s listed candidates, best first, each with its reason."""
        out: list[tuple[int, Reason]] = []
        for position in self.order[reader, : self.listed[reader]]:
            kind = int(self.reason_kind[reader, position])
            ref = int(self.reason_ref[reader, position])
            label = topic_names.get(ref, "") if kind == FOLLOW else titles.get(ref, "")
            out.append((int(position), Reason(REASON_NAMES[kind], label)))
        return out


@dataclass(frozen=True)
class ReaderArrays:
    """Many readers' followed topics and signals as parallel arrays: what ``rank`` takes.
    ``follow_*`` has one entry per followed topic, ``signal_*`` one per signal."""

    count: int
    follow_reader: np.ndarray
    follow_topic: np.ndarray
    signal_reader: np.ndarray
    signal_publication: np.ndarray
    signal_weight: np.ndarray
    signal_liked: np.ndarray

    @classmethod
    def build(cls, readers: Sequence[Reader], half_life_days: float) -> ReaderArrays:
        """Each signal weighted by its kind and halved every ``half_life_days``."""
        follow = [(r, t) for r, reader in enumerate(readers) for t in reader.topic_ids]
        signals = [
            (r, s.publication_id, s.kind, max(s.age_days, 0.0))
            for r, reader in enumerate(readers)
            for s in reader.signals
        ]
        return cls.from_columns(
            len(readers),
            np.array([f[0] for f in follow], dtype=np.int64),
            np.array([f[1] for f in follow], dtype=np.int64),
            np.array([s[0] for s in signals], dtype=np.int64),
            np.array([s[1] for s in signals], dtype=np.int64),
            np.array([SIGNAL_WEIGHTS[s[2]] for s in signals], dtype=np.float32),
            np.array([s[3] for s in signals], dtype=np.float32),
            half_life_days,
        )

    @classmethod
    def from_columns(
        cls,
        count: int,
        follow_reader: np.ndarray,
        follow_topic: np.ndarray,
        signal_reader: np.ndarray,
        signal_publication: np.ndarray,
        signal_base: np.ndarray,
        signal_age_days: np.ndarray,
        half_life_days: float,
    ) -> ReaderArrays:
        """The same from columns (``signal_base``: SIGNAL_WEIGHTS of each signal's kind)."""
        keep = signal_age_days <= MAX_HALF_LIVES * half_life_days
        decay = np.power(0.5, signal_age_days[keep] / half_life_days, dtype=np.float32)
        base = signal_base[keep]
        return cls(
            count=count,
            follow_reader=follow_reader,
            follow_topic=follow_topic,
            signal_reader=signal_reader[keep],
            signal_publication=signal_publication[keep],
            signal_weight=(base * decay).astype(np.float32),
            signal_liked=base > SIGNAL_WEIGHTS[READ],
        )


def _recency(candidates: Sequence[Candidate]) -> np.ndarray:
    """0 for the oldest candidate, 1 for the newest, linear in between (all 1 when equal)."""
    times = np.array([c.published_at.timestamp() for c in candidates], dtype=np.float64)
    span = times.max() - times.min() if len(times) else 0.0
    if span <= 0:
        return np.ones(len(candidates), dtype=np.float32)
    recency: np.ndarray = ((times - times.min()) / span).astype(np.float32)
    return recency


def rank(
    readers: ReaderArrays,
    candidates: Sequence[Candidate],
    vectors: Vectors,
    *,
    recency_weight: float,
) -> Ranking:
    """Rank ``candidates`` (given newest first) for every reader at once.

    score = (1 - recency_weight) x (CONTENT_SHARE x content + (1 - CONTENT_SHARE) x topic)
    + recency_weight x recency, where content is the cosine similarity between the candidate
    and the reader's profile (what they read and liked, minus what they disliked), topic
    the reader's affinity to the candidate's best topic (followed topics, plus the topics of
    their signals), recency 0 (oldest) to 1 (newest). A reader with no signal gets recency
    alone, so the given order: newest first. Candidates without a vector count as unlike
    anything. Matrix products over the stored vectors; no model is fitted here.
    """
    n_readers, n_items = readers.count, len(candidates)
    if not n_items:
        empty = np.zeros((n_readers, 0))
        return Ranking(empty.astype(np.int32), np.zeros(n_readers, np.int32), empty, empty, empty)
    topic_ids = sorted(
        set(readers.follow_topic.tolist()).union(*(c.topic_ids for c in candidates))
        | {t for ts in vectors.topics.values() for t in ts}
    )
    topic_col = {t: k for k, t in enumerate(topic_ids)}
    n_topics = len(topic_ids)
    item_topics = np.zeros((n_items, n_topics), dtype=np.float32)
    for i, candidate in enumerate(candidates):
        for t in candidate.topic_ids:
            item_topics[i, topic_col[t]] = 1.0
    follows = sparse.csr_matrix(
        (
            np.ones(len(readers.follow_reader), dtype=np.float32),
            (readers.follow_reader, [topic_col[t] for t in readers.follow_topic.tolist()]),
        ),
        shape=(n_readers, n_topics),
    )
    follows.data[:] = 1.0  # a topic followed twice is followed
    listed_mask = np.asarray((follows @ item_topics.T) > 0)

    # The history: publications some reader has a signal on and a vector for.
    known = np.array([p in vectors.index for p in readers.signal_publication.tolist()], bool)
    history_ids, history_col = np.unique(readers.signal_publication[known], return_inverse=True)
    n_history = len(history_ids)
    weights = sparse.csr_matrix(
        (readers.signal_weight[known], (readers.signal_reader[known], history_col)),
        shape=(n_readers, n_history),
        dtype=np.float32,
    )
    weights.sum_duplicates()
    item_rows = [vectors.index.get(c.publication_id, -1) for c in candidates]
    item_matrix = sparse.vstack(
        [
            vectors.matrix[row] if row >= 0 else sparse.csr_matrix((1, N_FEATURES))
            for row in item_rows
        ]
    ).tocsr()
    history_matrix = vectors.matrix[[vectors.index[int(p)] for p in history_ids]]
    similarity = np.asarray((history_matrix @ item_matrix.T).todense(), dtype=np.float32)

    # Cosine similarity to the profile (the weighted sum of the history's vectors): the dot
    # products are weights x similarity; the profile's length comes from the history's Gram
    # matrix, per block of readers (never a profile vector per reader).
    has_history = np.diff(weights.indptr) > 0
    content = np.asarray(weights @ similarity, dtype=np.float32)
    gram = np.asarray((history_matrix @ history_matrix.T).todense(), dtype=np.float32)
    length = np.zeros(n_readers, dtype=np.float32)
    for start in range(0, n_readers, BLOCK):
        block = weights[start : start + BLOCK]
        squared = np.asarray(block.multiply(block @ gram).sum(axis=1)).ravel()
        length[start : start + BLOCK] = np.sqrt(np.clip(squared, 0.0, None))
    has_history &= length > 0
    content[has_history] /= length[has_history, None]

    history_topics = np.zeros((n_history, n_topics), dtype=np.float32)
    for h, publication_id in enumerate(history_ids.tolist()):
        for t in vectors.topics.get(publication_id, ()):
            history_topics[h, topic_col[t]] = 1.0
    affinity = np.asarray(follows.todense(), dtype=np.float32) + np.asarray(
        weights @ history_topics, dtype=np.float32
    )
    np.clip(affinity, 0.0, None, out=affinity)
    if n_topics:
        top = affinity.max(axis=1, keepdims=True)
        np.divide(affinity, top, out=affinity, where=top > 0)
    topic_score = np.zeros((n_readers, n_items), dtype=np.float32)
    best_topic = np.full((n_readers, n_items), -1, dtype=np.int64)
    followed = np.asarray(follows.todense(), dtype=bool)
    best_followed = np.full((n_readers, n_items), -1.0, dtype=np.float32)
    for k in range(n_topics):
        column = affinity[:, k : k + 1] * item_topics[:, k]
        np.maximum(topic_score, column, out=topic_score)
        # The reason's topic: the followed topic of the item the reader is most drawn to.
        eligible = followed[:, k : k + 1] & (item_topics[:, k] > 0)
        better = eligible & (column > best_followed)
        best_followed[better] = column[better]
        best_topic[better] = topic_ids[k]

    recency = _recency(candidates)
    interest = CONTENT_SHARE * content + (1 - CONTENT_SHARE) * topic_score
    scores = (1 - recency_weight) * interest + recency_weight * recency
    scores[~has_history] = recency
    scores[~listed_mask] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable").astype(np.int32)

    kind = np.where(best_topic >= 0, FOLLOW, RECENT).astype(np.int8)
    ref = best_topic.copy()
    _similar_reasons(weights, readers, known, history_ids, similarity, kind, ref)
    return Ranking(
        order=order,
        listed=listed_mask.sum(axis=1).astype(np.int32),
        scores=scores,
        reason_kind=kind,
        reason_ref=ref,
    )


def _similar_reasons(
    weights: sparse.csr_matrix,
    readers: ReaderArrays,
    known: np.ndarray,
    history_ids: np.ndarray,
    similarity: np.ndarray,
    kind: np.ndarray,
    ref: np.ndarray,
) -> None:
    """Where the history item contributing most to a candidate's score (largest positive
    weight x similarity) is similar enough, it becomes the reason: "like X, which you read" (or
    liked). Per block of readers, with segment reductions over the sparse rows: no loop over
    readers."""
    # The positive signals, and beside them (same sparsity pattern, built from the same
    # coordinates) whether the reader liked that publication rather than only read it.
    keep = known & (readers.signal_weight > 0)
    coordinates = (
        readers.signal_reader[keep],
        np.searchsorted(history_ids, readers.signal_publication[keep]),
    )
    shape = weights.shape
    positive = sparse.csr_matrix((readers.signal_weight[keep], coordinates), shape=shape)
    liked = sparse.csr_matrix(
        (readers.signal_liked[keep].astype(np.float32), coordinates), shape=shape
    )
    positive.sum_duplicates()
    liked.sum_duplicates()
    for start in range(0, weights.shape[0], BLOCK):
        block = positive[start : start + BLOCK]
        counts = np.diff(block.indptr)
        rows = np.flatnonzero(counts)
        if not len(rows):
            continue
        contributions = block.data[:, None] * similarity[block.indices]
        starts = block.indptr[rows]
        best = np.maximum.reduceat(contributions, starts, axis=0)
        segment = np.repeat(np.arange(len(rows)), counts[rows])
        positions = np.where(
            contributions >= best[segment],
            np.arange(len(block.data))[:, None],
            len(block.data),
        )
        first = np.minimum.reduceat(positions, starts, axis=0)
        best_history = block.indices[first]
        related = similarity[best_history, np.arange(similarity.shape[1])[None, :]]
        chosen = related >= RELATED_SIMILARITY
        reader_rows = start + rows
        was_liked = liked[start : start + BLOCK].data[first] > 0
        block_kind = np.where(was_liked, SIMILAR_LIKED, SIMILAR_READ)
        kind[reader_rows] = np.where(chosen, block_kind, kind[reader_rows])
        ref[reader_rows] = np.where(chosen, history_ids[best_history], ref[reader_rows])
