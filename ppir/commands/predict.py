"""Restore images with a trained or converted network (any image size; no export step).

Examples:
  python tools/predict.py -c configs/hinet_sidd_0.5x.yml --weights hinet.pdparams --input noisy.png --output out/
  python tools/predict.py -c configs/mimo_unet_gopro.yml --weights MIMO-UNet.pkl --input blurry_dir/ --output out/
  python tools/predict.py -c configs/mirnet_sidd.yml --weights mirnet.pth --input big.png --output out/ --tile 512
"""
import argparse
import os
import sys
import textwrap

from ppir.cli import add_override_arg, ArgumentParser, BOOL, flat_overrides
from ppir.infer.backends import add_backend_arg
from ppir.infer.memory import TOLERANCE_NOTE, memory_arg
from ppir.infer.outputs import NAME_RULE
from ppir.commands.ray_flags import add_engine_args
from ppir.scaleout.cluster import require_ray

NOTES = [
    f"Output names: {NAME_RULE}.",
    "The --output folder must not be (inside) the --input folder, and no result may replace an input, unless "
    "--overwrite is given.",
    "Memory: an image that would need more than --max-memory in one piece is restored in tiles, with a note on "
    "stderr (which tile, why). The need is the network's peak bytes per pixel, measured once on a small input, "
    f"plus the image's own arrays. {TOLERANCE_NOTE}.",
    "Exit codes: 0 all restored; 1 some images failed (named on stderr, the others are saved); 2 bad option, "
    "config, weights or output folder (nothing written).",
]
EPILOG = (__doc__.split("\n", 2)[2].rstrip() + "\n\n"
          + "\n\n".join(textwrap.fill(n, 110, break_on_hyphens=False) for n in NOTES))


def parse_args(argv=None):
    p = ArgumentParser(
        description="Restore an image, or every image in a folder, with the network a config describes. "
                    "Outputs are PNGs with the input's name and size.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    p.add_argument("-c", "--config", required=True, help="model config (YAML), e.g. configs/hinet_sidd_1x.yml")
    p.add_argument("--weights", required=True,
                   help="weights: .pdparams, an official PyTorch checkpoint (.pth/.pkl) or .npz")
    p.add_argument("--input", required=True, help="an image file or a folder of images")
    p.add_argument("--output", required=True, help="folder for the restored PNGs (created if needed; not the "
                                                   "input folder unless --overwrite)")
    p.add_argument("--overwrite", **BOOL, default=False,
                   help="allow --output to be (inside) the input folder, replacing inputs of the same name")
    p.add_argument("--tile", type=int, default=0,
                   help="restore in overlapping tiles of this size (a multiple of the network's) to bound memory on "
                        "large images; 0 (default): the whole image, unless it needs more than --max-memory")
    p.add_argument("--tile-overlap", "--tile_overlap", dest="tile_overlap", type=int, default=32,
                   help="overlap between tiles in pixels, blended smoothly (default: %(default)s)")
    p.add_argument("--max-memory", "--max_memory", dest="max_memory", type=memory_arg, default=None,
                   metavar="SIZE", help="memory budget per image, e.g. 8G or 512M (default: 1280M, so that a run "
                                        "stays under 2 GB); larger images are restored in tiles; 0: no limit")
    add_backend_arg(p)
    add_override_arg(p)
    add_engine_args(p)
    return p.parse_args(argv)


def build_restorer(args, notes=None):
    """The network of -c/--weights as an ImageRestorer: built once here, or once by each worker of --engine ray
    (where --max-memory's default is that worker's machine's)."""
    from ppir.infer.api import network_restorer

    return network_restorer(args.config, args.weights, flat_overrides(args), args.backend, args.tile,
                            args.tile_overlap, args.max_memory, notes)


def main(argv=None):
    args = parse_args(argv)
    if args.engine == "ray":
        require_ray()  # before any work: one line saying how to install it
    from tqdm import tqdm

    from ppir.infer.loop import file_items, list_images, restore_items
    from ppir.infer.outputs import check_output_folder, output_names

    files = list_images(args.input)
    names = output_names(files)
    folders = [args.input] if os.path.isdir(args.input) else []
    check_output_folder(args.output, "--output", files, folders, names, args.overwrite)
    if args.engine == "ray":
        return _run_on_ray(args, files, names)
    restorer = build_restorer(args, notes=lambda msg: tqdm.write(msg, file=sys.stderr))  # bad --tile: ConfigError
    bar = tqdm(total=len(files), desc="restoring", unit="img", disable=len(files) < 2)
    summary = restore_items(restorer, file_items(files, save_dir=args.output, names=names,
                                                        max_memory=restorer.max_memory),
                            report=lambda *_: bar.update(1),
                            errors=lambda msg: tqdm.write(f"error: {msg}", file=sys.stderr))
    bar.close()
    print(f"restored {summary.done} of {len(files)} image(s) into {args.output}")
    return 1 if summary.failures else 0


def _run_on_ray(args, files, names) -> int:
    """The same run on a Ray Data actor pool (`ppir.scaleout.batch`); the same summary line and exit code."""
    from ppir.infer.loop import print_error, print_note
    from ppir.scaleout.batch import restore_on_ray

    remote = argparse.Namespace(**vars(args))
    remote.config, remote.weights = os.path.abspath(args.config), os.path.abspath(args.weights)
    summary = restore_on_ray(build_restorer, (remote,), files, names, args.output, None, workers=args.workers,
                             address=args.ray_address, inputs=files if args.overwrite else (), errors=print_error,
                             notes=print_note)
    print(f"restored {summary.done} of {len(files)} image(s) into {args.output}")
    return 1 if summary.failures else 0
