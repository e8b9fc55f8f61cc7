"""Quality in-domain and off it: the shipped heads and the vocal filter on every song family.

Evaluation catalogues that no head trains on (seed 1 of each family, 24 works x 3 versions + 6 hard
negatives + 6 instrumentals; the demo's own catalogue), ``bench_learning_curves.evaluation_corpus``:
- ``randomised`` and ``broad``: the training families' sounds, unseen works, lyrics and tunes;
- ``foreign``: the first evaluation-only family (Festival voices, other instruments, drum kit,
  effects, vocabulary, grammar and song structure; ``livi_tasks.build.synth``);
- ``foreign2``: the second (Kokoro voices no training family uses, the MuseScore SoundFont,
  the evaluation-only words with other templates, a broadcast vocal chain);
- ``demo``: what ``make demo`` evaluates.

For each Whisper model, each catalogue goes through the pipeline's stages (vocal filter,
segments, transcription with greedy decoding, text, chroma baseline, ASR-free embedding with the
shipped head) and ``evaluate_catalogue``; every ingested track is in the ranking, and one a
method could not embed (excluded by the vocal filter, no transcript) counts as a zero vector.
Ground-truth lyrics through the same text model and random vectors are scored on the same tracks.
Vocal filter: sung-track keep rate, instrumental exclusion rate and window precision/recall
against the generator's sung lines, for the configured rule and for the paper's mean rule.

    .venv/bin/python benchmarks/bench_generalisation.py [--work-dir data/default-heads] [--whisper base ...]

Writes benchmarks/results/generalisation.json; its ASR-lyrics figures go into a shipped head's card
beside the head's own (``bench_learning_curves.py shipped --card --asr-reference``).
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

from bench_learning_curves import EVALUATION_SHAPE, evaluation_corpus

from livi_tasks.build.default_heads import EVALUATION_SEED
from livi_tasks.core.config import LiviConfig, load_config, parse_overrides
from livi_tasks.core.metrics import metrics_from_similarity
from livi_tasks.core.store import ArtifactStore
from livi_tasks.core.vocal_labels import precision_recall, window_coverage, window_labels
from livi_tasks.models.registry import install_shipped_model
from livi_tasks.pipeline import run_stage_over_shards
from livi_tasks.stages.catalogue import ingest_catalogue
from livi_tasks.stages.evaluate import evaluate_catalogue
from livi_tasks.stages.lineage import INGEST_SHARD, artifact_for, shard_ids
from livi_tasks.stages.vocal import track_decision

DOMAINS = {
    "randomised": "in-domain (randomised family, unseen works)",
    "broad": "in-domain (broad family: whole songs, version kinds; unseen works)",
    "foreign": "foreign (evaluation-only family: Festival voices)",
    "foreign2": "foreign (second evaluation-only family: held-out Kokoro voices, MuseScore instruments)",
    "demo": "the make demo catalogue (6 works x 2 versions + 2 distractors, seed 0)",
}
SHAPE = EVALUATION_SHAPE


def vocal_filter_quality(cfg: LiviConfig, store: ArtifactStore, catalogue: str, corpus: Path) -> dict:
    kinds = pd.read_csv(corpus / "tracks.csv").set_index("track_id")["kind"]
    regions = pd.read_csv(corpus / "vocals.csv")
    tracks, windows = [], []
    for shard in shard_ids(store, catalogue):
        vocal = artifact_for(cfg, store, catalogue, "vocal", shard).require()
        tracks.append(vocal.read_table("tracks"))
        windows.append(vocal.read_table("windows"))
    tracks, windows = pd.concat(tracks, ignore_index=True), pd.concat(windows, ignore_index=True)
    instrumental = (tracks["track_id"].map(kinds) == "instrumental").to_numpy()
    sung = ~instrumental  # every version kind and the hard negatives
    mean_rule = cfg.vocal.model_copy(update={"track_rule": "mean"})
    scores = {track: group["vocalness"].to_numpy() for track, group in windows.groupby("track_id")}
    kept_mean = np.array(
        [
            track in scores and not track_decision(scores[track], duration, mean_rule)[2]
            for track, duration in zip(tracks["track_id"], tracks["duration_s"])
        ]
    )
    kept = (tracks["status"] == "kept").to_numpy()
    labels = window_labels(window_coverage(windows, regions))
    predicted = (windows["vocalness"].to_numpy() >= cfg.vocal.window_threshold).astype(int)
    return {
        "rule": cfg.vocal.track_rule,
        "min_vocal_s": cfg.vocal.min_vocal_s,
        "method": cfg.vocal.method,
        "sung_tracks": int(sung.sum()),
        "sung_kept": float(kept[sung].mean()),
        "instrumentals": int(instrumental.sum()),
        "instrumentals_excluded": float(1 - kept[instrumental].mean()),
        "mean_rule_lambda": cfg.vocal.min_track_vocalness,
        "mean_rule_sung_kept": float(kept_mean[sung].mean()),
        "mean_rule_instrumentals_excluded": float(1 - kept_mean[instrumental].mean()),
        "sung_vocal_s_min": float(tracks.loc[sung, "vocal_s"].min()),
        "instrumental_vocal_s_max": float(tracks.loc[instrumental, "vocal_s"].max()),
        "windows": precision_recall(predicted, labels),
    }


def ground_truth_lyrics(cfg: LiviConfig, corpus: Path, universe: pd.DataFrame) -> np.ndarray:
    from livi_tasks.stages.text_embed import embed_texts, load_text_model

    sung = json.loads((corpus / "lyrics.json").read_text())["tracks"]
    texts = [" ".join(sung.get(track, [])) for track in universe["track_id"]]
    has_text = [i for i, text in enumerate(texts) if text]
    model = load_text_model(cfg.text.model)
    vectors = np.zeros((len(universe), model.get_embedding_dimension()), np.float32)
    vectors[has_text] = embed_texts(model, [texts[i] for i in has_text], cfg.text.chunk_chars, cfg.text.batch_size)
    return vectors


def evaluate_domain(cfg: LiviConfig, store: ArtifactStore, family: str, corpus: Path) -> dict:
    catalogue = f"eval_{family}_seed{0 if family == 'demo' else EVALUATION_SEED}"
    timings = {}
    started = time.perf_counter()
    ingest_catalogue(cfg, corpus / "manifest.csv", catalogue, store)
    model = install_shipped_model(cfg, store)
    if model is None:
        raise SystemExit(f"no shipped head for {cfg.transcribe.whisper_model}: run `livi build-default-heads` first")
    for stage in ("vocal", "segments", "transcribe", "text", "baseline"):
        stage_started = time.perf_counter()
        run_stage_over_shards(cfg, stage, catalogue, store=store)
        timings[f"{stage}_s"] = round(time.perf_counter() - stage_started, 1)
    stage_started = time.perf_counter()
    run_stage_over_shards(cfg, "embed", catalogue, store=store, model=model)
    timings["embed_s"] = round(time.perf_counter() - stage_started, 1)
    evaluation = evaluate_catalogue(cfg, catalogue, store=store, model=model)
    universe = artifact_for(cfg, store, catalogue, "ingest", INGEST_SHARD).read_table("tracks")[["track_id", "work_id"]]
    truth = ground_truth_lyrics(cfg, corpus, universe)
    methods = {
        name: {k: v for k, v in metrics.items() if k in ("MAP", "MAP@10", "MR1", "HR@1", "HR@10", "P@10", "coverage")}
        for name, metrics in evaluation["methods"].items()
    }
    methods["ground_truth_lyrics"] = metrics_from_similarity(truth @ truth.T, universe["work_id"]).as_dict()
    rng = np.random.default_rng(0)
    randoms = [
        metrics_from_similarity((v := rng.standard_normal((len(universe), 16))) @ v.T, universe["work_id"]).as_dict()[
            "MAP"
        ]
        for _ in range(20)
    ]
    methods["random"] = {"MAP": float(np.mean(randoms))}
    lyrics_map, audio_map = methods["lyrics_asr"]["MAP"], methods["livi_audio"]["MAP"]
    return {
        "catalogue": catalogue,
        "family": family,
        "tracks": int(len(universe)),
        "model": model,
        "vocal_filter": vocal_filter_quality(cfg, store, catalogue, corpus),
        "methods": methods,
        "asr_free_over_asr_lyrics": audio_map / lyrics_map if lyrics_map else None,
        "report": evaluation["report"],
        "timings": {**timings, "total_s": round(time.perf_counter() - started, 1)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--work-dir",
        default=str(REPO / "data" / "default-heads"),
        help="Evaluation catalogues and their store go here (reused).",
    )
    parser.add_argument(
        "--whisper",
        action="append",
        help="Whisper model whose shipped head to evaluate (repeatable; default base and tiny.en).",
    )
    parser.add_argument(
        "--domain", action="append", choices=sorted(DOMAINS), help="Evaluation family (repeatable; default all)."
    )
    parser.add_argument("--set", action="append", default=[], help="Config override section.field=value (repeatable).")
    parser.add_argument(
        "--out",
        default=str(REPO / "benchmarks" / "results" / "generalisation.json"),
        help="Where to write the JSON result.",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    work_dir = Path(args.work_dir)
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.exists() else {}
    result.setdefault("shape", SHAPE)
    result.setdefault("whisper", {})
    for whisper in args.whisper or ["base", "tiny.en"]:
        overrides = parse_overrides(args.set)
        overrides.setdefault("store", {})["root"] = str(work_dir / "eval_store")
        overrides.setdefault("transcribe", {})["whisper_model"] = whisper
        cfg = load_config(overrides=overrides, environ={})
        store = ArtifactStore(cfg.store.root)
        domains = result["whisper"].setdefault(whisper, {})
        for family in args.domain or list(DOMAINS):
            corpus = evaluation_corpus(work_dir, family)
            domains[family] = {"label": DOMAINS[family], **evaluate_domain(cfg, store, family, corpus)}
            logging.info("%s %s: %s", whisper, family, json.dumps(domains[family]["methods"]))
        result["measured"] = time.strftime("%Y-%m-%d")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
