#!/usr/bin/env python
"""Serve an exported ppir network over HTTP (FastAPI + uvicorn); see deploy/serving/README.md and --help.

  python deploy/serving/server.py --model_dir inference/hinet [--backend onnxruntime] [--port 8080] [--workers 2]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from ppir.cli import run  # noqa: E402
from ppir.serving.server import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(lambda argv: main(argv, prog="server.py")))
