"""Quick start: fine-tune a demo network on synthetic data, evaluate it, export it, restore new images with
Paddle Inference, and write a metrics table next to the best classical filters. Nothing is downloaded; a few
CPU minutes.

The demos (--model): mirnet (Gaussian noise), hinet (rain), mimo_unet (motion blur), mimo_unet_noise (Poisson
shot + Gaussian read noise); each is configs/demo/<demo config>.yml (DEMOS). The training step starts from
ppir's shipped demo weights (configs/demo/weights/<demo config>.pdparams, trained by
configs/demo/<demo config>_pretrain.yml with tools/train.py; docs/demo_weights.md) and fine-tunes them for the
demo config's 100 steps: training a network from scratch to beat a tuned classical
filter takes far longer than a quick start. Without that file, or with --from-scratch, it trains from scratch
and says so.

Examples:
  python tools/quickstart.py                      # MIRNet denoising demo, the full 100 fine-tuning steps
  python tools/quickstart.py --model hinet        # HINet deraining demo
  python tools/quickstart.py --model mimo_unet --iters 20 --output output/qs_mimo

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
  metrics.md        the metrics table printed at the end, with each classical method that fits the degradation
                    (ppir.baselines.methods_for: OpenCV filters, blind BM3D for noise when the optional bm3d
                    package is installed; unsharp masking and oracle deconvolution with the true kernel for
                    blur) at its best parameter on the same test images, and seconds per image of each
  quickstart.json   the files this quick start made (rewritten after every step): a second run into a non-empty
                    --output is refused unless --overwrite, which removes exactly those files and keeps all
                    others (a user's image in data/lq/ is neither restored nor scored)

The test images (TEST_IMAGES, chosen by a rule before any score was seen): every photograph that ships
offline with ppir's dependencies and that no demo trains or validates on, shrunk to at most 192 px, each
degraded twice (TEST_DRAWS draws of the degradation, seed 1); the gray one (camera) gets gray noise.
"""
from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from ppir.child_process import child_env, ppir_command
from ppir.cli import ArgumentParser, BOOL
from ppir.errors import ConfigError, DatasetError, PPIRError
from ppir.commands.quickstart_folder import MANIFEST, OutputFolder
from ppir.paths import output_dir_problem, write_text

# The demos: --model name -> configs/demo/<stem>.yml, weights/<stem>.pdparams, <stem>_pretrain.yml.
DEMOS = {"mirnet": "mirnet_synthetic", "hinet": "hinet_synthetic", "mimo_unet": "mimo_unet_deblur",
         "mimo_unet_noise": "mimo_unet_synthetic"}
# The demo configs, package data of ppir (a link to configs/demo in a checkout, real files once installed).
DEMO_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "demo")
# The shipped demo weights, <stem>.pdparams, package data as the configs are.
WEIGHTS_DIR = os.path.join(DEMO_DIR, "weights")
# Clean images for the restored-by-Paddle-Inference step. The rule, fixed before any score was looked at: every
# photograph that ships offline with ppir's dependencies (scikit-image, matplotlib) and that no demo config
# trains or validates on (tests/data/test_demo_splits.py checks the lists are disjoint). That is five: the
# motorcycle pair is one scene from two viewpoints. Shrunk to at most TEST_MAX_SIDE px (BM3D takes seconds per
# image; the sizes are not multiples of the networks': padding is part of what is shown), each degraded
# TEST_DRAWS times (different noise levels / kernels), gray ones with one noise field for all channels.
TEST_IMAGES = "camera,chelsea,grace_hopper,motorcycle_left,motorcycle_right"
TEST_DRAWS = 2
TEST_MAX_SIDE = 192
TEST_SEED = 1
_IMAGE_LINE = re.compile(r"^image: (?P<name>.+?), psnr: (?P<psnr>[-\d.naif]+), ssim: (?P<ssim>[-\d.naif]+)")


class StepFailed(PPIRError):
    exit_code = 1


def demo_models() -> dict[str, str]:
    """Demo name -> config path (DEMOS whose config is there)."""
    found = {name: os.path.join(DEMO_DIR, f"{stem}.yml") for name, stem in DEMOS.items()}
    return {name: _shown(p) for name, p in sorted(found.items()) if os.path.isfile(p)}


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
                   help="which demo (default mirnet: Gaussian denoising; hinet: rain; mimo_unet: motion blur; "
                        "mimo_unet_noise: Poisson-Gaussian noise)")
    p.add_argument("--iters", type=int, default=None,
                   help="training steps (default: the config's train.iters, 100); small values are for smoke tests")
    p.add_argument("--from-scratch", action="store_true",
                   help="ignore the shipped demo weights and train the demo config from scratch (its fine-tuning "
                        "lr and steps: this does not reach the classical filters in the default steps)")
    p.add_argument("--output", default=None,
                   help="folder for everything it makes (default output/quickstart/<model>); it must be empty or "
                        "new unless --overwrite")
    p.add_argument("--overwrite", **BOOL, default=False,
                   help=f"replace a previous quick start's outputs in --output (the files its {MANIFEST} lists); "
                        "files it did not make are kept and left out of this run")
    p.add_argument("--enable_mkldnn", **BOOL, default=True, help="Paddle Inference on CPU with oneDNN (default True)")
    args = p.parse_args(argv)
    if args.iters is not None and args.iters < 1:
        p.error("--iters must be at least 1")
    args.config = models[args.model]
    args.output = args.output or os.path.join("output", "quickstart", args.model)
    return args


@dataclass(frozen=True)
class TrainingStart:
    """Where the training step starts: the overrides it passes, the line that says so, the table's words."""
    overrides: tuple
    note: str
    kind: str  # "fine-tuned from shipped weights" or "from scratch"


def shipped_weights(model: str) -> str:
    """Where the demo's shipped weights are (absolute, so the config's repo-relative path is not needed)."""
    return os.path.abspath(os.path.join(WEIGHTS_DIR, f"{DEMOS[model]}.pdparams"))


def training_start(model: str, from_scratch: bool = False) -> TrainingStart:
    """Fine-tune the shipped weights when they exist, else (or with --from-scratch) train from scratch."""
    path = shipped_weights(model)
    if from_scratch:
        return TrainingStart(("train.pretrained=",), "training from scratch (--from-scratch): the shipped demo "
                             "weights are not used (expect the classical filters to do better)", "from scratch")
    if not os.path.isfile(path):
        return TrainingStart(("train.pretrained=",), f"no shipped demo weights at {path}: training from scratch "
                             "(expect the classical filters to do better)", "from scratch")
    return TrainingStart((f"train.pretrained={path}",), f"fine-tuning the shipped demo weights {path} (trained by "
                         f"configs/demo/{DEMOS[model]}_pretrain.yml, see docs/demo_weights.md)",
                         "fine-tuned from shipped weights")


def demo_settings(config_path: str) -> tuple[str, int, list]:
    """The demo's degradation and its parameters (from its validation entry, as make-synthetic-data --set
    KEY=VALUE items) and its number of training steps."""
    import ppir
    from ppir.commands.make_synthetic_data import PARAMS
    cfg = ppir.load_config(config_path)
    val = (cfg.get("datasets") or {}).get("val") or {}
    degradation = val.get("degradation")
    if not degradation:
        raise ConfigError(f"{config_path}: datasets.val.degradation is not set; the quick start needs a "
                          "SyntheticDataset validation entry")
    params = [f"{k}={val[k]}" for k in PARAMS if k in val]
    return degradation, int((cfg.get("train") or {}).get("iters") or 0), params


def step(number: int, total: int, title: str, cmd: list[str], capture: bool = False, hide: str = "") -> str:
    """Run `ppir <cmd>` with this interpreter and this ppir package, echoing the command (and, with capture, its
    output less the lines containing `hide`); a failure stops the quick start."""
    argv = ppir_command(*cmd)
    shown = " ".join(shlex.quote(c) for c in ["python", *argv[1:]])
    print(f"\n[{number}/{total}] {title}\n$ {shown}", flush=True)
    start = time.time()
    proc = subprocess.run(argv, env=child_env(), text=True, stdout=subprocess.PIPE if capture else None)
    if capture and proc.stdout:
        shown_lines = [ln for ln in proc.stdout.splitlines(keepends=True) if not hide or hide not in ln]
        sys.stdout.write("".join(shown_lines))
        sys.stdout.flush()
    if proc.returncode != 0:
        raise StepFailed(f"step {number} ({title}) failed with exit code {proc.returncode}: {shown}")
    print(f"[{number}/{total}] done in {time.time() - start:.1f} s", flush=True)
    return proc.stdout or ""


@contextlib.contextmanager
def runner_inputs(lq_dir: str, own: list[str], foreign: list[str]):
    """The --image_dir for the runner: data/lq itself, or, when it also holds files the quick start did not make,
    a temporary folder of links to its own test images only (removed afterwards; the user's files untouched)."""
    if not foreign:
        yield lq_dir
        return
    links = tempfile.mkdtemp(prefix="ppir-quickstart-")
    try:
        for path in own:
            os.symlink(os.path.abspath(path), os.path.join(links, os.path.basename(path)))
        print(f"note: {lq_dir} also holds files the quick start did not make ({', '.join(foreign[:3])}"
              f"{' ...' if len(foreign) > 3 else ''}); they are kept and not restored: the runner reads the "
              f"quick start's {len(own)} test images through links in {links}", flush=True)
        yield links
    finally:
        shutil.rmtree(links, ignore_errors=True)


def image_pairs(data_dir: str, lq_files: list[str] | None = None) -> dict:
    """name -> (degraded, original) 8-bit RGB test images of data_dir/{lq,gt} (only `lq_files` when given), plus
    the true blur kernel (data_dir/kernel/<stem>.npy) when make-synthetic-data wrote one."""
    from ppir.data.image_io import read_image
    from ppir.data.synthetic import read_kernel
    from ppir.infer.loop import find_gt  # the runners' pairing rule, so the baselines score what infer scored
    from ppir.infer.pipeline import to_uint8
    out = {}
    for lq in sorted(glob.glob(os.path.join(data_dir, "lq", "*.png")) if lq_files is None else lq_files):
        name = os.path.basename(lq)
        gt = find_gt(os.path.join(data_dir, "gt"), lq)
        if gt is None:
            raise DatasetError(f"{lq}: no ground truth of the same name in {os.path.join(data_dir, 'gt')}")
        pair = (to_uint8(read_image(lq)), to_uint8(read_image(gt)))
        kernel = os.path.join(data_dir, "kernel", os.path.splitext(name)[0] + ".npy")
        out[name] = pair + (read_kernel(kernel),) if os.path.isfile(kernel) else pair
    return out


def input_scores(pairs: dict) -> dict[str, tuple[float, float]]:
    """PSNR/SSIM of the degraded test images against their originals (the 'before' row)."""
    from ppir.infer.loop import metric_functions
    psnr_fn, ssim_fn = metric_functions()
    return {name: (psnr_fn(p[0], p[1]), ssim_fn(p[0], p[1])) for name, p in pairs.items()}


def filter_scores(pairs: dict, degradation: str | None = None) -> list:
    """Each classical method for the degradation at its best parameter on the test images, scored with the
    runner's PSNR/SSIM."""
    from ppir.baselines import NamedMetric, best_filters, methods_for
    from ppir.infer.loop import metric_functions
    psnr_fn, ssim_fn = metric_functions()
    return best_filters(list(pairs.values()), [NamedMetric("psnr", psnr_fn), NamedMetric("ssim", ssim_fn)],
                        methods_for(degradation))


_TIMES = re.compile(r"preprocess_time\(ms\): (?P<pre>[\d.]+), inference_time\(ms\): (?P<inf>[\d.]+), "
                    r"postprocess_time\(ms\): (?P<post>[\d.]+)")


def runner_seconds(text: str) -> float:
    """Seconds per image of the Paddle Inference runner (read + prepare, network, finish: its --benchmark
    report's means), nan when it printed no report."""
    m = _TIMES.search(text)
    return (float(m["pre"]) + float(m["inf"]) + float(m["post"])) / 1000.0 if m else float("nan")


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


def metrics_table(model: str, eval_json: dict, before: dict, after: dict, iters: int, filters: list,
                  start: str, network_seconds: float = float("nan"), notes: tuple = ()) -> str:
    """The quick start's Markdown table: validation and test images before/after, each classical method on the
    test images (`filters`: ppir.baselines results with "psnr" and "ssim"), seconds per image, and the margin
    over the best classical row."""
    from ppir.baselines import best_of
    names = list(eval_json["metrics"])
    psnr_key = next((n for n in names if n.lower().startswith("psnr")), names[0])
    ssim_key = next((n for n in names if n.lower().startswith("ssim")), None)

    def row(what, n, psnr, ssim, seconds=None):
        ssim_s = "-" if ssim is None else f"{ssim:.4f}"
        sec_s = "-" if seconds is None or seconds != seconds else f"{seconds:.3g}"
        return f"| {what} | {n} | {psnr:.2f} | {ssim_s} | {sec_s} |"

    inp = eval_json.get("input_metrics") or {}
    res = eval_json["metrics"]
    lines = [
        f"# Quick start: {model} demo ({start}, {iters} training steps)",
        "",
        "| images | count | PSNR (dB) | SSIM | seconds per image |",
        "|---|---|---|---|---|",
    ]
    if inp:
        lines.append(row("validation set, degraded input", eval_json["images"], inp[psnr_key],
                         inp.get(ssim_key) if ssim_key else None))
    lines.append(row(f"validation set, restored (tools/eval.py, {eval_json.get('backend', 'dygraph')})",
                     eval_json["images"], res[psnr_key], res.get(ssim_key) if ssim_key else None))
    lines.append(row("test images, degraded input", len(before), mean(v[0] for v in before.values()),
                     mean(v[1] for v in before.values())))
    for f in filters:
        edge = " †" if f.at_edge else ""
        lines.append(row(f"test images, {f.short()}{edge}", len(before), f.scores["psnr"], f.scores["ssim"],
                         f.seconds))
    restored_psnr = mean(v[0] for v in after.values())
    lines.append(row("test images, restored (Paddle Inference)", len(after), restored_psnr,
                     mean(v[1] for v in after.values()), network_seconds))
    best = best_of(filters)
    lines += ["", f"restored vs best classical method: {restored_psnr - best.scores['psnr']:+.2f} dB PSNR "
                  f"({best.short()})",
              "", "Validation metrics follow the config's metrics: section; test-image metrics are PSNR and "
                  "2-D SSIM on the 8-bit images, as the deploy runners print them. Each classical method runs "
                  "with the parameter that gives its best mean PSNR on these very test images (ppir.baselines); "
                  "an oracle row is given the true blur kernel, which no user has. Seconds per image are means "
                  "timed in this run on this machine: the network's from the Paddle Inference runner's report "
                  "(read + prepare, network, finish), a classical method's on decoded 8-bit images."]
    lines += list(notes)
    if any(f.at_edge for f in filters):
        lines.append("† the best value is at the end of the method's grid (ppir.baselines): a wider grid "
                     "might do a little better.")
    return "\n".join(lines) + "\n"


def scores_record(model: str, degradation: str, before: dict, after: dict, network_seconds: float,
                  filters: list) -> dict:
    """Every test image's PSNR/SSIM for the input, each classical row (at its chosen parameter) and the network,
    with seconds per image: scores.json, what benchmarks/bench_demos.py tabulates."""
    names = list(before)
    return {
        "model": model, "degradation": degradation, "images": names,
        "input": {n: list(before[n]) for n in names},
        "network": {"seconds_per_image": network_seconds, "scores": {n: list(after[n]) for n in names}},
        "classical": [{"method": f.short(), "seconds_per_image": f.seconds,
                       "scores": {n: [p["psnr"], p["ssim"]] for n, p in zip(names, f.per_image)}}
                      for f in filters],
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    out = args.output
    problem = output_dir_problem(out)  # refused before the first step, not by a child process's failure
    if problem:
        raise ConfigError(f"--output: {problem}")
    degradation, config_iters, params = demo_settings(args.config)
    folder = OutputFolder(out, args.model)
    folder.prepare(args.overwrite, planned_files())  # before any step: a non-empty --output is refused here
    try:
        return _run(args, folder, degradation, config_iters, params)
    finally:  # also when a step fails or is interrupted: a later --overwrite then knows every file it made
        folder.record()


def planned_files() -> set[str]:
    """The paths (relative to --output) a quick start writes whose names are known before it runs."""
    names = [f"{n}_{i:05d}" for i, n in enumerate(TEST_IMAGES.split(",") * TEST_DRAWS)]
    per_image = {f"{sub}/{n}.png" for n in names for sub in ("data/lq", "data/gt", "restored")}
    return per_image | {f"data/kernel/{n}.npy" for n in names} | {
        "metrics.md", "scores.json", "eval/metrics.json", "train/train.log", "train/metrics.jsonl",
        "inference/inference.json", "inference/inference.pdiparams", "inference/inference.yml"}


def _run(args, folder: OutputFolder, degradation: str, config_iters: int, params: list) -> int:
    out = args.output
    train_dir, data_dir = os.path.join(out, "train"), os.path.join(out, "data")
    eval_dir, export_dir = os.path.join(out, "eval"), os.path.join(out, "inference")
    restored_dir = os.path.join(out, "restored")
    begin = training_start(args.model, args.from_scratch)
    overrides = [f"train.output_dir={train_dir}", *begin.overrides] + (
        [f"train.iters={args.iters}"] if args.iters else [])
    best = os.path.join(train_dir, "best")
    start = time.time()
    print(f"ppir quick start: {args.model} ({args.config}); everything goes to {out}", flush=True)
    print(begin.note, flush=True)

    total = 5
    names = TEST_IMAGES.split(",")
    step(1, total, "make degraded test images", [
        "make-synthetic-data", "--degradation", degradation, "--out", data_dir, "--images", TEST_IMAGES,
        "--num", str(TEST_DRAWS * len(names)), "--seed", str(TEST_SEED), "--max-side", str(TEST_MAX_SIDE),
        "--gray-noise", *(["--set", *params] if params else [])])
    folder.record()  # after every step: even a killed run leaves a manifest of what it made
    step(2, total, f"train the demo network ({begin.kind})", ["train", "-c", args.config, "-o", *overrides])
    folder.record()
    step(3, total, "evaluate the best checkpoint on the validation set", [
        "eval", "-c", args.config, "--weights", best, "--save-images", "--output", eval_dir])
    folder.record()
    step(4, total, "export for deployment", [
        "export", "-c", args.config, "--weights", best, "--save-dir", export_dir])
    folder.record()
    own_lq = folder.own_test_images("data/lq")
    with runner_inputs(os.path.join(data_dir, "lq"), own_lq, folder.foreign_in("data/lq")) as image_dir:
        text = step(5, total, "restore the test images with Paddle Inference", [
            "infer", "--model_dir", export_dir, "--image_dir", image_dir,
            "--gt_dir", os.path.join(data_dir, "gt"), "--save_dir", restored_dir,
            "--enable_mkldnn", str(args.enable_mkldnn), "--benchmark", "True"], capture=True, hide=" root INFO: ")
    folder.record()
    network_seconds = runner_seconds(text)
    print(f"Paddle Inference: {network_seconds:.3g} s per image (mean of the --benchmark report's read + prepare, "
          "network and finish times; the report's other lines are left out here)", flush=True)

    with open(os.path.join(eval_dir, "metrics.json"), encoding="utf-8") as f:
        eval_json = json.load(f)
    pairs = image_pairs(data_dir, own_lq)  # the run's own test images: a user's file in data/lq/ is no test image
    after = {name: v for name, v in parse_runner_lines(text).items() if name in pairs}
    if not after:
        raise StepFailed("the Paddle Inference runner printed no per-image metrics")
    before = input_scores(pairs)
    print("\nclassical methods, each at its best parameter on the test images ...", flush=True)
    filters_start = time.time()
    filters = filter_scores(pairs, degradation)
    print(f"done in {time.time() - filters_start:.1f} s", flush=True)
    from ppir.baselines import missing_notes
    table = metrics_table(args.model, eval_json, before, after, args.iters or config_iters, filters, begin.kind,
                          network_seconds, tuple(missing_notes(degradation)))
    table_path = write_text(os.path.join(out, "metrics.md"), table)
    write_text(os.path.join(out, "scores.json"), json.dumps(
        scores_record(args.model, degradation, before, after, network_seconds, filters), indent=1) + "\n")

    print("\n" + table)
    print(f"restored images: {restored_dir}/ ; side-by-side pictures: {os.path.join(eval_dir, 'images')}/")
    print(f"metrics table: {table_path} ; total {time.time() - start:.0f} s")
    return 0
