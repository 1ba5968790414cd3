"""The FastAPI application: routes, error envelopes, one log line per request.

Routes::

    POST /image-restoration     PaddleX-style envelope (see ``protocol``)
    POST /<name>/prediction     Paddle Serving pipeline format, any service name
    GET  /health                {"logId", "errorCode": 0, "errorMsg": "Healthy", "result": {model, backend, pool}}
    GET  /metrics               request counts and latency percentiles (JSON; ?format=prometheus for text)

Every failure is answered in the envelope of the route that was called, with the HTTP status as error code:
400 malformed (not JSON, bad base64, not an image, zero size), 422 a missing or mistyped field, 413 too many
pixels or too large a body, 503 busy (with Retry-After), 500 inference failed. No request can stop the server:
every exception ends in a response, and the predictor that raised it serves the next request.

The event loop only moves bytes: a request is refused before its body is read when the pool is full, when its
wait would exceed --queue-timeout, when its Content-Length is over the per-request limit (413) or when its body
does not fit in the budget of bytes in flight (``budget``); the body arrives in 64 KB pieces, JSON parsing and
base64 decoding run in a parser thread in short steps (``protocol``), decoding, inference and encoding in a
predictor thread or its child process (``child``), so ``/health`` answers within milliseconds whatever the other
requests carry.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import logging
import sys
import time
import uuid
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from .budget import ByteBudget
from .child import PredictorProcess, restore_png
from .child import short_error as _short
from .pool import PredictorPool
from .protocol import (RequestError, ServerBusy, b64encode_steps, decode_base64, paddlex_error, paddlex_image_field,
                       paddlex_success, parse_json, pipeline_error, pipeline_image_field, pipeline_success,
                       precheck_image_bytes)
from .stats import ServingStats

log = logging.getLogger("ppir.serving")

RESTORE_PATH = "/image-restoration"


@dataclass
class ServingConfig:
    max_pixels: int = 4096 * 4096
    max_body_bytes: int = 0  # 0: derived from max_pixels
    max_inflight_bytes: int = 0  # 0: twice the body limit
    body_timeout: float = 30.0  # seconds without a byte of the body before the request is dropped (408)
    model_name: str = ""
    backend_name: str = ""

    def body_limit(self) -> int:
        if self.max_body_bytes:
            return self.max_body_bytes
        # an uncompressed 16-bit RGB file of max_pixels, base64-encoded, plus the JSON around it
        return int(self.max_pixels * 6 * 4 / 3) + (1 << 20)

    def inflight_limit(self) -> int:
        """Bytes of bodies held at once: at least one largest body besides the share kept for small ones."""
        return max(self.max_inflight_bytes or 2 * self.body_limit(), self.body_limit() * 4 // 3 + 1)


TRIM_AFTER = 8 << 20  # a request body this large is followed by malloc_trim (see release_memory)


def _malloc_trim():
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim if sys.platform.startswith("linux") else None
    except (OSError, AttributeError):  # not glibc
        return None


_TRIM = _malloc_trim()


def release_memory() -> None:
    """Give freed heap memory back to the system (glibc keeps it otherwise: after a burst of large requests the
    server would stay at its peak size). Takes a few ms; runs in a parser thread."""
    if _TRIM is not None:
        _TRIM(0)


def parse_request(body, field, max_pixels: int):
    """What a parser thread does for one request: JSON -> (image file bytes, logId or None, header size or None)."""
    data = parse_json(body)
    log_id = data.get("logId")
    raw = decode_base64(field(data))
    return raw, (log_id[:64] if isinstance(log_id, str) and log_id else None), precheck_image_bytes(raw, max_pixels)


def restore_job(raw, max_pixels: int):
    """What a predictor thread does for one request: decode, restore, encode as PNG (in the thread, or in the
    predictor's child process), base64."""

    def job(restorer):
        if isinstance(restorer, PredictorProcess):
            png, h, w = restorer.restore(raw)
        else:
            png, h, w = restore_png(restorer, raw, max_pixels)
        return b64encode_steps(png), h, w

    return job


# --------------------------------------------------------------------------------------------- the app
def create_app(pool: PredictorPool, config: ServingConfig | None = None, stats: ServingStats | None = None) -> FastAPI:
    """The application over a started `pool` whose backends are callables image -> restored uint8 image, or
    `PredictorProcess`es holding such a callable in a child process. The routes below read what they share from
    ``app.state``: pool, stats, config, budget (bytes in flight) and parser (the JSON/base64 threads)."""
    config = config or ServingConfig()
    stats = stats or ServingStats()
    if pool.on_done is None:
        pool.on_done = stats.record_job
    app = FastAPI(title="ppir image restoration", version="1", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.pool, app.state.stats, app.state.config = pool, stats, config
    app.state.budget = ByteBudget(config.inflight_limit())
    app.state.parser = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="ppir-parse")
    app.middleware("http")(log_requests)
    app.post(RESTORE_PATH)(image_restoration)
    app.post("/{name}/prediction")(pipeline_prediction)
    app.get("/health")(health)
    app.get("/metrics")(metrics)
    app.exception_handler(StarletteHTTPException)(http_error)
    app.exception_handler(Exception)(any_error)
    return app


# ------------------------------------------------------------------------------------------- one request
def declared_length(request: Request) -> int | None:
    """The Content-Length, refused with 413 at once when it is over the per-request limit."""
    limit = request.app.state.config.body_limit()
    length = request.headers.get("content-length")
    if length and length.isdigit():
        if int(length) > limit:
            raise RequestError(413, f"the request body has {int(length)} bytes, more than this server accepts "
                                    f"({limit}); send a smaller image")
        return int(length)
    return None


async def read_body(request: Request, reservation) -> bytearray:
    config = request.app.state.config
    limit = config.body_limit()
    body = bytearray()
    stream = request.stream()
    try:
        while True:
            try:  # a client that stops sending would hold its share of the budget for ever
                chunk = await asyncio.wait_for(anext(stream), config.body_timeout)
            except StopAsyncIteration:
                break
            except asyncio.TimeoutError:
                raise RequestError(408, f"no byte of the request body arrived for {config.body_timeout:g} s "
                                        f"(after {len(body)} bytes); send the body at once") from None
            if len(body) + len(chunk) > limit:
                raise RequestError(413, f"the request body exceeds {limit} bytes; send a smaller image")
            reservation.ensure(len(body) + len(chunk))  # a body without Content-Length reserves as it comes
            body += chunk
    except ClientDisconnect:
        raise RequestError(400, f"the client went away after {len(body)} bytes of the body") from None
    return body


async def restore(request: Request, field) -> tuple[bytes, int, int]:
    state = request.app.state
    # refusals that need no body come first, so that they cost nothing and are answered at once
    length = declared_length(request)
    state.pool.check()
    reservation = state.budget.reserve(length or 0)
    loop = asyncio.get_running_loop()
    try:
        t0 = time.perf_counter()
        body = await read_body(request, reservation)
        # how long the client took to deliver its body: logged, so that a slow upload is not read as a slow
        # server (and a refusal decided after it is still "at once" from the moment the body was there)
        request.state.upload_s = time.perf_counter() - t0
        raw, log_id, size = await loop.run_in_executor(state.parser, parse_request, body, field,
                                                       state.config.max_pixels)
        del body  # the image's bytes are what this request holds from now on
        reservation.resize(len(raw))
        if log_id:
            request.state.log_id = log_id
        if size:
            request.state.image = f"{size[1]}x{size[0]}"
        future = state.pool.submit(restore_job(raw, state.config.max_pixels))
        del raw
        b64, h, w = await asyncio.wrap_future(future)
    finally:
        request.state.large = max(reservation.peak, length or 0) >= TRIM_AFTER
        reservation.release()
    request.state.image = f"{w}x{h}"
    return b64, h, w


def fail(request: Request, e: BaseException) -> RequestError:
    if not isinstance(e, RequestError):
        log.exception("unexpected failure on %s", request.url.path)
        e = RequestError(500, f"internal error ({_short(e)})")
    if isinstance(e, ServerBusy):
        request.app.state.stats.record_rejection(e.reason)
    request.state.error = e.message
    return e


# ------------------------------------------------------------------------------------------------ routes
async def log_requests(request: Request, call_next):
    """Middleware: every request gets a logId, one log line and its place in the stats, whatever happens."""
    request.state.log_id = uuid.uuid4().hex
    request.state.error = None
    request.state.image = None
    request.state.large = False
    request.state.upload_s = None
    t0 = time.perf_counter()
    try:
        response = await call_next(request)
        status = response.status_code
    except Exception as e:  # noqa: BLE001 - last resort: never let an exception reach uvicorn
        log.exception("unhandled error")
        status = 500
        response = JSONResponse(paddlex_error(request.state.log_id, 500, f"internal error ({_short(e)})"),
                                status_code=500)
    seconds = time.perf_counter() - t0
    if request.state.large:  # the route has returned: its body and image are garbage now
        asyncio.get_running_loop().run_in_executor(request.app.state.parser, release_memory)
    path = request.url.path
    route = ("image-restoration" if path == RESTORE_PATH else "prediction" if path.endswith("/prediction")
             else path.strip("/") if path in ("/health", "/metrics") else "other")
    request.app.state.stats.record_request(route, status, seconds)
    client = f"{request.client.host}:{request.client.port}" if request.client else "-"
    parts = [f"{request.method} {path} {status} {seconds * 1000:.1f}ms", f"logId={request.state.log_id}",
             f"client={client}"]
    if request.state.upload_s is not None:
        parts.append(f"upload={request.state.upload_s * 1000:.1f}ms")
    if request.state.image:
        parts.append(f"image={request.state.image}")
    if request.state.error:
        parts.append(f'error="{request.state.error}"')
    log.log(logging.WARNING if status >= 500 else logging.INFO, " ".join(parts))
    return response


async def image_restoration(request: Request):
    try:
        b64, h, w = await restore(request, paddlex_image_field)
    except Exception as e:  # noqa: BLE001
        err = fail(request, e)
        return JSONResponse(paddlex_error(request.state.log_id, err.status, err.message),
                            status_code=err.status, headers=err.headers)
    return Response(paddlex_success(request.state.log_id, b64, h, w), media_type="application/json")


async def pipeline_prediction(name: str, request: Request):
    try:
        b64, _, _ = await restore(request, pipeline_image_field)
    except Exception as e:  # noqa: BLE001
        err = fail(request, e)
        return JSONResponse(pipeline_error(err.status, err.message), status_code=err.status,
                            headers=err.headers)
    return Response(pipeline_success(b64), media_type="application/json")


async def health(request: Request):
    state = request.app.state
    pool = state.pool
    return JSONResponse({"logId": request.state.log_id, "errorCode": 0, "errorMsg": "Healthy",
                         "result": {"model": state.config.model_name, "backend": state.config.backend_name,
                                    "workers": pool.workers, "queueSize": pool.queue_size,
                                    "running": pool.running, "waiting": pool.waiting,
                                    "inflightBytes": state.budget.in_use}})


async def metrics(request: Request, format: str = "json"):  # noqa: A002 - the query parameter's name
    state = request.app.state
    if format == "prometheus":
        return PlainTextResponse(state.stats.prometheus(state.pool, state.budget),
                                 media_type="text/plain; version=0.0.4")
    return JSONResponse(state.stats.snapshot(state.pool, state.budget))


async def http_error(request: Request, exc: StarletteHTTPException):
    if exc.status_code == 404:
        msg = (f"no route {request.url.path}; use POST {RESTORE_PATH}, POST /<name>/prediction, GET /health "
               f"or GET /metrics")
    elif exc.status_code == 405:
        msg = f"method {request.method} is not allowed on {request.url.path}"
    else:
        msg = str(exc.detail)
    request.state.error = msg
    body = (pipeline_error(exc.status_code, msg) if request.url.path.endswith("/prediction")
            else paddlex_error(getattr(request.state, "log_id", ""), exc.status_code, msg))
    return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def any_error(request: Request, exc: Exception):  # pragma: no cover - handlers catch everything
    err = fail(request, exc)
    return JSONResponse(paddlex_error(getattr(request.state, "log_id", ""), err.status, err.message),
                        status_code=err.status)
