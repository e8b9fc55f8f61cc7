"""Test support: a segments artifact cut from a demo catalogue's ground-truth vocal regions.

It follows the segmentation rule of the paper (DESIGN.md section 1, step 2) on the sung lines of
``vocals.csv`` instead of detected windows, so that the transcription and text stages can be
tested (and benchmarked) independently of vocal detection. Lines closer than ``MERGE_GAP_S``
(one vocal-detection window) form one region.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd

from livi_tasks.core.audio import load_audio
from livi_tasks.core.config import LiviConfig, load_config
from livi_tasks.core.metrics_text import normalise_text
from livi_tasks.core.store import ArtifactStore
from livi_tasks.stages.catalogue import ingest_catalogue
from livi_tasks.stages.lineage import artifact_for, shard_ids

SAMPLE_RATE = 16_000
SEGMENT_S = 30.0
MAX_PAD_S = 10.0
MERGE_GAP_S = 3.0
SEGMENT_COLUMNS = [
    "segment_id",
    "track_id",
    "work_id",
    "index",
    "start_s",
    "end_s",
    "region_start_s",
    "region_end_s",
    "pad_before_s",
    "pad_after_s",
    "zero_pad_s",
]


def sung_lines(demo_dir: Path) -> dict[str, list[tuple[float, float, str]]]:
    """track_id -> [(start_s, end_s, text)] of the lines sung, in order."""
    lyrics = json.loads((demo_dir / "lyrics.json").read_text())["tracks"]
    times: dict[str, list[tuple[float, float]]] = {}
    with open(demo_dir / "vocals.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            times.setdefault(row["track_id"], []).append((float(row["start_s"]), float(row["end_s"])))
    return {
        track: [(start, end, text) for (start, end), text in zip(times.get(track, []), lines)]
        for track, lines in lyrics.items()
    }


def vocal_regions(lines: list[tuple[float, float, str]]) -> list[tuple[float, float]]:
    regions: list[list[float]] = []
    for start, end, _ in lines:
        if regions and start - regions[-1][1] < MERGE_GAP_S:
            regions[-1][1] = max(regions[-1][1], end)
        else:
            regions.append([start, end])
    return [(start, end) for start, end in regions]


def cut_segments(
    track_id: str, work_id: str, audio: np.ndarray, regions: list[tuple[float, float]]
) -> tuple[list[dict], list[np.ndarray]]:
    duration = len(audio) / SAMPLE_RATE
    rows, pieces = [], []
    segment_samples = int(SEGMENT_S * SAMPLE_RATE)
    for region_start, region_end in regions:
        pad = min(MAX_PAD_S, max(0.0, (SEGMENT_S - (region_end - region_start)) / 2))
        start, end = max(0.0, region_start - pad), min(duration, region_end + pad)
        position = start
        while position < end - 1e-6:
            piece_end = min(end, position + SEGMENT_S)
            samples = audio[int(round(position * SAMPLE_RATE)) : int(round(piece_end * SAMPLE_RATE))][:segment_samples]
            piece = np.zeros(segment_samples, dtype=np.float32)
            piece[: len(samples)] = samples
            index = len(rows)
            rows.append(
                {
                    "segment_id": f"{track_id}:{index:03d}",
                    "track_id": track_id,
                    "work_id": work_id,
                    "index": index,
                    "start_s": position,
                    "end_s": piece_end,
                    "region_start_s": region_start,
                    "region_end_s": region_end,
                    "pad_before_s": region_start - start,
                    "pad_after_s": end - region_end,
                    "zero_pad_s": SEGMENT_S - len(samples) / SAMPLE_RATE,
                }
            )
            pieces.append(piece)
            position = piece_end
    return rows, pieces


def write_segments_artifact(
    cfg: LiviConfig, store: ArtifactStore, catalogue: str, shard: str, rows: list[dict], pieces: list[np.ndarray]
) -> None:
    artifact = artifact_for(cfg, store, catalogue, "segments", shard)
    artifact.write_table("segments", pd.DataFrame(rows, columns=SEGMENT_COLUMNS))
    audio = np.stack(pieces) if pieces else np.zeros((0, int(SEGMENT_S * SAMPLE_RATE)))
    artifact.write_array("audio", audio.astype(np.float16))
    artifact.commit({"segments": len(rows), "source": "ground truth vocals.csv"})


def ground_truth_segments(
    cfg: LiviConfig, manifest: Path, catalogue: str = "demo", store: ArtifactStore | None = None
) -> list[str]:
    """Ingest the demo catalogue and write its ground-truth segments artifacts; returns the shards."""
    store = store or ArtifactStore(cfg.store.root)
    ingest_catalogue(cfg, manifest, catalogue, store)
    lines = sung_lines(manifest.parent)
    ingest = artifact_for(cfg, store, catalogue, "ingest", "all")
    tracks = ingest.read_table("tracks")
    shards = shard_ids(store, catalogue)
    for shard in shards:
        if artifact_for(cfg, store, catalogue, "segments", shard).is_complete():
            continue
        rows, pieces = [], []
        for track in tracks[tracks["shard"] == shard].itertuples():
            regions = vocal_regions(lines.get(track.track_id, []))
            if regions:
                track_rows, track_pieces = cut_segments(track.track_id, track.work_id, load_audio(track.uri), regions)
                rows += track_rows
                pieces += track_pieces
        write_segments_artifact(cfg, store, catalogue, shard, rows, pieces)
    return shards


def reference_lyrics(demo_dir: Path, segments: pd.DataFrame) -> dict[str, str]:
    """segment_id -> the lines sung in it (a line belongs to the segment holding its midpoint)."""
    lines = sung_lines(demo_dir)
    references = {}
    for segment in segments.itertuples():
        inside = [
            text
            for start, end, text in lines.get(segment.track_id, [])
            if segment.start_s <= (start + end) / 2 < segment.end_s
        ]
        references[segment.segment_id] = normalise_text(" ".join(inside))
    return references


def transcribe_ground_truth(
    root: Path, manifest: Path, whisper_model: str = "tiny.en", temperatures: tuple[float, ...] = (0.0,)
) -> tuple[LiviConfig, ArtifactStore, list[str]]:
    """Ground-truth segments of a demo catalogue transcribed into ``root`` (a committed run is reused).

    Greedy only by default: the paper's fallback re-decodes most sung segments up to five more
    times (their compression ratio exceeds 1.35) and, with tiny.en, does not lower the WER.
    """
    from livi_tasks.stages.transcribe import transcribe_segments

    cfg = load_config(
        overrides={
            "store": {"root": str(root)},
            "transcribe": {"whisper_model": whisper_model, "temperatures": list(temperatures)},
        },
        environ={},
    )
    store = ArtifactStore(cfg.store.root)
    shards = ground_truth_segments(cfg, manifest, "demo", store)
    for shard in shards:
        transcribe_segments(cfg, "demo", shard, store)
    return cfg, store, shards
