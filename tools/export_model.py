#!/usr/bin/env python
"""Export a network for deployment: a static Paddle program plus the inference.yml every runner reads.

The same as `ppir export` (ppir/commands/export_model.py); this script keeps the path working.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's ppir

from ppir.cli import run  # noqa: E402
from ppir.commands.export_model import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(main))
