"""The one per-image loop: read -> restore -> save -> score -> report, with the failure rules every tool shares.

Used by the deploy runners (`ppir.infer.runner`, `ppir.vacc.runner`), the quantization report (`ppir.quant`) and
the evaluator (`ppir.engine.evaluator`). What differs between them is passed in, not copied:

* the items: an iterable of `Item` (a name, a loader for the input image, optionally a loader for its ground truth
  and a file to save the result in): `file_items` for a folder of files, the evaluator's dataset samples;
* the engine that restores: `ImageRestorer` (any backend), or the VACC pipeline; it prepares an input, runs a batch
  of prepared inputs whose keys are equal (`prepare` -> `run` -> `finish`);
* the scoring function (PSNR/SSIM on 8-bit outputs, or a MetricSet with its protocol) and what is printed
  (`report`, called once per restored image).

The rules: an unreadable image or a failed inference is reported on stderr (``error: ...``) and counted in
`failures`, and the run goes on; a result that cannot be written is a failure too. An image whose ground truth
is missing, unreadable or of another size is still restored (and saved): it is named on stderr and counted in
`unscored`. With ``strict=True`` (the evaluator) every such problem raises instead.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterable, Protocol, runtime_checkable

import numpy as np

from ..data.image_io import is_image_file, read_image, write_image
from ..errors import ImageError
from ..metrics import PSNR, SSIM, SSIM_WINDOW
from .memory import check_image_file
from .pipeline import to_uint8


class NotScored(ImageError):
    """Why a restored image has no score (no ground truth, an unreadable one, another size): one line. The runners
    count it and go on; a strict run (the evaluator, the quantization report) stops on it like any ImageError."""


@dataclass
class Item:
    """One image of a run."""

    name: str                                   # shown on its line (the file's basename, a dataset name)
    source: str                                 # named in error messages (the input path)
    load: Callable[[], Any]                     # the input image; ImageError when it cannot be read
    gt: Callable[[], Any] | None = None         # its ground truth (NotScored when there is none); None: no scoring
    gt_path: str | None = None                  # named when the ground truth does not fit
    output: str | None = None                   # file the result is written to; None: not saved


@dataclass
class Timings:
    pre: list = field(default_factory=list)
    infer: list = field(default_factory=list)
    post: list = field(default_factory=list)

    def add(self, pre: float, infer: float, post: float) -> None:
        self.pre.append(pre)
        self.infer.append(infer)
        self.post.append(post)


@dataclass
class RunSummary:
    done: int = 0  # restored (and saved, when there is a file to save to)
    failures: int = 0  # images that could not be read, restored or saved
    unscored: list = field(default_factory=list)  # names restored but without a score
    scores: list = field(default_factory=list)  # one dict per scored image
    timings: Timings = field(default_factory=Timings)
    total_s: float = 0.0
    shapes: set = field(default_factory=set)

    @property
    def problems(self) -> int:
        return self.failures + len(self.unscored)

    def values(self, key: str) -> list:
        return [s[key] for s in self.scores if key in s]

    @property
    def psnr(self) -> list:
        return self.values("psnr")

    @property
    def ssim(self) -> list:  # nan where the image is smaller than the SSIM window
        return self.values("ssim")


def print_error(msg: str) -> None:
    sys.stdout.flush()
    print(f"error: {msg}", file=sys.stderr, flush=True)


def print_note(msg: str) -> None:
    sys.stdout.flush()
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ the loop
@runtime_checkable
class RestoreEngine(Protocol):
    """What `restore_items` restores with: `ImageRestorer` (any backend) and the VACC pipeline satisfy it."""

    images_per_call: int  # at most this many prepared inputs of equal key go to one `run`

    def prepare(self, img: np.ndarray, name: str | None = None) -> tuple[Any, Hashable | None]:
        """(the network's input for `img`, its batch key: inputs with equal keys may share a call; None never
        shares). ImageError / ValueError for an image it cannot take."""

    def run(self, prepared: list, key: Hashable | None) -> list:
        """The network's outputs for `prepared` (inputs of one key), in order."""

    def finish(self, y: Any, img: np.ndarray) -> np.ndarray:
        """The restored image (what is saved and scored) from one output and the image it came from."""


def restore_items(engine: RestoreEngine, items: Iterable[Item], score: Callable | None = None,
                  report: Callable | None = None, strict: bool = False, repeat: int = 1,
                  errors: Callable[[str], object] = print_error) -> RunSummary:
    """Restore every item with `engine`, up to `engine.images_per_call` of equal batch key per network call.

    `score(item, restored, gt) -> dict` (may raise NotScored); `report(item, restored, scores or None, saved)`
    after each restored image; `repeat` > 1 runs each network call that many times and keeps the fastest (the
    quantization report's latency). Returns the counts, scores and timings (read + prepare, network, finish)."""
    summary = RunSummary()
    chunk_size = max(1, int(engine.images_per_call))
    t_start = time.perf_counter()
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == chunk_size:
            _restore_chunk(engine, chunk, summary, score, report, strict, repeat, errors)
            chunk = []
    if chunk:
        _restore_chunk(engine, chunk, summary, score, report, strict, repeat, errors)
    summary.total_s = time.perf_counter() - t_start
    return summary


def _restore_chunk(engine, chunk, summary, score, report, strict, repeat, errors) -> None:
    loaded = []  # (item, image, prepared input, batch key, read+prepare seconds)
    for item in chunk:
        t0 = time.perf_counter()
        try:
            img = item.load()
            prepared, key = engine.prepare(img, item.source)
        except (ImageError, ValueError) as e:
            if strict:
                raise
            summary.failures += 1
            errors(str(e) if isinstance(e, ImageError) else f"{item.source}: {e}")
            continue
        loaded.append((item, img, prepared, key, time.perf_counter() - t0))
    groups: dict = {}  # equal keys share one network call; a None key never shares
    for k, entry in enumerate(loaded):
        groups.setdefault(("one", k) if entry[3] is None else ("key", entry[3]), []).append(entry)
    for entries in groups.values():
        key = entries[0][3]
        try:
            best = float("inf")
            for _run in range(max(1, int(repeat))):
                t0 = time.perf_counter()
                outputs = engine.run([e[2] for e in entries], key)
                best = min(best, time.perf_counter() - t0)
        except Exception as e:  # noqa: BLE001 - one image failing (memory, backend) must not stop the run
            if strict:
                raise
            summary.failures += len(entries)
            why = (str(e).strip().splitlines() or [""])[0][:300]
            for entry in entries:
                errors(f"{entry[0].source}: inference failed ({type(e).__name__}: {why})")
            continue
        infer_each = best / len(entries)
        for (item, img, _prepared, _key, pre_s), y in zip(entries, outputs):
            t1 = time.perf_counter()
            restored = engine.finish(y, img)
            summary.timings.add(pre_s, infer_each, time.perf_counter() - t1)
            summary.shapes.add(tuple(img.shape[:2]))
            _deliver(item, restored, summary, score, report, strict, errors)


def _deliver(item, restored, summary, score, report, strict, errors) -> None:
    """Save, score, report one restored image."""
    if item.output:
        try:
            write_image(item.output, restored)
        except (OSError, ImageError) as e:
            if strict:
                raise
            summary.failures += 1
            errors(f"{item.output}: cannot write: {getattr(e, 'strerror', None) or e}")
            return
    summary.done += 1
    scores = None
    if item.gt is not None and score is not None:
        try:
            scores = score(item, restored, item.gt())
        except NotScored as e:
            if strict:
                raise
            summary.unscored.append(item.name)
            errors(f"{item.source}: not scored: {e}")
        else:
            summary.scores.append(scores)
    if report is not None:
        report(item, restored, scores, item.output)


# --------------------------------------------------------------------------------------- file-based runs
def list_images(path: str) -> list[str]:
    """The image files of a folder (sorted), or the one file given; ImageError when there are none."""
    if os.path.isdir(path):
        files = sorted(os.path.join(path, n) for n in os.listdir(path) if is_image_file(n))
        if not files:
            raise ImageError(f"{path}: no image files in this folder")
        return files
    if not os.path.exists(path):
        raise ImageError(f"{path}: no such file or folder")
    return [path]


def find_gt(gt_dir: str | None, image_path: str) -> str | None:
    """The ground truth for an image: a file given directly, the same name in gt_dir, or the same stem."""
    if not gt_dir:
        return None
    if os.path.isfile(gt_dir):
        return gt_dir
    name = os.path.basename(image_path)
    same = os.path.join(gt_dir, name)
    if os.path.isfile(same):
        return same
    stem = os.path.splitext(name)[0]
    for other in sorted(os.listdir(gt_dir)) if os.path.isdir(gt_dir) else []:
        if os.path.splitext(other)[0] == stem and is_image_file(other):
            return os.path.join(gt_dir, other)
    return None


def file_items(files: list[str], gt_dir: str | None = None, save_dir: str | None = None,
               names: dict | None = None, read: Callable[[str], Any] = read_image,
               read_gt: Callable[[str], Any] | None = None, max_memory: int = 0) -> list[Item]:
    """Items for input files: read with `read`, saved as `<save_dir>/<names[path]>`, ground truth looked up in
    `gt_dir` (`find_gt`) and read with `read_gt` (default: `read_image` then 8 bits, what runners score on).
    `max_memory` (bytes, 0: none): every file is judged by its header against it before it is decoded."""
    read_gt = read_gt or (lambda p: to_uint8(read_image(p)))
    if max_memory:
        read, read_gt = _judged(read, max_memory), _judged(read_gt, max_memory)
    items = []
    for path in files:
        gt_path = find_gt(gt_dir, path) if gt_dir else None
        items.append(Item(
            name=os.path.basename(path), source=path, load=lambda p=path: read(p),
            gt=_gt_loader(gt_dir, gt_path, read_gt) if gt_dir else None, gt_path=gt_path,
            output=os.path.join(save_dir, names[path]) if save_dir and names else None))
    return items


def _judged(read: Callable[[str], Any], budget: int) -> Callable[[str], Any]:
    """`read` preceded by the header check against the memory budget (`memory.check_image_file`)."""
    def judged_read(path):
        check_image_file(path, budget)
        return read(path)
    return judged_read


def _gt_loader(gt_dir, gt_path, read_gt):
    def load():
        if gt_path is None:
            raise NotScored(f"no ground truth named like it in {gt_dir}")
        try:
            return read_gt(gt_path)
        except ImageError as e:
            raise NotScored(f"ground truth unreadable: {e}") from None
    return load


# ------------------------------------------------------------------------------------------------ scores
def metric_functions():
    """PSNR/SSIM of an 8-bit restored image against its 8-bit ground truth: ppir.metrics' PSNR() and SSIM()
    defaults (peak 1 after /255, 2-D Gaussian SSIM). An image smaller than the SSIM window has no SSIM (nan):
    its line and the average line say so."""
    psnr_metric, ssim_metric = PSNR(), SSIM()

    def ssim(out, gt):
        if min(out.shape[:2]) < SSIM_WINDOW:  # SSIM's valid region is empty: no score, said on the line
            return float("nan")
        return float(ssim_metric(out, gt))

    return (lambda out, gt: float(psnr_metric(out, gt))), ssim


def scorer(metrics: Callable[[Item, np.ndarray, np.ndarray], dict]) -> Callable:
    """The one `score(item, restored, gt)` every tool gives `restore_items`: NotScored (one line) when the sizes
    differ, else `metrics(item, restored, gt)` (a dict of scores)."""
    def score(item, restored, gt):
        if gt.shape != restored.shape:
            raise NotScored(f"ground truth {item.gt_path or item.name} is {gt.shape[1]}x{gt.shape[0]}, the image "
                            f"{restored.shape[1]}x{restored.shape[0]}")
        return metrics(item, restored, gt)

    return score


def pixel_scores():
    """score(item, restored, gt) -> {"psnr", "ssim"} on 8-bit images (`scorer`)."""
    psnr_fn, ssim_fn = metric_functions()
    return scorer(lambda item, restored, gt: {"psnr": psnr_fn(restored, gt), "ssim": ssim_fn(restored, gt)})


def score_text(scores: dict) -> str:
    """'psnr: x, ssim: y' (ssim 'n/a, note: ...' for an image smaller than the SSIM window)."""
    s = scores["ssim"]
    ssim = f"{s:.4f}" if not np.isnan(s) else f"n/a, note: smaller than SSIM's {SSIM_WINDOW}x{SSIM_WINDOW} window"
    return f"psnr: {scores['psnr']:.4f}, ssim: {ssim}"


def average_line(summary: RunSummary) -> str:
    """'avg psnr: x, avg ssim: y'; when some images have no SSIM, ', ssim over: k of n image(s)' says so."""
    all_ssim = summary.ssim
    ssims = [v for v in all_ssim if not np.isnan(v)]
    line = f"avg psnr: {np.mean(summary.psnr):.4f}, avg ssim: " + (f"{np.mean(ssims):.4f}" if ssims else "n/a")
    if len(ssims) < len(all_ssim):
        line += f", ssim over: {len(ssims)} of {len(all_ssim)} image(s)"
    return line


def final_line(summary: RunSummary, total: int, save_dir: str | None) -> str:
    """'restored N of M image(s) into DIR', then what went wrong: failed images, images without a score."""
    line = f"restored {summary.done} of {total} image(s)" + (f" into {save_dir}" if save_dir else "")
    if summary.failures:
        line += f"; {summary.failures} failed (reported above)"
    if summary.unscored:
        shown = ", ".join(summary.unscored[:5]) + (", ..." if len(summary.unscored) > 5 else "")
        line += f"; {len(summary.unscored)} restored but not scored (no usable ground truth: {shown})"
    return line
