#!/usr/bin/env python
"""Inference latency of each network on every CPU backend, against the machine's measured peak.

  python benchmarks/bench_infer.py                       # full-size networks at the seed shapes (slow: minutes)
  python benchmarks/bench_infer.py --repeat 2 --warmup 1 # fewer timed runs
  python benchmarks/bench_infer.py --small               # tiny widths, a smoke test in seconds
  python benchmarks/bench_infer.py --configs configs/hinet_sidd_0.5x.yml --backends ort,ort_int8

Networks and shapes are those of the seed deploy docs: HINet and MIRNet at 1x3x256x256, MIMO-UNet(+) at
1x3x360x640, random weights (latency does not depend on them). Backends: dygraph (no_grad), Paddle Inference with
oneDNN on and off, ONNX Runtime fp32 and int8 (ppir.quant.quantize_int8: graph optimisation, static QDQ
quantization, percentile calibration, per channel, on two random 64x64 inputs: the calibrator holds every
activation in memory; when onnxruntime.quantization works).
Each is run `--warmup` times untimed, then the median of `--repeat` runs is reported.
MACs are counted by ppir.profiling (forward hooks on every Conv2D/Conv2DTranspose/Linear, at an exact proxy size;
the fixed resampling kernels built in forward are not layers and are left out; they are a tiny share; the same
numbers as tools/model_info.py). GFLOP/s = 2 x MACs / latency; the peak is the best
of a large float32 matmul in numpy, ONNX Runtime and Paddle, measured at the start and the end of the same run
with the same thread count.
Not part of the test suite.
"""
import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # this checkout's ppir, without pip install (common.py is beside this script)

from ppir.cli import ArgumentParser  # noqa: E402  (both spellings of every multi-word flag)

from common import cpu_name, gpu_name, measure_gpu_peak, measure_peak, median_time, set_threads  # noqa: E402

DEFAULT_CONFIGS = {  # name: (config, seed input shape)
    "hinet": ("configs/hinet_sidd_1x.yml", (1, 3, 256, 256)),
    "mirnet": ("configs/mirnet_sidd.yml", (1, 3, 256, 256)),
    "mimo_unet": ("configs/mimo_unet_gopro.yml", (1, 3, 360, 640)),
    "mimo_unetplus": ("configs/mimo_unetplus_gopro.yml", (1, 3, 360, 640)),
}
CALIB_SIDE = 64  # int8 calibration input side: the calibrator keeps every activation (OOM at 256^2 for MIRNet)
SMALL_OVERRIDES = {  # --small: the test suite's tiny widths
    "HINet": ["model.wf=8"], "MIRNet": ["model.n_feat=8", "model.n_RRG=1", "model.n_MSRB=1"],
    "MIMOUNet": ["model.num_res=1"], "MIMOUNetPlus": ["model.num_res=1"],
}
BACKENDS = ("dygraph", "auto", "pi_onednn", "pi", "ort", "ort_int8")
GPU_BACKENDS = ("dygraph", "pi_gpu", "trt_fp32", "trt_fp16")
BACKEND_LABELS = {"dygraph": "dygraph", "auto": "in-process auto (predict/eval)", "pi_onednn": "PaddleInference oneDNN",
                  "pi": "PaddleInference no-oneDNN",
                  "ort": "ONNX Runtime fp32", "ort_int8": "ONNX Runtime int8", "pi_gpu": "PaddleInference GPU",
                  "trt_fp32": "PaddleInference TensorRT fp32", "trt_fp16": "PaddleInference TensorRT fp16"}


def parse_args(argv=None):
    p = ArgumentParser(description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=__doc__.split("\n", 2)[2])
    p.add_argument("--models", default=",".join(DEFAULT_CONFIGS),
                   help="networks at their seed shapes, comma list from: " + ", ".join(DEFAULT_CONFIGS)
                        + " (HINet is the 1x SIDD config)")
    p.add_argument("--configs", nargs="+", default=None, help="other configs to time instead of --models")
    p.add_argument("--shape", default=None, help="input N,C,H,W for every config (default: the seed shapes)")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                   help="cpu (default) or gpu: GPU backends, the GPU's own matmul peak, throughput at --batch and "
                        "peak GPU memory per backend (TF32 off)")
    p.add_argument("--batch", type=int, default=1,
                   help="images per network call (throughput = batch / latency; default: %(default)s)")
    p.add_argument("--backends", default=None,
                   help="comma list from: " + ", ".join(BACKENDS) + " (cpu, default all) or "
                        + ", ".join(GPU_BACKENDS) + " (gpu, default all)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for every backend (default: %(default)s)")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per backend; the median is reported")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first (default: %(default)s)")
    p.add_argument("--small", action="store_true", help="tiny widths (HINet wf=8, MIMO num_res=1, MIRNet f8)")
    p.add_argument("--work_dir", default=None, help="where exports go (default: a temporary folder)")
    return p.parse_args(argv)


def bench_config(config, shape, args, backends, work_dir):
    import numpy as np
    import paddle

    import ppir
    from ppir.export import export_model, max_rel_diff, run_paddle2onnx
    from ppir.infer.backends import make_backend
    from ppir.infer.compile import stamp_onnx
    from ppir.engine.trainer import init_like_torch
    from ppir.profiling import auto_proxy, count_macs
    from ppir.quant import quantize_int8

    paddle.seed(0)
    name = os.path.splitext(os.path.basename(config))[0]
    cfg = ppir.load_config(os.path.join(ROOT, config))
    overrides = SMALL_OVERRIDES.get(cfg["model"]["type"], []) if args.small else []
    model = ppir.build_model(cfg, overrides)
    init_like_torch(model)  # Paddle's default init makes MIRNet's output explode; then no backend comparison means much
    model.eval()
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    t0 = time.perf_counter()
    proxy = auto_proxy(model, shape)
    macs = count_macs(model, shape, proxy)  # exact: counted at (H/proxy, W/proxy), see ppir/profiling.py
    print(f"# {name}: {ppir.count_parameters(model) / 1e6:.2f} M parameters, {macs / 1e9:.1f} GMACs at "
          f"{'x'.join(map(str, shape))} (counted at 1/{proxy} size in {time.perf_counter() - t0:.1f} s)", flush=True)
    rows, ref = [], None
    out_dir = os.path.join(work_dir, name)

    gpu = args.device == "gpu"

    def record(kind, run):
        nonlocal ref
        if gpu:
            paddle.device.cuda.synchronize()
            paddle.device.cuda.reset_max_memory_allocated()
        y = run(x)  # also the first warm-up run (outputs come back to the host: each run ends synchronised)
        seconds = median_time(lambda: run(x), args.repeat, max(0, args.warmup - 1))
        mem = paddle.device.cuda.max_memory_allocated() / 2 ** 20 if gpu else None
        if ref is None:
            ref = y
        diff = max_rel_diff(y, ref)
        gflops = 2.0 * macs / seconds / 1e9
        rows.append((name, BACKEND_LABELS[kind], seconds * 1000, gflops, mem, diff))
        print(f"  {BACKEND_LABELS[kind]:<28} {seconds * 1000:10.1f} ms  {gflops:7.1f} GFLOP/s  "
              f"{shape[0] / seconds:7.2f} img/s  rel.diff {diff:.1e}" + (f"  peak {mem:.0f} MiB" if gpu else ""),
              flush=True)

    def skip(kind, why):
        rows.append((name, BACKEND_LABELS[kind], None, None, None, why))
        print(f"  {BACKEND_LABELS[kind]:<28} n/a ({why})", flush=True)

    if "dygraph" in backends:
        record("dygraph", make_backend("dygraph", model).run)
    if "auto" in backends:  # path 1: what predict/eval/the API build from the weights, no export step
        # make_backend times the build (paid once per run) and says it, or why it fell back to dygraph
        record("auto", make_backend("auto", model, options={"threads": args.threads},
                                    notes=lambda line: print(f"  # in-process auto: {line}", flush=True)).run)
    info = None
    if any(b not in ("dygraph", "auto") for b in backends):
        info = export_model(model, out_dir)
    for kind, mkldnn in (("pi_onednn", True), ("pi", False)):
        if kind in backends:
            record(kind, make_backend("paddle", out_dir, info, {"enable_mkldnn": mkldnn, "threads": args.threads}).run)
    if "pi_gpu" in backends:
        record("pi_gpu", make_backend("paddle", out_dir, info, {"use_gpu": True}).run)
    for kind, precision in (("trt_fp32", "fp32"), ("trt_fp16", "fp16")):
        if kind in backends:
            try:
                backend = make_backend("paddle", out_dir, info,
                                       {"use_gpu": True, "use_tensorrt": True, "precision": precision})
                backend.run(x)
            except Exception as e:  # noqa: BLE001 - "where the wheel has it": report and go on
                skip(kind, f"{type(e).__name__}: {str(e).splitlines()[0][:80] if str(e) else ''}")
            else:
                record(kind, backend.run)
    onnx_path = os.path.join(out_dir, "model.onnx")
    if "ort" in backends or "ort_int8" in backends:
        run_paddle2onnx(out_dir, onnx_path)
        stamp_onnx(onnx_path, info.program_digest)  # as export-onnx does: the factory checks it is this export's
    if "ort" in backends:
        record("ort", make_backend("onnxruntime", out_dir, info, {"threads": args.threads}).run)
    if "ort_int8" in backends:
        int8_path = os.path.join(out_dir, "model_int8.onnx")
        try:
            n, c, h, w = shape
            calib = (n, c, min(h, CALIB_SIDE), min(w, CALIB_SIDE)) if info.fixed_shape is None else shape
            rng = np.random.default_rng(1)
            # ppir.quant's path (the one tools/quant_report.py uses): graph optimisation first, so the
            # weights become initializers and really are stored as int8; percentile calibration.
            quantize_int8(onnx_path, int8_path, [rng.random(calib, dtype=np.float32) for _ in range(2)])
            backend = make_backend("onnxruntime", out_dir, info,
                                   {"model_file": int8_path, "threads": args.threads, "precision": "int8"})
        except Exception as e:  # noqa: BLE001 - "when available": report and go on
            skip("ort_int8", f"{type(e).__name__}: {str(e).splitlines()[0][:80] if str(e) else ''}")
        else:
            record("ort_int8", backend.run)
    return rows, macs


def main(argv=None):
    args = parse_args(argv)
    set_threads(args.threads)
    gpu = args.device == "gpu"
    if gpu:
        os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")  # float32 means float32 (the peak too)
    import numpy as np  # noqa: F401 - after the thread variables

    import ppir  # noqa: F401 - sets up paddle quietly
    import paddle

    paddle.set_num_threads(args.threads) if hasattr(paddle, "set_num_threads") else None
    allowed = GPU_BACKENDS if gpu else BACKENDS
    backends = [b.strip() for b in (args.backends or ",".join(allowed)).split(",") if b.strip()]
    unknown = set(backends) - set(allowed)
    if unknown:
        raise SystemExit(f"error: unknown {args.device} backend(s) {', '.join(sorted(unknown))}; "
                         f"choose from {', '.join(allowed)}")
    if gpu:
        if not paddle.device.is_compiled_with_cuda() or paddle.device.cuda.device_count() < 1:
            raise SystemExit("error: --device gpu needs a CUDA build of Paddle and a GPU (requirements-gpu.txt)")
        paddle.set_device("gpu")
    if args.batch < 1:
        raise SystemExit("error: --batch must be >= 1")
    if args.configs:
        from ppir.export import parse_input_shape

        fixed = parse_input_shape(args.shape) if args.shape else None
        configs = [(c, tuple(fixed) if fixed else (args.batch, 3, 256, 256)) for c in args.configs]
    else:
        names = [m.strip() for m in args.models.split(",") if m.strip()]
        bad = set(names) - set(DEFAULT_CONFIGS)
        if bad:
            raise SystemExit(f"error: unknown model(s) {', '.join(sorted(bad))}; "
                             f"choose from {', '.join(DEFAULT_CONFIGS)}")
        configs = [(c, (args.batch,) + s[1:]) for c, s in (DEFAULT_CONFIGS[n] for n in names)]

    def peak_now():
        return measure_gpu_peak() if gpu else measure_peak(args.threads)

    first = peak_now()
    peak = max(first.values())
    print(f"# machine: {cpu_name()}, {os.cpu_count()} cores, {args.threads} threads"
          + (f"; GPU: {gpu_name()}" if gpu else ""))
    print(f"# matmul peak ({'8192^3 sgemm on the GPU' if gpu else f'2048^3 sgemm, {args.threads} threads'}): "
          + ", ".join(f"{k} {v:.1f}" for k, v in first.items()) + " GFLOP/s; "
          f"cpu cores: {os.cpu_count()}; paddle {paddle.__version__}; onnxruntime "
          f"{__import__('onnxruntime').__version__}; median of {args.repeat} after {args.warmup} warm-up", flush=True)
    work = args.work_dir or tempfile.mkdtemp(prefix="ppir_bench_")
    all_rows, all_macs = [], {}
    for config, shape in configs:
        rows, macs = bench_config(config, shape, args, backends, work)
        all_rows += rows
        all_macs[rows[0][0] if rows else config] = (macs, shape)
    last = peak_now()  # again at the end: a busy machine lowers either measurement
    print("# matmul peak at the end: " + ", ".join(f"{k} {v:.1f}" for k, v in last.items()) + " GFLOP/s")
    peak = max(peak, *last.values())

    print()
    print(f"peak = best large-matmul rate measured in this run: {peak:.1f} GFLOP/s; GFLOP/s = 2 x counted MACs / "
          f"latency; int8 can exceed the fp32 peak")
    header = ("| network | input | GMACs | backend | latency (ms) | images/s | GFLOP/s | % of peak | "
              + ("peak GPU memory (MiB) | " if gpu else "") + "rel. diff vs dygraph |")
    print(header)
    print("|" + "|".join("---" for _ in range(header.count("|") - 1)) + "|")
    for name, label, ms, gflops, mem, diff in all_rows:
        macs, shape = all_macs[name]
        shape_text = "x".join(map(str, shape))
        if ms is None:
            print(f"| {name} | {shape_text} | {macs / 1e9:.1f} | {label} | n/a | | | | " + ("| " if gpu else "")
                  + f"{diff} |")
        else:
            print(f"| {name} | {shape_text} | {macs / 1e9:.1f} | {label} | {ms:.1f} | {shape[0] * 1000 / ms:.2f} | "
                  f"{gflops:.1f} | {100 * gflops / peak:.1f}% | " + (f"{mem:.0f} | " if gpu else "") + f"{diff:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
