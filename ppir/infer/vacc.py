"""Running a network compiled for a VastAI VACC card (vamc -> vaststreamx), and its ONNX Runtime stand-in.

The card runs one compiled model per fixed input shape (HINet 3x256x256, MIMO-UNet 3x360x640 in the seed
recipes). The host side is shared line for line by both backends (`VaccPipeline`):

* pre:  OpenCV read (8-bit BGR) -> bilinear resize to the compiled H x W -> BGR -> RGB -> HWC -> CHW, uint8.
        The last step, /255 to float, happens on the card in the fused vdsp operator (``NormaType: DIV255``, see
        `vdsp_params`) and on the host for the stand-in (`normalize`): both get the same float input.
* run:  ``backend.run_uint8(1 x 3 x H x W uint8) -> 1 x 3 x H x W float``.
* post: clip to [0, 1] -> (MIMO-UNet: + 0.5/255, the ``half_up`` rounding of inference.yml) -> x255 -> uint8
        -> RGB -> BGR (`ppir.infer.pipeline.to_uint8`, the rounding every ppir runner uses).

``--mode tile`` instead restores the image at full resolution in tiles of the compiled shape
(`ppir.infer.restorer.ImageRestorer` with a fixed-shape `DeployInfo`, the same tiling as the other runners).

`VaccBackend` (in `ppir.infer.backends`, built by ``make_backend("vacc", ...)``) imports ``vaststreamx`` lazily:
the SDK is not on PyPI and comes with the card's driver, so a machine without it gets one clear line naming it
(`SDK_MISSING`), never an ImportError traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import cv2
import numpy as np

from ..cli import BOOL, ArgumentParser
from ..errors import ConfigError, ImageError
from .backend_registry import VACC as VACC_ROLE, names as backend_names
from .backends import BackendError, make_backend, normalize
from .deploy_info import INFO_FILENAME, ONNX_FILENAME, DeployInfo, read_deploy_info
from .pipeline import ROUNDINGS, to_uint8
from .loop import average_line, file_items, final_line, list_images, pixel_scores, restore_items, score_text
from .outputs import NAME_RULE, output_names
from .restorer import ImageRestorer
from .runner import check_save_dir

# --------------------------------------------------------------------------------------- shared pre/post
def read_bgr(path: str) -> np.ndarray:
    """An image file as 8-bit BGR H x W x 3 (cv2.IMREAD_COLOR: gray -> 3 channels, alpha dropped, 16-bit -> 8)."""
    if not os.path.isfile(path):
        raise ImageError(f"{path}: no such image file")
    img = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ImageError(f"{path}: not a readable image (corrupt, truncated or unsupported format)")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ImageError(f"{path}: the image has zero size")
    return img


def preprocess(img_bgr: np.ndarray, height: int, width: int) -> np.ndarray:
    """8-bit BGR H x W x 3 -> 1 x 3 x `height` x `width` uint8 RGB: bilinear resize, BGR -> RGB, CHW."""
    if img_bgr.shape[:2] != (height, width):
        img_bgr = cv2.resize(img_bgr, (width, height), interpolation=cv2.INTER_LINEAR)
    rgb = cv2.cvtColor(img_bgr, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))[None]


def postprocess(nchw: np.ndarray, rounding: str = "nearest") -> np.ndarray:
    """1 x 3 x H x W float network output -> H x W x 3 uint8 BGR: clip, (+0.5/255 for half_up), x255, RGB->BGR."""
    out = np.asarray(nchw, np.float32)
    if out.ndim == 4:
        out = out[0]
    if out.shape[0] == 1:
        out = np.repeat(out, 3, axis=0)
    rgb = to_uint8(out.transpose(1, 2, 0), rounding)  # clip to [0, 1], (+0.5/255 and truncate | round), uint8
    return np.ascontiguousarray(rgb[:, :, ::-1])


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
    """8-bit BGR image in, restored 8-bit image out, with any backend of a fixed H x W (see module docstring).

    `__call__` gives the BGR result and its (pre, infer, post) seconds; `prepare`/`run`/`finish` are the engine
    interface of the shared loop (`ppir.infer.loop`), whose results are RGB like every other runner's."""

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

    def prepare(self, img_bgr: np.ndarray, name: str | None = None):
        """(prepared input, None): the compiled-size uint8 RGB batch, or (tile mode) the restorer's input."""
        if self.restorer is not None:
            rgb = cv2.cvtColor(img_bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
            return self.restorer.prepare(rgb, name)[0], None
        return preprocess(img_bgr, self.height, self.width), None

    def run(self, prepared: list, key=None) -> list:
        if self.restorer is not None:
            return self.restorer.run(prepared, None)
        return [run_uint8(self.backend, x) for x in prepared]

    def finish(self, y: np.ndarray, img_bgr: np.ndarray) -> np.ndarray:
        """RGB uint8: the compiled size (resize mode) or the input's (tile mode)."""
        if self.restorer is not None:
            return self.restorer.finish(y, img_bgr)
        return np.ascontiguousarray(postprocess(y, self.rounding)[:, :, ::-1])

    def __call__(self, img_bgr: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float]]:
        """(restored BGR uint8, (pre, infer, post) seconds). Resize mode: the compiled size; tile: the input's."""
        t0 = time.perf_counter()
        x, _ = self.prepare(img_bgr)
        t1 = time.perf_counter()
        y, = self.run([x])
        t2 = time.perf_counter()
        out = np.ascontiguousarray(self.finish(y, img_bgr)[:, :, ::-1])
        return out, (t1 - t0, t2 - t1, time.perf_counter() - t2)

    def reference(self, gt_bgr: np.ndarray) -> np.ndarray:
        """The ground truth at the output's size: resized with INTER_AREA to the compiled shape (the seed's
        evaluation protocol; not comparable with full-resolution numbers), unchanged in tile mode."""
        if self.mode == "tile" or gt_bgr.shape[:2] == (self.height, self.width):
            return gt_bgr
        return cv2.resize(gt_bgr, (self.width, self.height), interpolation=cv2.INTER_AREA)


# ------------------------------------------------------------------------------------------ command line
def build_parser(prog: str | None = None):
    p = ArgumentParser(
        prog=prog,
        description="Restore images with a network compiled for a VastAI VACC card (vaststreamx runtime), or with "
                    "its ONNX model on ONNX Runtime (--backend onnxruntime) through the same pre/post-processing: "
                    "resize to the compiled H x W, BGR->RGB, /255, CHW; clip, (+0.5/255 for MIMO-UNet), x255, "
                    "RGB->BGR.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Output: 'image: <name>[, saved: <path>][, psnr: <x>, ssim: <y>]' per image (PSNR/SSIM with "
               "--gt_dir), then 'avg psnr: <x>, avg ssim: <y>' and the mean latencies. With --mode resize "
               "(the seed protocol) the ground truth is resized to the compiled shape with INTER_AREA, so the "
               "numbers are not comparable with full-resolution ones; --mode tile restores at full resolution in "
               "tiles of the compiled shape. "
               f"Saving: {NAME_RULE}; a --save_dir equal to or inside --image_dir/--gt_dir, or one where a result "
               "would replace an input, is refused unless --overwrite. An image without a usable ground truth is "
               "still restored and saved, named on stderr and counted in the last line (exit 1).\n\nExamples:\n"
               "  python deploy/vacc/infer.py --model_prefix deploy_weights/hinet_sidd_int8/mod --image_dir noisy/ "
               "--gt_dir clean/\n"
               "  python deploy/vacc/infer.py --backend onnxruntime --model_prefix inference/hinet_vacc/model.onnx "
               "--image_dir noisy/ --gt_dir clean/")
    add = p.add_argument
    add("--model_prefix", required=True,
        help="vacc: the prefix vamc wrote (<prefix>.json/.so/.params, e.g. deploy_weights/hinet_sidd_int8/mod); "
             "onnxruntime: an .onnx file (or an export folder holding model.onnx)")
    add("--image_dir", required=True, help="an image file or a folder of images")
    add("--gt_dir", default=None, help="ground truth with the same file names: PSNR/SSIM per image")
    add("--save_dir", default="output/vacc", help="folder for the restored PNGs (default: %(default)s; '' for none; "
        "never the input folder unless --overwrite)")
    add("--overwrite", default=False, **BOOL,
        help="allow --save_dir to be (inside) the input or ground-truth folder, replacing inputs")
    add("--backend", choices=backend_names(VACC_ROLE), default="vacc",
        help="vacc: the card through vaststreamx (default); onnxruntime: the CPU stand-in")
    add("--vdsp_params", default=None,
        help="vacc: the vdsp pre-processing JSON (default: generated for the compiled shape, DIV255)")
    add("--device_id", type=int, default=0, help="vacc: card index (default: %(default)s)")
    add("--shape", default=None, metavar="HxW",
        help="onnxruntime with a dynamic-shape ONNX model: the size to resize to (e.g. 256x256)")
    add("--rounding", choices=ROUNDINGS, default=None,
        help="8-bit conversion: nearest, or half_up (+0.5/255 then truncate: MIMO-UNet). Default: from the "
             "inference.yml beside the model (or in --model_dir), else nearest")
    add("--model_dir", default=None, help="the ppir export folder whose inference.yml gives the rounding")
    add("--mode", choices=VaccPipeline.MODES, default="resize",
        help="resize: resize every image to the compiled shape (default, the seed protocol); tile: full "
             "resolution in overlapping tiles of the compiled shape")
    add("--tile_overlap", type=int, default=32, help="--mode tile: overlap in pixels (default: %(default)s)")
    add("--cpu_threads", type=int, default=None, help="onnxruntime: CPU threads (default: all cores)")
    return p


def _parse_shape(text: str) -> tuple[int, int]:
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


def backend_from_args(args):
    """(backend, compiled height, width) for the command line's --backend."""
    if args.backend == "vacc":
        backend = make_backend("vacc", args.model_prefix, None, {"vdsp_params": args.vdsp_params,
                                                                    "device_id": args.device_id})
        _, _, h, w = backend.fixed_shape
        if args.shape and _parse_shape(args.shape) != (h, w):
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
        shape = _parse_shape(args.shape)
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


def main(argv=None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    if args.gt_dir and not os.path.exists(args.gt_dir):
        raise ImageError(f"{args.gt_dir}: no such ground-truth file or folder")
    if args.tile_overlap < 0:
        raise ConfigError(f"--tile_overlap must be >= 0, got {args.tile_overlap}")
    files = list_images(args.image_dir)
    names = output_names(files)
    if args.save_dir:
        check_save_dir(args, files, names)  # no input replaced, a writable folder: before any work
    rounding, source = _find_rounding(args)
    backend, height, width = backend_from_args(args)  # vacc without the SDK: one line naming vaststreamx
    print(f"note: rounding {rounding} ({source}), mode {args.mode}", file=sys.stderr)
    pipe = VaccPipeline(backend, height, width, rounding, args.mode, args.tile_overlap)
    items = file_items(files, args.gt_dir, args.save_dir, names, read=read_bgr,
                       read_gt=lambda path: pipe.reference(read_bgr(path))[:, :, ::-1])
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
