#!/usr/bin/env python
"""Evaluate weights on a config's validation/test dataset with its metrics (and its val: protocol).

The same as `ppir eval` (ppir/commands/eval.py); this script keeps the path working.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's ppir

from ppir.cli import run  # noqa: E402
from ppir.commands.eval import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(main))
