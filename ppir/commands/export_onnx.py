"""Convert an exported ppir program to ONNX with paddle2onnx, then check it against the Paddle program.

Examples:
  python tools/export_onnx.py --model_dir inference/hinet                 # writes inference/hinet/model.onnx
  python tools/export_onnx.py --model_dir inference/hinet --save_file /tmp/hinet.onnx --opset_version 17
  python tools/export_onnx.py --model_dir inference/hinet --check_only    # re-check an existing model.onnx

The flags are paddle2onnx's own. H and W stay dynamic unless the program was exported with a fixed shape.
Right after conversion the ONNX model (ONNX Runtime) and the Paddle program (Paddle Inference, oneDNN off) run
on random inputs of two sizes; if they disagree the command fails (exit 2) and the ONNX file is renamed
<save_file>.rejected so no runner picks it up. The model is converted and checked under a temporary name: an
existing <save_file> is replaced only by a model that passed the check. The ONNX model carries the digest of the
program it was converted from (inference.yml's program.digest), which the ONNX Runtime runners check. --save_file
never names one of the export's own files.
"""
import argparse
import os

from ppir.cli import ArgumentParser, str2bool


def parse_args(argv=None):
    p = ArgumentParser(
        description="paddle2onnx an export directory to model.onnx (dynamic H/W) and verify it on random inputs.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    p.add_argument("--model_dir", "-m", required=True, help="export directory from tools/export_model.py")
    p.add_argument("--model_filename", "-mf", default="inference.json", help="program file (default: %(default)s)")
    p.add_argument("--params_filename", "-pf", default="inference.pdiparams",
                   help="weights file (default: %(default)s)")
    p.add_argument("--save_file", "-s", default=None, help="ONNX file to write (default: <model_dir>/model.onnx)")
    p.add_argument("--opset_version", "-ov", type=int, default=13, help="ONNX opset (default: %(default)s)")
    p.add_argument("--optimize_tool", default="onnxoptimizer", choices=("onnxoptimizer", "polygraphy", "None"),
                   help=argparse.SUPPRESS)
    p.add_argument("--check", type=str2bool, default=True, metavar="BOOL",
                   help="compare the ONNX model with the Paddle program on random inputs (default: True)")
    p.add_argument("--check_only", action="store_true", help="only check an existing ONNX file, do not convert")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="|onnx - paddle| relative to the output range that always passes (default: %(default)s); "
                        "beyond it, up to 10x the difference between Paddle's own oneDNN and plain kernels passes "
                        "(deep networks with untrained weights are that ill-conditioned)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from ppir.export import (ExportError, check_save_file, load_paddle_program, own_files_problem, read_deploy_info,
                             run_paddle2onnx, verify_onnx)
    from ppir.paths import atomic_target

    save_file = args.save_file or os.path.join(args.model_dir, "model.onnx")
    read_deploy_info(args.model_dir)  # fail early, with one line, on a folder that is not an export
    if not args.check_only:
        check_save_file(save_file)  # else paddle2onnx fails late, with a warning that does not name the path
        problem = own_files_problem(args.model_dir, save_file, args.model_filename, args.params_filename)
        if problem:
            raise ExportError(f"--save_file: {problem}")
    # paddle2onnx converts even a truncated .pdiparams without complaint: make sure Paddle can load the export
    load_paddle_program(args.model_dir, args.model_filename, args.params_filename)
    if args.check_only:
        if not os.path.isfile(save_file):
            raise ExportError(f"{save_file}: no such ONNX file to check")
        if args.check or args.check_only:
            _check(args, save_file, save_file, verify_onnx)
        return 0
    # converted, stamped and checked under a temporary name: an existing save_file is replaced only by a model
    # that passed the check (a failed or killed conversion leaves it as it was)
    with atomic_target(save_file) as tmp:
        run_paddle2onnx(args.model_dir, tmp, args.opset_version, args.model_filename, args.params_filename,
                        args.optimize_tool)
        if args.check:
            try:
                _check(args, tmp, save_file, verify_onnx)
            except ExportError as e:
                os.replace(tmp, save_file + ".rejected")
                kept = "" if not os.path.exists(save_file) else f"; {save_file} is unchanged"
                raise ExportError(f"{e} (kept as {save_file}.rejected{kept})") from None
    print(f"paddle2onnx: wrote {save_file} (opset {args.opset_version})")
    return 0


def _check(args, onnx_path: str, shown: str, verify_onnx) -> None:
    """verify_onnx on `onnx_path` (the file or its temporary), its messages naming `shown`."""
    from ppir.export import ExportError

    try:
        diff = verify_onnx(args.model_dir, onnx_path, args.tolerance, model_filename=args.model_filename,
                           params_filename=args.params_filename)
    except ExportError as e:
        raise ExportError(str(e).replace(onnx_path, shown)) from None
    print(f"check: ONNX Runtime vs Paddle Inference on random inputs: max relative diff {diff:.2e} "
          f"(tolerance {args.tolerance:g})")
