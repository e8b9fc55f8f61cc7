"""Build the shipped vocal probe (``livi build-vocal-probe``): a randomised-family corpus (and, on
request, a song-family one with lead-instrument instrumentals), the frozen encoder's frame states
of each track in 30 s chunks, labels from the generator's sung lines, logistic regression; the
probe and its card go to ``models/shipped/<whisper>/``."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from livi_tasks.build.chunk_data import encoder_states_of
from livi_tasks.build.synth.corpus import make_corpus
from livi_tasks.build.synth.lyrics import EVALUATION_FAMILIES
from livi_tasks.build.synth.songs import SONG_FAMILIES
from livi_tasks.core.audio import load_audio
from livi_tasks.core.commit import code_commit
from livi_tasks.models.identity import whisper_identity
from livi_tasks.models.vocal_probe import FRAMES_PER_SECOND, VocalProbe, shipped_probe_dir, whole_track_chunks

log = logging.getLogger(__name__)


def frame_labels(regions: np.ndarray, chunks: int, frames_per_chunk: int) -> np.ndarray:
    """(chunks, frames) true where a frame's centre lies in a sung region ((k, 2) start/end seconds)."""
    centres = (np.arange(chunks * frames_per_chunk) + 0.5) / FRAMES_PER_SECOND
    inside = np.zeros(len(centres), bool)
    for start, end in regions:
        inside |= (centres >= start) & (centres < end)
    return inside.reshape(chunks, frames_per_chunk)


def fit_probe(
    states: np.ndarray, labels: np.ndarray, whisper: dict, smooth_frames: int = 25, seed: int = 0
) -> VocalProbe:
    """Logistic regression of ``labels`` (frames,) on frame ``states`` (frames, width)."""
    from sklearn.linear_model import LogisticRegression

    mean = states.mean(axis=0).astype(np.float32)
    scale = np.maximum(states.std(axis=0), 1e-6).astype(np.float32)
    model = LogisticRegression(C=0.1, max_iter=500, class_weight="balanced", random_state=seed)
    model.fit((states - mean) / scale, labels)
    return VocalProbe(
        weight=model.coef_[0].astype(np.float32),
        bias=float(model.intercept_[0]),
        mean=mean,
        scale=scale,
        whisper=whisper,
        smooth_frames=smooth_frames,
    )


def corpus_frames(
    encoder_states, manifest: Path, every: int = 1
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[str]]:
    """Per track of a generated corpus: frame states, frame labels and audio frames per chunk.

    ``encoder_states(chunks) -> (chunks, frames, width)`` runs the frozen encoder; ``every``
    keeps one frame in that many (neighbouring frames are nearly equal).
    """
    root = manifest.parent
    tracks = pd.read_csv(manifest)
    regions = pd.read_csv(root / "vocals.csv")
    by_track = {track: group[["start_s", "end_s"]].to_numpy() for track, group in regions.groupby("track_id")}
    states_out, labels_out, frames_out = [], [], []
    for row in tracks.itertuples():
        audio = load_audio(str(root / row.path))
        chunks, audio_frames = whole_track_chunks(audio)
        states = encoder_states(chunks)
        labels = frame_labels(by_track.get(row.track_id, np.zeros((0, 2))), len(chunks), states.shape[1])
        states_out.append(states[:, ::every])
        labels_out.append(labels[:, ::every])
        frames_out.append(audio_frames)
    return states_out, labels_out, frames_out, list(tracks.track_id)


def frame_scores(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Frame precision and recall of the vocal class, and accuracy."""
    true_positive = float((predicted & labels).sum())
    return {
        "precision": true_positive / max(1.0, float(predicted.sum())),
        "recall": true_positive / max(1.0, float(labels.sum())),
        "accuracy": float((predicted == labels).mean()),
        "frames": int(labels.size),
    }


def build_vocal_probe(
    cfg,
    whisper_model: str,
    work_dir: str | Path,
    works: int = 40,
    seed: int = 300,
    every: int = 5,
    song_family: str = "broad",
    song_works: int = 12,
    out_dir: str | Path | None = None,
) -> dict:
    """Train the probe of one Whisper model; write it and its card (the defaults: the shipped recipe).

    A randomised-family corpus (``works`` x 2 versions + ``works // 4`` instrumentals, ``seed``)
    and a ``song_family`` corpus (``song_works`` works x 1 version + as many instrumentals, whose
    lead instrument plays the sung tune where a voice would sing; 0: none) are made under
    ``work_dir`` and kept; a fifth of the works is held out to score the probe's frames. Trained
    on the randomised corpus alone, the probe took a saxophone, an oboe or a recorder carrying the
    tune for singing (BENCHMARKS.md). The probe goes to ``out_dir`` (default: the shipped folder
    of ``whisper_model``).
    """
    if song_works and (song_family not in SONG_FAMILIES or song_family in EVALUATION_FAMILIES):
        training = sorted(set(SONG_FAMILIES) - set(EVALUATION_FAMILIES))
        raise ValueError(f"song_family: expected a training song family {training}, got {song_family!r}")
    work_dir = Path(work_dir)
    instrumentals = max(1, works // 4)
    # Work ids are prefixed by their corpus, as both number their works from 1; the randomised
    # corpus keeps bare ids, so its held-out fifth (and a probe built without songs) stays as it was.
    corpora = {
        "": make_corpus(
            work_dir / f"probe-corpus-{seed}", "randomised", works, versions=2, seed=seed, instrumentals=instrumentals
        )
    }
    if song_works:
        corpora[f"{song_family}/"] = make_corpus(
            work_dir / f"probe-corpus-{song_family}-{seed}",
            song_family,
            song_works,
            versions=1,
            seed=seed,
            instrumentals=song_works,
        )
    whisper = whisper_identity(whisper_model, cfg.models_dir)
    encoder_states = encoder_states_of(whisper_model, cfg.models_dir)
    states, labels, audio_frames, track_works = [], [], [], []
    for prefix, manifest in corpora.items():
        family_states, family_labels, family_frames, track_ids = corpus_frames(encoder_states, manifest)
        works_of = pd.read_csv(manifest).set_index("track_id")["work_id"].fillna("")
        states += family_states
        labels += family_labels
        audio_frames += family_frames
        track_works += [prefix + works_of[track] if works_of[track] else "" for track in track_ids]
    held_out = {
        work
        for work in sorted(set(track_works))
        if work and int(hashlib.sha256(work.encode()).hexdigest(), 16) % 5 == 0
    }

    def stacked(selected: list[int], stride: int) -> tuple[np.ndarray, np.ndarray]:
        x, y = [], []
        for i in selected:
            in_audio = np.arange(states[i].shape[1])[None, :] < audio_frames[i][:, None]
            x.append(states[i][:, ::stride][in_audio[:, ::stride]])
            y.append(labels[i][:, ::stride][in_audio[:, ::stride]])
        return np.concatenate(x).astype(np.float32), np.concatenate(y)

    train = [i for i, work in enumerate(track_works) if work not in held_out]
    validation = [i for i, work in enumerate(track_works) if work in held_out]
    x, y = stacked(train, every)
    probe = fit_probe(x, y, whisper, seed=seed)
    predicted, truth = [], []
    for i in validation:
        in_audio = np.arange(states[i].shape[1])[None, :] < audio_frames[i][:, None]
        predicted.append((probe.frame_vocalness(states[i]) >= probe.threshold)[in_audio])
        truth.append(labels[i][in_audio])
    scores = frame_scores(np.concatenate(predicted), np.concatenate(truth)) if validation else {}
    command = f"livi build-vocal-probe --whisper-model {whisper_model} --works {works} --seed {seed}"
    card = {
        "command": command + (f" --song-family {song_family} --song-works {song_works}" if song_works else ""),
        "data": {
            "family": "randomised",
            "works": works,
            "versions": 2,
            "instrumentals": instrumentals,
            **(
                {"song_family": song_family, "song_works": song_works, "song_instrumentals": song_works}
                if song_works
                else {}
            ),
            "seed": seed,
            "tracks": len(track_works),
            "training_frames": int(len(y)),
            "every_nth_frame": every,
            "held_out_works": sorted(held_out),
        },
        "model": "logistic regression (C=0.1, balanced classes) on standardised frame states, smoothed over 0.5 s",
        "validation_frames": scores,
        "commit": code_commit(),
    }
    probe = VocalProbe(**{**probe.__dict__, "card": card})
    folder = Path(out_dir) if out_dir is not None else shipped_probe_dir(whisper_model)
    probe.save(folder)
    log.info("vocal probe for %s: held-out frames %s", whisper_model, scores)
    return {"whisper": whisper, "validation_frames": scores, "folder": str(folder)}
