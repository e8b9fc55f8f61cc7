"""The frozen Whisper encoder in fp32, int8 (dynamic quantisation) and bf16 (autocast): speed and quality.

For each variant: seconds per 30 s segment (median of ``--repeats`` passes after a warm-up) against
the fp32 FLOP bound measured in the same run (the encoder's multiply-adds over the peak of a large
fp32 matmul on this machine); for each, how far the LIVI embeddings move (cosine to fp32's,
shipped head, one-pass path) and the LIVI MAP of both evaluation catalogues (unseen works of the
training family, and the evaluation-only foreign family; one-pass path, every track).
A variant is worth keeping only where MAP stays within noise: the JSON gives the 95% bootstrap
interval of its per-query AP difference to fp32 (same queries).

    .venv/bin/python benchmarks/bench_quantisation.py [--whisper tiny.en] [--work-dir data/one-pass]

Writes benchmarks/results/quantisation_<whisper>.json. Run it alone: it is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from flop_bound import encoder_gflop, machine_facts, peak_gflops  # noqa: E402  (benchmarks/, the script's folder)

from livi_tasks.build.default_heads import EVALUATION_SEED
from livi_tasks.build.synth.corpus import make_corpus
from livi_tasks.core.audio import load_audio
from livi_tasks.core.config import load_config
from livi_tasks.core.metrics import bootstrap_interval, metrics_from_similarity
from livi_tasks.core.store import ArtifactStore
from livi_tasks.models.encoder import encode_frames
from livi_tasks.models.vocal_probe import load_probe
from livi_tasks.stages.audio_embed import LoadedEncoder, embed_one_pass, load_encoder

SHAPE = {"works": 24, "versions": 3, "instrumentals": 6, "hard_negatives": 6}
FAMILIES = ("randomised", "foreign")  # unseen works of the training family; the evaluation-only family
PRECISIONS = ("fp32", "int8", "bf16")


def _timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def embeddings(loaded: LoadedEncoder, probe, audio: list[np.ndarray]) -> np.ndarray:
    return np.stack([embed_one_pass(loaded, probe, track).embedding for track in audio])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--whisper", default="tiny.en", help="Whisper model (its shipped head and probe are used).")
    parser.add_argument("--work-dir", default=str(REPO / "data" / "one-pass"), help="Where the catalogues are made.")
    parser.add_argument("--repeats", type=int, default=8, help="Timed encoder passes per variant.")
    parser.add_argument("--out", default=None, help="Result JSON (default results/quantisation_<whisper>.json).")
    args = parser.parse_args()
    work_dir = Path(args.work_dir)

    def config(precision: str):
        overrides = {
            "store": {"root": str(work_dir / "store")},
            "transcribe": {"whisper_model": args.whisper},
            "encoder": {"inference_precision": precision, "device": "cpu"},
        }
        return load_config(overrides=overrides, environ={})

    store = ArtifactStore(str(work_dir / "store"))
    loaded = {precision: load_encoder(config(precision), store) for precision in PRECISIONS}
    probe = load_probe(args.whisper, loaded["fp32"].info["whisper"]["id"])
    catalogues = {
        family: make_corpus(work_dir / f"eval_{family}_seed{EVALUATION_SEED}", family, seed=EVALUATION_SEED, **SHAPE)
        for family in FAMILIES
    }
    first = pd.read_csv(catalogues["foreign"]).path.iloc[0]
    segment = np.asarray(load_audio(str(catalogues["foreign"].parent / first))[: 30 * 16_000], np.float32)[None]
    load_before = os.getloadavg()
    peak = peak_gflops()
    gflop = encoder_gflop(loaded["fp32"].encoder.whisper_encoder)
    results = {}
    for precision in PRECISIONS:
        encoder = loaded[precision].encoder.whisper_encoder
        encode_frames(encoder, segment)
        seconds = float(np.median([_timed(lambda: encode_frames(encoder, segment)) for _ in range(args.repeats)]))
        results[precision] = {"seconds_per_segment": seconds, "times_fp32_flop_bound": seconds / (gflop / peak)}
        print(precision, json.dumps(results[precision]), flush=True)
    for family, manifest in catalogues.items():
        tracks = pd.read_csv(manifest)
        audio = [load_audio(str(manifest.parent / path)) for path in tracks.path]
        vectors = {precision: embeddings(loaded[precision], probe, audio) for precision in PRECISIONS}
        metrics = {p: metrics_from_similarity(vectors[p] @ vectors[p].T, tracks.work_id) for p in PRECISIONS}
        for precision in PRECISIONS:
            cosine = (vectors[precision] * vectors["fp32"]).sum(1)
            results[precision][family] = {
                "MAP": metrics[precision].map,
                "cosine_to_fp32_min_mean": [float(cosine.min()), float(cosine.mean())],
                "MAP_minus_fp32_ci95": bootstrap_interval(
                    metrics[precision].average_precision - metrics["fp32"].average_precision
                ),
            }
        print(family, json.dumps({p: results[p][family] for p in PRECISIONS}), flush=True)
    result = {
        **machine_facts(load_before),
        "whisper_model": args.whisper,
        "peak_fp32_gflops": peak,
        "encoder_gflop_per_30s": gflop,
        "fp32_flop_bound_s_per_segment": gflop / peak,
        "variants": results,
    }
    out = Path(args.out or REPO / "benchmarks" / "results" / f"quantisation_{args.whisper}.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
