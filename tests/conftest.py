"""Shared fixtures: real audio made on the fly, the shared reference fixtures, a config per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from livi_tasks.core.config import LiviConfig, load_config

REPO = Path(__file__).resolve().parents[1]
# shared/ lies beside the checkout (CI clones main next to it); LIVI_SHARED_DIR points elsewhere.
SHARED_FIXTURES = Path(os.environ.get("LIVI_SHARED_DIR", REPO.parent / "shared")) / "fixtures"

# Tests run on 2 cores; keep torch from oversubscribing them.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    if not SHARED_FIXTURES.is_dir():
        pytest.fail(f"shared fixtures not found at {SHARED_FIXTURES}")
    return SHARED_FIXTURES


@pytest.fixture
def cfg(tmp_path: Path) -> LiviConfig:
    """Defaults with a private data root, untouched by the developer's environment."""
    return load_config(overrides={"store": {"root": str(tmp_path / "data")}}, environ={})


@pytest.fixture(scope="session")
def demo_catalogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real demo catalogue (sung lyrics over synthesised backings), made once per session."""
    from livi_tasks.build.demo import make_demo_catalogue

    out = tmp_path_factory.mktemp("demo")
    return make_demo_catalogue(
        out, works=4, versions=2, seed=7, instrumentals=1, hard_negatives=1, min_duration_s=40, max_duration_s=45
    )


@pytest.fixture(scope="session")
def demo_cfg(tmp_path_factory: pytest.TempPathFactory) -> LiviConfig:
    """The demo pipeline's config for tests: tiny.en, greedy decoding (the fallback is tested in
    test_transcribe), small shards, a session data root."""
    root = tmp_path_factory.mktemp("demo_data")
    return load_config(
        overrides={
            "store": {"root": str(root)},
            "transcribe": {"whisper_model": "tiny.en", "temperatures": [0.0]},
            "ingest": {"shard_size": 6},
        },
        environ={},
    )


@pytest.fixture(scope="session")
def demo_ingested(demo_cfg: LiviConfig, demo_catalogue: Path) -> str:
    """The session demo catalogue, ingested as "demo"; stages run on it share their artifacts."""
    from livi_tasks.stages.catalogue import ingest_catalogue

    return ingest_catalogue(demo_cfg, demo_catalogue, "demo")["catalogue"]


@pytest.fixture(scope="session")
def demo_indexed(demo_cfg: LiviConfig, demo_catalogue: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The session demo catalogue ingested, embedded (one pass, the shipped tiny.en head), indexed
    (Faiss flat) and evaluated in a store of its own: what the search service answers from. (Other
    tests add catalogues and runs to the shared demo store, so that one's index depends on the order
    tests run in.) Returns its config ("cfg") and the index and evaluation summaries."""
    from livi_tasks.core.config import StoreConfig
    from livi_tasks.pipeline import run_stage_over_shards
    from livi_tasks.stages.catalogue import ingest_catalogue
    from livi_tasks.stages.evaluate import evaluate_catalogue
    from livi_tasks.stages.retrieval import build_catalogue_index

    cfg = demo_cfg.model_copy(update={"store": StoreConfig(root=str(tmp_path_factory.mktemp("indexed_demo")))})
    catalogue = ingest_catalogue(cfg, demo_catalogue, "demo")["catalogue"]
    run_stage_over_shards(cfg, "embed", catalogue)
    index = build_catalogue_index(cfg, [catalogue])
    return {"cfg": cfg, "index": index, "evaluation": evaluate_catalogue(cfg, catalogue), "catalogue": catalogue}


@pytest.fixture(scope="module")
def served_store(demo_indexed: dict, tmp_path_factory: pytest.TempPathFactory) -> LiviConfig:
    """A private copy of the indexed demo store per test module, and its config."""
    from livi_testing import copy_served_store

    return copy_served_store(demo_indexed["cfg"], tmp_path_factory.mktemp("served") / "data")
