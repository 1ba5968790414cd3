"""Build an int8 calibration set for vamc (images resized to the compiled shape, plus npz files for vamp):
`ppir vacc-calib-set`, deploy/vacc/make_calib_set.py; the set itself is `ppir.vacc.build.make_calibration_set`."""
from __future__ import annotations

import argparse

from ppir.cli import ArgumentParser, prog as cli_prog
from ppir.errors import ConfigError
from ppir.vacc.build import make_calibration_set
from ppir.vacc.runner import parse_shape


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Build an int8 calibration set for vamc: N images spread evenly over a folder, resized to the "
                    "compiled shape with the runner's own pre-processing (bilinear, as deploy/vacc/infer.py), "
                    "written as PNG (vamc dataset.path) and as RGB CHW uint8 .npz with a datalist (vamp).",
        epilog="Example:\n  python deploy/vacc/make_calib_set.py --image_dir SIDD/val/input --out_dir "
               "data/calib/hinet_sidd_256x256 --shape 256x256 --num 100")
    p.add_argument("--image_dir", required=True, help="degraded images (the network's inputs)")
    p.add_argument("--out_dir", required=True, help="output folder (PNG files, npz/, npz_datalist.txt)")
    p.add_argument("--shape", required=True, metavar="HxW", help="compiled input size, e.g. 256x256 or 360x640")
    p.add_argument("--num", type=int, default=50, help="images to take (default: %(default)s; 0: all)")
    p.add_argument("--no_npz", action="store_true", help="only the PNG files")
    return p


def main(argv=None, prog: str | None = None) -> int:
    args = build_parser(prog or cli_prog()).parse_args(argv)
    height, width = parse_shape(args.shape)
    if args.num < 0:
        raise ConfigError(f"--num must be >= 0, got {args.num}")
    written = make_calibration_set(args.image_dir, args.out_dir, height, width, args.num, not args.no_npz)
    print(f"wrote {len(written)} calibration image(s) of {height}x{width} into {args.out_dir}")
    return 0
