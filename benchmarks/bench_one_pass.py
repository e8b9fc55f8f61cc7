"""The one-pass ASR-free path against the Musicnn path and the ASR path, in-domain and on the foreign family.

Per track of two evaluation catalogues (24 works x 3 versions + 6 hard negatives + 6
instrumentals each; ``randomised`` seed 1: the training family, unseen works; ``foreign`` seed 1:
the evaluation-only family), with one Whisper model and its shipped head:

- Musicnn path (the pipeline today): decode -> Musicnn vocalness per 3 s window -> 30 s vocal
  segments -> encoder + head per segment;
- one-pass path: decode -> encoder once per consecutive 30 s chunk -> vocal probe on the frame
  states -> head pooling the sung frames (``audio_embed.embed_one_pass``);
- ASR path (timed on the Musicnn path's segments): greedy Whisper transcription.

Reported: seconds per track of each part, ASR / ASR-free speed-ups and preprocessing shares;
vocal detection against the generator's sung lines (3 s windows: Musicnn's windows, the probe's
frames averaged over the same windows); sung tracks' vocal seconds and instrumentals'; and MAP of
the shipped head over every track with each path's embeddings. The probe is built first when it
is not shipped (``livi build-vocal-probe``).

    .venv/bin/python benchmarks/bench_one_pass.py [--whisper tiny.en] [--work-dir data/one-pass] [--asr-tracks 12]

Writes benchmarks/results/one_pass_<whisper>.json. Run it alone: it is timed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from flop_bound import machine_facts  # noqa: E402  (benchmarks/, the script's folder)

from livi_tasks.build.default_heads import EVALUATION_SEED
from livi_tasks.build.synth.corpus import make_corpus
from livi_tasks.build.vocal_probe import build_vocal_probe
from livi_tasks.core.audio import SAMPLE_RATE, load_audio
from livi_tasks.core.config import load_config
from livi_tasks.core.metrics import metrics_from_similarity
from livi_tasks.core.store import ArtifactStore
from livi_tasks.core.vocal_labels import precision_recall, window_coverage, window_labels
from livi_tasks.models.identity import whisper_identity
from livi_tasks.models.musicnn import WINDOW_SECONDS
from livi_tasks.models.vocal_probe import ProbeMissing, load_probe, window_means
from livi_tasks.models.whisper_weights import cached_whisper
from livi_tasks.stages.audio_embed import embed_clips, embed_one_pass, load_encoder, track_embeddings
from livi_tasks.stages.segments import vocal_clips
from livi_tasks.stages.transcribe import decode_segments
from livi_tasks.stages.vocal import window_vocalness

SHAPE = {"works": 24, "versions": 3, "instrumentals": 6, "hard_negatives": 6}


def run_family(cfg, family: str, work_dir: Path, probe, asr_tracks: int) -> dict:
    manifest = make_corpus(work_dir / f"eval_{family}_seed{EVALUATION_SEED}", family, seed=EVALUATION_SEED, **SHAPE)
    tracks = pd.read_csv(manifest)
    kinds = pd.read_csv(manifest.parent / "tracks.csv").set_index("track_id")["kind"]
    regions = pd.read_csv(manifest.parent / "vocals.csv")
    store = ArtifactStore(cfg.store.root)
    loaded = load_encoder(cfg, store)
    whisper = cached_whisper(cfg.transcribe.whisper_model, cfg.models_dir)
    timings: list[dict] = []
    musicnn_vectors, one_pass_vectors, windows = [], [], []
    for number, row in enumerate(tracks.itertuples()):
        t0 = time.perf_counter()
        audio = load_audio(str(manifest.parent / row.path))
        t1 = time.perf_counter()
        scores, _ = window_vocalness(audio, cfg)
        clips = vocal_clips(cfg, audio, scores, WINDOW_SECONDS)
        t2 = time.perf_counter()
        if len(clips):
            vectors = embed_clips(loaded, clips, description=row.track_id)
            segments = pd.DataFrame({"track_id": [row.track_id] * len(clips), "work_id": [row.work_id] * len(clips)})
            musicnn_vectors.append(track_embeddings(vectors, segments)[0][0])
        else:
            musicnn_vectors.append(np.zeros(loaded.info["text_model"]["dim"], np.float32))
        t3 = time.perf_counter()
        one_pass = embed_one_pass(loaded, probe, audio)
        t4 = time.perf_counter()
        one_pass_vectors.append(one_pass.embedding)
        timing = {
            "track_id": row.track_id,
            "duration_s": len(audio) / SAMPLE_RATE,
            "decode_s": t1 - t0,
            "musicnn_and_segments_s": t2 - t1,
            "segments": len(clips),
            "encoder_head_s": t3 - t2,
            "one_pass_s": t4 - t3,
            "one_pass_chunks": one_pass.chunks,
            "one_pass_vocal_s": one_pass.vocal_s,
            "one_pass_fallback": one_pass.fallback,
            "musicnn_vocal_s": float((scores >= cfg.vocal.window_threshold).sum()) * WINDOW_SECONDS,
            "kind": kinds[row.track_id],
        }
        if number < asr_tracks and len(clips):
            t5 = time.perf_counter()
            ids = [f"{row.track_id}-{i}" for i in range(len(clips))]
            decode_segments(whisper, np.asarray(clips, np.float32), cfg.transcribe, ids)
            timing["asr_s"] = time.perf_counter() - t5
        timings.append(timing)
        # Detection on Musicnn's 3 s windows: its own scores and the probe's frames averaged over them.
        probe_scores = window_means(one_pass.frame_vocalness, one_pass.audio_frames, len(scores), WINDOW_SECONDS)
        starts = np.arange(len(scores)) * WINDOW_SECONDS
        windows.append(
            pd.DataFrame(
                {
                    "track_id": row.track_id,
                    "start_s": starts,
                    "end_s": np.minimum(starts + WINDOW_SECONDS, len(audio) / SAMPLE_RATE),
                    "musicnn": scores >= cfg.vocal.window_threshold,
                    "probe": probe_scores >= probe.threshold,
                }
            )
        )
        print(
            f"[{family} {number + 1}/{len(tracks)}] {row.track_id}: "
            f"musicnn path {t3 - t1:.2f} s, one pass {t4 - t3:.2f} s",
            flush=True,
        )

    windows = pd.concat(windows, ignore_index=True)
    labels = window_labels(window_coverage(windows, regions))
    timing = pd.DataFrame(timings)
    work_ids = tracks["work_id"]
    quality = {}
    for name, vectors in (("musicnn_path", musicnn_vectors), ("one_pass", one_pass_vectors)):
        matrix = np.stack(vectors)
        quality[name] = metrics_from_similarity(matrix @ matrix.T, work_ids).as_dict()
    sung = timing[timing.kind != "instrumental"]
    instrumental = timing[timing.kind == "instrumental"]
    return {
        "tracks": len(tracks),
        "map": {name: round(metrics["MAP"], 4) for name, metrics in quality.items()},
        "metrics": quality,
        "window_detection": {
            "musicnn": precision_recall(windows["musicnn"].to_numpy(), labels),
            "probe": precision_recall(windows["probe"].to_numpy(), labels),
        },
        "vocal_seconds": {
            "one_pass_sung_min_median": [
                round(sung.one_pass_vocal_s.min(), 1),
                round(sung.one_pass_vocal_s.median(), 1),
            ],
            "one_pass_instrumental_max": round(instrumental.one_pass_vocal_s.max(), 1) if len(instrumental) else None,
            "musicnn_sung_min_median": [round(sung.musicnn_vocal_s.min(), 1), round(sung.musicnn_vocal_s.median(), 1)],
            "musicnn_instrumental_max": round(instrumental.musicnn_vocal_s.max(), 1) if len(instrumental) else None,
            "one_pass_fallbacks": int(timing.one_pass_fallback.sum()),
        },
        "per_track": timing.to_dict(orient="records"),
    }


def summarise_speed(families: dict) -> dict:
    timing = pd.concat([pd.DataFrame(result["per_track"]) for result in families.values()], ignore_index=True)
    asr = timing.dropna(subset=["asr_s"]) if "asr_s" in timing else timing.iloc[:0]
    per_track = {
        "duration_s": timing.duration_s.mean(),
        "decode_s": timing.decode_s.mean(),
        "musicnn_and_segments_s": timing.musicnn_and_segments_s.mean(),
        "musicnn_path_encoder_head_s": timing.encoder_head_s.mean(),
        "one_pass_s": timing.one_pass_s.mean(),
    }
    musicnn_path = (
        per_track["decode_s"] + per_track["musicnn_and_segments_s"] + per_track["musicnn_path_encoder_head_s"]
    )
    one_pass = per_track["decode_s"] + per_track["one_pass_s"]
    result = {"seconds_per_track": per_track, "musicnn_path_total_s": musicnn_path, "one_pass_total_s": one_pass}
    if len(asr):
        # ASR on the same tracks: decode + Musicnn + segments, then transcription of the segments.
        asr_total = (asr.decode_s + asr.musicnn_and_segments_s + asr.asr_s).mean()
        same_one_pass = (asr.decode_s + asr.one_pass_s).mean()
        result.update(
            {
                "asr_tracks": len(asr),
                "asr_path_s_per_track": asr_total,
                "speedup_asr_over_one_pass": asr_total / same_one_pass,
                "speedup_asr_over_musicnn_path": asr_total
                / (asr.decode_s + asr.musicnn_and_segments_s + asr.encoder_head_s).mean(),
            }
        )
    result["preprocessing_share_of_musicnn_path"] = (
        per_track["decode_s"] + per_track["musicnn_and_segments_s"]
    ) / musicnn_path
    result["preprocessing_share_of_one_pass"] = per_track["decode_s"] / one_pass
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--whisper", default="tiny.en", help="Whisper model (its shipped head is used).")
    parser.add_argument("--work-dir", default=str(REPO / "data" / "one-pass"), help="Corpora, probe corpus and store.")
    parser.add_argument(
        "--asr-tracks", type=int, default=12, help="Tracks per family whose segments are also transcribed."
    )
    parser.add_argument("--out", default=None, help="Result JSON (default benchmarks/results/one_pass_<whisper>.json).")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    work_dir = Path(args.work_dir)
    cfg = load_config(
        overrides={"store": {"root": str(work_dir / "store")}, "transcribe": {"whisper_model": args.whisper}},
        environ={},
    )
    identity = whisper_identity(args.whisper, cfg.models_dir)
    try:
        probe = load_probe(args.whisper, identity["id"])
    except ProbeMissing:
        build_vocal_probe(cfg, args.whisper, work_dir)
        probe = load_probe(args.whisper, identity["id"])
    load_before = os.getloadavg()
    families = {
        family: run_family(cfg, family, work_dir, probe, args.asr_tracks) for family in ("randomised", "foreign")
    }
    result = {
        **machine_facts(load_before),
        "whisper_model": args.whisper,
        "probe": probe.card,
        "speed": summarise_speed(families),
        "families": families,
    }
    out = Path(args.out or REPO / "benchmarks" / "results" / f"one_pass_{args.whisper}.json")
    out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    summary = {
        family: {k: v for k, v in r.items() if k not in ("per_track", "metrics")} for family, r in families.items()
    }
    print(json.dumps({"speed": result["speed"], "families": summary}, indent=2, default=float))


if __name__ == "__main__":
    main()
