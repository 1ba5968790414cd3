"""Restore images on a VastAI VACC card (vaststreamx), or its ONNX model on ONNX Runtime with the same steps."""
from __future__ import annotations

from ppir.cli import prog as cli_prog
from ppir.infer.vacc import main as vacc_main


def main(argv=None, prog: str | None = None) -> int:
    return vacc_main(argv, prog=prog or cli_prog())
