"""The per-image loop every deploy runner shares: read -> preprocess -> (tiled) backend -> postprocess -> save ->
metrics line -> timing, plus the TIPC-style command line and the AutoLog-layout benchmark report.

A deploy script is only ``sys.exit(run(lambda argv: main(argv, backend="paddle")))``; which backend runs the
network is the only difference between them. Per-model facts (input multiple, rounding, fixed shape, default
tiles) come from the export's ``inference.yml``.

Output, one line per image on stdout (parseable: ``key: value`` pairs separated by ``, ``)::

    image: 0001.png, psnr: 31.2345, ssim: 0.8765        (with --gt_dir)
    image: 0001.png, saved: output/0001.png             (without)
    avg psnr: 31.2345, avg ssim: 0.8765                 (with --gt_dir, at the end)

then, with ``--benchmark True``, the latency report in AutoLog's layout (it never exits the process).
Problems with single images are reported on stderr (``error: ...``); the run goes on and exits with 1.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from ..data.image_io import is_image_file, read_image, write_image
from ..errors import ConfigError, ImageError
from .pipeline import padded_size, postprocess, pad_to_multiple, to_network_channels, to_nchw, to_uint8
from .tiling import BLENDS, check_tile, run_tiled

BACKENDS = ("paddle", "onnxruntime")


# ------------------------------------------------------------------------------------------ command line
def str2bool(value) -> bool:
    """TIPC passes booleans as strings ('True', 'False'); accept the usual spellings, refuse the rest."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "t", "yes", "y", "1", "on"):
        return True
    if text in ("false", "f", "no", "n", "0", "off", "none", "null", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")


def _add(parser, name: str, **kwargs):
    """Add --a_b together with its dashed spelling --a-b (TIPC configs use both)."""
    flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
    kwargs.setdefault("dest", name)
    parser.add_argument(*flags, **kwargs)


def build_parser(backend: str, prog: str | None = None) -> argparse.ArgumentParser:
    engine = {"paddle": "Paddle Inference", "onnxruntime": "ONNX Runtime"}[backend]
    default_model = "inference.json" if backend == "paddle" else "model.onnx"
    p = argparse.ArgumentParser(
        prog=prog,
        description=f"Restore images with an exported ppir network on {engine}. Reads <model_dir>/inference.yml "
                    f"(written by tools/export_model.py) for the pre/post-processing, so any ppir model works. "
                    f"Any image size: images are reflect-padded to the network's multiple and cropped back, or "
                    f"restored in overlapping tiles (--tile). Booleans take True/False (TIPC style).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Output: one line per image on stdout, 'image: <name>, psnr: <x>, ssim: <y>' with --gt_dir "
               "('image: <name>, saved: <path>' without), then 'avg psnr: <x>, avg ssim: <y>'; with --benchmark "
               "True an AutoLog-style latency report follows. Images that fail are reported on stderr, the rest "
               "are still processed, and the exit code is then 1 (2 for a bad model or option).\n\n"
               "Example:\n  python " + (prog or "infer.py") + " --model_dir inference/hinet --image_dir noisy/ "
               "--gt_dir clean/ --enable_mkldnn True --cpu_threads 2 --benchmark True")
    _add(p, "model_dir", required=True, help="export directory (inference.yml, inference.json/.pdiparams"
                                             + ("" if backend == "paddle" else ", model.onnx") + ")")
    _add(p, "model_file", default=None,
         help=f"program to run instead of <model_dir>/{default_model}"
              + (" (e.g. an int8 .onnx from tools/quant_report.py)" if backend == "onnxruntime" else ""))
    if backend == "paddle":
        _add(p, "params_file", default=None, help="weights instead of <model_dir>/inference.pdiparams")
    _add(p, "image_dir", required=True, help="an image file or a folder of images (degraded inputs)")
    _add(p, "gt_dir", default=None, help="folder (or file) of ground-truth images with the same names: "
                                         "per-image PSNR/SSIM on the 8-bit outputs")
    _add(p, "save_dir", default="output", help="folder for the restored PNGs (default: %(default)s)")
    _add(p, "use_gpu", type=str2bool, nargs="?", const=True, default=False, metavar="BOOL", help="run on a GPU (needs a CUDA build)")
    _add(p, "enable_mkldnn", type=str2bool, nargs="?", const=True, default=False, metavar="BOOL",
         help="Paddle Inference: use oneDNN on CPU (the fast CPU path)" if backend == "paddle"
         else "accepted for TIPC compatibility; ONNX Runtime's CPU kernels are used either way")
    _add(p, "cpu_threads", type=int, default=None, help="CPU threads (default: all cores)")
    _add(p, "batch_size", type=int, default=1,
         help="images (of equal size) or tiles per network call (default: %(default)s)")
    _add(p, "use_tensorrt", type=str2bool, nargs="?", const=True, default=False, metavar="BOOL", help="TensorRT (GPU only)")
    _add(p, "precision", default="fp32", choices=("fp32", "fp16", "int8"),
         help="fp32 everywhere; fp16/int8 need TensorRT (Paddle) or a converted model via --model_file (ONNX "
              "Runtime). Unsupported combinations stop with a message.")
    _add(p, "benchmark", type=str2bool, nargs="?", const=True, default=False, metavar="BOOL",
         help="print a latency report (pre/inference/post ms per image) in AutoLog's layout")
    _add(p, "save_log_path", default=None, help="also write the benchmark report to this file")
    _add(p, "warmup", type=int, default=None,
         help="untimed runs on the first image before timing (default: 1 with --benchmark, else 0)")
    _add(p, "tile", type=int, default=None,
         help="restore in tiles of this size (a multiple of the network's; 0: whole image; default from "
              "inference.yml). Memory then grows with the tile, not the image. A fixed-shape export always "
              "uses its own H x W as the tile.")
    _add(p, "tile_overlap", type=int, default=None, help="overlap between tiles in pixels (default from "
                                                        "inference.yml, usually 32)")
    _add(p, "tile_blend", default="smooth", choices=BLENDS,
         help="smooth: raised-cosine blend over the overlaps (default); mean: HINet's official grid, overlaps "
              "averaged (--tile_overlap is then ignored)")
    return p


# ----------------------------------------------------------------------------------------------- inputs
def list_images(path: str) -> list[str]:
    if os.path.isdir(path):
        files = sorted(os.path.join(path, n) for n in os.listdir(path) if is_image_file(n))
        if not files:
            raise ImageError(f"{path}: no image files in this folder")
        return files
    if not os.path.exists(path):
        raise ImageError(f"{path}: no such file or folder")
    return [path]


def find_gt(gt_dir: str | None, image_path: str) -> str | None:
    """The ground truth for an image: a file given directly, the same name in gt_dir, or the same stem."""
    if not gt_dir:
        return None
    if os.path.isfile(gt_dir):
        return gt_dir
    name = os.path.basename(image_path)
    same = os.path.join(gt_dir, name)
    if os.path.isfile(same):
        return same
    stem = os.path.splitext(name)[0]
    for other in sorted(os.listdir(gt_dir)) if os.path.isdir(gt_dir) else []:
        if os.path.splitext(other)[0] == stem and is_image_file(other):
            return os.path.join(gt_dir, other)
    return None


# ---------------------------------------------------------------------------------------------- metrics
def _metric_functions():
    """PSNR/SSIM of an 8-bit restored image against its 8-bit ground truth: ppir.metrics' PSNR() and SSIM()
    defaults (peak 1 after /255, 2-D Gaussian SSIM), falling back on scikit-image if that module is missing.
    An image too small for the SSIM window scores nan (reported, left out of the average), never an error."""
    try:
        from ..metrics import PSNR, SSIM

        psnr_metric, ssim_metric = PSNR(), SSIM()
    except ImportError:  # pragma: no cover - ppir.metrics ships with ppir
        from skimage.metrics import peak_signal_noise_ratio, structural_similarity

        def psnr_metric(out, gt):
            return peak_signal_noise_ratio(gt, out, data_range=255)

        def ssim_metric(out, gt):
            return structural_similarity(gt, out, data_range=255, channel_axis=2, gaussian_weights=True,
                                         sigma=1.5, use_sample_covariance=False)

    def ssim(out, gt):
        try:
            return float(ssim_metric(out, gt))
        except ValueError:  # smaller than the window
            return float("nan")

    return (lambda out, gt: float(psnr_metric(out, gt))), ssim


# ------------------------------------------------------------------------------------------ restoring
@dataclass
class Timings:
    pre: list = field(default_factory=list)
    infer: list = field(default_factory=list)
    post: list = field(default_factory=list)

    def add(self, pre: float, infer: float, post: float) -> None:
        self.pre.append(pre)
        self.infer.append(infer)
        self.post.append(post)


class Restorer:
    """Image in, 8-bit restored image out, with one backend and the export's inference.yml.

    Whole images are reflect-padded to the network's multiple; with a tile size (or a fixed-shape program),
    `ppir.infer.tiling.run_tiled` feeds the backend tile-sized inputs only.
    """

    def __init__(self, backend, info, tile: int | None = None, tile_overlap: int | None = None,
                 blend: str = "smooth", batch_size: int = 1):
        self.backend, self.info = backend, info
        self.multiple, self.min_size = info.size_multiple, info.min_size
        self.blend = blend
        self.batch_size = max(1, int(batch_size))
        self.tile_overlap = info.tile_overlap if tile_overlap is None else int(tile_overlap)
        fixed = info.fixed_shape
        self.fixed_batch = fixed[0] if fixed else None
        if fixed:
            self.tile = (fixed[2], fixed[3])  # a fixed-shape program only takes tiles of its own size
            if self.tile_overlap >= min(self.tile):  # e.g. the default 32 on a 32x32 program
                self.tile_overlap = min(self.tile) // 4
        else:
            self.tile = info.tile if tile is None else int(tile)
        if self.tile:
            try:
                check_tile(self.tile, self.tile_overlap if blend == "smooth" else 0, self.multiple,
                           self.min_size, blend)
            except ValueError as e:
                raise ConfigError(f"--tile: {e}") from None

    @property
    def tiled(self) -> bool:
        return bool(self.tile)

    def network_input(self, img_rgb: np.ndarray) -> np.ndarray:
        """HxWx3 image -> 1xCxHxW (tiled) or 1xCxH'xW' padded to the network's multiple (whole image)."""
        x = to_nchw(to_network_channels(img_rgb, self.info.in_channels))
        return x if self.tiled else pad_to_multiple(x, self.multiple, self.min_size)

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Network on a batch of prepared inputs (tiled: one image at a time)."""
        if self.tiled:
            return np.concatenate([run_tiled(self.backend.run, x[i:i + 1], self.tile, self.tile_overlap, self.blend,
                                             self.batch_size, self.multiple, self.min_size,
                                             fixed_batch=self.fixed_batch, fixed_tile=self.fixed_batch is not None)
                                   for i in range(x.shape[0])])
        return self.backend.run(x)

    def finish(self, y: np.ndarray, height: int, width: int) -> np.ndarray:
        return to_uint8(postprocess(y, height, width), self.info.rounding)

    def __call__(self, img_rgb: np.ndarray) -> np.ndarray:
        h, w = img_rgb.shape[:2]
        return self.finish(self.infer(self.network_input(img_rgb)), h, w)

    def group_key(self, img_rgb: np.ndarray):
        """Images with equal keys can share one network call (whole-image mode only)."""
        h, w = img_rgb.shape[:2]
        if self.tiled:
            return None
        return padded_size(h, self.multiple, self.min_size), padded_size(w, self.multiple, self.min_size)


@dataclass
class RunSummary:
    done: int = 0
    failures: int = 0
    psnr: list = field(default_factory=list)
    ssim: list = field(default_factory=list)
    timings: Timings = field(default_factory=Timings)
    total_s: float = 0.0
    shapes: set = field(default_factory=set)


def _err(msg: str) -> None:
    sys.stdout.flush()
    print(f"error: {msg}", file=sys.stderr, flush=True)


def restore_images(restorer: Restorer, files: list[str], save_dir: str | None, gt_dir: str | None = None,
                   out=None) -> RunSummary:
    """The loop: read, restore (grouping equal-size images up to the batch size), save, print metric lines."""
    out = out or sys.stdout
    summary = RunSummary()
    psnr_fn = ssim_fn = None
    if gt_dir:
        psnr_fn, ssim_fn = _metric_functions()
    chunk_size = 1 if restorer.tiled else restorer.batch_size
    t_start = time.perf_counter()
    for c in range(0, len(files), chunk_size):
        chunk = files[c:c + chunk_size]
        loaded = []  # (path, image, network input, read+preprocess seconds)
        for path in chunk:
            t0 = time.perf_counter()
            try:
                img = read_image(path)
                x = restorer.network_input(img)
            except (ImageError, ValueError) as e:
                summary.failures += 1
                _err(str(e) if isinstance(e, ImageError) else f"{path}: {e}")
                continue
            loaded.append((path, img, x, time.perf_counter() - t0))
        groups: dict = {}
        for item in loaded:
            groups.setdefault((restorer.group_key(item[1]), item[2].shape[1:]), []).append(item)
        for items in groups.values():
            t0 = time.perf_counter()
            try:
                y = restorer.infer(np.concatenate([it[2] for it in items]))
            except Exception as e:  # noqa: BLE001 - one image failing (memory, backend) must not stop the run
                summary.failures += len(items)
                why = (str(e).strip().splitlines() or [""])[0][:300]
                for path, *_ in items:
                    _err(f"{path}: inference failed ({type(e).__name__}: {why})")
                continue
            infer_each = (time.perf_counter() - t0) / len(items)
            for k, (path, img, _x, pre_s) in enumerate(items):
                t1 = time.perf_counter()
                h, w = img.shape[:2]
                restored = restorer.finish(y[k:k + 1], h, w)
                post_s = time.perf_counter() - t1
                summary.timings.add(pre_s, infer_each, post_s)
                summary.shapes.add((h, w))
                _report_image(summary, path, restored, save_dir, gt_dir, psnr_fn, ssim_fn, out)
    summary.total_s = time.perf_counter() - t_start
    return summary


def _report_image(summary, path, restored, save_dir, gt_dir, psnr_fn, ssim_fn, out) -> None:
    name = os.path.basename(path)
    saved = None
    if save_dir:
        saved = os.path.join(save_dir, os.path.splitext(name)[0] + ".png")
        try:
            write_image(saved, restored)
        except (OSError, ImageError) as e:
            summary.failures += 1
            _err(f"{saved}: cannot write: {getattr(e, 'strerror', None) or e}")
            return
    if gt_dir:
        gt_path = find_gt(gt_dir, path)
        if gt_path is None:
            summary.failures += 1
            _err(f"{path}: no ground truth named like it in {gt_dir}")
            return
        try:
            gt = to_uint8(read_image(gt_path))
        except ImageError as e:
            summary.failures += 1
            _err(str(e))
            return
        if gt.shape != restored.shape:
            summary.failures += 1
            _err(f"{path}: ground truth {gt_path} is {gt.shape[1]}x{gt.shape[0]}, the image "
                 f"{restored.shape[1]}x{restored.shape[0]}")
            return
        p, s = psnr_fn(restored, gt), ssim_fn(restored, gt)
        summary.psnr.append(p)
        summary.ssim.append(s)
        print(f"image: {name}, psnr: {p:.4f}, ssim: {s:.4f}", file=out, flush=True)
    else:
        print(f"image: {name}, saved: {saved}" if saved else f"image: {name}, done", file=out, flush=True)
    summary.done += 1


# ----------------------------------------------------------------------------------------- benchmark
def _os_info() -> str:
    try:
        import distro  # type: ignore

        return f"{distro.name()} {distro.version()}"
    except ImportError:
        pass
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            fields = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
        return fields.get("PRETTY_NAME", "").strip('"') or platform.platform()
    except OSError:
        return platform.platform()


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB (Linux reports ru_maxrss in KB)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / 1024.0 if sys.platform != "darwin" else kb / 2**20, 2)


def benchmark_report(summary: RunSummary, backend, info, batch_size: int, restorer: Restorer) -> list[str]:
    """Lines in AutoLog's report layout (LDOUBLEV/AutoLog `AutoLogger.report`), means per image in ms."""
    def mean_ms(values):
        return round(float(np.mean(values)) * 1000, 4) if values else 0.0

    try:
        import paddle

        paddle_version, paddle_commit = paddle.__version__, getattr(paddle, "__git_commit__", "unknown")
    except ImportError:  # pragma: no cover
        paddle_version = paddle_commit = "None"
    d = backend.details
    if info.fixed_shape:
        shape = ",".join(map(str, info.fixed_shape))
    elif len(summary.shapes) == 1:
        (h, w), = summary.shapes
        shape = f"{info.in_channels},{h},{w}"
    else:
        shape = "dynamic"
    if restorer.tiled:
        th, tw = (restorer.tile, restorer.tile) if isinstance(restorer.tile, int) else restorer.tile
        shape += f" (tiles {th}x{tw}, overlap {restorer.tile_overlap}, {restorer.blend})"
    t = summary.timings
    body = [
        "---------------------- Env info ----------------------",
        f" OS_version: {_os_info()}",
        " CUDA_version: None" if d.get("runtime_device", "cpu") == "cpu" else " CUDA_version: unknown",
        " CUDNN_version: None",
        " drivier_version: None",
        "---------------------- Paddle info ----------------------",
        f" paddle_version: {paddle_version}",
        f" paddle_commit: {paddle_commit}",
        " log_api_version: 1.0",
        "----------------------- Conf info -----------------------",
        f" runtime_device: {d.get('runtime_device')}",
        f" ir_optim: {d.get('ir_optim', True)}",
        f" enable_memory_optim: {d.get('enable_memory_optim', False)}",
        f" enable_tensorrt: {d.get('enable_tensorrt', False)}",
        f" enable_mkldnn: {d.get('enable_mkldnn', False)}",
        f" cpu_math_library_num_threads: {d.get('cpu_math_library_num_threads')}",
        f" inference_engine: {backend.name}" + (f" ({d['providers']})" if d.get("providers") else ""),
        "----------------------- Model info ----------------------",
        f" model_name: {info.model_name}",
        f" precision: {d.get('precision', 'fp32')}",
        "----------------------- Data info -----------------------",
        f" batch_size: {batch_size}",
        f" input_shape: {shape}",
        f" data_num: {len(t.infer)}",
        "----------------------- Perf info -----------------------",
        f" cpu_rss(MB): {peak_rss_mb()}, gpu_rss(MB): None, gpu_util: None%",
        f" total time spent(s): {round(summary.total_s, 4)}",
        f" preprocess_time(ms): {mean_ms(t.pre)}, inference_time(ms): {mean_ms(t.infer)}, "
        f"postprocess_time(ms): {mean_ms(t.post)}",
    ]
    stamp = datetime.datetime.now().strftime("%Y/%m/%d %H:%M:%S")
    return [f"[{stamp}] root INFO: {line}" for line in body]


def warm_up(restorer: Restorer, files: list[str], runs: int) -> None:
    """`runs` untimed passes over the first readable image; with 0, one pass of the backend on the smallest
    input it takes (cheap, and it absorbs one-time work such as oneDNN's kernel selection)."""
    if runs <= 0:
        info = restorer.info
        m = padded_size(1, info.size_multiple, info.min_size)
        restorer.backend.run(np.zeros(info.fixed_shape or [1, info.in_channels, m, m], np.float32))
        return
    for path in files:
        try:
            img = read_image(path)
        except ImageError:
            continue
        for _ in range(runs):
            restorer(img)
        return


# --------------------------------------------------------------------------------------------------- main
@contextlib.contextmanager
def _stdout_to_stderr():
    """Send what C++ code prints on fd 1 to stderr, so stdout holds only the parseable lines."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def make_backend(kind: str, args, info):
    from .backends import OnnxRuntimeBackend, PaddleInferenceBackend

    if kind == "paddle":
        return PaddleInferenceBackend(args.model_dir, info, use_gpu=args.use_gpu, enable_mkldnn=args.enable_mkldnn,
                                      cpu_threads=args.cpu_threads, use_tensorrt=args.use_tensorrt,
                                      precision=args.precision, model_file=args.model_file,
                                      params_file=args.params_file)
    from ..export import ONNX_FILENAME

    return OnnxRuntimeBackend(args.model_file or os.path.join(args.model_dir, ONNX_FILENAME), info,
                              use_gpu=args.use_gpu, cpu_threads=args.cpu_threads, use_tensorrt=args.use_tensorrt,
                              precision=args.precision)


def main(argv=None, backend: str = "paddle", prog: str | None = None) -> int:
    """Parse the TIPC-style flags and run the loop with `backend` ("paddle" or "onnxruntime")."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}")
    args = build_parser(backend, prog).parse_args(argv)
    from ..export import read_deploy_info

    if args.batch_size < 1:
        raise ConfigError(f"--batch_size must be at least 1, got {args.batch_size}")
    if args.cpu_threads is not None and args.cpu_threads < 1:
        raise ConfigError(f"--cpu_threads must be at least 1, got {args.cpu_threads}")
    if args.tile is not None and args.tile < 0:
        raise ConfigError(f"--tile must be 0 (whole image) or a positive size, got {args.tile}")
    if args.gt_dir and not os.path.exists(args.gt_dir):
        raise ImageError(f"{args.gt_dir}: no such ground-truth file or folder")
    if not os.path.isdir(args.model_dir):
        raise ConfigError(f"--model_dir {args.model_dir}: no such folder")
    info = read_deploy_info(args.model_dir)
    files = list_images(args.image_dir)
    with _stdout_to_stderr():  # Paddle's C++ passes print to stdout while building the predictor
        engine = make_backend(backend, args, info)
    restorer = Restorer(engine, info, args.tile, args.tile_overlap, args.tile_blend, args.batch_size)
    if info.fixed_shape:
        n, _, th, tw = info.fixed_shape
        if args.tile and (args.tile, args.tile) != (th, tw):
            print(f"note: the program only takes {th}x{tw} inputs: restoring in tiles of that size (--tile ignored)",
                  file=sys.stderr)
        if args.batch_size not in (1, n):
            print(f"note: the program was exported for batches of {n}; --batch_size ignored", file=sys.stderr)
    warmup = args.warmup if args.warmup is not None else (1 if args.benchmark else 0)
    with _stdout_to_stderr():  # first runs print oneDNN pass notes on stdout; keep stdout parseable
        warm_up(restorer, files, warmup)
    summary = restore_images(restorer, files, args.save_dir, args.gt_dir, out=sys.stdout)
    if summary.psnr:
        ssims = [v for v in summary.ssim if not np.isnan(v)]
        print(f"avg psnr: {np.mean(summary.psnr):.4f}, avg ssim: {np.mean(ssims) if ssims else float('nan'):.4f}",
              flush=True)
    if args.benchmark:
        lines = benchmark_report(summary, engine, info, args.batch_size, restorer)
        print("\n".join(lines), flush=True)
        if args.save_log_path:
            folder = os.path.dirname(os.path.abspath(args.save_log_path))
            os.makedirs(folder, exist_ok=True)
            with open(args.save_log_path, "w", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
    total = summary.done + summary.failures
    print(f"restored {summary.done} of {len(files)} image(s)" + (f" into {args.save_dir}" if args.save_dir else "")
          + (f"; {summary.failures} problem(s) reported above" if summary.failures else ""), file=sys.stderr)
    return 1 if summary.failures or total == 0 else 0

