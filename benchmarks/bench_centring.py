"""Retrieval-side comparisons of the shipped heads' track vectors: does the cosine need centring?

The track vectors of a shipped head share a common direction (the head mimics a sentence
embedding space, which has one), so every pair of tracks looks alike before the works differ.
This scores, on the cached evaluation catalogues of ``bench_learning_curves.py`` (seed 1 of each
family, 84 tracks; the demo's catalogue), the same vectors compared in several ways:

- ``uncentred``: the cosine of the track vectors (the pipeline before ``index.centre``);
- ``centred``: each catalogue centred on its own mean (``core.vectors``: the pipeline's default);
- ``centred-on-randomised`` / ``centred-on-all``: on the mean of another catalogue (the training
  family's sound) or of all five together (an index that holds several catalogues);
- ``centred+dba``: database-side augmentation after centring (each vector plus its nearest
  neighbour weighted by similarity cubed, renormalised);
- ``centred-top-pc-removed-N``: also the catalogue's first N principal directions projected out;
- ``chunk-match`` / ``centred-chunk-match``: tracks compared chunk by chunk (each 30 s chunk's
  best match in the other track, averaged both ways: ``core.chunk_match``) instead of by their
  pooled vectors;
- ``centred-rerank-wW-depthD``: each query's top D tracks by the centred cosine re-ranked by
  ``(1 - W) * cosine + W * centred chunk match`` (``core.chunk_match.catalogue_similarity``, as the
  evaluation stage ranks);
- ``rerank+qe-kK``: average query expansion after that ranking (each query plus its top K answers
  weighted by their fused score cubed, renormalised, then searched and re-ranked again with the
  query's own chunks);
- ``rerank+csls-kK``: that ranking with hub tracks pushed down (each answer's score less half the
  mean of its own K best scores: cross-domain similarity local scaling).

Every variant keeps an excluded track a zero vector. MAP with its 95% bootstrap interval.

    .venv/bin/python benchmarks/bench_centring.py --work-dir data/default-heads --whisper base
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_learning_curves import evaluation_sets
from flop_bound import machine_facts

from livi_tasks.build.head_eval import track_vectors
from livi_tasks.core.chunk_match import IndexedChunks, catalogue_reranked, catalogue_similarity
from livi_tasks.core.config import load_config
from livi_tasks.core.metrics import bootstrap_interval, metrics_from_similarity
from livi_tasks.core.vectors import catalogue_centre, centred, l2_normalise
from livi_tasks.models.encoder import head_from_bytes
from livi_tasks.models.registry import shipped_head

FAMILIES = ["randomised", "foreign", "foreign2", "broad", "demo"]
# (chunk weight, candidates re-ranked): depth 100 re-ranks every track of an 84-track catalogue.
RERANKS = [(0.25, 100), (0.5, 100), (0.75, 100), (0.5, 10)]


def augmented(vectors: np.ndarray, alpha: float = 3.0) -> np.ndarray:
    """Database-side augmentation with the nearest neighbour (itself left out)."""
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)
    nearest = similarity.argmax(axis=1)
    weight = np.clip(similarity[np.arange(len(vectors)), nearest], 0, None) ** alpha
    return l2_normalise(vectors + weight[:, None] * vectors[nearest]) * (np.linalg.norm(vectors, axis=1) > 0)[:, None]


def top_directions_removed(vectors: np.ndarray, count: int) -> np.ndarray:
    live = np.linalg.norm(vectors, axis=1) > 0
    _, _, directions = np.linalg.svd(vectors[live], full_matrices=False)
    top = directions[:count].T
    return l2_normalise(vectors - vectors @ top @ top.T)


def chunk_match_alone(vectors: np.ndarray, chunks: list[np.ndarray], centre: bool) -> np.ndarray:
    """Every track ranked by the chunk match alone: weight 1, every other track a candidate."""
    return catalogue_similarity(vectors, chunks, centre, 1.0, len(vectors))[0]


def query_expanded(vectors: np.ndarray, chunks: list[np.ndarray], neighbours: int, weight=0.5, depth=100):
    """Average query expansion (alpha 3) after the pipeline's ranking, then that ranking again."""
    mean = catalogue_centre(vectors)
    units = centred(vectors, mean)
    stored = IndexedChunks(
        centred(np.concatenate(chunks), mean), np.repeat(np.arange(len(chunks)), list(map(len, chunks)))
    )
    ranking, fused = catalogue_reranked(units @ units.T, stored, weight, depth)
    np.fill_diagonal(ranking, -np.inf)
    nearest = np.argsort(-ranking, axis=1)[:, :neighbours]
    weights = np.clip(np.take_along_axis(fused, nearest, axis=1), 0, None) ** 3
    live = (np.linalg.norm(units, axis=1) > 0)[:, None]
    queries = l2_normalise(units + (weights[:, :, None] * units[nearest]).sum(axis=1)) * live
    return catalogue_reranked(queries @ units.T, stored, weight, depth)[0]


def hubs_scaled(vectors: np.ndarray, chunks: list[np.ndarray], neighbours: int, weight=0.5, depth=100):
    """The pipeline's ranking less half of each answer's mean score to its own nearest tracks (CSLS)."""
    ranking, fused = catalogue_similarity(vectors, chunks, True, weight, depth)
    others = fused.copy()
    np.fill_diagonal(others, -np.inf)
    return ranking - 0.5 * np.sort(others, axis=1)[:, -neighbours:].mean(axis=1)[None, :]


def scores(similarity: np.ndarray, work_ids) -> dict:
    metrics = metrics_from_similarity(similarity, work_ids)
    return {"MAP": metrics.map, "MAP_ci95": bootstrap_interval(metrics.average_precision), "HR@1": metrics.hr_at_1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", default=str(REPO / "data" / "default-heads"), help="Cached evaluation sets.")
    parser.add_argument("--whisper", action="append", help="Shipped head(s) to score (default base and tiny.en).")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "centring.json"))
    args = parser.parse_args()
    cfg = load_config(environ={})
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.exists() else {}
    load_before = os.getloadavg()
    for whisper in args.whisper or ["base", "tiny.en"]:
        started = time.perf_counter()
        sets, threshold = evaluation_sets(cfg, Path(args.work_dir), whisper, FAMILIES)
        weights, config, _ = shipped_head(whisper)
        head = head_from_bytes(weights, config)
        embedded = {family: track_vectors(head, data, cfg, threshold) for family, (data, _) in sets.items()}
        training_sound = catalogue_centre(embedded["randomised"][0])
        everything = catalogue_centre(np.concatenate([vectors for vectors, _ in embedded.values()]))
        variants = {}
        for family, (vectors, tracks) in embedded.items():
            own = centred(vectors, catalogue_centre(vectors))
            compared = {
                "uncentred": vectors @ vectors.T,
                "centred": own @ own.T,
                "centred-on-randomised": (v := centred(vectors, training_sound)) @ v.T,
                "centred-on-all": (v := centred(vectors, everything)) @ v.T,
                "centred+dba": (v := augmented(own)) @ v.T,
                **{f"centred-top-pc-removed-{n}": (v := top_directions_removed(own, n)) @ v.T for n in (1, 2, 4)},
                "chunk-match": chunk_match_alone(vectors, list(tracks["chunks"]), False),
                "centred-chunk-match": chunk_match_alone(vectors, list(tracks["chunks"]), True),
                **{
                    f"centred-rerank-w{weight}-depth{depth}": catalogue_similarity(
                        vectors, list(tracks["chunks"]), True, weight, depth
                    )[0]
                    for weight, depth in RERANKS
                },
                **{f"rerank+qe-k{k}": query_expanded(vectors, list(tracks["chunks"]), k) for k in (1, 3)},
                **{f"rerank+csls-k{k}": hubs_scaled(vectors, list(tracks["chunks"]), k) for k in (3, 10)},
            }
            for name, similarity in compared.items():
                variants.setdefault(name, {})[family] = scores(similarity, tracks["work_id"])
        result[whisper] = {"variants": variants, "seconds": round(time.perf_counter() - started, 1)}
        for name, by_family in variants.items():
            print(whisper, f"{name:<28}", " ".join(f"{f} {s['MAP']:.3f}" for f, s in by_family.items()))
    result.update(machine_facts(load_before))
    result["measured"] = time.strftime("%Y-%m-%d")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
