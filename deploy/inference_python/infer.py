#!/usr/bin/env python
"""Restore images with an exported ppir network on Paddle Inference (TIPC-style flags).

  python deploy/inference_python/infer.py --model_dir inference/hinet --image_dir noisy/ --gt_dir clean/ \\
      --enable_mkldnn True --cpu_threads 2 --benchmark True

The same as `ppir infer` (ppir/commands/infer.py); this script keeps the path working.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # this checkout's ppir

from ppir.cli import run  # noqa: E402
from ppir.commands.infer import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(lambda argv: main(argv, prog="deploy/inference_python/infer.py")))
