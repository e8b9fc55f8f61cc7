"""The demo catalogue on disk: every planned track rendered and written, and the tables that
describe them, in a folder built beside its place and renamed in."""

from __future__ import annotations

import csv
import json
import os
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from livi_tasks.build.demo.plan import DemoParameters, DemoPlan, TrackSpec, plan_demo_catalogue
from livi_tasks.build.demo.render import SungLine, render_track_stems
from livi_tasks.build.synth.folder import write_catalogue_folder

# Bump when the generated audio or tables change, so that an existing catalogue is rebuilt.
GENERATOR_VERSION = 3  # 3: manifest.csv has a title column
OUTPUT_FILES = ("audio", "manifest.csv", "lyrics.json", "vocals.csv", "tracks.csv", "demo.json")
TRACK_COLUMNS = tuple(
    "track_id work_id kind voice speed word_gap pitch key tempo intro_s duration_s sample_rate channels format "
    "backing_seed backing_of lines_sung target_snr_db snr_db".split()
)


def make_demo_catalogue(out_dir: str | Path, **parameters: int | float) -> Path:
    """Write a demo catalogue into ``out_dir`` and return the path of its ``manifest.csv``;
    ``parameters`` are those of ``DemoParameters`` (works, versions, seed, instrumentals,
    hard_negatives, min_duration_s, max_duration_s).

    Layout: ``audio/<work_id>/<track_id>.(wav|flac)``, ``manifest.csv`` (track_id, work_id,
    path relative to the manifest, title: the work's first line), ``lyrics.json`` ({"works": {work_id: lines}, "tracks":
    {track_id: lines sung in order}}), ``vocals.csv`` (track_id, start_s, end_s per sung line),
    ``tracks.csv`` (per-track metadata) and ``demo.json`` (the parameters). The catalogue is built
    in a temporary sibling folder and renamed into place; an existing catalogue made with the same
    parameters is kept as is.
    """
    checked = DemoParameters(**parameters)

    def build(staging: Path) -> None:
        plan = plan_demo_catalogue(**asdict(checked))
        _write_tables(staging, plan, _render_all(plan.tracks, staging))

    description = {"generator_version": GENERATOR_VERSION, "parameters": asdict(checked)}
    return write_catalogue_folder(out_dir, "demo.json", description, OUTPUT_FILES, build)


def _render_and_write(spec: TrackSpec, root: Path) -> tuple[tuple[SungLine, ...], float]:
    stems = render_track_stems(spec)
    mixed = stems.mix()
    mixed *= 0.89 / np.abs(mixed).max()  # peak at -1 dBFS; the same gain keeps the stems' ratio
    path = root / spec.relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    data = mixed[:, 0] if mixed.shape[1] == 1 else mixed
    sf.write(path, data.astype(np.float32), spec.backing.sample_rate, "PCM_16", format=spec.audio_format.upper())
    return stems.lines, stems.vocal_to_backing_db()


def _render_all(tracks: tuple[TrackSpec, ...], root: Path) -> dict[str, tuple[tuple[SungLine, ...], float]]:
    # espeak-ng runs as subprocesses and numpy releases the GIL on large arrays, so threads suffice.
    results: dict[str, tuple[tuple[SungLine, ...], float]] = {}
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        futures = {pool.submit(_render_and_write, spec, root): spec.track_id for spec in tracks}
        for future in tqdm(as_completed(futures), total=len(futures), desc="demo tracks", unit="track"):
            results[futures[future]] = future.result()
    return results


def _title(plan: DemoPlan, spec: TrackSpec) -> str:
    """A song's title as catalogues name them: its first line (an instrumental: its work id)."""
    lines = plan.lyrics.get(spec.work_id)
    if spec.kind == "instrumental" or not lines:
        return spec.work_id.replace("-", " ").capitalize()
    return lines[0][:1].upper() + lines[0][1:]


def _write_tables(root: Path, plan: DemoPlan, sung: dict[str, tuple[tuple[SungLine, ...], float]]) -> None:
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["track_id", "work_id", "path", "title"])
        writer.writerows([spec.track_id, spec.work_id, spec.relpath, _title(plan, spec)] for spec in plan.tracks)
    with open(root / "vocals.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["track_id", "start_s", "end_s"])
        for spec in plan.tracks:
            lines = sung[spec.track_id][0]
            writer.writerows([spec.track_id, f"{line.start_s:.3f}", f"{line.end_s:.3f}"] for line in lines)
    with open(root / "tracks.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, TRACK_COLUMNS, restval="")
        writer.writeheader()
        for spec in plan.tracks:
            lines, snr_db = sung[spec.track_id]
            backing = spec.backing
            row = {
                "track_id": spec.track_id,
                "work_id": spec.work_id,
                "kind": spec.kind,
                "key": backing.key,
                "tempo": f"{backing.tempo_bpm:g}",
                "duration_s": f"{backing.duration_s:g}",
                "sample_rate": backing.sample_rate,
                "channels": backing.channels,
                "format": spec.audio_format,
                "backing_seed": backing.seed,
                "backing_of": spec.backing_of,
                "lines_sung": len(lines),
            }
            if spec.kind != "instrumental":
                row |= {
                    "voice": spec.voice,
                    "speed": spec.speed_wpm,
                    "word_gap": spec.word_gap,
                    "pitch": spec.pitch,
                    "intro_s": f"{spec.intro_s:g}",
                    "target_snr_db": f"{spec.target_snr_db:g}",
                    "snr_db": f"{snr_db:.2f}",
                }
            writer.writerow(row)
    sung_lines = {spec.track_id: [line.text for line in sung[spec.track_id][0]] for spec in plan.tracks}
    lyrics = {"works": plan.lyrics, "tracks": sung_lines}
    (root / "lyrics.json").write_text(json.dumps(lyrics, indent=2) + "\n")
