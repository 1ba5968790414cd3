"""What a training run reports: a tqdm bar, `train.log`, VisualDL scalars and `metrics.jsonl`.

Only rank 0 logs (the others get a disabled logger). Everything lands in the run's output_dir:

    train.log       text, appended across resumes: the config, every `log_interval` steps (loss, lr, speed,
                    ETA), every validation, warnings and the end of the run
    metrics.jsonl   one JSON object per validation: {"iter", "epoch", "time", "metrics": {...}, "input": {...},
                    "best": {"metric", "value", "iter"}, "is_best"}; a resumed run first drops the records after
                    its checkpoint (it validates those iterations again), so each iteration has one record
    vdl/            VisualDL scalars: train/loss, train/lr, val/<metric> (view: visualdl --logdir <output_dir>/vdl)

VisualDL (`visualdl==2.5.3`) is optional: if it cannot be imported, the run says so once and logs without it.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import sys
import time

from tqdm import tqdm

from ..paths import atomic_target


def _fmt_time(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    return str(datetime.timedelta(seconds=int(seconds)))


METRICS_FILE = "metrics.jsonl"


def drop_metrics_after(output_dir: str, iteration: int) -> int:
    """Remove the validation records of iterations after `iteration` from metrics.jsonl (a resumed run replays
    them); returns how many. The file is rewritten atomically (temporary file + rename), so an interruption
    leaves the old or the new file, never a mix. Lines that are not records (e.g. a line torn by a kill) are kept,
    each on its own line, so the next record is never glued to them."""
    path = os.path.join(output_dir, METRICS_FILE)
    if not os.path.isfile(path):
        return 0
    with open(path, encoding="utf-8") as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    keep = [line for line in lines if not _record_after(line, iteration)]
    if len(keep) == len(lines):
        return 0
    with atomic_target(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in keep))
        f.flush()
        os.fsync(f.fileno())
    return len(lines) - len(keep)


def _record_after(line: str, iteration: int) -> bool:
    try:
        record = json.loads(line)
    except ValueError:
        return False
    it = record.get("iter") if isinstance(record, dict) else None
    return isinstance(it, int) and it > iteration


class TrainLogger:
    """Progress bar + text log + VisualDL + metrics.jsonl for one run (a no-op when `enabled` is False)."""

    def __init__(self, output_dir: str, total_iters: int, start_iter: int = 0, log_interval: int = 20,
                 enabled: bool = True, use_visualdl: bool = True, progress: bool = True):
        self.enabled = enabled
        self.output_dir = output_dir
        self.total = int(total_iters)
        self.log_interval = max(1, int(log_interval))
        self._losses: list[float] = []
        self._t_interval = time.time()
        self._it_interval = int(start_iter)
        self._t0 = time.time()
        self._start = int(start_iter)
        self._log = None
        self.vdl = None
        self.bar = None
        if not enabled:
            return
        os.makedirs(output_dir, exist_ok=True)
        self._log = open(os.path.join(output_dir, "train.log"), "a", encoding="utf-8", buffering=1)
        if use_visualdl:
            try:
                from visualdl import LogWriter
            except Exception as e:  # ImportError, or a broken install
                self.info(f"VisualDL is not available ({type(e).__name__}: {e}); logging without it "
                          f"(pip install visualdl==2.5.3)")
            else:
                self.vdl = LogWriter(logdir=os.path.join(output_dir, "vdl"))
        self.bar = tqdm(total=self.total, initial=self._start, unit="it", dynamic_ncols=True, file=sys.stderr,
                        disable=not progress, mininterval=0.5, smoothing=0.05, desc="train")

    # ------------------------------------------------------------------ text
    def _write(self, line: str) -> None:
        if self._log is not None:
            stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
            self._log.write(f"{stamp} {line}\n")

    def info(self, msg: str) -> None:
        """A line for the console (above the bar) and train.log."""
        if not self.enabled:
            return
        if self.bar is not None and not self.bar.disable:
            self.bar.write(msg, file=sys.stderr)
        else:
            print(msg, file=sys.stderr, flush=True)
        self._write(msg)

    def error(self, msg: str) -> None:
        """The error that ends the run, for train.log only (the CLI prints it on stderr). Never raises: the
        log may be the very thing that cannot be written."""
        if not self.enabled:
            return
        try:
            self._write(f"error: {msg}")
        except (OSError, ValueError):
            pass

    # ------------------------------------------------------------------ training steps
    def step(self, iteration: int, loss: float, lr: float, epoch: float, extra: dict | None = None) -> None:
        """After step `iteration` (1-based count of steps done)."""
        if not self.enabled:
            return
        self._losses.append(loss)
        if self.bar is not None:
            self.bar.update(1)
        if iteration % self.log_interval and iteration != self.total:
            return
        now = time.time()
        steps = iteration - self._it_interval
        speed = steps / max(now - self._t_interval, 1e-9)
        mean_loss = sum(self._losses) / max(1, len(self._losses))
        eta = (self.total - iteration) / speed if speed > 0 else math.inf
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{mean_loss:.4g}", lr=f"{lr:.2e}", refresh=False)
        parts = [f"iter {iteration}/{self.total}", f"epoch {epoch:.2f}", f"loss {mean_loss:.6g}", f"lr {lr:.3e}"]
        parts += [f"{k} {v:.6g}" for k, v in (extra or {}).items()]
        parts += [f"{speed:.2f} it/s", f"eta {_fmt_time(eta)}"]
        self._write("  ".join(parts))
        if self.vdl is not None:
            self.vdl.add_scalar("train/loss", mean_loss, iteration)
            self.vdl.add_scalar("train/lr", lr, iteration)
            for k, v in (extra or {}).items():
                self.vdl.add_scalar(f"train/{k}", v, iteration)
        self._losses.clear()
        self._t_interval, self._it_interval = now, iteration

    # ------------------------------------------------------------------ validation
    def validation(self, iteration: int, epoch: float, metrics: dict, input_metrics: dict | None,
                   best: dict, is_best: bool, seconds: float, count: int) -> None:
        if not self.enabled:
            return
        shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        base = ""
        if input_metrics:
            base = "  (input: " + "  ".join(f"{k} {v:.4f}" for k, v in input_metrics.items()) + ")"
        star = "  * new best" if is_best else f"  (best {best['metric']} {best['value']:.4f} at iter {best['iter']})"
        self.info(f"val @ iter {iteration}: {shown}{base} on {count} image(s) in {seconds:.1f}s{star}")
        if self.vdl is not None:
            for k, v in metrics.items():
                self.vdl.add_scalar(f"val/{k}", v, iteration)
        record = {"iter": iteration, "epoch": round(epoch, 4), "time": time.time(), "metrics": metrics,
                  "input": input_metrics or {}, "images": count, "best": best, "is_best": is_best}
        with open(os.path.join(self.output_dir, METRICS_FILE), "a", encoding="utf-8") as f:
            f.write(json.dumps(record, allow_nan=True) + "\n")

    def elapsed(self) -> float:
        return time.time() - self._t0

    def close(self) -> None:
        """Close everything; a failing close (its folder was removed) must not hide the run's own error."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        for name in ("vdl", "_log"):
            handle = getattr(self, name)
            setattr(self, name, None)
            if handle is not None:
                try:
                    handle.close()
                except (OSError, ValueError):
                    pass
