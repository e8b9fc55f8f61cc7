"""The ``livi`` command line: one subcommand per pipeline stage, plus helpers.

Global options come before the subcommand: ``livi --config my.yaml --set vocal.min_track_vocalness=0.4
ingest catalogue/``. Errors in configuration or arguments end with one line naming the field.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Callable, Optional

import typer

from .config import ConfigError, LiviConfig, load_config, parse_overrides

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
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config file (else $LIVI_CONFIG, else defaults)."),
    overrides: list[str] = typer.Option([], "--set", "-s", help="Override one value: section.field=value (repeatable)."),
    data_root: Optional[str] = typer.Option(None, "--data-root", help="Artifact store root (local folder or fsspec URL)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
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
    from .demo import make_demo_catalogue

    manifest = make_demo_catalogue(
        out, works=works, versions=versions, seed=seed, instrumentals=instrumentals,
        hard_negatives=hard_negatives, min_duration_s=min_duration, max_duration_s=max_duration,
    )
    typer.echo(f"manifest: {manifest}")


@app.command()
def ingest(
    ctx: typer.Context,
    source: Path = typer.Argument(..., help="A folder <root>/<work_id>/<track> or a CSV manifest track_id,work_id,path."),
    catalogue: Optional[str] = typer.Option(None, help="Catalogue name (default: the folder's name)."),
) -> None:
    """Check every track, write the catalogue table, the quarantine table and the shards."""
    from .catalogue import ingest_catalogue

    _print_json(ingest_catalogue(_state(ctx), source, catalogue))


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit status 2."""
    from .catalogue import CatalogueError
    from .store import ArtifactMissing

    try:
        app(standalone_mode=True)
    except (ConfigError, CatalogueError, ArtifactMissing, UserError) as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
