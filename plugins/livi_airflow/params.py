"""The trigger-form Params shared by the LIVI DAGs and their mapping onto config overrides.

The form shows the configured values (defaults < $LIVI_CONFIG YAML < LIVI__SECTION__FIELD
environment, read when the DAG is parsed) as its defaults, so a user sees what a run will use
and changes only what this run needs. The data root and text model may be left empty: the worker's
configured value is used then, so that a deployment sets its paths once in the environment.
"""

from __future__ import annotations

from typing import Any, Mapping

from airflow.sdk import Param

# Param name -> dotted config field it overrides.
PARAM_FIELDS = {
    "data_root": "store.root",
    "shard_size": "ingest.shard_size",
    "vocal_detector": "vocal.method",
    "vocal_rule": "vocal.track_rule",
    "min_vocal_s": "vocal.min_vocal_s",
    "min_track_vocalness": "vocal.min_track_vocalness",
    "whisper_model": "transcribe.whisper_model",
    "text_model": "text.model",
    "alpha": "encoder.alpha",
    "epochs": "encoder.epochs",
    "centred_retrieval": "index.centre",
    "chunk_rerank_weight": "index.chunk_weight",
}
WHISPER_MODELS = ["base", "tiny.en"]


def configured_values():
    """The configuration a run starts from; the defaults when it is invalid (the first task then says why)."""
    from livi_tasks.core.config import ConfigError, LiviConfig, load_config  # pydantic and yaml only: cheap to parse

    try:
        return load_config()
    except ConfigError:
        return LiviConfig()


def config_params() -> dict[str, Param]:
    """Params every LIVI DAG accepts: the configuration values a run may change."""
    cfg = configured_values()
    whisper_models = list(dict.fromkeys([cfg.transcribe.whisper_model, *WHISPER_MODELS]))
    return {
        "data_root": Param(
            None,
            type=["null", "string"],
            minLength=1,
            title="Data root",
            description=(
                f"Artifact store: a folder or fsspec URL. Empty: the workers' configured store.root ({cfg.store.root})."
            ),
        ),
        "shard_size": Param(
            cfg.ingest.shard_size,
            type="integer",
            minimum=1,
            maximum=10_000,
            title="Shard size",
            description="Tracks per shard (1-10000); each shard is one mapped task per stage.",
        ),
        "vocal_detector": Param(
            cfg.vocal.method,
            type="string",
            enum=list(dict.fromkeys([cfg.vocal.method, "encoder_probe", "zero_shot"])),
            title="Vocal detector",
            values_display={
                "encoder_probe": "Whisper encoder probe (default, one encoder pass)",
                "zero_shot": "Musicnn tags (the paper's detector)",
                "trained_head": "Musicnn with the configured trained head",
            },
            description="What scores the vocalness of each 3 s window before the track rule and the 30 s segments.",
        ),
        "vocal_rule": Param(
            cfg.vocal.track_rule,
            type="string",
            enum=["vocal_seconds", "mean"],
            title="Vocal track rule",
            values_display={
                "vocal_seconds": "vocal seconds (robust default)",
                "mean": "mean vocalness (the paper's lambda)",
            },
            description="How a track's 3 s window vocalness decides whether it is sung.",
        ),
        "min_vocal_s": Param(
            cfg.vocal.min_vocal_s,
            type="number",
            minimum=0,
            maximum=600,
            title="Vocal seconds threshold",
            description="Tracks with fewer seconds (0-600) in vocal 3 s windows are excluded (the default track rule).",
        ),
        "min_track_vocalness": Param(
            cfg.vocal.min_track_vocalness,
            type="number",
            minimum=0,
            maximum=1,
            title="Vocalness threshold (lambda)",
            description=(
                "The paper's rule (0-1), used when vocal.track_rule is mean: "
                "tracks whose mean window vocalness is below are excluded."
            ),
        ),
        "whisper_model": Param(
            cfg.transcribe.whisper_model,
            type="string",
            enum=whisper_models,
            title="Whisper model",
            values_display={
                "base": "base (74 M parameters, multilingual)",
                "tiny.en": "tiny.en (39 M, English, faster)",
            },
            description="Checkpoint used for transcription and as the audio encoder's frozen backbone.",
        ),
        "text_model": Param(
            None,
            type=["null", "string"],
            minLength=1,
            title="Text embedding model",
            description=(
                f"sentence-transformers model name or path. Empty: the configured text.model ({cfg.text.model})."
            ),
        ),
        "alpha": Param(
            cfg.encoder.alpha,
            type="number",
            minimum=0,
            maximum=1,
            title="Loss weight alpha",
            description="Training only (0-1): weight of the cosine loss against the similarity-matrix MSE.",
        ),
        "epochs": Param(
            cfg.encoder.epochs,
            type="integer",
            minimum=1,
            maximum=1000,
            title="Training epochs",
            description="Training only (1-1000): passes over the training segments; early stopping may end sooner.",
        ),
        "centred_retrieval": Param(
            cfg.index.centre,
            type="boolean",
            title="Centred retrieval",
            description=(
                "Compare tracks after taking out the mean embedding of the indexed tracks (the evaluation: of the "
                "catalogue); switching it rebuilds the index and re-scores the evaluation."
            ),
        ),
        "chunk_rerank_weight": Param(
            cfg.index.chunk_weight,
            type="number",
            minimum=0,
            maximum=1,
            title="Chunk re-ranking weight",
            description=(
                "0-1: each query's top candidates are re-ranked by (1 - w) x track cosine + w x chunk match (each 30 s "
                "chunk's best match in the other track); 0 answers by track vectors alone and keeps no chunks."
            ),
        ),
    }


def overrides_from_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Nested config overrides from the Params that were given (None means 'keep the config')."""
    tree: dict[str, Any] = {}
    for name, dotted in PARAM_FIELDS.items():
        value = params.get(name)
        if value is None:
            continue
        section, field = dotted.split(".")
        tree.setdefault(section, {})[field] = value
    return tree
