"""Score a LIVI head on cached evaluation chunks in seconds, exactly as inference would embed.

Each track of an evaluation catalogue (``chunk_data.evaluation_dataset``) is pooled by
``stages.audio_embed.pool_sung_frames`` from its cached frame states and probe vocalness, and
kept or excluded by the vocal stage's rule (``one_pass_decision``); an excluded track stays in
the ranking as a zero vector, as in ``benchmarks/bench_generalisation.py``. MAP comes with the 95%
bootstrap interval over queries, so learning curves and ablations show their noise. Tracks are
ranked as the evaluation stage ranks them (``core.chunk_match.catalogue_similarity``): centred on
the catalogue's mean when ``index.centre`` is on, each query's top candidates re-ranked chunk by
chunk when ``index.chunk_weight`` is above 0 (the result says which).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from livi_tasks.build.chunk_data import ChunkArrays
from livi_tasks.core.chunk_match import catalogue_similarity
from livi_tasks.core.config import LiviConfig
from livi_tasks.core.metrics import bootstrap_interval, metrics_from_similarity
from livi_tasks.models.encoder import LiviHead
from livi_tasks.stages.audio_embed import one_pass_decision, pool_sung_frames


def track_vectors(
    head: LiviHead, data: ChunkArrays, cfg: LiviConfig, threshold: float
) -> tuple[np.ndarray, pd.DataFrame]:
    """(track embeddings in catalogue order, tracks: track_id, work_id, kept, chunks: the unit
    embeddings of the chunks pooled); a track the vocal rule excludes is zeros, with no chunks."""
    head = head.eval()
    table = data.table
    vectors, tracks = [], []
    for track_id, rows in table.groupby("track_id", sort=False):
        index = rows.index.to_numpy()
        states = torch.from_numpy(np.asarray(data.states[index], np.float32))
        vocalness = np.asarray(data.extra["vocalness"][index], np.float32)
        audio_frames = rows["audio_frames"].to_numpy()
        result = pool_sung_frames(head, states, audio_frames, vocalness, threshold)
        _, _, reason = one_pass_decision(cfg, result, int(rows["samples"].iloc[0]))
        vectors.append(np.zeros_like(result.embedding) if reason else result.embedding)
        chunks = result.chunk_embeddings[:0] if reason else result.chunk_embeddings
        tracks.append({"track_id": track_id, "work_id": rows["work_id"].iloc[0], "kept": not reason, "chunks": chunks})
    return np.stack(vectors), pd.DataFrame(tracks)


def rank_catalogue(
    head: LiviHead, data: ChunkArrays, cfg: LiviConfig, threshold: float
) -> tuple[pd.DataFrame, np.ndarray]:
    """(tracks as ``track_vectors`` gives them, the (n, n) ranking scores the evaluation stage
    orders each query's candidates by)."""
    vectors, tracks = track_vectors(head, data, cfg, threshold)
    ranking, _ = catalogue_similarity(
        vectors, list(tracks["chunks"]), cfg.index.centre, cfg.index.chunk_weight, cfg.index.rerank_depth
    )
    return tracks, ranking


def query_outcomes(tracks: pd.DataFrame, ranking: np.ndarray) -> pd.DataFrame:
    """One row per query (a track with another version in the catalogue): its track_id, work_id,
    average precision and the rank of its first other version, as the MAP counts them."""
    metrics = metrics_from_similarity(ranking, tracks["work_id"])
    queries = tracks.iloc[metrics.query_index]
    return pd.DataFrame(
        {
            "track_id": queries["track_id"].to_numpy(),
            "work_id": queries["work_id"].to_numpy(),
            "average_precision": metrics.average_precision,
            "first_rank": metrics.first_rank,
        }
    )


def version_pairs(tracks: pd.DataFrame, ranking: np.ndarray) -> pd.DataFrame:
    """One row per (query, another version of its work): ``found`` when that version scores above
    every track of other works for the query (a tie counts against it, as the metrics count ties)."""
    work_ids = tracks["work_id"].to_numpy()
    same_work = work_ids[:, None] == work_ids[None, :]
    impostor_best = np.where(same_work, -np.inf, ranking).max(axis=1)
    query, version = np.nonzero(same_work & ~np.eye(len(work_ids), dtype=bool))
    return pd.DataFrame(
        {
            "query": tracks["track_id"].to_numpy()[query],
            "version": tracks["track_id"].to_numpy()[version],
            "found": ranking[query, version] > impostor_best[query],
        }
    )


def evaluate_head(
    head: LiviHead, data: ChunkArrays, cfg: LiviConfig, threshold: float, kinds: pd.Series | None = None
) -> dict:
    """MAP (with its 95% bootstrap interval), MR1, HR@1 and HR@10 of the head on one catalogue;
    with ``kinds`` (track_id -> the generator's kind), the vocal filter's sung tracks kept and
    instrumentals excluded."""
    tracks, ranking = rank_catalogue(head, data, cfg, threshold)
    metrics = metrics_from_similarity(ranking, tracks["work_id"])
    filter_scores = {}
    if kinds is not None:
        instrumental = (tracks["track_id"].map(kinds) == "instrumental").to_numpy()
        kept = tracks["kept"].to_numpy()
        filter_scores = {
            "sung_kept": float(kept[~instrumental].mean()),
            "instrumentals_excluded": float(1 - kept[instrumental].mean()) if instrumental.any() else None,
        }
    return {
        "MAP": metrics.map,
        "MAP_ci95": bootstrap_interval(metrics.average_precision),
        "MR1": metrics.mr1,
        "HR@1": metrics.hr_at_1,
        "HR@10": metrics.hr_at_10,
        "queries": metrics.n_queries,
        "centred": cfg.index.centre,
        "chunk_weight": cfg.index.chunk_weight,
        "excluded_tracks": int((~tracks["kept"]).sum()),
        **filter_scores,
    }
