"""A Faiss index over L2-normalised track embeddings of one or more catalogues.

The index kind comes from :class:`~livi_tasks.core.config.IndexConfig`: ``flat`` is exact inner product;
``hnsw`` a graph over the raw vectors (fast, but 4 bytes per dimension per track); ``ivfpq`` an
inverted file with 48-byte product-quantised codes whose top ``k * refine_factor`` candidates are
re-ranked with 8-bit scalar-quantised vectors (1 M x 384-d in about 450 MB, see
benchmarks/bench_index.py). ``auto`` picks flat below ``exact_below`` vectors, else ivfpq; the kind
is fixed when the index is first built and later catalogues are added to it without rebuilding.

Faiss ids are positions: the n-th vector added has id n, and a parallel id table (Parquet) maps each
id to (catalogue, track_id, work_id). ``save`` writes ``index.faiss``, ``ids.parquet`` and, last,
``index.json`` (kind, dim, model identity, catalogues, count, config), each to a temporary name then
renamed; ``load`` refuses an index built with another embedding model or dimension.

Deleting a track (a takedown) marks its row ``removed`` (a column of the id table): searches skip
removed ids through a Faiss ID selector, exactly, for every kind, without rebuilding; a rebuild
leaves them out altogether.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
from tqdm import tqdm

from livi_tasks.core.atomic import write_atomic
from livi_tasks.core.config import IndexConfig

FORMAT_VERSION = 1
INDEX_FILE = "index.faiss"
IDS_FILE = "ids.parquet"
SIDECAR_FILE = "index.json"
ROW_COLUMNS = ("catalogue", "track_id", "work_id")
TRAIN_POINTS_PER_LIST = 40  # Faiss warns below 39 training points per centroid.
MIN_IVFPQ_POINTS = 1_000  # PQ codebooks of 256 centroids need at least this many training vectors.
ADD_CHUNK = 100_000
TRAIN_SAMPLE_SEED = 0


class IndexMismatch(ValueError):
    """A saved index was built for another embedding model or dimension than the caller expects."""


@dataclass(frozen=True)
class SearchResult:
    """``ids``/``scores`` of shape (n_queries, k) (id -1 marks an empty slot) and the hits as rows."""

    ids: np.ndarray
    scores: np.ndarray
    id_table: pd.DataFrame = field(repr=False)

    @cached_property
    def rows(self) -> pd.DataFrame:
        """One line per hit: query, rank (1-based), id, score, catalogue, track_id, work_id.

        Built on first access: making a DataFrame costs several times a single-query search.
        """
        query, rank = np.nonzero(self.ids >= 0)
        hit_ids = self.ids[query, rank]
        columns = {"query": query, "rank": rank + 1, "id": hit_ids, "score": self.scores[query, rank]}
        columns.update({name: self.id_table[name].to_numpy()[hit_ids] for name in ROW_COLUMNS})
        return pd.DataFrame(columns)


def normalise(embeddings: np.ndarray) -> np.ndarray:
    """Float32 C-contiguous copy with unit rows; refuses non-finite values and zero vectors."""
    vectors = np.array(embeddings, dtype=np.float32, order="C", copy=True, ndmin=2)
    if vectors.ndim != 2:
        raise ValueError(f"embeddings must be 2-d (n, dim), got shape {vectors.shape}")
    if not np.isfinite(vectors).all():
        raise ValueError("embeddings contain NaN or infinite values")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError(f"embeddings contain {int((norms == 0).sum())} zero vectors, which have no direction")
    vectors /= norms
    return vectors


def resolve_kind(config: IndexConfig, count: int) -> str:
    """The index kind that ``config`` gives for ``count`` vectors."""
    if config.kind != "auto":
        return config.kind
    return "flat" if count < max(config.exact_below, MIN_IVFPQ_POINTS) else "ivfpq"


def _largest_divisor_up_to(value: int, limit: int) -> int:
    return max(d for d in range(1, min(value, limit) + 1) if value % d == 0)


def factory_string(kind: str, config: IndexConfig, count: int, dim: int) -> str:
    if kind == "flat":
        return "Flat"
    if kind == "hnsw":
        return f"HNSW{config.hnsw_m}"
    lists = max(1, min(config.ivf_lists, count // TRAIN_POINTS_PER_LIST))
    refine = ",Refine(SQ8)" if config.refine_factor > 1 else ""
    # "np": no polysemous code training, which costs minutes and serves only Hamming-distance filtering.
    return f"IVF{lists},PQ{_largest_divisor_up_to(dim, config.pq_subquantizers)}np{refine}"


def check_rows(rows: pd.DataFrame, count: int) -> pd.DataFrame:
    """The ``ROW_COLUMNS`` of ``rows`` as plain objects, one per embedding, no track twice."""
    missing = [column for column in ROW_COLUMNS if column not in rows.columns]
    if missing:
        raise ValueError(f"rows lack columns {missing}; expected {list(ROW_COLUMNS)}")
    if len(rows) != count:
        raise ValueError(f"{len(rows)} rows for {count} embeddings")
    table = rows.loc[:, list(ROW_COLUMNS)].reset_index(drop=True)
    table = table.assign(
        catalogue=table["catalogue"].astype(str).astype(object),
        track_id=table["track_id"].astype(str).astype(object),
        work_id=table["work_id"].astype(object).where(table["work_id"].notna(), None),
    )
    duplicated = table.duplicated(["catalogue", "track_id"])
    if duplicated.any():
        first = table.loc[duplicated].iloc[0]
        raise ValueError(f"track {first.catalogue}/{first.track_id} appears more than once")
    return table


def key_text(catalogue: str, track_id: str) -> str:
    """``catalogue/track_id``: unambiguous, since a catalogue name holds no '/'."""
    return f"{catalogue}/{track_id}"


class TrackRows:
    """The rows of an index (one per vector ever added) and which are removed: what both backends
    keep beside their vectors. Subclasses set ``rows`` and ``removed`` and define ``count``."""

    rows: pd.DataFrame
    _positions: dict[str, int] | None = None
    _removed_ids: np.ndarray | None = None

    @property
    def removed(self) -> np.ndarray:
        """One flag per row: taken out of every search (change it through ``delete``/``restore``)."""
        return self._removed

    @removed.setter
    def removed(self, flags: np.ndarray) -> None:
        self._removed = np.asarray(flags, bool).copy()
        self._removed_ids = None

    def _set_removed(self, positions, flag: bool) -> None:
        self._removed[positions] = flag
        self._removed_ids = None

    def removed_ids(self) -> np.ndarray:
        """Positions of the removed rows (kept between searches: a million flags take a while to scan)."""
        if self._removed_ids is None:
            self._removed_ids = np.flatnonzero(self._removed)
        return self._removed_ids

    @property
    def live_count(self) -> int:
        """Vectors a search can return: all but the removed ones."""
        return self.count - len(self.removed_ids())

    @property
    def catalogues(self) -> list[str]:
        return sorted(self.rows["catalogue"].unique().tolist())

    def live_rows(self) -> pd.DataFrame:
        """The rows a search can return (``id``: the row's position, the Faiss id)."""
        return self.rows.assign(id=np.arange(len(self.rows), dtype=np.int64))[~self.removed].reset_index(drop=True)

    def position(self, catalogue: str, track_id: str) -> int | None:
        """The row position of a track (removed or not); None when it was never added."""
        if self._positions is None or len(self._positions) != len(self.rows):
            keys = (self.rows["catalogue"] + "/" + self.rows["track_id"]).tolist()
            self._positions = dict(zip(keys, range(len(keys))))
        return self._positions.get(key_text(catalogue, track_id))

    def _append_rows(self, table: pd.DataFrame) -> None:
        self.rows = table if self.rows.empty else pd.concat([self.rows, table], ignore_index=True)
        self.removed = np.concatenate([self.removed, np.zeros(len(table), bool)])


class TrackIndex(TrackRows):
    """Nearest-neighbour search over track embeddings, with the rows they belong to."""

    backend = "faiss"

    def __init__(
        self,
        index: faiss.Index,
        rows: pd.DataFrame,
        config: IndexConfig,
        model_id: str,
        kind: str,
        removed: np.ndarray | None = None,
    ):
        if index.ntotal != len(rows):
            raise ValueError(f"index holds {index.ntotal} vectors but the id table {len(rows)} rows")
        self.index = index
        self.rows = rows
        self.config = config
        self.model_id = model_id
        self.kind = kind
        self.removed = np.zeros(len(rows), bool) if removed is None else removed
        self._selector: tuple[bytes, object] | None = None

    @property
    def dim(self) -> int:
        return self.index.d

    @property
    def count(self) -> int:
        return self.index.ntotal

    def vector(self, catalogue: str, track_id: str) -> np.ndarray | None:
        """The stored (unit) vector of a live track, as the index holds it (approximate for ivfpq)."""
        position = self.position(catalogue, track_id)
        if position is None or self.removed[position]:
            return None
        return self.index.reconstruct(position)

    def delete(self, keys) -> int:
        """Take tracks ((catalogue, track_id) pairs) out of every later search; returns how many were live."""
        return self._mark(keys, True)

    def restore(self, keys, vectors: np.ndarray | None = None) -> int:
        """Undo ``delete`` for tracks still held (their vectors are: ``vectors`` is for the Milvus
        surface, which keeps nothing of a deleted row); returns how many came back."""
        return self._mark(keys, False)

    def _mark(self, keys, removed: bool) -> int:
        positions = [p for p in (self.position(c, t) for c, t in keys) if p is not None]
        changed = [p for p in positions if self.removed[p] != removed]
        self._set_removed(changed, removed)
        return len(changed)

    @classmethod
    def build(cls, embeddings: np.ndarray, rows: pd.DataFrame, config: IndexConfig, model_id: str) -> "TrackIndex":
        """Build (and train, for ivfpq) an index over ``embeddings``, whose rows ``rows`` describe."""
        vectors = normalise(embeddings)
        count, dim = vectors.shape
        table = check_rows(rows, count)
        kind = resolve_kind(config, count)
        if kind == "ivfpq" and count < MIN_IVFPQ_POINTS:
            raise ValueError(f"ivfpq needs at least {MIN_IVFPQ_POINTS} vectors to train, got {count}; use flat")
        index = faiss.index_factory(dim, factory_string(kind, config, count, dim), faiss.METRIC_INNER_PRODUCT)
        if kind == "hnsw":
            index.hnsw.efConstruction = config.hnsw_ef_construction
        if kind == "ivfpq":
            lists = faiss.extract_index_ivf(index).nlist
            sample_size = min(count, max(TRAIN_POINTS_PER_LIST * lists, 64 * 256))
            sample = np.random.default_rng(TRAIN_SAMPLE_SEED).choice(count, size=sample_size, replace=False)
            index.train(vectors[np.sort(sample)])
        track_index = cls(index, table.iloc[:0], config, model_id, kind)
        track_index._add_normalised(vectors, table)
        return track_index

    def add(self, embeddings: np.ndarray, rows: pd.DataFrame) -> None:
        """Append a catalogue's embeddings (ids continue from ``count``); the index is not rebuilt."""
        vectors = normalise(embeddings)
        if vectors.shape[1] != self.dim:
            raise IndexMismatch(f"embeddings have dim {vectors.shape[1]}, the index {self.dim}")
        table = check_rows(rows, len(vectors))
        known = table.merge(self.rows, on=["catalogue", "track_id"], how="inner")
        if len(known):
            first = known.iloc[0]
            raise ValueError(f"track {first.catalogue}/{first.track_id} is already in the index")
        self._add_normalised(vectors, table)

    def _add_normalised(self, vectors: np.ndarray, table: pd.DataFrame) -> None:
        starts = range(0, len(vectors), ADD_CHUNK)
        for start in tqdm(starts, desc="index add", unit="chunk", disable=len(starts) < 2):
            self.index.add(vectors[start : start + ADD_CHUNK])
        self._append_rows(table)

    def _id_selector(self, exclude: np.ndarray | None):
        """A selector skipping the removed ids and ``exclude``; None when there is nothing to skip.
        The last one is kept: takedowns change rarely and a set of thousands costs a millisecond."""
        skipped = self.removed_ids()
        if exclude is not None and len(exclude):
            skipped = np.union1d(skipped, np.asarray(exclude, np.int64))
        if not len(skipped):
            return None
        signature = skipped.astype(np.int64).tobytes()
        if self._selector is None or self._selector[0] != signature:
            batch = faiss.IDSelectorBatch(skipped.astype(np.int64))
            # The wrapper keeps the batch alive with it (Faiss holds a raw pointer).
            self._selector = (signature, (faiss.IDSelectorNot(batch), batch))
        return self._selector[1][0]

    def _search_parameters(self, selector=None) -> faiss.SearchParameters | None:
        extra = {} if selector is None else {"sel": selector}
        if self.kind == "hnsw":
            return faiss.SearchParametersHNSW(efSearch=self.config.hnsw_ef_search, **extra)
        if self.kind == "ivfpq":
            probe = faiss.SearchParametersIVF(nprobe=self.config.ivf_probe, **extra)
            if isinstance(self.index, faiss.IndexRefine):
                return faiss.IndexRefineSearchParameters(k_factor=self.config.refine_factor, base_index_params=probe)
            return probe
        return faiss.SearchParameters(**extra) if extra else None

    def search(self, queries: np.ndarray, k: int, exclude: np.ndarray | None = None) -> SearchResult:
        """Top-k by cosine similarity over the live tracks, less the ids in ``exclude``; the
        result's ``rows`` names the hits."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        vectors = normalise(queries)
        if vectors.shape[1] != self.dim:
            raise IndexMismatch(f"queries have dim {vectors.shape[1]}, the index {self.dim}")
        selector = self._id_selector(exclude)
        scores, ids = self.index.search(vectors, k, params=self._search_parameters(selector))
        return SearchResult(ids=ids, scores=scores, id_table=self.rows)

    def save(self, directory: str | Path) -> Path:
        """Write the index, the id table and (last) the JSON sidecar into ``directory``, each atomically."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / INDEX_FILE, lambda path: faiss.write_index(self.index, str(path)))
        ids = self.rows.assign(id=np.arange(len(self.rows), dtype=np.int64))
        if self.removed.any():  # only then: an index without removals keeps the table it always had
            ids["removed"] = self.removed
        write_atomic(folder / IDS_FILE, lambda path: ids.to_parquet(path, index=False))
        sidecar = {
            "format": FORMAT_VERSION,
            "kind": self.kind,
            "dim": self.dim,
            "model_id": self.model_id,
            "catalogues": self.catalogues,
            "count": self.count,
            "removed": int(self.removed.sum()),
            "config": self.config.model_dump(mode="json"),
        }
        write_atomic(folder / SIDECAR_FILE, lambda path: path.write_text(json.dumps(sidecar, indent=2)))
        return folder

    @classmethod
    def load(
        cls,
        directory: str | Path,
        expected_model_id: str | None = None,
        expected_dim: int | None = None,
        config: IndexConfig | None = None,
    ) -> "TrackIndex":
        """Load a saved index; ``config`` (optional) replaces the saved search-time settings."""
        folder = Path(directory)
        try:
            sidecar = json.loads((folder / SIDECAR_FILE).read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{folder}: no {SIDECAR_FILE}; the index was never saved completely") from None
        if expected_model_id is not None and sidecar["model_id"] != expected_model_id:
            raise IndexMismatch(
                f"{folder}: index built with embedding model {sidecar['model_id']!r}, expected {expected_model_id!r}"
            )
        if expected_dim is not None and sidecar["dim"] != expected_dim:
            raise IndexMismatch(f"{folder}: index has dim {sidecar['dim']}, expected {expected_dim}")
        index = faiss.read_index(str(folder / INDEX_FILE))
        ids = pd.read_parquet(folder / IDS_FILE)
        if index.ntotal != sidecar["count"] or len(ids) != sidecar["count"] or index.d != sidecar["dim"]:
            raise ValueError(
                f"{folder}: sidecar says {sidecar['count']} x {sidecar['dim']}, index holds "
                f"{index.ntotal} x {index.d} and the id table {len(ids)} rows; save again"
            )
        if not np.array_equal(ids["id"].to_numpy(), np.arange(len(ids))):
            raise ValueError(f"{folder}: id table is not the sequence 0..{len(ids) - 1}")
        rows = ids.loc[:, list(ROW_COLUMNS)].astype(object)
        rows["work_id"] = rows["work_id"].astype(object).where(rows["work_id"].notna(), None)
        removed = ids["removed"].to_numpy(bool) if "removed" in ids.columns else None
        config = config or IndexConfig(**sidecar["config"])
        return cls(index, rows, config, sidecar["model_id"], sidecar["kind"], removed=removed)
