"""The inference.yml contract: what an export folder holds besides the program, and how runners read it.

An export directory holds::

    inference.json        the static program (Paddle 3 PIR format), input `x`: N x C x H x W float32 RGB [0, 1]
    inference.pdiparams   its weights
    inference.yml         what a runner needs to know about the network (`DeployInfo`)
    model.onnx            (optional) written by tools/export_onnx.py, stamped with the program's digest

`program.digest` in inference.yml is the SHA-256 of the program and weights files (`program_digest`); export-onnx
writes the digest of the files it converted into the ONNX model's metadata (`ONNX_DIGEST_KEY`), and the ONNX
Runtime backend refuses an export folder's model.onnx whose stamp is not the folder's digest: a model.onnx left
over from an earlier export never runs silently in place of the new program.

This module is the one place that knows these names and the YAML layout. It lives on the infer side because the
runners, the server and the quantization report consume it; `ppir.export` writes it and depends on it, never the
reverse (no import cycle).
"""
from __future__ import annotations

import dataclasses
import hashlib
import os

import yaml

from ..errors import PPIRError
from ..paths import write_text
from .pipeline import ROUNDINGS

MODEL_FILENAME = "inference.json"
PARAMS_FILENAME = "inference.pdiparams"
INFO_FILENAME = "inference.yml"
ONNX_FILENAME = "model.onnx"
INPUT_NAME = "x"
INFO_VERSION = 1
ONNX_DIGEST_KEY = "ppir_program_digest"  # the ONNX metadata_props entry export-onnx stamps


class ExportError(PPIRError):
    """Exporting or converting a network failed, or the converted program disagrees with its source."""


@dataclasses.dataclass
class DeployInfo:
    """The content of inference.yml: everything a runner needs besides the program itself."""

    model_name: str  # registry name, e.g. "HINet"
    size_multiple: int = 1  # H and W fed to the program must be multiples of this ...
    min_size: int = 0  # ... and at least this
    in_channels: int = 3
    input_name: str = INPUT_NAME
    input_shape: list = dataclasses.field(default_factory=lambda: [None, 3, None, None])
    rounding: str = "nearest"  # "half_up": clip, +0.5/255, x255, truncate (MIMO-UNet's convention)
    tile: int = 0
    tile_overlap: int = 32
    image_wide: str = ""  # what makes tiled output inexact (ModelFacts.image_wide); "" when tiling is exact
    vacc_problem: str = ""  # why this export does not fit the network's VACC recipe; "" when it does
    model_file: str = MODEL_FILENAME
    params_file: str = PARAMS_FILENAME
    source: dict = dataclasses.field(default_factory=dict)  # config, weights, model arguments
    program_digest: str = ""  # program_digest() of the files written with it; "" in exports older than the field

    @property
    def fixed_shape(self) -> list | None:
        """[N, C, H, W] when the program was exported with a fixed input shape, else None."""
        shape = list(self.input_shape)
        return shape if all(isinstance(d, int) and d > 0 for d in shape) else None

    def to_yaml_dict(self) -> dict:
        return {
            "version": INFO_VERSION,
            "model": {"name": self.model_name, "size_multiple": self.size_multiple, "min_size": self.min_size,
                      "source": self.source, "vacc_problem": self.vacc_problem},
            "program": {"model_file": self.model_file, "params_file": self.params_file,
                        "input_name": self.input_name, "input_shape": list(self.input_shape),
                        "output": "final restored image, unclipped", "digest": self.program_digest},
            "preprocess": {"read": "OpenCV, BGR -> RGB (gray -> 3 channels, alpha dropped, 16-bit scaled)",
                           "scale": "1/255", "layout": "NCHW", "in_channels": self.in_channels,
                           "pad": f"reflect to a multiple of {self.size_multiple}, at least {self.min_size}"},
            "postprocess": {"crop": "back to the input size", "clip": [0.0, 1.0], "rounding": self.rounding,
                            "write": "x255, RGB -> BGR, OpenCV"},
            "tiling": {"tile": self.tile, "tile_overlap": self.tile_overlap, "image_wide": self.image_wide},
        }


def program_digest(model_dir: str, model_file: str = MODEL_FILENAME, params_file: str = PARAMS_FILENAME) -> str:
    """"sha256:<hex>" over the program and weights files (each with its length, so the two cannot trade bytes)."""
    h = hashlib.sha256()
    for name in (model_file, params_file):
        path = os.path.join(model_dir, name)
        h.update(f"{name}:{os.path.getsize(path)}:".encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return "sha256:" + h.hexdigest()


def _fail_info(path, why):
    return ExportError(f"{path}: {why}; re-export the model with tools/export_model.py")


def read_deploy_info(model_dir: str, filename: str = INFO_FILENAME) -> DeployInfo:
    """Read `<model_dir>/inference.yml`; ExportError (one line) when it is missing or malformed."""
    path = os.path.join(model_dir, filename)
    if not os.path.isfile(path):
        raise ExportError(f"{path}: no such file; every runner needs the inference.yml that "
                          f"tools/export_model.py writes beside the program")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise _fail_info(path, f"cannot read it ({str(e).splitlines()[0]})") from None
    try:
        model, program = data["model"], data["program"]
        pre, post, tiling = data.get("preprocess", {}), data.get("postprocess", {}), data.get("tiling", {})
        info = DeployInfo(
            model_name=str(model["name"]), size_multiple=int(model["size_multiple"]),
            min_size=int(model.get("min_size", 0)), in_channels=int(pre.get("in_channels", 3)),
            input_name=str(program.get("input_name", INPUT_NAME)),
            input_shape=[None if d is None else int(d) for d in program.get("input_shape", [None, 3, None, None])],
            rounding=str(post.get("rounding", "nearest")), tile=int(tiling.get("tile", 0) or 0),
            tile_overlap=int(tiling.get("tile_overlap", 32)), image_wide=str(tiling.get("image_wide") or ""),
            vacc_problem=str(model.get("vacc_problem") or ""),
            model_file=str(program.get("model_file", MODEL_FILENAME)),
            params_file=str(program.get("params_file", PARAMS_FILENAME)), source=dict(model.get("source") or {}),
            program_digest=str(program.get("digest") or ""))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise _fail_info(path, f"malformed ({type(e).__name__}: {e})") from None
    if info.rounding not in ROUNDINGS:
        raise _fail_info(path, f"postprocess.rounding must be one of {', '.join(ROUNDINGS)}, got {info.rounding!r}")
    if len(info.input_shape) != 4:
        raise _fail_info(path, f"program.input_shape must have 4 entries, got {info.input_shape}")
    return info


class _InfoDumper(yaml.SafeDumper):
    """Mappings in block style, short lists ([N, C, H, W], [0, 1]) inline."""


_InfoDumper.add_representer(
    list, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True))


def write_deploy_info(info: DeployInfo, model_dir: str) -> str:
    path = os.path.join(model_dir, INFO_FILENAME)
    header = ("# Written by ppir.export: read by deploy/inference_python/infer.py, deploy/onnxruntime/infer.py and\n"
              "# every ppir runner (pre/post-processing and tiling come from here, not from per-model code).\n")
    text = header + yaml.dump(info.to_yaml_dict(), Dumper=_InfoDumper, sort_keys=False, width=120)
    return write_text(path, text)
