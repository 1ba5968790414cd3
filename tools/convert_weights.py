#!/usr/bin/env python
"""Convert official PyTorch checkpoints (or .npz / .pdparams) into Paddle .pdparams for a ppir network.

The same as `ppir convert` (ppir/commands/convert_weights.py); this script keeps the path working.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's ppir

from ppir.cli import run  # noqa: E402
from ppir.commands.convert_weights import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(main))
