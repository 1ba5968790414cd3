"""Batch restoration on Ray Data: ``ppir infer`` / ``infer-onnx`` / ``predict`` with ``--engine ray --workers N``.

The driver lists the images and checks the output folder exactly as the local run does (``ppir.infer.outputs``),
then hands Ray Data one row per image (index, input path, output path). ``map_batches`` runs `RestoreWorker` in an
actor pool of N: each actor builds its restorer once (the build function the command passes, the same one its
local run uses) and runs the one per-image loop, ``ppir.infer.loop.restore_items``, on its rows, so reading,
saving (atomic writes), scoring and the per-image failure rules are the local run's. The actor returns what the
loop reported, one JSON row per image; the driver prints the same lines, in input order, and merges the
summaries into one ``RunSummary`` for the same average and final lines.

Faults and reruns: Ray Data restarts a killed actor and retries its batch (``max_restarts`` /
``max_task_retries`` -1, Ray Data's default for actor pools). A worker never restores an image whose output
already exists (an output appears only complete: writes are atomic), so a retried batch and a rerun of the
whole command skip finished images; their result is read back from the output file for the report and scores.
Paths are made absolute in the driver: workers run in other folders (and on other machines, where inputs,
outputs and the model must be at the same paths: docs/scale_out.md).
"""
from __future__ import annotations

import json
import os
import time
from typing import Callable

import numpy as np

from ..data.image_io import read_image
from ..errors import ConfigError, ImageError
from ..infer.loop import Item, RunSummary, file_items, pixel_scores, restore_items
from ..infer.pipeline import to_uint8
from ..paths import sweep_stale_temps
from .cluster import cause_of, connect



class KeptOutputs:
    """The loop's engine for images restored by an earlier attempt: the "restored" image is the output file as
    saved, so the report and the scores are those of that file."""

    images_per_call = 1

    def __init__(self, output: str):
        self.output = output

    def prepare(self, img, name=None):
        return img, None

    def run(self, prepared, key):
        return prepared

    def finish(self, y, img):
        return to_uint8(y) if self.output == "uint8" else y


class RestoreWorker:
    """One actor of the pool: `build(*build_args)` -> an ImageRestorer, once; then the loop over each batch."""

    def __init__(self, build: Callable, build_args: tuple, gt_dir: str | None):
        self.restorer = build(*build_args)
        self.gt_dir = gt_dir
        self.score = pixel_scores() if gt_dir else None

    def __call__(self, batch: dict) -> dict:
        rows = [dict(index=int(i), path=str(p), shown=str(s), output=str(o), keep=bool(k)) for i, p, s, o, k in
                zip(batch["index"], batch["path"], batch["shown"], batch["output"], batch["keep"])]
        by_shown = {r["shown"]: r for r in rows}
        results = {r["index"]: {"index": r["index"], "done": False} for r in rows}
        errors: list[str] = []

        def report(item, restored, scores, saved):
            results[by_shown[item.source]["index"]].update(done=True, scores=scores)

        kept = [r for r in rows if r["keep"] and r["output"] and os.path.isfile(r["output"])]
        fresh = [r for r in rows if r not in kept]
        summaries = []
        if kept:
            outputs = {r["path"]: r["output"] for r in kept}
            items = self._items(kept, read=lambda p: read_image(outputs[p]))
            summaries.append(restore_items(KeptOutputs(self.restorer.output), items, self.score, report,
                                           errors=errors.append))
        if fresh:
            items = self._items(fresh)
            for item, r in zip(items, fresh):
                item.output = r["output"] or None
            summaries.append(restore_items(self.restorer, items, self.score, report, errors=errors.append))
        first = results[rows[0]["index"]]
        first.update(errors=errors, kept=len(kept), failures=sum(s.failures for s in summaries),
                     unscored=[n for s in summaries for n in s.unscored],
                     timings=[list(t) for s in summaries for t in zip(s.timings.pre, s.timings.infer,
                                                                      s.timings.post)],
                     shapes=[list(sh) for s in summaries for sh in s.shapes])
        return {"result": np.array([json.dumps(results[r["index"]]) for r in rows], dtype=object)}

    def _items(self, rows: list[dict], read: Callable = read_image) -> list[Item]:
        """The loop's items for `rows`, read from their absolute paths but named (in errors, in the report) by the
        path the user gave, as in a local run."""
        shown = {r["path"]: r["shown"] for r in rows}

        def read_as_shown(path):
            try:
                return read(path)
            except ImageError as e:
                raise ImageError(str(e).replace(path, shown[path])) from None

        items = file_items(list(shown), self.gt_dir, read=read_as_shown,
                           max_memory=getattr(self.restorer, "max_memory", 0))  # headers judged, as locally
        for item, r in zip(items, rows):
            item.source = r["shown"]
        return items


def restore_on_ray(build: Callable, build_args: tuple, files: list[str], names: dict | None, save_dir: str | None,
                   gt_dir: str | None, *, workers: int, address: str | None, images_per_batch: int = 1,
                   inputs: list[str] = (), num_cpus: float = 1, num_gpus: float = 0,
                   report: Callable | None = None, errors: Callable[[str], object] = print,
                   notes: Callable[[str], object] = print) -> RunSummary:
    """Restore `files` into `save_dir` (names from `names`) on an actor pool of `workers`; `report(item, None,
    scores, saved)` and `errors(msg)` as the loop's, in input order. An existing output is kept (not restored
    again) unless it is one of `inputs` (an --overwrite run writes over its inputs)."""
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    ray = connect(address)
    from ray.data import ActorPoolStrategy, DataContext

    t0 = time.perf_counter()
    real_inputs = {os.path.realpath(p) for p in inputs}
    rows = []
    for i, path in enumerate(files):
        out = os.path.abspath(os.path.join(save_dir, names[path])) if save_dir and names else ""
        rows.append({"index": i, "path": os.path.abspath(path), "shown": path, "output": out,
                     "keep": bool(out) and os.path.realpath(out) not in real_inputs})
    context = DataContext.get_current()
    context.execution_options.preserve_order = True  # lines in input order, as the local run prints them
    dataset = ray.data.from_items(rows, override_num_blocks=max(1, len(rows) // max(1, images_per_batch)))
    restored = dataset.map_batches(
        RestoreWorker, fn_constructor_args=(build, build_args, os.path.abspath(gt_dir) if gt_dir else None),
        batch_size=max(1, images_per_batch), batch_format="numpy", compute=ActorPoolStrategy(size=workers),
        num_cpus=num_cpus, num_gpus=num_gpus or None)
    summary, kept = RunSummary(), 0
    try:
        for row in restored.iter_rows():
            kept += _merge(json.loads(row["result"]), files, names, save_dir, summary, report, errors)
    except Exception as e:  # noqa: BLE001 - Ray wraps a worker's start-up error (bad model) in its own
        raise ConfigError(f"the Ray job failed: {cause_of(e)}") from None
    if save_dir:
        sweep_stale_temps(save_dir)  # temporaries of a worker killed while it wrote
    summary.total_s = time.perf_counter() - t0
    if kept:
        notes(f"note: {kept} image(s) already had a complete output in {save_dir} and were not restored again "
              f"(--engine ray resumes; delete those files to restore them again)")
    return summary


def _merge(result: dict, files, names, save_dir, summary: RunSummary, report, errors) -> int:
    """Add one image's result to `summary`, print its line / errors; returns the count of kept outputs."""
    for message in result.get("errors", ()):
        errors(message)
    summary.failures += result.get("failures", 0)
    summary.unscored += result.get("unscored", [])
    for pre, infer, post in result.get("timings", ()):
        summary.timings.add(pre, infer, post)
    summary.shapes.update(tuple(s) for s in result.get("shapes", ()))
    if result["done"]:
        summary.done += 1
        path = files[result["index"]]
        saved = os.path.join(save_dir, names[path]) if save_dir and names else None
        scores = result.get("scores")
        if scores is not None:
            summary.scores.append(scores)
        if report is not None:
            report(Item(name=os.path.basename(path), source=path, load=lambda: None, output=saved), None, scores,
                   saved)
    return result.get("kept", 0)
