#!/usr/bin/env python
"""Check the PSNR lines of TIPC inference logs against stored expected results.

Reads lines such as `image: 0001.png, psnr: 31.2467, ssim: 0.8912`, `avg psnr: 30.1, avg ssim: 0.88` and
PaddleGAN's `Metric psnr: 27.0864` from both files, ignoring ANSI colour codes, blank lines and anything else,
and compares every PSNR of the expected file with the log's (np.testing.assert_allclose semantics).

Usage:
  python test_tipc/compare_results.py --gt_file test_tipc/results/python_hinet_results_fp32.txt \\
      --log_file 'test_tipc/output/hinet/lite_train_lite_infer/python_infer_*.log' --atol 0.05 --rtol 0
A log whose name says fp16 or int8 is compared with the expected file of that precision (same name with
fp16/int8 in place of fp32) when one exists, and skipped otherwise. Exit status 1 on any mismatch or missing
value, 2 on bad arguments.
"""
import argparse
import glob
import os
import re
import sys

ANSI = re.compile(r"\x1b\[[0-9;]*m")
PATTERNS = [
    re.compile(r"image(?:_name)?:\s*(?P<key>[^,\s]+)\s*,\s*psnr:\s*(?P<val>[-+0-9.eEinfa]+)"),
    re.compile(r"(?P<key>avg psnr):\s*(?P<val>[-+0-9.eEinfa]+)"),
    re.compile(r"(?P<key>Metric psnr)\s*:\s*(?P<val>[-+0-9.eEinfa]+)"),
]


def parse(path):
    """{key: psnr} from a log or expected-results file."""
    out = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = ANSI.sub("", line).strip()
            if not line:
                continue
            for pat in PATTERNS:
                m = pat.search(line)
                if m:
                    key = os.path.basename(m.group("key"))
                    out.setdefault(key, float(m.group("val")))
                    break
    return out


def precision_of(name):
    for p in ("fp16", "int8", "fp32"):
        if p in name:
            return p
    return "fp32"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--gt_file", required=True, help="expected results (fp32 file; a glob is allowed)")
    ap.add_argument("--log_file", required=True, help="inference log(s) to check (a glob is allowed)")
    ap.add_argument("--atol", type=float, default=0.05, help="absolute tolerance in dB (default 0.05)")
    ap.add_argument("--rtol", type=float, default=0.0, help="relative tolerance (default 0)")
    args = ap.parse_args(argv)

    gt_files = sorted(glob.glob(args.gt_file))
    logs = sorted(glob.glob(args.log_file))
    if not gt_files:
        print(f"error: no expected-results file matches {args.gt_file}", file=sys.stderr)
        return 2
    if not logs:
        print(f"error: no log file matches {args.log_file}", file=sys.stderr)
        return 2
    expected = {precision_of(os.path.basename(g)): (g, parse(g)) for g in gt_files}
    failures = 0
    for log in logs:
        prec = precision_of(os.path.basename(log))
        if prec not in expected:
            print(f"skip {log}: no expected results for {prec}")
            continue
        gt_path, gt = expected[prec]
        if not gt:
            print(f"error: {gt_path} holds no psnr lines", file=sys.stderr)
            return 2
        got = parse(log)
        bad = []
        for key, want in gt.items():
            if key not in got:
                bad.append(f"{key}: missing from the log")
            elif not abs(got[key] - want) <= args.atol + args.rtol * abs(want):
                bad.append(f"{key}: psnr {got[key]:.4f} vs expected {want:.4f}")
        if bad:
            failures += 1
            print(f"The results of {log} and {gt_path} are inconsistent: " + "; ".join(bad))
        else:
            print(f"Assert allclose passed! The results of {log} and {gt_path} are consistent!")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
