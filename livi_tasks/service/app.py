"""The HTTP API and web page of `livi serve` (FastAPI).

Reads answer from the state the request takes from the ``IndexWatcher``; audio queries run in the
bounded ``AudioPool``. No value of a request becomes a path: catalogue and track are looked up in
the loaded index and ingest tables (audio is served from the file the ingest recorded), an upload
goes to a private temporary file named by the service and removed when the request ends.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations, which name
# values of create_app (the limits of the configuration), at definition time.
import contextlib
import hmac
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from livi_tasks.core.audio import AudioError
from livi_tasks.core.config import LiviConfig
from livi_tasks.core.names import CATALOGUE_NAME_PATTERN
from livi_tasks.core.store import ArtifactStore
from livi_tasks.core.takedowns import TakedownError, active_takedowns, takedown_log
from livi_tasks.service.queries import AudioPool, QueryTooLong, QueueFull, answer_query, pool_size, thread_budget
from livi_tasks.service.reports import (
    evaluated_catalogues,
    evaluation_runs,
    latest_metrics,
    map_plot,
    report_html,
)
from livi_tasks.service.state import IndexWatcher, NotReady, ServiceState
from livi_tasks.stages.catalogue import AUDIO_SUFFIXES

log = logging.getLogger(__name__)

API_VERSION = "1"
UPLOAD_PATH = "/v1/query"
AUDIO_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".mp3": "audio/mpeg"}
COPY_CHUNK = 1 << 20
SEARCH_LIMIT = 50
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "wav, flac, ogg or mp3"}
                    },
                }
            }
        },
    }
}


Reason = Annotated[str, Query(min_length=1, max_length=500, description="Why (recorded).")]
By = Annotated[str | None, Query(max_length=200, description="Who asks (recorded; default api).")]


class UploadTooLarge(Exception):
    """The request body passed serve.max_upload_mb while it was read."""


class UploadLimit:
    """ASGI middleware: refuse an upload over the limit by its Content-Length at once, and stop
    reading one without (chunked) as soon as it passes the limit."""

    def __init__(self, app, limit_bytes: int) -> None:
        self.app = app
        self.limit = limit_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != UPLOAD_PATH:
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            response = JSONResponse({"detail": _too_large(self.limit)}, status_code=413)
            await response(scope, receive, send)
            return
        received = 0

        async def limited():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise UploadTooLarge()
            return message

        await self.app(scope, limited, send)


class SecurityHeaders:
    """ASGI middleware: no content sniffing, no referrer, framing only by ``frame_ancestors`` (the
    Airflow UI's nav entry shows the page in a frame); a route's own policy is kept."""

    def __init__(self, app, frame_ancestors: str) -> None:
        self.app = app
        self.extra = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"content-security-policy", f"frame-ancestors {frame_ancestors}".encode()),
        ]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in self.extra if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, with_headers)


def _too_large(limit: int) -> str:
    return f"upload larger than {limit / 1e6:g} MB (serve.max_upload_mb)"


def _not_found(what: str) -> HTTPException:
    return HTTPException(status_code=404, detail=what)


class Service:
    """What the routes share: config, store, the watcher, the audio pool and the upload folder."""

    def __init__(self, cfg: LiviConfig, store: ArtifactStore) -> None:
        self.cfg = cfg
        self.store = store
        self.budget = thread_budget(cfg.serve)
        self.pool = AudioPool(pool_size(cfg.serve), cfg.serve.query_queue, cfg.serve.query_threads)
        self.watcher = IndexWatcher(cfg, store, self.prepare_model)
        self.uploads = Path(tempfile.mkdtemp(prefix="livi-serve-uploads-"))
        self.started = time.time()
        self.models: set[str] = set()

    def prepare_model(self, model: str) -> None:
        """Load an encoder (and the vocal probe, by embedding a second of silence) before a state needs it."""
        if model in self.models or not self.cfg.serve.audio_queries:
            return
        from livi_tasks.stages.audio_embed import embed_samples

        self.pool.set_threads()
        embed_samples(self.cfg, np.zeros(16_000, np.float32), self.store, model=model, name="warm-up")
        self.models.add(model)

    def start(self) -> None:
        import faiss

        faiss.omp_set_num_threads(1)  # one search per request thread; requests are the parallelism
        self.watcher.start()

    def stop(self) -> None:
        self.watcher.stop()
        self.pool.shutdown()
        shutil.rmtree(self.uploads, ignore_errors=True)


def _known_catalogue(state: ServiceState, catalogue: str) -> None:
    if catalogue not in state.published.pointer["members"]:
        raise _not_found(f"unknown catalogue {catalogue!r}")


def create_app(cfg: LiviConfig, store: ArtifactStore | None = None, start: bool = True) -> FastAPI:
    """The service's ASGI app; ``start`` loads the index in the background when the app starts."""
    store = store or ArtifactStore(cfg.store.root)
    service = Service(cfg, store)
    token = cfg.serve.token.get_secret_value() if cfg.serve.token else None

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        if start:
            service.start()
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(
        title="LIVI search",
        version=API_VERSION,
        summary="Which tracks are versions (covers, live takes, remixes) of this one? Lyrics-informed, ASR-free.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_middleware(UploadLimit, limit_bytes=int(cfg.serve.max_upload_mb * 1e6))
    if cfg.serve.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cfg.serve.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization"],
        )

    app.add_middleware(SecurityHeaders, frame_ancestors=cfg.serve.frame_ancestors)

    bearer = HTTPBearer(auto_error=False)

    def _check(credentials: HTTPAuthorizationCredentials | None, needed: bool, mutation: bool) -> None:
        if mutation and token is None:
            raise HTTPException(
                status_code=401,
                detail="takedowns need a token: start the service with serve.token (LIVI__SERVE__TOKEN)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not needed:
            return
        given = credentials.credentials if credentials and credentials.scheme.lower() == "bearer" else ""
        if not given or not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(
                status_code=401,
                detail="missing or wrong bearer token (Authorization: Bearer <serve.token>)",
                headers={"WWW-Authenticate": "Bearer"},
            )

    async def read_access(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        _check(credentials, needed=token is not None and not cfg.serve.public_reads, mutation=False)

    async def write_access(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        _check(credentials, needed=True, mutation=True)

    @contextlib.contextmanager
    def current_state():
        try:
            with service.watcher.using() as state:
                yield state
        except NotReady as exc:
            raise HTTPException(status_code=503, detail=f"not ready: {exc}", headers={"Retry-After": "5"}) from None

    # (async: FastAPI runs a plain def dependency on the thread pool, a hop that cost more than a search)
    # -- health ---------------------------------------------------------------------------------
    @app.get("/health", tags=["health"], summary="The process answers.")
    def health() -> dict:
        return {"status": "ok", "uptime_s": round(time.time() - service.started, 1)}

    @app.get("/ready", tags=["health"], summary="Index and encoder loaded (their ids), else 503 with the reason.")
    def ready() -> JSONResponse:
        state = service.watcher.state
        if state is None:
            return JSONResponse({"ready": False, "reason": service.watcher.last_error}, status_code=503)
        return JSONResponse(
            {
                "ready": True,
                "index": state.fingerprint,
                "backend": state.published.pointer.get("backend", "faiss"),
                "kind": state.published.index.kind,
                "model": state.model,
                "tracks": state.published.live_count,
                "loaded_at": state.loaded_at,
                "indexed_at": state.indexed_at,
                "swaps": service.watcher.swaps,
                "last_error": service.watcher.last_error,
                "query_workers": service.pool.workers,
                "query_capacity": service.pool.capacity,
                "thread_budget": service.budget,
            }
        )

    # -- catalogues and tracks ------------------------------------------------------------------
    @app.get("/v1/catalogues", tags=["catalogues"], dependencies=[Depends(read_access)])
    def catalogues() -> dict:
        """Indexed catalogues: track counts, the encoder model, when the index was built, latest metrics."""
        with current_state() as state:
            counts = state.catalogue_counts
            evaluated = set(evaluated_catalogues(store))
            return {
                "index": state.fingerprint,
                "model": state.model,
                "indexed_at": state.indexed_at,
                "catalogues": [
                    {
                        "name": name,
                        "tracks": int(counts.get(name, 0)),
                        "model": state.model,
                        "index": state.fingerprint,
                        "indexed_at": state.indexed_at,
                        "metrics": latest_metrics(store, name) if name in evaluated else None,
                        "report_url": f"/v1/reports/{name}" if name in evaluated else None,
                    }
                    for name in sorted(state.published.pointer["members"])
                ],
            }

    @app.get("/v1/tracks", tags=["catalogues"], dependencies=[Depends(read_access)])
    def find_tracks(
        q: Annotated[str, Query(min_length=1, max_length=200, description="Part of a track id, title or work id.")],
        catalogue: Annotated[str | None, Query(pattern=CATALOGUE_NAME_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=SEARCH_LIMIT)] = 20,
    ) -> dict:
        """Indexed tracks whose id, title or work contains ``q`` (case-insensitive)."""
        with current_state() as state:
            found = state.find(q, catalogue, limit)
            return {"query": q, "tracks": [state.track(int(position)) for position in found]}

    @app.get("/v1/tracks/{catalogue}/{track_id:path}/versions", tags=["search"], dependencies=[Depends(read_access)])
    async def versions(
        catalogue: str,
        track_id: str,
        k: Annotated[int, Query(ge=1, le=cfg.serve.max_k, description="How many versions.")] = 10,
    ) -> JSONResponse:
        """The versions of a catalogue track, from its stored embedding (no audio work)."""
        started = time.perf_counter()
        with current_state() as state:
            _known_catalogue(state, catalogue)
            position = state.is_live(catalogue, track_id)
            if position is None:
                raise _not_found(f"unknown track {track_id!r} in catalogue {catalogue!r}")

            def search():
                return state.published.versions_of(catalogue, track_id, position, k)

            searched = time.perf_counter()
            if state.published.index.backend == "faiss":
                result = search()  # a millisecond of CPU: on the event loop, cheaper than a hop to a thread
            else:
                result = await run_in_threadpool(search)  # a Milvus call waits on its server: off the loop
            search_ms = (time.perf_counter() - searched) * 1000
            payload = {
                "track": state.track(position),
                "versions": state.hits(result.ids[0], result.scores[0]),
                "index": state.fingerprint,
            }
        # A plain JSONResponse: FastAPI's generic encoding of the answer cost more than the search.
        payload["timings"] = {
            "search_ms": round(search_ms, 3),
            "total_ms": round((time.perf_counter() - started) * 1e3, 3),
        }
        return JSONResponse(payload)

    @app.get("/v1/audio/{catalogue}/{track_id:path}", tags=["catalogues"], dependencies=[Depends(read_access)])
    def audio(catalogue: str, track_id: str) -> FileResponse:
        """The audio of an indexed track, by its id (the file the ingest recorded)."""
        with current_state() as state:
            _known_catalogue(state, catalogue)
            if state.is_live(catalogue, track_id) is None:
                raise _not_found(f"unknown track {track_id!r} in catalogue {catalogue!r}")
            uri = state.audio_file(catalogue, track_id)
            if uri is None or not os.path.isfile(uri):
                raise _not_found(f"no audio file for {catalogue}/{track_id} on this machine")
            return FileResponse(uri, media_type=AUDIO_TYPES.get(Path(uri).suffix.lower(), "application/octet-stream"))

    # -- audio queries --------------------------------------------------------------------------
    @app.post(
        UPLOAD_PATH,
        tags=["search"],
        dependencies=[Depends(read_access)],
        openapi_extra=UPLOAD_BODY,
        responses={413: {"description": "upload too large or too long"}, 422: {"description": "not usable audio"}},
    )
    async def query(
        request: Request, k: Annotated[int, Query(ge=1, le=cfg.serve.max_k, description="How many versions.")] = 10
    ) -> dict:
        """Versions of an uploaded audio file (field ``file``: wav, flac, ogg or mp3), ranked, with
        each stage's time. 503 with Retry-After when every worker is busy and the queue is full."""
        started = time.perf_counter()
        if not cfg.serve.audio_queries:
            raise HTTPException(status_code=503, detail="audio queries are off on this service (serve.audio_queries)")
        if service.watcher.state is None:
            raise HTTPException(status_code=503, detail=f"not ready: {service.watcher.last_error}")
        try:
            service.pool.reserve()
        except QueueFull as exc:
            raise HTTPException(
                status_code=503, detail=str(exc), headers={"Retry-After": str(exc.retry_after_s)}
            ) from None
        path = None
        try:
            path, filename = await _receive_upload(request, service)
            uploaded = time.perf_counter()
            with current_state() as state:
                result = await service.pool.run(lambda: answer_query(cfg, store, state, str(path), k))
                hits = state.hits(result.pop("ids"), result.pop("scores"))
                index = state.fingerprint
        except QueryTooLong as exc:
            raise HTTPException(status_code=413, detail=str(exc)) from None
        except AudioError as exc:
            raise HTTPException(status_code=422, detail=f"not usable audio: {exc}") from None
        finally:
            service.pool.release()
            if path is not None:
                path.unlink(missing_ok=True)
        timings = {name: round(result[name], 4) for name in ("queue_s", "decode_s", "embed_s")}
        timings |= {"upload_s": round(uploaded - started, 4), "search_ms": round(result["search_ms"], 3)}
        timings["total_s"] = round(time.perf_counter() - started, 4)
        top = hits[0]["track_id"] if hits else "-"
        log.info("query %s (%.0f s of audio): %s first, %s", filename, result["duration_s"], top, timings)
        return {
            "query": {"filename": filename, "duration_s": round(result["duration_s"], 3)},
            "versions": hits,
            "index": index,
            "timings": timings,
        }

    # -- reports --------------------------------------------------------------------------------
    def _evaluated(catalogue: str) -> None:
        if catalogue not in evaluated_catalogues(store):
            raise _not_found(f"no evaluation of catalogue {catalogue!r}")

    @app.get("/v1/reports/{catalogue}", tags=["reports"], dependencies=[Depends(read_access)])
    def report(catalogue: str) -> dict:
        """The latest evaluation of a catalogue and the metrics of every evaluated run (MAP per run)."""
        _evaluated(catalogue)
        runs = evaluation_runs(store, catalogue)
        return {
            "catalogue": catalogue,
            "latest": latest_metrics(store, catalogue),
            "runs": runs,
            "report_url": f"/v1/reports/{catalogue}/report.html",
            "plot_url": f"/v1/reports/{catalogue}/map.png",
        }

    @app.get("/v1/reports/{catalogue}/report.html", tags=["reports"], dependencies=[Depends(read_access)])
    def report_page(catalogue: str) -> HTMLResponse:
        """The latest evaluation report (self-contained HTML)."""
        _evaluated(catalogue)
        return HTMLResponse(report_html(store, catalogue))

    @app.get("/v1/reports/{catalogue}/map.png", tags=["reports"], dependencies=[Depends(read_access)])
    def report_plot(catalogue: str) -> Response:
        """MAP of each method over every evaluated run, as a PNG."""
        _evaluated(catalogue)
        return Response(map_plot(catalogue, evaluation_runs(store, catalogue)), media_type="image/png")

    # -- takedowns ------------------------------------------------------------------------------
    def _takedown_by(by: str | None) -> str:
        return (by or "").strip() or "api"

    @app.delete("/v1/tracks/{catalogue}/{track_id:path}", tags=["takedowns"], dependencies=[Depends(write_access)])
    def take_down(catalogue: str, track_id: str, reason: Reason, by: By = None) -> dict:
        """Take a track out of the index and of every answer at once; recorded with who, when and why.
        Later ingests and index builds leave it out until it is restored."""
        from livi_tasks.stages.takedown import reindex_published
        from livi_tasks.stages.takedown import take_down as record_take_down

        with current_state() as state:
            _known_catalogue(state, catalogue)
            if state.published.index.position(catalogue, track_id) is None:
                raise _not_found(f"unknown track {track_id!r} in catalogue {catalogue!r}")
        try:
            done = record_take_down(
                cfg, catalogue, track_id, reason, _takedown_by(by), via="api", store=store, reindex=False
            )
        except TakedownError as exc:
            raise HTTPException(status_code=409 if "already" in str(exc) else 422, detail=str(exc)) from None
        record = done["record"]
        service.watcher.take_down_now(_record(record))
        service.watcher.reindex_later(lambda: reindex_published(cfg, store))
        log.info("takedown of %s/%s by %s via the API: %s", catalogue, track_id, record["by"], record["reason"])
        return {"record": record, "in_answers": False}

    @app.post(
        "/v1/tracks/{catalogue}/{track_id:path}/restore", tags=["takedowns"], dependencies=[Depends(write_access)]
    )
    def restore(catalogue: str, track_id: str, reason: Reason, by: By = None) -> dict:
        """Undo a takedown: the track comes back into the index and answers once the index is republished."""
        from livi_tasks.stages.takedown import reindex_published
        from livi_tasks.stages.takedown import restore as record_restore

        try:
            done = record_restore(
                cfg, catalogue, track_id, reason, _takedown_by(by), via="api", store=store, reindex=False
            )
        except TakedownError as exc:
            raise HTTPException(status_code=404 if "not taken down" in str(exc) else 422, detail=str(exc)) from None
        service.watcher.reindex_later(lambda: reindex_published(cfg, store))
        return {"record": done["record"]}

    @app.get("/v1/takedowns", tags=["takedowns"], dependencies=[Depends(write_access)])
    def takedowns(history: Annotated[bool, Query(description="Every record, not only active takedowns.")] = False):
        """Active takedowns (or the whole history) with who, when and why."""
        records = takedown_log(store) if history else list(active_takedowns(store).values())
        return {"takedowns": [record.as_dict() for record in records]}

    @app.post("/v1/admin/reload", tags=["admin"], dependencies=[Depends(write_access)])
    def reload() -> dict:
        """Look for a newly published index or takedowns now (the service also does every serve.refresh_s)."""
        outcome = service.watcher.check_now()
        state = service.watcher.state
        return {"outcome": outcome, "index": state.fingerprint if state else None, "error": service.watcher.last_error}

    # -- the page -------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        text = resources.files("livi_tasks.service").joinpath("static/index.html").read_text()
        return HTMLResponse(text, headers={"Content-Security-Policy": _page_policy(cfg)})

    @app.get("/icon.svg", include_in_schema=False)
    def icon() -> Response:
        """The icon of the Airflow UI's navigation entry."""
        svg = resources.files("livi_tasks.service").joinpath("static/icon.svg").read_bytes()
        return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})

    @app.exception_handler(UploadTooLarge)
    async def too_large(_: Request, __: UploadTooLarge) -> JSONResponse:
        return JSONResponse({"detail": _too_large(int(cfg.serve.max_upload_mb * 1e6))}, status_code=413)

    return app


def _page_policy(cfg: LiviConfig) -> str:
    return (
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self' 'unsafe-inline'; "
        f"script-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors {cfg.serve.frame_ancestors}"
    )


def _record(payload: dict[str, Any]):
    from livi_tasks.core.takedowns import TakedownRecord

    return TakedownRecord(**payload)


async def _receive_upload(request: Request, service: Service) -> tuple[Path, str]:
    """The uploaded file copied to a private temporary file (named by the service, with the checked
    suffix); 413 past the size limit, 422 for a missing file or an unsupported type."""
    try:
        form = await request.form(max_files=1, max_fields=4, max_part_size=64 * 1024)
    except UploadTooLarge:
        raise
    except HTTPException as exc:
        raise HTTPException(status_code=422, detail=f"not a multipart upload: {exc.detail}") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPException(status_code=422, detail="no file: send the audio as multipart field 'file'")
        filename = Path(upload.filename or "").name
        suffix = Path(filename).suffix.lower()
        if suffix not in AUDIO_SUFFIXES:
            raise HTTPException(
                status_code=422,
                detail=f"unsupported file type {suffix or '(none)'!r}: send {', '.join(sorted(AUDIO_SUFFIXES))}",
            )
        path = service.uploads / f"{uuid.uuid4().hex}{suffix}"
        with open(path, "wb") as handle:
            while chunk := await upload.read(COPY_CHUNK):
                handle.write(chunk)
        return path, filename
    finally:
        await form.close()


def bind_check(cfg: LiviConfig, host: str) -> None:
    """Refuse to listen beyond this machine without a token (one-line ValueError)."""
    import ipaddress

    loopback = host == "localhost"
    with contextlib.suppress(ValueError):
        loopback = loopback or ipaddress.ip_address(host).is_loopback
    if not loopback and cfg.serve.token is None:
        raise ValueError(
            f"serve.host {host}: without serve.token the service binds a loopback address only "
            "(set LIVI__SERVE__TOKEN, or use --host 127.0.0.1)"
        )


def run_server(cfg: LiviConfig, host: str | None = None, port: int | None = None) -> None:
    """Serve until stopped (uvicorn, one process: the model and the index are loaded once)."""
    import uvicorn

    host = host or cfg.serve.host
    port = cfg.serve.port if port is None else port
    bind_check(cfg, host)
    app = create_app(cfg)
    log.info("LIVI search on http://%s:%d/ (API docs /docs), data root %s", host, port, cfg.store.root)
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False, timeout_graceful_shutdown=10)


class BackgroundServer:
    """uvicorn serving ``app`` on a thread of this process (tests, benchmarks): ``with
    BackgroundServer(app) as url: ...``; binds 127.0.0.1 on a free port unless told otherwise."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        self.config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, name="livi-serve", daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the service did not start")
            time.sleep(0.05)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)


def wait_until_ready(url: str, process=None, log: Path | None = None, timeout: float = 3600) -> dict:
    """Poll ``url``/ready until the service answers 200 (its JSON), for tests and benchmarks that
    start one; a ``process`` (Popen) that exits first ends the wait with its ``log``'s tail."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log.read_text()[-3000:] if log else ""
            raise RuntimeError(f"livi serve exited with {process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=5) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {timeout:.0f} s")
