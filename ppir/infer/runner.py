"""The per-image loop every deploy runner shares: read -> preprocess -> (tiled) backend -> postprocess -> save ->
metrics line -> timing, plus the TIPC-style command line and the AutoLog-layout benchmark report.

A deploy script is only ``sys.exit(run(lambda argv: main(argv, backend="paddle")))``; which backend runs the
network is the only difference between them. Per-model facts (input multiple, rounding, fixed shape, default
tiles) come from the export's ``inference.yml``.

Output, one line per image on stdout (parseable: ``key: value`` pairs separated by ``, ``)::

    image: 0001.png, psnr: 31.2345, ssim: 0.8765        (with --gt_dir)
    image: 0001.png, saved: output/0001.png             (without)
    avg psnr: 31.2345, avg ssim: 0.8765                 (with --gt_dir, at the end)

An image smaller than SSIM's 11x11 window has no SSIM: its line says ``ssim: n/a, note: ...`` and the
average line then ends with ``, ssim over: <k> of <n> image(s)``, so no score is left out silently.

then, with ``--benchmark True``, the latency report in AutoLog's layout (it never exits the process).
Problems with single images are reported on stderr (``error: ...``); the run goes on and exits with 1.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import sys
import textwrap
import time
from dataclasses import dataclass, field

import numpy as np

from ..cli import str2bool
from ..data.image_io import is_image_file, read_image, write_image
from ..errors import ConfigError, ImageError
from ..metrics import SSIM_WINDOW
from .memory import TOLERANCE_NOTE, MemoryPlanner, default_budget, memory_arg, peak_rss_bytes
from .outputs import NAME_RULE, check_output_folder, output_names
from .pipeline import padded_size, postprocess, pad_to_multiple, to_network_channels, to_nchw, to_uint8
from .tiling import BLENDS, check_tile, run_tiled

BACKENDS = ("paddle", "onnxruntime")


# ------------------------------------------------------------------------------------------ command line
def _add(parser, name: str, **kwargs):
    """Add --a_b together with its dashed spelling --a-b (TIPC configs use both)."""
    flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
    kwargs.setdefault("dest", name)
    parser.add_argument(*flags, **kwargs)


def _invocation(prog: str | None) -> str:
    """How a user types the runner: `python deploy/.../infer.py` for a script, `ppir infer` as it is."""
    prog = prog or "infer.py"
    return f"python {prog}" if prog.endswith(".py") else prog


def _epilog(prog: str | None) -> str:
    notes = [
        "Output: one line per image on stdout, 'image: <name>, psnr: <x>, ssim: <y>' with --gt_dir ('image: "
        "<name>, saved: <path>' without), then 'avg psnr: <x>, avg ssim: <y>'; with --benchmark True an "
        "AutoLog-style latency report follows. Images that fail are reported on stderr, the rest are still "
        "processed, and the exit code is then 1 (2 for a bad model or option). An image without a usable ground "
        "truth is still restored and saved, named on stderr and counted apart in the last line (exit 1). An "
        f"image smaller than SSIM's {SSIM_WINDOW}x{SSIM_WINDOW} window gets 'ssim: n/a' and the average line "
        "then adds 'ssim over: <k> of <n> image(s)'.",
        f"Saving: {NAME_RULE}. A --save_dir equal to or inside --image_dir/--gt_dir, or one where a result "
        "would replace an input, is refused unless --overwrite True.",
        "Memory: an image that would need more than --max-memory in one piece is restored in tiles (a note on "
        "stderr says which tile and why); the need is the network's peak bytes per pixel, measured once on a "
        f"small input, plus the image's own arrays. {TOLERANCE_NOTE}.",
    ]
    return ("\n\n".join(textwrap.fill(n, 110, break_on_hyphens=False) for n in notes)
            + "\n\nExample:\n  " + _invocation(prog) + " --model_dir inference/hinet --image_dir noisy/ "
            "--gt_dir clean/ --enable_mkldnn True --cpu_threads 2 --benchmark True")


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
        epilog=_epilog(prog))
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
    _add(p, "save_dir", default="output", help="folder for the restored PNGs (default: %(default)s; "
                                               "never the input folder unless --overwrite True)")
    _add(p, "overwrite", type=str2bool, nargs="?", const=True, default=False, metavar="BOOL",
         help="allow --save_dir to be (inside) the input or ground-truth folder, replacing inputs")
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
              "uses its own H x W as the tile. Without a tile, images over --max-memory are tiled anyway.")
    _add(p, "max_memory", type=memory_arg, default=None, metavar="SIZE",
         help="memory budget per image, e.g. 8G or 512M (default: half of this machine's memory); an image "
              "that would need more in one piece is restored in the largest tiles that fit; 0: no limit")
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
    An image smaller than the SSIM window has no SSIM (nan): its line and the average line say so."""
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
        if min(out.shape[:2]) < SSIM_WINDOW:  # SSIM's valid region is empty: no score, said on the line
            return float("nan")
        return float(ssim_metric(out, gt))

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
    `ppir.infer.tiling.run_tiled` feeds the backend tile-sized inputs only. Without one, an image that would
    need more than `max_memory` bytes whole is tiled too (`ppir.infer.memory`).
    """

    def __init__(self, backend, info, tile: int | None = None, tile_overlap: int | None = None,
                 blend: str = "smooth", batch_size: int = 1, max_memory: int = 0):
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
        self.planner = MemoryPlanner(backend.run, 0 if self.tile else max_memory, info.in_channels, self.multiple,
                                     self.min_size, self.tile_overlap if blend == "smooth" else 0,
                                     self.batch_size, info.model_name)
        self.auto_tiles: set = set()  # tile sizes auto-tiling chose (for the benchmark report)

    @property
    def tiled(self) -> bool:
        """True when every image is tiled (--tile or a fixed-shape program)."""
        return bool(self.tile)

    def tile_for(self, img_rgb: np.ndarray, name: str | None = None):
        """The tile for this image: --tile / the fixed shape, an auto tile over the memory budget, or 0 (whole).
        With a `name`, says on stderr why it auto-tiles; ImageError when not even small tiles fit the budget."""
        if self.tile:
            return self.tile
        tile, note = self.planner.tile_for(*img_rgb.shape[:2], name or "image")
        if note and name:
            self.auto_tiles.add(tile)
            _note(note)
        return tile

    def network_input(self, img_rgb: np.ndarray, tile=None) -> np.ndarray:
        """HxWx3 image -> 1xCxHxW (tiled) or 1xCxH'xW' padded to the network's multiple (whole image)."""
        x = to_nchw(to_network_channels(img_rgb, self.info.in_channels))
        tile = self.tile if tile is None else tile
        return x if tile else pad_to_multiple(x, self.multiple, self.min_size)

    def infer(self, x: np.ndarray, tile=None) -> np.ndarray:
        """Network on a batch of prepared inputs (tiled: one image at a time)."""
        tile = self.tile if tile is None else tile
        if tile:
            return np.concatenate([run_tiled(self.backend.run, x[i:i + 1], tile, self.tile_overlap, self.blend,
                                             self.batch_size, self.multiple, self.min_size,
                                             fixed_batch=self.fixed_batch, fixed_tile=self.fixed_batch is not None)
                                   for i in range(x.shape[0])])
        return self.backend.run(x)

    def finish(self, y: np.ndarray, height: int, width: int) -> np.ndarray:
        return to_uint8(postprocess(y, height, width), self.info.rounding)

    def __call__(self, img_rgb: np.ndarray) -> np.ndarray:
        h, w = img_rgb.shape[:2]
        tile = self.tile_for(img_rgb)
        return self.finish(self.infer(self.network_input(img_rgb, tile), tile), h, w)

    def group_key(self, img_rgb: np.ndarray, tile=None):
        """Images with equal keys can share one network call (whole-image mode only)."""
        h, w = img_rgb.shape[:2]
        if self.tile if tile is None else tile:
            return None
        return padded_size(h, self.multiple, self.min_size), padded_size(w, self.multiple, self.min_size)


@dataclass
class RunSummary:
    done: int = 0  # restored (and saved, with a save folder)
    failures: int = 0  # images that could not be restored or saved
    unscored: list = field(default_factory=list)  # restored, but no PSNR/SSIM: "name (why)"
    psnr: list = field(default_factory=list)
    ssim: list = field(default_factory=list)  # nan where the image is smaller than the SSIM window
    timings: Timings = field(default_factory=Timings)
    total_s: float = 0.0
    shapes: set = field(default_factory=set)

    @property
    def problems(self) -> int:
        return self.failures + len(self.unscored)


def _err(msg: str) -> None:
    sys.stdout.flush()
    print(f"error: {msg}", file=sys.stderr, flush=True)


def _note(msg: str) -> None:
    sys.stdout.flush()
    print(msg, file=sys.stderr, flush=True)


def restore_images(restorer: Restorer, files: list[str], save_dir: str | None, gt_dir: str | None = None,
                   out=None, names: dict | None = None) -> RunSummary:
    """The loop: read, restore (grouping equal-size images up to the batch size), save, print metric lines.
    `names` maps an input to its output file name (default: `output_names(files)`)."""
    out = out or sys.stdout
    names = names or output_names(files)
    summary = RunSummary()
    psnr_fn = ssim_fn = None
    if gt_dir:
        psnr_fn, ssim_fn = _metric_functions()
    chunk_size = 1 if restorer.tiled else restorer.batch_size
    t_start = time.perf_counter()
    for c in range(0, len(files), chunk_size):
        chunk = files[c:c + chunk_size]
        loaded = []  # (path, image, network input, tile, read+preprocess seconds)
        for path in chunk:
            t0 = time.perf_counter()
            try:
                img = read_image(path)
                tile = restorer.tile_for(img, path)
                x = restorer.network_input(img, tile)
            except (ImageError, ValueError) as e:
                summary.failures += 1
                _err(str(e) if isinstance(e, ImageError) else f"{path}: {e}")
                continue
            loaded.append((path, img, x, tile, time.perf_counter() - t0))
        groups: dict = {}
        for item in loaded:
            groups.setdefault((restorer.group_key(item[1], item[3]), item[3], item[2].shape[1:]), []).append(item)
        for (_key, tile, _shape), items in groups.items():
            t0 = time.perf_counter()
            try:
                y = restorer.infer(np.concatenate([it[2] for it in items]), tile)
            except Exception as e:  # noqa: BLE001 - one image failing (memory, backend) must not stop the run
                summary.failures += len(items)
                why = (str(e).strip().splitlines() or [""])[0][:300]
                for path, *_ in items:
                    _err(f"{path}: inference failed ({type(e).__name__}: {why})")
                continue
            infer_each = (time.perf_counter() - t0) / len(items)
            for k, (path, img, _x, _tile, pre_s) in enumerate(items):
                t1 = time.perf_counter()
                h, w = img.shape[:2]
                restored = restorer.finish(y[k:k + 1], h, w)
                post_s = time.perf_counter() - t1
                summary.timings.add(pre_s, infer_each, post_s)
                summary.shapes.add((h, w))
                saved = os.path.join(save_dir, names[path]) if save_dir else None
                _report_image(summary, path, restored, saved, gt_dir, psnr_fn, ssim_fn, out)
    summary.total_s = time.perf_counter() - t_start
    return summary


def _save(summary, saved, restored) -> bool:
    try:
        write_image(saved, restored)
    except (OSError, ImageError) as e:
        summary.failures += 1
        _err(f"{saved}: cannot write: {getattr(e, 'strerror', None) or e}")
        return False
    return True


def _score(summary, path, restored, gt_dir, psnr_fn, ssim_fn) -> tuple | None:
    """(psnr, ssim) against the ground truth, or None after reporting why there is none (the image itself
    was restored: it counts as done, the missing score as a problem)."""
    name = os.path.basename(path)
    gt_path = find_gt(gt_dir, path)
    why = None
    if gt_path is None:
        why = f"no ground truth named like it in {gt_dir}"
    else:
        try:
            gt = to_uint8(read_image(gt_path))
        except ImageError as e:
            why = f"ground truth unreadable: {e}"
        else:
            if gt.shape != restored.shape:
                why = (f"ground truth {gt_path} is {gt.shape[1]}x{gt.shape[0]}, the image "
                       f"{restored.shape[1]}x{restored.shape[0]}")
    if why:
        summary.unscored.append(name)
        _err(f"{path}: not scored: {why}")
        return None
    return psnr_fn(restored, gt), ssim_fn(restored, gt)


def _report_image(summary, path, restored, saved, gt_dir, psnr_fn, ssim_fn, out) -> None:
    name = os.path.basename(path)
    if saved and not _save(summary, saved, restored):
        return
    summary.done += 1
    scores = _score(summary, path, restored, gt_dir, psnr_fn, ssim_fn) if gt_dir else None
    if scores:
        p, s = scores
        summary.psnr.append(p)
        summary.ssim.append(s)
        ssim_text = (f"{s:.4f}" if not np.isnan(s)
                     else f"n/a, note: smaller than SSIM's {SSIM_WINDOW}x{SSIM_WINDOW} window")
        print(f"image: {name}, psnr: {p:.4f}, ssim: {ssim_text}", file=out, flush=True)
    else:
        print(f"image: {name}, saved: {saved}" if saved else f"image: {name}, done", file=out, flush=True)


def average_line(summary: RunSummary) -> str:
    """'avg psnr: x, avg ssim: y'; when some images have no SSIM, ', ssim over: k of n image(s)' says so."""
    ssims = [v for v in summary.ssim if not np.isnan(v)]
    line = f"avg psnr: {np.mean(summary.psnr):.4f}, avg ssim: " + (f"{np.mean(ssims):.4f}" if ssims else "n/a")
    if len(ssims) < len(summary.ssim):
        line += f", ssim over: {len(ssims)} of {len(summary.ssim)} image(s)"
    return line


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
    """Peak resident memory of this process in MB (also before auto-tiling's measurement reset the mark)."""
    return round(peak_rss_bytes() / 2**20, 2)


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
    elif restorer.auto_tiles:
        sizes = ", ".join(f"{t}x{t}" for t in sorted(restorer.auto_tiles))
        shape += f" (auto tiles {sizes} over the memory budget, overlap {restorer.tile_overlap}, {restorer.blend})"
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
    names = output_names(files)
    if args.save_dir:
        check_save_dir(args, files, names)
    budget = default_budget() if args.max_memory is None else args.max_memory
    with _stdout_to_stderr():  # Paddle's C++ passes print to stdout while building the predictor
        engine = make_backend(backend, args, info)
    restorer = Restorer(engine, info, args.tile, args.tile_overlap, args.tile_blend, args.batch_size, budget)
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
    summary = restore_images(restorer, files, args.save_dir, args.gt_dir, out=sys.stdout, names=names)
    if summary.psnr:
        print(average_line(summary), flush=True)
    if args.benchmark:
        lines = benchmark_report(summary, engine, info, args.batch_size, restorer)
        print("\n".join(lines), flush=True)
        if args.save_log_path:
            folder = os.path.dirname(os.path.abspath(args.save_log_path))
            os.makedirs(folder, exist_ok=True)
            with open(args.save_log_path, "w", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
    print(final_line(summary, len(files), args.save_dir), file=sys.stderr)
    return 1 if summary.problems or summary.done == 0 else 0


def final_line(summary: RunSummary, total: int, save_dir: str | None) -> str:
    """'restored N of M image(s) into DIR', then what went wrong: failed images, images without a score."""
    line = f"restored {summary.done} of {total} image(s)" + (f" into {save_dir}" if save_dir else "")
    if summary.failures:
        line += f"; {summary.failures} failed (reported above)"
    if summary.unscored:
        shown = ", ".join(summary.unscored[:5]) + (", ..." if len(summary.unscored) > 5 else "")
        line += f"; {len(summary.unscored)} restored but not scored (no usable ground truth: {shown})"
    return line


def check_save_dir(args, files: list[str], names: dict) -> None:
    """Refuse, before any work, a --save_dir that would replace an input or ground truth, or is not writable."""
    gt_files = [args.gt_dir] if args.gt_dir and os.path.isfile(args.gt_dir) else []
    folders = [f for f in (args.image_dir, args.gt_dir) if f and os.path.isdir(f)]
    check_output_folder(args.save_dir, "--save_dir", files + gt_files, folders, names, args.overwrite)

