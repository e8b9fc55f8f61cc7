"""Vocal probes side by side: the vocal stage's track verdicts and the probe's frames, per family.

Per family, a catalogue of ``--works`` works x ``--versions`` versions + ``--instrumentals``
instrumentals (seed ``--seed``; default 6 x 2 + 12, seed 11, apart from the probes' corpora,
seed 300, and the generalisation catalogues, seed 1) is made once and its frame states computed
once per track; then every probe reads the same states: sung tracks kept and instrumentals
excluded under the vocal stage's own rule (``window_scores`` then ``track_decision``), the
vocal seconds of each instrumental, and frame precision / recall of singing against the
generator's sung lines. Song-family instrumentals are the hard case: their lead instrument plays
the sung tune where a voice would sing.

Probes: ``shipped`` (the Whisper model's shipped probe) or ``NAME=FOLDER`` (one written by
``livi build-vocal-probe --out-dir FOLDER``).

    .venv/bin/python benchmarks/bench_vocal_probe.py --whisper tiny.en --work-dir data/probe-eval \\
        --family randomised --family broad --family foreign2 --probe shipped --probe songs=DIR
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from flop_bound import machine_facts  # noqa: E402  (benchmarks/, the script's folder)

from livi_tasks.build.chunk_data import encoder_states_of
from livi_tasks.build.synth.corpus import make_corpus
from livi_tasks.build.vocal_probe import corpus_frames, frame_scores
from livi_tasks.core.config import load_config
from livi_tasks.models.identity import whisper_identity
from livi_tasks.models.musicnn import WINDOW_SECONDS, window_count
from livi_tasks.models.vocal_probe import FRAMES_PER_SECOND, VocalProbe, load_probe, window_scores
from livi_tasks.stages.vocal import track_decision


def probe_verdicts(probe: VocalProbe, frames: tuple, manifest: Path, vocal_cfg) -> dict:
    """The vocal stage's verdict on every track of one catalogue, and the probe's frame scores."""
    states, labels, audio_frames, track_ids = frames
    kinds = pd.read_csv(manifest).set_index("track_id")
    rows, predicted, truth = [], [], []
    for track_states, track_labels, track_frames, track_id in zip(states, labels, audio_frames, track_ids):
        vocalness = probe.frame_vocalness(track_states)
        duration_s = float(track_frames.sum()) / FRAMES_PER_SECOND
        windows = window_count(round(duration_s * 16_000))
        scores = window_scores(vocalness, track_frames, windows, WINDOW_SECONDS)
        _, vocal_s, reason = track_decision(scores, duration_s, vocal_cfg)
        instrumental = str(kinds.loc[track_id, "work_id"]).startswith("instrumental")
        rows.append({"track_id": track_id, "instrumental": instrumental, "vocal_s": vocal_s, "kept": not reason})
        in_audio = np.arange(vocalness.shape[1])[None, :] < track_frames[:, None]
        predicted.append((vocalness >= probe.threshold)[in_audio])
        truth.append(track_labels[in_audio])
    table = pd.DataFrame(rows)
    sung, instrumentals = table[~table["instrumental"]], table[table["instrumental"]]
    return {
        "sung_tracks": len(sung),
        "sung_kept": float(sung["kept"].mean()) if len(sung) else None,
        "instrumentals": len(instrumentals),
        "instrumentals_excluded": float((~instrumentals["kept"]).mean()) if len(instrumentals) else None,
        "sung_vocal_s_min": float(sung["vocal_s"].min()) if len(sung) else None,
        "instrumental_vocal_s": [round(float(v), 1) for v in instrumentals["vocal_s"]],
        "frames": frame_scores(np.concatenate(predicted), np.concatenate(truth)),
    }


def load_probes(specs: list[str], whisper_model: str, whisper_id: str) -> dict[str, VocalProbe]:
    probes = {}
    for spec in specs:
        name, _, folder = spec.partition("=")
        probe = load_probe(whisper_model, whisper_id) if spec == "shipped" else VocalProbe.load(folder)
        if probe.whisper["id"] != whisper_id:
            raise SystemExit(f"--probe {spec}: it reads checkpoint {probe.whisper['id']}, not {whisper_id}")
        probes[name] = probe
    return probes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--whisper", default="tiny.en", help="Whisper model whose frame states the probes read.")
    parser.add_argument("--work-dir", type=Path, default=REPO / "data" / "probe-eval", help="Catalogues, kept.")
    parser.add_argument(
        "--family", action="append", default=[], help="Family of an evaluation catalogue (repeatable; default three)."
    )
    parser.add_argument("--probe", action="append", default=[], help="shipped or NAME=FOLDER (repeatable).")
    parser.add_argument("--works", type=int, default=6, help="Works per catalogue.")
    parser.add_argument("--versions", type=int, default=2, help="Versions per work.")
    parser.add_argument("--instrumentals", type=int, default=12, help="Instrumentals per catalogue.")
    parser.add_argument("--seed", type=int, default=11, help="Catalogue seed.")
    parser.add_argument("--out", type=Path, default=None, help="default benchmarks/results/vocal_probe_WHISPER.json")
    args = parser.parse_args()
    families = args.family or ["randomised", "broad", "foreign2"]

    cfg = load_config()
    whisper = whisper_identity(args.whisper, cfg.models_dir)
    probes = load_probes(args.probe or ["shipped"], args.whisper, whisper["id"])
    encoder_states = encoder_states_of(args.whisper, cfg.models_dir)
    load_before = os.getloadavg()
    results: dict[str, dict] = {name: {} for name in probes}
    for family in families:
        name = f"{family}-{args.works}x{args.versions}+{args.instrumentals}-seed{args.seed}"
        manifest = make_corpus(
            args.work_dir / name, family, args.works, args.versions, args.seed, instrumentals=args.instrumentals
        )
        frames = corpus_frames(encoder_states, manifest)
        for probe_name, probe in probes.items():
            results[probe_name][family] = probe_verdicts(probe, frames, manifest, cfg.vocal)
            row = results[probe_name][family]
            print(
                f"{args.whisper} {probe_name:>10} {family:>10}: sung kept {row['sung_kept']:.3f} "
                f"({row['sung_tracks']}), instrumentals out {row['instrumentals_excluded']:.3f} "
                f"({row['instrumentals']}), frame precision {row['frames']['precision']:.3f} "
                f"recall {row['frames']['recall']:.3f}",
                file=sys.stderr,
            )
    result = {
        **machine_facts(load_before),
        "whisper": whisper,
        "catalogues": {
            "works": args.works,
            "versions": args.versions,
            "instrumentals": args.instrumentals,
            "seed": args.seed,
        },
        "rule": {"track_rule": cfg.vocal.track_rule, "min_vocal_s": cfg.vocal.min_vocal_s},
        "probes": {name: probe.card.get("command", "") for name, probe in probes.items()},
        "results": results,
    }
    out = args.out or REPO / "benchmarks" / "results" / f"vocal_probe_{args.whisper}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["results"], indent=2))


if __name__ == "__main__":
    main()
