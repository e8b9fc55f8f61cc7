"""Does the ASR-free encoder retrieve covers of songs it never saw, nearly as well as ASR lyrics?

Train the head on demo catalogues (by default seeds 0, 2 and 3 with 100, 250 and 400 works, two
versions each: 1,500 tracks, ~2,900 segments) and evaluate on another (seed 1: 12 other works,
other lyrics). On the evaluation tracks that both methods embed, compare the MAP of the ASR-free
embeddings with the MAP of the ASR lyrics embeddings they were distilled from, and with random
embeddings. Goal: ASR-free MAP >= 0.9 x ASR MAP, far above random.

    .venv/bin/python benchmarks/bench_distillation.py [--work-dir /tmp/livi-distil] [--train 0:100 ...]
        [--set transcribe.whisper_model=tiny.en --set "transcribe.temperatures=[0.0]" ...]

About an hour on an idle 2-core machine with tiny.en and greedy decoding (~2 s per training
track: Musicnn, transcription, feature cache); every stage is cached, so a rerun only retrains.

Writes benchmarks/results/distillation.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from livi_tasks.build.default_heads import EVALUATION_SEED
from livi_tasks.build.demo import make_demo_catalogue
from livi_tasks.core.config import load_config
from livi_tasks.core.metrics import metrics_from_similarity
from livi_tasks.core.stage_table import stages_down_to
from livi_tasks.core.store import ArtifactStore
from livi_tasks.models.registry import promote_model
from livi_tasks.pipeline import run_stage_over_shards
from livi_tasks.stages.catalogue import ingest_catalogue
from livi_tasks.stages.lineage import artifact_for, shard_ids
from livi_tasks.stages.train_encoder import train


def track_vectors(cfg, store, catalogue: str, stage: str, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    frames = []
    for shard in shard_ids(store, catalogue):
        artifact = artifact_for(cfg, store, catalogue, stage, shard, extra).require()
        tracks = artifact.read_table("tracks")[["track_id", "work_id"]].copy()
        tracks["vector"] = list(artifact.read_array("track_embeddings"))
        frames.append(tracks)
    return pd.concat(frames, ignore_index=True)


def retrieval(vectors: np.ndarray, work_ids: pd.Series) -> dict:
    return metrics_from_similarity(vectors @ vectors.T, work_ids).as_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--work-dir",
        default="/tmp/livi-distil",
        help="Demo catalogues and the data store go here; reused by later runs.",
    )
    parser.add_argument(
        "--train",
        action="append",
        metavar="SEED:WORKS",
        help="A training catalogue (repeatable); default 0:100, 2:250 and 3:400.",
    )
    parser.add_argument("--train-versions", type=int, default=2, help="Versions per work in the training catalogues.")
    parser.add_argument("--set", action="append", default=[], help="Config override section.field=value (repeatable).")
    parser.add_argument(
        "--out",
        default=str(REPO / "benchmarks" / "results" / "distillation.json"),
        help="Where to write the JSON result.",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    from livi_tasks.core.config import parse_overrides

    work_dir = Path(args.work_dir)
    overrides = parse_overrides(args.set)
    overrides.setdefault("store", {})["root"] = str(work_dir / "data")
    cfg = load_config(overrides=overrides, environ={})
    store = ArtifactStore(cfg.store.root)
    started = time.perf_counter()
    train_specs = [tuple(int(part) for part in spec.split(":")) for spec in (args.train or ["0:100", "2:250", "3:400"])]
    if any(seed == EVALUATION_SEED for seed, _ in train_specs):
        parser.error(f"--train: seed {EVALUATION_SEED} is the evaluation catalogue's")
    manifests = {
        f"distil_train_seed{seed}": make_demo_catalogue(
            work_dir / f"train_seed{seed}", works=works, versions=args.train_versions, seed=seed
        )
        for seed, works in train_specs
    }
    manifests["distil_eval"] = make_demo_catalogue(work_dir / f"eval_seed{EVALUATION_SEED}", seed=EVALUATION_SEED)
    train_catalogues = [name for name in manifests if name != "distil_eval"]
    timings = {}
    for catalogue, manifest in manifests.items():
        ingest_catalogue(cfg, manifest, catalogue, store)
        for stage in stages_down_to("text"):
            stage_started = time.perf_counter()
            run_stage_over_shards(cfg, stage, catalogue, store=store)
            timings[f"{catalogue}/{stage}_s"] = round(time.perf_counter() - stage_started, 1)
    for catalogue in train_catalogues:
        stage_started = time.perf_counter()
        run_stage_over_shards(cfg, "features", catalogue, store=store)
        timings[f"{catalogue}/features_s"] = round(time.perf_counter() - stage_started, 1)
    stage_started = time.perf_counter()
    trained = train(cfg, train_catalogues, store)
    timings["train_s"] = round(time.perf_counter() - stage_started, 1)
    promote_model(store, trained["fingerprint"])
    stage_started = time.perf_counter()
    run_stage_over_shards(cfg, "embed", "distil_eval", store=store, model=trained["fingerprint"])
    timings["distil_eval/embed_s"] = round(time.perf_counter() - stage_started, 1)

    lyrics = track_vectors(cfg, store, "distil_eval", "text")
    audio = track_vectors(cfg, store, "distil_eval", "embed", (trained["fingerprint"],))
    both = lyrics.merge(audio, on=["track_id", "work_id"], suffixes=("_lyrics", "_audio"))
    works = both["work_id"]
    lyrics_metrics = retrieval(np.stack(both["vector_lyrics"]), works)
    audio_metrics = retrieval(np.stack(both["vector_audio"]), works)
    rng = np.random.default_rng(0)
    random_maps = [retrieval(rng.standard_normal((len(both), 16)), works)["MAP"] for _ in range(20)]
    ingested = artifact_for(cfg, store, "distil_eval", "ingest", "all").read_table("tracks")
    result = {
        "train_catalogues": [
            {
                "seed": seed,
                "works": works,
                "versions": args.train_versions,
                "tracks": int(len(artifact_for(cfg, store, name, "ingest", "all").read_table("tracks"))),
            }
            for (seed, works), name in zip(train_specs, train_catalogues)
        ],
        "eval_catalogue": {"seed": EVALUATION_SEED, "works": 12, "tracks": int(len(ingested))},
        "eval_tracks_embedded_by_both": int(len(both)),
        "eval_tracks_lyrics_only": int(len(set(lyrics.track_id) - set(audio.track_id))),
        "eval_tracks_audio_only": int(len(set(audio.track_id) - set(lyrics.track_id))),
        "whisper_model": cfg.transcribe.whisper_model,
        "text_model": trained["text_model"],
        "encoder_settings": cfg.encoder.model_dump(mode="json"),
        "training": {
            k: trained[k]
            for k in (
                "pairs",
                "train_pairs",
                "val_pairs",
                "epochs_run",
                "best_epoch",
                "stopped_early",
                "best_val_loss",
                "fingerprint",
            )
        },
        "lyrics_asr": lyrics_metrics,
        "livi_audio": audio_metrics,
        "random_MAP_mean_of_20": float(np.mean(random_maps)),
        "MAP_ratio_audio_over_lyrics": audio_metrics["MAP"] / lyrics_metrics["MAP"],
        "goal_ratio_at_least_0.9": bool(audio_metrics["MAP"] >= 0.9 * lyrics_metrics["MAP"]),
        "timings": timings,
        "total_s": round(time.perf_counter() - started, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(json.dumps(result, indent=2, default=float))


if __name__ == "__main__":
    main()
