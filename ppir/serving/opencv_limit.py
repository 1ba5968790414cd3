"""The server's --max-pixels as OpenCV's own decoder limit, OPENCV_IO_MAX_IMAGE_PIXELS.

OpenCV reads that variable once, when it is loaded, so it has to be in the environment before cv2's first
import. `import ppir` and `ppir serve`'s command module load no cv2 (nor Paddle, which imports it), so the server
process sets it in place (`ensure`, ppir/__main__.py's `prepare` hook) before it loads anything that uses OpenCV.
With it, OpenCV refuses an image of any format from its header, before allocating its pixels (the server checks
at start that it took effect).
"""
from __future__ import annotations

import os
import sys

from ..errors import ConfigError

DEFAULT_MAX_PIXELS = 4096 * 4096  # the server's --max-pixels default
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
    """At the start of a server process (`ppir serve`, deploy/serving/server.py), before OpenCV is loaded: put the
    limit of the command line `argv` in the environment. ConfigError if OpenCV is loaded already with another
    limit: it would never take effect (something imported cv2 too early; a bug, said loudly)."""
    value = from_argv(argv)
    if value is None or os.environ.get(ENV) == value:
        return
    if "cv2" in sys.modules:
        raise ConfigError(f"OpenCV was loaded before the server could set its pixel limit ({ENV}={value}); "
                          f"start the server as `ppir serve` or set {ENV} in its environment")
    os.environ[ENV] = value
