#!/usr/bin/env python
"""Training-step speed of each network, against the machine's float32 matmul peak measured in the same run.

  python benchmarks/bench_train.py                            # the three networks, 4 x 3x128x128, CPU
  python benchmarks/bench_train.py --small --repeat 2         # tiny widths, a smoke test in seconds
  python benchmarks/bench_train.py --device gpu --batch 16 --patch 256 --amp --amp-level O1
  python benchmarks/bench_train.py --models hinet_0.5x --paths dygraph
  python benchmarks/bench_train.py --models demo_mirnet --batch 8 --patch 64 --profile 12   # where the time goes

One step = forward, the config's training loss, backward, Adam update, on a fixed random batch (data loading
is not timed: it overlaps with compute in tools/train.py's DataLoader workers). Each path is run `--warmup`
times untimed, then the median of `--repeat` steps is reported with images/s and GFLOP/s, where the step's
FLOPs are 2 x 3 x the forward MACs (ppir.profiling; backward costs about twice the forward: the gradients
with respect to the inputs and to the weights each take one pass of the same size). The peak is the best large
float32 matmul measured at the start and at the end of the run (numpy/ONNX Runtime/Paddle on CPU with the same
threads, Paddle on the GPU with TF32 off). The training paths are listed in PATHS; each is a `train.engine`
of the trainer (default `dygraph`). Tables and what each path was checked against: docs/training_speed.md.
Not part of the test suite.
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # this checkout's ppir, without pip install (common.py is beside this script)

from ppir.cli import ArgumentParser  # noqa: E402  (both spellings of every multi-word flag)

from common import cpu_name, gpu_name, measure_gpu_peak, measure_peak, median_time, set_threads  # noqa: E402

MODELS = {  # name: config (its model and loss; the batch and patch come from the command line)
    "hinet_0.5x": "configs/hinet_sidd_0.5x.yml",
    "hinet_1x": "configs/hinet_sidd_1x.yml",
    "mirnet": "configs/mirnet_sidd.yml",
    "mimo_unet": "configs/mimo_unet_gopro.yml",
    "mimo_unetplus": "configs/mimo_unetplus_gopro.yml",
    "demo_mirnet": "configs/demo/mirnet_synthetic.yml",  # the quick start's networks
    "demo_hinet": "configs/demo/hinet_synthetic.yml",
    "demo_mimo_unet": "configs/demo/mimo_unet_synthetic.yml",
}
DEFAULT_MODELS = "hinet_0.5x,mirnet,mimo_unet"
SMALL_OVERRIDES = {  # --small: the test suite's tiny widths
    "HINet": ["model.wf=8"], "MIRNet": ["model.n_feat=8", "model.n_RRG=1", "model.n_MSRB=1"],
    "MIMOUNet": ["model.num_res=1"], "MIMOUNetPlus": ["model.num_res=1"],
}


def dygraph_step(model, loss_fn, optimizer, amp):
    """The trainer's step: eager forward and backward (with paddle.amp when asked, float16 with a loss scaler)."""
    import paddle

    scaler = paddle.amp.GradScaler(init_loss_scaling=2.0 ** 16) if amp else None

    def step(lq, gt):
        with paddle.amp.auto_cast(enable=bool(amp), level=amp or "O1", dtype="float16"):
            loss = loss_fn(model(lq), gt)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        optimizer.clear_grad()
        return float(loss)

    return step


def to_static_step(model, loss_fn, optimizer, amp):
    """The forward as a static program (paddle.jit.to_static, full graph), backward and update still eager."""
    import paddle

    return dygraph_step(paddle.jit.to_static(model, full_graph=True), loss_fn, optimizer, amp)


PATHS = {"dygraph": dygraph_step, "to_static": to_static_step}


def parse_args(argv=None):
    p = ArgumentParser(description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=__doc__.split("\n", 2)[2])
    p.add_argument("--models", default=DEFAULT_MODELS, help="comma list from: " + ", ".join(MODELS)
                   + " (default: %(default)s)")
    p.add_argument("--paths", default=",".join(PATHS), help="training paths, from: " + ", ".join(PATHS))
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="default: %(default)s")
    p.add_argument("--batch", type=int, default=4, help="samples per step (default: %(default)s)")
    p.add_argument("--patch", type=int, default=128, help="square training patch side (default: %(default)s)")
    p.add_argument("--amp", action="store_true", help="GPU only: float16 AMP (as tools/train.py --amp)")
    p.add_argument("--amp-level", choices=("O1", "O2"), default="O1", help="with --amp (default: %(default)s)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default: %(default)s)")
    p.add_argument("--repeat", type=int, default=5, help="timed steps per path; the median is reported")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (default: %(default)s)")
    p.add_argument("--small", action="store_true", help="tiny widths (HINet wf=8, MIMO num_res=1, MIRNet f8)")
    p.add_argument("--profile", type=int, default=0, metavar="K",
                   help="after timing, profile one more step of each path and print its K costliest operators "
                        "(forward ops and their backward nodes, CPU time; Paddle's profiler)")
    args = p.parse_args(argv)
    args.amp = args.amp_level if args.amp else None  # from here on: the AMP level, or None without --amp
    return args


def print_top_ops(step, lq, gt, k):
    """One step under paddle.profiler; the k operators (and backward nodes) with the most CPU time."""
    import paddle.profiler as profiler
    from paddle.profiler.profiler_statistic import StatisticData

    prof = profiler.Profiler(targets=[profiler.ProfilerTarget.CPU], on_trace_ready=lambda p: None)  # no trace file
    prof.start()
    step(lq, gt)
    prof.step()
    prof.stop()
    stats = StatisticData(prof.profiler_result.get_data(), prof.profiler_result.get_extra_info())
    items = stats.event_summary.items  # operator name -> summary (dygraph ops and Global_*GradNode entries)
    total = sum(v.cpu_time for v in items.values()) or 1.0
    top = sorted(items.items(), key=lambda kv: kv[1].cpu_time, reverse=True)[:k]
    for name, item in top:
        print(f"      {name:<44} {item.call:5d} calls {item.cpu_time / 1e6:9.1f} ms {100 * item.cpu_time / total:5.1f}%")


def bench_model(name, args, paths, gpu):
    import numpy as np
    import paddle

    import ppir
    from ppir.engine.trainer import init_like_torch
    from ppir.losses import build_loss
    from ppir.profiling import auto_proxy, count_macs

    cfg = ppir.load_config(os.path.join(ROOT, MODELS[name]))
    overrides = SMALL_OVERRIDES.get(cfg["model"]["type"], []) if args.small else []
    shape = (args.batch, 3, args.patch, args.patch)
    rows = []
    for path in paths:
        paddle.seed(0)
        model = ppir.build_model(cfg, overrides)
        init_like_torch(model)
        model.eval()
        macs = count_macs(model, shape, auto_proxy(model, shape))
        model.train()
        if args.amp == "O2":
            optimizer = paddle.optimizer.Adam(learning_rate=1e-4, parameters=model.parameters())
            model, optimizer = paddle.amp.decorate(models=model, optimizers=optimizer, level="O2")
        else:
            optimizer = paddle.optimizer.Adam(learning_rate=1e-4, parameters=model.parameters())
        step = PATHS[path](model, build_loss(dict(cfg["loss"])), optimizer, args.amp if gpu else None)
        rng = np.random.default_rng(0)
        gt = paddle.to_tensor(rng.random(shape, dtype=np.float32))
        lq = paddle.to_tensor(np.clip(gt.numpy() + rng.normal(0, 0.1, shape).astype(np.float32), 0, 1))
        if gpu:
            paddle.device.cuda.synchronize()
            paddle.device.cuda.reset_max_memory_allocated()
        seconds = median_time(lambda: step(lq, gt), args.repeat, args.warmup)  # float(loss) synchronises
        mem = paddle.device.cuda.max_memory_allocated() / 2 ** 20 if gpu else None
        gflops = 6.0 * macs / seconds / 1e9
        rows.append((name, path, macs, seconds, gflops, mem))
        print(f"  {name:<14} {path:<10} {seconds * 1000:10.1f} ms/step  {args.batch / seconds:7.2f} img/s  "
              f"{gflops:7.1f} GFLOP/s" + (f"  peak {mem:.0f} MiB" if gpu else ""), flush=True)
        if args.profile:
            print_top_ops(step, lq, gt, args.profile)
    return rows


def main(argv=None):
    args = parse_args(argv)
    set_threads(args.threads)
    gpu = args.device == "gpu"
    if gpu:
        os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")
    import ppir  # noqa: F401 - sets up paddle quietly
    import paddle

    names = [m.strip() for m in args.models.split(",") if m.strip()]
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    for what, got, known in (("model", names, MODELS), ("path", paths, PATHS)):
        bad = sorted(set(got) - set(known))
        if bad:
            raise SystemExit(f"error: unknown {what}(s) {', '.join(bad)}; choose from {', '.join(known)}")
    if gpu:
        if not paddle.device.is_compiled_with_cuda() or paddle.device.cuda.device_count() < 1:
            raise SystemExit("error: --device gpu needs a CUDA build of Paddle and a GPU (requirements-gpu.txt)")
        paddle.set_device("gpu")
    elif args.amp:
        raise SystemExit("error: --amp needs --device gpu (Paddle's AMP is a GPU feature)")
    else:
        paddle.set_device("cpu")

    def peak_now():
        return measure_gpu_peak() if gpu else measure_peak(args.threads)

    first = peak_now()
    print(f"# machine: {cpu_name()}, {os.cpu_count()} cores, {args.threads} threads"
          + (f"; GPU: {gpu_name()}" if gpu else "") + f"; paddle {paddle.__version__}")
    print("# matmul peak at the start: " + ", ".join(f"{k} {v:.1f}" for k, v in first.items()) + " GFLOP/s")
    rows = []
    for name in names:
        rows += bench_model(name, args, paths, gpu)
    last = peak_now()
    print("# matmul peak at the end: " + ", ".join(f"{k} {v:.1f}" for k, v in last.items()) + " GFLOP/s")
    peak = max(*first.values(), *last.values())
    print()
    print(f"batch {args.batch} x 3x{args.patch}x{args.patch}" + (f", AMP {args.amp} float16" if args.amp else "")
          + f"; peak = best large-matmul rate in this run: {peak:.1f} GFLOP/s; step FLOPs = 6 x forward MACs; "
          f"median of {args.repeat} steps after {args.warmup} warm-up")
    header = ("| network | path | forward GMACs | step (ms) | images/s | GFLOP/s | % of peak |"
              + (" peak GPU memory (MiB) |" if gpu else ""))
    print(header)
    print("|" + "|".join("---" for _ in range(header.count("|") - 1)) + "|")
    for name, path, macs, seconds, gflops, mem in rows:
        print(f"| {name} | {path} | {macs / 1e9:.2f} | {seconds * 1000:.1f} | {args.batch / seconds:.2f} | "
              f"{gflops:.1f} | {100 * gflops / peak:.1f}% |" + (f" {mem:.0f} |" if gpu else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
