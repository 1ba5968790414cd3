"""What every ppir command-line tool shares: the `-o` option and turning user errors into one line."""
from __future__ import annotations

import argparse
import sys

from .errors import PPIRError


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
