"""Build an int8 calibration set for vamc (images resized to the compiled shape, plus npz files for vamp)."""
from __future__ import annotations

from ppir.cli import prog as cli_prog
from ppir.infer.vacc_build import calib_main


def main(argv=None, prog: str | None = None) -> int:
    return calib_main(argv, prog=prog or cli_prog())
