"""The shipped heads and the vocal filter on sound they were not built on.

A small catalogue of the evaluation-only ``foreign`` family (Festival voices, other instruments,
words and structure) goes through the pipeline's vocal filter, segments and ASR-free embedding
with the shipped tiny.en head; the demo catalogue (espeak-ng over the demo's backings, works the
head never saw) is queried track by track as a user would with ``livi query``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from livi_tasks.build.synth.corpus import make_corpus
from livi_tasks.core.config import load_config
from livi_tasks.core.metrics import metrics_from_similarity
from livi_tasks.core.store import ArtifactStore
from livi_tasks.pipeline import run_stage_over_shards
from livi_tasks.stages.catalogue import ingest_catalogue
from livi_tasks.stages.lineage import artifact_for, shard_ids
from livi_tasks.stages.retrieval import QuerySession, build_catalogue_index

# Bounds, from what was measured on these catalogues (BENCHMARKS.md, "Generalisation" and "One encoder pass"):
# - Musicnn (zero_shot) kept 7 of the 9 sung foreign tracks; the two lost are sung 0.1-0.8 dB above
#   the backing, where it hears no voice. The paper's mean rule keeps 1 of the 9.
# - The Whisper-frame vocal probe (the default) kept all 9 here, and every sung foreign track of
#   bench_one_pass (fewest 20.9 s of singing), none of the instrumentals.
# - The first shipped tiny.en head reached MAP 0.78 here on Musicnn's segments (two queries lost
#   their cover to the filter) and 0.94 in one pass with the probe; the ninth session's (taught by
#   the lyrics and the base pair) 1.0 through the stages and in one pass; random rankings ~0.2.
# - 5 of 8 demo queries had another version of their work first with Musicnn's segments, 6 of 8 in
#   one pass with the first tiny.en head, 8 of 8 with the ninth session's (`make demo` with base:
#   11 of 12); by chance 1 in 9. The bound keeps the first head's margin, not the current one's.
SUNG_KEPT_AT_LEAST = 7 / 9
PROBE_SUNG_KEPT_AT_LEAST = 8 / 9
FOREIGN_LIVI_MAP_AT_LEAST = 0.6
DEMO_RANK1_AT_LEAST = 5 / 8


@pytest.fixture(scope="module")
def tiny_cfg(tmp_path_factory):
    root = tmp_path_factory.mktemp("generalisation")
    return load_config(
        overrides={
            "store": {"root": str(root / "data")},
            "transcribe": {"whisper_model": "tiny.en"},
            "ingest": {"shard_size": 6},
        },
        environ={},
    )


@pytest.fixture(scope="module")
def foreign(tiny_cfg, tmp_path_factory):
    corpus = make_corpus(
        tmp_path_factory.mktemp("foreign") / "corpus",
        "foreign",
        works=4,
        versions=2,
        seed=5,
        instrumentals=1,
        hard_negatives=1,
    ).parent
    ingest_catalogue(tiny_cfg, corpus / "manifest.csv", "foreign")
    for stage in ("vocal", "segments", "embed"):
        run_stage_over_shards(tiny_cfg, stage, "foreign")
    return corpus


def _stage_table(cfg, catalogue, stage, table, extra=()):
    store = ArtifactStore(cfg.store.root)
    return pd.concat(
        [
            artifact_for(cfg, store, catalogue, stage, shard, extra).require().read_table(table)
            for shard in shard_ids(store, catalogue)
        ],
        ignore_index=True,
    )


@pytest.mark.parametrize(
    "detector, sung_kept_at_least", [("encoder_probe", PROBE_SUNG_KEPT_AT_LEAST), ("zero_shot", SUNG_KEPT_AT_LEAST)]
)
def test_vocal_filter_keeps_sung_foreign_tracks_and_drops_the_instrumental(
    detector, sung_kept_at_least, tiny_cfg, foreign
):
    # encoder_probe is the default (the fixture's stages ran with it); zero_shot is Musicnn, the paper's.
    cfg = tiny_cfg.model_copy(update={"vocal": tiny_cfg.vocal.model_copy(update={"method": detector})})
    run_stage_over_shards(cfg, "vocal", "foreign")
    vocal = _stage_table(cfg, "foreign", "vocal", "tracks")
    kinds = vocal["track_id"].map(pd.read_csv(foreign / "tracks.csv").set_index("track_id")["kind"])
    sung = vocal[kinds != "instrumental"]
    print(vocal[["track_id", "mean_vocalness", "vocal_s", "status"]].to_string())
    assert (sung["status"] == "kept").mean() >= sung_kept_at_least
    assert (vocal[kinds == "instrumental"]["status"] == "excluded").all()


def test_shipped_head_retrieves_foreign_covers(tiny_cfg, foreign):
    from livi_tasks.models.registry import current_model

    store = ArtifactStore(tiny_cfg.store.root)
    model = current_model(tiny_cfg, store)
    assert model.startswith("shipped-")
    universe = artifact_for(tiny_cfg, store, "foreign", "ingest", "all").read_table("tracks")[["track_id", "work_id"]]
    embedded = _stage_table(tiny_cfg, "foreign", "embed", "tracks", (model,))
    vectors = np.concatenate(
        [
            artifact_for(tiny_cfg, store, "foreign", "embed", shard, (model,)).read_array("track_embeddings")
            for shard in shard_ids(store, "foreign")
        ]
    )
    matrix = np.zeros((len(universe), vectors.shape[1]), np.float32)
    matrix[universe.reset_index().set_index("track_id").loc[embedded["track_id"], "index"].to_numpy()] = vectors
    metrics = metrics_from_similarity(matrix @ matrix.T, universe["work_id"]).as_dict()
    print(metrics)
    assert metrics["MAP"] >= FOREIGN_LIVI_MAP_AT_LEAST


@pytest.fixture(scope="module")
def demo_index(tiny_cfg, demo_catalogue):
    ingest_catalogue(tiny_cfg, demo_catalogue, "demo")
    for stage in ("vocal", "segments", "embed"):
        run_stage_over_shards(tiny_cfg, stage, "demo")
    build_catalogue_index(tiny_cfg, ["demo"])
    return demo_catalogue


def test_query_ranks_another_version_first_on_the_demo(tiny_cfg, demo_index):
    manifest = pd.read_csv(demo_index)
    versions = manifest[manifest.track_id.str.startswith("work")]
    session = QuerySession(tiny_cfg)
    hits_first = []
    for track in versions.itertuples():
        hits = session.query(demo_index.parent / track.path, top_k=3).hits
        others = hits[hits.track_id != track.track_id]  # the query's own file is in the index
        hits_first.append(others.iloc[0].work_id == track.work_id)
    print("another version at rank 1:", sum(hits_first), "of", len(hits_first))
    assert np.mean(hits_first) >= DEMO_RANK1_AT_LEAST


def test_query_command_answers_a_folder_once_loaded_and_reports_a_bad_file(tiny_cfg, demo_index, tmp_path):
    from typer.testing import CliRunner

    from livi_tasks.cli import app

    folder = tmp_path / "queries"
    shutil.copytree(demo_index.parent / "audio" / "work-01", folder / "work-01")
    (folder / "corrupt.wav").write_bytes(b"RIFF" + bytes(range(256)) * 8)
    args = [
        "--data-root",
        tiny_cfg.store.root,
        "--set",
        "transcribe.whisper_model=tiny.en",
        "query",
        str(folder),
        "--top-k",
        "3",
        "--json",
    ]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 1, done.output  # one file failed, the others were answered
    report = json.loads(done.stdout)
    answers = {Path(answer["query"]).name: answer for answer in report["queries"]}
    assert report["cold_start_s"] > 0 and set(answers) == {
        "corrupt.wav",
        *(p.name for p in (folder / "work-01").iterdir()),
    }
    assert answers.pop("corrupt.wav")["error"]
    for name, answer in answers.items():
        assert not answer["error"] and answer["search_ms"] < 1000 and answer["embed_s"] > 0
        assert answer["results"][0]["track_id"] == Path(name).stem  # the file itself is indexed
    assert "cold start" in done.stderr


def test_one_pass_embeddings_retrieve_foreign_covers(tiny_cfg, foreign):
    from livi_tasks.core.audio import load_audio
    from livi_tasks.models.vocal_probe import load_probe
    from livi_tasks.stages.audio_embed import embed_one_pass, load_encoder

    loaded = load_encoder(tiny_cfg, ArtifactStore(tiny_cfg.store.root))
    probe = load_probe("tiny.en", loaded.info["whisper"]["id"])
    manifest = pd.read_csv(foreign / "manifest.csv")
    vectors = np.stack(
        [embed_one_pass(loaded, probe, load_audio(str(foreign / path))).embedding for path in manifest.path]
    )
    metrics = metrics_from_similarity(vectors @ vectors.T, manifest["work_id"]).as_dict()
    print(metrics)
    assert metrics["MAP"] >= FOREIGN_LIVI_MAP_AT_LEAST
