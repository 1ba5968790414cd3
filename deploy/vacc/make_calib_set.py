#!/usr/bin/env python
"""Build an int8 calibration set for vamc (images resized to the compiled shape, plus npz for vamp); see --help.

  python deploy/vacc/make_calib_set.py --image_dir SIDD/val/input --out_dir data/calib/hinet_sidd_256x256 \\
      --shape 256x256 --num 100

The same as `ppir vacc-calib-set` (ppir/commands/vacc_calib_set.py); this script keeps the path working.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # this checkout's ppir

from ppir.cli import run  # noqa: E402
from ppir.commands.vacc_calib_set import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(lambda argv: main(argv, prog="make_calib_set.py")))
