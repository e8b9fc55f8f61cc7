"""Cover-retrieval metrics with the peers' definitions (DESIGN.md section 2).

Queries are the labelled tracks that have at least one other version in the set; the candidates
of a query are all tracks but itself. Tracks whose work label is empty (None, NaN or "") are never
queries and never relevant. Ranks are 1-based.

- AP: average precision over the whole ranking, ``sum_p rel(p) * P@p / n_relevant``; MAP its mean.
- MAP@10: ``sum_{p<=10} rel(p) * P@p / min(10, n_relevant)``, averaged.
- MR1: mean rank of the first relevant candidate; MRR: mean of its reciprocal.
- HR@k: share of queries with a relevant candidate in the top k.
- P@10: mean share of relevant candidates among the top 10 (CoverHunter's "top10"); when a set
  has fewer than 10 candidates the share is taken over all of them.

Tie policy (pessimistic): candidates are ordered by descending score and, among equal scores,
irrelevant candidates come before relevant ones, then by ascending candidate index. A model that
cannot tell candidates apart therefore earns no credit from the order in which they happen to be
stored, and the result depends on nothing but the scores. NaN scores rank last.

Two entry points share one core: :func:`metrics_from_similarity` takes a full n x n similarity
matrix, :func:`metrics_from_topk` a Faiss result (ids and scores of shape (n_queries, k)). On a
truncated ranking, relevant candidates beyond the cut contribute nothing to AP (its denominator is
still every relevant candidate), a query whose first relevant candidate lies beyond the cut gets
rank ``k_eff + 1`` and reciprocal rank 0 (``k_eff``: candidates actually ranked), and cutoff
metrics that the ranking cannot decide (HR@100 from a top-50 list) are NaN. When the top-k
ranking covers every candidate both paths give identical numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

HIT_CUTOFFS = (1, 10, 100)
TOP_CUTOFF = 10
QUERY_BLOCK = 256


@dataclass(frozen=True)
class RetrievalMetrics:
    """Aggregates plus per-query arrays (aligned: one entry per query, in query order)."""

    map: float
    map_at_10: float
    mr1: float
    mrr: float
    hr_at_1: float
    hr_at_10: float
    hr_at_100: float
    p_at_10: float
    n_queries: int
    n_excluded: int
    n_unlabelled: int
    query_index: np.ndarray = field(repr=False)
    first_rank: np.ndarray = field(repr=False)
    average_precision: np.ndarray = field(repr=False)
    n_relevant: np.ndarray = field(repr=False)

    def as_dict(self) -> dict[str, float | int]:
        """The scalar results, e.g. for MLflow or a JSON report."""
        return {
            "MAP": self.map,
            "MAP@10": self.map_at_10,
            "MR1": self.mr1,
            "MRR": self.mrr,
            "HR@1": self.hr_at_1,
            "HR@10": self.hr_at_10,
            "HR@100": self.hr_at_100,
            "P@10": self.p_at_10,
            "n_queries": self.n_queries,
            "n_excluded": self.n_excluded,
            "n_unlabelled": self.n_unlabelled,
        }

    def per_query(self) -> pd.DataFrame:
        """One row per query: its index, number of relevant candidates, first relevant rank and AP."""
        return pd.DataFrame(
            {
                "query_index": self.query_index,
                "n_relevant": self.n_relevant,
                "first_rank": self.first_rank,
                "average_precision": self.average_precision,
            }
        )


def encode_labels(work_ids: Sequence | np.ndarray | pd.Series) -> np.ndarray:
    """Work labels -> int codes; -1 marks an unlabelled track (None, NaN or blank string)."""
    names = [None if pd.isna(work) or str(work).strip() == "" else str(work) for work in work_ids]
    codes, _ = pd.factorize(pd.Series(names, dtype=object), use_na_sentinel=True)
    return codes.astype(np.int64)


def _version_counts(labels: np.ndarray) -> np.ndarray:
    """For each track, how many other tracks share its label (0 for unlabelled tracks)."""
    labelled = labels >= 0
    counts = np.zeros(len(labels), dtype=np.int64)
    if labelled.any():
        per_label = np.bincount(labels[labelled])
        counts[labelled] = per_label[labels[labelled]] - 1
    return counts


def _ranked_relevance(
    scores: np.ndarray,
    candidate_labels: np.ndarray,
    valid: np.ndarray,
    candidate_ids: np.ndarray,
    query_labels: np.ndarray,
) -> np.ndarray:
    """Sort each row by the tie policy; return relevance (bool) in rank order, invalid entries last and False."""
    relevant = valid & (candidate_labels == query_labels[:, None]) & (query_labels[:, None] >= 0)
    descending = np.where(np.isnan(scores), np.inf, -scores.astype(np.float64))
    # np.lexsort's last key is the primary one: valid first, then score, then irrelevant before relevant, then id.
    order = np.lexsort((candidate_ids, relevant, descending, ~valid), axis=-1)
    return np.take_along_axis(relevant, order, axis=-1)


def _per_query_metrics(ranked: np.ndarray, n_ranked: np.ndarray, n_relevant: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics of each row of a rank-ordered relevance matrix whose valid entries form a prefix."""
    positions = np.arange(1, ranked.shape[1] + 1)
    hits = np.cumsum(ranked, axis=1)
    precision_at_hits = np.where(ranked, hits / positions, 0.0)
    found = ranked.any(axis=1)
    first_rank = np.where(found, ranked.argmax(axis=1) + 1, n_ranked + 1)
    top = min(TOP_CUTOFF, ranked.shape[1])
    metrics = {
        "ap": precision_at_hits.sum(axis=1) / n_relevant,
        "ap_at_10": precision_at_hits[:, :top].sum(axis=1) / np.minimum(TOP_CUTOFF, n_relevant),
        "first_rank": first_rank,
        "reciprocal_rank": np.where(found, 1.0 / first_rank, 0.0),
        "hits_at_10": hits[:, top - 1],
    }
    for cutoff in HIT_CUTOFFS:
        metrics[f"hit_at_{cutoff}"] = (first_rank <= cutoff) & found
    return metrics


def _aggregate(
    per_query: dict[str, np.ndarray],
    query_index: np.ndarray,
    n_relevant: np.ndarray,
    n_ranked: np.ndarray,
    n_candidates: int,
    n_excluded: int,
    n_unlabelled: int,
) -> RetrievalMetrics:
    def decided_mean(values: np.ndarray, cutoff: int) -> float:
        # A cutoff metric is known only where the ranking reaches the cutoff or holds every candidate.
        if len(values) == 0 or np.any(n_ranked < min(cutoff, n_candidates)):
            return float("nan")
        return float(np.mean(values))

    def mean(values: np.ndarray) -> float:
        return float(np.mean(values)) if len(values) else float("nan")

    top_size = max(1, min(TOP_CUTOFF, n_candidates))
    return RetrievalMetrics(
        map=mean(per_query["ap"]),
        map_at_10=decided_mean(per_query["ap_at_10"], TOP_CUTOFF),
        mr1=mean(per_query["first_rank"]),
        mrr=mean(per_query["reciprocal_rank"]),
        hr_at_1=decided_mean(per_query["hit_at_1"], 1),
        hr_at_10=decided_mean(per_query["hit_at_10"], 10),
        hr_at_100=decided_mean(per_query["hit_at_100"], 100),
        p_at_10=decided_mean(per_query["hits_at_10"] / top_size, TOP_CUTOFF),
        n_queries=len(query_index),
        n_excluded=n_excluded,
        n_unlabelled=n_unlabelled,
        query_index=query_index,
        first_rank=per_query["first_rank"].astype(np.int64),
        average_precision=per_query["ap"].astype(np.float64),
        n_relevant=n_relevant,
    )


def _collect(blocks: list[dict[str, np.ndarray]], n_ranked_blocks: list[np.ndarray]) -> tuple[dict, np.ndarray]:
    keys = ("ap", "ap_at_10", "first_rank", "reciprocal_rank", "hits_at_10") + tuple(f"hit_at_{c}" for c in HIT_CUTOFFS)
    if not blocks:
        return {key: np.zeros(0) for key in keys}, np.zeros(0, dtype=np.int64)
    return {key: np.concatenate([block[key] for block in blocks]) for key in keys}, np.concatenate(n_ranked_blocks)


def _query_selection(labels: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Which of ``rows`` are queries; returns (mask, n_relevant of each row, n_excluded, n_unlabelled)."""
    versions = _version_counts(labels)[rows]
    is_query = versions > 0
    return is_query, versions, int((~is_query).sum()), int((labels[rows] < 0).sum())


def metrics_from_similarity(similarity: np.ndarray, work_ids: Sequence | np.ndarray | pd.Series) -> RetrievalMetrics:
    """Metrics from a full (n, n) similarity matrix whose rows and columns follow ``work_ids``."""
    similarity = np.asarray(similarity)
    labels = encode_labels(work_ids)
    n = len(labels)
    if similarity.shape != (n, n):
        raise ValueError(f"similarity has shape {similarity.shape}, expected ({n}, {n}) for {n} labels")
    rows = np.arange(n)
    is_query, versions, n_excluded, n_unlabelled = _query_selection(labels, rows)
    query_index = rows[is_query]
    candidate_ids = np.arange(n)
    blocks, n_ranked_blocks = [], []
    for start in range(0, len(query_index), QUERY_BLOCK):
        block = query_index[start : start + QUERY_BLOCK]
        valid = candidate_ids[None, :] != block[:, None]
        ranked = _ranked_relevance(
            similarity[block],
            np.broadcast_to(labels, valid.shape),
            valid,
            np.broadcast_to(candidate_ids, valid.shape),
            labels[block],
        )
        n_ranked = np.full(len(block), n - 1)
        blocks.append(_per_query_metrics(ranked, n_ranked, versions[block]))
        n_ranked_blocks.append(n_ranked)
    per_query, n_ranked = _collect(blocks, n_ranked_blocks)
    return _aggregate(per_query, query_index, versions[is_query], n_ranked, n - 1, n_excluded, n_unlabelled)


def metrics_from_topk(
    ids: np.ndarray,
    scores: np.ndarray,
    work_ids: Sequence | np.ndarray | pd.Series,
    query_index: np.ndarray | Sequence[int] | None = None,
) -> RetrievalMetrics:
    """Metrics from a Faiss top-k result.

    ``ids``/``scores`` have shape (n_queries, k); ids index into ``work_ids`` (the whole candidate
    set) and -1 marks an empty slot. Row r is the result for track ``query_index[r]`` (default:
    row r is track r). The query itself is dropped from its own list if Faiss returned it.
    """
    ids = np.asarray(ids, dtype=np.int64)
    scores = np.asarray(scores)
    labels = encode_labels(work_ids)
    n = len(labels)
    if ids.shape != scores.shape or ids.ndim != 2 or ids.shape[1] == 0:
        raise ValueError(f"ids {ids.shape} and scores {scores.shape} must be matching 2-d arrays with k >= 1")
    rows = np.arange(len(ids)) if query_index is None else np.asarray(query_index, dtype=np.int64)
    if len(rows) != len(ids):
        raise ValueError(f"query_index has {len(rows)} entries for {len(ids)} result rows")
    if np.any((ids >= n) | (ids < -1)) or np.any((rows < 0) | (rows >= n)):
        raise ValueError(f"ids and query_index must lie in [0, {n}) (ids may be -1 for empty slots)")
    is_query, versions, n_excluded, n_unlabelled = _query_selection(labels, rows)
    result_rows = np.flatnonzero(is_query)
    blocks, n_ranked_blocks = [], []
    for start in range(0, len(result_rows), QUERY_BLOCK):
        block = result_rows[start : start + QUERY_BLOCK]
        block_ids = ids[block]
        valid = (block_ids >= 0) & (block_ids != rows[block][:, None])
        ranked = _ranked_relevance(
            scores[block], labels[np.maximum(block_ids, 0)], valid, block_ids, labels[rows[block]]
        )
        n_ranked = valid.sum(axis=1)
        blocks.append(_per_query_metrics(ranked, n_ranked, versions[block]))
        n_ranked_blocks.append(n_ranked)
    per_query, n_ranked = _collect(blocks, n_ranked_blocks)
    return _aggregate(per_query, rows[is_query], versions[is_query], n_ranked, n - 1, n_excluded, n_unlabelled)


def bootstrap_interval(values: np.ndarray, resamples: int = 10_000, seed: int = 0) -> list[float]:
    """95% bootstrap interval of the mean of per-query values (APs, or paired AP differences):
    the queries resampled with replacement."""
    values = np.asarray(values, np.float64)
    if not len(values):
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (resamples, len(values)))].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]
