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

import argparse
import gc
import logging
import os
import socket
import sys

from ..cli import BOOL
from ..errors import ConfigError
from ..infer.backends import BackendError, make_backend, warm_up, warmup_input
from ..infer.deploy_info import read_deploy_info
from ..infer.memory import DEFAULT_BUDGET, memory_arg
from ..infer.restorer import ImageRestorer
from ..scaleout.cluster import add_ray_address_arg, require_ray
from ..scaleout.serving import add_serve_args
from .idle import DEFAULT_HEAD_TIMEOUT, protocol_class, with_head_timeout

DEFAULT_MAX_PIXELS = 4096 * 4096  # also OpenCV's limit, set before OpenCV loads (opencv_limit.py)
DEFAULT_MAX_MEMORY = DEFAULT_BUDGET  # what requests may make the predictors use together (1280M: under 2 GB a child)
DEFAULT_QUEUE_SIZE = 64  # a burst of a few dozen clients waits its turn instead of being refused
BACKENDS = ("paddle", "onnxruntime")


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Serve an exported ppir network over HTTP: POST /image-restoration (PaddleX envelope, "
                    "base64 image in and out), POST /<name>/prediction (Paddle Serving pipeline format), "
                    "GET /health, GET /metrics. FastAPI + uvicorn over Paddle Inference or ONNX Runtime.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Examples:\n"
               "  python deploy/serving/server.py --model_dir inference/hinet\n"
               "  python deploy/serving/server.py --model_dir inference/hinet --backend onnxruntime --workers 2 "
               "--port 9000\n"
               "  python deploy/serving/client.py --url http://127.0.0.1:8080 --image noisy.png --output clean.png\n\n"
               "Concurrency: --workers predictors run requests in parallel (threads of this one process, each "
               "predictor with --cpu-threads threads); at most --queue-size more wait. A request gets 503 with a "
               "Retry-After header at once, before its body is read, when the queue is full, when its expected "
               "wait exceeds --queue-timeout, or when its body would take the bodies in flight past "
               "--max-inflight-mb. See deploy/serving/README.md.")
    add = p.add_argument
    add("--model_dir", "--model-dir", dest="model_dir", required=True,
        help="export folder from tools/export_model.py (inference.yml, inference.json/.pdiparams; model.onnx "
             "from tools/export_onnx.py for --backend onnxruntime)")
    add("--backend", choices=BACKENDS, default="paddle",
        help="paddle: Paddle Inference (default); onnxruntime: ONNX Runtime on <model_dir>/model.onnx")
    add("--model_file", "--model-file", dest="model_file", default=None,
        help="run this program instead of the default one (e.g. an int8 .onnx from tools/quant_report.py)")
    add("--host", default="127.0.0.1",
        help="address to listen on (default: %(default)s, this machine only; 0.0.0.0 for every interface)")
    add("--port", type=int, default=8080, help="TCP port (default: %(default)s; 0: any free port, printed)")
    add("--workers", type=int, default=1,
        help="predictors, i.e. requests restored in parallel (threads, default: %(default)s; --engine ray: replicas "
             "x --max-ongoing-requests threads forward to the replicas instead)")
    add("--queue-size", "--queue_size", dest="queue_size", type=int, default=DEFAULT_QUEUE_SIZE,
        help="requests allowed to wait for a predictor; more get 503 (default: %(default)s)")
    add("--queue-timeout", "--queue_timeout", dest="queue_timeout", type=float, default=30.0,
        help="seconds a request may wait for a predictor: one whose expected wait (from recent run times) is "
             "longer gets 503 at once, one that still waited longer gets 503 then (default: %(default)s)")
    add("--max-pixels", "--max_pixels", dest="max_pixels", type=int, default=DEFAULT_MAX_PIXELS,
        help="largest image accepted, in pixels (H x W); larger ones get 413 (default: %(default)s = 4096^2)")
    add("--max-memory", "--max_memory", dest="max_memory", type=memory_arg, default=None, metavar="SIZE",
        help="memory for restoring, all predictors together (e.g. 8G; 0: no limit; default: 1280M): each predictor "
             "restores an image in tiles when it would not fit its share whole, and answers 413 naming the limit "
             "when even tiles would not (judged from the header before decoding)")
    add("--max-body-mb", "--max_body_mb", dest="max_body_mb", type=float, default=None,
        help="largest request body in MB; larger ones get 413 (default: enough for an uncompressed image of "
             "--max-pixels)")
    add("--max-inflight-mb", "--max_inflight_mb", dest="max_inflight_mb", type=float, default=None,
        help="MB of request bodies held at once, all requests together (being received, parsed or queued); a "
             "request that would exceed it gets 503 before its body is read; at least 4/3 of --max-body-mb, as "
             "bodies over 1/16 of it may only fill 3/4 of it together (default: 2 x --max-body-mb)")
    add("--body-timeout", "--body_timeout", dest="body_timeout", type=float, default=30.0,
        help="seconds a request may go without sending a byte of its body before it gets 408 and its share of "
             "--max-inflight-mb is freed (default: %(default)s)")
    add("--cpu-threads", "--cpu_threads", dest="cpu_threads", type=int, default=None,
        help="CPU threads of each predictor (default: cores / workers, at least 1)")
    add("--enable-mkldnn", "--enable_mkldnn", dest="enable_mkldnn", **BOOL, default=False,
        help="Paddle Inference: use oneDNN (faster on CPU)")
    add("--use-gpu", "--use_gpu", dest="use_gpu", **BOOL, default=False, help="run on the GPU (CUDA builds)")
    add("--tile", type=int, default=None,
        help="restore in tiles of this size (memory then grows with the tile, not the image; default from "
             "inference.yml, 0: whole images)")
    add("--tile-overlap", "--tile_overlap", dest="tile_overlap", type=int, default=None,
        help="tile overlap in pixels (default from inference.yml)")
    add("--predictor-process", "--predictor_process", dest="predictor_process", choices=("auto", "yes", "no"),
        default="auto",
        help="run each predictor in a child process: auto (default) does so for --backend paddle, whose runs hold "
             "Python's GIL and would stall /health and every other request meanwhile; no: threads of this process")
    add("--warmup", type=int, default=1,
        help="run each predictor this many times on a small input before serving (default: %(default)s)")
    add("--max-connections", "--max_connections", dest="max_connections", type=int, default=256,
        help="open connections beyond which uvicorn itself answers 503; a connection counts from its first byte "
             "(default: %(default)s)")
    add("--header-timeout", "--header_timeout", dest="header_timeout", type=float, default=DEFAULT_HEAD_TIMEOUT,
        help="seconds a new connection may take to send a complete request head before it is closed (0: no "
             "limit; default: %(default)s)")
    add_serve_args(add)
    add_ray_address_arg(p)
    add("--log-level", "--log_level", dest="log_level", default="info",
        choices=("debug", "info", "warning", "error"), help="(default: %(default)s)")
    return p


def predictor_budget(args) -> int:
    """Each predictor's share of --max-memory (bytes; 0: no limit)."""
    total = DEFAULT_MAX_MEMORY if getattr(args, "max_memory", None) is None else args.max_memory
    return total // max(1, args.workers)


def make_restorer(args, info, threads: int, batch_size: int = 1):
    """One backend + ImageRestorer for a predictor thread or a Ray Serve replica (which restores up to
    `batch_size` images of one size per network call), warmed up (`--warmup` runs on a small input)."""
    backend = make_backend(args.backend, args.model_dir, info, use_gpu=args.use_gpu, threads=threads,
                           enable_mkldnn=args.enable_mkldnn, model_file=args.model_file)
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


def main(argv=None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    if args.engine == "ray":
        require_ray()  # before any work: one line saying how to install it
    handler = logging.StreamHandler(sys.stderr)  # own handlers: paddle configures the root logger on import
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("ppir.serving", "uvicorn"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False
        logger.setLevel(getattr(logging, args.log_level.upper()))
    log = logging.getLogger("ppir.serving")
    for name, low in (("workers", 1), ("max_pixels", 1), ("max_connections", 1)):
        if getattr(args, name) < low:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least {low}, got {getattr(args, name)}")
    if args.queue_size < 0:
        raise ConfigError(f"--queue-size must be at least 0, got {args.queue_size}")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be in 0..65535, got {args.port}")
    if args.cpu_threads is not None and args.cpu_threads < 1:
        raise ConfigError(f"--cpu-threads must be at least 1, got {args.cpu_threads}")
    if args.header_timeout < 0:
        raise ConfigError(f"--header-timeout must be at least 0, got {args.header_timeout}")
    for name in ("max_body_mb", "max_inflight_mb", "queue_timeout", "body_timeout"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if not os.path.isdir(args.model_dir):
        raise ConfigError(f"--model_dir {args.model_dir}: no such folder")
    # OpenCV's own decoder limit, for images whose size is not read from the header first. OpenCV reads it once,
    # when it is loaded: the server's process sets it first (opencv_limit.ensure); this is for callers of
    # main() that have not loaded OpenCV yet. Whether it took effect is checked below.
    os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(args.max_pixels)
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as e:
        raise ConfigError(f"serving needs fastapi and uvicorn ({e}); pip install -r requirements.txt") from None

    from .app import ServingConfig, create_app
    from .pool import PredictorPool
    from .protocol import opencv_pixel_limit_active
    from .stats import ServingStats

    if opencv_pixel_limit_active(args.max_pixels):
        log.info("OpenCV pixel limit in force: %d", args.max_pixels)
    else:
        log.warning("OpenCV was loaded before OPENCV_IO_MAX_IMAGE_PIXELS was set (start the server with "
                    "deploy/serving/server.py): images whose size is not read from their header are checked "
                    "only after decoding")
    config = ServingConfig(max_pixels=args.max_pixels,
                           max_body_bytes=int(args.max_body_mb * (1 << 20)) if args.max_body_mb else 0,
                           max_inflight_bytes=int(args.max_inflight_mb * (1 << 20)) if args.max_inflight_mb else 0,
                           body_timeout=args.body_timeout)
    least = (config.body_limit() * 4 // 3 + 1) / (1 << 20)
    if args.max_inflight_mb and args.max_inflight_mb < least:
        raise ConfigError(f"--max-inflight-mb must be at least 4/3 of the largest body ({least:.1f} MB), so that one "
                          f"fits beside the share kept for small requests; got {args.max_inflight_mb:g}")
    info = read_deploy_info(args.model_dir)
    config.model_name = info.model_name
    threads = args.cpu_threads or max(1, (os.cpu_count() or 1) // args.workers)
    queue_size = args.queue_size
    stats = ServingStats()
    stop_ray = None
    if args.engine == "ray":
        from ..scaleout.serving import RemoteRestorer, deploy, replica_counts

        _, _, most = replica_counts(args)
        remote = argparse.Namespace(**vars(args))
        remote.model_dir = os.path.abspath(args.model_dir)  # replicas run in other folders
        remote.model_file = os.path.abspath(args.model_file) if args.model_file else None
        handle, backend_name, stop_ray = deploy(
            args, info, make_restorer, (remote, info, args.cpu_threads or 1, args.max_batch_size))
        args.workers = most * args.max_ongoing_requests  # pool threads only wait on replicas

        def factory(i):
            return RemoteRestorer(handle, backend_name, 0 if remote.tile else predictor_budget(remote))
    elif args.predictor_process == "yes" or (args.predictor_process == "auto" and args.backend == "paddle"):
        from .child import PredictorProcess

        def factory(i):
            return PredictorProcess(make_restorer, (args, info, threads), args.max_pixels, f"ppir-predictor-{i}")
    else:
        def factory(i):
            return make_restorer(args, info, threads)
    pool = PredictorPool(factory, args.workers, queue_size, args.queue_timeout, on_done=stats.record_job)
    sock = None
    try:
        pool.start()  # BackendError (missing model.onnx, bad program) -> one line, exit 2
        config.backend_name = pool.backends[0].backend.name
        # the device the predictors really run on (the backend's own word: "cpu", "gpu:0"), not the flag asked for
        device = getattr(pool.backends[0].backend, "device", "") or "unknown"
        app = create_app(pool, config, stats)
        sock = _bind(args.host, args.port)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        uv_config = uvicorn.Config(app, log_level=args.log_level, access_log=False, log_config=None,
                                   limit_concurrency=args.max_connections, timeout_keep_alive=5,
                                   http=with_head_timeout(protocol_class(http_parser()), args.header_timeout))
        server = uvicorn.Server(uv_config)
        where = (f"{args.workers} predictor(s){' in child processes' if hasattr(pool.backends[0], 'close') else ''}"
                 f" x {threads} thread(s)" if stop_ray is None else
                 f"{args.workers} request(s) at once x {args.cpu_threads or 1} CPU(s) per replica")
        log.info("%s on %s, device %s, %s, queue %d, max %d pixels, bodies at most %.0f MB each, %.0f MB in flight",
                 info.model_name, config.backend_name, device, where, queue_size, args.max_pixels,
                 config.body_limit() / (1 << 20), config.inflight_limit() / (1 << 20))
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
    finally:
        pool.close(timeout=5)
        if sock is not None:
            sock.close()
        if stop_ray is not None:
            stop_ray()
    return 0
