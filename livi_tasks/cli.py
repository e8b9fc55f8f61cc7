"""The ``livi`` command line: one subcommand per pipeline stage, plus helpers.

Global options come before the subcommand: ``livi --config my.yaml --set vocal.min_track_vocalness=0.4
ingest catalogue/``. Errors in configuration or arguments end with one line naming the field.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from tqdm import tqdm

from livi_tasks.core.config import LiviConfig, load_config, parse_overrides
from livi_tasks.core.stage_table import SHARD_STAGES
from livi_tasks.core.threads import budget_from_environment, limit_threads

app = typer.Typer(
    help="LIVI: lyrics-informed music version (cover) retrieval. Each subcommand runs one idempotent stage.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class UserError(Exception):
    """An error the user can fix; printed as one line, exit status 2."""


def _state(ctx: typer.Context) -> LiviConfig:
    return ctx.obj["cfg"]


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(
        None, "--config", "-c", help="YAML config file (else $LIVI_CONFIG, else defaults)."
    ),
    overrides: list[str] = typer.Option(
        [], "--set", "-s", help="Override one value: section.field=value (repeatable)."
    ),
    data_root: Optional[str] = typer.Option(
        None, "--data-root", help="Artifact store root (local folder or fsspec URL)."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
    threads: Optional[int] = typer.Option(
        None,
        "--threads",
        min=1,
        help="Threads for torch, OpenMP and BLAS (else $LIVI_TASK_THREADS, else one per core). Give each of two "
        "heavy jobs sharing a machine half the cores: oversubscribed, both run several times slower.",
    ),
) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # it logs every CPU feature it probes
    threads = threads or budget_from_environment()
    if threads:
        limit_threads(threads)
    tree = parse_overrides(overrides)
    if data_root:
        tree.setdefault("store", {})["root"] = data_root
    ctx.obj = {"cfg": load_config(config, tree)}


def _print_json(payload: object) -> None:
    typer.echo(json.dumps(payload, indent=2, sort_keys=True, default=str))


@app.command("demo-catalogue")
def demo_catalogue(
    out: Path = typer.Argument(..., help="Folder to write the demo catalogue into."),
    works: int = typer.Option(12, help="Number of works (songs), each with its own lyrics."),
    versions: int = typer.Option(3, help="Versions (covers) per work."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives the same catalogue."),
    instrumentals: int = typer.Option(3, help="Tracks without voice."),
    hard_negatives: int = typer.Option(3, help="Tracks sharing another work's backing with different lyrics."),
    min_duration: float = typer.Option(40.0, help="Shortest track, seconds."),
    max_duration: float = typer.Option(60.0, help="Longest track, seconds."),
) -> None:
    """Generate a synthetic catalogue of sung/spoken versions over synthesised backings."""
    from livi_tasks.build.demo import make_demo_catalogue

    manifest = make_demo_catalogue(
        out,
        works=works,
        versions=versions,
        seed=seed,
        instrumentals=instrumentals,
        hard_negatives=hard_negatives,
        min_duration_s=min_duration,
        max_duration_s=max_duration,
    )
    typer.echo(f"manifest: {manifest}")


@app.command()
def ingest(
    ctx: typer.Context,
    source: Path = typer.Argument(
        ..., help="A folder <root>/<work_id>/<track> or a CSV manifest track_id,work_id,path."
    ),
    catalogue: Optional[str] = typer.Option(None, help="Catalogue name (default: the folder's name)."),
) -> None:
    """Check every track, write the catalogue table, the quarantine table and the shards."""
    from livi_tasks.stages.catalogue import ingest_catalogue

    _print_json(ingest_catalogue(_state(ctx), source, catalogue))


SHARD_COMMANDS = {stage.command: (stage.name, stage.help) for stage in SHARD_STAGES.values() if stage.command}


def _add_shard_command(name: str, stage: str, help_text: str) -> None:
    def command(
        ctx: typer.Context,
        catalogue: str = typer.Option(..., "--catalogue", help="Catalogue name (as ingested)."),
        shard: list[str] = typer.Option([], "--shard", help="Only these shards (repeatable; default all)."),
    ) -> None:
        from livi_tasks.pipeline import run_stage_over_shards

        _print_json(run_stage_over_shards(_state(ctx), stage, catalogue, shard or None))

    command.__doc__ = help_text
    app.command(name, help=help_text)(command)


for _name, (_stage, _help) in SHARD_COMMANDS.items():
    _add_shard_command(_name, _stage, _help)


@app.command("song-corpus")
def song_corpus(
    out: Path = typer.Argument(..., help="Folder to write the catalogue into."),
    family: str = typer.Option(
        "randomised",
        help=(
            "randomised, piper, notes, piper_notes or broad (training families; piper: randomised sung by Piper's "
            "neural voice; notes: randomised sung word by word, each word held on a note of the tune; piper_notes: "
            "both; "
            "broad: whole songs, live/acoustic/remix/duet versions, neural voices, sampled instruments), "
            "foreign or foreign2 (evaluation only: other voices, instruments, words, structure)."
        ),
    ),
    works: int = typer.Option(24, help="Number of works (songs), each with its own lyrics and melody."),
    versions: int = typer.Option(3, help="Versions (covers) per work."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives the same catalogue."),
    instrumentals: int = typer.Option(6, help="Tracks without a voice (a lead melody instead)."),
    hard_negatives: int = typer.Option(6, help="A version's exact backing sung with other lyrics."),
) -> None:
    """Write a synthetic cover catalogue of a song family (livi_tasks.build.synth); prints its manifest."""
    from livi_tasks.build.synth.corpus import make_corpus

    try:
        typer.echo(make_corpus(out, family, works, versions, seed, instrumentals, hard_negatives))
    except ValueError as exc:
        raise UserError(str(exc)) from None


@app.command("build-default-heads")
def build_default_heads(
    ctx: typer.Context,
    work_dir: Path = typer.Option(
        Path("data/default-heads"),
        "--work-dir",
        help="Corpus, training-chunk and frame-state caches (reused: a killed build resumes).",
    ),
    whisper: list[str] = typer.Option(
        ["base", "tiny.en"], "--whisper", help="Whisper models to train a head for (repeatable)."
    ),
    chunk: list[str] = typer.Option(
        [],
        "--chunk",
        help=(
            "SEED:WORKS[:FAMILY] of a training catalogue, family randomised (default), piper, notes, piper_notes, "
            "broad or demo "
            "(repeatable); "
            "default the shipped recipe."
        ),
    ),
    precision: str = typer.Option(
        "fp32",
        "--precision",
        help="Encoder precision for the training chunks' frame states: fp32, or bf16 (1.7x faster on CPUs with "
        "bf16 arithmetic, states within a cosine of 0.9997; about 6x slower on CPUs without it).",
    ),
    seed: list[int] = typer.Option(
        [],
        "--seed",
        min=0,
        help="Training seed to try (repeatable; default the shipped recipe's 0 and 1): each trains a head on the "
        "same data and held-out works (split by the config's encoder.seed), and the lowest validation loss ships.",
    ),
    ensemble: bool = typer.Option(
        False,
        "--ensemble",
        help="Ship every seed's head as one ensemble (the mean of their unit outputs) instead of the lowest "
        "validation loss: steadier than any one seed, one head pass per seed at query time.",
    ),
    teacher: str = typer.Option(
        "lyrics",
        "--teacher",
        help="Training targets: lyrics (each chunk's sung text, embedded), or parts joined by '+' such as "
        "lyrics+base: the normalised mean of the lyrics and the answer of that Whisper model's shipped head for "
        "the same chunk (that head must be built first; its model's chunks are prepared too).",
    ),
) -> None:
    """Rebuild the shipped default heads (livi_tasks/models/shipped/) and their model cards from nothing."""
    from livi_tasks.build.default_heads import DEFAULT_CHUNKS, DEFAULT_SEEDS, LYRICS
    from livi_tasks.build.default_heads import build_default_heads as build
    from livi_tasks.models.registry import shipped_head

    try:
        chunks = (
            tuple((int(seed), int(works), *family) for seed, works, *family in (spec.split(":") for spec in chunk))
            or DEFAULT_CHUNKS
        )
    except ValueError:
        raise UserError(f"--chunk: expected SEED:WORKS[:FAMILY], got {chunk}") from None
    if precision not in ("fp32", "bf16"):
        raise UserError(f"--precision: expected fp32 or bf16, got {precision!r}")
    seeds = tuple(seed) or DEFAULT_SEEDS
    parts = tuple(teacher.split("+"))
    for part in parts:
        if part != LYRICS and (part in whisper or shipped_head(part) is None):
            raise UserError(
                f"--teacher: {part!r} is neither lyrics nor a Whisper model with a shipped head that this build "
                "does not rebuild"
            )
    cards = build(
        _state(ctx),
        work_dir,
        tuple(whisper),
        chunks,
        precision=precision,
        seeds=seeds,
        ensemble=ensemble,
        teacher=parts,
    )
    _print_json(
        {name: {key: card[key] for key in ("model", "head_sha256", "data", "training")} for name, card in cards.items()}
    )


@app.command("build-vocal-probe")
def build_vocal_probe(
    ctx: typer.Context,
    whisper_model: str = typer.Option("tiny.en", "--whisper-model", help="Whisper model whose frame states it reads."),
    works: int = typer.Option(40, min=5, help="Works of the randomised-family training corpus (2 versions each)."),
    seed: int = typer.Option(300, min=0, help="Corpus seed; keep it apart from the evaluation catalogues' seeds."),
    work_dir: Path = typer.Option(Path("data/vocal-probe"), "--work-dir", help="Where the corpus is made and kept."),
    song_family: str = typer.Option(
        "broad", "--song-family", help="Song family of the second corpus (with --song-works): a training family."
    ),
    song_works: int = typer.Option(
        12,
        min=0,
        help="Works of a second, song-family corpus (1 version each, as many instrumentals whose lead plays "
        "the sung tune); 0: the randomised corpus alone.",
    ),
    out_dir: Path | None = typer.Option(
        None, "--out-dir", help="Where to write the probe (default: the shipped folder of the Whisper model)."
    ),
) -> None:
    """Train the shipped vocal probe on frozen Whisper frame states (the one-pass path's singing detector)."""
    from livi_tasks.build.vocal_probe import build_vocal_probe as build

    try:
        probe = build(
            _state(ctx),
            whisper_model,
            work_dir,
            works=works,
            seed=seed,
            song_family=song_family,
            song_works=song_works,
            out_dir=out_dir,
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None
    _print_json(probe)


@app.command("train-vocal-head")
def train_vocal_head(
    ctx: typer.Context,
    catalogue: str = typer.Option(
        ..., "--catalogue", help="Catalogue whose vocal stage has run with Musicnn (--set vocal.method=zero_shot)."
    ),
    regions: Path = typer.Option(
        ..., "--regions", help="CSV track_id,start_s,end_s of sung regions (the demo's vocals.csv)."
    ),
    out: Path = typer.Option(Path("vocal_head.pt"), "--out", help="Where to save the head (.pt; metrics beside it)."),
    epochs: int = typer.Option(300, min=1, help="Full-batch training steps."),
) -> None:
    """Train the paper's linear vocal head on Musicnn penultimate features; use it with
    --set vocal.method=trained_head --set vocal.head_path=OUT."""
    from livi_tasks.stages.vocal_head import train_vocal_head as train

    _print_json(train(_state(ctx), catalogue, regions, out, epochs=epochs))


@app.command("embed-audio")
def embed_audio(
    ctx: typer.Context,
    catalogue: str = typer.Option(..., "--catalogue", help="Catalogue name (as ingested)."),
    shard: list[str] = typer.Option([], "--shard", help="Only these shards (repeatable; default all)."),
    model: Optional[str] = typer.Option(
        None, help="Encoder fingerprint (default: the promoted model, else the shipped head for the Whisper model)."
    ),
) -> None:
    """ASR-free track embeddings. With the default vocal detector (encoder_probe): each ingested track
    through the frozen Whisper encoder once per 30 s, the probe keeps the sung tracks and frames, the
    head pools them; with Musicnn (--set vocal.method=zero_shot): the segment stage's vocal segments."""
    from livi_tasks.pipeline import run_stage_over_shards

    _print_json(run_stage_over_shards(_state(ctx), "embed", catalogue, shard or None, model=model))


@app.command("train-encoder")
def train_encoder(
    ctx: typer.Context,
    catalogue: list[str] = typer.Option(..., "--catalogue", help="Transcribed catalogues to train on (repeatable)."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from the last epoch checkpoint of an interrupted run."
    ),
    promote: bool = typer.Option(
        True, "--promote/--no-promote", help="Make the trained model the one later stages use."
    ),
) -> None:
    """Distil the audio encoder's head into the lyrics embedding space (frozen Whisper encoder)."""
    from livi_tasks.core.store import ArtifactStore
    from livi_tasks.models.registry import promote_model
    from livi_tasks.stages.train_encoder import train

    cfg = _state(ctx)
    result = train(cfg, catalogue, resume=resume)
    if promote:
        promote_model(ArtifactStore(cfg.store.root), result["fingerprint"])
    _print_json(result)


@app.command("build-index")
def build_index(
    ctx: typer.Context,
    catalogue: list[str] = typer.Option(
        ..., "--catalogue", help="Catalogues to index (repeatable); new ones are added."
    ),
    model: Optional[str] = typer.Option(
        None, help="Encoder fingerprint (default: the promoted model, else the shipped head for the Whisper model)."
    ),
) -> None:
    """Build or extend the Faiss index of ASR-free track embeddings."""
    from livi_tasks.stages.retrieval import build_catalogue_index

    _print_json(build_catalogue_index(_state(ctx), catalogue, model=model))


@app.command()
def query(
    ctx: typer.Context,
    audio: list[Path] = typer.Argument(
        ..., help="Audio files (wav, flac, ogg, mp3) or folders searched recursively for them."
    ),
    top_k: int = typer.Option(10, "--top-k", min=1, max=1000, help="How many results per file."),
    as_json: bool = typer.Option(
        False, "--json", help="Print JSON (cold start, then per file: results, timings, error)."
    ),
) -> None:
    """Find the versions of songs in the index, without ASR. The index and the models load once,
    so many files in one call cost one cold start; timings go to stderr. A file that cannot be
    read is reported and the others go on (exit status 1 if any failed)."""
    from livi_tasks.stages.retrieval import QuerySession, audio_files, format_results, format_timings

    files = audio_files(audio)
    if not files:
        raise typer.BadParameter("no audio file (wav, flac, ogg, mp3) in the given folders", param_hint="AUDIO")
    session = QuerySession(_state(ctx))
    answers = []
    for path in tqdm(files, desc="queries", unit="file", disable=len(files) == 1 or None):
        answer = session.query(path, top_k)
        answers.append(answer)
        if as_json:
            continue
        if len(files) > 1:
            typer.echo(f"\n{path}")
        typer.echo(f"error: {answer.error}" if answer.error else format_results(answer.hits))
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "cold_start_s": round(session.cold_start_s, 3),
                    "queries": [
                        {
                            "query": a.query,
                            "error": a.error,
                            "embed_s": round(a.embed_s, 3),
                            "search_ms": round(a.search_ms, 3),
                            "results": a.hits.to_dict(orient="records"),
                        }
                        for a in answers
                    ],
                },
                indent=2,
                default=str,
            )
        )
    typer.echo(format_timings(session, answers), err=True)
    if any(answer.error for answer in answers):
        raise typer.Exit(1)


@app.command()
def evaluate(
    ctx: typer.Context,
    catalogue: str = typer.Option(..., "--catalogue", help="A labelled catalogue (as ingested)."),
    model: Optional[str] = typer.Option(
        None, help="Encoder fingerprint (default: the promoted model, else the shipped head for the Whisper model)."
    ),
) -> None:
    """Score every available embedding (lyrics ASR, LIVI audio, chroma baseline); write the HTML report."""
    from livi_tasks.stages.evaluate import evaluate_catalogue, format_metrics

    summary = evaluate_catalogue(_state(ctx), catalogue, model=model)
    typer.echo(format_metrics(summary))
    typer.echo(f"report: {summary['report']}")


@app.command()
def run(
    ctx: typer.Context,
    source: Path = typer.Argument(..., help="Catalogue folder or CSV manifest."),
    catalogue: Optional[str] = typer.Option(None, help="Catalogue name (default: the folder's name)."),
    train: bool = typer.Option(
        False, "--train/--no-train", help="Retrain the encoder on this catalogue (always when none is promoted)."
    ),
) -> None:
    """Every stage in this process, without Airflow: ingest to evaluation."""
    from livi_tasks.pipeline import run_pipeline
    from livi_tasks.stages.evaluate import format_metrics

    result = run_pipeline(_state(ctx), str(source), catalogue, train=train)
    typer.echo(format_metrics(result["stages"]["evaluate"]))
    typer.echo(f"report: {result['stages']['evaluate']['report']}")


def _who() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


# The options of `livi remove` and `livi restore` (a takedown and its undoing take the same record).
CatalogueOfTrack = Annotated[str, typer.Option("--catalogue", help="Catalogue of the track (as ingested).")]
TrackId = Annotated[str, typer.Option("--track", help="Track id.")]
Reason = Annotated[str, typer.Option("--reason", help="Why (recorded with who and when; one line).")]
AskedBy = Annotated[Optional[str], typer.Option("--by", help="Who asks (recorded; default: your login name).")]
Reindex = Annotated[
    bool, typer.Option("--reindex/--no-reindex", help="Publish the changed index now (else at the next build).")
]


@app.command()
def remove(
    ctx: typer.Context,
    catalogue: CatalogueOfTrack,
    track: TrackId,
    reason: Reason,
    by: AskedBy = None,
    reindex: Reindex = True,
) -> None:
    """Take a track down (a licence takedown): out of the index and of every answer, recorded in the
    store with who, when and why; later ingests and index builds leave it out until `livi restore`.
    Running services drop it from answers within serve.refresh_s."""
    from livi_tasks.stages.takedown import take_down

    _print_json(take_down(_state(ctx), catalogue, track, reason, by or _who(), via="cli", reindex=reindex))


@app.command()
def restore(
    ctx: typer.Context,
    catalogue: CatalogueOfTrack,
    track: TrackId,
    reason: Reason,
    by: AskedBy = None,
    reindex: Reindex = True,
) -> None:
    """Undo a takedown: the track comes back into the index (and into later ingests of its catalogue)."""
    from livi_tasks.stages.takedown import restore as restore_track

    _print_json(restore_track(_state(ctx), catalogue, track, reason, by or _who(), via="cli", reindex=reindex))


@app.command()
def takedowns(
    ctx: typer.Context,
    catalogue: Optional[str] = typer.Option(None, "--catalogue", help="Only this catalogue."),
    history: bool = typer.Option(False, "--history", help="Every record (removes and restores), not only active ones."),
) -> None:
    """List the tracks taken down (who, when, why), or the whole takedown history."""
    from livi_tasks.core.store import ArtifactStore
    from livi_tasks.core.takedowns import active_takedowns, takedown_log

    store = ArtifactStore(_state(ctx).store.root)
    names = [catalogue] if catalogue else None
    records = takedown_log(store, names) if history else list(active_takedowns(store, names).values())
    _print_json([record.as_dict() for record in records])


@app.command()
def serve(
    ctx: typer.Context,
    host: Optional[str] = typer.Option(
        None, "--host", help="Address to bind (default serve.host, 127.0.0.1); another than loopback needs a token."
    ),
    port: Optional[int] = typer.Option(None, "--port", min=0, max=65535, help="Port (default serve.port, 8000)."),
) -> None:
    """Run the search service: the web page at /, the API under /v1 (docs at /docs), health at
    /health and /ready. It loads the published index and the encoder, swaps in a newly published
    index without downtime and answers audio queries in a pool bounded by the thread budget.
    Token: serve.token (LIVI__SERVE__TOKEN); other settings: the serve section (see README)."""
    from livi_tasks.service.app import bind_check, run_server

    cfg = _state(ctx)
    try:
        bind_check(cfg, host or cfg.serve.host)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    run_server(cfg, host, port)


@app.command()
def doctor(ctx: typer.Context) -> None:
    """Check models, espeak-ng, free disk, the Airflow home and database; print fixes."""
    from livi_tasks.doctor import format_checks, run_checks

    checks = run_checks(_state(ctx))
    typer.echo(format_checks(checks))
    if not all(check.ok for check in checks):
        raise typer.Exit(1)


# Errors a user can fix, printed as one line. Named, not imported: a module that raised one is
# already loaded, and importing them all would load torch and Whisper for every `livi --help`.
USER_ERRORS = (
    "livi_tasks.core.config:ConfigError",
    "livi_tasks.stages.catalogue:CatalogueError",
    "livi_tasks.core.store:ArtifactMissing",
    "livi_tasks.core.audio:AudioError",
    "livi_tasks.core.index:IndexMismatch",
    "livi_tasks.models.identity:WhisperModelMissing",
    "livi_tasks.cli:UserError",
    "livi_tasks.models.registry:NoEncoderModel",
    "livi_tasks.models.registry:ShippedModelError",
    "livi_tasks.build.synth.voices:EngineMissing",
    "livi_tasks.models.vocal_probe:ProbeMissing",
    "livi_tasks.core.takedowns:TakedownError",
)


def _is_user_error(exc: Exception) -> bool:
    for spec in USER_ERRORS:
        module, name = spec.split(":")
        if module in sys.modules and isinstance(exc, getattr(sys.modules[module], name)):
            return True
    return False


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit status 2."""
    try:
        app(standalone_mode=True)
    except Exception as exc:
        if not _is_user_error(exc):
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
