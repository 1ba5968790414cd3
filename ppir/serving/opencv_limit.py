"""The server's --max-pixels as OpenCV's own decoder limit, OPENCV_IO_MAX_IMAGE_PIXELS.

OpenCV reads that variable once, when it is loaded, and importing ppir loads it (paddle imports cv2), so it has
to be in the environment before the server's process imports anything. With it, OpenCV refuses an image of any
format from its header, before allocating its pixels (the server checks at start that it took effect).
"""
from __future__ import annotations

import os
import sys

from .server import DEFAULT_MAX_PIXELS

ENV = "OPENCV_IO_MAX_IMAGE_PIXELS"


def from_argv(argv, default: int = DEFAULT_MAX_PIXELS) -> str | None:
    """--max-pixels (either spelling) of a server command line, as the variable's value; None when it is not a
    number (argparse then says what is wrong with it)."""
    value = str(default)
    for i, arg in enumerate(argv):
        for flag in ("--max-pixels", "--max_pixels"):
            if arg == flag and i + 1 < len(argv):
                value = argv[i + 1]
            elif arg.startswith(flag + "="):
                value = arg.split("=", 1)[1]
    return value if value.isdigit() else None


def env_for(argv, env: dict | None = None) -> dict:
    """`env` (default: this process's) with the limit of the server command line `argv`: for starting a server."""
    env = dict(os.environ if env is None else env)
    value = from_argv([str(a) for a in argv])
    if value is not None:
        env[ENV] = value
    return env


def ensure(argv) -> None:
    """At the start of a server process (`ppir serve`, deploy/serving/server.py): set the limit; if OpenCV is
    loaded already, run this same command line again with it set (once: the new process finds it in place)."""
    value = from_argv(argv)
    if value is None or os.environ.get(ENV) == value:
        return
    os.environ[ENV] = value
    if "cv2" in sys.modules and hasattr(os, "execv"):
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, sys.orig_argv)
