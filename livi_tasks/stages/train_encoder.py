"""Distil lyrics embeddings into the audio encoder's head.

Pairs are (frozen Whisper frame states of a segment, the text embedding of that segment's
transcript). The loss follows the paper: ``alpha * CosineEmbeddingLoss(a_i, t_i) + (1 - alpha)
* MSE(A A^T, T T^T)``: each audio embedding should point where its lyrics embedding points, and
the batch's audio similarity matrix should match the lyrics similarity matrix.

Training is reproducible and resumable: data order depends only on (seed, epoch), and every
epoch ends with an atomic checkpoint holding head, optimiser, scheduler and RNG states as
tensors; ``resume=True`` continues after the last complete epoch and gives the same weights as an
uninterrupted run (on the same device). Validation is held out by work, so no song is on both
sides. A trained model lives in the store under ``_models/encoder/all/<fingerprint>``; the
fingerprint covers the settings, the Whisper checkpoint, the text model and the training inputs,
so training twice on the same data is skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from livi_tasks.core.atomic import write_atomic, write_bytes_atomic
from livi_tasks.core.config import EncoderConfig, LiviConfig
from livi_tasks.core.runner import produce_artifact
from livi_tasks.core.store import Artifact, ArtifactMissing, ArtifactStore
from livi_tasks.models.encoder import LiviHead, head_to_bytes, resolve_device
from livi_tasks.models.identity import whisper_identity
from livi_tasks.models.registry import HEAD_CONFIG_FILE, HEAD_WEIGHTS_FILE, model_artifact
from livi_tasks.stages.features import cache_encoder_features
from livi_tasks.stages.lineage import artifact_for, shard_ids

CHECKPOINT_FILE = "checkpoint.pt"
MAX_WORKS_PER_TARGET = 3  # a teacher text in segments of more works than this is not a song's lyrics
METRICS_FILE = "metrics.jsonl"

log = logging.getLogger(__name__)


class TrainingInterrupted(RuntimeError):
    """Raised by a batch callback to stop training (tests use it to simulate a kill)."""


def distillation_loss(audio: torch.Tensor, text: torch.Tensor, alpha: float) -> torch.Tensor:
    """alpha * CosineEmbeddingLoss(a_i, t_i, target 1) + (1 - alpha) * MSE(A A^T, T T^T)."""
    target = torch.ones(audio.shape[0], device=audio.device)
    pairwise = F.cosine_embedding_loss(audio, text, target)
    structure = F.mse_loss(audio @ audio.T, text @ text.T)
    return alpha * pairwise + (1 - alpha) * structure


class FramePairs(torch.utils.data.Dataset):
    """(frame states float32, text embedding float32, hidden frames bool) triples drawn from several
    cached arrays.

    ``sources`` are (states, text_embeddings) or (states, text_embeddings, hidden) arrays (states
    may be memory-mapped float16; ``hidden`` (n, frames) marks frames the head must not pool, e.g.
    the frames a one-pass chunk holds no singing in; without it every frame is pooled). ``rows``
    maps a pair to (source, states row, text row). Works come along for the split, and tracks, when
    given, for batches of version pairs (``version_pairs``).
    """

    def __init__(
        self,
        sources: Sequence[tuple[np.ndarray, ...]],
        rows: np.ndarray,
        work_ids: Sequence[str],
        track_ids: Sequence[str] | None = None,
    ):
        self.sources = list(sources)
        self.rows = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
        self.work_ids = np.asarray(work_ids, dtype=object)
        self.track_ids = None if track_ids is None else np.asarray(track_ids, dtype=object)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        source, state_row, text_row = self.rows[index]
        states, texts, *hidden = self.sources[source]
        frames = torch.from_numpy(np.asarray(states[state_row], dtype=np.float32))
        mask = (
            torch.from_numpy(np.array(hidden[0][state_row], dtype=bool))
            if hidden
            else torch.zeros(len(frames), dtype=torch.bool)
        )
        return frames, torch.from_numpy(np.asarray(texts[text_row], dtype=np.float32)), mask

    def batch(self, indices: np.ndarray, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The pairs at ``indices`` stacked (states float32, text embeddings float32, hidden bool) on
        ``device``, the same values ``__getitem__`` gives. One gather per source, and the states
        cross to the device in their stored precision before the cast: read pair by pair, the host
        fed an H200 about 420 pairs a second, which made a GPU epoch only 2.4x a 2-core CPU's."""
        rows = self.rows[np.asarray(indices, dtype=np.int64)]
        dtype = np.result_type(*(source[0].dtype for source in self.sources))
        states = np.empty((len(rows), *self.sources[0][0].shape[1:]), dtype=dtype)
        hidden = np.zeros(states.shape[:2], dtype=bool)
        for number, (source_states, _, *source_hidden) in enumerate(self.sources):
            at = np.flatnonzero(rows[:, 0] == number)
            if not len(at):
                continue
            states[at] = source_states[rows[at, 1]]
            if source_hidden:
                hidden[at] = source_hidden[0][rows[at, 1]]
        texts = self._texts(rows)
        return (
            torch.from_numpy(states).to(device).float(),
            torch.from_numpy(texts).to(device),
            torch.from_numpy(hidden).to(device),
        )

    def targets(self) -> np.ndarray:
        """Every pair's text embedding, in order (float32)."""
        return self._texts(self.rows)

    def _texts(self, rows: np.ndarray) -> np.ndarray:
        texts = np.empty((len(rows), self.sources[0][1].shape[-1]), dtype=np.float32)
        for number, (_, source_texts, *_) in enumerate(self.sources):
            at = np.flatnonzero(rows[:, 0] == number)
            texts[at] = source_texts[rows[at, 2]]
        return texts

    def subset(self, indices: np.ndarray) -> "FramePairs":
        tracks = None if self.track_ids is None else self.track_ids[indices]
        return FramePairs(self.sources, self.rows[indices], self.work_ids[indices], tracks)


def version_pairs(pairs: FramePairs) -> list[np.ndarray]:
    """The pairs' indices in units: each chunk beside the chunk of another version (track) of its work
    whose target is closest, the closest matched first; a chunk left over (a work with one version,
    a longer version's extra chunks, no work) stands alone."""
    if pairs.track_ids is None:
        raise ValueError("encoder.pair_versions: these training pairs carry no track ids")
    targets = pairs.targets()
    units: list[np.ndarray] = []
    for work, members in pd.Series(np.arange(len(pairs))).groupby(pairs.work_ids.astype(str)):
        members = members.to_numpy()
        similarity = targets[members] @ targets[members].T
        tracks = pairs.track_ids[members]
        similarity[tracks[:, None] == tracks[None, :]] = -np.inf
        if not work:
            similarity[:] = -np.inf
        alone = np.ones(len(members), dtype=bool)
        while np.isfinite(similarity).any():
            i, j = np.unravel_index(np.argmax(similarity), similarity.shape)
            units.append(members[[i, j]])
            alone[[i, j]] = False
            similarity[[i, j], :] = -np.inf
            similarity[:, [i, j]] = -np.inf
        units += [members[[k]] for k in np.flatnonzero(alone)]
    return units


def paired_order(units: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """An epoch's order over ``version_pairs`` units: the lone chunks paired at random among
    themselves, every pair in random order, an odd one out last; so with an even batch size no
    pair is split between two batches."""
    pairs = [unit for unit in units if len(unit) == 2]
    alone = rng.permutation(np.concatenate([unit for unit in units if len(unit) == 1] or [np.zeros(0, np.int64)]))
    pairs += [alone[start : start + 2] for start in range(0, len(alone) - 1, 2)]
    odd_one_out = alone[len(alone) - len(alone) % 2 :]
    return np.concatenate([*(pairs[k] for k in rng.permutation(len(pairs))), odd_one_out]).astype(np.int64)


def split_by_work(work_ids: Sequence[str], val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation): whole works go to one side; an empty work id goes to train."""
    work_ids = np.asarray(work_ids, dtype=object)
    works = sorted({w for w in work_ids if w})
    rng = np.random.default_rng(seed)
    n_val = int(round(len(works) * val_fraction)) if val_fraction > 0 else 0
    n_val = min(n_val, max(len(works) - 1, 0))
    held_out = set(rng.permutation(np.array(works, dtype=object))[:n_val]) if n_val else set()
    is_val = np.array([w in held_out for w in work_ids], dtype=bool)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def _lr_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Linear warm-up to 1, then cosine decay to 0 at the last step."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    remaining = max(total_steps - warmup_steps, 1)
    return 0.5 * (1 + math.cos(math.pi * min(step - warmup_steps, remaining) / remaining))


def _batches(n: int, batch_size: int, order: np.ndarray) -> list[np.ndarray]:
    return [order[start : start + batch_size] for start in range(0, n, batch_size)]


def _rng_state() -> dict[str, torch.Tensor]:
    """Every RNG a training step may touch, as tensors so the checkpoint loads with weights_only."""
    _, keys, position, has_gauss, cached_gauss = np.random.get_state()
    version, python_state, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(keys.astype(np.int64)),
        "numpy_extra": torch.tensor([position, has_gauss], dtype=torch.int64),
        "numpy_gauss": torch.tensor([cached_gauss], dtype=torch.float64),
        "python": torch.tensor(python_state, dtype=torch.int64),
        "python_meta": torch.tensor([version, 0 if gauss_next is None else 1], dtype=torch.int64),
        "python_gauss": torch.tensor([0.0 if gauss_next is None else gauss_next], dtype=torch.float64),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    return state


def _restore_rng_state(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["torch"])
    position, has_gauss = (int(v) for v in state["numpy_extra"])
    np.random.set_state(
        ("MT19937", state["numpy_keys"].numpy().astype(np.uint32), position, has_gauss, float(state["numpy_gauss"][0]))
    )
    version, has_gauss_next = (int(v) for v in state["python_meta"])
    gauss_next = float(state["python_gauss"][0]) if has_gauss_next else None
    random.setstate((version, tuple(int(v) for v in state["python"]), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _write_metrics(out_dir: Path, history: list[dict]) -> None:
    """Rewrite metrics.jsonl from the checkpointed history, so a resumed run never logs an epoch twice."""
    text = "".join(json.dumps(row, sort_keys=True) + "\n" for row in history)
    write_bytes_atomic(out_dir / METRICS_FILE, text.encode())


@torch.no_grad()
def evaluate_loss(head: LiviHead, dataset: FramePairs, settings: EncoderConfig, device: str) -> float:
    """Mean distillation loss over fixed-order batches, head in eval mode."""
    head.eval()
    total, count = 0.0, 0
    for indices in _batches(len(dataset), settings.batch_size, np.arange(len(dataset))):
        states, texts, hidden = dataset.batch(indices, device)
        total += float(distillation_loss(head(states, hidden), texts, settings.alpha)) * len(indices)
        count += len(indices)
    return total / max(count, 1)


@dataclass
class FitResult:
    head: LiviHead
    history: list[dict]
    best_epoch: int
    best_loss: float  # the watched loss at best_epoch: validation, or training without a validation set
    stopped_early: bool


def fit_head(
    head: LiviHead,
    train_set: FramePairs,
    val_set: FramePairs | None,
    settings: EncoderConfig,
    out_dir: str | Path,
    resume: bool = False,
    device: str = "cpu",
    on_batch: Callable[[int, int], None] | None = None,
) -> FitResult:
    """Train ``head`` on (frame states, text embedding) pairs; returns the best head (by validation loss).

    ``on_batch(epoch, batch)`` is called before each optimiser step. With ``resume`` the last
    checkpoint in ``out_dir`` is continued; without it an existing checkpoint is overwritten.
    Early stopping watches the validation loss (the training loss when there is no validation set).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if len(train_set) == 0:
        raise ValueError("no training pairs")
    _seed_everything(settings.seed)
    head.to(device)
    optimiser = torch.optim.AdamW(
        head.parameters(), lr=settings.lr, weight_decay=settings.weight_decay, betas=settings.betas
    )
    units = version_pairs(train_set) if settings.pair_versions else None
    steps_per_epoch = math.ceil(len(train_set) / settings.batch_size)
    total_steps = steps_per_epoch * settings.epochs
    warmup_steps = int(settings.warmup_fraction * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: _lr_factor(step, total_steps, warmup_steps))

    history: list[dict] = []
    best_loss, best_epoch, stale_epochs, start_epoch = math.inf, -1, 0, 0
    best_state = {name: tensor.detach().clone() for name, tensor in head.state_dict().items()}
    checkpoint_path = out_dir / CHECKPOINT_FILE
    if resume and checkpoint_path.exists():
        # map_location cpu: the RNG states in it must stay on the CPU.
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        head.load_state_dict(checkpoint["head"])
        optimiser.load_state_dict(checkpoint["optimiser"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        history = checkpoint["history"]
        best_loss, best_epoch, stale_epochs = (
            checkpoint["best_loss"],
            checkpoint["best_epoch"],
            checkpoint["stale_epochs"],
        )
        best_state = checkpoint["best_head"]
        start_epoch = checkpoint["epoch"] + 1
        _restore_rng_state(checkpoint["rng"])
        log.info("resuming after epoch %d from %s", checkpoint["epoch"], checkpoint_path)
    elif resume:
        log.info("no checkpoint in %s: training from the start", out_dir)

    stopped_early = stale_epochs >= settings.patience
    for epoch in tqdm(
        range(start_epoch, settings.epochs), desc="epochs", unit="epoch", initial=start_epoch, total=settings.epochs
    ):
        if stopped_early:
            break
        head.train()
        rng = np.random.default_rng([settings.seed, epoch])
        order = paired_order(units, rng) if units is not None else rng.permutation(len(train_set))
        train_total = 0.0
        for batch_number, indices in enumerate(
            tqdm(_batches(len(train_set), settings.batch_size, order), desc=f"epoch {epoch}", unit="batch", leave=False)
        ):
            states, texts, hidden = train_set.batch(indices, device)
            loss = distillation_loss(head(states, hidden), texts, settings.alpha)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            if on_batch is not None:
                on_batch(epoch, batch_number)
            optimiser.step()
            scheduler.step()
            train_total += float(loss.detach()) * len(indices)
        train_loss = train_total / len(train_set)
        val_loss = evaluate_loss(head, val_set, settings, device) if val_set is not None and len(val_set) else None
        watched = train_loss if val_loss is None else val_loss
        if watched < best_loss:
            best_loss, best_epoch, stale_epochs = watched, epoch, 0
            best_state = {name: tensor.detach().clone() for name, tensor in head.state_dict().items()}
        else:
            stale_epochs += 1
        stopped_early = stale_epochs >= settings.patience
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "lr": scheduler.get_last_lr()[0],
            "best_epoch": best_epoch,
        }
        history.append(row)
        log.info(
            "epoch %d: train loss %.5f, validation loss %s, lr %.2e",
            epoch,
            train_loss,
            "n/a" if val_loss is None else f"{val_loss:.5f}",
            row["lr"],
        )
        checkpoint = {
            "epoch": epoch,
            "head": head.state_dict(),
            "optimiser": optimiser.state_dict(),
            "scheduler": scheduler.state_dict(),
            "history": history,
            "best_loss": best_loss,
            "best_epoch": best_epoch,
            "stale_epochs": stale_epochs,
            "best_head": best_state,
            "rng": _rng_state(),
        }
        write_atomic(checkpoint_path, lambda temporary: torch.save(checkpoint, temporary))
        _write_metrics(out_dir, history)
        if stopped_early:
            log.info(
                "early stop after epoch %d: no validation improvement for %d epochs (best epoch %d)",
                epoch,
                settings.patience,
                best_epoch,
            )
    head.load_state_dict(best_state)
    return FitResult(
        head=head.eval().cpu(),
        history=history,
        best_epoch=best_epoch,
        best_loss=best_loss,
        stopped_early=stopped_early,
    )


# --- pipeline data -------------------------------------------------------------------------------


@dataclass
class TrainingData:
    pairs: FramePairs
    text_model: dict
    whisper: dict
    inputs: list[dict]  # one per (catalogue, shard): the artifact keys that fed training


def _shard_pairs(
    text: Artifact, features: Artifact
) -> tuple[np.ndarray, np.ndarray, list[str], list[str], np.ndarray, np.ndarray]:
    text_segments = text.read_table("segments")
    feature_segments = features.read_table("segments")
    state_rows = pd.Series(np.arange(len(feature_segments)), index=feature_segments["segment_id"].to_numpy())
    present = text_segments["segment_id"].isin(state_rows.index).to_numpy()
    if not present.all():
        log.warning("%s: %d text segments have no cached states; skipped", text.url, int((~present).sum()))
    kept = text_segments[present]
    return (
        state_rows.loc[kept["segment_id"].to_numpy()].to_numpy(),
        np.flatnonzero(present),
        kept["work_id"].fillna("").astype(str).tolist(),
        kept["track_id"].astype(str).tolist(),
        features.read_array("states", mmap=True),
        text.read_array("segment_embeddings"),
    )


def collect_training_data(cfg: LiviConfig, catalogues: Sequence[str], store: ArtifactStore) -> TrainingData:
    """Join every shard's text embeddings with its cached frame states (computing missing states)."""
    whisper = whisper_identity(cfg.transcribe.whisper_model, cfg.models_dir)
    sources, rows, work_ids, track_ids, inputs = [], [], [], [], []
    text_model: dict | None = None
    for catalogue in catalogues:
        for shard in shard_ids(store, catalogue):
            try:
                text = artifact_for(cfg, store, catalogue, "text", shard).require()
            except ArtifactMissing as exc:
                raise ArtifactMissing(f"{exc}; training needs the text stage of {catalogue}/{shard}") from None
            model = text.read_json("model")
            model = {"name": model["name"], "dim": int(model["dim"])}
            if text_model is None:
                text_model = model
            elif model != text_model:
                raise ValueError(
                    f"{catalogue}/{shard} was embedded with {model}, other shards with {text_model}: "
                    "refusing to mix text models"
                )
            features = artifact_for(cfg, store, catalogue, "features", shard)
            if not features.is_complete():
                log.info("features %s/%s missing: computing them", catalogue, shard)
                cache_encoder_features(cfg, catalogue, shard, store)
            state_rows, text_rows, works, tracks, states, texts = _shard_pairs(text, features.require())
            sources.append((states, texts))
            rows.append(np.stack([np.full(len(state_rows), len(sources) - 1), state_rows, text_rows], axis=1))
            work_ids.extend(works)
            track_ids.extend(f"{catalogue}/{track}" for track in tracks)
            inputs.append(
                {
                    "catalogue": catalogue,
                    "shard": shard,
                    "text": text.key.fingerprint,
                    "features": features.key.fingerprint,
                }
            )
    if text_model is None:
        raise ValueError("no catalogues given")
    pairs = FramePairs(sources, np.concatenate(rows) if rows else np.zeros((0, 3), np.int64), work_ids, track_ids)
    return TrainingData(pairs=without_shared_targets(pairs), text_model=text_model, whisper=whisper, inputs=inputs)


def without_shared_targets(pairs: FramePairs, max_works: int = MAX_WORKS_PER_TARGET) -> FramePairs:
    """The pairs less those whose teacher text is the same as in segments of more than ``max_works``
    works: a transcript sung in unrelated songs is a stock line Whisper invents ("Please don't
    forget to subscribe to my channel."), and a student taught it learns to map music to it. A
    segment of an unlabelled track counts as a work of its own."""
    keys = []
    for source, _, text_row in pairs.rows:
        vector = np.asarray(pairs.sources[source][1][text_row], np.float32)
        keys.append(hashlib.sha256(np.round(vector, 5).tobytes()).hexdigest())
    owners = [work or f"segment {index}" for index, work in enumerate(pairs.work_ids)]
    works_of = pd.DataFrame({"key": keys, "owner": owners}).groupby("key")["owner"].nunique()
    shared = np.array([works_of[key] > max_works for key in keys], dtype=bool)
    if shared.any():
        log.warning(
            "training: %d segments dropped, their transcript shared by more than %d works (a stock line)",
            int(shared.sum()),
            max_works,
        )
    return pairs.subset(np.flatnonzero(~shared))


def model_fingerprint(settings: EncoderConfig, whisper: dict, text_model: dict, inputs: list[dict]) -> str:
    """Identity of a trained model. The device and the inference precision are left out: they change
    where training runs and how the model is later run, not what it trains."""
    payload = {
        "encoder": settings.model_dump(mode="json", exclude={"device", "inference_precision"}),
        "whisper": whisper["id"],
        "text_model": text_model,
        "inputs": sorted(inputs, key=lambda item: (item["catalogue"], item["shard"])),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def train(
    cfg: LiviConfig,
    catalogues: list[str],
    store: ArtifactStore | None = None,
    resume: bool = False,
    out_dir: str | Path | None = None,
) -> dict:
    """Train the head on the catalogues' segments; returns the summary with the model fingerprint.

    ``out_dir`` holds the per-epoch checkpoints and metrics.jsonl (default: a ``training`` folder
    under the model's fingerprint in ``models_dir``, so a killed run resumes from the same place).
    """
    store = store or ArtifactStore(cfg.store.root)
    data = collect_training_data(cfg, catalogues, store)
    fingerprint = model_fingerprint(cfg.encoder, data.whisper, data.text_model, data.inputs)
    output = model_artifact(store, fingerprint)
    out_dir = Path(out_dir) if out_dir else Path(cfg.models_dir) / "encoder-training" / fingerprint
    return produce_artifact(output, lambda target: _train_head(cfg, data, catalogues, resume, out_dir, target))


def _train_head(
    cfg: LiviConfig, data: TrainingData, catalogues: list[str], resume: bool, out_dir: Path, output: Artifact
) -> dict:
    fingerprint = output.key.fingerprint
    train_index, val_index = split_by_work(data.pairs.work_ids, cfg.encoder.val_fraction, cfg.encoder.seed)
    log.info(
        "training encoder head %s on %d pairs (%d train, %d validation; %d works held out) from %s",
        fingerprint,
        len(data.pairs),
        len(train_index),
        len(val_index),
        len(set(data.pairs.work_ids[val_index])),
        list(catalogues),
    )
    states, *_ = data.pairs[0]
    _seed_everything(cfg.encoder.seed)  # the head's initial weights are part of the seeded run
    head = LiviHead.from_settings(states.shape[-1], data.text_model["dim"], cfg.encoder)
    result = fit_head(
        head,
        data.pairs.subset(train_index),
        data.pairs.subset(val_index) if len(val_index) else None,
        cfg.encoder,
        out_dir,
        resume=resume,
        device=resolve_device(cfg.encoder.device),
    )
    weights, head_config = head_to_bytes(result.head)
    output.write_bytes(HEAD_WEIGHTS_FILE, weights)
    output.write_bytes(HEAD_CONFIG_FILE, head_config)
    output.write_json(
        "model",
        {
            "fingerprint": fingerprint,
            "encoder": cfg.encoder.model_dump(mode="json"),
            "text_model": data.text_model,
            "whisper": data.whisper,
            "inputs": data.inputs,
        },
    )
    output.write_bytes(METRICS_FILE, "".join(json.dumps(row, sort_keys=True) + "\n" for row in result.history).encode())
    final = result.history[-1] if result.history else {}
    summary = {
        "pairs": len(data.pairs),
        "train_pairs": int(len(train_index)),
        "val_pairs": int(len(val_index)),
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "final_train_loss": final.get("train_loss"),
        "best_val_loss": min((row["val_loss"] for row in result.history if row["val_loss"] is not None), default=None),
        "text_model": data.text_model,
        "whisper": data.whisper,
        "history": result.history,
    }
    log.info("encoder model %s saved to %s", fingerprint, output.url)
    return summary
