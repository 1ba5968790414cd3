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
(`ppir.infer.runner.Restorer` with a fixed-shape `DeployInfo`, the same tiling as the other runners).

`VaccBackend` imports ``vaststreamx`` lazily: the SDK is not on PyPI and comes with the card's driver, so a
machine without it gets one clear line naming it (`SDK_MISSING`), never an ImportError traceback.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..cli import ArgumentParser
from ..errors import ImageError
from .backends import Backend, BackendError
from .pipeline import ROUNDINGS, to_uint8

SDK_MODULE = "vaststreamx"
SDK_MISSING = ("--backend vacc needs vaststreamx, the VastAI VACC runtime (VastStreamX, shipped with the card's "
               "driver in the VastStream SDK; it is not on PyPI), and it cannot be imported here{why}. Install the "
               "SDK's vaststreamx wheel on the machine with the card (see deploy/vacc/README.md), or check the "
               "same pipeline on CPU with --backend onnxruntime --model_prefix <model.onnx>")
MODEL_SUFFIXES = (".json", ".so", ".params")  # what `vamc compile` writes for a model prefix


def import_vaststreamx():
    """The vaststreamx module, or BackendError (one line naming the SDK) when it is not installed."""
    try:
        import vaststreamx  # noqa: F401 - optional, only on machines with the card
    except ImportError as e:
        why = "" if getattr(e, "name", None) == SDK_MODULE else f" ({e})"
        raise BackendError(SDK_MISSING.format(why=why)) from None
    return vaststreamx


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


def normalize(nchw_uint8: np.ndarray) -> np.ndarray:
    """uint8 -> float32 / 255: what the card's vdsp operator (NormaType DIV255) does on the device."""
    return nchw_uint8.astype(np.float32) / 255.0


def denormalize(nchw_float: np.ndarray) -> np.ndarray:
    """float in [0, 1] -> uint8 (nearest), exact for inputs that came from `normalize`."""
    return np.clip(np.rint(np.asarray(nchw_float, np.float32) * 255.0), 0, 255).astype(np.uint8)


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


# -------------------------------------------------------------------------------------------- backends
def vdsp_params(height: int, width: int) -> dict:
    """The fused vdsp pre-processing operator for a compiled H x W: the host already resized to H x W and
    converted to RGB planar, so the card only divides by 255 (the resize is then an identity)."""
    return {"OpType": "FUSION_OP_RGB_RESIZE_CVTCOLOR_NORM_TENSOR",
            "OpConfig": {"IimageFormat": "RGB_PLANAR", "IimageWidth": width, "IimageHeight": height,
                         "OimageWidth": width, "OimageHeight": height, "IimageWidthPitch": width,
                         "IimageHeightPitch": height, "Mean": [0.0, 0.0, 0.0], "Std": [1.0, 1.0, 1.0],
                         "NormaType": "DIV255", "ColorCvtCode": "NO_CHANGE", "ResizeType": "BILINEAR_CV"}}


class VaccBackend(Backend):
    """A vamc-compiled model on a VACC card through vaststreamx (graph: vdsp DIV255 operator -> model).

    ``run_uint8`` takes 1 x 3 x H x W uint8 RGB (the vdsp operator normalizes on the card); ``run`` (the Backend
    interface, used by tiling) takes float in [0, 1] and converts it back to uint8 first.
    """

    name = "vacc"
    device = "vacc"
    precision = "compiled"

    def __init__(self, model_prefix: str, vdsp_json: str | None = None, device_id: int = 0, batch_size: int = 1):
        vsx = import_vaststreamx()
        missing = [model_prefix + s for s in MODEL_SUFFIXES if not os.path.isfile(model_prefix + s)]
        if missing:
            raise BackendError(f"--model_prefix {model_prefix}: {', '.join(missing)} missing; pass the prefix "
                               f"`vamc compile` wrote (e.g. deploy_weights/hinet_sidd_int8/mod)")
        self.vsx, self.device_id, self.batch_size = vsx, int(device_id), int(batch_size)
        if vsx.set_device(self.device_id) != 0:
            raise BackendError(f"vaststreamx cannot open VACC device {self.device_id} (is the driver loaded? "
                               f"see `vasmi list`)")
        try:
            self.model = vsx.Model(model_prefix, self.batch_size)
            shape = [int(d) for d in self.model.input_shape[0]]
        except Exception as e:  # noqa: BLE001 - the SDK's own errors, as one line
            raise BackendError(f"{model_prefix}: vaststreamx cannot load the model ({type(e).__name__}: {e})") from None
        c, h, w = shape[-3:]
        self.fixed_shape = [1, c, h, w]
        self._tmp = None
        if vdsp_json is None:  # generate the DIV255 operator for this shape
            fd, self._tmp = tempfile.mkstemp(prefix="vdsp_", suffix=".json")
            with os.fdopen(fd, "w") as f:
                json.dump(vdsp_params(h, w), f)
            vdsp_json = self._tmp
        elif not os.path.isfile(vdsp_json):
            raise BackendError(f"--vdsp_params {vdsp_json}: no such file")
        self.fusion_op = vsx.Operator.load_ops_from_json_file(vdsp_json)[0]
        self.model_op = vsx.ModelOperator(self.model)
        self.graph = vsx.Graph()
        self.graph.add_operators(self.fusion_op, self.model_op)
        self.stream = vsx.Stream(self.graph, vsx.StreamBalanceMode.ONCE)
        self.stream.register_operator_output(self.model_op)
        self.stream.build()
        self.threads = 0

    def run_uint8(self, nchw_uint8: np.ndarray) -> np.ndarray:
        n, c, h, w = nchw_uint8.shape
        if [c, h, w] != self.fixed_shape[1:]:
            raise ValueError(f"the compiled model takes {self.fixed_shape[1:]} inputs, got {[c, h, w]}")
        outs = []
        for chw in nchw_uint8:
            image = self.vsx.create_image(np.ascontiguousarray(chw, np.uint8), self.vsx.ImageFormat.RGB_PLANAR,
                                          w, h, self.device_id)
            result = self.stream.run_sync([image])
            y = self.vsx.as_numpy(result[0][0]).astype(np.float32)
            outs.append(y.reshape(1, -1, h, w))
        return np.concatenate(outs)

    def run(self, nchw: np.ndarray) -> np.ndarray:
        return self.run_uint8(denormalize(nchw))

    def close(self) -> None:
        try:
            self.stream.close_input()
            self.stream.wait_until_done()
        finally:
            if self._tmp and os.path.exists(self._tmp):
                os.remove(self._tmp)

    @property
    def details(self) -> dict:
        return {**super().details, "device_id": self.device_id}


def onnx_input_shape(path: str) -> list:
    """[N, C, H, W] of an ONNX model's input, with None for dynamic dimensions."""
    import onnx

    model = onnx.load(path, load_external_data=False)
    inits = {t.name for t in model.graph.initializer}
    graph_input = [i for i in model.graph.input if i.name not in inits][0]
    return [d.dim_value if d.HasField("dim_value") else None for d in graph_input.type.tensor_type.shape.dim]


# ------------------------------------------------------------------------------------------------- loop
@dataclass
class VaccResult:
    files: list = field(default_factory=list)
    psnr: list = field(default_factory=list)
    ssim: list = field(default_factory=list)
    pre_s: list = field(default_factory=list)
    infer_s: list = field(default_factory=list)
    post_s: list = field(default_factory=list)
    failures: int = 0


class VaccPipeline:
    """Image file in, restored 8-bit BGR image out, with any backend of a fixed H x W (see module docstring)."""

    MODES = ("resize", "tile")

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
            from ..export import DeployInfo
            from .runner import Restorer

            info = DeployInfo(model_name="vacc", input_shape=[1, 3, self.height, self.width], rounding=rounding,
                              tile_overlap=min(int(tile_overlap), min(self.height, self.width) - 1))
            self.restorer = Restorer(backend, info)

    def __call__(self, img_bgr: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float]]:
        """(restored BGR uint8, (pre, infer, post) seconds). Resize mode: the compiled size; tile: the input's."""
        t0 = time.perf_counter()
        if self.restorer is not None:
            rgb = cv2.cvtColor(img_bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
            x = self.restorer.network_input(rgb)
            t1 = time.perf_counter()
            y = self.restorer.infer(x)
            t2 = time.perf_counter()
            out = np.ascontiguousarray(self.restorer.finish(y, *img_bgr.shape[:2])[:, :, ::-1])
        else:
            x = preprocess(img_bgr, self.height, self.width)
            t1 = time.perf_counter()
            y = run_uint8(self.backend, x)
            t2 = time.perf_counter()
            out = postprocess(y, self.rounding)
        return out, (t1 - t0, t2 - t1, time.perf_counter() - t2)

    def reference(self, gt_bgr: np.ndarray) -> np.ndarray:
        """The ground truth at the output's size: resized with INTER_AREA to the compiled shape (the seed's
        evaluation protocol; not comparable with full-resolution numbers), unchanged in tile mode."""
        if self.mode == "tile" or gt_bgr.shape[:2] == (self.height, self.width):
            return gt_bgr
        return cv2.resize(gt_bgr, (self.width, self.height), interpolation=cv2.INTER_AREA)


# ------------------------------------------------------------------------------------------ command line
def build_parser(prog: str | None = None):
    import argparse

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
               "tiles of the compiled shape.\n\nExamples:\n"
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
    add("--save_dir", default="output/vacc", help="folder for the restored PNGs (default: %(default)s; '' for none)")
    add("--backend", choices=("vacc", "onnxruntime"), default="vacc",
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
    from ..errors import ConfigError

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
    from ..export import INFO_FILENAME, read_deploy_info

    prefix_dir = args.model_prefix if os.path.isdir(args.model_prefix) else os.path.dirname(args.model_prefix)
    for folder in ([args.model_dir] if args.model_dir else []) + [prefix_dir or "."]:
        if os.path.isfile(os.path.join(folder, INFO_FILENAME)):
            return read_deploy_info(folder).rounding, os.path.join(folder, INFO_FILENAME)
    if args.model_dir:
        read_deploy_info(args.model_dir)  # raises the one-line "no such file" error
    return "nearest", "default (no inference.yml found; MIMO-UNet needs --rounding half_up)"


def make_backend(args):
    """(backend, compiled height, width) for the command line's --backend."""
    import sys

    from ..errors import ConfigError

    if args.backend == "vacc":
        backend = VaccBackend(args.model_prefix, args.vdsp_params, args.device_id)
        _, _, h, w = backend.fixed_shape
        if args.shape and _parse_shape(args.shape) != (h, w):
            raise ConfigError(f"--shape {args.shape}: the compiled model takes {h}x{w}")
        return backend, h, w
    from ..export import ONNX_FILENAME
    from .backends import OnnxRuntimeBackend

    path = args.model_prefix
    if os.path.isdir(path):
        path = os.path.join(path, ONNX_FILENAME)
    elif not path.endswith(".onnx") and os.path.isfile(path + ".onnx"):
        path += ".onnx"
    if not os.path.isfile(path):
        raise BackendError(f"--model_prefix {args.model_prefix}: no ONNX model there (give the .onnx file that "
                           f"tools/export_onnx.py wrote, or its folder)")
    backend = OnnxRuntimeBackend(path, None, cpu_threads=args.cpu_threads)
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


def main(argv=None, prog: str | None = None) -> int:
    import sys

    from ..data.image_io import write_image
    from ..errors import ConfigError
    from ..metrics import PSNR, SSIM
    from .runner import find_gt, list_images

    args = build_parser(prog).parse_args(argv)
    if args.gt_dir and not os.path.exists(args.gt_dir):
        raise ImageError(f"{args.gt_dir}: no such ground-truth file or folder")
    if args.tile_overlap < 0:
        raise ConfigError(f"--tile_overlap must be >= 0, got {args.tile_overlap}")
    files = list_images(args.image_dir)
    rounding, source = _find_rounding(args)
    backend, height, width = make_backend(args)  # vacc without the SDK: one line naming vaststreamx
    print(f"note: rounding {rounding} ({source}), mode {args.mode}", file=sys.stderr)
    pipe = VaccPipeline(backend, height, width, rounding, args.mode, args.tile_overlap)
    psnr, ssim = PSNR(), SSIM()
    res = VaccResult()
    try:
        for path in files:
            name = os.path.basename(path)
            try:
                img = read_bgr(path)
                out, (pre, infer, post) = pipe(img)
            except ImageError as e:
                res.failures += 1
                print(f"error: {e}", file=sys.stderr, flush=True)
                continue
            except Exception as e:  # noqa: BLE001 - one image failing must not stop the run
                res.failures += 1
                msg = (str(e).strip().splitlines() or [""])[0][:300]
                print(f"error: {path}: inference failed ({type(e).__name__}: {msg})", file=sys.stderr, flush=True)
                continue
            res.files.append(path)
            res.pre_s.append(pre)
            res.infer_s.append(infer)
            res.post_s.append(post)
            fields = [f"image: {name}"]
            if args.save_dir:
                saved = os.path.join(args.save_dir, os.path.splitext(name)[0] + ".png")
                try:
                    write_image(saved, out[:, :, ::-1])
                except (OSError, ImageError) as e:
                    res.failures += 1
                    print(f"error: {saved}: cannot write: {getattr(e, 'strerror', None) or e}", file=sys.stderr)
                    continue
                fields.append(f"saved: {saved}")
            if args.gt_dir:
                gt_path = find_gt(args.gt_dir, path)
                if gt_path is None:
                    res.failures += 1
                    print(f"error: {path}: no ground truth named like it in {args.gt_dir}", file=sys.stderr)
                    continue
                try:
                    gt = pipe.reference(read_bgr(gt_path))
                except ImageError as e:
                    res.failures += 1
                    print(f"error: {e}", file=sys.stderr)
                    continue
                if gt.shape != out.shape:
                    res.failures += 1
                    print(f"error: {gt_path}: {gt.shape[1]}x{gt.shape[0]} does not match the output "
                          f"{out.shape[1]}x{out.shape[0]}", file=sys.stderr)
                    continue
                p_val, s_val = psnr(out[:, :, ::-1], gt[:, :, ::-1]), ssim(out[:, :, ::-1], gt[:, :, ::-1])
                res.psnr.append(p_val)
                res.ssim.append(s_val)
                fields += [f"psnr: {p_val:.4f}", f"ssim: {s_val:.4f}"]
            print(", ".join(fields), flush=True)
    finally:
        if hasattr(backend, "close"):
            backend.close()
    if res.psnr:
        print(f"avg psnr: {np.mean(res.psnr):.4f}, avg ssim: {np.mean(res.ssim):.4f}", flush=True)
    if res.infer_s:
        ms = lambda v: f"{1000 * float(np.mean(v)):.2f}"  # noqa: E731
        print(f"avg time (ms): preprocess {ms(res.pre_s)}, inference {ms(res.infer_s)}, "
              f"postprocess {ms(res.post_s)} ({backend.name}, {len(res.infer_s)} image(s))", flush=True)
    print(f"restored {len(res.files)} of {len(files)} image(s)" + (f" into {args.save_dir}" if args.save_dir else "")
          + (f"; {res.failures} problem(s) reported above" if res.failures else ""), file=sys.stderr)
    return 1 if res.failures or not res.files else 0
