"""The deploy runners (Paddle Inference, ONNX Runtime) over the one per-image loop (`ppir.infer.loop`: read ->
`ImageRestorer` -> save -> metrics line -> timing), and the AutoLog-layout report.

`run(RunnerSettings(...), backend)` is a whole run; its TIPC-style command line is ppir/commands/infer.py
(`ppir infer`, `ppir infer-onnx`). Which backend runs the network is the only difference between them. Per-model facts (input multiple, rounding, fixed shape, default
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

import contextlib
import dataclasses
import datetime
import os
import platform
import sys

import numpy as np

from ..data.image_io import read_image
from ..errors import ConfigError, ImageError
from ..scaleout.cluster import require_ray
from .backend_registry import EXPORT, names as backend_names, option_names
from .backends import make_backend, warm_up as warm_up_backend
from .deploy_info import read_deploy_info
from .memory import check_image_file, default_budget, peak_rss_bytes
from .outputs import check_output_folder, output_names
from .loop import (RunSummary, average_line, file_items, final_line, list_images, pixel_scores, print_error,
                   print_note, restore_items, score_text)
from .restorer import ImageRestorer

BACKENDS = backend_names(EXPORT)


@dataclasses.dataclass
class RunnerSettings:
    """What a deploy runner is asked to do (`ppir infer` / `ppir infer-onnx` fill it from their flags; the flags'
    help in ppir/commands/infer.py says what each field means)."""
    model_dir: str
    image_dir: str
    model_file: str | None = None
    params_file: str | None = None  # Paddle Inference only
    gt_dir: str | None = None
    save_dir: str = "output"
    overwrite: bool = False
    use_gpu: bool = False
    enable_mkldnn: bool = False
    cpu_threads: int | None = None
    batch_size: int = 1
    use_tensorrt: bool = False
    precision: str = "fp32"
    benchmark: bool = False
    save_log_path: str | None = None
    warmup: int | None = None  # None: 1 with benchmark, else 0
    tile: int | None = None
    max_memory: int | None = None  # bytes; None: memory.default_budget() (1280M on most machines)
    tile_overlap: int | None = None
    tile_blend: str = "smooth"
    engine: str = "local"
    workers: int = 2
    ray_address: str | None = None


# ----------------------------------------------------------------------------------------------- lines
def print_line(out=None):
    """The runners' report: 'image: <name>, psnr: <x>, ssim: <y>' when scored, else where it was saved."""
    def report(item, restored, scores, saved):
        if scores:
            line = f"image: {item.name}, {score_text(scores)}"
        else:
            line = f"image: {item.name}, saved: {saved}" if saved else f"image: {item.name}, done"
        print(line, file=out or sys.stdout, flush=True)
    return report


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


def benchmark_report(summary: RunSummary, backend, info, batch_size: int, restorer: ImageRestorer) -> list[str]:
    """Lines in AutoLog's report layout (LDOUBLEV/AutoLog `AutoLogger.report`), means per image in ms."""
    def mean_ms(values):
        return round(float(np.mean(values)) * 1000, 4) if values else 0.0

    try:
        from .. import _paddle  # noqa: F401 - sets the environment paddle reads on import
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


def warm_up(restorer: ImageRestorer, files: list[str], runs: int) -> None:
    """`runs` untimed passes over the first readable image; with 0, one pass of the backend on the smallest
    input it takes (cheap, and it absorbs one-time work such as oneDNN's kernel selection)."""
    if runs <= 0:
        warm_up_backend(restorer.backend, restorer.info, 1)
        return
    for path in files:
        try:
            check_image_file(path, restorer.max_memory)  # judged before decoding, as the loop judges
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


def backend_from_args(kind: str, args, info):
    """The backend the command line asks for, through the one factory (`ppir.infer.backends.make_backend`)."""
    settings = dict(use_gpu=args.use_gpu, enable_mkldnn=args.enable_mkldnn, threads=args.cpu_threads,
                    use_tensorrt=args.use_tensorrt, precision=args.precision, model_file=args.model_file,
                    params_file=getattr(args, "params_file", None))
    # both runners share the TIPC flags; ONNX Runtime has no oneDNN switch and no separate params file
    return make_backend(kind, args.model_dir, info, {k: v for k, v in settings.items() if k in option_names(kind)})


def run(args: RunnerSettings, backend: str = "paddle") -> int:
    """Restore `args.image_dir` with `backend` ("paddle" or "onnxruntime"); the exit code (1 when an image
    failed or none was restored). Bad settings raise ConfigError / ImageError before any work."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}")
    if args.engine == "ray":
        require_ray()  # before any work: one line saying how to install it
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
    if info.fixed_shape:
        n, _, th, tw = info.fixed_shape
        if args.tile and (args.tile, args.tile) != (th, tw):
            print(f"note: the program only takes {th}x{tw} inputs: restoring in tiles of that size (--tile ignored)",
                  file=sys.stderr)
        if args.batch_size not in (1, n):
            print(f"note: the program was exported for batches of {n}; --batch_size ignored", file=sys.stderr)
    if args.engine == "ray":
        return _run_on_ray(backend, args, files, names)
    restorer = build_restorer(backend, args, info)
    engine = restorer.backend
    warmup = args.warmup if args.warmup is not None else (1 if args.benchmark else 0)
    with _stdout_to_stderr():  # first runs print oneDNN pass notes on stdout; keep stdout parseable
        warm_up(restorer, files, warmup)
    items = file_items(files, args.gt_dir, args.save_dir, names, max_memory=restorer.max_memory)
    summary = restore_items(restorer, items, score=pixel_scores() if args.gt_dir else None, report=print_line())
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


def build_restorer(kind: str, args, info) -> ImageRestorer:
    """The backend and ImageRestorer the command line asks for: built once by the local run, and once by each
    worker of an --engine ray run (where --max-memory's default is that worker's machine's)."""
    budget = default_budget() if args.max_memory is None else args.max_memory
    with _stdout_to_stderr():  # Paddle's C++ passes print to stdout while building the predictor
        engine = backend_from_args(kind, args, info)
    return ImageRestorer(engine, info, args.tile, args.tile_overlap, args.tile_blend, args.batch_size, budget,
                         notes=print_note)


def _run_on_ray(kind: str, args, files: list[str], names: dict) -> int:
    """The same run on a Ray Data actor pool (`ppir.scaleout.batch`): the same lines, summary and exit code."""
    from ..scaleout.batch import restore_on_ray

    if args.benchmark:
        raise ConfigError("--benchmark times one process; it is not available with --engine ray (see "
                          "benchmarks/bench_batch.py for the Ray engine's throughput)")
    remote = dataclasses.replace(args, **{  # the workers run in other folders
        name: os.path.abspath(getattr(args, name)) for name in ("model_dir", "model_file", "params_file")
        if getattr(args, name)})
    info = read_deploy_info(remote.model_dir)
    gt_files = [args.gt_dir] if args.gt_dir and os.path.isfile(args.gt_dir) else []
    summary = restore_on_ray(build_restorer, (kind, remote, info), files, names, args.save_dir, args.gt_dir,
                             workers=args.workers, address=args.ray_address, images_per_batch=args.batch_size,
                             inputs=files + gt_files if args.overwrite else (), num_cpus=args.cpu_threads or 1,
                             num_gpus=1 if args.use_gpu else 0, report=print_line(), errors=print_error,
                             notes=print_note)
    if summary.psnr:
        print(average_line(summary), flush=True)
    print(final_line(summary, len(files), args.save_dir), file=sys.stderr)
    return 1 if summary.problems or summary.done == 0 else 0


def check_save_dir(args, files: list[str], names: dict) -> None:
    """Refuse, before any work, a --save_dir that would replace an input or ground truth, or is not writable."""
    gt_files = [args.gt_dir] if args.gt_dir and os.path.isfile(args.gt_dir) else []
    folders = [f for f in (args.image_dir, args.gt_dir) if f and os.path.isdir(f)]
    check_output_folder(args.save_dir, "--save_dir", files + gt_files, folders, names, args.overwrite)

