"""Build the shipped default LIVI heads: one reproducible command from nothing to model files.

``build_default_heads`` (CLI ``livi build-default-heads``):

1. writes the training corpus in chunks, one catalogue per (family, seed): the synthetic song
   families of ``build.synth`` and the demo generator's sound with other seeds than the demo's;
2. cuts every sung track into consecutive 30 s chunks, runs the frozen Whisper encoder on each
   once and lets the shipped vocal probe mark the sung frames: exactly what the embed stage and
   ``livi query`` do (``build.chunk_data``); a chunk with at least 2 s of singing and a sung line
   mostly inside it becomes a training example whose unsung frames are hidden from the head;
3. embeds each chunk's sung lines with the fixed text model: the teacher is the true lyrics, which
   a synthetic corpus has and a real catalogue does not, so the student does not inherit ASR's
   mishearings (the pipeline's own retraining still distils from ASR); with ``teacher`` parts
   naming Whisper models, the target is the normalised mean of the lyrics and those models'
   shipped heads' answers for the same chunk (tiny.en learns from lyrics and the base head);
4. trains the head (``train_encoder.fit_head``, the config's encoder section, seeded, whole works
   held out for early stopping) and writes ``head.pt``, ``head.json`` and ``card.json`` into
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
from typing import Callable

import numpy as np
import pandas as pd

from livi_tasks.build.chunk_data import ChunkArrays, chunk_dataset, encoder_states_of, read_chunk_dataset, save_npy
from livi_tasks.build.demo import GENERATOR_VERSION as DEMO_GENERATOR_VERSION
from livi_tasks.build.demo import make_demo_catalogue
from livi_tasks.build.synth.corpus import FAMILIES, GENERATOR_VERSION, make_corpus
from livi_tasks.build.synth.lyrics import EVALUATION_FAMILIES
from livi_tasks.build.synth.songs import SONG_FAMILIES
from livi_tasks.core.atomic import write_bytes_atomic
from livi_tasks.core.commit import code_commit
from livi_tasks.core.config import EncoderConfig, LiviConfig
from livi_tasks.models.registry import HEAD_CONFIG_FILE, HEAD_WEIGHTS_FILE, SHIPPED_DIR, head_digest, shipped_head

log = logging.getLogger(__name__)

DEFAULT_CHUNKS = (  # (seed, works[, family])
    (100, 150),
    (101, 150),
    (102, 150),
    (103, 150, "piper"),
    (104, 150, "notes"),
    (105, 150, "piper_notes"),
    (21, 200, "demo"),
    (22, 300, "demo"),
)
# Every family a chunk may be: the synthetic families no evaluation uses, and the demo's sound.
TRAINING_FAMILIES = tuple(name for name in (*FAMILIES, *SONG_FAMILIES) if name not in EVALUATION_FAMILIES) + ("demo",)
DEFAULT_SEEDS = (0, 1)  # training seeds tried; the lowest validation loss ships
VERSIONS = 2
# The seed of the benchmarks' evaluation catalogues (every family): the heads never train on it.
EVALUATION_SEED = 1
TEXT_FILE = "text.npy"  # the teacher: one text embedding per training chunk
LYRICS = "lyrics"  # the teacher part that is each chunk's sung text
TEACHER_BATCH = 32


@dataclass(frozen=True)
class Chunk:
    """One training catalogue: ``family`` one of ``TRAINING_FAMILIES`` (demo: the make-demo generator's
    sound with other seeds than the demo's own seed 0)."""

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


def make_chunk_corpus(chunk: Chunk, work_dir: Path) -> Path:
    """The chunk's catalogue folder (made once; refused on a seed the evaluations use)."""
    if chunk.family not in TRAINING_FAMILIES:
        kind = "evaluation-only" if chunk.family in EVALUATION_FAMILIES else "unknown"
        raise ValueError(f"chunk: family {chunk.family} is {kind}; train on {', '.join(TRAINING_FAMILIES)}")
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
        return make_demo_catalogue(work_dir / "corpus" / chunk.name, **shape).parent
    return make_corpus(work_dir / "corpus" / chunk.name, chunk.family, **shape).parent


def chunk_cache(work_dir: Path, chunk: Chunk, whisper_name: str, copy: int = 0, all_layers: bool = False) -> Path:
    """Where a chunk's training examples are cached; ``copy`` k > 0: its k-th augmented copy;
    ``all_layers``: with every encoder block's output (an ablation: 6x the disk for base)."""
    name = whisper_name + (f"-augment{copy}" if copy else "") + ("-layers" if all_layers else "")
    return work_dir / "cache" / chunk.name / name


def prepare_chunk(
    cfg: LiviConfig,
    chunk: Chunk,
    work_dir: Path,
    whisper_models: tuple[str, ...],
    precision: str = "fp32",
    augmented_copies: int = 0,
    all_layers: bool = False,
) -> dict[str, ChunkArrays]:
    """Corpus, training chunks and their text targets of one chunk per Whisper model, and
    ``augmented_copies`` augmented copies of them (each step skipped when done); frame states
    computed at ``precision``."""
    from livi_tasks.models.identity import whisper_identity
    from livi_tasks.models.vocal_probe import load_probe
    from livi_tasks.stages.text_embed import embed_texts, load_text_model

    corpus = make_chunk_corpus(chunk, work_dir)
    prepared = {}
    for whisper_name in whisper_models:
        probe = load_probe(whisper_name, whisper_identity(whisper_name, cfg.models_dir)["id"])
        states = encoder_states_of(whisper_name, cfg.models_dir, precision, all_layers=all_layers)
        for copy in range(augmented_copies + 1):
            folder = chunk_cache(work_dir, chunk, whisper_name, copy, all_layers)
            label = f"{chunk.name} {whisper_name}" + (f" augmented {copy}" if copy else "")
            data = chunk_dataset(corpus, folder, states, probe, label, augment_seed=copy or None)
            if not (folder / TEXT_FILE).exists():
                model = load_text_model(cfg.text.model)
                vectors = embed_texts(model, data.table["text"].tolist(), cfg.text.chunk_chars, cfg.text.batch_size)
                save_npy(folder / TEXT_FILE, vectors)
            if copy == 0:
                prepared[whisper_name] = data
    return prepared


def training_pairs(
    work_dir: Path,
    chunks: list[Chunk],
    whisper_name: str,
    keep: Callable[[Chunk, pd.DataFrame], np.ndarray] | None = None,
    augmented_copies: int = 0,
    all_layers: bool = False,
):
    """(FramePairs over the prepared chunks and their first ``augmented_copies`` augmented copies,
    per-chunk statistics). ``keep(chunk, table)`` selects rows of a chunk's table (track_id,
    work_id, ...), for learning curves; default all. A copy's examples keep their work, so the
    split holds every copy of a work on one side."""
    from livi_tasks.stages.train_encoder import FramePairs

    sources, rows, work_ids, track_ids, stats = [], [], [], [], []
    for chunk, copy in ((chunk, copy) for chunk in chunks for copy in range(augmented_copies + 1)):
        folder = chunk_cache(work_dir, chunk, whisper_name, copy, all_layers)
        data = read_chunk_dataset(folder, ("hidden",))
        selected = np.flatnonzero(keep(chunk, data.table)) if keep else np.arange(len(data.table))
        names = (chunk.name + "/" + data.table["work_id"].astype(str)).to_numpy()[selected]
        sources.append((data.states, np.load(folder / TEXT_FILE, mmap_mode="r"), data.extra["hidden"]))
        rows.append(np.stack([np.full(len(selected), len(sources) - 1), selected, selected], axis=1))
        work_ids += names.tolist()
        track_ids += (chunk.name + "/" + data.table["track_id"].astype(str)).to_numpy()[selected].tolist()
        stats.append(
            {
                **asdict(chunk),
                **({"augmented_copy": copy} if copy else {}),
                "examples": int(len(selected)),
                "tracks": int(data.table["track_id"].iloc[selected].nunique()),
                "works_used": int(len(set(names))),
            }
        )
    return FramePairs(sources, np.concatenate(rows), work_ids, track_ids), stats


def teacher_models(teacher: tuple[str, ...]) -> tuple[str, ...]:
    """The Whisper models whose heads a teacher reads (every part but the lyrics)."""
    return tuple(part for part in teacher if part != LYRICS)


def head_answers(head, data: ChunkArrays) -> np.ndarray:
    """The head's unit vector for every training chunk of ``data``, its unsung frames hidden as in training."""
    import torch

    head = head.eval()
    answers = []
    with torch.no_grad():
        for start in range(0, len(data.table), TEACHER_BATCH):
            rows = slice(start, start + TEACHER_BATCH)
            frames = torch.from_numpy(np.asarray(data.states[rows], dtype=np.float32))
            hidden = torch.from_numpy(np.array(data.extra["hidden"][rows], dtype=bool))
            answers.append(head(frames, hidden).numpy())
    return np.concatenate(answers)


def teach(
    pairs, work_dir: Path, chunks: list[Chunk], student: str, teacher: tuple[str, ...], heads_root: Path
) -> tuple[int, dict[str, str]]:
    """Replace the targets of ``training_pairs`` (no augmented copies) by ``teacher``'s: the
    normalised mean of its parts, each the lyrics embedding or the answer of a Whisper model's head
    in ``heads_root`` for the same chunk (its segment id in that model's cache). A chunk another
    model's probe did not keep has no answer from it and averages the parts it has (the lyrics
    when it has none); returns how many such (chunk, model) answers were missing, and the hash of
    each teacher head read."""
    from livi_tasks.models.encoder import head_from_bytes

    found = {name: shipped_head(name, heads_root) for name in teacher_models(teacher)}
    heads = {name: head_from_bytes(weights, config) for name, (weights, config, _) in found.items()}
    missing = 0
    for index, chunk in enumerate(chunks):
        states, lyrics, hidden = pairs.sources[index]
        segments = read_chunk_dataset(chunk_cache(work_dir, chunk, student), ()).table["segment_id"]
        total = np.zeros(lyrics.shape, np.float32)
        if LYRICS in teacher:
            total += lyrics
        for name, head in heads.items():
            data = read_chunk_dataset(chunk_cache(work_dir, chunk, name), ("hidden",))
            if data.table.empty:
                missing += len(segments)
                continue
            answer = pd.DataFrame(head_answers(head, data), index=data.table["segment_id"]).reindex(segments)
            missing += int(answer.isna().any(axis=1).sum())
            total += answer.fillna(0.0).to_numpy(np.float32)
        unanswered = ~total.any(axis=1)
        total[unanswered] = lyrics[unanswered]
        pairs.sources[index] = (states, total / np.linalg.norm(total, axis=1, keepdims=True), hidden)
    return missing, {name: card["head_sha256"] for name, (_, _, card) in found.items()}


def training_folder(work_dir: Path, whisper_name: str, teacher: tuple[str, ...] = (LYRICS,)) -> Path:
    """Where a build's training runs go, one folder per seed: a taught build's apart from the
    lyrics-taught runs, so neither overwrites the other."""
    taught = teacher_models(teacher)
    return work_dir / "training" / (whisper_name + (f"-teacher-{'+'.join(teacher)}" if taught else ""))


def train_head(cfg: LiviConfig, pairs, out_dir: Path, init_seed: int | None = None):
    """Fit a fresh head on ``pairs`` (whole works held out for early stopping, drawn with the
    config's seed): (FitResult, train pairs, validation pairs, seconds, torch threads).
    ``init_seed`` (default the config's seed) seeds the head's initialisation, dropout and batch
    order only, so heads of several seeds are compared on the same held-out works."""
    import torch

    from livi_tasks.models.encoder import LiviHead, resolve_device
    from livi_tasks.stages.text_embed import load_text_model, text_model_info
    from livi_tasks.stages.train_encoder import _seed_everything, fit_head, split_by_work

    train_index, val_index = split_by_work(pairs.work_ids, cfg.encoder.val_fraction, cfg.encoder.seed)
    seed = cfg.encoder.seed if init_seed is None else init_seed
    settings: EncoderConfig = cfg.encoder.model_copy(update={"seed": seed})
    _seed_everything(settings.seed)
    text_model = text_model_info(cfg.text.model, load_text_model(cfg.text.model))
    states = pairs.sources[0][0]
    layers = states.shape[1] if states.ndim == 4 else 1  # every encoder block's output: a learned mix
    head = LiviHead.from_settings(states.shape[-1], text_model["dim"], settings, layers)
    started = time.perf_counter()
    result = fit_head(
        head,
        pairs.subset(train_index),
        pairs.subset(val_index),
        settings,
        out_dir,
        device=resolve_device(settings.device),
    )
    return result, train_index, val_index, time.perf_counter() - started, torch.get_num_threads()


def encoder_overrides(settings: EncoderConfig) -> str:
    """``--set encoder.FIELD=VALUE `` for each training setting off its default, so a card's command
    rebuilds its head whatever the defaults become (where the model runs is left out)."""
    defaults = EncoderConfig().model_dump(mode="json")
    return "".join(
        f"--set encoder.{field}={json.dumps(value)} "
        for field, value in settings.model_dump(mode="json", exclude={"device", "inference_precision"}).items()
        if value != defaults[field]
    )


def train_default_head(
    cfg: LiviConfig,
    whisper_name: str,
    chunks: list[Chunk],
    work_dir: Path,
    out_root: Path = SHIPPED_DIR,
    precision: str = "fp32",
    seeds: tuple[int, ...] = (),
    ensemble: bool = False,
    teacher: tuple[str, ...] = (LYRICS,),
    commit: str | None = None,
) -> dict:
    """Train one Whisper model's head per seed in ``seeds`` (default the config's seed) on the
    prepared chunks towards ``teacher``'s targets (``teach``; Whisper models' heads read from
    ``out_root``) and write the one with the lowest validation loss, or with ``ensemble`` all of
    them as one ``HeadEnsemble``, with its card: the evaluation catalogues never choose between seeds.
    ``commit``: the code version for the card (default: the checkout's, read before any file is written)."""
    import torch

    from livi_tasks.models.encoder import HeadEnsemble, head_to_bytes, resolve_device
    from livi_tasks.models.identity import whisper_identity
    from livi_tasks.stages.text_embed import load_text_model, text_model_info

    # Read before the head is written: the shipped files are tracked, so afterwards the checkout is dirty.
    commit = commit or code_commit()
    pairs, stats = training_pairs(work_dir, chunks, whisper_name)
    teachers = teacher_models(teacher)
    # Targets are set before any head is written: a teacher is the head shipped before this build.
    missing_answers, teacher_hashes = (
        teach(pairs, work_dir, chunks, whisper_name, teacher, out_root) if teachers else (0, {})
    )
    settings: EncoderConfig = cfg.encoder
    runs = training_folder(work_dir, whisper_name, teacher)
    trained = {seed: train_head(cfg, pairs, runs / f"seed{seed}", seed) for seed in seeds or (settings.seed,)}
    best_loss = {seed: run[0].best_loss for seed, run in trained.items()}
    chosen = min(best_loss, key=best_loss.get)
    _, train_index, val_index, _, torch_threads = trained[chosen]  # every seed has the same split
    shipped_runs = trained if ensemble else {chosen: trained[chosen]}
    shipped = HeadEnsemble([run[0].head for run in trained.values()]) if ensemble else trained[chosen][0].head

    def of_shipped(value: Callable) -> object:
        """A run's figure: the shipped seed's, or every seed's by seed for an ensemble."""
        figures = {str(seed): value(run) for seed, run in shipped_runs.items()}
        return figures if ensemble else figures[str(chosen)]

    # Half-precision storage halves the repository's weights (an ensemble of base heads is 6 MB,
    # not 12) and moved no evaluation MAP by more than 0.004 (BENCHMARKS.md, "Eighth session").
    weights, head_config = head_to_bytes(shipped, torch.float16)
    out_dir = out_root / whisper_name
    out_dir.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out_dir / HEAD_WEIGHTS_FILE, weights)
    write_bytes_atomic(out_dir / HEAD_CONFIG_FILE, head_config)
    card = {
        "model": f"livi-head-{whisper_name}",
        "whisper": whisper_identity(whisper_name, cfg.models_dir),
        "text_model": text_model_info(cfg.text.model, load_text_model(cfg.text.model)),
        "head_sha256": head_digest(weights, head_config),
        "head_settings": json.loads(head_config),
        "weights_stored_as": "float16",
        "encoder_settings": settings.model_dump(mode="json"),
        "teacher": (
            "ground-truth sung lyrics of each chunk (the lines mostly inside it), embedded by the text model "
            "(chunked, mean-pooled, L2-normalised)"
            if not teachers
            else "the L2-normalised mean of "
            + " and ".join(
                "the chunk's ground-truth sung lyrics embedded by the text model"
                if part == LYRICS
                else f"the shipped {part} head's answer for the same 30 s chunk"
                for part in teacher
            )
        ),
        **(
            {
                "teacher_heads": {name: {"head_sha256": digest} for name, digest in teacher_hashes.items()},
                "teacher_answers_missing": missing_answers,
            }
            if teachers
            else {}
        ),
        "data": {
            "generators": {
                "synth": f"livi_tasks.build.synth.corpus (version {GENERATOR_VERSION})",
                "demo": f"livi_tasks.build.demo (version {DEMO_GENERATOR_VERSION})",
            },
            "chunks": stats,
            "versions_per_work": VERSIONS,
            "examples": int(len(pairs)),
            "examples_are": (
                "consecutive 30 s chunks of each sung track with >= 2 s of singing, as inference cuts them; the "
                "shipped vocal probe's unsung frames hidden from the pooling, as at inference"
            ),
            "frame_states_precision": precision,
            "train_pairs": int(len(train_index)),
            "validation_pairs": int(len(val_index)),
            "validation_works": int(len(set(pairs.work_ids[val_index]))),
        },
        "training": {
            "seed": sorted(trained) if ensemble else chosen,
            "seed_selection": {
                "rule": (
                    "every seed's head, as one ensemble (the mean of their unit outputs, renormalised)"
                    if ensemble
                    else "lowest validation loss"
                )
                + "; every seed holds out the same works (split seed below)",
                "validation_split_seed": settings.seed,
                "best_val_loss_by_seed": {str(seed): loss for seed, loss in best_loss.items()},
            },
            "epochs_run": of_shipped(lambda run: len(run[0].history)),
            "best_epoch": of_shipped(lambda run: run[0].best_epoch),
            "best_val_loss": of_shipped(lambda run: run[0].best_loss),
            "seconds": round(sum(run[3] for run in shipped_runs.values()), 1),
            "seconds_all_seeds": round(sum(run[3] for run in trained.values()), 1),
            "machine": {
                "cpus": os.cpu_count(),
                "torch_threads": torch_threads,
                "platform": platform.platform(),
                "processor": platform.machine(),
                "device": resolve_device(settings.device),
            },
            "torch": torch.__version__,
        },
        "code_commit": commit,
        "command": f"livi {encoder_overrides(settings)}build-default-heads --work-dir {work_dir} "
        f"--whisper {whisper_name} --precision {precision} "
        + " ".join(f"--chunk {chunk.seed}:{chunk.works}:{chunk.family}" for chunk in chunks)
        + "".join(f" --seed {seed}" for seed in seeds)
        + (" --ensemble" if ensemble else "")
        + (f" --teacher {'+'.join(teacher)}" if teachers else ""),
        "evaluation": {},
    }
    write_bytes_atomic(out_dir / "card.json", (json.dumps(card, indent=2) + "\n").encode())
    log.info(
        "default head for %s: %d pairs, seed %s of %s (validation loss %s), best epoch %s, %.0f s -> %s",
        whisper_name,
        len(pairs),
        card["training"]["seed"],
        sorted(trained),
        best_loss,
        card["training"]["best_epoch"],
        card["training"]["seconds"],
        out_dir,
    )
    return card


def build_default_heads(
    cfg: LiviConfig,
    work_dir: str | Path,
    whisper_models: tuple[str, ...] = ("base", "tiny.en"),
    chunks: tuple[tuple, ...] = DEFAULT_CHUNKS,
    out_root: Path = SHIPPED_DIR,
    precision: str = "fp32",
    seeds: tuple[int, ...] = (),
    ensemble: bool = False,
    teacher: tuple[str, ...] = (LYRICS,),
) -> dict[str, dict]:
    """The whole recipe; ``chunks`` are (seed, works[, family]); frame states computed at
    ``precision`` (bf16 is 1.7x faster on CPUs with bf16 arithmetic, cosine 0.9997 to fp32);
    ``seeds``: training seeds tried, the lowest validation loss ships (default the config's), or
    with ``ensemble`` all of them as one; ``teacher``: the lyrics and/or Whisper models whose heads
    in ``out_root`` give the targets (their chunks are prepared too); returns each model's card."""
    work_dir = Path(work_dir)
    commit = code_commit()  # before the first head is written (see train_default_head)
    plan = [Chunk(*spec) for spec in chunks]
    for chunk in plan:
        prepare_chunk(cfg, chunk, work_dir, tuple(dict.fromkeys(whisper_models + teacher_models(teacher))), precision)
    return {
        name: train_default_head(cfg, name, plan, work_dir, out_root, precision, seeds, ensemble, teacher, commit)
        for name in whisper_models
    }
