#!/usr/bin/env python
"""Write a small paired dataset of synthetically degraded images, offline.

The tool lives in ppir/commands/make_synthetic_data.py (see --help); this script keeps `python tools/make_synthetic_data.py` working.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's ppir

from ppir.cli import run  # noqa: E402
from ppir.commands.make_synthetic_data import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(main))
