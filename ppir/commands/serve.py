"""Serve an exported network over HTTP (FastAPI + uvicorn; PaddleX and Paddle Serving request formats).

The server itself is ppir/serving/server.py (`run(ServerSettings)`); deploy/serving/README.md describes the
endpoints and limits.
"""
from __future__ import annotations

import argparse

from ppir.cli import BOOL, ArgumentParser, prog as cli_prog, settings_from
from ppir.infer.memory import memory_arg
from ppir.commands.ray_flags import add_serve_args
from ppir.serving import opencv_limit
from ppir.infer.backend_registry import EXPORT, names as backend_names
from ppir.serving import DEFAULT_QUEUE_SIZE
from ppir.serving.idle import DEFAULT_HEAD_TIMEOUT
from ppir.serving.opencv_limit import DEFAULT_MAX_PIXELS


def prepare(argv) -> None:
    """What a server process does before anything else: OpenCV's pixel limit, set before OpenCV loads (the
    server, imported in `main`, loads it)."""
    opencv_limit.ensure(list(argv))


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = ArgumentParser(
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
    add("--model_dir", required=True,
        help="export folder from tools/export_model.py (inference.yml, inference.json/.pdiparams; model.onnx "
             "from tools/export_onnx.py for --backend onnxruntime)")
    add("--backend", choices=backend_names(EXPORT), default="paddle",
        help="paddle: Paddle Inference (default); onnxruntime: ONNX Runtime on <model_dir>/model.onnx")
    add("--model_file", default=None,
        help="run this program instead of the default one (e.g. an int8 .onnx from tools/quant_report.py)")
    add("--host", default="127.0.0.1",
        help="address to listen on (default: %(default)s, this machine only; 0.0.0.0 for every interface)")
    add("--port", type=int, default=8080, help="TCP port (default: %(default)s; 0: any free port, printed)")
    add("--workers", type=int, default=1,
        help="predictors, i.e. requests restored in parallel (threads, default: %(default)s; --engine ray: replicas "
             "x --max-ongoing-requests threads forward to the replicas instead)")
    add("--queue-size", type=int, default=DEFAULT_QUEUE_SIZE,
        help="requests allowed to wait for a predictor; more get 503 (default: %(default)s)")
    add("--queue-timeout", type=float, default=30.0,
        help="seconds a request may wait for a predictor: one whose expected wait (from recent run times) is "
             "longer gets 503 at once, one that still waited longer gets 503 then (default: %(default)s)")
    add("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
        help="largest image accepted, in pixels (H x W); larger ones get 413 (default: %(default)s = 4096^2)")
    add("--max-memory", type=memory_arg, default=None, metavar="SIZE",
        help="memory for restoring, all predictors together (e.g. 8G; 0: no limit; default: 1280M): each predictor "
             "restores an image in tiles when it would not fit its share whole, and answers 413 naming the limit "
             "when even tiles would not (judged from the header before decoding)")
    add("--max-body-mb", type=float, default=None,
        help="largest request body in MB; larger ones get 413 (default: enough for an uncompressed image of "
             "--max-pixels)")
    add("--max-inflight-mb", type=float, default=None,
        help="MB of request bodies held at once, all requests together (being received, parsed or queued); a "
             "request that would exceed it gets 503 before its body is read; at least 4/3 of --max-body-mb, as "
             "bodies over 1/16 of it may only fill 3/4 of it together (default: 2 x --max-body-mb)")
    add("--body-timeout", type=float, default=30.0,
        help="seconds a request may go without sending a byte of its body before it gets 408 and its share of "
             "--max-inflight-mb is freed (default: %(default)s)")
    add("--cpu-threads", type=int, default=None,
        help="CPU threads of each predictor (default: cores / workers, at least 1)")
    add("--enable-mkldnn", **BOOL, default=False,
        help="Paddle Inference: use oneDNN (faster on CPU)")
    add("--use-gpu", **BOOL, default=False, help="run on the GPU (CUDA builds)")
    add("--tile", type=int, default=None,
        help="restore in tiles of this size (memory then grows with the tile, not the image; default from "
             "inference.yml, 0: whole images)")
    add("--tile-overlap", type=int, default=None,
        help="tile overlap in pixels (default from inference.yml)")
    add("--predictor-process", choices=("auto", "yes", "no"),
        default="auto",
        help="run each predictor in a child process: auto (default) does so for --backend paddle, whose runs hold "
             "Python's GIL and would stall /health and every other request meanwhile; no: threads of this process")
    add("--warmup", type=int, default=1,
        help="run each predictor this many times on a small input before serving (default: %(default)s)")
    add("--max-connections", type=int, default=256,
        help="open connections beyond which uvicorn itself answers 503; a connection counts from its first byte "
             "(default: %(default)s)")
    add("--header-timeout", type=float, default=DEFAULT_HEAD_TIMEOUT,
        help="seconds a new connection may take to send a complete request head before it is closed (0: no "
             "limit; default: %(default)s)")
    add_serve_args(p)
    add("--log-level", default="info",
        choices=("debug", "info", "warning", "error"), help="(default: %(default)s)")
    return p


def settings(argv=None, prog: str | None = None):
    """The flags, parsed into the server's settings (`ppir.serving.server.ServerSettings`)."""
    from ppir.serving.server import ServerSettings  # loads OpenCV: after `prepare`

    return settings_from(ServerSettings, build_parser(prog).parse_args(argv))


def main(argv=None, prog: str | None = None) -> int:
    from ppir.serving.server import run  # loads OpenCV: after `prepare`

    return run(settings(argv, prog or cli_prog()))
