"""Evaluate a network on a dataset with the configured metrics (used by validation and tools/eval.py).

Each image is restored at its full size: reflect-padded to the network's multiple/minimum size and cropped
back (`ppir.infer.pipeline`), or in tiles (`tile` > 0, smooth blending, `ppir.infer.tiling`), or in HINet's
official test-time grids (`grids`, tiles of `tile` px averaged with equal weights: its GoPro/REDS/Rain13k
protocol), optionally with the 8-transform self-ensemble. The output is clipped to [0, 1] and scored against
the ground truth with every metric (`ppir.metrics.MetricSet`, per-image mean). With `score_input` the
degraded input is scored too, as the baseline a restoration has to beat.
"""
from __future__ import annotations

import json
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import paddle

from ..data.image_io import write_image
from ..data.transforms import dihedral, dihedral_inverse
from ..errors import ConfigError
from ..infer.dygraph import run_network
from ..infer.pipeline import pad_to_multiple, postprocess
from ..infer.tiling import check_tile, run_tiled
from ..metrics import MetricSet


@dataclass
class EvalResult:
    names: list
    metrics: dict                      # metric name -> mean over images
    input_metrics: dict | None         # the same for the degraded input (score_input)
    per_image: list = field(default_factory=list)   # [{"name", <metric>: value, "input_<metric>": value}]
    count: int = 0
    seconds: float = 0.0
    saved: list = field(default_factory=list)       # image files written

    def as_dict(self) -> dict:
        return {"images": self.count, "metrics": self.metrics, "input_metrics": self.input_metrics,
                "seconds": round(self.seconds, 3), "per_image": self.per_image}


class Restorer:
    """numpy CxHxW in [0, 1] -> restored numpy HxWx3 (clipped), with the evaluation's tiling options."""

    def __init__(self, model: paddle.nn.Layer, tile: int = 0, tile_overlap: int = 32, grids: bool = False,
                 self_ensemble: bool = False):
        self.model = model
        self.multiple = int(getattr(model, "size_multiple", 1))
        self.min_size = int(getattr(model, "min_size", 0))
        self.tile, self.overlap = int(tile or 0), int(tile_overlap)
        self.blend = "mean" if grids else "smooth"
        self.self_ensemble = bool(self_ensemble)
        if grids and not self.tile:
            raise ConfigError("val.grids needs val.tile (the grid crop size, HINet: 256)")
        if self.tile:
            try:
                check_tile(self.tile, self.overlap, self.multiple, self.min_size, self.blend)
            except ValueError as e:
                raise ConfigError(f"val.tile: {e}") from None

    def _once(self, chw: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(chw[None], dtype=np.float32)
        if self.tile:
            return run_tiled(lambda t: run_network(self.model, t), x, self.tile, self.overlap, self.blend,
                             multiple=self.multiple, min_size=self.min_size)[0]
        h, w = chw.shape[1:]
        return run_network(self.model, pad_to_multiple(x, self.multiple, self.min_size))[0, :, :h, :w]

    def __call__(self, chw: np.ndarray) -> np.ndarray:
        h, w = chw.shape[1:]
        if not self.self_ensemble:
            out = self._once(chw)
        else:
            out = np.zeros_like(chw, dtype=np.float64)
            for mode in range(8):
                y = self._once(np.ascontiguousarray(dihedral(chw, mode, axes=(-2, -1))))
                out += dihedral_inverse(y, mode, axes=(-2, -1))
            out = (out / 8).astype(np.float32)
        return postprocess(out[None], h, w)


def side_by_side(*images: np.ndarray, gap: int = 4) -> np.ndarray:
    """HxWx3 images of equal height next to each other, separated by white columns."""
    h = max(im.shape[0] for im in images)
    parts = []
    for i, im in enumerate(images):
        if im.shape[0] < h:
            im = np.pad(im, ((0, h - im.shape[0]), (0, 0), (0, 0)), constant_values=1.0)
        if i:
            parts.append(np.ones((h, gap, 3), np.float32))
        parts.append(np.clip(im, 0.0, 1.0).astype(np.float32))
    return np.concatenate(parts, axis=1)


def _safe_name(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))
    return keep.strip(".") or "image"


def evaluate(model: paddle.nn.Layer, dataset, metrics, *, tile: int = 0, tile_overlap: int = 32,
             grids: bool = False, self_ensemble: bool = False, max_images: int = 0, score_input: bool = False,
             save_dir: str | None = None, save_images: int = 0, progress: bool = False,
             desc: str = "eval") -> EvalResult:
    """Restore and score `dataset[i]` for every i (or the first `max_images`); the model is put in eval mode
    and back into its previous mode afterwards.

    `metrics`: a MetricSet, a list of metric objects, or the config's `metrics:` list. `save_images` > 0 writes,
    for the first N images, `<save_dir>/<name>.png` (restored) and `<save_dir>/<name>_compare.png`
    (input | output | ground truth).
    """
    mset = metrics if isinstance(metrics, MetricSet) else MetricSet(metrics)
    if not mset.names:
        raise ConfigError("no metrics configured: add a `metrics:` list (e.g. [{type: PSNR}, {type: SSIM}])")
    mset.reset()
    base = MetricSet(mset.metrics) if score_input else None
    restorer = Restorer(model, tile, tile_overlap, grids, self_ensemble)
    n = len(dataset) if not max_images else min(len(dataset), int(max_images))
    if n == 0:
        raise ConfigError(f"the evaluation dataset {type(dataset).__name__} is empty")
    if save_images and not save_dir:
        raise ConfigError("save_images needs a folder to save into")
    was_training = model.training
    model.eval()
    result = EvalResult(names=mset.names, metrics={}, input_metrics=None)
    t0 = time.time()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, desc=desc, unit="img", leave=False, dynamic_ncols=True)
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:  # read the next image while this one runs
            pending = pool.submit(dataset.__getitem__, 0)
            for i in range(n):
                sample = pending.result()
                if i + 1 < n:
                    pending = pool.submit(dataset.__getitem__, i + 1)
                lq_chw, gt_chw = sample["lq"], sample["gt"]
                name = str(sample.get("name", i))
                restored = restorer(lq_chw)
                gt = np.transpose(gt_chw, (1, 2, 0))
                if restored.shape != gt.shape:
                    raise ConfigError(f"{name}: the network returned {restored.shape[1]}x{restored.shape[0]} "
                                      f"for a ground truth of {gt.shape[1]}x{gt.shape[0]} (WxH)")
                row = {"name": name, **mset.update(restored, gt, key=name)}
                lq = np.transpose(lq_chw, (1, 2, 0))
                if base is not None:
                    row.update({f"input_{k}": v for k, v in base.update(lq, gt, key=name).items()})
                result.per_image.append(row)
                if save_images and i < save_images:
                    stem = os.path.join(save_dir, _safe_name(name))
                    write_image(stem + ".png", restored)
                    write_image(stem + "_compare.png", side_by_side(lq, restored, gt))
                    result.saved += [stem + ".png", stem + "_compare.png"]
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        if was_training:
            model.train()
    result.metrics = mset.summary()
    result.input_metrics = base.summary() if base is not None else None
    result.count = n
    result.seconds = time.time() - t0
    return result


def format_table(result: EvalResult, title: str = "") -> str:
    """A small aligned table: one row for the input (if scored), one for the restored images."""
    names = result.names
    width = max(10, *(len(n) + 2 for n in names))
    label_w = 14
    head = f"{'':<{label_w}}" + "".join(f"{n:>{width}}" for n in names)

    def fmt(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return f"{'-':>{width}}"
        return f"{v:>{width}.4f}"

    lines = []
    if title:
        lines.append(title)
    lines.append(head)
    if result.input_metrics:
        lines.append(f"{'input':<{label_w}}" + "".join(fmt(result.input_metrics.get(n)) for n in names))
    lines.append(f"{'restored':<{label_w}}" + "".join(fmt(result.metrics.get(n)) for n in names))
    if result.input_metrics:
        gain = [result.metrics[n] - result.input_metrics[n] for n in names]
        lines.append(f"{'gain':<{label_w}}" + "".join(f"{g:>+{width}.4f}" for g in gain))
    lines.append(f"{result.count} image(s), {result.seconds:.1f} s")
    return "\n".join(lines)


def write_json(path: str, payload: dict) -> None:
    """Write a JSON file atomically."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{os.path.basename(path)}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2, allow_nan=True)
    os.replace(tmp, path)
