#!/usr/bin/env python
"""Write the vamc build configs (fp16, int8 with percentile calibration) and the vdsp JSON for a fixed-shape ONNX
export; see deploy/vacc/README.md and --help.

  python deploy/vacc/build_config.py --preset hinet_sidd --onnx inference/hinet_sidd_vacc/model.onnx

The same as `ppir vacc-build-config` (ppir/commands/vacc_build_config.py); this script keeps the path working.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # this checkout's ppir

from ppir.cli import run  # noqa: E402
from ppir.commands.vacc_build_config import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(lambda argv: main(argv, prog="build_config.py")))
