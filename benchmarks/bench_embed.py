"""Per-track embedding time: the ASR-free path vs the ASR (lyrics) path, on the same tracks, in one run.

Both paths follow the configuration (default: the encoder_probe vocal detector, greedy decoding,
the encoder's inference precision). With ``vocal.method: encoder_probe`` the ASR-free path is the
one-pass path: decode -> the frozen Whisper encoder once per consecutive 30 s chunk -> the vocal
probe on those frame states -> the head pooling the sung frames; with Musicnn (``zero_shot``) it is
decode -> Musicnn vocalness per 3 s window -> 30 s vocal segments -> encoder + head per segment.
The ASR path is the pipeline's: decode -> vocal detection -> 30 s vocal segments -> Whisper
transcription -> text embedding of the kept transcripts.

Preprocessing is what is not the encoder + head: decoding, vocal detection, segment cutting.
Models are loaded and warmed up before timing; load times are reported apart. The fp32 FLOP bound
of the encoder (its FLOPs per 30 s over the peak of a large fp32 matmul) is measured in the same
run. Goals (issue 13): ASR path / ASR-free path >= 5x; preprocessing <= 25% of the ASR-free time;
ASR-free inference seconds per 30 s segment <= 1.0x the fp32 FLOP bound.

Also times one training epoch of the head from the frozen-feature cache vs recomputing the
encoder's frame states in that epoch (what training without the cache would cost per epoch).

Without --store/--model the shipped head of the Whisper model is used.

    .venv/bin/python benchmarks/bench_embed.py [--tracks 12] [--whisper tiny.en]
        [--set encoder.inference_precision=fp32]
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

from flop_bound import encoder_gflop, machine_facts, peak_gflops  # noqa: E402  (benchmarks/, the script's folder)

from livi_tasks.build.demo import make_demo_catalogue
from livi_tasks.core.audio import SAMPLE_RATE, load_audio
from livi_tasks.core.config import load_config, parse_overrides
from livi_tasks.core.store import ArtifactStore
from livi_tasks.models.encoder import LiviHead
from livi_tasks.models.musicnn import WINDOW_SECONDS
from livi_tasks.models.vocal_probe import load_probe
from livi_tasks.models.whisper_weights import cached_whisper
from livi_tasks.stages.audio_embed import LoadedEncoder, embed_clips, encode_track, load_encoder, pool_sung_frames
from livi_tasks.stages.features import encode_segments
from livi_tasks.stages.segments import vocal_clips
from livi_tasks.stages.text_embed import embed_texts, load_text_model
from livi_tasks.stages.train_encoder import FramePairs, fit_head
from livi_tasks.stages.transcribe import transcribe_audio
from livi_tasks.stages.vocal import window_vocalness


def _timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def asr_free_one_pass(loaded: LoadedEncoder, probe, audio: np.ndarray) -> dict:
    """The one-pass path's seconds: the encoder over the chunks, the probe (detection), the head."""
    (states, audio_frames), t_encoder = _timed(encode_track, loaded, audio)
    frame_vocalness, t_probe = _timed(probe.frame_vocalness, states.numpy())
    _, t_head = _timed(pool_sung_frames, loaded.encoder.head, states, audio_frames, frame_vocalness, probe.threshold)
    return {
        "asr_free_segments": len(states),
        "asr_free_detection_s": t_probe,
        "asr_free_segments_s": 0.0,
        "asr_free_inference_s": t_encoder + t_head,
    }


def asr_free_segments(cfg, loaded: LoadedEncoder, audio: np.ndarray) -> dict:
    """The Musicnn path's seconds: window vocalness, segment cutting, encoder + head per segment."""
    (scores, _), t_detect = _timed(window_vocalness, audio, cfg)
    clips, t_segments = _timed(vocal_clips, cfg, audio, scores, WINDOW_SECONDS)
    _, t_inference = _timed(embed_clips, loaded, clips) if len(clips) else (None, 0.0)
    return {
        "asr_free_segments": len(clips),
        "asr_free_detection_s": t_detect,
        "asr_free_segments_s": t_segments,
        "asr_free_inference_s": t_inference,
    }


def asr_path(cfg, whisper, text_model, audio: np.ndarray, number: int) -> tuple[dict, np.ndarray]:
    (scores, _), t_detect = _timed(window_vocalness, audio, cfg)
    clips, t_segments = _timed(vocal_clips, cfg, audio, scores, WINDOW_SECONDS)
    segments = pd.DataFrame(
        {"segment_id": [f"t{number}#{i}" for i in range(len(clips))], "track_id": f"t{number}", "work_id": ""}
    )
    transcripts, t_transcribe = _timed(transcribe_audio, whisper, segments, clips, cfg.transcribe)
    kept = transcripts.loc[transcripts["kept"], "text"].tolist() if len(transcripts) else []
    _, t_text = _timed(embed_texts, text_model, kept, cfg.text.chunk_chars, cfg.text.batch_size)
    timing = {
        "asr_segments": len(clips),
        "asr_kept_transcripts": len(kept),
        "asr_detection_s": t_detect,
        "asr_segments_s": t_segments,
        "asr_transcription_s": t_transcribe,
        "asr_text_embedding_s": t_text,
    }
    return timing, clips


def bench_tracks(cfg, uris: list[str], loaded: LoadedEncoder, probe, text_model) -> tuple[pd.DataFrame, np.ndarray]:
    whisper = cached_whisper(cfg.transcribe.whisper_model, cfg.models_dir)
    rows, all_clips = [], []
    for number, uri in enumerate(uris):
        audio, t_decode = _timed(load_audio, uri, cfg.ingest.max_duration_s)
        if probe is not None:
            asr_free = asr_free_one_pass(loaded, probe, audio)
        else:
            asr_free = asr_free_segments(cfg, loaded, audio)
        asr, clips = asr_path(cfg, whisper, text_model, audio, number)
        all_clips.append(clips)
        row = {"uri": uri, "duration_s": len(audio) / SAMPLE_RATE, "decode_s": t_decode, **asr_free, **asr}
        rows.append(row)
        print(
            f"[{number + 1}/{len(uris)}] {Path(uri).name}: decode {t_decode:.2f} s; "
            f"ASR-free detection {row['asr_free_detection_s']:.2f} s, inference {row['asr_free_inference_s']:.2f} s "
            f"({row['asr_free_segments']} segments); ASR transcription {row['asr_transcription_s']:.2f} s",
            file=sys.stderr,
        )
    return pd.DataFrame(rows), np.concatenate(all_clips)


def bench_training_epoch(cfg, clips: np.ndarray, text_dim: int, work_dir: Path) -> dict:
    """One epoch from cached float16 states vs the same epoch with the states recomputed first."""
    whisper = cached_whisper(cfg.transcribe.whisper_model, cfg.models_dir, "cpu")
    settings = cfg.encoder.model_copy(update={"epochs": 1, "device": "cpu"})
    rng = np.random.default_rng(0)
    targets = rng.standard_normal((len(clips), text_dim)).astype(np.float32)
    targets /= np.linalg.norm(targets, axis=1, keepdims=True)

    def epoch(states: np.ndarray, name: str) -> float:
        pairs = FramePairs(
            [(states, targets)],
            np.stack([np.zeros(len(states), np.int64), np.arange(len(states)), np.arange(len(states))], 1),
            [""] * len(states),
        )
        torch.manual_seed(0)
        head = LiviHead.from_settings(states.shape[-1], text_dim, settings)
        _, seconds = _timed(fit_head, head, pairs, None, settings, work_dir / name)
        return seconds

    states, t_features = _timed(encode_segments, whisper, clips)
    path = work_dir / "states.npy"
    np.save(path, states)
    cached = np.load(path, mmap_mode="r")
    t_cached_epoch = epoch(cached, "cached")
    return {
        "segments": int(len(clips)),
        "epoch_from_cache_s": t_cached_epoch,
        "recompute_features_s": t_features,
        "epoch_recomputing_features_s": t_features + t_cached_epoch,
        "speedup": (t_features + t_cached_epoch) / t_cached_epoch,
        "cache_mb_per_segment": states[0].nbytes / 2**20,
    }


def summarise(per_track: pd.DataFrame, bound_s: float) -> dict:
    total = per_track.sum(numeric_only=True)
    prep = total["decode_s"] + total["asr_free_detection_s"] + total["asr_free_segments_s"]
    asr_free = prep + total["asr_free_inference_s"]
    asr = (
        total["decode_s"]
        + total["asr_detection_s"]
        + total["asr_segments_s"]
        + total["asr_transcription_s"]
        + total["asr_text_embedding_s"]
    )
    segments = total["asr_free_segments"]
    inference_per_segment = total["asr_free_inference_s"] / segments
    tracks = len(per_track)
    return {
        "seconds_per_track": {
            "decode": total["decode_s"] / tracks,
            "asr_free_detection": total["asr_free_detection_s"] / tracks,
            "asr_free_segments": total["asr_free_segments_s"] / tracks,
            "asr_free_inference (encoder + head)": total["asr_free_inference_s"] / tracks,
            "asr_free_total": asr_free / tracks,
            "asr_detection": total["asr_detection_s"] / tracks,
            "asr_segments": total["asr_segments_s"] / tracks,
            "asr_transcription": total["asr_transcription_s"] / tracks,
            "asr_text_embedding": total["asr_text_embedding_s"] / tracks,
            "asr_total": asr / tracks,
        },
        "asr_free_segments_per_track": segments / tracks,
        "asr_segments_per_track": total["asr_segments"] / tracks,
        "asr_free_inference_s_per_segment": inference_per_segment,
        "asr_free_total_s_per_segment": asr_free / segments,
        "inference_times_fp32_flop_bound": inference_per_segment / bound_s,
        "total_times_fp32_flop_bound": asr_free / segments / bound_s,
        "speedup_asr_over_asr_free": asr / asr_free,
        "preprocessing_share_of_asr_free": prep / asr_free,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=int, default=12, help="Tracks to time (from a demo catalogue).")
    parser.add_argument(
        "--whisper", default=None, help="Whisper checkpoint (default: the config's transcribe.whisper_model)."
    )
    parser.add_argument(
        "--catalogue-dir", default=None, help="Where to make/keep the demo catalogue (default: a temporary folder)."
    )
    parser.add_argument(
        "--store", default=None, help="Data root holding the encoder (default: a temporary one with the shipped head)."
    )
    parser.add_argument("--model", default=None, help="Encoder fingerprint in --store (default: the promoted one).")
    parser.add_argument("--set", action="append", default=[], help="Config override section.field=value (repeatable).")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "embed.json"))
    args = parser.parse_args()

    work_dir = Path(tempfile.mkdtemp(prefix="bench-embed-"))
    overrides = parse_overrides([*args.set, "encoder.device=cpu", f"store.root={args.store or work_dir / 'store'}"])
    if args.whisper:
        overrides.setdefault("transcribe", {})["whisper_model"] = args.whisper
    cfg = load_config(overrides=overrides)
    catalogue_dir = Path(args.catalogue_dir) if args.catalogue_dir else work_dir / "demo"
    manifest = make_demo_catalogue(
        catalogue_dir, works=max(2, args.tracks // 3 + 1), versions=3, seed=5, instrumentals=0, hard_negatives=0
    )
    uris = [str(manifest.parent / p) for p in pd.read_csv(manifest)["path"].tolist()[: args.tracks]]

    load_before = os.getloadavg()
    load_times = {}
    text_model, load_times["text_model_s"] = _timed(load_text_model, cfg.text.model)
    text_dim = int(embed_texts(text_model, ["warm up"], cfg.text.chunk_chars, cfg.text.batch_size).shape[-1])
    loaded, load_times["encoder_s"] = _timed(load_encoder, cfg, ArtifactStore(cfg.store.root), args.model)
    _, load_times["whisper_for_asr_s"] = _timed(cached_whisper, cfg.transcribe.whisper_model, cfg.models_dir)
    one_pass = cfg.vocal.method == "encoder_probe"
    probe = load_probe(cfg.transcribe.whisper_model, loaded.info["whisper"]["id"]) if one_pass else None
    # Warm-up: first calls pay one-off costs (allocator, detector weights, kernels).
    warm_audio = load_audio(uris[0], cfg.ingest.max_duration_s)
    window_vocalness(warm_audio, cfg)
    embed_clips(loaded, np.zeros((1, round(cfg.segments.segment_s * SAMPLE_RATE)), np.float16))

    peak = peak_gflops()
    gflop = encoder_gflop(cached_whisper(loaded.info["whisper"]["name"], cfg.models_dir).encoder)  # fp32 model
    per_track, clips = bench_tracks(cfg, uris, loaded, probe, text_model)
    summary = summarise(per_track, gflop / peak)
    training = bench_training_epoch(cfg, clips, text_dim, work_dir)
    result = {
        **machine_facts(load_before, device="cpu"),
        "whisper_model": cfg.transcribe.whisper_model,
        "vocal_method": cfg.vocal.method,
        "asr_free_path": "one pass (encoder_probe)" if one_pass else "vocal segments (Musicnn)",
        "inference_precision": cfg.encoder.inference_precision,
        "transcribe_temperatures": list(cfg.transcribe.temperatures),
        "text_model": cfg.text.model,
        "head": loaded.info["fingerprint"],
        "tracks": len(per_track),
        "mean_track_duration_s": float(per_track["duration_s"].mean()),
        "peak_fp32_gflops": peak,
        "encoder_gflop_per_30s": gflop,
        "fp32_flop_bound_s_per_segment": gflop / peak,
        **summary,
        "goals": {
            "speedup >= 5": bool(summary["speedup_asr_over_asr_free"] >= 5),
            "preprocessing share <= 0.25": bool(summary["preprocessing_share_of_asr_free"] <= 0.25),
            "inference per segment <= 1.0x fp32 FLOP bound": bool(summary["inference_times_fp32_flop_bound"] <= 1.0),
        },
        "model_load_s": load_times,
        "training_epoch": training,
        "per_track": per_track.to_dict(orient="records"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "per_track"}, indent=2, default=float))


if __name__ == "__main__":
    main()
