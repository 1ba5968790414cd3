#!/usr/bin/env python
"""Restore images on a VastAI VACC card (vaststreamx runtime), or with --backend onnxruntime on CPU through the
same pre/post-processing; see deploy/vacc/README.md and --help.

  python deploy/vacc/infer.py --model_prefix deploy_weights/hinet_sidd_int8/mod --image_dir noisy/ --gt_dir clean/
  python deploy/vacc/infer.py --backend onnxruntime --model_prefix inference/hinet_sidd_vacc/model.onnx \\
      --image_dir noisy/ --gt_dir clean/

The same as `ppir vacc-infer` (ppir/commands/vacc_infer.py); this script keeps the path working.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # this checkout's ppir

from ppir.cli import run  # noqa: E402
from ppir.commands.vacc_infer import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(lambda argv: main(argv, prog="infer.py")))
