"""Accuracy and latency of an exported network at fp32, fp16 and int8 on CPU (ONNX Runtime), as a Markdown table.

Examples:
  python tools/quant_report.py --model_dir inference/hinet --dataset data/rain          # data/rain/{lq,gt}
  python tools/quant_report.py --model_dir inference/hinet --lq_dir noisy/ --gt_dir clean/ --calib_num 16 \\
      --output docs/hinet_quant.md
  python tools/quant_report.py --model_dir inference/hinet --dataset data/rain --precisions fp32 int8 \\
      --calib_dir other_images/ --percentile 99.99

The export folder needs model.onnx (tools/export_onnx.py). fp16 is written with ONNX Runtime's float16 converter
(float32 inputs/outputs kept); int8 with ONNX Runtime static quantization (QDQ, per-channel weights) calibrated
with the percentile method on --calib_num images (spread evenly over the degraded images, or taken from
--calib_dir), as center crops of --calib_size pixels. The models are saved as <model_dir>/model_fp16.onnx and
model_int8.onnx (or in --save_dir) and run with deploy/onnxruntime/infer.py --model_file.

Every image of the dataset is restored with the runners' pre/post-processing (inference.yml) at each precision;
PSNR/SSIM are computed on the 8-bit outputs (ppir.metrics, RGB, 2-D SSIM); latency is the median network time
per image. The table also gives the PSNR of each output against the fp32 output (how far quantization moves
the result, independent of how good the model is).
"""
import argparse
import os
import sys

from ppir.cli import ArgumentParser


def parse_args(argv=None):
    p = ArgumentParser(
        description="PSNR/SSIM and latency of an exported network at fp32, fp16 and int8 (ONNX Runtime static "
                    "quantization, percentile calibration) on a dataset folder, as a Markdown table.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    p.add_argument("--model_dir", "-m", required=True, help="export folder with inference.yml and model.onnx")
    p.add_argument("--dataset", default=None, help="folder with lq/ (degraded) and gt/ (clean) images of the same "
                                                   "names (tools/make_synthetic_data.py writes this layout)")
    p.add_argument("--lq_dir", default=None, help="degraded images (instead of --dataset)")
    p.add_argument("--gt_dir", default=None, help="ground-truth images (instead of --dataset)")
    p.add_argument("--precisions", nargs="+", default=["fp32", "fp16", "int8"], choices=("fp32", "fp16", "int8"),
                   help="rows to produce (default: all three)")
    p.add_argument("--calib_num", type=int, default=8,
                   help="calibration images for int8 (default: %(default)s), spread evenly over the degraded "
                        "images (or --calib_dir)")
    p.add_argument("--calib_dir", default=None, help="take the calibration images from this folder instead")
    p.add_argument("--calib_size", type=int, default=128,
                   help="calibration crop size in pixels (default: %(default)s; rounded up to the network's multiple)")
    p.add_argument("--percentile", type=float, default=99.999,
                   help="percentile of the activation histograms kept by calibration (default: %(default)s)")
    p.add_argument("--quant_format", choices=("QDQ", "QOperator"), default="QDQ", help="(default: %(default)s)")
    p.add_argument("--per_tensor", action="store_true", help="per-tensor instead of per-channel weight scales")
    p.add_argument("--max_images", type=int, default=0, help="evaluate only the first N pairs (default: all)")
    p.add_argument("--cpu_threads", type=int, default=None, help="ONNX Runtime threads (default: all cores)")
    p.add_argument("--tile", type=int, default=None, help="restore in tiles of this size (default: inference.yml)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs per precision first (default: %(default)s)")
    p.add_argument("--repeat", type=int, default=1,
                   help="timed runs per image, the fastest counts (default: %(default)s)")
    p.add_argument("--save_dir", default=None, help="where model_fp16.onnx/model_int8.onnx go (default: model_dir)")
    p.add_argument("--output", default=None, help="also write the Markdown table to this file")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from ppir.errors import ConfigError, DatasetError
    from ppir.infer.runner import list_images
    from ppir.vacc.build import select_files
    from ppir.paths import output_file_problem, write_text
    from ppir.quant import ReportSettings, markdown_table, run_report

    if args.dataset:
        if args.lq_dir or args.gt_dir:
            raise ConfigError("give either --dataset or --lq_dir/--gt_dir, not both")
        lq_dir, gt_dir = os.path.join(args.dataset, "lq"), os.path.join(args.dataset, "gt")
    elif args.lq_dir and args.gt_dir:
        lq_dir, gt_dir = args.lq_dir, args.gt_dir
    else:
        raise ConfigError("give --dataset DIR (with lq/ and gt/) or both --lq_dir and --gt_dir")
    for name in ("calib_num", "calib_size", "max_images", "warmup", "repeat"):
        if getattr(args, name) < (1 if name in ("calib_num", "calib_size", "repeat") else 0):
            raise ConfigError(f"--{name} is too small: {getattr(args, name)}")
    if args.cpu_threads is not None and args.cpu_threads < 1:
        raise ConfigError(f"--cpu_threads must be at least 1, got {args.cpu_threads}")
    problem = args.output and output_file_problem(args.output)
    if problem:  # before the conversions and runs, not after them
        raise ConfigError(f"--output: {problem}")
    calib_files = []
    if "int8" in args.precisions:
        source = args.calib_dir or lq_dir
        if not os.path.isdir(source):
            raise DatasetError(f"{source}: no such folder of calibration images")
        calib_files = select_files(list_images(source), args.calib_num)
    settings = ReportSettings(
        model_dir=args.model_dir, lq_dir=lq_dir, gt_dir=gt_dir, precisions=tuple(args.precisions),
        calib_files=calib_files, calib_size=args.calib_size, percentile=args.percentile,
        quant_format=args.quant_format, per_channel=not args.per_tensor, cpu_threads=args.cpu_threads,
        tile=args.tile, warmup=args.warmup, repeat=args.repeat, max_images=args.max_images, save_dir=args.save_dir)
    rows, facts = run_report(settings, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    if args.calib_dir is None and calib_files:
        facts["calib_note"] = "calibration images are part of the evaluated set"
    table = markdown_table(rows, facts)
    print(table, end="")
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        try:
            write_text(args.output, table)
        except OSError as e:  # the folder changed during the run: the table was printed above all the same
            raise ConfigError(f"--output: cannot write {args.output}: {e.strerror or e}") from None
    return 0
