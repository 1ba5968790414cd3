"""The bodies of ppir's command-line tools: one module per command, each with `main(argv=None) -> int` (user
errors raised as PPIRError; `ppir.cli.run` turns them into one line and an exit code).

`ppir <command>` / `python -m ppir <command>` (ppir/__main__.py) and the scripts in tools/ and deploy/ all run
these.
"""
from __future__ import annotations

import importlib

# command name -> (module in this package, the line `ppir --help` shows)
COMMANDS = {
    "train": ("train", "train a network from a config (resumable, exactly reproducible)"),
    "eval": ("eval", "score weights on a config's dataset with its metrics"),
    "predict": ("predict", "restore images with a network and its weights (dygraph, any size)"),
    "export": ("export_model", "export a static Paddle program + inference.yml for deployment"),
    "export-onnx": ("export_onnx", "convert an export to ONNX (paddle2onnx) and check it"),
    "convert": ("convert_weights", "convert official PyTorch checkpoints to .pdparams"),
    "infer": ("infer", "restore images with an export on Paddle Inference (TIPC runner)"),
    "infer-onnx": ("infer_onnx", "restore images with an export on ONNX Runtime"),
    "serve": ("serve", "serve an export over HTTP (FastAPI + uvicorn)"),
    "client": ("client", "send an image to a ppir server and save the restored PNG"),
    "quickstart": ("quickstart", "demo: synthetic data -> train -> eval -> export -> infer -> metrics"),
    "model-info": ("model_info", "parameters and MACs of the network a config describes"),
    "quant-report": ("quant_report", "fp32 / fp16 / int8 accuracy and latency of an export (ONNX Runtime)"),
    "make-synthetic-data": ("make_synthetic_data", "write a paired dataset of synthetically degraded images"),
    "vacc-infer": ("vacc_infer", "restore images on a VastAI VACC card (or its ONNX stand-in)"),
    "vacc-build-config": ("vacc_build_config", "write vamc build configs for a fixed-shape ONNX model"),
    "vacc-calib-set": ("vacc_calib_set", "build an int8 calibration set for vamc"),
}


def load(name: str):
    """The module of command `name` (imported on demand: most pull in paddle, some FastAPI or ONNX Runtime)."""
    return importlib.import_module(f"{__name__}.{COMMANDS[name][0]}")
