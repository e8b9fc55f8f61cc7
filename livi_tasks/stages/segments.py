"""Vocal segments: cut each kept track's vocal regions into Whisper-length (30 s) pieces.

The rule (paper, DESIGN.md section 1 item 2), with the choices the paper leaves open:

1. windows with vocalness >= threshold are merged into contiguous regions; window ``i`` covers
   ``[i * window_s, min((i + 1) * window_s, duration)]``, so a short tail window at the track
   end counts only for the audio it holds;
2. each region is padded symmetrically: each side gets ``min(max_pad_s, (segment_s - length) / 2)``
   seconds, never negative, so a region of 10 s or more just fills one segment and a region
   longer than ``segment_s`` gets no padding;
3. two regions whose padded extents overlap or touch are merged into one region, which is then
   padded as one (its padding shrinks as it grows). This way no audio appears in two segments,
   and two short phrases a few seconds apart share one segment instead of spilling a few
   seconds into a second, mostly silent one. Merging only ever shrinks a region's padded
   extent, so a region already passed stays disjoint from the ones after it;
4. padding is clipped to ``[0, duration]``; what is lost at a track edge is NOT moved to the
   other side ("padded symmetrically"): the last piece is zero-padded instead;
5. each padded region is cut into ``segment_s`` pieces from its start; the last piece, when
   shorter, is zero-padded to ``segment_s`` (``zero_pad_s`` records how much).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from tqdm import tqdm

from livi_tasks.core.audio import SAMPLE_RATE, AudioError, load_audio
from livi_tasks.core.config import LiviConfig
from livi_tasks.core.runner import write_failed_tracks
from livi_tasks.core.store import Artifact, ArtifactStore
from livi_tasks.stages.lineage import run_shard_stage

log = logging.getLogger(__name__)

STAGE = "segments"
# Below a microsecond a leftover is float rounding, not audio: it must not become a piece.
TIME_TOLERANCE_S = 1e-6
SEGMENT_COLUMNS = {
    "segment_id": "string",
    "track_id": "string",
    "work_id": "string",
    "index": "int64",
    "start_s": "float64",
    "end_s": "float64",
    "region_start_s": "float64",
    "region_end_s": "float64",
    "pad_before_s": "float64",
    "pad_after_s": "float64",
    "zero_pad_s": "float64",
}


@dataclass(frozen=True)
class SegmentPlan:
    """One piece of audio ``[start_s, end_s]`` cut from the padded vocal region
    ``[region_start_s - pad_before_s, region_end_s + pad_after_s]``, zero-padded by ``zero_pad_s``."""

    index: int
    start_s: float
    end_s: float
    region_start_s: float
    region_end_s: float
    pad_before_s: float
    pad_after_s: float
    zero_pad_s: float


def vocal_regions(
    window_vocalness: np.ndarray, window_s: float, duration_s: float, threshold: float
) -> list[tuple[float, float]]:
    """Contiguous runs of windows with vocalness >= threshold, as (start_s, end_s); NaN is not vocal."""
    if window_s <= 0:
        raise ValueError(f"window_s must be positive, got {window_s}")
    vocal = np.asarray(window_vocalness, dtype=np.float64) >= threshold
    regions: list[tuple[float, float]] = []
    previous_vocal = False
    for i, is_vocal in enumerate(vocal):
        start = i * window_s
        if start >= duration_s:
            break
        end = min((i + 1) * window_s, duration_s)
        if is_vocal and previous_vocal:
            regions[-1] = (regions[-1][0], end)
        elif is_vocal:
            regions.append((start, end))
        previous_vocal = bool(is_vocal)
    return regions


def side_padding(region_length_s: float, segment_s: float, max_pad_s: float) -> float:
    """Padding on each side of a region: up to ``max_pad_s``, never past one segment in total."""
    return max(0.0, min(max_pad_s, (segment_s - region_length_s) / 2))


def merge_padded_regions(
    regions: list[tuple[float, float]], segment_s: float, max_pad_s: float
) -> list[tuple[float, float]]:
    """Merge neighbouring regions whose padded extents overlap or touch (rule 3 of the module doc)."""
    merged: list[tuple[float, float]] = []
    for start, end in regions:
        if merged:
            last_start, last_end = merged[-1]
            last_reach = last_end + side_padding(last_end - last_start, segment_s, max_pad_s)
            if last_reach >= start - side_padding(end - start, segment_s, max_pad_s):
                merged[-1] = (last_start, end)
                continue
        merged.append((start, end))
    return merged


def plan_segments(
    window_vocalness: np.ndarray,
    window_s: float,
    duration_s: float,
    threshold: float,
    segment_s: float,
    max_pad_s: float,
) -> list[SegmentPlan]:
    """The track's segments, in time order, by the rule in the module docstring."""
    if segment_s <= 0 or max_pad_s < 0:
        raise ValueError(f"segment_s must be positive and max_pad_s non-negative, got {segment_s}, {max_pad_s}")
    regions = merge_padded_regions(
        vocal_regions(window_vocalness, window_s, duration_s, threshold), segment_s, max_pad_s
    )
    plans: list[SegmentPlan] = []
    for region_start, region_end in regions:
        pad = side_padding(region_end - region_start, segment_s, max_pad_s)
        padded_start = max(0.0, region_start - pad)
        padded_end = min(duration_s, region_end + pad)
        pieces = max(1, math.ceil((padded_end - padded_start - TIME_TOLERANCE_S) / segment_s))
        for piece in range(pieces):
            start = padded_start + piece * segment_s
            end = min(start + segment_s, padded_end)
            zero_pad = segment_s - (end - start)
            plans.append(
                SegmentPlan(
                    index=len(plans),
                    start_s=start,
                    end_s=end,
                    region_start_s=region_start,
                    region_end_s=region_end,
                    pad_before_s=region_start - padded_start,
                    pad_after_s=padded_end - region_end,
                    zero_pad_s=zero_pad if zero_pad > TIME_TOLERANCE_S else 0.0,
                )
            )
    return plans


def track_window_vocalness(track_windows: pd.DataFrame) -> tuple[np.ndarray, float]:
    """A track's vocalness by window index (missing windows are NaN, i.e. not vocal) and its window length.

    The window length is the longest window's: every window but a short tail has the full length,
    and a track shorter than one window has a single window covering all of it.
    """
    if track_windows.empty:
        return np.zeros(0), 1.0
    index = track_windows["window"].to_numpy(dtype=np.int64)
    window_s = float((track_windows["end_s"] - track_windows["start_s"]).max())
    starts = track_windows["start_s"].to_numpy(dtype=np.float64)
    if window_s <= 0 or not np.allclose(starts, index * window_s, atol=1e-3):
        raise ValueError(f"vocal windows are not consecutive windows of {window_s:g} s")
    vocalness = np.full(int(index.max()) + 1, np.nan)
    vocalness[index] = track_windows["vocalness"].to_numpy(dtype=np.float64)
    return vocalness, window_s


def cut_audio(audio: np.ndarray, plans: list[SegmentPlan], segment_samples: int) -> np.ndarray:
    """float16 rows of ``segment_samples``: each plan's audio from its start, zeros after."""
    rows = np.zeros((len(plans), segment_samples), dtype=np.float16)
    for row, plan in zip(rows, plans):
        first = round(plan.start_s * SAMPLE_RATE)
        last = min(round(plan.end_s * SAMPLE_RATE), len(audio), first + segment_samples)
        row[: max(0, last - first)] = audio[first:last]
    return rows


def vocal_clips(cfg: LiviConfig, audio: np.ndarray, window_vocalness: np.ndarray, window_s: float) -> np.ndarray:
    """A whole 16 kHz signal's vocal segments as float16 clips, by the stage's rule (none: shape (0, samples))."""
    plans = plan_segments(
        window_vocalness,
        window_s,
        len(audio) / SAMPLE_RATE,
        cfg.vocal.window_threshold,
        cfg.segments.segment_s,
        cfg.segments.max_pad_s,
    )
    return cut_audio(audio, plans, round(cfg.segments.segment_s * SAMPLE_RATE))


def _segment_shard(cfg: LiviConfig, vocal: Artifact, output: Artifact) -> dict:
    tracks = vocal.read_table("tracks")
    windows = vocal.read_table("windows")
    kept = tracks[tracks["status"] == "kept"].reset_index(drop=True)
    windows_by_track = {
        track_id: group.sort_values("window") for track_id, group in windows.groupby("track_id", sort=False)
    }
    segment_s, max_pad_s = cfg.segments.segment_s, cfg.segments.max_pad_s
    segment_samples = round(segment_s * SAMPLE_RATE)

    rows, audio_blocks, failed = [], [], []
    for track in tqdm(
        kept.itertuples(index=False), total=len(kept), desc=f"segments {output.key.shard}", unit="track", disable=None
    ):
        try:
            vocalness, window_s = track_window_vocalness(windows_by_track.get(track.track_id, windows.iloc[:0]))
        except ValueError as exc:
            log.warning("segments: %s: %s", track.track_id, exc)
            failed.append({"track_id": track.track_id, "reason": str(exc)})
            continue
        try:
            audio = load_audio(track.uri, max_duration_s=cfg.ingest.max_duration_s)
        except (AudioError, OSError) as exc:
            log.warning("segments: %s failed to decode (%s): %s", track.track_id, track.uri, exc)
            failed.append({"track_id": track.track_id, "reason": f"audio decode failed: {exc}"})
            continue
        plans = plan_segments(
            vocalness, window_s, len(audio) / SAMPLE_RATE, cfg.vocal.window_threshold, segment_s, max_pad_s
        )
        log.debug("segments: %s has %d segments", track.track_id, len(plans))
        rows.extend(
            {
                "segment_id": f"{track.track_id}#{plan.index:03d}",
                "track_id": track.track_id,
                "work_id": track.work_id,
                **asdict(plan),
            }
            for plan in plans
        )
        audio_blocks.append(cut_audio(audio, plans, segment_samples))

    table = pd.DataFrame(rows, columns=list(SEGMENT_COLUMNS)).astype(SEGMENT_COLUMNS)
    audio = np.concatenate(audio_blocks) if audio_blocks else np.zeros((0, segment_samples), dtype=np.float16)
    output.write_table("segments", table)
    output.write_array("audio", audio)
    return {"tracks": len(kept) - len(failed), "segments": len(table), "failed": write_failed_tracks(output, failed)}


def extract_vocal_segments(cfg: LiviConfig, catalogue: str, shard: str, store: ArtifactStore | None = None) -> dict:
    """The segments stage for one shard: summary (tracks, segments, failed) + key + skipped."""
    return run_shard_stage(
        cfg, store, catalogue, STAGE, shard, lambda vocal, output: _segment_shard(cfg, vocal, output)
    )
