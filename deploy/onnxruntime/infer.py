#!/usr/bin/env python
"""Restore images with an exported ppir network on ONNX Runtime (the same flags as the Paddle Inference runner).

  python deploy/onnxruntime/infer.py --model_dir inference/hinet --image_dir noisy/ --gt_dir clean/ \\
      --cpu_threads 2 --benchmark True
  python deploy/onnxruntime/infer.py --model_dir inference/hinet --model_file hinet_int8.onnx --precision int8 ...

The same as `ppir infer-onnx` (ppir/commands/infer_onnx.py); this script keeps the path working.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # this checkout's ppir

from ppir.cli import run  # noqa: E402
from ppir.commands.infer_onnx import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(lambda argv: main(argv, prog="deploy/onnxruntime/infer.py")))
