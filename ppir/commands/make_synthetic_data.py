"""Write a small paired dataset of synthetically degraded images, offline.

The clean images are scikit-image's bundled samples (or --image-dir); each pair is written as
OUT/lq/<name>.png (degraded) and OUT/gt/<name>.png (clean), ready for
`PairedFolderDataset(lq_dir=OUT/lq, gt_dir=OUT/gt)`. The same arguments always write the same files.

Examples:
  python tools/make_synthetic_data.py --degradation gaussian_noise --out data/noise --num 8 --size 128x128
  python tools/make_synthetic_data.py --degradation motion_blur --out data/blur --num 4 --size 256x256 --seed 1
  python tools/make_synthetic_data.py --degradation rain --out data/rain --image-dir my_clean_photos/
  python tools/make_synthetic_data.py --degradation gaussian_noise --out data/fair --images camera,chelsea \
      --gray-noise --max-side 192 --set sigma_min=15 sigma_max=15

Motion blur also writes each pair's true kernel as OUT/kernel/<name>.npy (for the oracle deconvolution in
ppir.baselines).
"""
import argparse
import os

from ppir.cli import ArgumentParser
from ppir.data.degradations import DEGRADATIONS

# SyntheticDataset's degradation parameters (--set KEY=VALUE)
PARAMS = ("sigma_min", "sigma_max", "peak_min", "peak_max", "read_sigma_min", "read_sigma_max", "kernel_size_min",
          "kernel_size_max", "curved_prob", "rain_density_min", "rain_density_max", "rain_length_min",
          "rain_length_max", "rain_angle_max", "rain_intensity_min", "rain_intensity_max")


def parse_size(text: str):
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like HEIGHTxWIDTH, e.g. 128x192, got {text!r}") from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return h, w


def non_negative(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {n}")
    return n


def parse_args(argv=None):
    p = ArgumentParser(
        description="Degrade clean images synthetically and write the pairs as OUT/{lq,gt}/<name>.png.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    p.add_argument("--degradation", required=True, choices=DEGRADATIONS,
                   help="gaussian_noise (sigma 5-50 of 255), poisson_gaussian_noise (shot + read noise), "
                        "motion_blur (random camera-shake kernels 7-21 px) or rain (random streaks)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder; lq/ and gt/ are created in it")
    p.add_argument("--num", type=non_negative, default=0, metavar="N",
                   help="number of pairs (default: one per clean image); clean images are reused in turn")
    p.add_argument("--size", type=parse_size, default=None, metavar="HxW",
                   help="scale and centre-crop every clean image to HEIGHTxWIDTH first (default: native sizes)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="picks the random degradations (default 0)")
    p.add_argument("--images", default="", metavar="NAMES",
                   help="comma-separated scikit-image samples (default: astronaut,chelsea,coffee,rocket,"
                        "hubble_deep_field,immunohistochemistry,camera)")
    p.add_argument("--image-dir", default="", metavar="DIR", help="use the images in this folder as clean images")
    p.add_argument("--gray-noise", action="store_true",
                   help="noise a gray clean image (R = G = B) with one field for all channels, as a gray photo is")
    p.add_argument("--max-side", type=non_negative, default=0, metavar="PX",
                   help="shrink clean images whose longer side exceeds PX (aspect kept; default: native sizes)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", action="extend",
                   help="a SyntheticDataset degradation parameter, e.g. sigma_max=30 kernel_size_max=15")
    args = p.parse_args(argv)
    args.params = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or key not in PARAMS:
            p.error(f"--set takes KEY=VALUE with KEY one of {', '.join(PARAMS)}; got {item!r}")
        try:
            args.params[key] = float(value) if "." in value or "e" in value.lower() else int(value)
        except ValueError:
            p.error(f"--set {key}: expected a number, got {value!r}")
    return args


def main(argv=None):
    args = parse_args(argv)
    from ppir.data.synthetic import SyntheticDataset
    from ppir.errors import ConfigError, DatasetError
    from ppir.paths import output_dir_problem

    problem = output_dir_problem(args.out)
    if problem:  # before any image is made
        raise ConfigError(f"--out: {problem}")
    images = [s.strip() for s in args.images.split(",") if s.strip()]
    ds = SyntheticDataset(degradation=args.degradation, images=images, image_dir=args.image_dir,
                          num_samples=args.num, seed=args.seed, size=args.size or (), gray_noise=args.gray_noise,
                          max_side=args.max_side, **args.params)
    try:
        names = ds.export_pairs(args.out)
    except OSError as e:  # e.g. /proc, which even root cannot create folders in
        raise DatasetError(f"--out {args.out}: cannot write: {e.strerror or e}"
                           f"{f': {e.filename}' if e.filename else ''}") from None
    print(f"wrote {len(names)} {args.degradation} pairs to {os.path.join(args.out, 'lq')} and "
          f"{os.path.join(args.out, 'gt')}")
    return 0
