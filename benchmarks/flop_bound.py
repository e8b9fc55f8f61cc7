"""The fp32 FLOP bound of the frozen Whisper encoder on this machine, measured in the run that uses it.

The bound is the encoder's FLOPs per 30 s segment over the peak fp32 throughput of a large matmul:
no fp32 implementation of the encoder can run faster here.
"""

from __future__ import annotations

import os
import platform
import time
from datetime import datetime, timezone

import torch
from torch import nn


def peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    """fp32 multiply-add throughput of a large matmul, in GFLOP/s (2 FLOP per multiply-add)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def encoder_gflop(encoder: nn.Module) -> float:
    """FLOPs of one 30 s pass: 2 per multiply-add of every linear and convolution layer, and attention."""
    frames, width = 1500, encoder.conv1.out_channels
    flops = 2 * 3000 * encoder.conv1.in_channels * width * 3 + 2 * frames * width * width * 3  # the two convs
    for block in encoder.blocks:
        flops += 2 * frames * width * width * 4  # q, k, v, out
        flops += 2 * 2 * frames * frames * width  # scores and weighted sum
        flops += 2 * frames * width * block.mlp[0].out_features * 2  # MLP up and down
    return flops / 1e9


def _timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def cpu_model() -> str:
    """The CPU's name from /proc/cpuinfo (the bound and every timing depend on it)."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def machine_facts(load_before: tuple[float, float, float], **extra) -> dict:
    """What a timing depends on: the machine, torch's threads and the load around the run, and the date."""
    machine = {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        **extra,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }
    return {"machine": machine, "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d")}
