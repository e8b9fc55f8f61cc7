"""Build the shipped default LIVI heads: one reproducible command from nothing to model files.

``build_default_heads`` (CLI ``livi build-default-heads``):

1. writes the domain-randomised training corpus (``synth.corpus``, family ``randomised``) in
   chunks, one catalogue per seed;
2. cuts each sung track into the pipeline's 30 s segments, planned from the generator's
   ground-truth vocal windows by the segments stage's own rule;
3. embeds each segment's sung lyrics (the lines it holds) with the fixed text model: the teacher
   is the true lyrics, which a synthetic corpus has and a real catalogue does not, so the student
   does not inherit ASR's mishearings (the pipeline's own retraining still distils from ASR);
4. caches the frozen Whisper encoder's frame states of every segment, per Whisper model;
5. trains the head (``train_encoder.fit_head``, default ``EncoderConfig``, seeded, works held
   out for early stopping) and writes ``head.pt``, ``head.json`` and ``card.json`` into
   ``livi_tasks/models/shipped/<whisper>/``.

Every step is cached per chunk under ``work_dir`` (atomic writes), so a killed build resumes.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from livi_tasks.build.demo import GENERATOR_VERSION as DEMO_GENERATOR_VERSION
from livi_tasks.build.demo import make_demo_catalogue
from livi_tasks.build.synth.corpus import GENERATOR_VERSION, make_corpus
from livi_tasks.core.atomic import write_atomic, write_bytes_atomic
from livi_tasks.core.audio import SAMPLE_RATE, load_audio
from livi_tasks.core.commit import code_commit
from livi_tasks.core.config import EncoderConfig, LiviConfig
from livi_tasks.core.vocal_labels import window_coverage
from livi_tasks.models.musicnn import WINDOW_SECONDS
from livi_tasks.models.registry import HEAD_CONFIG_FILE, HEAD_WEIGHTS_FILE, SHIPPED_DIR, head_digest
from livi_tasks.stages.segments import cut_audio, plan_segments

log = logging.getLogger(__name__)

DEFAULT_CHUNKS = ((100, 150), (101, 150), (102, 150), (21, 200, "demo"), (22, 300, "demo"))  # (seed, works[, family])
VERSIONS = 2
# The seed of the benchmarks' evaluation catalogues (every family): the heads never train on it.
EVALUATION_SEED = 1
MIN_LINE_SHARE = 0.5  # a line belongs to a segment when at least this share of it lies inside


@dataclass(frozen=True)
class Chunk:
    """One training catalogue: ``family`` randomised (``synth.corpus``) or demo (``demo``, the
    make-demo generator's sound with other seeds than the demo's own seed 0)."""

    seed: int
    works: int
    family: str = "randomised"

    @property
    def name(self) -> str:
        return f"{self.family}_seed{self.seed}"

    @property
    def instrumentals(self) -> int:  # not trained on: they calibrate the vocal filter
        return max(1, self.works // 10)

    @property
    def hard_negatives(self) -> int:
        return max(1, self.works // 30)


def sung_lines(corpus_dir: Path) -> dict[str, list[tuple[float, float, str]]]:
    """track_id -> [(start_s, end_s, text)] in sung order, from vocals.csv and lyrics.json."""
    texts = json.loads((corpus_dir / "lyrics.json").read_text())["tracks"]
    times = pd.read_csv(corpus_dir / "vocals.csv")
    lines: dict[str, list[tuple[float, float, str]]] = {}
    for track_id, group in times.groupby("track_id", sort=False):
        lines[track_id] = [
            (float(s), float(e), text) for (s, e), text in zip(group[["start_s", "end_s"]].to_numpy(), texts[track_id])
        ]
    return lines


def ground_truth_segments(
    corpus_dir: Path, segment_s: float = 30.0, max_pad_s: float = 10.0
) -> tuple[pd.DataFrame, np.ndarray]:
    """(segments with their sung text, float16 audio rows) of a corpus's sung tracks."""
    manifest = pd.read_csv(corpus_dir / "manifest.csv")
    lines = sung_lines(corpus_dir)
    rows, blocks = [], []
    for track in tqdm(
        manifest.itertuples(index=False),
        total=len(manifest),
        desc=f"segments {corpus_dir.name}",
        unit="track",
        disable=None,
    ):
        sung = lines.get(track.track_id, [])
        if not sung:
            continue  # instrumentals carry no lyrics to learn from
        audio = load_audio(str(corpus_dir / track.path))
        duration = len(audio) / SAMPLE_RATE
        starts = np.arange(0, duration, WINDOW_SECONDS)
        windows = pd.DataFrame(
            {"track_id": track.track_id, "start_s": starts, "end_s": np.minimum(starts + WINDOW_SECONDS, duration)}
        )
        regions = pd.DataFrame([(track.track_id, s, e) for s, e, _ in sung], columns=["track_id", "start_s", "end_s"])
        plans = plan_segments(window_coverage(windows, regions), WINDOW_SECONDS, duration, 0.5, segment_s, max_pad_s)
        kept = []
        for plan in plans:
            inside = [
                text for s, e, text in sung if min(e, plan.end_s) - max(s, plan.start_s) >= MIN_LINE_SHARE * (e - s)
            ]
            if inside:
                kept.append(plan)
                rows.append(
                    {
                        "segment_id": f"{track.track_id}#{plan.index:03d}",
                        "track_id": track.track_id,
                        "work_id": track.work_id,
                        "text": " ".join(inside),
                    }
                )
        blocks.append(cut_audio(audio, kept, round(segment_s * SAMPLE_RATE)))
    audio = np.concatenate(blocks) if blocks else np.zeros((0, round(segment_s * SAMPLE_RATE)), np.float16)
    return pd.DataFrame(rows, columns=["segment_id", "track_id", "work_id", "text"]), audio


def _save_array(path: Path, array: np.ndarray) -> None:
    """``np.save`` through ``write_atomic``, via a handle: given a path, np.save would append ``.npy``."""

    def write(temporary: Path) -> None:
        with open(temporary, "wb") as handle:
            np.save(handle, array)

    write_atomic(path, write)


def prepare_chunk(cfg: LiviConfig, chunk: Chunk, work_dir: Path, whisper_models: tuple[str, ...]) -> Path:
    """Corpus, segments, text targets and frame states of one chunk (each step skipped when done)."""
    if chunk.family == "demo" and chunk.seed == 0:
        raise ValueError("chunk: demo seed 0 is the catalogue `make demo` evaluates on; train on other seeds")
    if chunk.seed == EVALUATION_SEED:
        raise ValueError(f"chunk: seed {EVALUATION_SEED} makes the benchmarks' evaluation catalogues; train on others")
    shape = {
        "works": chunk.works,
        "versions": VERSIONS,
        "seed": chunk.seed,
        "instrumentals": chunk.instrumentals,
        "hard_negatives": chunk.hard_negatives,
    }
    if chunk.family == "demo":
        corpus = make_demo_catalogue(work_dir / "corpus" / chunk.name, **shape).parent
    else:
        corpus = make_corpus(work_dir / "corpus" / chunk.name, chunk.family, **shape).parent
    cache = work_dir / "cache" / chunk.name
    table_path, audio_path, text_path = cache / "segments.parquet", cache / "audio.npy", cache / "text.npy"
    if not (table_path.exists() and audio_path.exists()):
        table, audio = ground_truth_segments(corpus, cfg.segments.segment_s, cfg.segments.max_pad_s)
        _save_array(audio_path, audio)
        write_atomic(table_path, lambda temporary: table.to_parquet(temporary, index=False))
    table = pd.read_parquet(table_path)
    if not text_path.exists():
        from livi_tasks.stages.text_embed import embed_texts, load_text_model

        model = load_text_model(cfg.text.model)
        vectors = embed_texts(model, table["text"].tolist(), cfg.text.chunk_chars, cfg.text.batch_size)
        _save_array(text_path, vectors)
    for whisper_name in whisper_models:
        states_path = cache / f"states-{whisper_name}.npy"
        if states_path.exists():
            continue
        from livi_tasks.models.encoder import resolve_device
        from livi_tasks.models.whisper_weights import cached_whisper
        from livi_tasks.stages.features import encode_segments

        audio = np.load(audio_path, mmap_mode="r")
        model = cached_whisper(whisper_name, cfg.models_dir, resolve_device(cfg.encoder.device))
        _save_array(states_path, encode_segments(model, audio, description=f"states {chunk.name} {whisper_name}"))
    return cache


def train_default_head(
    cfg: LiviConfig, whisper_name: str, chunks: list[Chunk], work_dir: Path, out_root: Path = SHIPPED_DIR
) -> dict:
    """Train one Whisper model's head on the prepared chunks and write it with its card."""
    import torch

    from livi_tasks.models.encoder import LiviHead, head_to_bytes, resolve_device
    from livi_tasks.models.identity import whisper_identity
    from livi_tasks.stages.text_embed import load_text_model, text_model_info
    from livi_tasks.stages.train_encoder import FramePairs, _seed_everything, fit_head, split_by_work

    sources, rows, works, data = [], [], [], []
    for chunk in chunks:
        cache = work_dir / "cache" / chunk.name
        table = pd.read_parquet(cache / "segments.parquet")
        sources.append((np.load(cache / f"states-{whisper_name}.npy", mmap_mode="r"), np.load(cache / "text.npy")))
        rows.append(
            np.stack([np.full(len(table), len(sources) - 1), np.arange(len(table)), np.arange(len(table))], axis=1)
        )
        works += [f"{chunk.name}/{work}" for work in table["work_id"]]
        data.append(
            {
                **asdict(chunk),
                "segments": int(len(table)),
                "tracks": int(table["track_id"].nunique()),
                "works": chunk.works,
            }
        )
    pairs = FramePairs(sources, np.concatenate(rows), works)
    settings: EncoderConfig = cfg.encoder
    train_index, val_index = split_by_work(pairs.work_ids, settings.val_fraction, settings.seed)
    _seed_everything(settings.seed)
    text_model = text_model_info(cfg.text.model, load_text_model(cfg.text.model))
    width = sources[0][0].shape[-1]
    head = LiviHead.from_settings(width, text_model["dim"], settings)
    started = time.perf_counter()
    torch_threads = torch.get_num_threads()
    result = fit_head(
        head,
        pairs.subset(train_index),
        pairs.subset(val_index),
        settings,
        work_dir / "training" / whisper_name,
        device=resolve_device(settings.device),
    )
    seconds = time.perf_counter() - started
    weights, head_config = head_to_bytes(result.head)
    out_dir = out_root / whisper_name
    out_dir.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out_dir / HEAD_WEIGHTS_FILE, weights)
    write_bytes_atomic(out_dir / HEAD_CONFIG_FILE, head_config)
    best = min(
        (row for row in result.history if row["val_loss"] is not None), key=lambda row: row["val_loss"], default={}
    )
    card = {
        "model": f"livi-head-{whisper_name}",
        "whisper": whisper_identity(whisper_name, cfg.models_dir),
        "text_model": text_model,
        "head_sha256": head_digest(weights, head_config),
        "head_settings": json.loads(head_config),
        "encoder_settings": settings.model_dump(mode="json"),
        "teacher": (
            "ground-truth sung lyrics of each segment, embedded by the text model (chunked, mean-pooled, L2-normalised)"
        ),
        "data": {
            "generators": {
                "randomised": f"livi_tasks.build.synth.corpus (version {GENERATOR_VERSION})",
                "demo": f"livi_tasks.build.demo (version {DEMO_GENERATOR_VERSION})",
            },
            "chunks": data,
            "versions_per_work": VERSIONS,
            "segments": int(len(pairs)),
            "segmentation": "pipeline rule (30 s, up to 10 s padding) on ground-truth 3 s vocal windows",
            "train_pairs": int(len(train_index)),
            "validation_pairs": int(len(val_index)),
            "validation_works": int(len(set(pairs.work_ids[val_index]))),
        },
        "training": {
            "seed": settings.seed,
            "epochs_run": len(result.history),
            "best_epoch": result.best_epoch,
            "best_val_loss": best.get("val_loss"),
            "seconds": round(seconds, 1),
            "machine": {
                "cpus": os.cpu_count(),
                "torch_threads": torch_threads,
                "platform": platform.platform(),
                "processor": platform.machine(),
                "device": resolve_device(settings.device),
            },
            "torch": torch.__version__,
        },
        "code_commit": code_commit(),
        "command": f"livi build-default-heads --work-dir {work_dir} --whisper {whisper_name} "
        + " ".join(f"--chunk {chunk.seed}:{chunk.works}:{chunk.family}" for chunk in chunks),
        "evaluation": {},
    }
    write_bytes_atomic(out_dir / "card.json", (json.dumps(card, indent=2) + "\n").encode())
    log.info(
        "default head for %s: %d pairs, best epoch %d, %.0f s -> %s",
        whisper_name,
        len(pairs),
        result.best_epoch,
        seconds,
        out_dir,
    )
    return card


def build_default_heads(
    cfg: LiviConfig,
    work_dir: str | Path,
    whisper_models: tuple[str, ...] = ("base", "tiny.en"),
    chunks: tuple[tuple, ...] = DEFAULT_CHUNKS,
    out_root: Path = SHIPPED_DIR,
) -> dict[str, dict]:
    """The whole recipe; ``chunks`` are (seed, works[, family]); returns each Whisper model's card."""
    work_dir = Path(work_dir)
    plan = [Chunk(*spec) for spec in chunks]
    for chunk in plan:
        prepare_chunk(cfg, chunk, work_dir, whisper_models)
    return {name: train_default_head(cfg, name, plan, work_dir, out_root) for name in whisper_models}
