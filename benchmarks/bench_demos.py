#!/usr/bin/env python
"""Every quick-start demo against the classical methods: all test images, all methods, seconds per image.

  python benchmarks/bench_demos.py                                  # runs the four default quick starts
  python benchmarks/bench_demos.py --models mimo_unet --reuse       # re-tabulate output/bench_demos/<model>
  python benchmarks/bench_demos.py --out docs/demo_weights/bench_demos.md

Each demo is its default quick start (`tools/quickstart.py --model M --output <dir>/M`: fine-tune the shipped
weights 100 steps, export, Paddle Inference on the test images, then every classical method of
ppir.baselines.methods_for its degradation with the parameter best on these images). The tables come from the
run's scores.json: per test image the PSNR (dB) of the input, of each classical row and of the network, the
mean, the seconds per image (means timed in the same run: the network's from the Paddle Inference runner's
report, read + prepare + network + finish; a classical method's on decoded 8-bit images), and the whole
quick start's wall time. The CPU model and thread count head the file. Not part of the test suite.
"""
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # this checkout's ppir, without pip install (common.py is beside this script)

from ppir.cli import ArgumentParser  # noqa: E402

from common import cpu_name  # noqa: E402


def run_demo(model: str, out_dir: str) -> float:
    start = time.time()
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "quickstart.py"), "--model", model,
                           "--output", out_dir, "--overwrite"], cwd=ROOT, text=True, capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"error: the {model} quick start failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    seconds = time.time() - start
    with open(os.path.join(out_dir, "wall_seconds.txt"), "w", encoding="utf-8") as f:
        f.write(f"{seconds:.1f}\n")
    return seconds


def demo_table(rec: dict, wall: float | None) -> list[str]:
    names = rec["images"]
    short = [n.rsplit(".", 1)[0] for n in names]
    rows = [("degraded input", rec["input"], None)]
    rows += [(c["method"], c["scores"], c["seconds_per_image"]) for c in rec["classical"]]
    rows.append(("**network** (Paddle Inference)", rec["network"]["scores"], rec["network"]["seconds_per_image"]))

    def mean(scores):
        return sum(scores[n][0] for n in names) / len(names)

    best = max(rec["classical"], key=lambda c: mean(c["scores"]))
    net = mean(rec["network"]["scores"])
    lines = [f"### {rec['model']} ({rec['degradation']})", "",
             f"Network {net:.2f} dB vs best classical row {mean(best['scores']):.2f} dB ({best['method']}): "
             f"**{net - mean(best['scores']):+.2f} dB**" + (f"; whole quick start {wall:.0f} s." if wall else "."),
             "", "| method | " + " | ".join(short) + " | mean PSNR | seconds per image |",
             "|---|" + "---|" * (len(names) + 2)]
    for label, scores, sec in rows:
        cells = " | ".join(f"{scores[n][0]:.2f}" for n in names)
        lines.append(f"| {label} | {cells} | {mean(scores):.2f} | {'-' if sec is None else f'{sec:.3g}'} |")
    return lines + [""]


def main(argv=None) -> int:
    from ppir.commands.quickstart import DEMOS
    p = ArgumentParser(description="Run every quick-start demo and tabulate all images, methods and seconds.")
    p.add_argument("--models", nargs="+", default=list(DEMOS), choices=list(DEMOS))
    p.add_argument("--work", default="output/bench_demos", help="where the quick starts run (default %(default)s)")
    p.add_argument("--reuse", action="store_true", help="tabulate the runs already in --work instead of running")
    p.add_argument("--out", default=None, help="also write the Markdown here (e.g. docs/demo_weights/bench_demos.md)")
    p.add_argument("--note", default="", help="a word on the machine's load during the runs, printed with it")
    args = p.parse_args(argv)
    threads = os.environ.get("OMP_NUM_THREADS", str(os.cpu_count() or 1))  # unset: the runs take ppir/_paddle.py's
    lines = ["# Quick-start demos against classical methods (benchmarks/bench_demos.py)", "",
             f"Machine: {cpu_name()}, {os.cpu_count()} logical CPUs, OMP_NUM_THREADS {threads}"
             + (f" ({args.note})" if args.note else "") + ". PSNR in dB on "
             "8-bit images; each classical row at the parameter best on these very images (oracle rows get the "
             "true blur kernel). Seconds per image are means timed in the same run.", ""]
    for model in args.models:
        out_dir = os.path.join(args.work, model)
        wall = None
        if not args.reuse:
            wall = run_demo(model, out_dir)
        elif os.path.isfile(os.path.join(out_dir, "wall_seconds.txt")):
            wall = float(open(os.path.join(out_dir, "wall_seconds.txt")).read())
        path = os.path.join(out_dir, "scores.json")
        if not os.path.isfile(path):
            raise SystemExit(f"error: {path}: no scores.json (run without --reuse first)")
        with open(path, encoding="utf-8") as f:
            lines += demo_table(json.load(f), wall)
    text = "\n".join(lines)
    print(text)
    if args.out:
        from ppir.paths import write_text
        write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
