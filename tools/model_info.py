#!/usr/bin/env python
"""Print a network's class, exact parameter count and MACs (multiply-accumulates) for one or more configs.

The same as `ppir model-info` (ppir/commands/model_info.py); this script keeps the path working.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's ppir

from ppir.cli import run  # noqa: E402
from ppir.commands.model_info import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(main))
