#!/usr/bin/env python
"""Batch restoration throughput: `ppir infer-onnx` (or `infer`) on the local engine beside `--engine ray` with 1, 2, ...
workers, on the same folder of synthetic images, each run repeated; medians reported.

  python benchmarks/bench_batch.py --model_dir inference/hinet --images 48 --size 256x256 --workers 1,2
  python benchmarks/bench_batch.py --model_dir inference/hinet --ray-address 127.0.0.1:6379 --repeat 3

Each run is the command a user types, in a fresh process, into an empty output folder. Two figures per run:
wall (start of the command to its exit: start-up, Ray's job and actor start included) and steady images/s (from
the first output file to the last one appearing: the restoring itself, (N - 1) / (t_last - t_first)). Without
--ray-address each Ray run starts a private Ray in the command (tens of seconds on 2 cores: the wall figure shows
it); with one, the runs join that cluster. docs/scale_out.md has the figures and the command lines that made them
(inside a loopback-only network namespace).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench_serving import cpu_model  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from ppir.child_process import child_env, ppir_command  # noqa: E402
from ppir.cli import ArgumentParser  # noqa: E402
from ppir.paths import output_file_problem, write_text  # noqa: E402


def make_images(folder, count, size, seed=0):
    import cv2
    import numpy as np

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        cv2.imwrite(os.path.join(folder, f"{i:04d}.png"), rng.integers(0, 255, (*size, 3), dtype=np.uint8))


def timed_run(cmd, out_dir, count, timeout) -> dict:
    """Run `cmd`, polling `out_dir` for finished outputs (not the writers' temporaries)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=child_env(),
                            cwd=ROOT)
    first = last = None
    seen = 0
    while proc.poll() is None and time.perf_counter() - t0 < timeout:
        n = sum(1 for f in os.listdir(out_dir) if not f.startswith(".")) if os.path.isdir(out_dir) else 0
        now = time.perf_counter()
        if n and first is None:
            first = now
        if n > seen:
            seen, last = n, now
        time.sleep(0.02)
    err = proc.communicate(timeout=60)[1]
    wall = time.perf_counter() - t0
    n = sum(1 for f in os.listdir(out_dir) if not f.startswith(".")) if os.path.isdir(out_dir) else 0
    if proc.returncode != 0 or n != count:
        raise SystemExit(f"error: {' '.join(cmd)} exited with {proc.returncode}, {n} of {count} outputs:\n{err[-2000:]}")
    if n > seen:
        last = time.perf_counter()
    steady = (count - 1) / (last - first) if first and last and last > first else float("nan")
    return {"wall_s": wall, "images_per_s_wall": count / wall, "images_per_s_steady": steady}


def main(argv=None):
    p = ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=__doc__.split("\n", 2)[2])
    p.add_argument("--model_dir", required=True, help="export folder (with model.onnx for infer-onnx)")
    p.add_argument("--command", choices=("infer-onnx", "infer"), default="infer-onnx",
                   help="the runner to time (default: %(default)s)")
    p.add_argument("--images", type=int, default=48, help="synthetic images to restore (default: %(default)s)")
    p.add_argument("--size", default="256x256", help="HxW of each image (default: %(default)s)")
    p.add_argument("--workers", default="1,2", help="Ray worker counts to time, comma-separated (default: %(default)s)")
    p.add_argument("--ray-address", default=None, help="a running cluster (default: a private Ray per run)")
    p.add_argument("--cpu-threads", type=int, default=1,
                   help="--cpu_threads of the local run and of each Ray worker (default: %(default)s); the local "
                        "runner on every core is timed beside them")
    p.add_argument("--repeat", type=int, default=3, help="runs per configuration; medians reported (default: 3)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per run (default: %(default)s)")
    p.add_argument("--json", help="also write the results as JSON to this file")
    args = p.parse_args(argv)
    if args.json and (problem := output_file_problem(args.json)):
        sys.exit(f"error: --json: {problem}")
    size = tuple(int(v) for v in args.size.lower().split("x"))
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    work = tempfile.mkdtemp(prefix="bench_batch_")
    try:
        make_images(os.path.join(work, "in"), args.images, size)
        cores = os.cpu_count() or 1
        # the local runner as given (--cpu-threads) and on every core: what one process makes of the machine
        configs = [("local", ["--cpu_threads", args.cpu_threads])]
        if cores != args.cpu_threads:
            configs.append((f"local, {cores} threads", ["--cpu_threads", cores]))
        configs += [(f"ray, {w} worker(s)", ["--cpu_threads", args.cpu_threads, "--engine", "ray", "--workers", w]
                     + (["--ray-address", args.ray_address] if args.ray_address else [])) for w in workers]
        runs = {name: [] for name, _ in configs}
        for r in range(args.repeat):  # interleaved, so that a busy spell of the machine hits every configuration
            for name, extra in configs:
                out = os.path.join(work, f"out_{r}_{configs.index((name, extra))}")
                cmd = ppir_command(args.command, "--model_dir", os.path.abspath(args.model_dir), "--image_dir",
                                   os.path.join(work, "in"), "--save_dir", out, *extra)
                runs[name].append(timed_run(cmd, out, args.images, args.timeout))
                shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = {name: {k: round(statistics.median(run[k] for run in rs), 2) for k in rs[0]} for name, rs in runs.items()}
    local = table["local"]["images_per_s_steady"]
    print(f"machine: {cpu_model()}; {args.images} images {size[1]}x{size[0]}, {args.command}, --cpu_threads "
          f"{args.cpu_threads} unless said, medians of {args.repeat} run(s)")
    print("| engine | wall (s) | images/s (wall) | images/s (steady) | steady vs local |")
    print("|---|---|---|---|---|")
    for name, row in table.items():
        print(f"| {name} | {row['wall_s']} | {row['images_per_s_wall']} | {row['images_per_s_steady']} | "
              f"{row['images_per_s_steady'] / local:.2f}x |")
    if args.json:
        write_text(args.json, json.dumps({"cpu": cpu_model(), "args": vars(args), "medians": table, "runs": runs},
                                         indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
