#!/usr/bin/env python
"""Restore images with a trained or converted network (dygraph; any image size).

Examples:
  python tools/predict.py -c configs/hinet_sidd_0.5x.yml --weights hinet.pdparams --input noisy.png --output out/
  python tools/predict.py -c configs/mimo_unet_gopro.yml --weights MIMO-UNet.pkl --input blurry_dir/ --output out/
  python tools/predict.py -c configs/mirnet_sidd.yml --weights mirnet.pth --input big.png --output out/ --tile 512
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppir.cli import add_override_arg, flat_overrides, run  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Restore an image, or every image in a folder, with the network a config describes. "
                    "Outputs are PNGs with the input's name and size.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    p.add_argument("-c", "--config", required=True, help="model config (YAML), e.g. configs/hinet_sidd_1x.yml")
    p.add_argument("--weights", required=True,
                   help="weights: .pdparams, an official PyTorch checkpoint (.pth/.pkl) or .npz")
    p.add_argument("--input", required=True, help="an image file or a folder of images")
    p.add_argument("--output", required=True, help="folder for the restored PNGs (created if needed)")
    p.add_argument("--tile", type=int, default=0,
                   help="restore in overlapping tiles of this size (a multiple of the network's) to bound memory on "
                        "large images; 0 (default): the whole image at once")
    p.add_argument("--tile-overlap", "--tile_overlap", dest="tile_overlap", type=int, default=32,
                   help="overlap between tiles in pixels, blended smoothly (default: %(default)s)")
    add_override_arg(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from tqdm import tqdm

    import ppir
    from ppir.data.image_io import read_image, write_image
    from ppir.errors import ConfigError, ImageError
    from ppir.infer.dygraph import DygraphRestorer
    from ppir.infer.runner import list_images

    files = list_images(args.input)
    model = ppir.build_model(args.config, flat_overrides(args))
    ppir.load_weights(model, args.weights)
    try:
        restore = DygraphRestorer(model, tile=args.tile, tile_overlap=args.tile_overlap)
    except ValueError as e:
        raise ConfigError(f"--tile: {e}") from None
    failures = 0
    for path in tqdm(files, desc="restoring", unit="img", disable=len(files) < 2):
        try:
            img = read_image(path)
        except ImageError as e:
            failures += 1
            tqdm.write(f"error: {e}", file=sys.stderr)
            continue
        out_path = os.path.join(args.output, os.path.splitext(os.path.basename(path))[0] + ".png")
        write_image(out_path, restore(img))
    done = len(files) - failures
    print(f"restored {done} of {len(files)} image(s) into {args.output}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(run(main))
