"""Tiled inference: restore an image too large for memory as overlapping tiles, blended back together.

Two ways to place and blend tiles:

* ``smooth`` (default): tiles every ``tile - overlap`` pixels, the last one snapped to the border; where two
  tiles overlap, their outputs are blended with raised-cosine ramps (sin^2 / cos^2, which sum to one), so each
  tile's borders, where the network saw padding instead of context, get little weight and no seam shows.
* ``mean``: HINet's official test-time grid (basicsr ``ImageRestorationModel.grids``): ``n = ceil(H / tile)``
  tiles per axis, step ``ceil((H - tile) / (n - 1))``, the last tile snapped to the border; overlapping outputs
  are averaged with equal weight. ppir's evaluation reuses this for HINet's GoPro/Rain protocol.

The backend only ever sees tile-sized inputs (``batch`` tiles at a time), so its memory grows with the tile
size, not the image size; the output and weight accumulators are image-sized float32 arrays.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator

import numpy as np

from .pipeline import pad_to_size, padded_size

BLENDS = ("smooth", "mean")


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets along one axis for ``smooth`` tiling: every ``tile - overlap``, last tile at the border."""
    if tile >= size:
        return [0]
    if not 0 <= overlap < tile:
        raise ValueError(f"tile overlap must be in [0, tile), got overlap {overlap} for tile {tile}")
    step = tile - overlap
    starts = list(range(0, size - tile, step))
    starts.append(size - tile)
    return starts


def grid_starts(size: int, tile: int) -> list[int]:
    """Start offsets along one axis in HINet's official grid (``mean`` blend).

    n = ceil(size / tile) tiles, step = ceil((size - tile) / (n - 1)) (``tile`` when n == 1), a tile that would
    reach the border is snapped to ``size - tile`` and ends the axis. Written like upstream's loop."""
    if tile >= size:
        return [0]
    n = (size - 1) // tile + 1
    step = tile if n == 1 else math.ceil((size - tile) / (n - 1) - 1e-8)
    starts, pos, last = [], 0, False
    while pos < size and not last:
        if pos + tile >= size:
            pos, last = size - tile, True
        starts.append(pos)
        pos += step
    return starts


def _ramp(length: int) -> np.ndarray:
    """Rising raised-cosine ramp over `length` pixels, strictly inside (0, 1); ramp + ramp[::-1] == 1."""
    t = (np.arange(length, dtype=np.float64) + 0.5) / length
    return np.sin(0.5 * np.pi * t) ** 2


def axis_weights(starts: list[int], index: int, tile: int) -> np.ndarray:
    """1-D blending weights of tile `index` along an axis: 1 inside, ramps over the overlaps with neighbours."""
    w = np.ones(tile, dtype=np.float64)
    start = starts[index]
    if index > 0:
        left = starts[index - 1] + tile - start  # overlap with the previous tile
        if left > 0:
            w[:left] *= _ramp(left)
    if index + 1 < len(starts):
        right = start + tile - starts[index + 1]  # overlap with the next tile
        if right > 0:
            w[tile - right:] *= _ramp(right)[::-1]
    return w


def tile_shape(height: int, width: int, tile, multiple: int = 1, min_size: int = 0,
               fixed: bool = False) -> tuple[int, int]:
    """The tile size actually used for an image: `tile` (an int or (h, w)), shrunk for a small image unless
    `fixed` (a fixed-shape program needs exactly `tile`)."""
    th, tw = (tile, tile) if isinstance(tile, int) else tuple(tile)
    if fixed:
        return int(th), int(tw)
    return (min(int(th), padded_size(height, multiple, min_size)),
            min(int(tw), padded_size(width, multiple, min_size)))


def check_tile(tile, overlap: int, multiple: int, min_size: int, blend: str = "smooth") -> None:
    """ValueError with a user-facing message when a tile size cannot be fed to the network."""
    sizes = (tile, tile) if isinstance(tile, int) else tuple(tile)
    for t in sizes:
        if t % multiple or t < min_size:
            good = padded_size(t, multiple, min_size)
            raise ValueError(f"tile size {t} does not fit the network, which needs multiples of {multiple} and at "
                             f"least {min_size} (try {good})")
    if blend not in BLENDS:
        raise ValueError(f"tile blend must be one of {', '.join(BLENDS)}, got {blend!r}")
    if blend == "smooth" and not 0 <= overlap < min(sizes):
        raise ValueError(f"tile overlap must be at least 0 and smaller than the tile ({min(sizes)}), got {overlap}")


def _batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def run_tiled(run: Callable[[np.ndarray], np.ndarray], x: np.ndarray, tile, overlap: int = 32,
              blend: str = "smooth", batch_size: int = 1, multiple: int = 1, min_size: int = 0,
              fixed_batch: int | None = None, fixed_tile: bool = False) -> np.ndarray:
    """Restore a 1 x C x H x W float32 image tile by tile with `run` (N x C x th x tw -> N x C' x th x tw).

    The image is reflect-padded up to one tile where it is smaller; the result is cropped back to H x W.
    `fixed_batch` (a fixed-shape program's N) pads every call to exactly that many tiles.
    """
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"run_tiled takes one image as 1 x C x H x W, got {x.shape}")
    height, width = x.shape[2:]
    th, tw = tile_shape(height, width, tile, multiple, min_size, fixed_tile)
    xp = pad_to_size(x, th, tw)
    ph, pw = xp.shape[2:]
    rows = tile_starts(ph, th, overlap) if blend == "smooth" else grid_starts(ph, th)
    cols = tile_starts(pw, tw, overlap) if blend == "smooth" else grid_starts(pw, tw)
    jobs = [(i, j) for i in range(len(rows)) for j in range(len(cols))]
    per_call = fixed_batch or max(1, int(batch_size))

    out = acc = None
    for group in _batches(jobs, per_call):
        batch = np.stack([xp[0, :, rows[i]:rows[i] + th, cols[j]:cols[j] + tw] for i, j in group])
        if fixed_batch and len(group) < fixed_batch:  # fill a fixed-batch program with copies of the last tile
            batch = np.concatenate([batch, np.repeat(batch[-1:], fixed_batch - len(group), axis=0)])
        y = np.asarray(run(np.ascontiguousarray(batch, dtype=np.float32)))
        if y.shape[0] < len(group) or y.shape[2:] != (th, tw):
            raise ValueError(f"the network returned {y.shape} for tiles of {batch.shape}")
        if out is None:
            out = np.zeros((y.shape[1], ph, pw), np.float32)
            acc = np.zeros((ph, pw), np.float32)
        for k, (i, j) in enumerate(group):
            if blend == "smooth":
                weight = np.outer(axis_weights(rows, i, th), axis_weights(cols, j, tw)).astype(np.float32)
            else:
                weight = np.ones((th, tw), np.float32)
            r, c = rows[i], cols[j]
            out[:, r:r + th, c:c + tw] += y[k] * weight
            acc[r:r + th, c:c + tw] += weight
    out /= acc  # every pixel is covered by at least one tile with a positive weight
    return out[None, :, :height, :width]
