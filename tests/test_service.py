"""`livi serve` as its users meet it: every endpoint and its errors on the indexed demo catalogue
(real Whisper tiny.en encoder, real Faiss), a takedown, and an index swap under concurrent requests."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from livi_testing import copy_served_store, write_tone

from livi_tasks.core.config import LiviConfig
from livi_tasks.core.store import ArtifactStore
from livi_tasks.core.takedowns import active_takedowns
from livi_tasks.service.app import BackgroundServer, bind_check, create_app
from livi_tasks.stages.retrieval import build_catalogue_index, current_index

TOKEN = "test-token-0123456789abcdef"
EVERY_INTERFACE = "0.0.0.0"  # never bound: the tests check that the service refuses it
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIVI = Path(sys.executable).parent / "livi"


def serve_settings(cfg: LiviConfig, **serve) -> LiviConfig:
    return cfg.model_copy(update={"serve": cfg.serve.model_copy(update={"refresh_s": 0.2, **serve})})


def wait_ready(client, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get("/ready")
        if response.status_code == 200:
            return response.json()
        time.sleep(0.3)
    raise AssertionError(f"not ready after {timeout} s: {response.json()}")


def with_token(cfg: LiviConfig, **serve) -> LiviConfig:
    from pydantic import SecretStr

    return serve_settings(cfg, token=SecretStr(TOKEN), **serve)


@pytest.fixture(scope="module")
def manifest(demo_catalogue: Path) -> pd.DataFrame:
    table = pd.read_csv(demo_catalogue)
    table["file"] = [str(demo_catalogue.parent / path) for path in table["path"]]
    return table


@pytest.fixture(scope="module")
def client(served_store: LiviConfig):
    """The service with a token, over a private copy of the indexed demo store."""
    with TestClient(create_app(with_token(served_store, max_query_s=120, max_upload_mb=20))) as client:
        wait_ready(client)
        yield client


def test_health_and_ready_name_the_index_and_the_model(client, served_store, demo_indexed):
    assert client.get("/health").json()["status"] == "ok"
    ready = client.get("/ready").json()
    pointer, _ = current_index(ArtifactStore(served_store.store.root))
    assert ready["ready"] and ready["index"] == pointer["fingerprint"] and ready["model"] == pointer["model"]
    assert ready["tracks"] == demo_indexed["index"]["tracks"] and ready["backend"] == "faiss"
    assert ready["query_workers"] * served_store.serve.query_threads <= ready["thread_budget"]


def test_catalogues_list_counts_model_index_time_and_latest_metrics(client, demo_indexed):
    answer = client.get("/v1/catalogues", headers=AUTH).json()
    (demo,) = answer["catalogues"]
    assert demo["name"] == "demo" and demo["tracks"] == demo_indexed["index"]["tracks"]
    assert demo["model"] == demo_indexed["index"]["model"] and demo["indexed_at"]
    assert demo["metrics"]["methods"]["livi_audio"]["MAP"] == demo_indexed["evaluation"]["methods"]["livi_audio"]["MAP"]


def test_tracks_are_found_by_id_and_by_work(client, manifest):
    first = manifest.iloc[0]
    by_id = client.get("/v1/tracks", params={"q": first.track_id.upper()}, headers=AUTH).json()["tracks"]
    assert first.track_id in [t["track_id"] for t in by_id]
    by_work = client.get("/v1/tracks", params={"q": first.work_id}, headers=AUTH).json()["tracks"]
    assert {t["work_id"] for t in by_work} == {first.work_id} and len(by_work) >= 2
    by_title = client.get("/v1/tracks", params={"q": first.title[2:14].lower()}, headers=AUTH).json()["tracks"]
    assert (first.track_id, first.title) in [(t["track_id"], t["title"]) for t in by_title]
    assert client.get("/v1/tracks", params={"q": "no such track"}, headers=AUTH).json()["tracks"] == []


def test_versions_of_a_track_come_from_its_stored_embedding(client, manifest):
    track = manifest.iloc[0]
    answer = client.get(f"/v1/tracks/demo/{track.track_id}/versions", params={"k": 5}, headers=AUTH).json()
    versions = answer["versions"]
    assert len(versions) == 5 and [v["rank"] for v in versions] == [1, 2, 3, 4, 5]
    assert track.track_id not in [v["track_id"] for v in versions]  # not itself
    assert [v["score"] for v in versions] == sorted((v["score"] for v in versions), reverse=True)
    assert all(v["audio_url"].startswith("/v1/audio/demo/") for v in versions)
    assert answer["timings"]["search_ms"] < 50


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/v1/tracks/nope/x/versions", 404, "unknown catalogue 'nope'"),
        ("/v1/tracks/demo/no-such-track/versions", 404, "unknown track 'no-such-track'"),
        ("/v1/tracks/demo/work-01-v1/versions?k=0", 422, ""),
        ("/v1/tracks/demo/work-01-v1/versions?k=100000", 422, ""),
        ("/v1/audio/demo/..%2F..%2F..%2Fetc%2Fpasswd", 404, "unknown track '../../../etc/passwd'"),
        ("/v1/audio/nope/x", 404, "unknown catalogue"),
        ("/v1/reports/nope", 404, "no evaluation of catalogue 'nope'"),
        ("/v1/reports/nope/report.html", 404, "no evaluation"),
    ],
)
def test_unknown_things_are_404_and_bad_values_422(client, path, status, says):
    response = client.get(path, headers=AUTH)
    assert response.status_code == status, response.text
    if says:
        assert says in response.json()["detail"]


def test_audio_is_served_by_track_id(client, manifest):
    track = manifest.iloc[1]
    response = client.get(f"/v1/audio/demo/{track.track_id}", headers=AUTH)
    assert response.status_code == 200 and response.headers["content-type"].startswith("audio/")
    assert response.content == Path(track.file).read_bytes()


def upload(client, name: str, data: bytes, **params):
    return client.post("/v1/query", params=params, files={"file": (name, data)}, headers=AUTH)


def test_an_uploaded_file_gets_ranked_versions_with_stage_timings(client, manifest):
    track = manifest.iloc[2]
    response = upload(client, Path(track.file).name, Path(track.file).read_bytes(), k=3)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["versions"][0]["track_id"] == track.track_id and answer["versions"][0]["score"] > 0.99
    assert len(answer["versions"]) == 3
    timings = answer["timings"]
    assert set(timings) == {"upload_s", "queue_s", "decode_s", "embed_s", "search_ms", "total_s"}
    assert 0 < timings["embed_s"] < timings["total_s"]
    assert list(client.app.state.service.uploads.iterdir()) == []  # the temporary file is gone


def silent_wav(seconds: float) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(int(seconds * 8000), np.float32), 8000, format="WAV")
    return buffer.getvalue()


def test_bad_uploads_get_a_one_line_reason(client, manifest, tmp_path):
    tone = write_tone(tmp_path / "long.wav", seconds=130, rate=8000).read_bytes()
    truncated = Path(manifest.iloc[0].file).read_bytes()[:2000]
    cases = [
        (upload(client, "notes.txt", b"hello"), 422, "unsupported file type '.txt'"),
        (upload(client, "noise.wav", b"RIFF\x00\x00\x00\x00WAVEjunk"), 422, "not usable audio: unreadable audio"),
        (upload(client, Path(manifest.iloc[0].file).name, truncated), 422, "not usable audio"),
        (upload(client, "silence.wav", silent_wav(5)), 422, "silent"),
        (upload(client, "long.wav", tone), 413, "longer than the 120 s"),
        (upload(client, "big.wav", b"\0" * 21_000_000), 413, "upload larger than 20 MB"),
        (client.post("/v1/query", data={"x": "y"}, headers=AUTH), 422, "no file"),
    ]
    for response, status, says in cases:
        assert response.status_code == status, response.text
        detail = response.json()["detail"]
        assert says in detail and "\n" not in detail, detail
    assert list(client.app.state.service.uploads.iterdir()) == []


def test_a_full_queue_answers_503_with_retry_after(client, manifest):
    pool = client.app.state.service.pool
    taken = 0
    try:
        while taken < pool.capacity:
            pool.reserve()
            taken += 1
        response = upload(client, "song.wav", Path(manifest.iloc[0].file).read_bytes())
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) >= 1 and "queue is full" in response.json()["detail"]
    finally:
        for _ in range(taken):
            pool.release()


def test_reports_give_the_latest_report_every_run_and_a_plot(client, demo_indexed):
    answer = client.get("/v1/reports/demo", headers=AUTH).json()
    assert answer["latest"]["fingerprint"] == demo_indexed["evaluation"]["fingerprint"]
    assert answer["runs"] and all("MAP" in run["methods"]["livi_audio"] for run in answer["runs"])
    report = client.get(answer["report_url"], headers=AUTH)
    assert report.status_code == 200 and "Cover retrieval on" in report.text
    plot = client.get(answer["plot_url"], headers=AUTH)
    assert plot.status_code == 200 and plot.content.startswith(b"\x89PNG")


def test_the_page_and_the_api_docs(client):
    page = client.get("/")
    assert page.status_code == 200 and "LIVI search" in page.text
    assert "frame-ancestors" in page.headers["content-security-policy"]
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/health", "/ready", "/v1/catalogues", "/v1/query", "/v1/tracks/{catalogue}/{track_id}/versions"):
        assert path in paths, sorted(paths)


def test_a_token_guards_reads_and_every_mutation(client):
    assert client.get("/v1/catalogues").status_code == 401
    assert client.get("/v1/catalogues", headers={"Authorization": "Bearer wrong"}).status_code == 401
    response = client.delete("/v1/tracks/demo/work-01-v1", params={"reason": "x"})
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert client.get("/v1/takedowns").status_code == 401
    assert client.post("/v1/admin/reload").status_code == 401
    assert client.get("/health").status_code == client.get("/ready").status_code == 200


def test_cors_is_off_by_default(client):
    preflight = client.options(
        "/v1/catalogues", headers={"Origin": "http://elsewhere.example", "Access-Control-Request-Method": "GET"}
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_without_a_token_only_loopback_and_no_takedowns(served_store):
    bind_check(served_store, "127.0.0.1")
    with pytest.raises(ValueError, match=f"serve.host {EVERY_INTERFACE}: without serve.token"):
        bind_check(served_store, EVERY_INTERFACE)
    done = subprocess.run(
        [str(LIVI), "--data-root", served_store.store.root, "serve", "--host", EVERY_INTERFACE],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stderr.strip().startswith(f"error: serve.host {EVERY_INTERFACE}"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    with TestClient(create_app(serve_settings(served_store), start=False)) as open_client:
        response = open_client.delete("/v1/tracks/demo/work-01-v1", params={"reason": "x"})
        assert response.status_code == 401 and "serve.token" in response.json()["detail"]


def test_a_takedown_leaves_every_answer_at_once_and_is_recorded(demo_indexed, manifest, tmp_path):
    cfg = copy_served_store(demo_indexed["cfg"], tmp_path / "data")
    gone = manifest.iloc[3]
    with TestClient(create_app(with_token(cfg))) as client:
        wait_ready(client)
        before = client.get("/ready").json()["index"]
        response = client.delete(
            f"/v1/tracks/demo/{gone.track_id}",
            params={"reason": "licence expired", "by": "rights@example"},
            headers=AUTH,
        )
        assert response.status_code == 200, response.text
        # At once: no poll in between.
        assert client.get(f"/v1/tracks/demo/{gone.track_id}/versions", headers=AUTH).status_code == 404
        assert client.get(f"/v1/audio/demo/{gone.track_id}", headers=AUTH).status_code == 404
        answer = upload(client, Path(gone.file).name, Path(gone.file).read_bytes(), k=20).json()
        assert gone.track_id not in [v["track_id"] for v in answer["versions"]]
        indexed = client.app.state.service.watcher.state.published.index.rows["track_id"]
        for track in set(indexed) - {gone.track_id}:
            versions = client.get(f"/v1/tracks/demo/{track}/versions?k=20", headers=AUTH).json()["versions"]
            assert gone.track_id not in [v["track_id"] for v in versions]
        assert client.delete(
            f"/v1/tracks/demo/{gone.track_id}", params={"reason": "again"}, headers=AUTH
        ).status_code in (404, 409)
        # The record, then a republished index without the track (swapped in by the service).
        (record,) = active_takedowns(ArtifactStore(cfg.store.root)).values()
        assert (record.by, record.reason, record.via) == ("rights@example", "licence expired", "api")
        assert client.post("/v1/admin/reload", headers=AUTH).json()["outcome"] in ("unchanged", "index", "takedowns")
        listed = client.get("/v1/takedowns", headers=AUTH).json()["takedowns"]
        assert [t["track_id"] for t in listed] == [gone.track_id]
        deadline = time.monotonic() + 60
        while client.get("/ready").json()["index"] == before:
            assert time.monotonic() < deadline, "the republished index was not swapped in"
            time.sleep(0.2)
        pointer, _ = current_index(ArtifactStore(cfg.store.root))
        assert pointer["takedowns"] == [f"demo/{gone.track_id}"]
        restored = client.post(f"/v1/tracks/demo/{gone.track_id}/restore", params={"reason": "renewed"}, headers=AUTH)
        assert restored.status_code == 200
        deadline = time.monotonic() + 60
        while client.get(f"/v1/tracks/demo/{gone.track_id}/versions", headers=AUTH).status_code != 200:
            assert time.monotonic() < deadline, "the restored track did not come back"
            time.sleep(0.2)


def test_an_index_swap_under_concurrent_requests_fails_none(demo_indexed, manifest, tmp_path):
    """Clients hammer /versions while new indexes are published (flat, hnsw, flat...): every
    request succeeds, and the service swapped while they ran."""
    cfg = copy_served_store(demo_indexed["cfg"], tmp_path / "data")
    app = create_app(serve_settings(cfg, refresh_s=0.05))
    tracks: list[str] = []
    failures, done = [], threading.Event()
    counts = [0] * 4

    def hammer(worker: int, url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            while not done.is_set():
                track = tracks[counts[worker] % len(tracks)]
                try:
                    response = http.get(f"/v1/tracks/demo/{track}/versions", params={"k": 3})
                    if response.status_code != 200 or len(response.json()["versions"]) != 3:
                        failures.append((response.status_code, response.text[:200]))
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                counts[worker] += 1

    with BackgroundServer(app) as url:
        with httpx.Client(base_url=url) as http:
            wait_ready(http)
            service = app.state.service
            swaps = service.watcher.swaps
            tracks.extend(service.watcher.state.published.index.rows["track_id"])
            workers = [threading.Thread(target=hammer, args=(i, url)) for i in range(4)]
            for worker in workers:
                worker.start()
            try:
                for kind in ("hnsw", "flat", "hnsw", "flat"):
                    published = build_catalogue_index(
                        cfg.model_copy(update={"index": cfg.index.model_copy(update={"kind": kind})}), ["demo"]
                    )
                    deadline = time.monotonic() + 30
                    while http.get("/ready").json()["index"] != published["fingerprint"]:
                        assert time.monotonic() < deadline, "the new index was not swapped in"
                        time.sleep(0.05)
                    time.sleep(0.3)
            finally:
                done.set()
                for worker in workers:
                    worker.join()
    assert failures == []
    assert service.watcher.swaps - swaps >= 4 and sum(counts) > 40, (service.watcher.swaps, counts)


def test_the_service_answers_from_a_milvus_lite_index_as_from_faiss(client, demo_indexed, manifest, tmp_path):
    from livi_tasks.core.config import IndexBackendConfig

    cfg = copy_served_store(demo_indexed["cfg"], tmp_path / "data")
    milvus_cfg = cfg.model_copy(update={"index_backend": IndexBackendConfig(name="milvus")})
    assert build_catalogue_index(milvus_cfg, ["demo"])["backend"] == "milvus"
    with TestClient(create_app(serve_settings(milvus_cfg))) as milvus_client:
        assert wait_ready(milvus_client)["backend"] == "milvus"
        for track in client.app.state.service.watcher.state.published.index.rows["track_id"][:4]:
            path = f"/v1/tracks/demo/{track}/versions?k=5"
            expected = [v["track_id"] for v in client.get(path, headers=AUTH).json()["versions"]]
            assert [v["track_id"] for v in milvus_client.get(path).json()["versions"]] == expected
