"""Serve an exported network over HTTP (FastAPI + uvicorn; PaddleX and Paddle Serving request formats).

The server itself is ppir/serving/server.py; deploy/serving/README.md describes the endpoints and limits.
"""
from __future__ import annotations

from ppir.cli import prog as cli_prog
from ppir.serving import opencv_limit


def prepare(argv) -> None:
    """What a server process does before anything else: OpenCV's pixel limit, set before OpenCV loads (the
    server, imported in `main`, loads it)."""
    opencv_limit.ensure(list(argv))


def main(argv=None, prog: str | None = None) -> int:
    from ppir.serving.server import main as server_main  # loads OpenCV: after `prepare`

    return server_main(argv, prog=prog or cli_prog())
