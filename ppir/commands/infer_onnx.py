"""Restore images with an exported network on ONNX Runtime (model.onnx; the Paddle Inference runner's flags)."""
from __future__ import annotations

from ppir.cli import prog as cli_prog
from ppir.commands.infer import run_command


def main(argv=None, prog: str | None = None) -> int:
    return run_command(argv, "onnxruntime", prog or cli_prog())
