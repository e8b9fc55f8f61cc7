"""The two index backends side by side: Faiss (TrackIndex) and Milvus (milvus-lite, the same client
code as a Milvus server): same top-k for the same vectors, deletes that leave the rest as it was."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from livi_tasks.core.config import IndexConfig
from livi_tasks.core.index import TrackIndex
from livi_tasks.core.milvus_index import MilvusTrackIndex, connect, primary_key

DIM = 32
MODEL = "model@test"


def clustered(n: int, seed: int = 0, versions: int = 4) -> tuple[np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    works = np.arange(n) // versions
    vectors = rng.standard_normal((works[-1] + 1, DIM))[works] + 0.7 * rng.standard_normal((n, DIM))
    # Track ids as users write them: folders, quotes, spaces, non-ASCII.
    track_ids = [f'w{w}/take "{i}" é' for i, w in enumerate(works)]
    work_ids = [None if i % 7 == 0 else f"w{w}" for i, w in enumerate(works)]
    return vectors.astype(np.float32), pd.DataFrame({"catalogue": "cat", "track_id": track_ids, "work_id": work_ids})


@pytest.fixture(scope="module")
def data():
    return clustered(600)


@pytest.fixture()
def milvus(tmp_path, data):
    vectors, rows = data
    index = MilvusTrackIndex.build(connect(str(tmp_path / "lite.db")), "livi_test", vectors, rows, MODEL)
    yield index
    index.close()


def ranked(result) -> list[list[tuple[str, str]]]:
    rows = result.rows
    return [list(zip(group["catalogue"], group["track_id"])) for _, group in rows.groupby("query", sort=True)]


def test_milvus_lite_returns_the_same_top_k_as_faiss_flat(data, milvus):
    vectors, rows = data
    faiss_index = TrackIndex.build(vectors, rows, IndexConfig(kind="flat"), MODEL)
    queries = vectors[::5]
    faiss_hits, milvus_hits = faiss_index.search(queries, 10), milvus.search(queries, 10)
    assert ranked(milvus_hits) == ranked(faiss_hits)
    np.testing.assert_allclose(milvus_hits.scores, faiss_hits.scores, atol=1e-5)
    assert milvus.count == faiss_index.count == len(rows)
    third = rows.iloc[3]
    np.testing.assert_allclose(milvus.vector(third.catalogue, third.track_id), faiss_index.index.reconstruct(3))


def test_deletes_in_both_backends_drop_exactly_those_tracks(data, milvus):
    vectors, rows = data
    faiss_index = TrackIndex.build(vectors, rows, IndexConfig(kind="flat"), MODEL)
    gone = [tuple(rows.iloc[i][["catalogue", "track_id"]]) for i in (0, 1, 5)]
    assert faiss_index.delete(gone) == milvus.delete(gone) == 3
    assert faiss_index.delete(gone) == milvus.delete(gone) == 0  # already gone
    assert faiss_index.live_count == milvus.live_count == len(rows) - 3
    queries = vectors[:8]
    faiss_top, milvus_top = ranked(faiss_index.search(queries, 10)), ranked(milvus.search(queries, 10))
    assert faiss_top == milvus_top
    assert not set(gone) & {hit for hits in faiss_top for hit in hits}
    assert faiss_index.vector(*gone[0]) is None and milvus.vector(*gone[0]) is None
    # A restore brings them back where they ranked before.
    faiss_index.restore(gone)
    milvus.restore(gone, vectors[[0, 1, 5]])
    before = ranked(TrackIndex.build(vectors, rows, IndexConfig(kind="flat"), MODEL).search(queries, 10))
    assert ranked(faiss_index.search(queries, 10)) == ranked(milvus.search(queries, 10)) == before


def test_search_leaves_out_excluded_positions_in_both(data, milvus):
    vectors, rows = data
    faiss_index = TrackIndex.build(vectors, rows, IndexConfig(kind="flat"), MODEL)
    exclude = np.array([0, 2, 3], np.int64)
    faiss_top = ranked(faiss_index.search(vectors[:1], 5, exclude=exclude))[0]
    assert faiss_top == ranked(milvus.search(vectors[:1], 5, exclude=exclude))[0]
    assert not {tuple(rows.iloc[i][["catalogue", "track_id"]]) for i in exclude} & set(faiss_top)


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_faiss_deletes_hold_for_approximate_kinds(kind):
    vectors, rows = clustered(2000, seed=1)
    config = IndexConfig(kind=kind, pq_subquantizers=8, ivf_probe=16)
    index = TrackIndex.build(vectors, rows, config, MODEL)
    nearest = index.search(vectors[:20], 1).ids[:, 0]
    index.delete([tuple(rows.iloc[i][["catalogue", "track_id"]]) for i in nearest])
    assert not set(index.search(vectors[:20], 10).ids.ravel()) & set(nearest)


def test_faiss_removals_survive_save_and_load(tmp_path, data):
    vectors, rows = data
    index = TrackIndex.build(vectors, rows, IndexConfig(kind="flat"), MODEL)
    index.delete([tuple(rows.iloc[4][["catalogue", "track_id"]])])
    loaded = TrackIndex.load(index.save(tmp_path / "saved"), expected_model_id=MODEL)
    assert loaded.removed.sum() == 1 and loaded.removed[4]
    assert 4 not in loaded.search(vectors[4:5], 5).ids


def test_primary_keys_are_safe_in_filter_expressions():
    key = primary_key("cat", 'a "quoted" \\ track')
    assert len(key) == 32 and all(c in "0123456789abcdef" for c in key)
    assert key != primary_key("ca", 't/a "quoted" \\ track')
