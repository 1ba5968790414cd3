#!/usr/bin/env python
"""Convert an exported ppir program to ONNX with paddle2onnx, then check it against the Paddle program.

The same as `ppir export-onnx` (ppir/commands/export_onnx.py); this script keeps the path working.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's ppir

from ppir.cli import run  # noqa: E402
from ppir.commands.export_onnx import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(main))
