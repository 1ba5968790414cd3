#!/usr/bin/env python
"""Restore images with a trained or converted network (dygraph; any image size).

The same as `ppir predict` (ppir/commands/predict.py); this script keeps the path working.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's ppir

from ppir.cli import run  # noqa: E402
from ppir.commands.predict import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(main))
