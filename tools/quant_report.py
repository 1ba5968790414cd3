#!/usr/bin/env python
"""Accuracy and latency of an exported network at fp32, fp16 and int8 on CPU (ONNX Runtime), as a Markdown table.

The same as `ppir quant-report` (ppir/commands/quant_report.py); this script keeps the path working.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's ppir

from ppir.cli import run  # noqa: E402
from ppir.commands.quant_report import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(main))
