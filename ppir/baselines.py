"""Classical methods as baselines: what a restoration network has to beat.

For a set of (degraded, ground truth) image pairs, each method is run with every parameter of a small grid,
and the parameter with the best mean PSNR on those very pairs is kept. That gives each method every advantage
(an oracle choice on the test images), so a network that beats the best of them adds something a tuned
classical method cannot. `methods_for(degradation)` gives the methods that fit a degradation:

* noise, rain: the OpenCV filters (Gaussian blur, median, bilateral, non-local means); for noise also BM3D,
  blind (ppir.classical; it needs the optional `bm3d` package: without it the row is left out and
  `missing_notes` says how to get it). Poisson-Gaussian noise goes through the generalised Anscombe transform.
* motion blur: unsharp masking over a (sigma, amount) grid, and Wiener and Richardson-Lucy deconvolution given
  the TRUE kernel (an oracle; pairs are then (degraded, gt, kernel) triples).

Each row also has the seconds per image of its chosen parameter, timed in the run.

    rows = best_filters(pairs, [PSNR(), SSIM()], methods_for("gaussian_noise"))   # pairs: HxWx3 RGB images
    print(markdown_rows(rows))

Scores use the metric objects given (ppir.metrics, with the protocol of the evaluation they sit next to), or
plain functions wrapped as NamedMetric("psnr", fn) (the quick start uses the deploy runners' functions).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import cv2
import numpy as np

from . import classical
from .data.image_io import to_uint8
from .engine.evaluator import images_to_restore


def _gaussian(img, sigma):
    return cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT_101)


def _median(img, k):
    return cv2.medianBlur(img, int(k))


def _bilateral(img, sigma_color):
    return cv2.bilateralFilter(img, d=9, sigmaColor=float(sigma_color), sigmaSpace=5.0)


def _nlm(img, h):
    bgr = np.ascontiguousarray(img[:, :, ::-1])
    out = cv2.fastNlMeansDenoisingColored(bgr, None, h=float(h), hColor=float(h), templateWindowSize=7,
                                          searchWindowSize=21)
    return out[:, :, ::-1]


@dataclass(frozen=True)
class ClassicalFilter:
    name: str  # what the tables call it
    param: str  # the name of the parameter chosen ("" for a method with nothing to tune)
    grid: tuple  # the values tried
    apply: Callable  # (uint8 RGB, value) -> uint8 RGB; with needs_kernel (uint8 RGB, value, kernel)
    needs_kernel: bool = False  # an oracle: it is given the true blur kernel of each pair


def value_text(value) -> str:
    """A grid value as the tables print it: 1.5, or 2/0.5 for a pair of values."""
    if isinstance(value, (tuple, list)):
        return "/".join(f"{v:g}" for v in value)
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


# The grids reach past the best value on the demos' degradations (test images chelsea + camera, seed 1), so the
# oracle choice is not cut short by the grid's end. Best values seen: Gaussian noise: sigma 1, kernel 5,
# sigmaColor 100, h 16; Poisson-Gaussian noise: 1, 5, 150, 12; rain: 3, 9, 300, 32. The whole pass takes about
# 10 s on those two images (non-local means is most of it).
FILTERS = (
    ClassicalFilter("Gaussian blur", "sigma", (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0), _gaussian),
    ClassicalFilter("median", "kernel", (3, 5, 7, 9, 11), _median),
    ClassicalFilter("bilateral (d 9, sigmaSpace 5)", "sigmaColor", (10, 20, 40, 60, 100, 150, 200, 300, 400),
                    _bilateral),
    ClassicalFilter("non-local means", "h", (3, 5, 8, 12, 16, 24, 32, 40), _nlm),
)
BM3D_GAUSSIAN = ClassicalFilter("BM3D (blind: sigma by skimage estimate_sigma)", "", (None,), classical.bm3d_blind)
BM3D_POISSON_GAUSSIAN = ClassicalFilter(
    "BM3D on the generalised Anscombe transform (blind noise fit), inverse", "", (None,),
    classical.bm3d_anscombe_blind)
DEBLUR = (
    ClassicalFilter("unsharp masking", "sigma/amount",
                    tuple((s, a) for s in (1.0, 2.0, 3.0) for a in (0.25, 0.5, 1.0, 1.5, 2.0)), classical.unsharp),
    ClassicalFilter("Wiener deconvolution, true kernel (oracle)", "balance", (0.003, 0.01, 0.03, 0.1),
                    classical.wiener_oracle, needs_kernel=True),
    ClassicalFilter("Richardson-Lucy, true kernel (oracle)", "iterations", (10, 20, 40, 80),
                    classical.richardson_lucy_oracle, needs_kernel=True),
)


def methods_for(degradation: str | None) -> tuple:
    """The classical methods that fit a degradation (SyntheticDataset's names; None or unknown: the filters).
    BM3D only when the optional `bm3d` package is importable (missing_notes says so otherwise)."""
    if degradation == "motion_blur":
        return DEBLUR
    bm3d = {"gaussian_noise": BM3D_GAUSSIAN, "poisson_gaussian_noise": BM3D_POISSON_GAUSSIAN}.get(degradation)
    return FILTERS + ((bm3d,) if bm3d and classical.bm3d_available() else ())


def missing_notes(degradation: str | None) -> list[str]:
    """One line per strong method methods_for left out, with how to get it."""
    if degradation in ("gaussian_noise", "poisson_gaussian_noise") and not classical.bm3d_available():
        return [classical.BM3D_MISSING]
    return []


@dataclass(frozen=True)
class NamedMetric:
    """A plain (output, gt) -> score function under the name its scores are kept by (a metric object has one)."""
    name: str
    fn: Callable[[np.ndarray, np.ndarray], float]

    def __call__(self, out, gt) -> float:
        return self.fn(out, gt)


@dataclass
class BaselineResult:
    name: str
    param: str
    value: float
    scores: dict  # metric name -> mean over the pairs
    at_edge: bool = False  # the best value is the grid's first or last: a wider grid might do better
    seconds: float = math.nan  # per image, the chosen parameter (decoded 8-bit image in, 8-bit image out)
    per_image: tuple = ()  # metric name -> score, for each pair in order, with the chosen parameter

    def short(self) -> str:
        """The method and its chosen parameter: "bilateral ..., sigmaColor 100", or the name alone."""
        return f"{self.name}, {self.param} {value_text(self.value)}" if self.param else self.name

    def label(self) -> str:
        if not self.param:
            return self.name
        edge = ", at the end of its grid" if self.at_edge else ""
        return f"{self.short()} (best on these images{edge})"


def _uint8(img) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype == np.uint8:
        return img
    return to_uint8(img.astype(np.float32))


def _name(metric) -> str:
    return getattr(metric, "name", type(metric).__name__.lower())


def _scores(outputs, gts, metrics) -> tuple[dict, tuple]:
    """(metric name -> mean over the pairs, per pair: metric name -> score)."""
    per = tuple({_name(m): float(m(o, g)) for m in metrics} for o, g in zip(outputs, gts))
    return {_name(m): float(np.mean([p[_name(m)] for p in per])) for m in metrics}, per


def dataset_pairs(dataset, max_images: int | None = None) -> list:
    """(degraded, gt) HxWx3 float images of a ppir dataset's first `max_images` samples (all by default);
    (degraded, gt, true kernel) for a whole-image motion-blur SyntheticDataset (the oracle rows need it)."""
    n = images_to_restore(dataset, max_images)
    kernels = getattr(dataset, "degradation", "") == "motion_blur" and not getattr(dataset, "patch_size", 0)
    out = []
    for i in range(n):
        sample = dataset[i]
        pair = (np.transpose(sample["lq"], (1, 2, 0)), np.transpose(sample["gt"], (1, 2, 0)))
        out.append(pair + (dataset.blur_kernel(i),) if kernels else pair)
    return out


def best_filters(pairs: Sequence, metrics: Sequence, filters: Sequence[ClassicalFilter] = FILTERS,
                 select: str | None = None) -> list[BaselineResult]:
    """Each filter at its best grid value on `pairs` [(degraded, gt), ...]; chosen by the mean of the metric
    named `select` (default: the first metric, normally PSNR), then scored with every metric."""
    if not pairs:
        raise ValueError("best_filters needs at least one image pair")
    if not metrics:
        raise ValueError("best_filters needs at least one metric")
    lqs = [_uint8(p[0]) for p in pairs]
    gts = [_uint8(p[1]) for p in pairs]
    kernels = [p[2] if len(p) > 2 else None for p in pairs]
    chooser = metrics[0] if select is None else next(m for m in metrics if _name(m) == select)
    results = []
    for f in filters:
        if f.needs_kernel and any(k is None for k in kernels):
            raise ValueError(f"{f.name} needs each pair's true blur kernel: pass (degraded, gt, kernel) triples")
        best = None
        for value in f.grid:
            start = time.perf_counter()
            if f.needs_kernel:
                outs = [f.apply(lq, value, k) for lq, k in zip(lqs, kernels)]
            else:
                outs = [f.apply(lq, value) for lq in lqs]
            seconds = (time.perf_counter() - start) / len(lqs)
            score = float(np.mean([chooser(o, g) for o, g in zip(outs, gts)]))
            if best is None or score > best[0]:
                best = (score, value, outs, seconds)
        _, value, outs, seconds = best
        at_edge = len(f.grid) > 1 and value in (f.grid[0], f.grid[-1])
        means, per = _scores(outs, gts, metrics)
        results.append(BaselineResult(f.name, f.param, value, means, at_edge, seconds, per))
    return results


def best_of(results: Sequence[BaselineResult], metric: str = "psnr") -> BaselineResult:
    return max(results, key=lambda r: r.scores[metric])


def markdown_rows(results: Sequence[BaselineResult], count: int, metric_names: Sequence[str]) -> list[str]:
    """Table rows in the layout `| images | count | <metric> | ... | seconds per image |`."""
    rows = []
    for r in results:
        cells = [f"{r.scores[m]:.2f}" if m == "psnr" else f"{r.scores[m]:.4f}" for m in metric_names]
        rows.append(f"| {r.label()} | {count} | " + " | ".join(cells) + f" | {r.seconds:.3g} |")
    return rows


def text_rows(results: Sequence[BaselineResult], metric_names: Sequence[str], label_width: int = 14,
              width: int = 10) -> list[str]:
    """Rows aligned like ppir.engine.evaluator.format_table's, one per filter, with its chosen parameter (and a
    word when that parameter ends the filter's grid)."""
    return [f"{r.name[:label_width - 1]:<{label_width}}" + "".join(f"{r.scores[m]:>{width}.4f}" for m in metric_names)
            + "   (" + (f"{r.param} {value_text(r.value)}, " if r.param else "") + f"{r.seconds:.3g} s/image"
            + (", the end of its grid: a wider one might do better" if r.at_edge else "") + ")" for r in results]
