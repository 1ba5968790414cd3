#!/usr/bin/env python
"""Serve an exported ppir network over HTTP (FastAPI + uvicorn); see deploy/serving/README.md and --help.

  python deploy/serving/server.py --model_dir inference/hinet [--backend onnxruntime] [--port 8080] [--workers 2]
"""
import os
import sys


def opencv_pixel_limit(argv, default=4096 * 4096):
    """The server's --max-pixels as OPENCV_IO_MAX_IMAGE_PIXELS. OpenCV reads that variable once, when it is loaded
    (importing ppir loads it), so it must be set before the first import: then OpenCV itself refuses an image of
    any format from its header, before allocating its pixels (the server checks that it did take effect)."""
    value = str(default)
    for i, arg in enumerate(argv):
        for flag in ("--max-pixels", "--max_pixels"):
            if arg == flag and i + 1 < len(argv):
                value = argv[i + 1]
            elif arg.startswith(flag + "="):
                value = arg.split("=", 1)[1]
    if value.isdigit():  # anything else: argparse will say what is wrong with it
        os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = value


if __name__ == "__main__":  # not in a predictor's child process (it inherits the variable)
    opencv_pixel_limit(sys.argv[1:])
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from ppir.cli import run  # noqa: E402
from ppir.serving.server import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(lambda argv: main(argv, prog="server.py")))
