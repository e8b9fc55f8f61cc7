"""The index stage with both backends and with takedowns, on the embedded demo catalogue."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from livi_testing import copy_served_store

from livi_tasks.core.chunk_match import chunk_match, fused_scores
from livi_tasks.core.config import IndexBackendConfig, LiviConfig
from livi_tasks.core.store import ArtifactStore
from livi_tasks.core.takedowns import active_takedowns
from livi_tasks.pipeline import run_stage_over_shards
from livi_tasks.stages.catalogue import ingest_catalogue
from livi_tasks.stages.index_artifacts import close_index, open_index, read_chunks
from livi_tasks.stages.lineage import artifact_for, current_ingest, shard_ids, track_segment_embeddings
from livi_tasks.stages.retrieval import QuerySession, build_catalogue_index, current_index, open_published_index
from livi_tasks.stages.takedown import restore, take_down

LIVI = Path(sys.executable).parent / "livi"


def milvus(cfg: LiviConfig) -> LiviConfig:
    return cfg.model_copy(update={"index_backend": IndexBackendConfig(name="milvus")})


def top_k(index, k: int) -> dict[str, list[str]]:
    """Each indexed track's top k (itself excluded), by its stored vector."""
    rows = index.live_rows()
    vectors = np.stack([index.vector(c, t) for c, t in zip(rows["catalogue"], rows["track_id"])])
    hits = index.search(vectors, k + 1).rows
    ranked = {}
    for query, group in hits.groupby("query"):
        own = rows.iloc[query]["track_id"]
        ranked[own] = [t for t in group.sort_values("rank")["track_id"] if t != own][:k]
    return ranked


def test_milvus_lite_gives_the_same_top_k_as_faiss_flat_on_the_demo(demo_indexed, tmp_path):
    cfg = copy_served_store(demo_indexed["cfg"], tmp_path / "data")
    store = ArtifactStore(cfg.store.root)
    faiss_index = open_index(current_index(store)[1])
    assert faiss_index.kind == "flat"
    built = build_catalogue_index(milvus(cfg), ["demo"])
    assert built["backend"] == "milvus" and built["rebuilt"] and built["tracks"] == faiss_index.count
    pointer, artifact = current_index(store)
    assert pointer["backend"] == "milvus" and artifact.key.stage == "milvus"
    milvus_index = open_index(artifact)
    try:
        assert top_k(milvus_index, 5) == top_k(faiss_index, 5)
    finally:
        close_index(milvus_index)


def test_a_takedown_republishes_the_index_without_the_track_and_a_restore_brings_it_back(
    demo_indexed, demo_catalogue, tmp_path
):
    cfg = copy_served_store(demo_indexed["cfg"], tmp_path / "data")
    store = ArtifactStore(cfg.store.root)
    before, _ = current_index(store)
    ingest_before = current_ingest(store, "demo")
    gone = open_index(current_index(store)[1]).rows["track_id"].iloc[0]
    done = subprocess.run(
        [str(LIVI), "--data-root", cfg.store.root, "--set", "transcribe.whisper_model=tiny.en", "remove"]
        + ["--catalogue", "demo", "--track", gone, "--reason", "licence expired", "--by", "rights"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout[done.stdout.index("{") :])
    assert result["record"]["by"] == "rights" and result["record"]["via"] == "cli"
    assert result["index"]["deleted"] == [f"demo/{gone}"] and result["index"]["tracks"] == before["tracks"] - 1
    pointer, artifact = current_index(store)
    assert pointer["takedowns"] == [f"demo/{gone}"] and not pointer["rebuilt"]  # a delete, no rebuild
    published = open_index(artifact)
    assert published.live_count == before["tracks"] - 1 and published.vector("demo", gone) is None

    # A rerun of the index build (as livi_index does) keeps it out: the key includes the takedown.
    again = build_catalogue_index(cfg, ["demo"], store=store)
    assert again["skipped"] and again["fingerprint"] == pointer["fingerprint"]
    back = restore(cfg, "demo", gone, "licence renewed", "rights", store=store)
    assert back["index"]["fingerprint"] == before["fingerprint"]  # the index it had before
    assert active_takedowns(store) == {}

    # While taken down, a rerun of the ingest quarantines it with who and why; restored, the
    # catalogue ingests as before the takedown (the same key: nothing downstream reruns).
    take_down(cfg, "demo", gone, "licence expired", "rights", store=store)
    ingested = ingest_catalogue(cfg, demo_catalogue, "demo", store=store)
    assert not ingested["skipped"] and ingested["tracks"] == ingest_before["tracks"] - 1
    quarantine = store.artifact("demo", "ingest", "all", ingested["fingerprint"]).read_table("quarantine")
    (reason,) = quarantine.loc[quarantine["track_id"] == gone, "reason"]
    assert reason.startswith("taken down by rights at ") and "licence expired" in reason
    # The catalogue must be embedded again before its index can change: the record waits for it.
    waiting = restore(cfg, "demo", gone, "renewed", "rights", store=store)
    assert not waiting["index"]["republished"] and "embed" in waiting["index"]["reason"]
    assert ingest_catalogue(cfg, demo_catalogue, "demo", store=store)["fingerprint"] == ingest_before["fingerprint"]


def test_milvus_takedowns_delete_and_restore_in_the_collection(demo_indexed, tmp_path):
    cfg = milvus(copy_served_store(demo_indexed["cfg"], tmp_path / "data"))
    store = ArtifactStore(cfg.store.root)
    first = build_catalogue_index(cfg, ["demo"], store=store)
    published = open_index(current_index(store)[1])
    gone = published.rows["track_id"].iloc[1]
    close_index(published)
    removed = take_down(cfg, "demo", gone, "dmca", "ops", store=store)
    assert removed["index"]["deleted"] == [f"demo/{gone}"] and removed["index"]["tracks"] == first["tracks"] - 1
    index = open_index(current_index(store)[1])
    try:
        assert index.vector("demo", gone) is None and gone not in set(top_k(index, 20).get(gone, []))
        assert all(gone not in ranked for ranked in top_k(index, 20).values())
    finally:
        close_index(index)
    restored = restore(cfg, "demo", gone, "error", "ops", store=store)
    assert restored["index"]["tracks"] == first["tracks"]


def test_livi_query_leaves_out_a_takedown_recorded_after_the_index(demo_indexed, demo_catalogue, tmp_path):
    cfg = copy_served_store(demo_indexed["cfg"], tmp_path / "data")
    store = ArtifactStore(cfg.store.root)
    manifest = pd.read_csv(demo_catalogue)
    indexed = set(open_index(current_index(store)[1]).rows["track_id"])
    track = next(row for row in manifest.itertuples() if row.track_id in indexed)
    take_down(cfg, "demo", track.track_id, "test", "me", store=store, reindex=False)
    assert open_published_index(cfg, store).live_count == len(indexed) - 1
    answer = QuerySession(cfg, store).query(demo_catalogue.parent / track.path, top_k=20)
    assert not answer.error and track.track_id not in set(answer.hits["track_id"])


def test_a_takedown_republishes_in_the_published_backend_whatever_the_config(demo_indexed, tmp_path):
    cfg = copy_served_store(demo_indexed["cfg"], tmp_path / "data")
    store = ArtifactStore(cfg.store.root)
    build_catalogue_index(milvus(cfg), ["demo"], store=store)
    published = open_index(current_index(store)[1])
    gone = published.rows["track_id"].iloc[2]
    close_index(published)
    take_down(cfg, "demo", gone, "dmca", "ops", store=store)  # cfg says faiss: the index stays in Milvus
    pointer, _ = current_index(store)
    assert pointer["backend"] == "milvus" and not pointer["rebuilt"] and pointer["takedowns"] == [f"demo/{gone}"]


def test_the_index_is_centred_on_its_tracks_mean_and_queries_meet_the_stored_vectors_there(
    demo_indexed, demo_catalogue, tmp_path
):
    cfg = copy_served_store(demo_indexed["cfg"], tmp_path / "data")
    store = ArtifactStore(cfg.store.root)
    published = open_published_index(cfg, store)
    assert demo_indexed["index"]["centred"] and published.centre is not None
    assert demo_indexed["evaluation"]["centred"]
    manifest = pd.read_csv(demo_catalogue)
    track = next(row for row in manifest.itertuples() if published.index.position("demo", row.track_id) is not None)
    # The query embedding is centred on the stored mean: the file finds its own stored vector, exactly.
    answer = QuerySession(cfg, store).query(demo_catalogue.parent / track.path, top_k=5)
    assert answer.hits["track_id"].iloc[0] == track.track_id and answer.hits["score"].iloc[0] > 0.999
    versions = published.versions_of("demo", track.track_id, published.index.position("demo", track.track_id), 4)
    assert list(versions.rows["track_id"]) == list(answer.hits["track_id"].iloc[1:])

    uncentred = cfg.model_copy(update={"index": cfg.index.model_copy(update={"centre": False})})
    rebuilt = build_catalogue_index(uncentred, ["demo"], store=store)
    assert rebuilt["rebuilt"] and not rebuilt["centred"] and open_published_index(uncentred, store).centre is None


def test_the_index_keeps_each_tracks_chunks_and_reranks_its_candidates_by_them(demo_indexed, tmp_path):
    cfg = copy_served_store(demo_indexed["cfg"], tmp_path / "data")
    store = ArtifactStore(cfg.store.root)
    assert demo_indexed["index"]["chunks"] and cfg.index.chunk_weight > 0
    assert demo_indexed["evaluation"]["methods"]["livi_audio"]["reranked"]
    published = open_published_index(cfg, store)
    rows = published.index.live_rows()
    embedded = [
        artifact_for(cfg, store, "demo", "embed", shard, (published.pointer["model"],))
        for shard in shard_ids(store, "demo")
    ]
    stored = track_segment_embeddings(embedded, rows["track_id"])
    assert len(published.chunks.vectors) == sum(len(c) for c in stored) and all(len(c) for c in stored)

    # A track's versions are its top candidates by cosine, ordered by the fused score.
    catalogue, track_id = rows["catalogue"].iloc[0], rows["track_id"].iloc[0]
    position = published.index.position(catalogue, track_id)
    versions = published.versions_of(catalogue, track_id, position, 5)
    candidates = versions.ids[0]
    cosines = (
        published.index.vector(catalogue, track_id)
        @ np.stack(
            [published.index.vector(*published.index.rows.iloc[p][["catalogue", "track_id"]]) for p in candidates]
        ).T
    )
    own = published.chunks.of_rows(np.array([position])).vectors
    matched = chunk_match(own, published.chunks.of_rows(candidates))
    np.testing.assert_allclose(versions.scores[0], fused_scores(cosines, matched, cfg.index.chunk_weight), atol=1e-5)
    assert (np.diff(versions.scores[0]) <= 1e-6).all()

    # A takedown drops the track's chunks with its vector; the restore puts them back.
    take_down(cfg, catalogue, track_id, "dmca", "ops", store=store)
    without = read_chunks(current_index(store)[1])
    assert position not in set(without.owners) and len(without.owners) == len(published.chunks.owners) - len(own)
    restore(cfg, catalogue, track_id, "error", "ops", store=store)
    assert position in set(read_chunks(current_index(store)[1]).owners)

    # Without re-ranking the index keeps no chunks (a rebuild) and answers by the track vectors alone.
    plain = cfg.model_copy(update={"index": cfg.index.model_copy(update={"chunk_weight": 0.0})})
    rebuilt = build_catalogue_index(plain, ["demo"], store=store)
    assert rebuilt["rebuilt"] and not rebuilt["chunks"] and read_chunks(current_index(store)[1]) is None
    assert open_published_index(plain, store).chunks is None


def test_an_index_outgrown_by_a_new_catalogue_is_rebuilt_and_learns_its_mean_again(
    demo_indexed, demo_catalogue, tmp_path
):
    cfg = copy_served_store(demo_indexed["cfg"], tmp_path / "data")
    store = ArtifactStore(cfg.store.root)
    small = demo_catalogue.parent / "small.csv"
    manifest = pd.read_csv(demo_catalogue)
    manifest[manifest["track_id"].str.startswith("work")].head(3).to_csv(small, index=False)
    ingest_catalogue(cfg, small, "small", store=store)
    run_stage_over_shards(cfg, "embed", "small")
    store.fs.rm(f"{cfg.store.root}/_index/CURRENT.json")  # start over: an index of the small catalogue alone
    first = build_catalogue_index(cfg, ["small"], store=store)
    assert first["rebuilt"] and first["tracks"] == 3 and not first["centred"]  # too few tracks for a mean
    grown = build_catalogue_index(cfg, ["demo"], store=store)
    assert (
        grown["rebuilt"] and grown["centred"] and grown["tracks"] == first["tracks"] + demo_indexed["index"]["tracks"]
    )
    # A catalogue smaller than the index is added to it, on the mean it has.
    ingest_catalogue(cfg, small, "again", store=store)
    run_stage_over_shards(cfg, "embed", "again")
    added = build_catalogue_index(cfg, ["again"], store=store)
    assert not added["rebuilt"] and added["added"] == ["again"]
