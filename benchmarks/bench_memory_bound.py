#!/usr/bin/env python
"""Peak memory of predict, infer, infer-onnx and the server at their default --max-memory (1280M) on the worst
inputs under 10 MB that the default still admits (issue 25: no such input may take a command past 2 GB).

  python benchmarks/bench_memory_bound.py                          # the MIRNet demo network, every tool
  python benchmarks/bench_memory_bound.py --demo hinet_synthetic --tools infer-onnx,server

The inputs are tests/bad_inputs/peak_memory.worst_inputs: the largest PNGs whose header passes the default
budget with `--slack` left for the network's tiles (8-bit gray, 16-bit RGBA, a 64-pixel strip). Each tool runs
as a child process; its peak RSS is the kernel's (wait4's ru_maxrss, and /proc VmHWM of a server's predictor
children), next to its baseline on a 32x32 image. The CPU model heads the table. Not part of the test suite
(minutes: tens of millions of pixels through a real network); tests/bad_inputs/test_memory_peak.py proves the
same bound at a small budget in seconds.
"""
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests", "bad_inputs")]  # this checkout's ppir; the shared input maker

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from common import cpu_name  # noqa: E402
from peak_memory import MB, _hwm_bytes, _tree, run_measured, worst_inputs  # noqa: E402
from ppir.cli import ArgumentParser  # noqa: E402
from ppir.infer.memory import DEFAULT_BUDGET  # noqa: E402

TOOLS = ("predict", "infer", "infer-onnx", "server")


def ppir_cmd(*args):
    return [sys.executable, "-m", "ppir", *map(str, args)]


def tool_cmd(tool, config, weights, export, folder, out):
    if tool == "predict":
        return ppir_cmd("predict", "-c", config, "--weights", weights, "--input", folder, "--output", out)
    return ppir_cmd(tool, "--model_dir", export, "--image_dir", folder, "--save_dir", out)


def server_peaks(export, images: dict, log_dir) -> dict:
    """name -> (outcome, peak RSS of the server's largest process); 'baseline' first (a 32x32 request)."""
    from ppir.serving import launch
    from ppir.serving.client import ServingError, restore_bytes

    srv = launch.start_server(["--port", "0", "--model_dir", export, "--backend", "paddle"],
                              os.path.join(log_dir, "server.log"), timeout=300, cwd=ROOT)
    out = {}
    try:
        for name, path in images.items():
            start = time.time()
            try:
                with open(path, "rb") as f:
                    restore_bytes(srv.url, f.read(), timeout=3600, retries=0)
                outcome = "restored"
            except ServingError as e:
                outcome = str(e).split("HTTP ", 1)[-1][:60]
            peak = max(_hwm_bytes(pid) for pid in _tree(srv.proc.pid))
            out[name] = (outcome, peak, time.time() - start)
            print(f"server {name}: {outcome}, peak {peak / MB:.0f} MB", flush=True)
    finally:
        srv.stop()
    return out


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--demo", default="mirnet_synthetic", help="configs/demo/<demo>.yml with its shipped weights")
    p.add_argument("--tools", default=",".join(TOOLS))
    p.add_argument("--slack", type=int, default=256, help="MB of the budget left for the network's tiles")
    p.add_argument("--work", default=None, help="folder for the export, inputs and outputs (default: a temp one)")
    args = p.parse_args(argv)
    config = os.path.join(ROOT, "configs", "demo", f"{args.demo}.yml")
    weights = os.path.join(ROOT, "configs", "demo", "weights", f"{args.demo}.pdparams")
    work = args.work or tempfile.mkdtemp(prefix="ppir-memory-bound-")
    export = os.path.join(work, "export")
    if not os.path.isfile(os.path.join(export, "model.onnx")):
        for cmd in (ppir_cmd("export", "-c", config, "--weights", weights, "--save-dir", export),
                    ppir_cmd("export-onnx", "--model_dir", export)):
            code, _, err = run_measured(cmd, cwd=ROOT)
            if code:
                raise SystemExit(f"error: {' '.join(cmd[2:4])} failed:\n{err[-2000:]}")
    images = {"baseline": os.path.join(work, "in", "baseline.png")}
    os.makedirs(os.path.dirname(images["baseline"]), exist_ok=True)
    cv2.imwrite(images["baseline"], np.full((32, 32, 3), 128, np.uint8))
    images.update(worst_inputs(os.path.join(work, "in"), DEFAULT_BUDGET, 4096 * 4096, slack=args.slack * MB))
    rows = []
    for tool in args.tools.split(","):
        if tool == "server":
            for name, (outcome, peak, sec) in server_peaks(export, images, work).items():
                rows.append((tool, name, outcome, peak, sec))
            continue
        for name, path in images.items():
            folder = os.path.join(work, "one", name)
            os.makedirs(folder, exist_ok=True)
            target = os.path.join(folder, os.path.basename(path))
            if not os.path.exists(target):
                os.link(path, target)
            start = time.time()
            code, peak, err = run_measured(tool_cmd(tool, config, weights, export, folder,
                                                   os.path.join(work, "out", tool, name)), timeout=7200, cwd=ROOT)
            errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
            outcome = "restored" if code == 0 else (errors[0][:60] if errors else f"exit {code}")
            rows.append((tool, name, outcome, peak, time.time() - start))
            print(f"{tool} {name}: {outcome}, peak {peak / MB:.0f} MB", flush=True)
    print(f"\n{args.demo}, default --max-memory {DEFAULT_BUDGET / MB:.0f} MB; {cpu_name()}, {os.cpu_count()} cores\n")
    print("| tool | input | size (WxH) | result | peak RSS (MB) | seconds |\n|---|---|---|---|---|---|")
    for tool, name, outcome, peak, sec in rows:
        h, w = cv2.imread(images[name], cv2.IMREAD_UNCHANGED).shape[:2]
        print(f"| {tool} | {name} | {w}x{h} | {outcome} | {peak / MB:.0f} | {sec:.0f} |")
    worst = max(r[3] for r in rows)
    print(f"\nlargest peak: {worst / MB:.0f} MB ({'under' if worst < 2 << 30 else 'OVER'} 2 GB)")
    return 0 if worst < 2 << 30 else 1


if __name__ == "__main__":
    sys.exit(main())
