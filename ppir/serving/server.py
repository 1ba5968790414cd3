"""`python deploy/serving/server.py --model_dir DIR`: serve an exported network over HTTP (FastAPI + uvicorn).

Start-up builds `--workers` predictors (one per thread, each with `--cpu-threads` threads) and runs each once
(`--warmup`), binds the socket and prints one line ``ppir serving: listening on http://HOST:PORT`` (stderr) when
requests can be sent; with ``--port 0`` the system picks a free port and that line tells which. Then one log line
per request. SIGINT/SIGTERM stop it cleanly. A bad model folder, option or busy port is one ``error:`` line and
exit code 2.

With ``--engine ray`` the predictors are Ray Serve replicas instead (``ppir.scaleout.serving``): this process stays
the HTTP front, with the same app, limits and answers, and its pool threads forward decoded images to the replicas.
"""
from __future__ import annotations

import dataclasses
import gc
import logging
import os
import socket
import sys
from typing import Callable

from ..errors import ConfigError
from ..infer.backend_registry import EXPORT, names as backend_names, option_names
from ..infer.backends import BackendError, make_backend, warm_up, warmup_input
from ..infer.deploy_info import read_deploy_info
from ..infer.restorer import ImageRestorer
from ..scaleout.cluster import require_ray
from ..infer.memory import DEFAULT_BUDGET
from . import DEFAULT_QUEUE_SIZE
from .idle import DEFAULT_HEAD_TIMEOUT, protocol_class, with_head_timeout
from .opencv_limit import DEFAULT_MAX_PIXELS  # also OpenCV's limit, set before OpenCV loads

DEFAULT_MAX_MEMORY = DEFAULT_BUDGET  # what requests may make the predictors use together (1280M: under 2 GB a child)
BACKENDS = backend_names(EXPORT)


@dataclasses.dataclass
class ServerSettings:
    """What the server is asked to do (`ppir serve` fills it from its flags; their help in ppir/commands/serve.py
    says what each field means)."""
    model_dir: str
    backend: str = "paddle"
    model_file: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    queue_size: int = DEFAULT_QUEUE_SIZE
    queue_timeout: float = 30.0
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_memory: int | None = None  # bytes, all predictors together; None: DEFAULT_MAX_MEMORY
    max_body_mb: float | None = None
    max_inflight_mb: float | None = None
    body_timeout: float = 30.0
    cpu_threads: int | None = None
    enable_mkldnn: bool = False
    use_gpu: bool = False
    tile: int | None = None
    tile_overlap: int | None = None
    predictor_process: str = "auto"  # auto | yes | no
    warmup: int = 1
    max_connections: int = 256
    header_timeout: float = DEFAULT_HEAD_TIMEOUT
    log_level: str = "info"
    # --engine ray (ppir.scaleout.serving)
    engine: str = "local"
    replicas: int = 1
    min_replicas: int | None = None
    max_replicas: int | None = None
    max_ongoing_requests: int = 4
    max_batch_size: int = 4
    batch_wait_ms: float = 5.0
    ray_address: str | None = None


def predictor_budget(args) -> int:
    """Each predictor's share of --max-memory (bytes; 0: no limit)."""
    total = DEFAULT_MAX_MEMORY if getattr(args, "max_memory", None) is None else args.max_memory
    return total // max(1, args.workers)


def make_restorer(args, info, threads: int, batch_size: int = 1):
    """One backend + ImageRestorer for a predictor thread or a Ray Serve replica (which restores up to
    `batch_size` images of one size per network call), warmed up (`--warmup` runs on a small input)."""
    settings = dict(use_gpu=args.use_gpu, threads=threads, enable_mkldnn=args.enable_mkldnn,
                    model_file=args.model_file)
    # one set of flags for both kinds; ONNX Runtime has no oneDNN switch
    backend = make_backend(args.backend, args.model_dir, info,
                           {k: v for k, v in settings.items() if k in option_names(args.backend)})
    restorer = ImageRestorer(backend, info, args.tile, args.tile_overlap, batch_size=batch_size,
                             max_memory=predictor_budget(args))
    if args.warmup > 0:
        try:
            warm_up(backend, info, args.warmup, side=32)
        except Exception as e:  # noqa: BLE001 - a model that cannot run is the user's to fix, in one line
            msg = (str(e).strip().splitlines() or [""])[0][:300]
            shape = warmup_input(info, side=32).shape
            raise BackendError(f"{args.model_dir}: the warm-up run on a {'x'.join(map(str, shape))} input failed "
                               f"({type(e).__name__}: {msg}); check the export, or pass --warmup 0 to serve "
                               f"anyway") from None
    return restorer


def http_parser() -> str:
    """uvicorn's HTTP parser: httptools (C) when installed, else h11 (pure Python). Bodies the server refuses
    unread are still received and discarded by the parser; h11 spends ~45 ms of the event loop's time per 125 MB,
    and under the abuse run of bench_serving (14 refused 125 MB bodies) the worst /health went 121-167 ms with h11
    against 34-67 ms with httptools (same machine, back to back)."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        logging.getLogger("ppir.serving").warning(
            "httptools is not installed: uvicorn falls back to its pure-Python HTTP parser, which keeps the event "
            "loop busy under large uploads (pip install httptools)")
        return "h11"
    return "httptools"


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run(s: ServerSettings) -> int:
    """Serve until SIGINT/SIGTERM; 0. Bad settings, a bad model folder or a busy port raise ConfigError /
    BackendError (one line, exit 2) before the server listens."""
    if s.engine == "ray":
        require_ray()  # before any work: one line saying how to install it
    log = _configure_logging(s.log_level)
    check_settings(s)
    uvicorn = _web_stack()
    from .app import create_app  # FastAPI: only once _web_stack has said how to install it
    from .pool import PredictorPool
    from .stats import ServingStats

    _set_opencv_limit(s.max_pixels, log)
    config = serving_config(s)
    info = read_deploy_info(s.model_dir)
    config.model_name = info.model_name
    stats = ServingStats()
    predictors = _predictors(s, info)
    pool = PredictorPool(predictors.factory, predictors.count, s.queue_size, s.queue_timeout,
                         on_done=stats.record_job)
    sock = None
    try:
        pool.start()  # BackendError (missing model.onnx, bad program) -> one line, exit 2
        config.backend_name = pool.backends[0].backend.name
        # the device the predictors really run on (the backend's own word: "cpu", "gpu:0"), not the flag asked for
        device = getattr(pool.backends[0].backend, "device", "") or "unknown"
        sock = _bind(s.host, s.port)
        server = uvicorn.Server(uvicorn.Config(
            create_app(pool, config, stats), log_level=s.log_level, access_log=False, log_config=None,
            limit_concurrency=s.max_connections, timeout_keep_alive=5,
            http=with_head_timeout(protocol_class(http_parser()), s.header_timeout)))
        log.info("%s on %s, device %s, %s, queue %d, max %d pixels, bodies at most %.0f MB each, %.0f MB in flight",
                 info.model_name, config.backend_name, device, predictors.description, s.queue_size, s.max_pixels,
                 config.body_limit() / (1 << 20), config.inflight_limit() / (1 << 20))
        _serve(server, sock)
    finally:
        pool.close(timeout=5)
        if sock is not None:
            sock.close()
        if predictors.stop is not None:
            predictors.stop()
    return 0


def _configure_logging(level: str) -> logging.Logger:
    handler = logging.StreamHandler(sys.stderr)  # own handlers: paddle configures the root logger on import
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("ppir.serving", "uvicorn"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False
        logger.setLevel(getattr(logging, level.upper()))
    return logging.getLogger("ppir.serving")


def check_settings(s: ServerSettings) -> None:
    """ConfigError (one line naming the flag) for a value the server cannot work with."""
    for name, low in (("workers", 1), ("max_pixels", 1), ("max_connections", 1)):
        if getattr(s, name) < low:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least {low}, got {getattr(s, name)}")
    if s.queue_size < 0:
        raise ConfigError(f"--queue-size must be at least 0, got {s.queue_size}")
    if not 0 <= s.port <= 65535:
        raise ConfigError(f"--port must be in 0..65535, got {s.port}")
    if s.cpu_threads is not None and s.cpu_threads < 1:
        raise ConfigError(f"--cpu-threads must be at least 1, got {s.cpu_threads}")
    if s.header_timeout < 0:
        raise ConfigError(f"--header-timeout must be at least 0, got {s.header_timeout}")
    for name in ("max_body_mb", "max_inflight_mb", "queue_timeout", "body_timeout"):
        if getattr(s, name) is not None and getattr(s, name) <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {getattr(s, name)}")
    if not os.path.isdir(s.model_dir):
        raise ConfigError(f"--model_dir {s.model_dir}: no such folder")


def _web_stack():
    """uvicorn (and FastAPI, which the app needs), or ConfigError saying how to install them."""
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as e:
        raise ConfigError(f"serving needs fastapi and uvicorn ({e}); pip install -r requirements.txt") from None
    return uvicorn


def _set_opencv_limit(max_pixels: int, log: logging.Logger) -> None:
    """OpenCV's own decoder limit, for images whose size is not read from the header first. OpenCV reads it once,
    when it is loaded: the server's process sets it first (opencv_limit.ensure); this is for callers that have
    not loaded OpenCV yet. Whether it took effect is logged."""
    os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(max_pixels)
    from .protocol import opencv_pixel_limit_active

    if opencv_pixel_limit_active(max_pixels):
        log.info("OpenCV pixel limit in force: %d", max_pixels)
    else:
        log.warning("OpenCV was loaded before OPENCV_IO_MAX_IMAGE_PIXELS was set (start the server with "
                    "deploy/serving/server.py): images whose size is not read from their header are checked "
                    "only after decoding")


def serving_config(s: ServerSettings):
    """The app's limits (`ServingConfig`); ConfigError when --max-inflight-mb cannot hold one largest body."""
    from .app import ServingConfig

    config = ServingConfig(max_pixels=s.max_pixels,
                           max_body_bytes=int(s.max_body_mb * (1 << 20)) if s.max_body_mb else 0,
                           max_inflight_bytes=int(s.max_inflight_mb * (1 << 20)) if s.max_inflight_mb else 0,
                           body_timeout=s.body_timeout)
    least = (config.body_limit() * 4 // 3 + 1) / (1 << 20)
    if s.max_inflight_mb and s.max_inflight_mb < least:
        raise ConfigError(f"--max-inflight-mb must be at least 4/3 of the largest body ({least:.1f} MB), so that one "
                          f"fits beside the share kept for small requests; got {s.max_inflight_mb:g}")
    return config


@dataclasses.dataclass
class Predictors:
    """How the pool's predictors are made: factory(i), how many, the log's words for them, and what stops the
    Ray deployment behind them (None: nothing to stop)."""
    factory: Callable[[int], object]
    count: int
    description: str
    stop: Callable[[], None] | None = None


def _predictors(s: ServerSettings, info) -> Predictors:
    """Threads of this process, child processes (Paddle Inference holds the GIL), or Ray Serve replicas."""
    if s.engine == "ray":
        from ..scaleout.serving import RemoteRestorer, deploy, replica_counts

        _, _, most = replica_counts(s)
        remote = dataclasses.replace(s, model_dir=os.path.abspath(s.model_dir),  # replicas run in other folders
                                     model_file=os.path.abspath(s.model_file) if s.model_file else None)
        handle, backend_name, stop = deploy(s, info, make_restorer, (remote, info, s.cpu_threads or 1,
                                                                     s.max_batch_size))
        count = most * s.max_ongoing_requests  # pool threads only wait on replicas
        budget = 0 if remote.tile else predictor_budget(remote)
        return Predictors(lambda i: RemoteRestorer(handle, backend_name, budget), count,
                          f"{count} request(s) at once x {s.cpu_threads or 1} CPU(s) per replica", stop)
    threads = s.cpu_threads or max(1, (os.cpu_count() or 1) // s.workers)
    if s.predictor_process == "yes" or (s.predictor_process == "auto" and s.backend == "paddle"):
        from .child import PredictorProcess

        return Predictors(lambda i: PredictorProcess(make_restorer, (s, info, threads), s.max_pixels,
                                                     f"ppir-predictor-{i}"),
                          s.workers, f"{s.workers} predictor(s) in child processes x {threads} thread(s)")
    return Predictors(lambda i: make_restorer(s, info, threads), s.workers,
                      f"{s.workers} predictor(s) x {threads} thread(s)")


def _serve(server, sock: socket.socket) -> None:
    """Announce the address, then run uvicorn on `sock` until a signal stops it."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"ppir serving: listening on http://{shown}:{port} (pid {os.getpid()})", file=sys.stderr, flush=True)
    # Everything imported so far (Paddle, OpenCV, FastAPI: ~130k objects) lives as long as the server; a full
    # collection walks them all (~80 ms on a 2-core Xeon), a pause that /health and every request would
    # feel. Freezing moves them out of the collector's sight; requests' own garbage is still collected.
    gc.freeze()
    # The event loop shares the GIL with the body parsers and the predictor threads; at the default 5 ms
    # switch interval a thread that wants it can wait several intervals. 1 ms lets the loop answer sooner:
    # paired abuse runs (bench_serving, 14 huge bodies, busy 2-core machine) gave worst /health 241 -> 41 ms
    # and 159 -> 136 ms.
    sys.setswitchinterval(0.001)
    server.run(sockets=[sock])
