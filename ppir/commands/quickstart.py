"""Quick start: train a demo network on synthetic data, evaluate it, export it, restore new images with
Paddle Inference, and write a metrics table. Nothing is downloaded; a few CPU minutes.

Examples:
  python tools/quickstart.py                      # MIRNet denoising demo, the full 300 steps (~2-4 min on CPU)
  python tools/quickstart.py --model hinet        # HINet deraining demo
  python tools/quickstart.py --model mimo_unet --iters 100 --output output/qs_mimo

Every step is one ppir command (`python -m ppir <command>`, the same tool as tools/<name>.py and deploy/ in a
checkout), printed before it runs, so you can re-run or change any of them by hand (README section 4). It works
from any folder, from a checkout or an installed ppir: the demo configs ship inside the package
(ppir/configs/demo, which is configs/demo in a checkout). What is left in --output (default
output/quickstart/<model>, relative to the current folder):
  data/{lq,gt}/     degraded test images and their clean originals (ppir make-synthetic-data)
  train/            checkpoints, train.log, metrics.jsonl (ppir train)
  eval/             metrics.json and side-by-side pictures input | restored | ground truth (ppir eval)
  inference/        the exported program: inference.json, inference.pdiparams, inference.yml (ppir export)
  restored/         the test images restored by Paddle Inference (ppir infer)
  metrics.md        the metrics table printed at the end
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shlex
import subprocess
import sys
import time

from ppir.cli import ArgumentParser, BOOL, child_env, ppir_command
from ppir.errors import ConfigError, PPIRError

# The demo configs, package data of ppir (a link to configs/demo in a checkout, real files once installed).
DEMO_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "demo")
# Clean images for the restored-by-Paddle-Inference step: scikit-image samples that no demo trains on, at
# their native sizes (not multiples of the networks' size multiples: padding is part of what is shown).
TEST_IMAGES = "chelsea,camera"
_IMAGE_LINE = re.compile(r"^image: (?P<name>.+?), psnr: (?P<psnr>[-\d.naif]+), ssim: (?P<ssim>[-\d.naif]+)")


class StepFailed(PPIRError):
    exit_code = 1


def demo_models() -> dict[str, str]:
    """Demo name -> config path, from <DEMO_DIR>/<name>_synthetic.yml."""
    found = sorted(glob.glob(os.path.join(DEMO_DIR, "*_synthetic.yml")))
    return {os.path.basename(p)[: -len("_synthetic.yml")]: _shown(p) for p in found}


def _shown(path: str) -> str:
    """`path` as the printed commands give it: configs/demo/<file> in a checkout's root, else the full path."""
    short = os.path.join("configs", "demo", os.path.basename(path))
    return short if os.path.isfile(short) and os.path.samefile(short, path) else path


def parse_args(argv=None):
    models = demo_models()
    p = ArgumentParser(
        description="Train a demo network on synthetic data (no download), evaluate, export, and restore test "
                    "images with Paddle Inference; ends with a metrics table.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    p.add_argument("--model", default="mirnet", choices=sorted(models),
                   help="which demo (configs/demo/<model>_synthetic.yml; default mirnet: Gaussian denoising)")
    p.add_argument("--iters", type=int, default=None,
                   help="training steps (default: the config's train.iters, 300); small values are for smoke tests")
    p.add_argument("--output", default=None, help="folder for everything it makes (default output/quickstart/<model>)")
    p.add_argument("--enable_mkldnn", **BOOL, default=True, help="Paddle Inference on CPU with oneDNN (default True)")
    args = p.parse_args(argv)
    if args.iters is not None and args.iters < 1:
        p.error("--iters must be at least 1")
    args.config = models[args.model]
    args.output = args.output or os.path.join("output", "quickstart", args.model)
    return args


def demo_settings(config_path: str) -> tuple[str, int]:
    """The demo's degradation (from its validation entry) and its number of training steps."""
    import ppir
    cfg = ppir.load_config(config_path)
    val = (cfg.get("datasets") or {}).get("val") or {}
    degradation = val.get("degradation")
    if not degradation:
        raise ConfigError(f"{config_path}: datasets.val.degradation is not set; the quick start needs a "
                          "SyntheticDataset validation entry")
    return degradation, int((cfg.get("train") or {}).get("iters") or 0)


def step(number: int, total: int, title: str, cmd: list[str], capture: bool = False) -> str:
    """Run `ppir <cmd>` with this interpreter and this ppir package, echoing the command; a failure stops the
    quick start."""
    argv = ppir_command(*cmd)
    shown = " ".join(shlex.quote(c) for c in ["python", *argv[1:]])
    print(f"\n[{number}/{total}] {title}\n$ {shown}", flush=True)
    start = time.time()
    proc = subprocess.run(argv, env=child_env(), text=True, stdout=subprocess.PIPE if capture else None)
    if capture and proc.stdout:
        sys.stdout.write(proc.stdout)
        sys.stdout.flush()
    if proc.returncode != 0:
        raise StepFailed(f"step {number} ({title}) failed with exit code {proc.returncode}: {shown}")
    print(f"[{number}/{total}] done in {time.time() - start:.1f} s", flush=True)
    return proc.stdout or ""


def input_scores(data_dir: str) -> dict[str, tuple[float, float]]:
    """PSNR/SSIM of the degraded test images against their originals (the 'before' row)."""
    from ppir.data.image_io import read_image
    from ppir.infer.pipeline import to_uint8
    from ppir.infer.loop import metric_functions
    psnr_fn, ssim_fn = metric_functions()
    out = {}
    for lq in sorted(glob.glob(os.path.join(data_dir, "lq", "*.png"))):
        name = os.path.basename(lq)
        gt, img = to_uint8(read_image(os.path.join(data_dir, "gt", name))), to_uint8(read_image(lq))
        out[name] = (psnr_fn(img, gt), ssim_fn(img, gt))
    return out


def parse_runner_lines(text: str) -> dict[str, tuple[float, float]]:
    scores = {}
    for line in text.splitlines():
        m = _IMAGE_LINE.match(line.strip())
        if m:
            scores[m["name"]] = (float(m["psnr"]), float(m["ssim"]))
    return scores


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def metrics_table(model: str, eval_json: dict, before: dict, after: dict, iters: int) -> str:
    names = list(eval_json["metrics"])
    psnr_key = next((n for n in names if n.lower().startswith("psnr")), names[0])
    ssim_key = next((n for n in names if n.lower().startswith("ssim")), None)

    def row(what, n, psnr, ssim):
        ssim_s = "-" if ssim is None else f"{ssim:.4f}"
        return f"| {what} | {n} | {psnr:.2f} | {ssim_s} |"

    inp = eval_json.get("input_metrics") or {}
    res = eval_json["metrics"]
    lines = [
        f"# Quick start: {model} demo ({iters} training steps)",
        "",
        "| images | count | PSNR (dB) | SSIM |",
        "|---|---|---|---|",
    ]
    if inp:
        lines.append(row("validation set, degraded input", eval_json["images"], inp[psnr_key],
                         inp.get(ssim_key) if ssim_key else None))
    lines.append(row(f"validation set, restored (tools/eval.py, {eval_json.get('backend', 'dygraph')})",
                     eval_json["images"], res[psnr_key], res.get(ssim_key) if ssim_key else None))
    lines.append(row("test images, degraded input", len(before), mean(v[0] for v in before.values()),
                     mean(v[1] for v in before.values())))
    lines.append(row("test images, restored (Paddle Inference)", len(after), mean(v[0] for v in after.values()),
                     mean(v[1] for v in after.values())))
    lines += ["", "Validation metrics follow the config's metrics: section; test-image metrics are PSNR and "
                  "2-D SSIM on the 8-bit images, as the deploy runners print them."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    out = args.output
    train_dir, data_dir = os.path.join(out, "train"), os.path.join(out, "data")
    eval_dir, export_dir = os.path.join(out, "eval"), os.path.join(out, "inference")
    restored_dir = os.path.join(out, "restored")
    degradation, config_iters = demo_settings(args.config)
    overrides = [f"train.output_dir={train_dir}"] + ([f"train.iters={args.iters}"] if args.iters else [])
    best = os.path.join(train_dir, "best")
    start = time.time()
    print(f"ppir quick start: {args.model} ({args.config}); everything goes to {out}", flush=True)

    total = 5
    step(1, total, "make degraded test images", [
        "make-synthetic-data", "--degradation", degradation, "--out", data_dir,
        "--images", TEST_IMAGES, "--seed", "1"])
    step(2, total, "train the demo network", ["train", "-c", args.config, "-o", *overrides])
    step(3, total, "evaluate the best checkpoint on the validation set", [
        "eval", "-c", args.config, "--weights", best, "--save-images", "--output", eval_dir])
    step(4, total, "export for deployment", [
        "export", "-c", args.config, "--weights", best, "--save-dir", export_dir])
    text = step(5, total, "restore the test images with Paddle Inference", [
        "infer", "--model_dir", export_dir, "--image_dir", os.path.join(data_dir, "lq"),
        "--gt_dir", os.path.join(data_dir, "gt"), "--save_dir", restored_dir,
        "--enable_mkldnn", str(args.enable_mkldnn)], capture=True)

    with open(os.path.join(eval_dir, "metrics.json"), encoding="utf-8") as f:
        eval_json = json.load(f)
    after = parse_runner_lines(text)
    if not after:
        raise StepFailed("the Paddle Inference runner printed no per-image metrics")
    before = input_scores(data_dir)
    table = metrics_table(args.model, eval_json, before, after, args.iters or config_iters)
    table_path = os.path.join(out, "metrics.md")
    tmp = table_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(table)
    os.replace(tmp, table_path)

    print("\n" + table)
    print(f"restored images: {restored_dir}/ ; side-by-side pictures: {os.path.join(eval_dir, 'images')}/")
    print(f"metrics table: {os.path.join(out, 'metrics.md')} ; total {time.time() - start:.0f} s")
    return 0
