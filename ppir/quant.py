"""Reduced-precision ONNX models and their accuracy: the CPU reproduction of VastModelZOO's
fp32/fp16/int8 tables.

* fp16: ``onnxruntime.transformers.float16.convert_float_to_float16(keep_io_types=True)`` (inputs and outputs
  stay float32, so every runner feeds it unchanged). onnxconverter-common's converter writes models ONNX Runtime
  refuses to load (checked with onnxruntime 1.31) and is not used.
* int8: ONNX Runtime static quantization (``quantize_static``), QDQ format, per-channel int8 weights, uint8
  activations, **percentile** calibration (VastModelZOO's VACC build recipes' ``calibrate_mode: percentile``) on a calibration
  subset: center crops of a fixed size of the degraded images, padded like the runners pad.
  ``quant_pre_process`` fails on these graphs (incomplete symbolic shape inference), but its essential step is
  needed: paddle2onnx stores the weights as ``Constant`` nodes behind ``Identity`` nodes, which the quantizer
  would treat as activations (per-tensor uint8 with percentile-clipped ranges, fp32 storage). `optimize_model`
  runs ONNX Runtime's basic graph optimizations (constant folding, Identity removal; standard ops only) first,
  so the weights become initializers and are quantized per channel to int8 (the file shrinks ~3.4x).
* evaluation: the runners' `ImageRestorer` (padding, tiling, rounding from inference.yml) on each backend, PSNR/SSIM
  from `ppir.metrics` on the 8-bit outputs against the 8-bit ground truth, per-image network latency (median).

Used by tools/quant_report.py; the quantized files also run with ``deploy/onnxruntime/infer.py --model_file``.
"""
from __future__ import annotations

import contextlib
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

from .data.image_io import read_image
from .errors import ConfigError, DatasetError, ImageError
from .infer.backends import make_backend
from .infer.deploy_info import ONNX_FILENAME, read_deploy_info
from .infer.loop import Item, find_gt, list_images, restore_items, scorer
from .infer.pipeline import pad_to_size, padded_size, to_network_channels, to_nchw, to_uint8
from .infer.restorer import ImageRestorer
from .metrics import PSNR, SSIM

PRECISIONS = ("fp32", "fp16", "int8")
QUANT_FORMATS = ("QDQ", "QOperator")


class QuantError(ConfigError):
    """A conversion or quantization failed (one line for the command line)."""


# ---------------------------------------------------------------------------------------------- models
def convert_fp16(src: str, dst: str) -> str:
    """Write an fp16 copy of an ONNX model whose inputs and outputs stay float32."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    with tempfile.TemporaryDirectory(prefix="ppir_fp16_") as tmp, _quiet_ort_quantization():
        model = onnx.load(optimize_model(src, os.path.join(tmp, "optimized.onnx")))
    try:
        half = convert_float_to_float16(model, keep_io_types=True)
    except Exception as e:  # noqa: BLE001
        raise QuantError(f"{src}: fp16 conversion failed ({type(e).__name__}: {e})") from None
    onnx.save(half, dst)
    return dst


class _Reader:
    """CalibrationDataReader over a list of N x C x H x W float32 arrays."""

    def __init__(self, input_name: str, arrays: list):
        self.input_name, self.arrays, self.i = input_name, arrays, 0

    def get_next(self):
        if self.i >= len(self.arrays):
            return None
        self.i += 1
        return {self.input_name: np.ascontiguousarray(self.arrays[self.i - 1], np.float32)}

    def rewind(self):
        self.i = 0


@contextlib.contextmanager
def _quiet_ort_quantization():
    """ONNX Runtime's quantizer logs advice and prints progress on stdout; keep stdout for the report."""
    import onnxruntime

    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    onnxruntime.set_default_logger_severity(3)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        logger.setLevel(level)
        onnxruntime.set_default_logger_severity(2)


def optimize_model(src: str, dst: str) -> str:
    """ONNX Runtime's basic graph optimizations (standard ONNX ops only), saved: Constant weights become
    initializers and Identity chains disappear, which quantization and fp16 conversion need."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.optimized_model_filepath = dst
    opts.log_severity_level = 3
    try:
        ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001
        raise QuantError(f"{src}: ONNX Runtime cannot load the model ({type(e).__name__}: {e})") from None
    return dst


def quantize_int8(src: str, dst: str, calib_inputs: list, percentile: float = 99.999, per_channel: bool = True,
                  quant_format: str = "QDQ", input_name: str | None = None) -> str:
    """Static int8 quantization with percentile calibration on `calib_inputs` (N x C x H x W float32 arrays)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static

    if not calib_inputs:
        raise QuantError("int8 quantization needs at least one calibration image")
    if not 0 < percentile <= 100:
        raise QuantError(f"--percentile must be in (0, 100], got {percentile}")
    if quant_format not in QUANT_FORMATS:
        raise QuantError(f"quant format must be one of {', '.join(QUANT_FORMATS)}, got {quant_format!r}")
    if input_name is None:
        model = onnx.load(src, load_external_data=False)
        inits = {t.name for t in model.graph.initializer}
        input_name = [i.name for i in model.graph.input if i.name not in inits][0]

    class Reader(_Reader, CalibrationDataReader):
        pass

    tmp_dir = tempfile.mkdtemp(prefix="ppir_quant_")
    try:
        with _quiet_ort_quantization():
            src_opt = optimize_model(src, os.path.join(tmp_dir, "optimized.onnx"))
            quantize_static(src_opt, dst, Reader(input_name, calib_inputs),
                            quant_format=getattr(QuantFormat, quant_format), per_channel=per_channel,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.Percentile,
                            extra_options={"CalibPercentile": float(percentile)})
    except QuantError:
        raise
    except Exception as e:  # noqa: BLE001
        msg = (str(e).strip().splitlines() or [""])[0][:300]
        raise QuantError(f"{src}: int8 quantization failed ({type(e).__name__}: {msg})") from None
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return dst


# ------------------------------------------------------------------------------------------------ data
def find_pairs(lq_dir: str, gt_dir: str, max_images: int = 0) -> list[tuple[str, str]]:
    """(degraded, ground truth) paths matched by name, sorted; DatasetError when nothing pairs up."""
    if not os.path.isdir(lq_dir):
        raise DatasetError(f"{lq_dir}: no such folder of degraded images")
    if not os.path.isdir(gt_dir):
        raise DatasetError(f"{gt_dir}: no such folder of ground-truth images")
    try:
        files = list_images(lq_dir)
    except ImageError as e:
        raise DatasetError(str(e)) from None
    pairs, missing = [], []
    for path in files:
        gt = find_gt(gt_dir, path)
        (pairs.append((path, gt)) if gt else missing.append(os.path.basename(path)))
    if missing:
        raise DatasetError(f"{gt_dir}: no ground truth for {len(missing)} image(s), e.g. {missing[0]}")
    return pairs[:max_images] if max_images > 0 else pairs


def calibration_inputs(files: list, info, size: int = 128) -> list:
    """Center crops of `size` (rounded up to the network's multiple and minimum), reflect-padded where the image
    is smaller, as 1 x C x s x s float32 arrays: fixed-shape samples for the calibrator."""

    s = padded_size(size, info.size_multiple, info.min_size)
    if info.fixed_shape:
        s_h, s_w = info.fixed_shape[2:]
    else:
        s_h = s_w = s
    out = []
    for path in files:
        img = to_network_channels(read_image(path), info.in_channels)
        h, w = img.shape[:2]
        top, left = max(0, (h - s_h) // 2), max(0, (w - s_w) // 2)
        crop = img[top:top + s_h, left:left + s_w]
        out.append(pad_to_size(to_nchw(crop), s_h, s_w))
    return out


# ------------------------------------------------------------------------------------------ evaluation
@dataclass
class PrecisionRow:
    """One row of the quantization report: a precision's scores on file pairs, its speed and size (the model
    evaluation of a config's dataset is `ppir.engine.evaluator.evaluate`, a different result)."""

    label: str
    psnr: float = float("nan")
    ssim: float = float("nan")
    psnr_vs_fp32: float = float("nan")  # agreement of this precision's 8-bit outputs with fp32's
    latency_ms: float = float("nan")  # median per-image network time (tiles included)
    size_mb: float = float("nan")
    path: str = ""
    outputs: list = field(default_factory=list, repr=False)


def evaluate_precision(backend, info, pairs, label: str, tile: int | None = None, warmup: int = 1,
                       repeat: int = 1, reference: list | None = None, keep_outputs: bool = False) -> PrecisionRow:
    """Restore every pair's degraded image with `backend` through the runners' loop; mean PSNR/SSIM against the
    ground truth, the fastest of `repeat` network runs per image."""
    restorer = ImageRestorer(backend, info, tile)
    psnr, ssim = PSNR(), SSIM()
    if warmup and pairs:
        first = read_image(pairs[0][0])
        for _ in range(warmup):
            restorer(first)
    index = {lq: k for k, (lq, _) in enumerate(pairs)}
    outputs = []

    def scores(item, out, gt):
        row = {"psnr": psnr(out, gt), "ssim": ssim(out, gt)}
        if reference is not None:
            row["fidelity"] = psnr(out, reference[index[item.source]])
        if keep_outputs:
            outputs.append(out)
        return row

    items = [Item(os.path.basename(lq), lq, load=lambda p=lq: read_image(p),
                  gt=lambda p=gt: to_uint8(read_image(p)), gt_path=gt) for lq, gt in pairs]
    summary = restore_items(restorer, items, score=scorer(scores), strict=True, repeat=repeat)
    fidelity = summary.values("fidelity")
    return PrecisionRow(label, float(np.mean(summary.psnr)), float(np.mean(summary.ssim)),
                      float(np.mean(fidelity)) if fidelity else float("nan"),
                      1000 * float(np.median(summary.timings.infer)), outputs=outputs)


def input_baseline(pairs) -> PrecisionRow:
    """The degraded inputs scored against the ground truth: what restoration starts from."""
    psnr, ssim = PSNR(), SSIM()
    ps, ss = [], []
    for lq, gt in pairs:
        a, b = to_uint8(read_image(lq)), to_uint8(read_image(gt))
        if a.shape != b.shape:
            raise ImageError(f"{gt}: {b.shape[1]}x{b.shape[0]} does not match {lq} ({a.shape[1]}x{a.shape[0]})")
        ps.append(psnr(a, b))
        ss.append(ssim(a, b))
    return PrecisionRow("input (degraded)", float(np.mean(ps)), float(np.mean(ss)))


# ---------------------------------------------------------------------------------------------- report
@dataclass
class ReportSettings:
    model_dir: str
    lq_dir: str
    gt_dir: str
    precisions: tuple = PRECISIONS
    calib_files: list = field(default_factory=list)
    calib_size: int = 128
    percentile: float = 99.999
    quant_format: str = "QDQ"
    per_channel: bool = True
    cpu_threads: int | None = None
    tile: int | None = None
    warmup: int = 1
    repeat: int = 1
    max_images: int = 0
    save_dir: str | None = None  # where model_fp16.onnx / model_int8.onnx go (default: model_dir)


def run_report(s: ReportSettings, log=print) -> tuple[list[PrecisionRow], dict]:
    """Convert, quantize, evaluate; (rows, facts for the header)."""
    import onnxruntime

    info = read_deploy_info(s.model_dir)
    fp32_path = os.path.join(s.model_dir, ONNX_FILENAME)
    if not os.path.isfile(fp32_path):
        raise QuantError(f"{fp32_path}: no such ONNX model; convert the export first: "
                         f"python tools/export_onnx.py --model_dir {s.model_dir}")
    bad = [p for p in s.precisions if p not in PRECISIONS]
    if bad:
        raise QuantError(f"unknown precision(s) {', '.join(bad)}; choose from {', '.join(PRECISIONS)}")
    pairs = find_pairs(s.lq_dir, s.gt_dir, s.max_images)
    save_dir = s.save_dir or s.model_dir
    os.makedirs(save_dir, exist_ok=True)
    paths = {"fp32": fp32_path, "fp16": os.path.join(save_dir, "model_fp16.onnx"),
             "int8": os.path.join(save_dir, "model_int8.onnx")}
    facts = {"model": info.model_name, "arguments": (info.source or {}).get("arguments"),
             "weights": (info.source or {}).get("weights"), "images": len(pairs),
             "onnxruntime": onnxruntime.__version__,
             "cpu": platform.processor() or platform.machine(), "threads": s.cpu_threads or os.cpu_count(),
             "calib": len(s.calib_files), "calib_size": s.calib_size, "percentile": s.percentile,
             "quant_format": s.quant_format}
    if "fp16" in s.precisions:
        t0 = time.perf_counter()
        convert_fp16(fp32_path, paths["fp16"])
        log(f"fp16: wrote {paths['fp16']} ({time.perf_counter() - t0:.1f} s)")
    if "int8" in s.precisions:
        t0 = time.perf_counter()
        calib = calibration_inputs(s.calib_files, info, s.calib_size)
        quantize_int8(fp32_path, paths["int8"], calib, s.percentile, s.per_channel, s.quant_format,
                      info.input_name)
        log(f"int8: wrote {paths['int8']} (percentile {s.percentile} calibration on {len(calib)} crop(s) of "
            f"{calib[0].shape[2]}x{calib[0].shape[3]}, {time.perf_counter() - t0:.1f} s)")
    rows = [input_baseline(pairs)]
    reference = None
    for precision in [p for p in PRECISIONS if p in s.precisions]:
        backend = make_backend("onnxruntime", s.model_dir, info, {"model_file": paths[precision],
                                                                   "threads": s.cpu_threads, "check_precision": False})
        res = evaluate_precision(backend, info, pairs, precision, s.tile, s.warmup, s.repeat, reference,
                                 keep_outputs=precision == "fp32")
        if precision == "fp32":
            reference, res.outputs = res.outputs, []
        res.path, res.size_mb = paths[precision], os.path.getsize(paths[precision]) / 2 ** 20
        log(f"{precision}: psnr {res.psnr:.4f}, ssim {res.ssim:.4f}, {res.latency_ms:.1f} ms per image")
        rows.append(res)
    return rows, facts


def markdown_table(rows: list[PrecisionRow], facts: dict | None = None) -> str:
    """The report as Markdown: one row per precision (plus the degraded input), deltas against fp32."""
    fp32 = next((r for r in rows if r.label == "fp32"), None)

    def num(v, fmt):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return "–"
        if v == float("inf"):
            return "inf"
        digits = int(fmt.rstrip("f").split(".")[-1])
        return format(round(v, digits) + 0.0, fmt)  # no "-0.00"

    lines = ["| precision | PSNR (dB) | SSIM | ΔPSNR vs fp32 | ΔSSIM vs fp32 | PSNR of output vs fp32 output (dB) "
             "| latency (ms, median) | speed-up | model size (MB) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        is_model = r.label in PRECISIONS
        d_p = r.psnr - fp32.psnr if fp32 and is_model else float("nan")
        d_s = r.ssim - fp32.ssim if fp32 and is_model else float("nan")
        speed = fp32.latency_ms / r.latency_ms if fp32 and is_model and r.latency_ms > 0 else float("nan")
        lines.append(f"| {r.label} | {num(r.psnr, '.2f')} | {num(r.ssim, '.4f')} | {num(d_p, '+.2f')} | "
                     f"{num(d_s, '+.4f')} | {num(r.psnr_vs_fp32, '.2f')} | {num(r.latency_ms, '.1f')} | "
                     f"{num(speed, '.2f')}{'x' if not np.isnan(speed) else ''} | {num(r.size_mb, '.2f')} |")
    if facts:
        args = facts.get("arguments") or {}
        arg_text = ", ".join(f"{k}={v}" for k, v in args.items() if k != "type")
        lines += ["", f"{facts['model']}" + (f" ({arg_text})" if arg_text else "")
                  + (f", weights {facts['weights']}" if facts.get("weights") else "")
                  + f"; {facts['images']} image(s); ONNX Runtime {facts['onnxruntime']} on CPU, "
                  f"{facts['threads']} thread(s). int8: {facts['quant_format']} static quantization, per-channel "
                  f"weights, percentile {facts['percentile']} calibration on {facts['calib']} crop(s) of "
                  f"{facts['calib_size']}px. PSNR/SSIM (2-D, RGB) on the 8-bit outputs; latency is the network "
                  f"time per image."
                  + (f" Note: {facts['calib_note']}." if facts.get("calib_note") else "")]
    return "\n".join(lines) + "\n"
