"""Exporting a network for deployment: the static program plus the `inference.yml` every runner reads (its
layout, `DeployInfo` and the file names live in `ppir.infer.deploy_info`, which this module writes through).

The exported program returns only the final restored image (HINet's stage 2, MIMO-UNet's full scale, see
`ppir.infer.pipeline.final_output`), unclipped. Pre/post-processing stays outside the program, in
`ppir.infer.pipeline`, driven by `inference.yml`, so that no runner carries per-model knowledge.
"""
from __future__ import annotations

import contextlib
import datetime
import os
import re
import shutil
import tempfile
from typing import Any, Sequence

import numpy as np

from .infer.backends import BackendError, make_backend, read_onnx_model
from .infer.compile import check_save_file, run_paddle2onnx, save_program, stamp_onnx  # noqa: F401 - re-exported
from .infer.deploy_info import (INFO_FILENAME, MODEL_FILENAME, ONNX_DIGEST_KEY, ONNX_FILENAME, PARAMS_FILENAME,
                                 DeployInfo, ExportError, program_digest, read_deploy_info, write_deploy_info)
from .infer.pipeline import ROUNDINGS
from .models.common import padded_size
from .paths import output_dir_problem, pid_alive


# --------------------------------------------------------------------------------------------- export
def check_save_dir(save_dir: str) -> None:
    """ExportError (one line, naming the path) unless the export folder can be created and written."""
    problem = output_dir_problem(save_dir)
    if problem:
        raise ExportError(f"--save-dir: {problem}")


def parse_input_shape(text: str | Sequence[int] | None) -> list | None:
    """'1,3,256,256' -> [1, 3, 256, 256]; None/'' -> None (dynamic). ConfigError-like ExportError on junk."""
    if text is None or text == "":
        return None
    if isinstance(text, str):
        try:
            shape = [int(t) for t in text.replace("x", ",").split(",") if t.strip()]
        except ValueError:
            raise ExportError(f"--input-shape must be N,C,H,W integers, got {text!r}") from None
    else:
        shape = [int(t) for t in text]
    if len(shape) != 4 or min(shape) <= 0:
        raise ExportError(f"--input-shape must be 4 positive integers N,C,H,W, got {text!r}")
    return shape


def export_model(model, save_dir: str, input_shape: Sequence[int] | None = None, rounding: str | None = None,
                 tile: int = 0, tile_overlap: int | None = None, source: dict | None = None) -> DeployInfo:
    """to_static + jit.save `model` (returning only its final output) into `save_dir`, plus inference.yml.

    `input_shape` None exports a dynamic N x C x H x W program; a fixed [N, C, H, W] suits accelerators
    (the runners then feed tiles of exactly that size). `rounding` and `tile_overlap` default to the
    network's own facts (`ppir.models.common.model_facts`), which inference.yml carries to the runners.
    """
    from .models.common import input_channels, model_facts, shape_problem, size_rules
    from .vacc.presets import vacc_problem

    model_name = type(model).__name__
    facts = model_facts(model)
    multiple, min_size = size_rules(model)
    channels = input_channels(model)
    rounding = rounding or facts.rounding
    tile_overlap = facts.tile_overlap if tile_overlap is None else tile_overlap
    if rounding not in ROUNDINGS:
        raise ExportError(f"rounding must be one of {', '.join(ROUNDINGS)}, got {rounding!r}")
    shape = list(input_shape) if input_shape else None
    problem = shape_problem(model, shape) if shape else None
    if problem:
        raise ExportError(f"--input-shape: {problem}")
    spec_shape = shape or [None, channels, None, None]

    check_save_dir(save_dir)
    os.makedirs(save_dir, exist_ok=True)
    with _staging_folder(save_dir) as staging:
        save_program(model, staging, spec_shape)
        info = DeployInfo(model_name=model_name, size_multiple=multiple, min_size=min_size, in_channels=channels,
                          input_shape=spec_shape, rounding=rounding, tile=int(tile or 0),
                          tile_overlap=int(tile_overlap), image_wide=facts.image_wide,
                          vacc_problem=vacc_problem(model), source=dict(source or {}),
                          program_digest=program_digest(staging))
        write_deploy_info(info, staging)
        # each file replaces its old self in one rename; inference.yml (the digest) goes last
        for name in (MODEL_FILENAME, PARAMS_FILENAME, INFO_FILENAME):
            os.replace(os.path.join(staging, name), os.path.join(save_dir, name))
    return info


_STAGING = re.compile(r"^\.ppir-export-(?P<pid>[1-9][0-9]{0,9})-")


@contextlib.contextmanager
def _staging_folder(save_dir: str):
    """A private folder inside `save_dir` that the export is written into before its files are renamed into
    place (so a killed export leaves the previous one whole); removed afterwards, as are those of killed exports."""
    for name in os.listdir(save_dir):
        m = _STAGING.match(name)
        if m and int(m["pid"]) != os.getpid() and not pid_alive(int(m["pid"])):
            shutil.rmtree(os.path.join(save_dir, name), ignore_errors=True)
    folder = tempfile.mkdtemp(prefix=f".ppir-export-{os.getpid()}-", dir=save_dir)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def stale_onnx(save_dir: str, info: DeployInfo) -> str | None:
    """The export folder's model.onnx when it was converted from another program than `info`'s (or without a
    stamp), else None: what export-model tells the user to convert again (the ONNX runners refuse it)."""
    path = os.path.join(save_dir, ONNX_FILENAME)
    if not os.path.isfile(path):
        return None
    try:
        stamp = onnx_digest(path)
    except BackendError:
        return path
    return None if stamp == info.program_digest else path


def onnx_digest(onnx_path: str) -> str:
    """The program digest export-onnx stamped into an ONNX model ("" when it has none)."""
    model = read_onnx_model(onnx_path)
    return next((p.value for p in model.metadata_props if p.key == ONNX_DIGEST_KEY), "")


def own_files_problem(model_dir: str, save_file: str, model_filename: str = MODEL_FILENAME,
                      params_filename: str = PARAMS_FILENAME) -> str | None:
    """Why `save_file` must not be written: it is one of the export's own files (program, weights, inference.yml)."""
    target = os.path.realpath(save_file)
    for name in {model_filename, params_filename, MODEL_FILENAME, PARAMS_FILENAME, INFO_FILENAME}:
        own = os.path.join(model_dir, name)
        if os.path.realpath(own) == target or (os.path.exists(own) and os.path.exists(save_file)
                                               and os.path.samefile(own, save_file)):
            return (f"{save_file} is the export's own {name}; converting would overwrite it. Name an ONNX file, "
                    f"e.g. {os.path.join(model_dir, ONNX_FILENAME)}")
    return None


# ------------------------------------------------------------------------------------------ checks
def check_input_shapes(info: DeployInfo) -> list[list[int]]:
    """Shapes to verify a converted program with: the fixed shape, or two different non-square sizes."""
    fixed = info.fixed_shape
    if fixed:
        return [fixed]
    m = info.size_multiple
    base = padded_size(max(2 * m, 32), m, info.min_size)
    return [[1, info.in_channels, base, base + 2 * m], [1, info.in_channels, base + m, base]]


def max_rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| relative to the reference's magnitude (at least 1): outputs of random weights can be huge."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return float("inf")
    return float(np.abs(a - b).max() / max(1.0, float(np.abs(b).max())))


def check_onnx_dynamic(onnx_path: str, info: DeployInfo) -> None:
    """The ONNX input must be named like the Paddle input and keep H and W dynamic unless exported fixed."""
    try:
        model = read_onnx_model(onnx_path)
    except BackendError as e:
        raise ExportError(str(e)) from None
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if len(inputs) != 1 or inputs[0].name != info.input_name:
        raise ExportError(f"{onnx_path}: expected one input named {info.input_name!r}, got "
                          f"{[i.name for i in inputs]}")
    dims = inputs[0].type.tensor_type.shape.dim
    if not info.fixed_shape and any(d.HasField("dim_value") for d in list(dims)[2:]):
        raise ExportError(f"{onnx_path}: H and W are fixed in the ONNX model although the program is dynamic")


def load_paddle_program(model_dir: str, model_filename: str | None = None, params_filename: str | None = None,
                        info: DeployInfo | None = None, enable_mkldnn: bool = False):
    """A Paddle Inference predictor (oneDNN off unless asked) on the export; ExportError when it does not load.

    Run before paddle2onnx too: paddle2onnx 2.1.0 converts a truncated .pdiparams without complaint."""
    info = info or read_deploy_info(model_dir)
    try:
        return make_backend("paddle", model_dir, info, {
            "enable_mkldnn": enable_mkldnn,
            "model_file": os.path.join(model_dir, model_filename) if model_filename else None,
            "params_file": os.path.join(model_dir, params_filename) if params_filename else None})
    except BackendError as e:
        raise ExportError(f"{e}; is the export complete and uncorrupted? Re-export with tools/export_model.py") \
            from None


NOISE_FACTOR = 10  # how far beyond the float32 noise floor of the program itself ONNX Runtime may stray


def verify_onnx(model_dir: str, onnx_path: str, tolerance: float = 1e-4, seed: int = 0,
                model_filename: str | None = None, params_filename: str | None = None) -> float:
    """Run the Paddle program (Paddle Inference, oneDNN off: bit-exact to dygraph) and the ONNX model on
    random inputs; ExportError when they disagree. Returns the largest relative difference
    (max |onnx - paddle| / max(1, max |paddle|)).

    Differences up to `tolerance` always pass (trained or PyTorch-initialised networks: ~1e-7 to 1e-5). Beyond
    it, the program's own float32 noise floor decides: two correct Paddle backends (oneDNN on and off) are
    compared on the same input, and ONNX Runtime may differ by up to NOISE_FACTOR times that. Networks whose
    activations explode reach 3e-3 honestly (full-size MIRNet with Paddle's default init: outputs ~1e11, and
    oneDNN disagrees by as much), while conversion faults (a wrong LeakyReLU slope, a scaled weight) stay
    far above the floor."""
    info = read_deploy_info(model_dir)
    check_onnx_dynamic(onnx_path, info)
    paddle_backend = load_paddle_program(model_dir, model_filename, params_filename, info)
    try:
        ort_backend = make_backend("onnxruntime", model_dir, info, {"model_file": onnx_path, "check_precision": False})
    except BackendError as e:
        raise ExportError(str(e)) from None
    rng = np.random.default_rng(seed)
    worst, onednn = 0.0, None
    for shape in check_input_shapes(info):
        x = rng.random(shape, dtype=np.float32)
        ref, got = paddle_backend.run(x), ort_backend.run(x)
        diff = max_rel_diff(got, ref)
        worst = max(worst, diff)
        if diff <= tolerance:
            continue
        if onednn is None:
            onednn = load_paddle_program(model_dir, model_filename, params_filename, info, enable_mkldnn=True)
        floor = max_rel_diff(onednn.run(x), ref)
        allowed = max(tolerance, NOISE_FACTOR * floor)
        if not diff <= allowed:
            raise ExportError(f"{onnx_path} disagrees with the Paddle program on a random {'x'.join(map(str, shape))} "
                              f"input: max |diff| = {diff:.3g} of the output range, allowed {allowed:.3g} (tolerance "
                              f"{tolerance:g}; Paddle oneDNN on vs off differ by {floor:.3g})")
    return worst


def model_source(config_path: str | None, overrides: Sequence[str] = (), weights: str | None = None,
                 model_section: dict | None = None) -> dict:
    """Where an export came from, recorded in inference.yml for people (runners do not read it)."""
    out: dict[str, Any] = {}
    if config_path:
        out["config"] = str(config_path)
    if overrides:
        out["overrides"] = list(overrides)
    if weights:
        out["weights"] = os.path.basename(str(weights))
    if model_section:
        out["arguments"] = {k: v for k, v in model_section.items()}
    try:
        from . import _paddle  # noqa: F401 - sets the environment paddle reads on import
        import paddle

        out["paddle"] = paddle.__version__
    except ImportError:  # pragma: no cover
        pass
    out["date"] = datetime.date.today().isoformat()
    return out
