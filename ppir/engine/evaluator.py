"""Evaluate a network on a dataset with the configured metrics (used by validation and tools/eval.py).

Each image goes through the runners' loop (`ppir.infer.loop`) and is restored at its full size by
`ppir.infer.restorer.ImageRestorer` (on CPU by default the network compiled in-process for Paddle Inference +
oneDNN, else dygraph: `backend`): reflect-padded to the network's multiple/minimum size and
cropped back, or in tiles (`tile` > 0, smooth blending, `ppir.infer.tiling`), or in HINet's official test-time
grids (`grids`, tiles of `tile` px averaged with equal weights: its GoPro/REDS/Rain13k protocol), optionally
with the 8-transform self-ensemble. The output is clipped to [0, 1] and scored against
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
from typing import Iterator

import numpy as np
from .. import _paddle  # noqa: F401 - sets the environment paddle reads on import
import paddle
from tqdm import tqdm

from ..data.image_io import write_image
from ..errors import ConfigError
from ..infer.backends import auto_compiles
from ..infer.loop import Item, restore_items, scorer
from ..infer.restorer import ImageRestorer
from ..metrics import MetricSet
from ..paths import write_text


@dataclass
class EvalResult:
    names: list
    metrics: dict                      # metric name -> mean over images
    input_metrics: dict | None         # the same for the degraded input (score_input)
    per_image: list = field(default_factory=list)   # [{"name", <metric>: value, "input_<metric>": value}]
    count: int = 0
    seconds: float = 0.0
    saved: list = field(default_factory=list)       # image files written
    backend: str = "dygraph"                        # what restored the images (Backend.name)

    def as_dict(self) -> dict:
        return {"images": self.count, "metrics": self.metrics, "input_metrics": self.input_metrics,
                "seconds": round(self.seconds, 3), "backend": self.backend, "per_image": self.per_image}


def eval_restorer(model: paddle.nn.Layer, tile: int = 0, tile_overlap: int = 32, grids: bool = False,
                  self_ensemble: bool = False, backend: str = "auto", backend_notes=None) -> ImageRestorer:
    """The evaluation's `ImageRestorer` on `model` (put in eval mode) with the val: protocol, on `backend`
    (`ImageRestorer.for_model`: "auto" compiles the network for Paddle Inference + oneDNN on CPU; its build line
    goes to `backend_notes`, by default stderr)."""
    if grids and not tile:
        raise ConfigError("val.grids needs val.tile (the grid crop size, HINet: 256)")
    return ImageRestorer.for_model(model, backend=backend, tile=int(tile or 0), tile_overlap=int(tile_overlap),
                                   blend="mean" if grids else "smooth", self_ensemble=self_ensemble,
                                   tile_option="val.tile", output="float", backend_notes=backend_notes)


def images_to_restore(dataset, max_images: int = 0) -> int:
    """How many of `dataset`'s images an evaluation restores: all, or the first `max_images` (0 = all)."""
    return len(dataset) if not max_images else min(len(dataset), int(max_images))


# Validation during training compiles the network anew at every validation (its weights changed), a fixed cost
# (3-9 s on 2 cores for the demo networks and HINet 0.5x, 34 s for the paper-size MIRNet) that the compiled
# program earns back at 4-9x dygraph's speed only over enough work: the break-even lay between 20 and 111 GMACs
# of restoration per validation, ~300 for the paper-size MIRNet (docs/inference_speed.md, "Validation during
# training"). From this much on, "auto" validation compiles; below it, it stays on dygraph. The estimate uses
# the config and the data only, never a timing, so a resumed run validates on the same backend.
COMPILE_PAYS_GMACS = 100.0


def validation_work_gmacs(model: paddle.nn.Layer, dataset, max_images: int = 0, self_ensemble: bool = False) -> float:
    """Estimated GMACs of one validation: the network's MACs per pixel (counted on a small input) x the first
    image's pixels x the number of images (x 8 with self-ensemble). Only the first sample is read, so the
    estimate -- and the backend chosen from it -- is the same for every run and every resume of a config."""
    from ..models.common import input_channels, padded_size, size_rules
    from ..profiling import count_macs

    n = images_to_restore(dataset, max_images)
    if n == 0:
        return 0.0
    lq = dataset[0]["lq"]  # C x H x W
    multiple, min_size = size_rules(model)
    side = padded_size(64, multiple, min_size)
    per_pixel = count_macs(model, (1, input_channels(model), side, side)) / (side * side)
    return per_pixel * lq.shape[1] * lq.shape[2] * n * (8 if self_ensemble else 1) / 1e9


def validation_backend(model: paddle.nn.Layer, dataset, backend: str = "auto", max_images: int = 0,
                       self_ensemble: bool = False) -> tuple[str, str]:
    """The backend validation during training uses for `val.backend`, and a line saying why. "auto" becomes
    "auto" (compile for Paddle Inference + oneDNN, dygraph when compiling fails) on CPU when one validation is
    worth `COMPILE_PAYS_GMACS` or more, else "dygraph" (always on a GPU); the other values are kept."""
    if backend != "auto":
        return backend, f"validation on {backend} (val.backend)"
    if not auto_compiles():
        return "dygraph", "validation on dygraph (val.backend auto, on a GPU)"
    work = validation_work_gmacs(model, dataset, max_images, self_ensemble)
    if work >= COMPILE_PAYS_GMACS:
        return "auto", (f"validation compiles the network each time (val.backend auto: ~{work:.0f} GMACs per "
                        f"validation, over the {COMPILE_PAYS_GMACS:.0f} a compile pays back)")
    return "dygraph", (f"validation on dygraph (val.backend auto: ~{work:.1f} GMACs per validation, under the "
                       f"{COMPILE_PAYS_GMACS:.0f} a compile would pay back)")


def dataset_items(dataset, n: int) -> Iterator[Item]:
    """`Item`s of the shared loop for `dataset[0..n)` (HxWx3 input and ground truth), the next sample read in a
    thread while the current one is restored."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(dataset.__getitem__, 0)
        for i in range(n):
            sample = pending.result()
            if i + 1 < n:
                pending = pool.submit(dataset.__getitem__, i + 1)
            name = str(sample.get("name", i))
            lq, gt = np.transpose(sample["lq"], (1, 2, 0)), np.transpose(sample["gt"], (1, 2, 0))
            yield Item(name, name, load=lambda v=lq: v, gt=lambda v=gt: v)


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
             desc: str = "eval", backend: str = "auto", backend_notes=None) -> EvalResult:
    """Restore and score `dataset[i]` for every i (or the first `max_images`); the model is put in eval mode
    and back into its previous mode afterwards. `backend`: "auto" (the network compiled in-process for Paddle
    Inference + oneDNN on CPU, its build time on stderr; dygraph on a GPU or when compiling fails, with one note),
    "dygraph", "paddle" or "onnxruntime"; outputs agree with dygraph's within the export tolerance.

    `metrics`: a MetricSet, a list of metric objects, or the config's `metrics:` list. `save_images` > 0 writes,
    for the first N images, `<save_dir>/<name>.png` (restored) and `<save_dir>/<name>_compare.png`
    (input | output | ground truth).
    """
    mset = metrics if isinstance(metrics, MetricSet) else MetricSet(metrics)
    if not mset.names:
        raise ConfigError("no metrics configured: add a `metrics:` list (e.g. [{type: PSNR}, {type: SSIM}])")
    mset.reset()
    base = MetricSet(mset.metrics) if score_input else None
    n = images_to_restore(dataset, max_images)
    if n == 0:
        raise ConfigError(f"the evaluation dataset {type(dataset).__name__} is empty")
    if save_images and not save_dir:
        raise ConfigError("save_images needs a folder to save into")
    was_training = model.training  # the dygraph backend puts the model in eval mode; put back at the end
    try:
        restorer = eval_restorer(model, tile, tile_overlap, grids, self_ensemble, backend, backend_notes)
    except ConfigError:
        if was_training:
            model.train()
        raise
    result = EvalResult(names=mset.names, metrics={}, input_metrics=None, backend=restorer.backend.name)
    t0 = time.time()
    bar = None
    if progress:
        bar = tqdm(total=n, desc=desc, unit="img", leave=False, dynamic_ncols=True)

    score = scorer(lambda item, restored, gt: mset.update(restored, gt, key=item.name))

    def report(item, restored, scores, _saved):
        i = len(result.per_image)
        lq, gt = item.load(), item.gt()
        row = {"name": item.name, **scores}
        if base is not None:
            row.update({f"input_{k}": v for k, v in base.update(lq, gt, key=item.name).items()})
        result.per_image.append(row)
        if save_images and i < save_images:
            stem = os.path.join(save_dir, _safe_name(item.name))
            write_image(stem + ".png", restored)
            write_image(stem + "_compare.png", side_by_side(lq, restored, gt))
            result.saved += [stem + ".png", stem + "_compare.png"]
        if bar is not None:
            bar.update(1)

    items = dataset_items(dataset, n)
    try:
        restore_items(restorer, items, score=score, report=report, strict=True)
    finally:
        items.close()
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
    write_text(path, json.dumps(payload, indent=2, allow_nan=True))
