#!/usr/bin/env python
"""Serve an exported ppir network over HTTP (FastAPI + uvicorn); see deploy/serving/README.md and --help.

  python deploy/serving/server.py --model_dir inference/hinet [--backend onnxruntime] [--port 8080] [--workers 2]

The same as `ppir serve` (ppir/commands/serve.py); this script keeps the path working.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # this checkout's ppir

from ppir.cli import run  # noqa: E402
from ppir.commands.serve import main, prepare  # noqa: E402

if __name__ == "__main__":
    # OpenCV's pixel limit first (before the server loads OpenCV), inside run: a problem is one `error:` line
    sys.exit(run(lambda argv: prepare(sys.argv[1:]) or main(argv, prog="server.py")))
