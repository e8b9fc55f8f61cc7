import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from livi_tasks.core.metrics import encode_labels, metrics_from_similarity, metrics_from_topk


def _single_query_ranking(relevance: list[int]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One query (track 0) whose candidates 1..n arrive in the given order of relevance."""
    n_candidates = len(relevance)
    ids = np.arange(1, n_candidates + 1)[None, :]
    scores = np.linspace(1.0, 0.0, n_candidates)[None, :]
    labels = ["q"] + [("q" if rel else f"other{pos}") for pos, rel in enumerate(relevance)]
    return ids, scores, labels


def test_hand_computed_ranking_with_relevant_beyond_top_10():
    relevance = [0] * 15
    for rank in (1, 5, 12):
        relevance[rank - 1] = 1
    ids, scores, labels = _single_query_ranking(relevance)
    result = metrics_from_topk(ids, scores, labels, query_index=[0])
    assert result.map == pytest.approx((1 / 1 + 2 / 5 + 3 / 12) / 3)
    assert result.map_at_10 == pytest.approx((1 / 1 + 2 / 5) / 3)
    assert result.mr1 == 1 and result.mrr == 1
    assert result.p_at_10 == pytest.approx(2 / 10)
    assert (result.hr_at_1, result.hr_at_10, result.hr_at_100) == (1.0, 1.0, 1.0)


def test_relevant_items_all_at_the_end():
    similarity = np.zeros((7, 7))
    # Query 0 ranks its irrelevant candidates 3..6 above its two versions 1 and 2.
    similarity[0] = [0, 0.1, 0.05, 0.9, 0.8, 0.7, 0.6]
    result = metrics_from_similarity(similarity, ["a", "a", "a", "b", "c", "d", "e"])
    query_0 = result.per_query().set_index("query_index").loc[0]
    assert query_0.first_rank == 5
    assert query_0.average_precision == pytest.approx((1 / 5 + 2 / 6) / 2)
    assert result.n_queries == 3 and result.n_excluded == 4


def test_ties_are_resolved_pessimistically():
    # Every score is equal: each relevant candidate ranks after all irrelevant ones.
    similarity = np.ones((4, 4))
    result = metrics_from_similarity(similarity, ["a", "a", "b", "c"])
    assert result.n_queries == 2
    assert list(result.first_rank) == [3, 3]
    assert result.map == pytest.approx(1 / 3)
    assert result.mr1 == 3 and result.mrr == pytest.approx(1 / 3)
    assert result.hr_at_1 == 0.0 and result.hr_at_10 == 1.0
    assert result.p_at_10 == pytest.approx(1 / 3)


def test_partial_tie_between_relevant_and_irrelevant():
    similarity = np.array(
        [
            [0.0, 0.5, 0.5, 0.9],
            [0.5, 0.0, 0.1, 0.2],
            [0.5, 0.1, 0.0, 0.3],
            [0.9, 0.2, 0.3, 0.0],
        ]
    )
    # Query 0: candidate 3 (0.9, irrelevant), then 1 (relevant) tied with 2 (irrelevant): 2 goes first.
    result = metrics_from_similarity(similarity, ["a", "a", "b", "c"])
    assert result.first_rank[0] == 3
    assert result.first_rank[1] == 1


def test_queries_without_versions_and_unlabelled_tracks_are_excluded():
    similarity = np.random.default_rng(0).random((6, 6))
    labels = ["a", "a", "solo", None, "", float("nan")]
    result = metrics_from_similarity(similarity, labels)
    assert result.n_queries == 2
    assert result.n_excluded == 4
    assert result.n_unlabelled == 3
    assert list(result.query_index) == [0, 1]


def test_unlabelled_tracks_are_never_relevant():
    assert list(encode_labels(["x", None, "", "x", "y", float("nan")])) == [0, -1, -1, 0, 1, -1]
    similarity = np.array([[0, 0.1, 0.9], [0.1, 0, 0.9], [0.9, 0.9, 0]])
    # Two unlabelled tracks (1 and 2) do not count as versions of each other.
    result = metrics_from_similarity(similarity, ["x", None, None])
    assert result.n_queries == 0 and math.isnan(result.map)


def test_no_query_gives_nan_metrics():
    result = metrics_from_similarity(np.eye(3), ["a", "b", "c"])
    assert result.n_queries == 0 and result.n_excluded == 3
    assert math.isnan(result.map) and math.isnan(result.hr_at_10)


def test_truncated_topk_marks_undecidable_cutoffs():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 30, size=200).astype(str)
    similarity = rng.random((200, 200))
    ids = np.argsort(-similarity, axis=1)[:, :20]
    truncated = metrics_from_topk(ids, np.take_along_axis(similarity, ids, axis=1), labels)
    full = metrics_from_similarity(similarity, labels)
    assert math.isnan(truncated.hr_at_100)
    assert truncated.hr_at_10 == pytest.approx(full.hr_at_10)
    assert np.all(truncated.average_precision <= full.average_precision + 1e-12)
    unresolved = truncated.first_rank > 19
    # Ranked candidates: 20 minus the query itself when Faiss returned it.
    assert np.all(full.first_rank[unresolved] >= truncated.first_rank[unresolved])


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="expected"):
        metrics_from_similarity(np.zeros((2, 3)), ["a", "a"])
    with pytest.raises(ValueError, match="lie in"):
        metrics_from_topk(np.array([[5]]), np.array([[1.0]]), ["a", "a"])


labels_strategy = st.lists(st.sampled_from(["a", "b", "c", "d", "e", None]), min_size=2, max_size=30)


@settings(max_examples=60, deadline=None)
@given(labels=labels_strategy, seed=st.integers(0, 2**32 - 1))
def test_perfect_ranking_scores_one(labels, seed):
    codes = encode_labels(labels)
    same_work = (codes[:, None] == codes[None, :]) & (codes[:, None] >= 0)
    noise = np.random.default_rng(seed).random((len(labels), len(labels))) * 0.5
    result = metrics_from_similarity(same_work + noise, labels)
    if result.n_queries == 0:
        return
    assert result.map == pytest.approx(1.0)
    assert result.mrr == 1.0 and result.mr1 == 1.0
    assert result.hr_at_1 == result.hr_at_10 == result.hr_at_100 == 1.0
    assert result.map_at_10 == pytest.approx(1.0)


@settings(max_examples=60, deadline=None)
@given(labels=labels_strategy, seed=st.integers(0, 2**32 - 1), levels=st.integers(1, 5), extra=st.integers(0, 3))
@example(labels=["a"] * 6 + ["b"], seed=0, levels=1, extra=1)  # once differed in the last bit
@example(labels=["a"] * 9 + ["b"] + ["a"] * 4, seed=0, levels=2, extra=2)
def test_topk_covering_every_candidate_equals_full_matrix(labels, seed, levels, extra):
    rng = np.random.default_rng(seed)
    n = len(labels)
    # Few score levels force many ties; the rows are shuffled so Faiss's order within ties is arbitrary.
    similarity = rng.integers(0, levels, size=(n, n)).astype(np.float32)
    ids = np.stack([rng.permutation(n) for _ in range(n)])
    scores = np.take_along_axis(similarity, ids, axis=1)
    padding = np.full((n, extra), -1)
    ids = np.concatenate([ids, padding], axis=1)
    scores = np.concatenate([scores, np.full((n, extra), -np.inf, dtype=np.float32)], axis=1)
    full = metrics_from_similarity(similarity, labels)
    topk = metrics_from_topk(ids, scores, labels)
    # Equal up to float rounding: the two paths sum tied precisions in different orders.
    for name, value in full.as_dict().items():
        other = topk.as_dict()[name]
        assert math.isclose(value, other, rel_tol=1e-12) or (math.isnan(value) and math.isnan(other)), name
    np.testing.assert_array_equal(full.first_rank, topk.first_rank)
    np.testing.assert_allclose(full.average_precision, topk.average_precision, rtol=1e-12)
    np.testing.assert_array_equal(full.query_index, topk.query_index)
