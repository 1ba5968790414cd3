"""Restore images on a VastAI VACC card (vaststreamx), or its ONNX model on ONNX Runtime with the same steps
(`ppir vacc-infer`, deploy/vacc/infer.py); the run itself is `ppir.vacc.runner.run`."""
from __future__ import annotations

import argparse

from ppir.cli import BOOL, ArgumentParser, prog as cli_prog, settings_from
from ppir.infer.backend_registry import VACC, names as backend_names
from ppir.infer.outputs import NAME_RULE
from ppir.infer.pipeline import ROUNDINGS
from ppir.vacc.runner import VaccPipeline, VaccSettings, run


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
    add("--backend", choices=backend_names(VACC), default="vacc",
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


def main(argv=None, prog: str | None = None) -> int:
    args = build_parser(prog or cli_prog()).parse_args(argv)
    return run(settings_from(VaccSettings, args))
