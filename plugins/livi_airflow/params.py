"""The trigger-form Params shared by the LIVI DAGs and their mapping onto config overrides.

A Param left empty (None) keeps the value from the configuration (defaults < $LIVI_CONFIG YAML <
LIVI__SECTION__FIELD environment), so a deployment sets its data root once in the environment and
the form only carries what a run changes.
"""

from __future__ import annotations

from typing import Any, Mapping

from airflow.sdk import Param

# Param name -> dotted config field it overrides.
PARAM_FIELDS = {
    "data_root": "store.root",
    "shard_size": "ingest.shard_size",
    "min_vocal_s": "vocal.min_vocal_s",
    "min_track_vocalness": "vocal.min_track_vocalness",
    "whisper_model": "transcribe.whisper_model",
    "text_model": "text.model",
    "alpha": "encoder.alpha",
    "epochs": "encoder.epochs",
}
CATALOGUE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
WHISPER_MODELS = ["base", "tiny.en"]


def config_params() -> dict[str, Param]:
    """Params every LIVI DAG accepts: the configuration values a run may change."""
    return {
        "data_root": Param(
            None, type=["null", "string"], minLength=1, title="Data root",
            description="Artifact store: a folder or fsspec URL. Empty: the configured store.root.",
        ),
        "shard_size": Param(
            None, type=["null", "integer"], minimum=1, maximum=10_000, title="Shard size",
            description="Tracks per shard; each shard is one mapped task per stage.",
        ),
        "min_vocal_s": Param(
            None, type=["null", "number"], minimum=0, maximum=600, title="Vocal seconds threshold",
            description="Tracks with less time in vocal 3 s windows are excluded (the default track rule).",
        ),
        "min_track_vocalness": Param(
            None, type=["null", "number"], minimum=0, maximum=1, title="Vocalness threshold (lambda)",
            description="The paper's rule, used when vocal.track_rule is mean: tracks whose mean window vocalness is below are excluded.",
        ),
        "whisper_model": Param(
            None, type=["null", "string"], enum=[None, *WHISPER_MODELS], title="Whisper model",
            description="Checkpoint used for transcription and as the audio encoder's frozen backbone.",
        ),
        "text_model": Param(
            None, type=["null", "string"], minLength=1, title="Text embedding model",
            description="sentence-transformers model name or path (default: the bundled all-MiniLM-L6-v2).",
        ),
        "alpha": Param(
            None, type=["null", "number"], minimum=0, maximum=1, title="Loss weight alpha",
            description="Weight of the cosine loss against the similarity-matrix MSE.",
        ),
        "epochs": Param(
            None, type=["null", "integer"], minimum=1, maximum=1000, title="Training epochs",
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
