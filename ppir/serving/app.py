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
"""
from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..data.image_io import encode_image
from .pool import PredictorPool
from .protocol import (RequestError, decode_base64, decode_request_image, paddlex_error, paddlex_image_field,
                       paddlex_success, parse_json, pipeline_error, pipeline_image_field, pipeline_success,
                       precheck_image_bytes)
from .stats import ServingStats

log = logging.getLogger("ppir.serving")

RESTORE_PATH = "/image-restoration"


@dataclass
class ServingConfig:
    max_pixels: int = 4096 * 4096
    max_body_bytes: int = 0  # 0: derived from max_pixels
    model_name: str = ""
    backend_name: str = ""

    def body_limit(self) -> int:
        if self.max_body_bytes:
            return self.max_body_bytes
        # an uncompressed 16-bit RGB file of max_pixels, base64-encoded, plus the JSON around it
        return int(self.max_pixels * 6 * 4 / 3) + (1 << 20)


def _short(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0][:300]}" if lines else type(e).__name__


def restore_job(raw: bytes, max_pixels: int):
    """What a predictor thread does for one request: decode, restore, encode as PNG, base64."""

    def job(restorer):
        img = decode_request_image(raw, max_pixels)
        h, w = img.shape[:2]
        try:
            out = restorer(img)
        except RequestError:
            raise
        except Exception as e:  # noqa: BLE001 - the model failing is a 500 for this request only
            raise RequestError(500, f"inference failed ({_short(e)})") from e
        if out.shape[:2] != (h, w):
            raise RequestError(500, f"inference returned a {out.shape[1]}x{out.shape[0]} image for a {w}x{h} input")
        png = encode_image(out, ".png")
        return base64.b64encode(png).decode("ascii"), h, w

    return job


def create_app(pool: PredictorPool, config: ServingConfig | None = None, stats: ServingStats | None = None) -> FastAPI:
    """The application over a started `pool` whose backends are callables image -> restored uint8 image."""
    config = config or ServingConfig()
    stats = stats or ServingStats()
    if pool.on_done is None:
        pool.on_done = stats.record_job
    limit = config.body_limit()
    app = FastAPI(title="ppir image restoration", version="1", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.pool, app.state.stats, app.state.config = pool, stats, config

    async def read_body(request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > limit:
            raise RequestError(413, f"the request body has {int(length)} bytes, more than this server accepts "
                                    f"({limit}); send a smaller image")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError(413, f"the request body exceeds {limit} bytes; send a smaller image")
            chunks.append(chunk)
        return b"".join(chunks)

    async def restore(request: Request, field) -> tuple[str, int, int]:
        body = await read_body(request)
        data = parse_json(body)
        if isinstance(data.get("logId"), str) and data["logId"]:
            request.state.log_id = data["logId"][:64]
        raw = decode_base64(field(data))
        size = precheck_image_bytes(raw, config.max_pixels)
        if size:
            request.state.image = f"{size[1]}x{size[0]}"
        future = pool.submit(restore_job(raw, config.max_pixels))
        b64, h, w = await asyncio.wrap_future(future)
        request.state.image = f"{w}x{h}"
        return b64, h, w

    def fail(request: Request, e: BaseException) -> RequestError:
        if not isinstance(e, RequestError):
            log.exception("unexpected failure on %s", request.url.path)
            e = RequestError(500, f"internal error ({_short(e)})")
        request.state.error = e.message
        return e

    @app.middleware("http")
    async def log_requests(request: Request, call_next):
        request.state.log_id = uuid.uuid4().hex
        request.state.error = None
        request.state.image = None
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
        path = request.url.path
        route = ("image-restoration" if path == RESTORE_PATH else "prediction" if path.endswith("/prediction")
                 else path.strip("/") if path in ("/health", "/metrics") else "other")
        stats.record_request(route, status, seconds)
        client = f"{request.client.host}:{request.client.port}" if request.client else "-"
        parts = [f"{request.method} {path} {status} {seconds * 1000:.1f}ms", f"logId={request.state.log_id}",
                 f"client={client}"]
        if request.state.image:
            parts.append(f"image={request.state.image}")
        if request.state.error:
            parts.append(f'error="{request.state.error}"')
        log.log(logging.WARNING if status >= 500 else logging.INFO, " ".join(parts))
        return response

    @app.post(RESTORE_PATH)
    async def image_restoration(request: Request):
        try:
            b64, h, w = await restore(request, paddlex_image_field)
        except Exception as e:  # noqa: BLE001
            err = fail(request, e)
            return JSONResponse(paddlex_error(request.state.log_id, err.status, err.message),
                                status_code=err.status, headers=err.headers)
        return JSONResponse(paddlex_success(request.state.log_id, b64, h, w))

    @app.post("/{name}/prediction")
    async def pipeline_prediction(name: str, request: Request):
        try:
            b64, _, _ = await restore(request, pipeline_image_field)
        except Exception as e:  # noqa: BLE001
            err = fail(request, e)
            return JSONResponse(pipeline_error(err.status, err.message), status_code=err.status,
                                headers=err.headers)
        return JSONResponse(pipeline_success(b64))

    @app.get("/health")
    async def health(request: Request):
        return JSONResponse({"logId": request.state.log_id, "errorCode": 0, "errorMsg": "Healthy",
                             "result": {"model": config.model_name, "backend": config.backend_name,
                                        "workers": pool.workers, "queueSize": pool.queue_size,
                                        "running": pool.running, "waiting": pool.waiting}})

    @app.get("/metrics")
    async def metrics(request: Request, format: str = "json"):  # noqa: A002 - the query parameter's name
        if format == "prometheus":
            return PlainTextResponse(stats.prometheus(pool), media_type="text/plain; version=0.0.4")
        return JSONResponse(stats.snapshot(pool))

    @app.exception_handler(StarletteHTTPException)
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

    @app.exception_handler(Exception)
    async def any_error(request: Request, exc: Exception):  # pragma: no cover - handlers catch everything
        err = fail(request, exc)
        return JSONResponse(paddlex_error(getattr(request.state, "log_id", ""), err.status, err.message),
                            status_code=err.status)

    return app
