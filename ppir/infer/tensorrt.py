"""TensorRT for ppir's exports, through the route Paddle 3.x documents for PIR programs (`inference.json`):
`paddle.tensorrt.convert` with one `paddle.tensorrt.Input` (min / optimal / max input shapes) turns the program
into one with TensorRT engine ops, which a GPU predictor then runs. (`Config.enable_tensorrt_engine` is the
route of the old ProgramDesc format.)

The shape ranges come from inference.yml (`DeployInfo`): a fixed-shape export is its own range; a dynamic one
runs from the smallest size the network takes to its tile (or MAX_SIDE when it is not tiled), both padded to the
size multiple, with the tile (or OPT_SIDE) as the optimal size. An input outside the range is refused with one
line (`check_in_range`) instead of failing inside TensorRT.
"""
from __future__ import annotations

import os

from ..errors import PPIRError

OPT_SIDE = 256   # the optimal (most common) side of a dynamic, untiled export
MAX_SIDE = 1024  # the largest side an untiled dynamic export accepts under TensorRT; tile larger images


class TensorRTUnavailable(PPIRError):
    exit_code = 2


def _round_up(value: int, multiple: int) -> int:
    multiple = max(1, int(multiple))
    return -(-int(value) // multiple) * multiple


def shape_range(info) -> tuple[list[int], list[int], list[int]]:
    """(min, opt, max) N x C x H x W input shapes of the export `info` describes (batch 1)."""
    fixed = info.fixed_shape
    if fixed:
        return list(fixed), list(fixed), list(fixed)
    multiple = max(1, int(info.size_multiple or 1))
    low = _round_up(max(int(info.min_size or 0), multiple), multiple)
    high = _round_up(info.tile, multiple) if info.tile else _round_up(MAX_SIDE, multiple)
    high = max(high, low)
    opt = min(max(_round_up(info.tile or OPT_SIDE, multiple), low), high)
    c = int(info.in_channels or 3)
    return [1, c, low, low], [1, c, opt, opt], [1, c, high, high]


def check_in_range(shape, ranges) -> None:
    """Refuse an N x C x H x W input the TensorRT engine was not built for (one line, not a TensorRT abort)."""
    low, _, high = ranges
    if any(not lo <= s <= hi for s, lo, hi in zip(shape[2:], low[2:], high[2:])) or shape[0] > high[0]:
        raise TensorRTUnavailable(
            f"input {list(shape)} is outside the TensorRT engine's shape range {low} .. {high} (from inference.yml: "
            f"export with a tile, tiling.tile, to restore larger images under TensorRT)")


def unavailable_reason() -> str:
    """Why TensorRT cannot run here ("" when it can): a CPU build, no GPU, no paddle.tensorrt, no TensorRT."""
    from .. import _paddle  # noqa: F401 - sets the environment paddle reads on import
    import paddle

    if not paddle.device.is_compiled_with_cuda():
        return "this Paddle build has no CUDA (TensorRT needs a GPU build)"
    if paddle.device.cuda.device_count() < 1:
        return "no CUDA device is visible"
    try:
        import paddle.tensorrt  # noqa: F401 - Paddle's PIR-to-TensorRT converter
    except ImportError as e:
        return f"paddle.tensorrt cannot be imported ({e})"
    try:
        import tensorrt  # noqa: F401 - the converter builds engines with TensorRT's Python API
    except ImportError as e:
        return f"the TensorRT libraries are not installed ({e}; pip install tensorrt matching Paddle's build)"
    return ""


def convert(model_file: str, info, precision: str, out_dir: str) -> tuple[str, str]:
    """`model_file` (inference.json; its .pdiparams beside it) converted for TensorRT at `precision` (fp32, fp16)
    into `out_dir`; returns the new (program, params) paths."""
    why = unavailable_reason()
    if why:
        raise TensorRTUnavailable(f"--use_tensorrt True: {why}")
    from .. import _paddle  # noqa: F401 - sets the environment paddle reads on import
    from paddle.tensorrt.export import Input, PrecisionMode, TensorRTConfig, convert as trt_convert

    modes = {"fp32": PrecisionMode.FP32, "fp16": PrecisionMode.FP16}
    if precision not in modes:
        raise TensorRTUnavailable(f"--precision {precision}: TensorRT for PIR programs runs fp32 or fp16 here "
                                  "(int8 needs a calibrated, quantized program)")
    low, opt, high = shape_range(info)
    spec = Input(min_input_shape=tuple(low), optim_input_shape=tuple(opt), max_input_shape=tuple(high),
                 name=info.input_name)
    prefix = os.path.join(out_dir, "inference_trt")
    config = TensorRTConfig(inputs=[spec], precision_mode=modes[precision], save_model_dir=prefix)
    trt_convert(os.path.splitext(model_file)[0], config)
    program, params = prefix + ".json", prefix + ".pdiparams"
    for path in (program, params):
        if not os.path.isfile(path):
            raise TensorRTUnavailable(f"paddle.tensorrt.convert wrote no {path}")
    return program, params
