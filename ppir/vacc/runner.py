"""Running a network compiled for a VastAI VACC card (vamc -> vaststreamx), and its ONNX Runtime stand-in.

The card runs one compiled model per fixed input shape (HINet 3x256x256, MIMO-UNet 3x360x640 in the seed
recipes). The host side is shared line for line by both backends (`VaccPipeline`). Colour order is converted
once, when a file is read (`read_rgb`: OpenCV's BGR -> RGB); from there on every array is RGB, as in every other
ppir runner:

* pre:  OpenCV read (8-bit) -> RGB -> bilinear resize to the compiled H x W -> HWC -> CHW, uint8.
        The last step, /255 to float, happens on the card in the fused vdsp operator (``NormaType: DIV255``, see
        `vdsp_params`) and on the host for the stand-in (`normalize`): both get the same float input.
* run:  ``backend.run_uint8(1 x 3 x H x W uint8) -> 1 x 3 x H x W float``.
* post: clip to [0, 1] -> (MIMO-UNet: + 0.5/255, the ``half_up`` rounding of inference.yml) -> x255 -> uint8 RGB
        (`ppir.infer.pipeline.to_uint8`, the rounding every ppir runner uses).

``mode="tile"`` instead restores the image at full resolution in tiles of the compiled shape
(`ppir.infer.restorer.ImageRestorer` with a fixed-shape `DeployInfo`, the same tiling as the other runners).

`VaccBackend` (``ppir.vacc.backend``, built by ``make_backend("vacc", ...)``) imports ``vaststreamx`` lazily:
the SDK is not on PyPI and comes with the card's driver, so a machine without it gets one clear line naming it
(`SDK_MISSING`), never an ImportError traceback. The command line is ppir/commands/vacc_infer.py.
"""
from __future__ import annotations

import dataclasses
import os
import sys

import cv2
import numpy as np

from ..errors import ConfigError, ImageError
from ..infer.backends import BackendError, make_backend
from ..infer.deploy_info import INFO_FILENAME, ONNX_FILENAME, DeployInfo, read_deploy_info
from ..infer.loop import average_line, file_items, final_line, list_images, pixel_scores, restore_items, score_text
from ..infer.memory import default_budget
from ..infer.outputs import output_names
from ..infer.pipeline import ROUNDINGS, to_uint8
from ..infer.restorer import ImageRestorer
from ..infer.runner import check_save_dir
from .backend import normalize


# --------------------------------------------------------------------------------------- shared pre/post
def read_rgb(path: str) -> np.ndarray:
    """An image file as 8-bit RGB H x W x 3 (cv2.IMREAD_COLOR: gray -> 3 channels, alpha dropped, 16-bit -> 8):
    the one place where OpenCV's BGR order is turned into RGB."""
    if not os.path.isfile(path):
        raise ImageError(f"{path}: no such image file")
    img = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ImageError(f"{path}: not a readable image (corrupt, truncated or unsupported format)")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ImageError(f"{path}: the image has zero size")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def preprocess(img_rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """8-bit RGB H x W x 3 -> 1 x 3 x `height` x `width` uint8 RGB planar: bilinear resize, CHW."""
    if img_rgb.shape[:2] != (height, width):
        img_rgb = cv2.resize(img_rgb, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(img_rgb.transpose(2, 0, 1))[None]


def postprocess(nchw: np.ndarray, rounding: str = "nearest") -> np.ndarray:
    """1 x 3 x H x W float network output -> H x W x 3 uint8 RGB: clip, (+0.5/255 for half_up), x255."""
    out = np.asarray(nchw, np.float32)
    if out.ndim == 4:
        out = out[0]
    if out.shape[0] == 1:
        out = np.repeat(out, 3, axis=0)
    return to_uint8(out.transpose(1, 2, 0), rounding)  # clip to [0, 1], (+0.5/255 and truncate | round), uint8


def run_uint8(backend, nchw_uint8: np.ndarray) -> np.ndarray:
    """Run a backend on a uint8 RGB batch: the card normalizes on the device, every other backend on the host."""
    if hasattr(backend, "run_uint8"):
        return backend.run_uint8(nchw_uint8)
    return backend.run(normalize(nchw_uint8))


def onnx_input_shape(path: str) -> list:
    """[N, C, H, W] of an ONNX model's input, with None for dynamic dimensions."""
    import onnx

    model = onnx.load(path, load_external_data=False)
    inits = {t.name for t in model.graph.initializer}
    graph_input = [i for i in model.graph.input if i.name not in inits][0]
    return [d.dim_value if d.HasField("dim_value") else None for d in graph_input.type.tensor_type.shape.dim]


# ------------------------------------------------------------------------------------------------- loop
class VaccPipeline:
    """8-bit RGB image in, restored 8-bit RGB image out, with any backend of a fixed H x W (see module docstring):
    `prepare`/`run`/`finish` are the engine interface of the shared loop (`ppir.infer.loop`)."""

    MODES = ("resize", "tile")
    images_per_call = 1

    def __init__(self, backend, height: int, width: int, rounding: str = "nearest", mode: str = "resize",
                 tile_overlap: int = 32):
        if rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be one of {', '.join(ROUNDINGS)}, got {rounding!r}")
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {', '.join(self.MODES)}, got {mode!r}")
        self.backend, self.height, self.width = backend, int(height), int(width)
        self.rounding, self.mode = rounding, mode
        self.restorer = None
        if mode == "tile":
            info = DeployInfo(model_name="vacc", input_shape=[1, 3, self.height, self.width], rounding=rounding,
                              tile_overlap=min(int(tile_overlap), min(self.height, self.width) - 1))
            self.restorer = ImageRestorer(backend, info)

    def prepare(self, img_rgb: np.ndarray, name: str | None = None):
        """(prepared input, None): the compiled-size uint8 RGB batch, or (tile mode) the restorer's input."""
        if self.restorer is not None:
            return self.restorer.prepare(img_rgb.astype(np.float32) / 255.0, name)[0], None
        return preprocess(img_rgb, self.height, self.width), None

    def run(self, prepared: list, key=None) -> list:
        if self.restorer is not None:
            return self.restorer.run(prepared, None)
        return [run_uint8(self.backend, x) for x in prepared]

    def finish(self, y: np.ndarray, img_rgb: np.ndarray) -> np.ndarray:
        """RGB uint8: the compiled size (resize mode) or the input's (tile mode)."""
        if self.restorer is not None:
            return self.restorer.finish(y, img_rgb)
        return postprocess(y, self.rounding)

    def reference(self, gt_rgb: np.ndarray) -> np.ndarray:
        """The ground truth at the output's size: resized with INTER_AREA to the compiled shape (the seed's
        evaluation protocol; not comparable with full-resolution numbers), unchanged in tile mode."""
        if self.mode == "tile" or gt_rgb.shape[:2] == (self.height, self.width):
            return gt_rgb
        return cv2.resize(gt_rgb, (self.width, self.height), interpolation=cv2.INTER_AREA)


# ----------------------------------------------------------------------------------------------------- run
@dataclasses.dataclass
class VaccSettings:
    """What the VACC runner is asked to do (`ppir vacc-infer` fills it from its flags; their help in
    ppir/commands/vacc_infer.py says what each field means)."""
    model_prefix: str
    image_dir: str
    gt_dir: str | None = None
    save_dir: str = "output/vacc"
    overwrite: bool = False
    backend: str = "vacc"
    vdsp_params: str | None = None
    device_id: int = 0
    shape: str | None = None  # "HxW"
    rounding: str | None = None  # None: from inference.yml, else nearest
    model_dir: str | None = None
    mode: str = "resize"
    tile_overlap: int = 32
    cpu_threads: int | None = None


def parse_shape(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise ConfigError(f"--shape must look like HxW (e.g. 256x256), got {text!r}") from None
    if h < 1 or w < 1:
        raise ConfigError(f"--shape must be positive, got {text!r}")
    return h, w


def _find_rounding(args) -> tuple[str, str]:
    """(rounding, where it came from)."""
    if args.rounding:
        return args.rounding, "--rounding"
    prefix_dir = args.model_prefix if os.path.isdir(args.model_prefix) else os.path.dirname(args.model_prefix)
    for folder in ([args.model_dir] if args.model_dir else []) + [prefix_dir or "."]:
        if os.path.isfile(os.path.join(folder, INFO_FILENAME)):
            return read_deploy_info(folder).rounding, os.path.join(folder, INFO_FILENAME)
    if args.model_dir:
        read_deploy_info(args.model_dir)  # raises the one-line "no such file" error
    return "nearest", "default (no inference.yml found; MIMO-UNet needs --rounding half_up)"


def backend_from_settings(args: VaccSettings):
    """(backend, compiled height, width) for `args.backend`."""
    if args.backend == "vacc":
        backend = make_backend("vacc", args.model_prefix, None, {"vdsp_params": args.vdsp_params,
                                                                    "device_id": args.device_id})
        _, _, h, w = backend.fixed_shape
        if args.shape and parse_shape(args.shape) != (h, w):
            raise ConfigError(f"--shape {args.shape}: the compiled model takes {h}x{w}")
        return backend, h, w
    path = args.model_prefix
    if os.path.isdir(path):
        path = os.path.join(path, ONNX_FILENAME)
    elif not path.endswith(".onnx") and os.path.isfile(path + ".onnx"):
        path += ".onnx"
    if not os.path.isfile(path):
        raise BackendError(f"--model_prefix {args.model_prefix}: no ONNX model there (give the .onnx file that "
                           f"tools/export_onnx.py wrote, or its folder)")
    backend = make_backend("onnxruntime", os.path.dirname(path), None,
                           {"model_file": path, "threads": args.cpu_threads})
    dims = onnx_input_shape(path)
    fixed = tuple(dims[2:]) if len(dims) == 4 and all(isinstance(d, int) and d > 0 for d in dims[2:]) else None
    if args.shape:
        shape = parse_shape(args.shape)
        if fixed and shape != fixed:
            raise ConfigError(f"--shape {args.shape}: {path} takes {fixed[0]}x{fixed[1]} inputs")
    elif fixed:
        shape = fixed
    else:
        raise ConfigError(f"{path} has a dynamic input shape; pass --shape HxW (the shape you compile for the card, "
                          f"e.g. 256x256), or export with --input-shape 1,3,H,W")
    print(f"note: ONNX Runtime stand-in for the VACC runner, {shape[0]}x{shape[1]} inputs ({path})",
          file=sys.stderr)
    return backend, shape[0], shape[1]


def print_line(item, restored, scores, saved) -> None:
    """'image: <name>[, saved: <path>][, psnr: <x>, ssim: <y>]'."""
    fields = [f"image: {item.name}"] + ([f"saved: {saved}"] if saved else []) + ([score_text(scores)] if scores else [])
    print(", ".join(fields), flush=True)


def run(args: VaccSettings) -> int:
    """Restore `args.image_dir` on the card (or the stand-in); the exit code (1 when an image failed or none was
    restored). Bad settings raise ConfigError / ImageError / BackendError before any work."""
    if args.gt_dir and not os.path.exists(args.gt_dir):
        raise ImageError(f"{args.gt_dir}: no such ground-truth file or folder")
    if args.tile_overlap < 0:
        raise ConfigError(f"--tile_overlap must be >= 0, got {args.tile_overlap}")
    files = list_images(args.image_dir)
    names = output_names(files)
    if args.save_dir:
        check_save_dir(args, files, names)  # no input replaced, a writable folder: before any work
    rounding, source = _find_rounding(args)
    backend, height, width = backend_from_settings(args)  # vacc without the SDK: one line naming vaststreamx
    print(f"note: rounding {rounding} ({source}), mode {args.mode}", file=sys.stderr)
    pipe = VaccPipeline(backend, height, width, rounding, args.mode, args.tile_overlap)
    # every file is judged by its header before it is decoded, as the other runners judge (this machine's
    # default budget: the runner has no --max-memory, the card's inputs are resized or tiled anyway)
    items = file_items(files, args.gt_dir, args.save_dir, names, read=read_rgb,
                       read_gt=lambda path: pipe.reference(read_rgb(path)), max_memory=default_budget())
    try:
        summary = restore_items(pipe, items, score=pixel_scores() if args.gt_dir else None, report=print_line)
    finally:
        backend.close()
    if summary.psnr:
        print(average_line(summary), flush=True)
    t = summary.timings
    if t.infer:
        ms = lambda v: f"{1000 * float(np.mean(v)):.2f}"  # noqa: E731
        print(f"avg time (ms): preprocess {ms(t.pre)}, inference {ms(t.infer)}, postprocess {ms(t.post)} "
              f"({backend.name}, {len(t.infer)} image(s))", flush=True)
    print(final_line(summary, len(files), args.save_dir), file=sys.stderr)
    return 1 if summary.problems or summary.done == 0 else 0
