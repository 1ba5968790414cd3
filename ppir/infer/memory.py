"""Bounded memory: restore an image in tiles when it would not fit a memory budget in one piece (auto-tiling).

The estimate, kept simple:

* **Network**: bytes per input pixel, *measured* once per run on the backend actually used: the process's
  peak resident memory (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``) is read around one call on
  a ``PROBE_SIDE`` x ``PROBE_SIDE`` input. Fully convolutional networks need memory in proportion to the
  pixels, so this scales; ``SAFETY`` x the measure covers allocator slack. Where the peak cannot be read
  (not Linux), ``FALLBACK_BYTES_PER_PIXEL`` is assumed and said so.
* **Pipeline**: the image-sized float32 arrays around the network (decoded image, network input, padding,
  tile accumulators, output, 8-bit result), about ``PIPELINE_BYTES_PER_PIXEL`` per image pixel, needed
  whether or not the image is tiled.

The budget covers this work, on top of the process's own baseline (Python, Paddle, the model: about 0.4 GB for
the runners). An image whose whole-image need exceeds the budget is restored in the largest square tile (a
multiple of the network's) that fits; if even ``smallest_tile`` does not fit, the image fails with a one-line
error.

Tiling keeps the whole-image result within 0.05 dB PSNR for networks whose outputs depend only on a local
neighbourhood (MIMO-UNet; tests/infer/test_tiling.py). Networks with image-wide statistics (their
``ModelFacts.image_wide``, which export writes into inference.yml) see only the tile, so their tiled output is
close to, but not exactly, the whole-image one; the auto-tiling note says so.
"""
from __future__ import annotations

import argparse
import ctypes
import math
import os
import re
import resource
import sys
from typing import Callable

import numpy as np

from ..data.image_header import image_size_from_header, read_header
from ..errors import ImageError
from .pipeline import padded_size

PROBE_SIDE = 128
SAFETY = 1.5
FALLBACK_BYTES_PER_PIXEL = 4096.0
MIN_BYTES_PER_PIXEL = 24.0  # a float32 RGB input and output: no network needs less (a measure of 0 is noise)
PIPELINE_BYTES_PER_PIXEL = 96  # ~8 float32 RGB copies of the image
# Default --max-memory of predict, the runners and the server (all its predictors together): with the process's
# own baseline (Python, Paddle, the model: 0.4-0.6 GB) no input makes a run pass 2 GB (issue 25; proven at a
# small budget by tests/bad_inputs/test_memory_peak.py, measured at this one by benchmarks/bench_memory_bound.py).
DEFAULT_BUDGET = 1280 << 20
DEFAULT_FRACTION = 0.5  # on a machine (or container) with less than 2 x DEFAULT_BUDGET: half its memory
TOLERANCE_NOTE = ("Tiled results stay within 0.05 dB PSNR of the whole image for networks without image-wide "
                  "statistics (MIMO-UNet); HINet (instance norm) and MIRNet (global attention) see only the "
                  "tile, so theirs differ slightly")

_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "m": 2**20, "mb": 2**20, "g": 2**30, "gb": 2**30,
          "t": 2**40, "tb": 2**40}
_peak_before_reset = 0  # ru_maxrss (bytes) before we reset the high-water mark, for the benchmark report


def parse_memory(text) -> int:
    """'8G', '512M', '1.5GB', '1000000' (bytes) or '0' (no limit) -> bytes (1 G = 2**30)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    unit = m and _UNITS.get(m.group(2).lower().replace("i", ""))
    if not m or unit is None:
        raise ValueError(f"expected a size such as 8G, 512M or 0 (no limit), got {text!r}")
    return int(float(m.group(1)) * unit)


def memory_arg(text: str) -> int:
    """`parse_memory` as an argparse type (--max-memory of predict and the runners)."""
    try:
        return parse_memory(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def format_bytes(n: float) -> str:
    if n >= 2**40:
        return f"{n / 2**40:.1f} TB"
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


def machine_memory() -> int | None:
    """Physical memory, or the cgroup (container) limit when that is smaller; None when unknown."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = None
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path, encoding="ascii") as f:
                limit = int(f.read().strip())
        except (OSError, ValueError):  # absent, or "max"
            continue
        total = min(total, limit) if total else limit
    return total


def default_budget() -> int:
    total = machine_memory()
    return min(DEFAULT_BUDGET, int(total * DEFAULT_FRACTION)) if total else DEFAULT_BUDGET


def peak_rss_bytes() -> int:
    """Peak resident memory of this process, also counting what came before a reset by `_measure_peak`."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    now = kb * 1024 if sys.platform != "darwin" else kb
    return max(now, _peak_before_reset)


def _status_bytes(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"no {field} in /proc/self/status")


def _release_free_heap() -> None:
    """Give freed malloc memory back to the OS (glibc), so that the probe's allocations show up as growth
    instead of silently reusing memory that is resident but free."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the measure may then come out low
        pass


def _measure_peak(call: Callable[[], object]) -> int | None:
    """Extra resident memory at the peak of `call()`, or None where Linux's VmHWM cannot be reset."""
    global _peak_before_reset
    _release_free_heap()
    try:
        _peak_before_reset = peak_rss_bytes()
        before = _status_bytes("VmRSS")
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")  # reset VmHWM to the current RSS
    except OSError:
        return None
    call()
    try:
        return max(0, _status_bytes("VmHWM") - before)
    except OSError:
        return None


def measure_bytes_per_pixel(run: Callable[[np.ndarray], object], channels: int, multiple: int,
                            min_size: int) -> tuple[float, bool]:
    """(bytes per input pixel x SAFETY, measured?) for `run` on N x C x H x W float32 inputs."""
    side = padded_size(PROBE_SIDE, multiple, min_size)
    x = np.random.default_rng(0).random((1, channels, side, side), dtype=np.float32)
    grew = _measure_peak(lambda: run(x))
    if grew is None:
        return FALLBACK_BYTES_PER_PIXEL, False
    return max(SAFETY * grew / (side * side), MIN_BYTES_PER_PIXEL), True


def image_file_problem(path: str, budget: int, name: str | None = None) -> str | None:
    """Why the image file `path` must not be decoded under `budget` bytes (0: no limit), judged from its size on
    disk and the width and height in its header, before a pixel is allocated; None when it may be.

    The floor is what no tiling avoids: the file's bytes plus PIPELINE_BYTES_PER_PIXEL per pixel of the image
    (decoded copy, float32 input and output, accumulators). A file whose header cannot be read is judged by its
    size alone (the decoder then has the last word)."""
    if not budget:
        return None
    name = name or path
    try:
        head, file_bytes = read_header(path)
    except OSError:
        return None  # the reader says why, in its own words
    return encoded_image_problem(name, head, file_bytes, budget)


def encoded_image_problem(name: str, head: bytes, file_bytes: int, budget: int) -> str | None:
    """`image_file_problem` for an encoded image whose first bytes are `head` and whole size `file_bytes`
    (a file, or the bytes of a request)."""
    if not budget:
        return None
    size, need = header_need(head, file_bytes, PIPELINE_BYTES_PER_PIXEL)
    if need <= budget:
        return None
    if size is None:
        return (f"{name}: the file is {format_bytes(file_bytes)}, over the memory budget of "
                f"{format_bytes(budget)} (--max-memory); not read")
    height, width = size
    return (f"{name}: its header says {width}x{height} pixels, which need at least {format_bytes(need)} "
            f"however it is tiled, over the memory budget of {format_bytes(budget)} (--max-memory); not decoded")


def header_need(head: bytes, file_bytes: int, bytes_per_pixel: int) -> tuple[tuple[int, int] | None, int]:
    """((height, width) from the header, or None when it cannot be read; the bytes decoding needs: the file plus
    `bytes_per_pixel` per pixel, the file alone when the size is unknown)."""
    size = image_size_from_header(head)
    return size, file_bytes + (bytes_per_pixel * size[0] * size[1] if size else 0)


def check_image_file(path: str, budget: int, name: str | None = None) -> None:
    """ImageError (`image_file_problem`) unless the file may be decoded under `budget`."""
    problem = image_file_problem(path, budget, name)
    if problem:
        raise ImageError(problem)


def smallest_tile(overlap: int, multiple: int, min_size: int) -> int:
    return padded_size(max(2 * overlap + multiple, 64), multiple, min_size)


class MemoryPlanner:
    """Decides, image by image, whole or tiled, for one network (`run`) under `budget` bytes (0: no limit)."""

    def __init__(self, run: Callable[[np.ndarray], object], budget: int, channels: int, multiple: int,
                 min_size: int, overlap: int, batch: int = 1, model_name: str = "", image_wide: str = ""):
        self.run, self.budget = run, int(budget)
        self.channels, self.multiple, self.min_size = channels, multiple, min_size
        self.overlap, self.batch, self.model_name = overlap, max(1, int(batch)), model_name
        self.image_wide = image_wide  # e.g. "instance norm": named in the note, tiles then differ slightly
        self._bpp: tuple[float, bool] | None = None

    def bytes_per_pixel(self) -> tuple[float, bool]:
        if self._bpp is None:  # measured lazily: runs that never need it pay nothing
            self._bpp = measure_bytes_per_pixel(self.run, self.channels, self.multiple, self.min_size)
        return self._bpp

    def need(self, height: int, width: int, tile: int = 0) -> float:
        """Estimated peak bytes for one image, whole (tile 0) or in `tile` x `tile` tiles."""
        bpp, _ = self.bytes_per_pixel()
        pipeline = PIPELINE_BYTES_PER_PIXEL * height * width
        if tile:
            return pipeline + self.batch * bpp * tile * tile
        ph, pw = padded_size(height, self.multiple, self.min_size), padded_size(width, self.multiple, self.min_size)
        return self.batch * (pipeline + bpp * ph * pw)

    def tile_for(self, height: int, width: int, name: str) -> tuple[int, str | None]:
        """(0, None) to restore whole, or (tile, the one-line note saying why); ImageError if nothing fits."""
        side = padded_size(PROBE_SIDE, self.multiple, self.min_size)
        if not self.budget or height * width <= side * side:  # tiles this small would not save anything
            return 0, None
        whole = self.need(height, width)
        if whole <= self.budget:
            return 0, None
        bpp, measured = self.bytes_per_pixel()
        room = self.budget - PIPELINE_BYTES_PER_PIXEL * height * width
        fit = int(math.sqrt(room / (self.batch * bpp))) if room > 0 else 0
        tile = fit // self.multiple * self.multiple
        low = smallest_tile(self.overlap, self.multiple, self.min_size)
        if tile < low:
            raise ImageError(f"{name}: {width}x{height} needs about {format_bytes(self.need(height, width, low))} "
                             f"even in {low}x{low} tiles, over the memory budget of {format_bytes(self.budget)} "
                             f"(raise --max-memory)")
        how = "measured" if measured else "assumed: peak memory cannot be measured here"
        caveat = (f"; {self.model_name}'s {self.image_wide} makes tiled output differ slightly"
                  if self.image_wide else "")
        note = (f"note: {name}: {width}x{height} would need about {format_bytes(whole)} in one piece "
                f"({bpp:.0f} bytes/pixel {how}), over the memory budget of {format_bytes(self.budget)} "
                f"(--max-memory): restoring in {tile}x{tile} tiles{caveat}")
        return tile, note
