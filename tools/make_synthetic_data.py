#!/usr/bin/env python
"""Write a small paired dataset of synthetically degraded images, offline.

The same as `ppir make-synthetic-data` (ppir/commands/make_synthetic_data.py); this script keeps the path working.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's ppir

from ppir.cli import run  # noqa: E402
from ppir.commands.make_synthetic_data import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(main))
