"""Restore images with an exported network on Paddle Inference (`ppir infer`, deploy/inference_python/infer.py):
the deploy runners' TIPC-style command line, shared with `ppir infer-onnx`; the run itself is
`ppir.infer.runner.run`."""
from __future__ import annotations

import argparse
import textwrap

from ppir.cli import BOOL, ArgumentParser, prog as cli_prog, settings_from
from ppir.infer.memory import TOLERANCE_NOTE, memory_arg
from ppir.infer.outputs import NAME_RULE
from ppir.infer.runner import RunnerSettings, run
from ppir.infer.tiling import BLENDS
from ppir.metrics import SSIM_WINDOW
from ppir.commands.ray_flags import add_engine_args


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
    p = ArgumentParser(
        prog=prog,
        description=f"Restore images with an exported ppir network on {engine}. Reads <model_dir>/inference.yml "
                    f"(written by tools/export_model.py) for the pre/post-processing, so any ppir model works. "
                    f"Any image size: images are reflect-padded to the network's multiple and cropped back, or "
                    f"restored in overlapping tiles (--tile). Booleans take True/False (TIPC style).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_epilog(prog))
    p.add_argument("--model_dir", required=True,
                   help="export directory (inference.yml, inference.json/.pdiparams"
                        + ("" if backend == "paddle" else ", model.onnx") + ")")
    p.add_argument("--model_file", default=None,
                   help=f"program to run instead of <model_dir>/{default_model}"
                        + (" (e.g. an int8 .onnx from tools/quant_report.py)" if backend == "onnxruntime" else ""))
    if backend == "paddle":
        p.add_argument("--params_file", default=None, help="weights instead of <model_dir>/inference.pdiparams")
    p.add_argument("--image_dir", required=True, help="an image file or a folder of images (degraded inputs)")
    p.add_argument("--gt_dir", default=None,
                   help="folder (or file) of ground-truth images with the same names: per-image PSNR/SSIM on the "
                        "8-bit outputs")
    p.add_argument("--save_dir", default="output",
                   help="folder for the restored PNGs (default: %(default)s; never the input folder unless "
                        "--overwrite True)")
    p.add_argument("--overwrite", **BOOL, default=False,
                   help="allow --save_dir to be (inside) the input or ground-truth folder, replacing inputs")
    p.add_argument("--use_gpu", **BOOL, default=False, help="run on a GPU (needs a CUDA build)")
    p.add_argument("--enable_mkldnn", **BOOL, default=False,
                   help="Paddle Inference: use oneDNN on CPU (the fast CPU path)" if backend == "paddle"
                   else "accepted for TIPC compatibility; ONNX Runtime's CPU kernels are used either way")
    p.add_argument("--cpu_threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--batch_size", type=int, default=1,
                   help="images (of equal size) or tiles per network call (default: %(default)s)")
    p.add_argument("--use_tensorrt", **BOOL, default=False, help="TensorRT (GPU only)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "int8"),
                   help="fp32 everywhere; fp16/int8 need TensorRT (Paddle) or a converted model via --model_file (ONNX "
                        "Runtime). Unsupported combinations stop with a message.")
    p.add_argument("--benchmark", **BOOL, default=False,
                   help="print a latency report (pre/inference/post ms per image) in AutoLog's layout")
    p.add_argument("--save_log_path", default=None, help="also write the benchmark report to this file")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed runs on the first image before timing (default: 1 with --benchmark, else 0)")
    p.add_argument("--tile", type=int, default=None,
                   help="restore in tiles of this size (a multiple of the network's; 0: whole image; default from "
                        "inference.yml). Memory then grows with the tile, not the image. A fixed-shape export always "
                        "uses its own H x W as the tile. Without a tile, images over --max-memory are tiled anyway.")
    p.add_argument("--max_memory", type=memory_arg, default=None, metavar="SIZE",
                   help="memory budget per image, e.g. 8G or 512M (default: 1280M, so that a run stays under 2 GB); an image "
                        "that would need more in one piece is restored in the largest tiles that fit; 0: no limit")
    p.add_argument("--tile_overlap", type=int, default=None,
                   help="overlap between tiles in pixels (default from inference.yml, usually 32)")
    p.add_argument("--tile_blend", default="smooth", choices=BLENDS,
                   help="smooth: raised-cosine blend over the overlaps (default); mean: HINet's official grid, "
                        "overlaps averaged (--tile_overlap is then ignored)")
    add_engine_args(p)
    return p


def run_command(argv, backend: str, prog: str | None = None) -> int:
    """Parse the TIPC-style flags and run the loop with `backend` ("paddle" or "onnxruntime")."""
    args = build_parser(backend, prog).parse_args(argv)
    return run(settings_from(RunnerSettings, args), backend)


def main(argv=None, prog: str | None = None) -> int:
    return run_command(argv, "paddle", prog or cli_prog())
