#!/usr/bin/env python
"""Remake the READMEs' demo pictures from quick-start runs.

  python tools/quickstart.py --model mirnet      # and hinet, mimo_unet, mimo_unet_noise (output/quickstart/<model>)
  python docs/images/make_images.py             # writes docs/images/demo_<model>.png

Each picture is the quick start's first `chelsea` test image (128x192 since issue 21; the pictures made before
were 200x200 crops of the native-size image): degraded input | restored by Paddle Inference | clean, with
4-pixel white gaps.
"""
import argparse
import glob
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))  # this checkout's ppir

CROP = (slice(None), slice(None))
MODELS = ("mirnet", "hinet", "mimo_unet", "mimo_unet_noise")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default="output/quickstart", help="folder holding <model>/ quick-start outputs")
    p.add_argument("--out", default=HERE, help="where demo_<model>.png go (default: this folder)")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, help="which pictures to remake")
    args = p.parse_args(argv)
    from ppir.data.image_io import read_image, write_image
    from ppir.engine.evaluator import side_by_side

    for model in args.models:
        run = os.path.join(args.runs, model)
        found = sorted(glob.glob(os.path.join(run, "data", "lq", "chelsea*.png")))
        if not found:
            print(f"error: {run}/data/lq has no chelsea image: run `python tools/quickstart.py --model {model}` "
                  "first", file=sys.stderr)
            return 2
        name = os.path.basename(found[0])
        parts = [read_image(os.path.join(run, sub, name))[CROP] for sub in ("data/lq", "restored", "data/gt")]
        target = os.path.join(args.out, f"demo_{model}.png")
        write_image(target, side_by_side(*parts))
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
