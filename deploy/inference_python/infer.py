#!/usr/bin/env python
"""Restore images with an exported ppir network on Paddle Inference (TIPC-style flags).

  python deploy/inference_python/infer.py --model_dir inference/hinet --image_dir noisy/ --gt_dir clean/ \\
      --enable_mkldnn True --cpu_threads 2 --benchmark True

Everything but the choice of engine lives in ppir.infer.runner (shared with deploy/onnxruntime/infer.py).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from ppir.cli import run  # noqa: E402


def main(argv=None):
    from ppir.infer.runner import main as runner_main

    return runner_main(argv, backend="paddle", prog="deploy/inference_python/infer.py")


if __name__ == "__main__":
    sys.exit(run(main))
