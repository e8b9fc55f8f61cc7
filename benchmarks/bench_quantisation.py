"""The frozen Whisper encoder in fp32, int8 (dynamic quantisation of its linear layers) and bf16.

For each variant: seconds per 30 s segment (median of ``--repeats`` passes after a warm-up) against
the fp32 FLOP bound measured in the same run (the encoder's multiply-adds over the peak of a large
fp32 matmul on this machine), how far its LIVI embeddings move (cosine to fp32's, shipped head,
one-pass path), and the LIVI MAP of the foreign evaluation family (one-pass path, every track).
A variant is worth keeping only where MAP stays within noise (~0.02 on 84 tracks).

    .venv/bin/python benchmarks/bench_quantisation.py [--whisper tiny.en] [--work-dir data/one-pass]

Writes benchmarks/results/quantisation_<whisper>.json. Run it alone: it is timed.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from livi_tasks.audio import load_audio  # noqa: E402
from livi_tasks.audio_embed import LoadedEncoder, embed_one_pass, load_encoder  # noqa: E402
from livi_tasks.config import load_config  # noqa: E402
from livi_tasks.metrics import metrics_from_similarity  # noqa: E402
from livi_tasks.models.encoder import LiviEncoder, encode_frames  # noqa: E402
from livi_tasks.store import ArtifactStore  # noqa: E402
from livi_tasks.synth.corpus import make_corpus  # noqa: E402
from livi_tasks.vocal_probe import load_probe  # noqa: E402

SHAPE = {"works": 24, "versions": 3, "instrumentals": 6, "hard_negatives": 6}


def peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    """fp32 multiply-add throughput of a large matmul, in GFLOP/s (2 FLOP per multiply-add)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def encoder_gflop(encoder: nn.Module) -> float:
    """FLOPs of one 30 s pass: 2 per multiply-add of every linear and convolution layer, and attention."""
    frames, width = 1500, encoder.conv1.out_channels
    flops = 2 * 3000 * encoder.conv1.in_channels * width * 3 + 2 * frames * width * width * 3  # the two convs
    for block in encoder.blocks:
        flops += 2 * frames * width * width * 4  # q, k, v, out
        flops += 2 * 2 * frames * frames * width  # scores and weighted sum
        flops += 2 * frames * width * block.mlp[0].out_features * 2  # MLP up and down
    return flops / 1e9


def plain_linears(module: nn.Module) -> nn.Module:
    """Whisper's Linear subclass as torch's nn.Linear, which dynamic quantisation recognises."""
    for name, child in module.named_children():
        if isinstance(child, nn.Linear) and type(child) is not nn.Linear:
            plain = nn.Linear(child.in_features, child.out_features, bias=child.bias is not None)
            plain.load_state_dict(child.state_dict())
            setattr(module, name, plain)
        else:
            plain_linears(child)
    return module


def variants(loaded: LoadedEncoder) -> dict[str, tuple[LoadedEncoder, contextlib.AbstractContextManager]]:
    encoder = loaded.encoder.whisper_encoder
    int8 = torch.ao.quantization.quantize_dynamic(plain_linears(copy.deepcopy(encoder)), {nn.Linear}, dtype=torch.qint8)

    def with_encoder(whisper_encoder: nn.Module) -> LoadedEncoder:
        return LoadedEncoder(LiviEncoder(whisper_encoder, loaded.encoder.head).eval(), loaded.info, loaded.device)

    return {
        "fp32": (loaded, contextlib.nullcontext),
        "int8_dynamic": (with_encoder(int8), contextlib.nullcontext),
        "bf16_autocast": (loaded, lambda: torch.autocast("cpu", dtype=torch.bfloat16)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--whisper", default="tiny.en", help="Whisper model (its shipped head and probe are used).")
    parser.add_argument("--work-dir", default=str(REPO / "data" / "one-pass"), help="Where the foreign catalogue is.")
    parser.add_argument("--repeats", type=int, default=8, help="Timed encoder passes per variant.")
    parser.add_argument("--out", default=None, help="Result JSON (default results/quantisation_<whisper>.json).")
    args = parser.parse_args()
    work_dir = Path(args.work_dir)
    cfg = load_config(
        overrides={"store": {"root": str(work_dir / "store")}, "transcribe": {"whisper_model": args.whisper}},
        environ={},
    )
    loaded = load_encoder(cfg, ArtifactStore(cfg.store.root))
    probe = load_probe(args.whisper, loaded.info["whisper"]["id"])
    manifest = make_corpus(work_dir / "eval_foreign_seed1", "foreign", seed=1, **SHAPE)
    tracks = pd.read_csv(manifest)
    audio = [load_audio(str(manifest.parent / path)) for path in tracks.path]
    segment = np.asarray(audio[0][: 30 * 16_000], np.float32)
    peak = peak_gflops()
    gflop = encoder_gflop(loaded.encoder.whisper_encoder)
    results, reference = {}, None
    for name, (variant, context) in variants(loaded).items():
        with context():
            encode_frames(variant.encoder.whisper_encoder, segment[None])
            seconds = float(
                np.median(
                    [
                        _timed(lambda: encode_frames(variant.encoder.whisper_encoder, segment[None]))
                        for _ in range(args.repeats)
                    ]
                )
            )
            results[name] = {"seconds_per_segment": seconds, "times_fp32_flop_bound": seconds / (gflop / peak)}
            if name != "fp32" and seconds > results["fp32"]["seconds_per_segment"]:
                results[name]["quality"] = "not evaluated: slower than fp32 on this CPU"
                print(name, json.dumps(results[name]), flush=True)
                continue
            vectors = np.stack([embed_one_pass(variant, probe, track, 30.0).embedding for track in audio])
        reference = vectors if reference is None else reference
        cosine = (vectors * reference).sum(1)
        results[name]["cosine_to_fp32_min_mean"] = [float(cosine.min()), float(cosine.mean())]
        results[name]["foreign_map"] = metrics_from_similarity(vectors @ vectors.T, tracks.work_id).as_dict()["MAP"]
        print(name, json.dumps(results[name]), flush=True)
    result = {
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg()},
        "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
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
