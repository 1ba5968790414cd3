#!/usr/bin/env python
"""Rewrite the README's quick-start numbers (README.md and README_en.md) from one default quick-start run.

The blocks between `<!-- quickstart:NAME -->` and `<!-- /quickstart:NAME -->` are generated, never edited by
hand:
  table   the quick start's metrics.md table and margin line (`python tools/quickstart.py`)
  train   an excerpt of its train.log (the same run as `python tools/train.py -c configs/demo/mirnet_synthetic.yml`:
          the demo config fine-tunes the shipped weights with a fixed seed)
  eval    its evaluation printout (`tools/eval.py ... --weights output/demo/mirnet_synthetic/best`)
  infer   its Paddle Inference lines on the test images (README section 3 writes the same images to
          data/demo_noise; section 5.1 exports and restores them)
Paths of the run's scratch folder are rewritten to the ones the README's commands use.

    python docs/update_readme_numbers.py                  # runs the default quick start (a few minutes), rewrites
    python docs/update_readme_numbers.py --run DIR        # reuses DIR, a quick start run by this script before

tests/commands/test_quickstart_beats_filters.py checks, on its own default quick-start run, that the README's
PSNR/SSIM figures in these blocks are the ones the run produces (within TOLERANCE).
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
READMES = ("README.md", "README_en.md")
BLOCKS = ("table", "train", "eval", "infer")
DEMO_OUT = "output/demo/mirnet_synthetic"
CONSOLE = "console.txt"  # the quick start's console, kept next to its outputs by this script
# How far a README figure may be from a fresh run's (the run is seeded; oneDNN's float sums may differ a little
# between CPUs): PSNR in dB, SSIM, and the loss values of the train log.
TOLERANCE = {"psnr": 0.05, "ssim": 0.002, "other": 0.002}


def _block_re(name: str):
    return re.compile(rf"(<!-- quickstart:{name} -->\n)(.*?)(<!-- /quickstart:{name} -->)", re.S)


def _fenced(text: str) -> str:
    return "```\n" + text.rstrip("\n") + "\n```\n"


def _section(console: str, number: int) -> str:
    """What the quick start printed for its step `number` (between its command line and its 'done' line)."""
    m = re.search(rf"^\[{number}/\d+\] .*?\n\$ .*?\n(.*?)^\[{number}/\d+\] done", console, re.S | re.M)
    if not m:
        raise SystemExit(f"error: the quick-start console has no step {number}")
    return m.group(1)


def blocks_from_run(out_dir: str, console: str) -> dict[str, str]:
    """The README blocks made from one quick-start run: its folder and its console text."""
    out_dir = os.path.abspath(out_dir)

    def local(text: str) -> str:  # the run's scratch paths -> the README commands' paths
        text = text.replace(os.path.join(out_dir, "train"), DEMO_OUT)
        text = text.replace(os.path.join(out_dir, "eval"), f"{DEMO_OUT}/eval")
        return re.sub(r"\S*/configs/demo/weights/", "configs/demo/weights/", text)

    with open(os.path.join(out_dir, "metrics.md"), encoding="utf-8") as f:
        table = f.read()
    rows = [ln for ln in table.splitlines() if ln.startswith("|") or ln.startswith("restored vs ")]
    table_block = "\n".join(rows[:-1] + ["", rows[-1], "", f"seconds per image timed on: {machine()}"])

    with open(os.path.join(out_dir, "train", "train.log"), encoding="utf-8") as f:
        log = f.read().splitlines()
    keep = [ln for ln in log if re.search(r" (config|loaded pretrained|val @ iter|done:) ", ln)
            or re.search(r" iter (10|50|100)/", ln)]
    train_block = local("\n".join(keep))

    ev = _section(console, 3).splitlines()
    start = next(i for i, ln in enumerate(ev) if " on datasets." in ln)
    end = next(i for i, ln in enumerate(ev) if ln.startswith("results: "))
    eval_block = local("\n".join(ln.split("\r")[-1] for ln in ev[start:end + 1]))

    inf = _section(console, 5).splitlines()
    images = sorted(ln for ln in inf if ln.startswith("image: "))
    avg = [ln for ln in inf if ln.startswith("avg psnr")]
    infer_block = "\n".join(images + avg + [f"restored {len(images)} of {len(images)} image(s) into output"])
    return {"table": table_block, "train": train_block, "eval": eval_block, "infer": infer_block}


def machine() -> str:
    """This machine's CPU model and logical CPU count (the run's timings are from here: run this script where
    the quick start ran). PPIR_MACHINE_NOTE adds a word on its load."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            name = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), name)
    except OSError:
        pass
    note = os.environ.get("PPIR_MACHINE_NOTE", "")
    return f"{name}, {os.cpu_count()} logical CPUs" + (f" ({note})" if note else "")


def readme_blocks(text: str) -> dict[str, str]:
    """The generated blocks of a README's text (name -> the fenced text between the markers)."""
    out = {}
    for name in BLOCKS:
        m = _block_re(name).search(text)
        if m:
            out[name] = m.group(2)
    return out


def rewrite(text: str, blocks: dict[str, str]) -> str:
    for name, body in blocks.items():
        pattern = _block_re(name)
        if not pattern.search(text):
            raise SystemExit(f"error: no <!-- quickstart:{name} --> block to rewrite")
        text = pattern.sub(lambda m: m.group(1) + _fenced(body) + m.group(3), text)
    return text


_VOLATILE = [
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d",          # timestamps
    r"[\d.]+ ?it/s", r"eta [\d:]+", r"in [\d.]+ ?s\b", r"[\d.]+ ?s\b", r"[\d.]+s;",
    r"\d+ image\(s\), [\d.]+ s",
    r"lr: .*$",                                     # the config line's schedule
]


def quality_numbers(block: str) -> list[tuple[str, float]]:
    """The figures of a block that a run must reproduce: (kind, value) for every PSNR/SSIM/loss number, leaving
    out times, dates, counts and the table's seconds column. kind is psnr, ssim or other."""
    found = []
    for line in block.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if len(cells) >= 5 and re.fullmatch(r"-?\d+\.\d+", cells[2]):
                found.append(("psnr", float(cells[2])))
                if cells[3] != "-":
                    found.append(("ssim", float(cells[3])))
            continue
        for pat in _VOLATILE:
            line = re.sub(pat, " ", line)
        for m in re.finditer(r"(psnr|ssim3d|ssim|loss|lr)?[:\s]*([+-]?\d+\.\d{3,})", line):
            key = (m.group(1) or "").lower()
            if key == "lr":
                continue
            value = float(m.group(2))
            if key in ("psnr", "ssim", "ssim3d"):
                kind = "psnr" if key == "psnr" else "ssim"
            elif key == "loss":
                kind = "other"
            else:  # an unlabelled column (the eval table): PSNR in dB, or SSIM below 1.5
                kind = "psnr" if abs(value) > 1.5 else "ssim"
            found.append((kind, value))
        margin = re.search(r"([+-]\d+\.\d\d) dB", line)
        if margin and line.startswith("restored vs "):
            found.append(("psnr", float(margin.group(1))))
    return found


def differences(readme_block: str, run_block: str) -> list[str]:
    """Where a README block's figures are not the run's (within TOLERANCE); empty when they agree."""
    a, b = quality_numbers(readme_block), quality_numbers(run_block)
    if [k for k, _ in a] != [k for k, _ in b]:
        return [f"the README block has {len(a)} figures, the run {len(b)}: {a} vs {b}"]
    return [f"{k}: README {x} vs run {y}" for (k, x), (_, y) in zip(a, b) if abs(x - y) > TOLERANCE[k] + 1e-9]


def run_quick_start(out_dir: str) -> str:
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "quickstart.py"), "--output", out_dir,
                           "--overwrite"],
                          cwd=REPO, text=True, stdout=subprocess.PIPE)
    sys.stdout.write(proc.stdout)
    if proc.returncode != 0:
        raise SystemExit(f"error: the quick start failed (exit {proc.returncode})")
    with open(os.path.join(out_dir, CONSOLE), "w", encoding="utf-8") as f:
        f.write(proc.stdout)
    return proc.stdout


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--run", default=None, metavar="DIR",
                   help="reuse this quick-start folder (made by this script: it holds console.txt)")
    p.add_argument("--output", default="output/readme_quickstart", metavar="DIR",
                   help="where a new run goes (default %(default)s)")
    args = p.parse_args(argv)
    if args.run:
        path = os.path.join(args.run, CONSOLE)
        if not os.path.isfile(path):
            raise SystemExit(f"error: {path}: no console.txt; run this script without --run first")
        out_dir, console = args.run, open(path, encoding="utf-8").read()
    else:
        out_dir = args.output
        console = run_quick_start(out_dir)
    blocks = blocks_from_run(out_dir, console)
    sys.path.insert(0, REPO)
    from ppir.paths import write_text
    for readme in READMES:
        path = os.path.join(REPO, readme)
        text = open(path, encoding="utf-8").read()
        new = rewrite(text, blocks)
        if new != text:
            write_text(path, new)
        print(f"{readme}: {'rewritten' if new != text else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
