#!/usr/bin/env python
"""Write the vamc build configs (fp16, int8 with percentile calibration) and the vdsp JSON for a fixed-shape ONNX
export; see deploy/vacc/README.md and --help.

  python deploy/vacc/build_config.py --preset hinet_sidd --onnx inference/hinet_sidd_vacc/model.onnx
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from ppir.cli import run  # noqa: E402
from ppir.infer.vacc_build import build_config_main as main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(lambda argv: main(argv, prog="build_config.py")))
