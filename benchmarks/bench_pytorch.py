#!/usr/bin/env python
"""Forward latency of the official PyTorch models on this CPU, to set beside bench_infer.py's figures.

  # clones of the official repositories (not part of ppir), and PyTorch in an environment of its own
  python benchmarks/bench_pytorch.py --hinet-repo ../HINet --mirnet-repo ../MIRNet --mimo-repo ../MIMO-UNet
  python benchmarks/bench_pytorch.py --mimo-repo ../MIMO-UNet --models mimo_unet,mimo_unetplus --repeat 5

The networks and input shapes are bench_infer.py's defaults (HINet 1x and MIRNet at 1x3x256x256, MIMO-UNet(+)
at 1x3x360x640), built with the official constructors' paper arguments and PyTorch's default initialisation
(latency does not depend on the weights), run under torch.no_grad() in eval mode with `--threads` threads: the
median of `--repeat` runs after `--warmup`. Each model file is loaded from the given clone by its path, without
the repository's package imports (which pull in data loaders and image libraries). This script imports neither
ppir nor paddle, so it runs in a PyTorch-only environment; run it right before and after bench_infer.py on an
otherwise idle machine and compare within that session (docs/inference_speed.md shows such a comparison).
Not part of the test suite.
"""
import argparse
import importlib
import importlib.util
import os
import statistics
import sys
import time
import types

SHAPES = {"hinet": (1, 3, 256, 256), "mirnet": (1, 3, 256, 256), "mimo_unet": (1, 3, 360, 640),
          "mimo_unetplus": (1, 3, 360, 640)}
REPO_OPTION = {"hinet": "hinet_repo", "mirnet": "mirnet_repo", "mimo_unet": "mimo_repo", "mimo_unetplus": "mimo_repo"}


def load_file(name: str, path: str):
    if not os.path.isfile(path):
        raise SystemExit(f"error: {path}: no such file (is the clone complete?)")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def package(name: str, folder: str):
    """An empty package over `folder`: its modules import one another without running its __init__.py."""
    module = types.ModuleType(name)
    module.__path__ = [folder]
    sys.modules[name] = module
    return module


def build(name: str, repo: str):
    if name == "hinet":  # megvii-model/HINet: the 1x network (wf 64) of its SIDD config
        return load_file("official_hinet_arch", os.path.join(repo, "basicsr", "models", "archs", "hinet_arch.py")).HINet(wf=64)
    if name == "mirnet":  # swz30/MIRNet: its training defaults (n_feat 64, 3 RRGs of 2 MSRBs)
        package("utils", os.path.join(repo, "utils"))  # networks/MIRNet_model.py imports utils.antialias
        return load_file("official_mirnet_model", os.path.join(repo, "networks", "MIRNet_model.py")).MIRNet()
    package("official_mimo_models", os.path.join(repo, "models"))  # MIMOUNet.py imports .layers
    module = importlib.import_module("official_mimo_models.MIMOUNet")
    return module.MIMOUNetPlus() if name == "mimo_unetplus" else module.MIMOUNet()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] + " See the module docstring for the method.")
    p.add_argument("--hinet-repo", "--hinet_repo", dest="hinet_repo", help="clone of megvii-model/HINet")
    p.add_argument("--mirnet-repo", "--mirnet_repo", dest="mirnet_repo", help="clone of swz30/MIRNet")
    p.add_argument("--mimo-repo", "--mimo_repo", dest="mimo_repo", help="clone of chosj95/MIMO-UNet")
    p.add_argument("--models", default="", help="comma list from: " + ", ".join(SHAPES) +
                   " (default: every network whose repository is given)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (default: all cores)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per network (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first (default: %(default)s)")
    args = p.parse_args(argv)
    names = [m for m in args.models.split(",") if m] or [m for m in SHAPES if getattr(args, REPO_OPTION[m])]
    for m in names:
        if m not in SHAPES:
            p.error(f"unknown network {m!r}; choose from {', '.join(SHAPES)}")
        if not getattr(args, REPO_OPTION[m]):
            p.error(f"{m} needs --{REPO_OPTION[m].replace('_', '-')}")
    if not names:
        p.error("give at least one of --hinet-repo, --mirnet-repo, --mimo-repo")
    if args.repeat < 1 or args.warmup < 0 or args.threads < 1:
        p.error("--repeat and --threads must be at least 1, --warmup at least 0")
    try:
        import torch
    except ImportError:
        raise SystemExit("error: PyTorch is not installed in this environment (pip install torch)") from None
    torch.set_num_threads(args.threads)
    print(f"# torch {torch.__version__}, {args.threads} thread(s); median of {args.repeat} after {args.warmup} "
          f"warm-up", flush=True)
    print("| network | input | latency (ms) | runs (ms) |\n|---|---|---|---|")
    for name in names:
        model = build(name, getattr(args, REPO_OPTION[name])).eval()
        x = torch.rand(*SHAPES[name])
        times = []
        with torch.no_grad():
            for i in range(args.warmup + args.repeat):
                t0 = time.perf_counter()
                model(x)
                if i >= args.warmup:
                    times.append(time.perf_counter() - t0)
        shape = "x".join(map(str, SHAPES[name]))
        print(f"| {name} | {shape} | {statistics.median(times) * 1000:.0f} | "
              f"{', '.join(f'{t * 1000:.0f}' for t in times)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
