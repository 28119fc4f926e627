"""Term vectors of publication versions, stored once per version, and their TF-IDF weights
(decision 0080): what publishing.ranking compares.

A version's title (counted twice), summary and body text are hashed into a fixed space of
2**18 terms (scikit-learn's HashingVectorizer: no vocabulary to fit) and stored as term counts
in ``PublicationVector`` the first time the version is ranked; never per reader. Because the
space is fixed, a stored vector never goes stale when new publications arrive. A
TfidfTransformer (sublinear term frequency, smoothed IDF) fitted on the latest
``REFERENCE_DOCUMENTS`` stored vectors, once per process while that set is unchanged, turns
stored counts into unit-length TF-IDF vectors: every vector compared in one ranking is weighted
by the same IDF.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
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

_hasher = HashingVectorizer(
    n_features=N_FEATURES,
    alternate_sign=False,
    norm=None,
    lowercase=True,
    strip_accents="unicode",
    dtype=np.float32,
)


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
