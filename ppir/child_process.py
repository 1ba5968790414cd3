"""The command line and environment of a ppir child process (`python -m ppir <command>` with this interpreter and
this very ppir package): used by the server launcher, the Ray workers, the quick start and the benchmarks."""
from __future__ import annotations

import os
import site
import sys
import sysconfig


def ppir_command(name: str, *args) -> list[str]:
    """The command line that runs `ppir <name> <args>` with this interpreter (a child process)."""
    return [sys.executable, "-m", "ppir", name, *map(str, args)]


def child_env(env: dict | None = None) -> dict:
    """`env` (default: this process's) for a child that must import this very ppir package, wherever it runs:
    a checkout used without `pip install` goes first on PYTHONPATH, so the child finds it from any working folder.
    An installed package needs nothing (its site-packages is on every interpreter's path; putting it first would
    put it before the standard library)."""
    env = dict(os.environ if env is None else env)
    home = os.path.realpath(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    site_dirs = [*site.getsitepackages(), site.getusersitepackages(), sysconfig.get_path("purelib"),
                 sysconfig.get_path("platlib")]
    if home in {os.path.realpath(d) for d in site_dirs}:
        return env
    env["PYTHONPATH"] = os.pathsep.join([home, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]])
    return env
