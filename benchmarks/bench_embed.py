"""Per-track embedding time: the ASR-free path vs the ASR (lyrics) path, on the same tracks, in one run.

Both paths share preprocessing (decode + vocal windows + segments). The ASR-free path then runs
the frozen Whisper encoder + head once per segment; the ASR path transcribes every segment
(Whisper encoder + decoder with temperature fallback) and embeds the transcripts. Models are
loaded and warmed up before timing; load times are reported apart. Goals: ASR path / ASR-free
path >= 5x, and preprocessing <= 25% of the ASR-free time.

Also times one training epoch of the head from the frozen-feature cache vs recomputing the
encoder's frame states in that epoch (what training without the cache would cost per epoch).

The head's weights do not change its cost: without --store/--model a freshly initialised head of
the trained shape is timed (the JSON says which).

    .venv/bin/python benchmarks/bench_embed.py [--tracks 12] [--whisper base] [--out benchmarks/results/embed.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from livi_tasks.audio import SAMPLE_RATE, load_audio  # noqa: E402
from livi_tasks.audio_embed import LoadedEncoder, embed_clips, load_encoder  # noqa: E402
from livi_tasks.config import load_config, parse_overrides  # noqa: E402
from livi_tasks.demo import make_demo_catalogue  # noqa: E402
from livi_tasks.features import encode_segments  # noqa: E402
from livi_tasks.models.encoder import LiviEncoder, LiviHead  # noqa: E402
from livi_tasks.models.musicnn import WINDOW_SECONDS  # noqa: E402
from livi_tasks.models.whisper_weights import cached_whisper  # noqa: E402
from livi_tasks.segments import vocal_clips  # noqa: E402
from livi_tasks.store import ArtifactStore  # noqa: E402
from livi_tasks.text_embed import embed_texts, load_text_model  # noqa: E402
from livi_tasks.train_encoder import FramePairs, fit_head  # noqa: E402
from livi_tasks.transcribe import transcribe_audio  # noqa: E402
from livi_tasks.vocal import window_vocalness  # noqa: E402


def _timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def _encoder(cfg, store: ArtifactStore | None, model: str | None, text_dim: int) -> tuple[LoadedEncoder, str]:
    if store is not None:
        loaded = load_encoder(cfg, store, model)
        return loaded, f"trained model {loaded.info['fingerprint']}"
    whisper = cached_whisper(cfg.transcribe.whisper_model, cfg.models_dir, "cpu")
    torch.manual_seed(0)
    head = LiviHead.from_settings(whisper.dims.n_audio_state, text_dim, cfg.encoder)
    info = {"fingerprint": None, "text_model": {"dim": text_dim}}
    return LoadedEncoder(
        encoder=LiviEncoder(whisper, head).eval(), info=info, device="cpu"
    ), "untrained head of the trained shape"


def bench_tracks(cfg, uris: list[str], loaded: LoadedEncoder, text_model) -> tuple[pd.DataFrame, list[np.ndarray]]:
    whisper = cached_whisper(cfg.transcribe.whisper_model, cfg.models_dir)
    rows, all_clips = [], []
    for number, uri in enumerate(uris):
        audio, t_decode = _timed(load_audio, uri, cfg.ingest.max_duration_s)
        (scores, _), t_vocal = _timed(window_vocalness, audio, cfg)
        clips, t_segments = _timed(vocal_clips, cfg, audio, scores, WINDOW_SECONDS)
        if not len(clips):
            print(f"{uri}: no vocal segment, skipped", file=sys.stderr)
            continue
        all_clips.append(clips)
        _, t_encoder = _timed(embed_clips, loaded, clips)
        segments = pd.DataFrame(
            {"segment_id": [f"t{number}#{i}" for i in range(len(clips))], "track_id": f"t{number}", "work_id": ""}
        )
        transcripts, t_transcribe = _timed(transcribe_audio, whisper, segments, clips, cfg.transcribe)
        kept = transcripts.loc[transcripts["kept"], "text"].tolist()
        _, t_text = _timed(embed_texts, text_model, kept, cfg.text.chunk_chars, cfg.text.batch_size)
        rows.append(
            {
                "uri": uri,
                "duration_s": len(audio) / SAMPLE_RATE,
                "segments": len(clips),
                "kept_transcripts": len(kept),
                "decode_s": t_decode,
                "vocal_s": t_vocal,
                "segments_s": t_segments,
                "encoder_head_s": t_encoder,
                "transcribe_s": t_transcribe,
                "text_embed_s": t_text,
            }
        )
        print(
            f"[{number + 1}/{len(uris)}] {Path(uri).name}: {len(clips)} segments, "
            f"prep {t_decode + t_vocal + t_segments:.2f} s, "
            f"encoder {t_encoder:.2f} s, transcribe {t_transcribe:.2f} s, text {t_text:.2f} s",
            file=sys.stderr,
        )
    return pd.DataFrame(rows), all_clips


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
        "--store", default=None, help="Data root holding a trained encoder (default: time an untrained head)."
    )
    parser.add_argument("--model", default=None, help="Encoder fingerprint in --store (default: the promoted one).")
    parser.add_argument("--set", action="append", default=[], help="Config override section.field=value (repeatable).")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "embed.json"))
    args = parser.parse_args()

    overrides = parse_overrides([*args.set, "encoder.device=cpu"])
    if args.whisper:
        overrides.setdefault("transcribe", {})["whisper_model"] = args.whisper
    cfg = load_config(overrides=overrides)
    work_dir = Path(tempfile.mkdtemp(prefix="bench-embed-"))
    catalogue_dir = Path(args.catalogue_dir) if args.catalogue_dir else work_dir / "demo"
    manifest = make_demo_catalogue(
        catalogue_dir, works=max(2, args.tracks // 3 + 1), versions=3, seed=5, instrumentals=0, hard_negatives=0
    )
    uris = [str(manifest.parent / p) for p in pd.read_csv(manifest)["path"].tolist()[: args.tracks]]

    load_times = {}
    text_model, load_times["text_model_s"] = _timed(load_text_model, cfg.text.model)
    text_dim = int(embed_texts(text_model, ["warm up"], cfg.text.chunk_chars, cfg.text.batch_size).shape[-1])
    (loaded, head_kind), load_times["encoder_s"] = _timed(
        _encoder, cfg, ArtifactStore(args.store) if args.store else None, args.model, text_dim
    )
    _, load_times["whisper_for_asr_s"] = _timed(cached_whisper, cfg.transcribe.whisper_model, cfg.models_dir)
    # Warm-up: first calls pay one-off costs (allocator, Musicnn weights, kernels).
    warm_audio = load_audio(uris[0], cfg.ingest.max_duration_s)
    window_vocalness(warm_audio, cfg)
    embed_clips(loaded, np.zeros((1, round(cfg.segments.segment_s * SAMPLE_RATE)), np.float16))

    per_track, clips = bench_tracks(cfg, uris, loaded, text_model)
    prep = per_track[["decode_s", "vocal_s", "segments_s"]].sum(axis=1)
    asr_free = prep + per_track["encoder_head_s"]
    asr = prep + per_track["transcribe_s"] + per_track["text_embed_s"]
    training = bench_training_epoch(cfg, np.concatenate(clips), text_dim, work_dir)
    result = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "device": "cpu",
        },
        "whisper_model": cfg.transcribe.whisper_model,
        "transcribe_temperatures": list(cfg.transcribe.temperatures),
        "text_model": cfg.text.model,
        "head": head_kind,
        "tracks": len(per_track),
        "segments": int(per_track["segments"].sum()),
        "mean_track_duration_s": float(per_track["duration_s"].mean()),
        "seconds_per_track": {
            "preprocessing (decode + vocal + segments)": float(prep.mean()),
            "decode": float(per_track["decode_s"].mean()),
            "vocal": float(per_track["vocal_s"].mean()),
            "segments": float(per_track["segments_s"].mean()),
            "asr_free_inference (encoder + head)": float(per_track["encoder_head_s"].mean()),
            "asr_transcription": float(per_track["transcribe_s"].mean()),
            "asr_text_embedding": float(per_track["text_embed_s"].mean()),
            "asr_free_total": float(asr_free.mean()),
            "asr_total": float(asr.mean()),
        },
        "speedup_asr_over_asr_free": float(asr.sum() / asr_free.sum()),
        "preprocessing_share_of_asr_free": float(prep.sum() / asr_free.sum()),
        "goals": {
            "speedup >= 5": bool(asr.sum() / asr_free.sum() >= 5),
            "preprocessing share <= 0.25": bool(prep.sum() / asr_free.sum() <= 0.25),
        },
        "model_load_s": load_times,
        "training_epoch": training,
        "per_track": per_track.to_dict(orient="records"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "per_track"}, indent=2))


if __name__ == "__main__":
    main()
