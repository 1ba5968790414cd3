"""What every ppir command-line tool shares: the `-o` option and turning user errors into one line."""
from __future__ import annotations

import argparse
import contextlib
import contextvars
import os
import sys

from .errors import PPIRError

# The name a tool's usage line shows: `ppir train` when started through the ppir command, else argparse's
# default (the script's file name, e.g. train.py). Set by ppir.__main__ around the command it runs.
_PROG = contextvars.ContextVar("ppir_prog", default=None)


def prog(default: str | None = None) -> str | None:
    """The program name for a tool's ArgumentParser (None: argparse takes it from sys.argv[0])."""
    return _PROG.get() or default


@contextlib.contextmanager
def program_name(name: str):
    token = _PROG.set(name)
    try:
        yield
    finally:
        _PROG.reset(token)


def ppir_command(name: str, *args) -> list[str]:
    """The command line that runs `ppir <name> <args>` with this interpreter (a child process)."""
    return [sys.executable, "-m", "ppir", name, *map(str, args)]


def child_env(env: dict | None = None) -> dict:
    """`env` (default: this process's) for a child that must import this very ppir package, wherever it runs:
    a checkout used without `pip install` goes first on PYTHONPATH, so the child finds it from any working folder.
    An installed package needs nothing (its site-packages is on every interpreter's path; putting it first would
    put it before the standard library)."""
    import site
    import sysconfig

    env = dict(os.environ if env is None else env)
    home = os.path.realpath(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    site_dirs = [*site.getsitepackages(), site.getusersitepackages(), sysconfig.get_path("purelib"),
                 sysconfig.get_path("platlib")]
    if home in {os.path.realpath(d) for d in site_dirs}:
        return env
    env["PYTHONPATH"] = os.pathsep.join([home, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]])
    return env


def add_override_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o", "--override", dest="overrides", action="append", nargs="+", default=[], metavar="KEY=VALUE",
        help="change a config value, e.g. -o model.wf=16 model.depth=4 (repeatable; values are read as YAML)")


def flat_overrides(args) -> list[str]:
    return [item for group in getattr(args, "overrides", []) or [] for item in group]


def run(main, argv=None) -> int:
    """Run `main(argv)`; a PPIRError becomes 'error: <message>' on stderr and its exit code."""
    try:
        return main(argv) or 0
    except PPIRError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
