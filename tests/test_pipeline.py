"""The whole library pipeline on the session demo catalogue, in one process (no Airflow):
ingest -> lyrics path -> training -> ASR-free embeddings -> index -> evaluation -> query."""

import re

import numpy as np
import pandas as pd
import pytest

from livi_tasks.core.store import ArtifactStore
from livi_tasks.pipeline import run_pipeline
from livi_tasks.stages.retrieval import build_catalogue_index, open_published_index, query_file

ENCODER = {"epochs": 4, "batch_size": 8, "hidden_dim": 64, "attention_heads": 2, "patience": 2, "device": "cpu"}


@pytest.fixture(scope="module")
def pipeline_cfg(demo_cfg):
    return demo_cfg.model_copy(update={"encoder": demo_cfg.encoder.model_copy(update=ENCODER)})


@pytest.fixture(scope="module")
def pipeline_run(pipeline_cfg, demo_catalogue):
    return run_pipeline(pipeline_cfg, str(demo_catalogue), "demo", train=True)


def test_every_method_is_evaluated(pipeline_run):
    evaluation = pipeline_run["stages"]["evaluate"]
    assert set(evaluation["methods"]) == {"lyrics_asr", "livi_audio", "chroma_2dftm"}
    for method, metrics in evaluation["methods"].items():
        print(method, {k: round(v, 3) if isinstance(v, float) else v for k, v in metrics.items()})
        assert (
            metrics["n_queries"] == 8
        )  # 4 works x 2 versions; the instrumental and hard negative have no other version
        assert 0.0 <= metrics["MAP"] <= 1.0
    # Lyrics carry the identity of a work here: the ASR path must beat chance by far.
    assert evaluation["methods"]["lyrics_asr"]["MAP"] >= 0.6


def test_report_is_self_contained_html(pipeline_run):
    report = pipeline_run["stages"]["evaluate"]["report"]
    html = open(report, encoding="utf-8").read()
    assert html.startswith("<!doctype html>")
    assert len(re.findall(r'src="data:image/png;base64,[A-Za-z0-9+/=]{200,}"', html)) == 2
    assert "Worst queries" in html and "lyrics_asr" not in re.sub(r"<[^>]+>", "", html).split("Metrics")[0]


def test_index_holds_every_embedded_track(pipeline_run):
    index = pipeline_run["stages"]["index"]
    assert index["tracks"] == sum(s["tracks"] for s in pipeline_run["stages"]["embed"])
    assert index["members"].keys() == {"demo"}


def test_query_finds_the_track_itself_first(pipeline_cfg, pipeline_run, demo_catalogue):
    manifest = pd.read_csv(demo_catalogue)
    track = manifest[manifest.track_id.str.startswith("work")].iloc[0]
    hits = query_file(pipeline_cfg, demo_catalogue.parent / track.path, top_k=3)
    assert list(hits.columns) == ["rank", "track_id", "work_id", "catalogue", "score"]
    assert hits.iloc[0].track_id == track.track_id and hits.iloc[0].score > 0.99


def test_second_run_does_no_stage_work(pipeline_cfg, pipeline_run, demo_catalogue):
    again = run_pipeline(pipeline_cfg, str(demo_catalogue), "demo", train=True)
    assert again["ingest"]["skipped"]
    for stage, summaries in again["stages"].items():
        summaries = summaries if isinstance(summaries, list) else [summaries]
        assert all(s["skipped"] for s in summaries), stage


def test_indexing_another_catalogue_adds_without_rebuilding(pipeline_cfg, pipeline_run, demo_catalogue):
    # A second catalogue: three of the demo's tracks under another manifest in the same root.
    second = demo_catalogue.parent / "second.csv"
    pd.read_csv(demo_catalogue).head(3).to_csv(second, index=False)
    from livi_tasks.pipeline import run_stage_over_shards
    from livi_tasks.stages.catalogue import ingest_catalogue

    ingest_catalogue(pipeline_cfg, second, "second")
    for stage in ("vocal", "segments"):
        run_stage_over_shards(pipeline_cfg, stage, "second")
    run_stage_over_shards(pipeline_cfg, "embed", "second", model=pipeline_run["model"])
    result = build_catalogue_index(pipeline_cfg, ["second"])
    assert not result["rebuilt"] and result["added"] == ["second"]
    assert result["tracks"] == pipeline_run["stages"]["index"]["tracks"] + 3
    # The added tracks' vocal segments join the chunks their queries are re-ranked by.
    store = ArtifactStore(pipeline_cfg.store.root)
    index = open_published_index(pipeline_cfg, store)
    added = [index.index.position("second", t) for t in pd.read_csv(second)["track_id"]]
    assert all(len(index.chunks.of_rows(np.array([p])).vectors) for p in added if p is not None)
    assert sorted(ArtifactStore(pipeline_cfg.store.root).read_pointer("_index/CURRENT.json")["members"]) == [
        "demo",
        "second",
    ]
