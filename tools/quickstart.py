#!/usr/bin/env python
"""Quick start: train a demo network on synthetic data, evaluate it, export it, restore new images with

The same as `ppir quickstart` (ppir/commands/quickstart.py); this script keeps the path working.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's ppir

from ppir.cli import run  # noqa: E402
from ppir.commands.quickstart import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(main))
