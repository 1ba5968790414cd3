#!/usr/bin/env python
"""Train a network from a config (recipe: datasets, loss, optimizer, lr_scheduler, metrics, train, val).

The same as `ppir train` (ppir/commands/train.py); this script keeps the path working.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's ppir

from ppir.cli import run  # noqa: E402
from ppir.commands.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(main))
