"""Export a network for deployment: a static Paddle program plus the inference.yml every runner reads.

Examples:
  python tools/export_model.py -c configs/hinet_sidd_0.5x.yml --weights hinet.pdparams --save-dir inference/hinet
  python tools/export_model.py -c configs/mimo_unet_gopro.yml --weights MIMO-UNet.pkl --save-dir inference/mimo \\
      --input-shape 1,3,256,256          # fixed shape for accelerators; runners then feed 256x256 tiles

Writes <save-dir>/inference.json + inference.pdiparams (paddle.jit.save of the network's final output, N x C x H x W
float32 RGB in [0, 1] in, the unclipped restored image out) and inference.yml (model name, input multiple, pre/post-
processing, default tiles). Next: tools/export_onnx.py --model_dir <save-dir> for ONNX Runtime.
"""
import argparse
import sys

from ppir.cli import add_override_arg, ArgumentParser, flat_overrides


def parse_args(argv=None):
    p = ArgumentParser(
        description="Export a network (config + weights) as a static Paddle program with its inference.yml.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    p.add_argument("-c", "--config", required=True, help="model config (YAML), e.g. configs/hinet_sidd_1x.yml")
    p.add_argument("--weights", required=True,
                   help="weights: .pdparams, an official PyTorch checkpoint (.pth/.pkl) or .npz")
    p.add_argument("--save-dir", "--save_dir", dest="save_dir", required=True,
                   help="output folder (created if needed)")
    p.add_argument("--input-shape", "--input_shape", dest="input_shape", default=None, metavar="N,C,H,W",
                   help="export a fixed input shape (accelerators need one); default: dynamic N, H and W. "
                        "H and W must fit the network (multiples of its size_multiple)")
    p.add_argument("--rounding", choices=("nearest", "half_up"), default=None,
                   help="how runners turn outputs into 8-bit images (default: config export.rounding, else the "
                        "model family's official convention: half_up for MIMO-UNet, nearest otherwise)")
    p.add_argument("--tile", type=int, default=None,
                   help="default tile size recorded for the runners (0: whole images; default from the config)")
    p.add_argument("--tile-overlap", "--tile_overlap", dest="tile_overlap", type=int, default=None,
                   help="default tile overlap recorded for the runners (default: the network's, 32 for ppir's)")
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="skip the check of the saved program (Paddle Inference) against the dygraph network")
    add_override_arg(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import numpy as np

    import ppir
    from ppir.config import require_sections
    from ppir.export import (ExportError, check_input_shapes, check_save_dir, export_model, max_rel_diff,
                             model_source, parse_input_shape, read_deploy_info, stale_onnx)

    overrides = flat_overrides(args)
    cfg = ppir.load_config(args.config, overrides)  # validates every section, export: included
    require_sections(cfg, ("model",), "an export")
    check_save_dir(args.save_dir)  # before building and loading anything
    section = dict(cfg.get("export") or {})
    model = ppir.build_model(cfg)
    ppir.load_weights(model, args.weights)
    shape = parse_input_shape(args.input_shape if args.input_shape is not None else section.get("input_shape"))
    tile = args.tile if args.tile is not None else section.get("tile") or 0
    overlap = args.tile_overlap if args.tile_overlap is not None else section.get("tile_overlap")  # None: the network's
    source = model_source(args.config, overrides, args.weights, cfg.get("model"))
    info = export_model(model, args.save_dir, shape, rounding=args.rounding or section.get("rounding"),
                        tile=tile, tile_overlap=overlap, source=source)
    print(f"Export succeeded! {info.model_name} saved in {args.save_dir} (inference.json, inference.pdiparams, "
          f"inference.yml); input {info.input_shape}, multiple {info.size_multiple}, rounding {info.rounding}")
    stale = stale_onnx(args.save_dir, info)
    if stale:  # kept (it is the user's), but the ONNX runners refuse it: its program digest is not this export's
        print(f"note: {stale} was converted from an earlier program; ONNX Runtime refuses it until you convert "
              f"this export again: ppir export-onnx --model_dir {args.save_dir}", file=sys.stderr)
    if args.check:
        from ppir.infer.backends import make_backend

        info = read_deploy_info(args.save_dir)
        program = make_backend("paddle", args.save_dir, info, {"enable_mkldnn": False})
        x = np.random.default_rng(0).random(check_input_shapes(info)[0], dtype=np.float32)
        diff = max_rel_diff(program.run(x), make_backend("dygraph", model).run(x))
        if not diff <= 1e-4:
            raise ExportError(f"the saved program disagrees with the dygraph network (max relative diff {diff:.3g})")
        print(f"check: Paddle Inference vs dygraph on a random {'x'.join(map(str, x.shape))} input: "
              f"max relative diff {diff:.2e}")
    return 0
