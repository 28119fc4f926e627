"""Relevance ranking of digest items, each with a reason a reader understands (decision 0080;
docs/personalization.md explains the method for editors).

The vectors it compares are publishing.vectors' (term counts stored once per version, TF-IDF
weights fitted once per change of the corpus), re-exported here.

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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from scipy import sparse

from publishing.vectors import (
    N_FEATURES,
    REFERENCE_DOCUMENTS,
    Vectors,
    clear_idf_cache,
    document_text,
    idf_weights,
    latest_versions,
    load_vectors,
    store_vectors,
    term_counts,
)

__all__ = [
    "BLOCK",
    "CONTENT_SHARE",
    "DISLIKED",
    "FOLLOW",
    "LIKED",
    "MAX_HALF_LIVES",
    "N_FEATURES",
    "READ",
    "REASON_NAMES",
    "RECENT",
    "REFERENCE_DOCUMENTS",
    "RELATED_SIMILARITY",
    "SIGNAL_WEIGHTS",
    "SIMILAR_LIKED",
    "SIMILAR_READ",
    "Candidate",
    "Ranking",
    "Reader",
    "ReaderArrays",
    "Reason",
    "Signal",
    "Vectors",
    "clear_idf_cache",
    "document_text",
    "idf_weights",
    "latest_versions",
    "load_vectors",
    "rank",
    "store_vectors",
    "term_counts",
]

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


@dataclass(frozen=True)
class _History:
    """The publications some reader has a signal on (and a vector for), the readers' signal
    weights on them, and their cosine similarity to each candidate."""

    known: np.ndarray
    ids: np.ndarray
    weights: sparse.csr_matrix
    matrix: sparse.csr_matrix
    similarity: np.ndarray


def _history(readers: ReaderArrays, candidates: Sequence[Candidate], vectors: Vectors) -> _History:
    known = np.array([p in vectors.index for p in readers.signal_publication.tolist()], bool)
    history_ids, history_col = np.unique(readers.signal_publication[known], return_inverse=True)
    weights = sparse.csr_matrix(
        (readers.signal_weight[known], (readers.signal_reader[known], history_col)),
        shape=(readers.count, len(history_ids)),
        dtype=np.float32,
    )
    weights.sum_duplicates()
    item_matrix = sparse.vstack(
        [
            vectors.matrix[row] if row >= 0 else sparse.csr_matrix((1, N_FEATURES))
            for row in (vectors.index.get(c.publication_id, -1) for c in candidates)
        ]
    ).tocsr()
    matrix = vectors.matrix[[vectors.index[int(p)] for p in history_ids]]
    similarity = np.asarray((matrix @ item_matrix.T).todense(), dtype=np.float32)
    return _History(known, history_ids, weights, matrix, similarity)


def _content(history: _History) -> tuple[np.ndarray, np.ndarray]:
    """(cosine similarity of each reader's profile to each candidate, readers with history).

    The profile is the weighted sum of the history's vectors: its dot products are weights x
    similarity, its length comes from the history's Gram matrix, per block of readers (never a
    profile vector per reader)."""
    weights = history.weights
    n_readers = weights.shape[0]
    has_history = np.diff(weights.indptr) > 0
    content = np.asarray(weights @ history.similarity, dtype=np.float32)
    gram = np.asarray((history.matrix @ history.matrix.T).todense(), dtype=np.float32)
    length = np.zeros(n_readers, dtype=np.float32)
    for start in range(0, n_readers, BLOCK):
        block = weights[start : start + BLOCK]
        squared = np.asarray(block.multiply(block @ gram).sum(axis=1)).ravel()
        length[start : start + BLOCK] = np.sqrt(np.clip(squared, 0.0, None))
    has_history &= length > 0
    content[has_history] /= length[has_history, None]
    return content, has_history


def _topics(
    readers: ReaderArrays, candidates: Sequence[Candidate], vectors: Vectors, history: _History
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(listed: the reader follows one of the candidate's topics; the reader's affinity to the
    candidate's best topic, 0-1; the followed topic of the candidate the reader is most drawn
    to, -1 when none), each readers x candidates. Affinity: followed topics (1 each) plus the
    signal weights of the topics of the history, scaled by the reader's largest."""
    n_readers, n_items = readers.count, len(candidates)
    topic_ids = sorted(
        set(readers.follow_topic.tolist()).union(*(c.topic_ids for c in candidates))
        | {t for ts in vectors.topics.values() for t in ts}
    )
    column_of = {t: k for k, t in enumerate(topic_ids)}
    item_topics = np.zeros((n_items, len(topic_ids)), dtype=np.float32)
    for i, candidate in enumerate(candidates):
        for t in candidate.topic_ids:
            item_topics[i, column_of[t]] = 1.0
    follows = sparse.csr_matrix(
        (
            np.ones(len(readers.follow_reader), dtype=np.float32),
            (readers.follow_reader, [column_of[t] for t in readers.follow_topic.tolist()]),
        ),
        shape=(n_readers, len(topic_ids)),
    )
    follows.data[:] = 1.0  # a topic followed twice is followed
    listed = np.asarray((follows @ item_topics.T) > 0)
    history_topics = np.zeros((len(history.ids), len(topic_ids)), dtype=np.float32)
    for h, publication_id in enumerate(history.ids.tolist()):
        for t in vectors.topics.get(publication_id, ()):
            history_topics[h, column_of[t]] = 1.0
    followed = np.asarray(follows.todense(), dtype=np.float32)
    affinity = followed + np.asarray(history.weights @ history_topics, dtype=np.float32)
    np.clip(affinity, 0.0, None, out=affinity)
    if topic_ids:
        top = affinity.max(axis=1, keepdims=True)
        np.divide(affinity, top, out=affinity, where=top > 0)
    score = np.zeros((n_readers, n_items), dtype=np.float32)
    best_topic = np.full((n_readers, n_items), -1, dtype=np.int64)
    best = np.full((n_readers, n_items), -1.0, dtype=np.float32)
    for k, topic_id in enumerate(topic_ids):
        column = affinity[:, k : k + 1] * item_topics[:, k]
        np.maximum(score, column, out=score)
        better = (followed[:, k : k + 1] > 0) & (item_topics[:, k] > 0) & (column > best)
        best[better] = column[better]
        best_topic[better] = topic_id
    return listed, score, best_topic


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
    history = _history(readers, candidates, vectors)
    content, has_history = _content(history)
    listed, topic_score, best_topic = _topics(readers, candidates, vectors, history)
    recency = _recency(candidates)
    interest = CONTENT_SHARE * content + (1 - CONTENT_SHARE) * topic_score
    scores = (1 - recency_weight) * interest + recency_weight * recency
    scores[~has_history] = recency
    scores[~listed] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable").astype(np.int32)
    kind = np.where(best_topic >= 0, FOLLOW, RECENT).astype(np.int8)
    ref = best_topic.copy()
    _similar_reasons(
        history.weights, readers, history.known, history.ids, history.similarity, kind, ref
    )
    return Ranking(
        order=order,
        listed=listed.sum(axis=1).astype(np.int32),
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
    # A publication the reader read and then disliked is not a reason, whatever its signals:
    # only those whose net weight (the summed ``weights``) is positive are.
    net = np.zeros(len(known), dtype=np.float32)
    where = np.flatnonzero(known)
    net[where] = np.asarray(
        weights[
            readers.signal_reader[where],
            np.searchsorted(history_ids, readers.signal_publication[where]),
        ]
    ).ravel()
    keep = known & (readers.signal_weight > 0) & (net > 0)
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
