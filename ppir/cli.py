"""What every ppir command-line tool shares: its parser (both spellings of a flag), boolean options, the `-o`
option, turning a library's settings dataclass out of parsed flags, turning user errors into one line, and the
name a tool's usage line shows. (The command line and environment of ppir child processes are
ppir/child_process.py, which the library uses too.)"""
from __future__ import annotations

import argparse
import contextlib
import contextvars
import dataclasses
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


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser for every ppir tool: a long option of several words is accepted in both spellings,
    `--save_dir` and `--save-dir` (TIPC configs and PaddlePaddle habits use underscores, the rest of ppir dashes;
    nobody should have to remember which a tool took). tests/commands/test_cli.py checks the rules over every parser.
    Its usage line names the tool as it was started (`ppir train` through the ppir command; see prog())."""

    def __init__(self, *args, prog: str | None = None, **kwargs):
        super().__init__(*args, prog=prog or _PROG.get(), **kwargs)

    def add_argument(self, *flags, **kwargs):
        return super().add_argument(*both_spellings(flags), **kwargs)


def both_spellings(flags) -> list[str]:
    """`flags` with the other spelling of each multi-word long option added after it (the first stays first:
    argparse names the attribute after it)."""
    out = []
    for flag in flags:
        variants = [flag]
        if flag.startswith("--"):
            variants += ["--" + flag[2:].replace("_", "-"), "--" + flag[2:].replace("-", "_")]
        for v in variants:
            if v not in out:
                out.append(v)
    return out


def str2bool(value) -> bool:
    """TIPC passes booleans as strings ('True', 'False'); accept the usual spellings, refuse the rest."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "t", "yes", "y", "1", "on"):
        return True
    if text in ("false", "f", "no", "n", "0", "off", "none", "null", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")


# The one form of a boolean option shared by several tools: `--use_gpu` alone means True, and the TIPC style
# `--use_gpu True` / `--use_gpu False` works too. Use as parser.add_argument("--use_gpu", **BOOL, default=False).
BOOL = dict(type=str2bool, nargs="?", const=True, metavar="BOOL")


def add_override_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o", "--override", dest="overrides", action="append", nargs="+", default=[], metavar="KEY=VALUE",
        help="change a config value, e.g. -o model.wf=16 model.depth=4 (repeatable; values are read as YAML)")


def flat_overrides(args) -> list[str]:
    return [item for group in getattr(args, "overrides", []) or [] for item in group]


def settings_from(settings_class, args):
    """A library's settings dataclass filled from parsed flags: each field from the flag of the same name (a field
    the parser has no flag for keeps its default). The commands' one bridge from argparse to the library."""
    given = vars(args)
    return settings_class(**{f.name: given[f.name] for f in dataclasses.fields(settings_class) if f.name in given})


def run(main, argv=None) -> int:
    """Run `main(argv)`; a PPIRError becomes 'error: <message>' on stderr and its exit code."""
    try:
        return main(argv) or 0
    except PPIRError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        # A path the user gave that the file system refused (a folder under a regular file, no permission, a full
        # disk) where no earlier check caught it: still one line naming the path, not a traceback. OSErrors
        # without a file name (sockets, subprocesses) are not about the user's paths and keep their traceback.
        if e.filename is None:
            raise
        where = e.filename if e.filename2 is None else f"{e.filename} -> {e.filename2}"
        print(f"error: {where}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
