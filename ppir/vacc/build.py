"""Inputs of the VastAI VACC compiler (vamc): build configs, vdsp pre-processing JSON, calibration sets.

One compiled model per network, precision and fixed input shape (the card has no dynamic shapes). The configs
follow the current ``vamc compile`` schema (VastModelZOO HEAD, e.g. ``cv/low_light_image_enhancement/pairlie/
build_in/build/official_pairlie.yaml``)::

    name / frontend {shape, type: onnx, checkpoint, dtype: fp32} / backend {type: tvm_vacc, dtype, compile,
    quantize {calibrate_mode, quantize_per_channel}} / dataset {type: tvm, path, sampler, process_ops} / workspace

fp16 needs no dataset; int8 is calibrated (percentile by default, as VastModelZOO's recipes) on images written by
`make_calibration_set`: already resized to the compiled shape with the runner's own pre-processing
(`ppir.vacc.runner.preprocess`), so vamc's Resize is an identity and calibration sees exactly what inference sees.

Presets hold VastModelZOO's recipe shapes: HINet 3x256x256 (SIDD), MIMO-UNet 3x360x640 (GoPro), the latter exported
with ``model.resize_mode=bilinear`` (VastAI switched MIMO-UNet's resampling to bilinear because nearest hit a
VDSP size limit in int8 at 360x640; ppir's bilinear variant changes numerics, so it is a separate export). The
presets and the arguments each recipe needs are in ``ppir.vacc.presets``, keyed by network; export records in
inference.yml whether the exported network meets them.
"""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import yaml

from ..errors import ConfigError, ImageError
from ..infer.deploy_info import INFO_FILENAME, read_deploy_info
from ..infer.loop import list_images
from ..paths import write_text
from .backend import vdsp_params
from .presets import presets
from .runner import onnx_input_shape, parse_shape, preprocess, read_rgb

PRECISIONS = ("fp16", "int8")
CALIBRATE_MODES = ("percentile", "max", "kl_divergence", "mse")



def select_files(files: list, num: int) -> list:
    """`num` files spread evenly over the sorted list (all of them when num <= 0 or num >= len): deterministic,
    and a video-frame dataset is not calibrated on one scene."""
    files = sorted(files)
    if num <= 0 or num >= len(files):
        return files
    idx = np.unique(np.round(np.linspace(0, len(files) - 1, num)).astype(int))
    return [files[i] for i in idx]


def build_config(name: str, onnx_path: str, height: int, width: int, precision: str, input_name: str = "x",
                 calib_dir: str | None = None, calib_num: int = 50, calibrate_mode: str = "percentile",
                 workspace: str = "./deploy_weights") -> dict:
    """A ``vamc compile`` config as a dict (see the module docstring)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if calibrate_mode not in CALIBRATE_MODES:
        raise ConfigError(f"calibrate_mode must be one of {', '.join(CALIBRATE_MODES)}, got {calibrate_mode!r}")
    cfg = {
        "name": f"{name}_{precision}",
        "frontend": {"shape": {input_name: [1, 3, int(height), int(width)]}, "type": "onnx",
                     "checkpoint": onnx_path, "dtype": "fp32"},
        "backend": {"type": "tvm_vacc", "dtype": precision, "compile": {"data_transport_mode": 1}},
    }
    if precision == "int8":
        if not calib_dir:
            raise ConfigError("int8 needs a calibration folder (--calib_dir); build one with "
                              "deploy/vacc/make_calib_set.py")
        cfg["backend"]["quantize"] = {"calibrate_mode": calibrate_mode, "quantize_per_channel": True}
        cfg["dataset"] = {
            "type": "tvm", "path": calib_dir, "sampler": {"suffix": "png", "get_data_num": int(calib_num)},
            "process_ops": [{"type": "DecodeImage"}, {"type": "Resize", "size": [int(height), int(width)]},
                            {"type": "Normalize", "norm_type": None}, {"type": "ToTensor"}],
        }
    cfg["workspace"] = {"path": workspace}
    return cfg


class _Dumper(yaml.SafeDumper):
    pass


def _short_list(dumper, data):
    flow = all(not isinstance(v, (list, dict)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _short_list)


def write_yaml(path: str, data: dict, comments: list[str] = ()) -> str:
    """`data` as YAML (short lists inline) under `comments`; prose comments are wrapped, commands (indented) not."""
    import textwrap

    lines = []
    for line in comments:
        lines += [line] if line.startswith(" ") or not line else textwrap.wrap(line, 110)
    header = "".join(f"# {line}\n" if line else "#\n" for line in lines)
    text = header + yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=120)
    return write_text(path, text)


def export_commands(preset: dict, height: int, width: int, out_dir: str) -> list[str]:
    overrides = " ".join(preset["overrides"])
    return [
        f"python tools/export_model.py -c {preset['config']}" + (f" -o {overrides}" if overrides else "")
        + f" --weights {preset['weights']} --save-dir {out_dir} --input-shape 1,3,{height},{width}",
        f"python tools/export_onnx.py --model_dir {out_dir} --opset_version 11",
    ]


def check_onnx_for_vacc(onnx_path: str, height: int, width: int, model_name: str | None = None,
                        allow_recipe_mismatch: bool = False) -> list[str]:
    """Notes (and ConfigError for real mismatches) about an ONNX file that is to be compiled at height x width.
    An export that does not fit its network's VACC recipe (inference.yml's vacc_problem) is an error, or only a
    note with `allow_recipe_mismatch` (--allow_nearest)."""

    notes = []
    dims = onnx_input_shape(onnx_path)
    if len(dims) != 4:
        raise ConfigError(f"{onnx_path}: expected an N x C x H x W input, got {dims}")
    fixed = dims[2:] if all(isinstance(d, int) and d > 0 for d in dims[2:]) else None
    if fixed and tuple(fixed) != (height, width):
        raise ConfigError(f"{onnx_path} takes {fixed[0]}x{fixed[1]} inputs, not {height}x{width}; re-export with "
                          f"--input-shape 1,3,{height},{width}")
    if not fixed:
        notes.append(f"{onnx_path} has a dynamic H x W; vamc fixes it to {height}x{width} from frontend.shape "
                     f"(a fixed-shape export, --input-shape 1,3,{height},{width}, is checked against Paddle first)")
    info_path = os.path.join(os.path.dirname(os.path.abspath(onnx_path)), INFO_FILENAME)
    if os.path.isfile(info_path):
        info = read_deploy_info(os.path.dirname(os.path.abspath(onnx_path)))
        if info.vacc_problem and allow_recipe_mismatch:
            notes.append(f"{onnx_path}: {info.model_name} {info.vacc_problem} (accepted: --allow_nearest)")
        elif info.vacc_problem:
            raise ConfigError(f"{onnx_path}: {info.model_name} {info.vacc_problem}, or pass --allow_nearest")
        if model_name and info.model_name != model_name:
            notes.append(f"{onnx_path} holds {info.model_name}, not {model_name}")
    return notes


# ----------------------------------------------------------------------------------------- calibration
def make_calibration_set(image_dir: str, out_dir: str, height: int, width: int, num: int = 50,
                         write_npz: bool = True) -> list[str]:
    """Write `num` images of `image_dir` (spread evenly), resized to the compiled shape with the runner's own
    pre-processing, as `out_dir/<name>.png` (vamc's dataset.path), plus `out_dir/npz/<name>.npz` (key
    ``input_0``: RGB CHW uint8, what vamp reads) and `out_dir/npz_datalist.txt` (vamp --datalist)."""
    import cv2

    if height < 1 or width < 1:
        raise ConfigError(f"calibration shape must be positive, got {height}x{width}")
    files = select_files(list_images(image_dir), num)
    os.makedirs(out_dir, exist_ok=True)
    if write_npz:
        os.makedirs(os.path.join(out_dir, "npz"), exist_ok=True)
    written, npz_paths, seen = [], [], set()
    for path in files:
        stem = os.path.splitext(os.path.basename(path))[0]
        if stem in seen:  # a.png and a.jpg
            stem = f"{stem}_{len(seen)}"
        seen.add(stem)
        try:
            x = preprocess(read_rgb(path), height, width)[0]  # 3 x H x W uint8 RGB
        except ImageError as e:
            raise ImageError(f"calibration set: {e}") from None
        png = os.path.join(out_dir, stem + ".png")
        if not cv2.imwrite(png, np.ascontiguousarray(x.transpose(1, 2, 0)[:, :, ::-1])):  # OpenCV writes BGR
            raise ImageError(f"{png}: cannot write")
        written.append(png)
        if write_npz:
            npz = os.path.join(out_dir, "npz", stem + ".npz")
            np.savez(npz, input_0=x)
            npz_paths.append(os.path.abspath(npz))
    if write_npz:
        with open(os.path.join(out_dir, "npz_datalist.txt"), "w", encoding="utf-8") as f:
            f.write("".join(p + "\n" for p in npz_paths))
    return written


# ------------------------------------------------------------------------------------------ build configs
@dataclasses.dataclass
class BuildSettings:
    """What `ppir vacc-build-config` is asked to write (its flags' help, ppir/commands/vacc_build_config.py, says
    what each field means)."""
    onnx: str
    preset: str | None = None
    name: str | None = None
    shape: str | None = None  # "HxW"
    input_name: str = "x"
    precision: list = dataclasses.field(default_factory=lambda: list(PRECISIONS))
    calib_dir: str | None = None
    calib_num: int | None = None
    calibrate_mode: str = "percentile"
    workspace: str = "./deploy_weights"
    out_dir: str = "deploy/vacc/build"
    allow_nearest: bool = False


def write_build_configs(args: BuildSettings, known: dict | None = None) -> tuple[list[str], list[str]]:
    """One vamc config per precision, plus the vdsp JSON, for one network; (files written, notes)."""
    known = presets() if known is None else known
    preset = known.get(args.preset) or {}
    name = args.name or args.preset
    if not name:
        raise ConfigError("give --preset or --name")
    if args.shape:
        height, width = parse_shape(args.shape)
    elif preset:
        height, width = preset["shape"]
    else:
        raise ConfigError("give --shape HxW (or a --preset)")
    calib_num = args.calib_num if args.calib_num is not None else preset.get("calib_num", 50)
    calib_dir = args.calib_dir or f"data/calib/{name}_{height}x{width}"
    notes = []
    if os.path.isfile(args.onnx):
        notes = check_onnx_for_vacc(args.onnx, height, width, preset.get("model"), args.allow_nearest)
    else:
        notes.append(f"{args.onnx} does not exist yet: the config refers to it as given")
    written = []
    vdsp_path = os.path.join(args.out_dir, f"{name}-vdsp_params.json")
    os.makedirs(args.out_dir, exist_ok=True)
    with open(vdsp_path, "w", encoding="utf-8") as f:
        json.dump(vdsp_params(height, width), f, indent=4)
        f.write("\n")
    written.append(vdsp_path)
    for precision in args.precision:
        cfg = build_config(name, args.onnx, height, width, precision, args.input_name, calib_dir, calib_num,
                           args.calibrate_mode, args.workspace)
        comments = [f"vamc build config written by deploy/vacc/build_config.py: {name}, {precision}, "
                    f"input 1x3x{height}x{width}.", ""]
        if preset:
            export_dir = os.path.dirname(args.onnx) or "."
            if preset.get("note"):
                comments += [f"{preset['model']}: {preset['note']}."]
            comments += ["ONNX model (fixed shape, checked against the Paddle program):"]
            comments += [f"  {c}" for c in export_commands(preset, height, width, export_dir)]
        if precision == "int8":
            comments += [f"Calibration images ({preset.get('calib_hint', 'a representative subset of the inputs')}):",
                         f"  python deploy/vacc/make_calib_set.py --image_dir <degraded images> --out_dir {calib_dir} "
                         f"--shape {height}x{width} --num {calib_num}"]
        prefix = f"{args.workspace.rstrip('/')}/{name}_{precision}/mod"
        comments += ["Compile:", f"  vamc compile {os.path.join(args.out_dir, f'{name}_{precision}.yaml')}",
                     f"  -> {prefix}.{{json,so,params}}",
                     f"Run: python deploy/vacc/infer.py --model_prefix {prefix} --vdsp_params {vdsp_path} "
                     f"--image_dir <images> [--gt_dir <gt>]"]
        written.append(write_yaml(os.path.join(args.out_dir, f"{name}_{precision}.yaml"), cfg, comments))
    return written, notes
