#!/usr/bin/env python
"""Restore images with an exported ppir network on ONNX Runtime (the same flags as the Paddle Inference runner).

  python deploy/onnxruntime/infer.py --model_dir inference/hinet --image_dir noisy/ --gt_dir clean/ \\
      --cpu_threads 2 --benchmark True
  python deploy/onnxruntime/infer.py --model_dir inference/hinet --model_file hinet_int8.onnx --precision int8 ...

Reads <model_dir>/model.onnx (tools/export_onnx.py) and <model_dir>/inference.yml; the loop is ppir.infer.runner.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from ppir.cli import run  # noqa: E402


def main(argv=None):
    from ppir.infer.runner import main as runner_main

    return runner_main(argv, backend="onnxruntime", prog="deploy/onnxruntime/infer.py")


if __name__ == "__main__":
    sys.exit(run(main))
