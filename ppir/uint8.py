"""The one home of 8-bit conversion: float images to uint8 with a rounding mode, and the 8-bit levels the
metrics can score on. numpy only, so every reader, writer, runner and metric can share it.

Precision: the arithmetic runs in float64 for float64 input (the classical baselines' filters) and in float32
for everything else (the networks' outputs, `read_image`'s images), so each caller gets the bits it always had.
"""
from __future__ import annotations

import numpy as np

ROUNDINGS = ("nearest", "half_up")


def to_uint8(img: np.ndarray, rounding: str = "nearest") -> np.ndarray:
    """Float image (any range; clipped to [0, 1]) -> uint8.

    "nearest": round(255 x) (half to even), as tools/predict.py and most official test scripts.
    "half_up": MIMO-UNet's official convention: clip, + 0.5/255, x255, truncate (torchvision's to_pil_image).
    """
    x = np.asarray(img)
    x = np.clip(x if x.dtype == np.float64 else x.astype(np.float32), 0.0, 1.0)
    if rounding == "nearest":
        return np.rint(x * 255.0).astype(np.uint8)
    if rounding == "half_up":
        return np.clip(np.floor((x + 0.5 / 255.0) * 255.0), 0, 255).astype(np.uint8)
    raise ValueError(f"rounding must be one of {', '.join(ROUNDINGS)}, got {rounding!r}")


def uint8_levels(img: np.ndarray) -> np.ndarray:
    """``round(x * 255) / 255`` (half to even) in the input's own float type: the levels an 8-bit PNG of the
    clipped image holds, kept as floats (what `ppir.metrics` scores with round_uint8)."""
    return np.round(img * 255.0) / 255.0
