"""Evaluation: every available embedding of a labelled catalogue, scored and reported.

Methods: ``lyrics_asr`` (Whisper transcripts -> text embeddings, the teacher), ``livi_audio`` (the
ASR-free distilled audio encoder) and ``chroma_2dftm`` (audio-only baseline). All methods are scored
on the same universe, every ingested track: a track a method could not embed (no vocal segment, no
kept transcript) keeps a zero vector, so it ties with everything and, under the pessimistic tie
policy, earns nothing. The coverage column says how often that happened. Each catalogue is ranked
as an index of it answers (``core.chunk_match.catalogue_similarity``): with ``index.centre`` (the
default) each method's vectors are centred on the catalogue's own mean before cosine similarity,
and with ``index.chunk_weight`` above 0 each query's top ``index.rerank_depth`` tracks are
re-ranked chunk by chunk, for every method with chunk embeddings (the ASR-free encoder's 30 s
chunks, the transcripts' segments; not the chroma baseline).

Writes ``metrics.json``, per-query tables and a self-contained ``report.html`` (PNG plots inline).
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging

import numpy as np
import pandas as pd

from livi_tasks.core.chunk_match import catalogue_similarity
from livi_tasks.core.config import LiviConfig
from livi_tasks.core.metrics import metrics_from_similarity
from livi_tasks.core.runner import produce_artifact
from livi_tasks.core.store import Artifact, ArtifactStore
from livi_tasks.models.registry import current_model
from livi_tasks.stages.lineage import INGEST_SHARD, artifact_for, fingerprint, shard_ids, track_segment_embeddings

log = logging.getLogger(__name__)

STAGE = "evaluate"
METHOD_LABELS = {
    "lyrics_asr": "Lyrics (Whisper ASR + text embedding)",
    "livi_audio": "LIVI audio (ASR-free, distilled)",
    "chroma_2dftm": "Audio-only 2D-FTM chroma baseline",
}


def method_artifacts(
    cfg: LiviConfig, store: ArtifactStore, catalogue: str, model: str | None
) -> dict[str, list[Artifact]]:
    """The committed per-shard embedding artifacts of each method that is complete for every shard."""
    stages = {"lyrics_asr": ("text", ()), "chroma_2dftm": ("baseline", ())}
    if model:
        stages["livi_audio"] = ("embed", (model,))
    available = {}
    for method, (stage, extra) in stages.items():
        artifacts = [artifact_for(cfg, store, catalogue, stage, shard, extra) for shard in shard_ids(store, catalogue)]
        if all(a.is_complete() for a in artifacts):
            available[method] = artifacts
        else:
            log.warning(
                "evaluate %s: %s embeddings incomplete, method skipped (run the %s stage)", catalogue, method, stage
            )
    return available


def _embedding_matrix(universe: pd.DataFrame, artifacts: list[Artifact]) -> tuple[np.ndarray, float]:
    tables, arrays = [], []
    for artifact in artifacts:
        tables.append(artifact.read_table("tracks"))
        arrays.append(artifact.read_array("track_embeddings"))
    tracks = pd.concat(tables, ignore_index=True)
    vectors = np.concatenate(arrays) if arrays else np.zeros((0, 1), np.float32)
    matrix = np.zeros((len(universe), vectors.shape[1]), np.float32)
    position = pd.Series(np.arange(len(universe)), index=universe["track_id"])
    rows = position.reindex(tracks["track_id"]).to_numpy()
    present = ~pd.isna(rows)
    matrix[rows[present].astype(int)] = vectors[present]
    return matrix, float(present.sum()) / max(len(universe), 1)


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _plots(results: dict, universe: pd.DataFrame) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = {}
    figure, axis = plt.subplots(figsize=(7, 3.5))
    for method, result in results.items():
        ranks = result["per_query"]["first_rank"].to_numpy()
        if len(ranks):
            axis.hist(ranks, bins=np.arange(1, max(ranks.max(), 10) + 2) - 0.5, alpha=0.5, label=method)
    axis.set(xlabel="rank of first cover", ylabel="queries", title="Rank of the first cover per query")
    axis.legend()
    plots["ranks"] = _png(figure)
    plt.close(figure)

    labels = universe["work_id"].fillna("").to_numpy()
    same = (labels[:, None] == labels[None, :]) & (labels[:, None] != "")
    off_diagonal = ~np.eye(len(labels), dtype=bool)
    figure, axes = plt.subplots(1, max(len(results), 1), figsize=(4 * max(len(results), 1), 3.2), squeeze=False)
    for axis, (method, result) in zip(axes[0], results.items()):
        similarity = result["similarity"]
        axis.hist(similarity[same & off_diagonal], bins=40, alpha=0.6, density=True, label="covers")
        axis.hist(similarity[~same & off_diagonal], bins=40, alpha=0.6, density=True, label="non-covers")
        axis.set(title=method, xlabel="similarity (cosine, or fused when re-ranked)")
        axis.legend()
    plots["scores"] = _png(figure)
    plt.close(figure)
    return plots


def _worst_queries(result: dict, universe: pd.DataFrame, count: int) -> list[dict]:
    per_query = (
        result["per_query"].sort_values(["average_precision", "first_rank"], ascending=[True, False]).head(count)
    )
    worst = []
    for row in per_query.itertuples():
        ranking = result["ranking"][row.query_index].copy()
        ranking[row.query_index] = -np.inf
        top = np.argsort(-ranking, kind="stable")[:5]
        scores = result["similarity"][row.query_index]
        worst.append(
            {
                "track_id": universe.track_id.iloc[row.query_index],
                "work_id": universe.work_id.iloc[row.query_index],
                "ap": float(row.average_precision),
                "first_rank": int(row.first_rank),
                "top": [(universe.track_id.iloc[i], universe.work_id.iloc[i], float(scores[i])) for i in top],
            }
        )
    return worst


def _ranking_note(summary: dict) -> str:
    """How the catalogue was ranked, as the index answers it."""
    parts = ["Vectors centred on the catalogue's mean." if summary.get("centred") else "Vectors uncentred."]
    rerank = summary.get("chunk_rerank")
    if rerank:
        parts.append(
            f"Each query's top {rerank['depth']} re-ranked by {1 - rerank['weight']:g} x track cosine + "
            f"{rerank['weight']:g} x chunk match, for every method with chunk embeddings (not chroma)."
        )
    return " ".join(parts)


def render_report(catalogue: str, summary: dict, plots: dict[str, str], worst: dict[str, list[dict]]) -> str:
    """The self-contained HTML report."""
    metric_names = ["MAP", "MAP@10", "MR1", "MRR", "HR@1", "HR@10", "HR@100", "P@10", "n_queries", "coverage"]
    header = "".join(f"<th>{html.escape(name)}</th>" for name in ["method", *metric_names])
    rows = []
    for method, metrics in summary["methods"].items():
        cells = "".join(
            f"<td>{metrics[name]:.3f}</td>" if isinstance(metrics[name], float) else f"<td>{metrics[name]}</td>"
            for name in metric_names
        )
        rows.append(f"<tr><td>{html.escape(METHOD_LABELS.get(method, method))}</td>{cells}</tr>")
    worst_html = []
    for method, queries in worst.items():
        items = []
        for query in queries:
            top = ", ".join(
                f"<span class='{'hit' if work == query['work_id'] else 'miss'}'>"
                f"{html.escape(str(track))} ({score:.2f})</span>"
                for track, work, score in query["top"]
            )
            items.append(
                f"<li><b>{html.escape(str(query['track_id']))}</b> "
                f"(work {html.escape(str(query['work_id']))}, AP {query['ap']:.2f}, "
                f"first cover at {query['first_rank']}): {top}</li>"
            )
        worst_html.append(f"<h3>{html.escape(METHOD_LABELS.get(method, method))}</h3><ul>{''.join(items)}</ul>")
    missing = "".join(f"<li>{html.escape(m)}: not available</li>" for m in summary["missing"])
    scores_png = plots.get("scores", "")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>LIVI evaluation: {html.escape(catalogue)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
td:first-child{{text-align:left}}.hit{{color:#070}}.miss{{color:#a00}}img{{max-width:100%}}</style></head>
<body><h1>Cover retrieval on <code>{html.escape(catalogue)}</code></h1>
<p>{summary["tracks"]} tracks, {summary["labelled"]} labelled. Queries are tracks with at least one other version;
ties are broken pessimistically; a track a method could not embed keeps a zero vector (see coverage).
{_ranking_note(summary)}</p>
<h2>Metrics</h2><table><tr>{header}</tr>{"".join(rows)}</table>
{"<ul>" + missing + "</ul>" if missing else ""}
<h2>Rank of the first cover</h2><img alt="rank histogram" src="data:image/png;base64,{plots.get("ranks", "")}">
<h2>Scores of covers and non-covers</h2><img alt="score distributions" src="data:image/png;base64,{scores_png}">
<h2>Worst queries and their top results</h2>{"".join(worst_html)}
</body></html>"""


def evaluate_catalogue(
    cfg: LiviConfig, catalogue: str, store: ArtifactStore | None = None, model: str | None = None
) -> dict:
    """Score every available method on ``catalogue``; ``model`` is the encoder fingerprint for
    the ASR-free method (default: the promoted model, if any)."""
    store = store or ArtifactStore(cfg.store.root)
    model = current_model(cfg, store, model, required=False)
    available = method_artifacts(cfg, store, catalogue, model)
    inputs = sorted(f"{m}:{a.key.fingerprint}" for m, arts in available.items() for a in arts)
    if cfg.index.centre:  # only then: an uncentred evaluation keeps the key it always had
        inputs.append("centred")
    if cfg.index.chunk_weight > 0:  # likewise for one without re-ranking
        inputs.append(f"reranked:{cfg.index.chunk_weight}:{cfg.index.rerank_depth}")
    output = store.artifact(
        catalogue,
        STAGE,
        INGEST_SHARD,
        cfg.evaluate.fingerprint(STAGE, fingerprint(cfg, store, catalogue, "ingest"), *inputs),
    )
    return produce_artifact(
        output,
        lambda target: _evaluate(cfg, store, catalogue, available, target),
        pointer=f"{catalogue}/LATEST_EVALUATION.json",
    )


def _evaluate(
    cfg: LiviConfig, store: ArtifactStore, catalogue: str, available: dict[str, list[Artifact]], output: Artifact
) -> dict:
    universe = artifact_for(cfg, store, catalogue, "ingest", INGEST_SHARD).read_table("tracks")[["track_id", "work_id"]]
    results, summary = (
        {},
        {
            "tracks": len(universe),
            "labelled": int((universe.work_id.fillna("") != "").sum()),
            "centred": cfg.index.centre,
            "chunk_rerank": {"weight": cfg.index.chunk_weight, "depth": cfg.index.rerank_depth}
            if cfg.index.chunk_weight > 0
            else None,
            "methods": {},
        },
    )
    summary["missing"] = sorted(set(METHOD_LABELS) - set(available))
    for method, artifacts in available.items():
        matrix, coverage = _embedding_matrix(universe, artifacts)
        reranked = cfg.index.chunk_weight > 0 and all(a.exists("segment_embeddings.npy") for a in artifacts)
        chunks = track_segment_embeddings(artifacts, universe["track_id"]) if reranked else None
        ranking, similarity = catalogue_similarity(
            matrix, chunks, cfg.index.centre, cfg.index.chunk_weight, cfg.index.rerank_depth
        )
        metrics = metrics_from_similarity(ranking, universe["work_id"])
        per_query = metrics.per_query()
        per_query["track_id"] = universe.track_id.to_numpy()[per_query.query_index]
        results[method] = {"ranking": ranking, "similarity": similarity, "per_query": per_query}
        summary["methods"][method] = {**metrics.as_dict(), "coverage": coverage, "reranked": reranked}
        output.write_table(f"per_query_{method}", per_query)
        log.info(
            "evaluate %s %s: %s",
            catalogue,
            method,
            {k: round(v, 4) if isinstance(v, float) else v for k, v in summary["methods"][method].items()},
        )
    worst = {method: _worst_queries(result, universe, cfg.evaluate.worst_queries) for method, result in results.items()}
    output.write_json("metrics", summary)
    report = render_report(catalogue, summary, _plots(results, universe) if results else {}, worst)
    output.write_bytes("report.html", report.encode())
    return {**summary, "report": f"{output.url}/report.html", "metrics_path": f"{output.url}/metrics.json"}


def format_metrics(summary: dict) -> str:
    """A plain-text table of the headline metrics, for terminals and task logs."""
    lines = [f"{'method':<14} {'MAP':>6} {'MAP@10':>7} {'MR1':>6} {'HR@1':>6} {'HR@10':>6} {'P@10':>6} {'cover':>6}"]
    for method, m in summary["methods"].items():
        lines.append(
            f"{method:<14} {m['MAP']:6.3f} {m['MAP@10']:7.3f} {m['MR1']:6.2f} "
            f"{m['HR@1']:6.3f} {m['HR@10']:6.3f} {m['P@10']:6.3f} {m['coverage']:6.2f}"
        )
    return "\n".join(lines) + ("\n" + json.dumps({"missing": summary["missing"]}) if summary["missing"] else "")
