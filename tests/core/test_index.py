import json

import numpy as np
import pandas as pd
import pytest

from livi_tasks.core.config import IndexConfig
from livi_tasks.core.index import IndexMismatch, TrackIndex, resolve_kind
from livi_tasks.core.metrics import metrics_from_similarity, metrics_from_topk

DIM = 48
MODEL = "minilm-l6-v2@test"


def clustered(n: int, seed: int = 0, versions: int = 8) -> tuple[np.ndarray, pd.DataFrame]:
    """Works of ``versions`` tracks scattered around random centres, like covers of one song."""
    rng = np.random.default_rng(seed)
    works = np.arange(n) // versions
    centres = rng.standard_normal((works[-1] + 1, DIM))
    vectors = centres[works] + 0.6 * rng.standard_normal((n, DIM))
    rows = pd.DataFrame(
        {"catalogue": "cat_a", "track_id": [f"t{i}" for i in range(n)], "work_id": [f"w{w}" for w in works]}
    )
    return vectors.astype(np.float32), rows


def recall_at_10(approximate: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approximate, exact)]))


@pytest.fixture(scope="module")
def data():
    return clustered(4000)


@pytest.fixture(scope="module")
def exact_top10(data):
    vectors, rows = data
    return TrackIndex.build(vectors, rows, IndexConfig(kind="flat"), MODEL).search(vectors[:300], 10).ids


# Eight PQ bytes keep the (single-threaded, minutes-long at 48 bytes) codebook training short in tests.
IVFPQ_CONFIG = IndexConfig(kind="ivfpq", pq_subquantizers=8, ivf_probe=16)


@pytest.fixture(scope="module")
def ivfpq_index(data):
    vectors, rows = data
    rows = rows.assign(work_id=[None if i % 5 == 0 else w for i, w in enumerate(rows["work_id"])])
    return TrackIndex.build(vectors, rows, IVFPQ_CONFIG, MODEL)


def test_hnsw_recall_against_exact(data, exact_top10):
    vectors, rows = data
    index = TrackIndex.build(vectors, rows, IndexConfig(kind="hnsw"), MODEL)
    assert index.kind == "hnsw"
    assert recall_at_10(index.search(vectors[:300], 10).ids, exact_top10) >= 0.95


def test_ivfpq_recall_against_exact(data, exact_top10, ivfpq_index):
    vectors, _ = data
    assert ivfpq_index.kind == "ivfpq"
    assert recall_at_10(ivfpq_index.search(vectors[:300], 10).ids, exact_top10) >= 0.9


def test_auto_kind_follows_size():
    config = IndexConfig(exact_below=2000)
    assert resolve_kind(config, 1999) == "flat"
    assert resolve_kind(config, 2000) == "ivfpq"
    assert resolve_kind(IndexConfig(kind="hnsw"), 10) == "hnsw"


def test_exact_search_rows_and_metrics(data):
    vectors, rows = data
    subset, subset_rows = vectors[:400], rows[:400]
    index = TrackIndex.build(subset, subset_rows, IndexConfig(), MODEL)
    assert index.kind == "flat"
    result = index.search(subset[:2], 3)
    assert list(result.rows.columns) == ["query", "rank", "id", "score", "catalogue", "track_id", "work_id"]
    assert result.rows.loc[0, "track_id"] == "t0" and result.rows.loc[0, "score"] == pytest.approx(1.0, abs=1e-5)
    # Searching every track for every track reproduces the full-matrix metrics exactly.
    everything = index.search(subset, len(subset))
    unit = subset / np.linalg.norm(subset, axis=1, keepdims=True)
    from_matrix = metrics_from_similarity(unit @ unit.T, subset_rows["work_id"])
    from_index = metrics_from_topk(everything.ids, everything.scores, subset_rows["work_id"])
    assert from_index.map == pytest.approx(from_matrix.map, abs=1e-6)
    assert from_index.hr_at_1 == pytest.approx(from_matrix.hr_at_1, abs=1e-3)


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_add_catalogue_without_rebuild(data, kind):
    vectors, rows = data
    index = TrackIndex.build(vectors[:3000], rows[:3000], IndexConfig(kind=kind), MODEL)
    faiss_index = index.index
    extra_rows = rows[3000:].assign(catalogue="cat_b")
    index.add(vectors[3000:], extra_rows)
    assert index.index is faiss_index and index.count == 4000
    assert index.catalogues == ["cat_a", "cat_b"]
    hits = index.search(vectors[3500:3510], 1).rows
    assert list(hits["id"]) == list(range(3500, 3510))
    assert set(hits["catalogue"]) == {"cat_b"}
    with pytest.raises(ValueError, match="already in the index"):
        index.add(vectors[3000:3001], extra_rows[:1])


def test_save_load_roundtrip_then_add(tmp_path, data, ivfpq_index):
    vectors, rows = data
    index = ivfpq_index
    before = index.search(vectors[:50], 10)
    index.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ids.parquet", "index.faiss", "index.json"]
    sidecar = json.loads((tmp_path / "index.json").read_text())
    assert (sidecar["kind"], sidecar["dim"], sidecar["model_id"], sidecar["count"]) == ("ivfpq", DIM, MODEL, 4000)
    assert sidecar["catalogues"] == ["cat_a"]
    loaded = TrackIndex.load(tmp_path, expected_model_id=MODEL, expected_dim=DIM)
    after = loaded.search(vectors[:50], 10)
    np.testing.assert_array_equal(before.ids, after.ids)
    np.testing.assert_allclose(before.scores, after.scores)
    pd.testing.assert_frame_equal(before.rows, after.rows)
    assert loaded.rows["work_id"].iloc[0] is None
    # A loaded ivfpq index grows without retraining or rebuilding.
    faiss_index = loaded.index
    loaded.add(vectors[:5] * 2, rows[:5].assign(catalogue="cat_c"))
    assert loaded.index is faiss_index and loaded.count == 4005
    assert list(loaded.search(vectors[:5], 2).rows.groupby("query")["catalogue"].apply(set)) == [{"cat_a", "cat_c"}] * 5


def test_model_or_dim_mismatch_refused(tmp_path, data):
    vectors, rows = data
    index = TrackIndex.build(vectors[:100], rows[:100], IndexConfig(), MODEL)
    index.save(tmp_path)
    with pytest.raises(IndexMismatch, match="other-model"):
        TrackIndex.load(tmp_path, expected_model_id="other-model")
    with pytest.raises(IndexMismatch, match="dim"):
        TrackIndex.load(tmp_path, expected_model_id=MODEL, expected_dim=768)
    with pytest.raises(IndexMismatch, match="dim"):
        index.add(np.ones((1, DIM + 1)), rows[100:101])
    with pytest.raises(IndexMismatch, match="dim"):
        index.search(np.ones((1, DIM + 1)), 5)


def test_invalid_inputs_are_refused(data):
    vectors, rows = data
    with pytest.raises(ValueError, match="zero vectors"):
        TrackIndex.build(np.zeros((3, DIM)), rows[:3], IndexConfig(), MODEL)
    with pytest.raises(ValueError, match="more than once"):
        TrackIndex.build(vectors[:2], pd.concat([rows[:1], rows[:1]]), IndexConfig(), MODEL)
    with pytest.raises(ValueError, match="rows lack"):
        TrackIndex.build(vectors[:2], rows[:2].drop(columns="catalogue"), IndexConfig(), MODEL)
    with pytest.raises(ValueError, match="at least"):
        TrackIndex.build(vectors[:500], rows[:500], IndexConfig(kind="ivfpq"), MODEL)


def test_missing_sidecar_reports_incomplete_save(tmp_path):
    with pytest.raises(FileNotFoundError, match="never saved completely"):
        TrackIndex.load(tmp_path)
