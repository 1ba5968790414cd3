"""Classical filters as baselines: what a restoration network has to beat.

For a set of (degraded, ground truth) image pairs, each filter (Gaussian blur, median, bilateral, non-local
means, all OpenCV) is run with every parameter of a small grid, and the parameter with the best mean PSNR on
those very pairs is kept. That gives each filter every advantage (an oracle choice on the test images), so a
network that beats the best of them adds something a tuned classical filter cannot.

    rows = best_filters(pairs, [PSNR(), SSIM()])     # pairs: HxWx3 RGB images (uint8, or float in [0, 1])
    print(markdown_rows(rows))

Scores use the metric objects given (ppir.metrics, with the protocol of the evaluation they sit next to), or
plain functions wrapped as NamedMetric("psnr", fn) (the quick start uses the deploy runners' functions).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import cv2
import numpy as np

from .data.image_io import to_uint8


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
    param: str  # the name of the parameter chosen
    grid: tuple  # the values tried
    apply: Callable[[np.ndarray, float], np.ndarray]  # (uint8 RGB, value) -> uint8 RGB


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

    def label(self) -> str:
        value = f"{self.value:g}"
        edge = ", at the end of its grid" if self.at_edge else ""
        return f"{self.name}, {self.param} {value} (best on these images{edge})"


def _uint8(img) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype == np.uint8:
        return img
    return to_uint8(img.astype(np.float32))


def _name(metric) -> str:
    return getattr(metric, "name", type(metric).__name__.lower())


def _mean_scores(outputs, gts, metrics) -> dict:
    return {_name(m): float(np.mean([m(o, g) for o, g in zip(outputs, gts)])) for m in metrics}


def dataset_pairs(dataset, max_images: int | None = None) -> list:
    """(degraded, gt) HxWx3 float images of a ppir dataset's first `max_images` samples (all by default)."""
    n = len(dataset) if not max_images else min(len(dataset), max_images)
    out = []
    for i in range(n):
        sample = dataset[i]
        out.append((np.transpose(sample["lq"], (1, 2, 0)), np.transpose(sample["gt"], (1, 2, 0))))
    return out


def best_filters(pairs: Sequence, metrics: Sequence, filters: Sequence[ClassicalFilter] = FILTERS,
                 select: str | None = None) -> list[BaselineResult]:
    """Each filter at its best grid value on `pairs` [(degraded, gt), ...]; chosen by the mean of the metric
    named `select` (default: the first metric, normally PSNR), then scored with every metric."""
    if not pairs:
        raise ValueError("best_filters needs at least one image pair")
    if not metrics:
        raise ValueError("best_filters needs at least one metric")
    lqs = [_uint8(lq) for lq, _ in pairs]
    gts = [_uint8(gt) for _, gt in pairs]
    chooser = metrics[0] if select is None else next(m for m in metrics if _name(m) == select)
    results = []
    for f in filters:
        best = None
        for value in f.grid:
            outs = [f.apply(lq, value) for lq in lqs]
            score = float(np.mean([chooser(o, g) for o, g in zip(outs, gts)]))
            if best is None or score > best[0]:
                best = (score, value, outs)
        _, value, outs = best
        at_edge = len(f.grid) > 1 and value in (f.grid[0], f.grid[-1])
        results.append(BaselineResult(f.name, f.param, value, _mean_scores(outs, gts, metrics), at_edge))
    return results


def best_of(results: Sequence[BaselineResult], metric: str = "psnr") -> BaselineResult:
    return max(results, key=lambda r: r.scores[metric])


def markdown_rows(results: Sequence[BaselineResult], count: int, metric_names: Sequence[str]) -> list[str]:
    """Table rows in the layout `| images | count | <metric> | ... |` the evaluation tables use."""
    rows = []
    for r in results:
        cells = [f"{r.scores[m]:.2f}" if m == "psnr" else f"{r.scores[m]:.4f}" for m in metric_names]
        rows.append(f"| {r.label()} | {count} | " + " | ".join(cells) + " |")
    return rows


def text_rows(results: Sequence[BaselineResult], metric_names: Sequence[str], label_width: int = 14,
              width: int = 10) -> list[str]:
    """Rows aligned like ppir.engine.evaluator.format_table's, one per filter, with its chosen parameter (and a
    word when that parameter ends the filter's grid)."""
    return [f"{r.name[:label_width - 1]:<{label_width}}" + "".join(f"{r.scores[m]:>{width}.4f}" for m in metric_names)
            + f"   ({r.param} {r.value:g}" + (", the end of its grid: a wider one might do better" if r.at_edge else "")
            + ")" for r in results]
