"""Write the vamc build configs (fp16, int8 with percentile calibration) and vdsp JSON for a fixed-shape ONNX."""
from __future__ import annotations

from ppir.cli import prog as cli_prog
from ppir.infer.vacc_build import build_config_main


def main(argv=None, prog: str | None = None) -> int:
    return build_config_main(argv, prog=prog or cli_prog())
