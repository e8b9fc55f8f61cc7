"""The pipeline's model stages on one device, stage after stage, on a demo catalogue: run once with
``--device cuda`` and once with ``--device cpu`` for the speed-up a GPU worker buys.

Stages, each through the library's own functions, each timed after a warm-up:
1. vocal probe windows: the vocal stage's detector (frozen Whisper encoder + probe, 3 s windows);
2. transcription: Whisper (greedy with the configured fallback) over the 30 s vocal segments;
3. features: the frame-state cache of those segments (the training stage's encoder pass), and the
   encoder's raw throughput in batches of ``--batch`` clips;
4. training: epochs of the head over ``--train-examples`` (frame states, target) pairs drawn from
   those states (the targets are random unit vectors: this times the loop, it teaches nothing,
   and it needs no text model);
5. queries: ``livi query``'s path per file: decode, one encoder pass per 30 s, probe, head, then a
   search of a Faiss index holding every track of the catalogue.

The model is the store's default: in a fresh store the head shipped for ``--whisper``. With
``--cpu-check`` every query file is embedded once more on the CPU in fp32 with the same model (the
reference), and the cosine of each track's embedding to this run's is reported.

The catalogue is made with the demo generator (espeak-ng) unless ``--catalogue-dir`` already holds
one, so a machine without espeak-ng can time a catalogue made elsewhere.

    .venv/bin/python benchmarks/bench_device_path.py [--device auto|cpu|cuda] [--whisper tiny.en]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from flop_bound import machine_facts  # noqa: E402  (benchmarks/, the script's folder)

from livi_tasks.core.audio import SAMPLE_RATE, load_audio
from livi_tasks.core.config import load_config, parse_overrides
from livi_tasks.core.index import TrackIndex
from livi_tasks.core.store import ArtifactStore
from livi_tasks.models.encoder import LiviHead, encode_frames, inference_encoder, resolve_device
from livi_tasks.models.musicnn import WINDOW_SECONDS
from livi_tasks.models.whisper_weights import cached_whisper
from livi_tasks.stages.audio_embed import embed_file, load_encoder
from livi_tasks.stages.features import encode_segments
from livi_tasks.stages.segments import vocal_clips
from livi_tasks.stages.train_encoder import FramePairs, fit_head
from livi_tasks.stages.transcribe import transcribe_audio
from livi_tasks.stages.vocal import window_vocalness


def synchronised_seconds(device: str, function, /, *args, **kwargs):
    """(result, seconds) with CUDA's queue drained before the clock stops: kernels run asynchronously."""
    started = time.perf_counter()
    result = function(*args, **kwargs)
    if device == "cuda":
        torch.cuda.synchronize()
    return result, time.perf_counter() - started


def catalogue_files(catalogue_dir: Path, tracks: int) -> pd.DataFrame:
    """The first ``tracks`` rows of the catalogue's manifest (the demo generator's when none is there)."""
    manifest = catalogue_dir / "manifest.csv"
    if not manifest.is_file():
        from livi_tasks.build.demo import make_demo_catalogue

        manifest = make_demo_catalogue(
            catalogue_dir, works=max(2, tracks // 3 + 1), versions=3, seed=5, instrumentals=0, hard_negatives=0
        )
    table = pd.read_csv(manifest).head(tracks)
    return table.assign(uri=[str(manifest.parent / path) for path in table["path"]])


def time_vocal_and_transcription(cfg, device: str, files: pd.DataFrame) -> tuple[dict, np.ndarray]:
    """Stages 1-2 per track: probe windows, vocal segments, transcription; returns the segments' audio."""
    whisper_model = cached_whisper(cfg.transcribe.whisper_model, cfg.models_dir, device)
    detect_s = transcribe_s = 0.0
    all_clips, kept = [], 0
    for number, uri in enumerate(files["uri"]):
        audio = load_audio(uri, cfg.ingest.max_duration_s)
        (scores, _), seconds = synchronised_seconds(device, window_vocalness, audio, cfg)
        detect_s += seconds
        clips = vocal_clips(cfg, audio, scores, WINDOW_SECONDS)
        segments = pd.DataFrame({"segment_id": [f"t{number}#{i}" for i in range(len(clips))], "track_id": f"t{number}"})
        segments["work_id"] = ""
        transcripts, seconds = synchronised_seconds(
            device, transcribe_audio, whisper_model, segments, clips, cfg.transcribe
        )
        transcribe_s += seconds
        kept += int(transcripts["kept"].sum()) if len(transcripts) else 0
        all_clips.append(clips)
    clips = np.concatenate(all_clips)
    audio_s = float(sum(len(load_audio(uri, cfg.ingest.max_duration_s)) for uri in files["uri"]) / SAMPLE_RATE)
    return {
        "tracks": len(files),
        "audio_s": audio_s,
        "vocal_probe_s": detect_s,
        "vocal_probe_s_per_audio_minute": detect_s / audio_s * 60,
        "segments": int(len(clips)),
        "transcription_s": transcribe_s,
        "transcription_s_per_segment": transcribe_s / max(1, len(clips)),
        "transcripts_kept": kept,
    }, clips


def time_features(cfg, device: str, clips: np.ndarray, batch: int) -> tuple[dict, np.ndarray]:
    """Stage 3: the feature cache's encoder pass, and the frozen encoder alone in batches of ``batch``."""
    whisper_model = cached_whisper(cfg.transcribe.whisper_model, cfg.models_dir, device)
    states, cache_s = synchronised_seconds(device, encode_segments, whisper_model, clips)
    encoder = inference_encoder(whisper_model, cfg.encoder.inference_precision, device)
    repeats = max(1, -(-4 * batch // len(clips)))
    stacked = np.tile(np.asarray(clips, np.float32), (repeats, 1))[: max(batch, len(clips))]
    encode_frames(encoder, stacked[:batch])  # warm-up: kernels chosen, memory pooled
    seconds = 0.0
    for start in range(0, len(stacked), batch):
        _, step_s = synchronised_seconds(device, encode_frames, encoder, stacked[start : start + batch])
        seconds += step_s
    return {
        "feature_cache_s_per_segment": cache_s / len(clips),
        "encoder_batch": batch,
        "encoder_precision": cfg.encoder.inference_precision,
        "encoder_s_per_segment": seconds / len(stacked),
        "encoder_segments_per_s": len(stacked) / seconds,
        "frame_state_mb_per_segment": states[0].nbytes / 2**20,
    }, states


def time_training(
    cfg, device: str, states: np.ndarray, text_dim: int, examples: int, epochs: int, work_dir: Path
) -> dict:
    """Stage 4: ``epochs`` epochs of the head over ``examples`` pairs cycling through ``states``."""
    settings = cfg.encoder.model_copy(update={"epochs": epochs, "device": device, "patience": epochs})
    targets = np.random.default_rng(0).standard_normal((examples, text_dim)).astype(np.float32)
    targets /= np.linalg.norm(targets, axis=1, keepdims=True)
    rows = np.stack([np.zeros(examples, np.int64), np.arange(examples) % len(states), np.arange(examples)], 1)
    pairs = FramePairs([(states, targets)], rows, [str(i) for i in range(examples)])
    torch.manual_seed(0)
    head = LiviHead.from_settings(states.shape[-1], text_dim, settings)
    fit, seconds = synchronised_seconds(device, fit_head, head, pairs, None, settings, work_dir / "fit", device=device)
    return {
        "examples": examples,
        "epochs": len(fit.history),
        "batch_size": settings.batch_size,
        "epoch_s": seconds / len(fit.history),
        "examples_per_s": examples * len(fit.history) / seconds,
    }


def time_queries(
    cfg, device: str, files: pd.DataFrame, store: ArtifactStore, model: str
) -> tuple[dict, list[np.ndarray]]:
    """Stage 5: each file embedded as ``livi query`` embeds it, then searched in an index of them all;
    returns the timings and the track embeddings."""
    embed_file(cfg, files["uri"].iloc[0], store, model)  # warm-up
    embeddings, embed_s = [], []
    for uri in files["uri"]:
        embedded, seconds = synchronised_seconds(device, embed_file, cfg, uri, store, model)
        embeddings.append(embedded.embedding)
        embed_s.append(seconds)
    rows = files.assign(catalogue="demo", track_id=files["track_id"].astype(str), work_id=files["work_id"])
    index = TrackIndex.build(np.stack(embeddings), rows, cfg.index, model)
    search_ms = []
    for embedding in embeddings:
        _, seconds = synchronised_seconds("cpu", index.search, embedding[None, :], 10)
        search_ms.append(seconds * 1000)
    totals = np.asarray(embed_s) + np.asarray(search_ms) / 1000
    return {
        "queries": len(files),
        "index": index.kind,
        "embed_s_median": float(np.median(embed_s)),
        "search_ms_median": float(np.median(search_ms)),
        "query_s_median": float(np.median(totals)),
        "query_s_max": float(totals.max()),
    }, embeddings


def compare_with_cpu(cpu_cfg, files: pd.DataFrame, store: ArtifactStore, model: str, embeddings) -> dict:
    """Each file embedded again with the same model on the CPU in fp32 (``cpu_cfg``): per track the
    cosine of the two embeddings and their largest coordinate difference, in float64 (in float32 a
    cosine within 3e-8 of 1 rounds to 1)."""
    cosines, differences = [], []
    for uri, embedding in zip(files["uri"], embeddings):
        reference = embed_file(cpu_cfg, uri, store, model).embedding.astype(np.float64)
        vector = np.asarray(embedding, np.float64)
        cosines.append(float(reference @ vector / (np.linalg.norm(reference) * np.linalg.norm(vector))))
        differences.append(float(np.abs(reference - vector).max()))
    return {
        "reference": "cpu fp32",
        "cosine_min": min(cosines),
        "cosine_mean": float(np.mean(cosines)),
        "max_abs_difference": max(differences),
        "cosines": cosines,
    }


def device_facts(device: str) -> dict:
    facts = {"device": device, "torch": torch.__version__}
    if device == "cuda":
        facts["gpu"] = torch.cuda.get_device_name(0)
        facts["cuda"] = torch.version.cuda
    return facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="Where every model stage runs (auto: CUDA when present).",
    )
    parser.add_argument("--whisper", default="tiny.en", help="Whisper checkpoint (name or .pt path).")
    parser.add_argument("--tracks", type=int, default=12, help="Tracks of the demo catalogue to time.")
    parser.add_argument(
        "--catalogue-dir", type=Path, default=None, help="A demo catalogue to reuse or make (default: temporary)."
    )
    parser.add_argument("--batch", type=int, default=8, help="Clips per encoder pass in the throughput timing.")
    parser.add_argument("--train-examples", type=int, default=1024, help="Training pairs per epoch.")
    parser.add_argument("--epochs", type=int, default=3, help="Training epochs to time.")
    parser.add_argument("--set", action="append", default=[], help="Config override section.field=value (repeatable).")
    parser.add_argument(
        "--cpu-check",
        action="store_true",
        help="Also embed each query file on the CPU in fp32 with the same model and report the cosine "
        "of each track's embedding to this run's.",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="default benchmarks/results/device_path_DEVICE_WHISPER.json"
    )
    args = parser.parse_args()
    args.device = resolve_device(args.device)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device here")

    work_dir = Path(tempfile.mkdtemp(prefix="bench-device-"))
    settings = [
        *args.set,
        f"encoder.device={args.device}",
        f"transcribe.whisper_model={args.whisper}",
        f"store.root={work_dir / 'store'}",
    ]
    cfg = load_config(overrides=parse_overrides(settings))
    files = catalogue_files(args.catalogue_dir or work_dir / "demo", args.tracks)
    store = ArtifactStore(cfg.store.root)
    load_before = os.getloadavg()
    loaded, load_s = synchronised_seconds(args.device, load_encoder, cfg, store, None)
    window_vocalness(load_audio(files["uri"].iloc[0], cfg.ingest.max_duration_s), cfg)  # warm-up: probe, kernels

    print(f"stages 1-2: vocal probe and transcription of {len(files)} tracks on {args.device}", file=sys.stderr)
    vocal, clips = time_vocal_and_transcription(cfg, args.device, files)
    print(f"stage 3: feature cache of {len(clips)} segments", file=sys.stderr)
    features, states = time_features(cfg, args.device, clips, args.batch)
    print(f"stage 4: {args.epochs} training epochs of {args.train_examples} pairs", file=sys.stderr)
    text_dim = loaded.info["text_model"]["dim"]
    training = time_training(cfg, args.device, states, text_dim, args.train_examples, args.epochs, work_dir)
    print("stage 5: queries", file=sys.stderr)
    queries, embeddings = time_queries(cfg, args.device, files, store, loaded.info["fingerprint"])
    cpu_check = None
    if args.cpu_check:
        print("CPU check: the same model's embeddings on the CPU in fp32", file=sys.stderr)
        cpu_cfg = load_config(
            overrides=parse_overrides([*settings, "encoder.device=cpu", "encoder.inference_precision=fp32"])
        )
        cpu_check = compare_with_cpu(cpu_cfg, files, store, loaded.info["fingerprint"], embeddings)
    result = {
        **machine_facts(load_before, **device_facts(args.device)),
        "whisper_model": args.whisper,
        "vocal_method": cfg.vocal.method,
        "transcribe_temperatures": list(cfg.transcribe.temperatures),
        "model": {
            "fingerprint": loaded.info["fingerprint"],
            "shipped": bool(loaded.info.get("shipped")),
            "head": loaded.encoder.head.config(),
        },
        "encoder_load_s": load_s,
        "vocal_and_transcription": vocal,
        "features": features,
        "training": training,
        "queries": queries,
    }
    if cpu_check is not None:
        result["cpu_check"] = cpu_check
    out = (
        args.out
        or REPO
        / "benchmarks"
        / "results"
        / f"device_path_{args.device}_{Path(args.whisper).name.removesuffix('.pt')}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(json.dumps(result, indent=2, default=float))


if __name__ == "__main__":
    main()
