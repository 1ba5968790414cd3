"""Restore images with an exported network on Paddle Inference (TIPC-style flags; the loop is ppir.infer.runner)."""
from __future__ import annotations

from ppir.cli import prog as cli_prog
from ppir.infer.runner import main as runner_main


def main(argv=None, prog: str | None = None) -> int:
    return runner_main(argv, backend="paddle", prog=prog or cli_prog())
