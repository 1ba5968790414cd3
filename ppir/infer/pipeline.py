"""Pre- and post-processing shared by every way of running a network on an image.

Networks need H and W to be multiples of a number (HINet 16, MIMO-UNet and MIRNet 4) and sometimes a
minimum size; instead of resizing, the image is reflect-padded up to that and the output cropped back,
so the result has the input's exact size.
"""
from __future__ import annotations

import math

import numpy as np


def padded_size(size: int, multiple: int, min_size: int = 0) -> int:
    return max(int(math.ceil(size / multiple)) * multiple, int(math.ceil(min_size / multiple)) * multiple)


def pad_to_multiple(chw: np.ndarray, multiple: int, min_size: int = 0) -> np.ndarray:
    """Reflect-pad a CxHxW (or NxCxHxW) array at the bottom/right up to the network's size constraints."""
    h, w = chw.shape[-2:]
    ph, pw = padded_size(h, multiple, min_size) - h, padded_size(w, multiple, min_size) - w
    if ph == 0 and pw == 0:
        return chw
    widths = [(0, 0)] * (chw.ndim - 2) + [(0, ph), (0, pw)]
    mode = "reflect" if min(h, w) > 1 else "edge"  # reflection needs at least two pixels
    return np.pad(chw, widths, mode=mode)


def preprocess(img_rgb: np.ndarray, multiple: int = 1, min_size: int = 0) -> np.ndarray:
    """HxWx3 RGB float in [0, 1] -> 1x3xH'xW' float32, padded for the network."""
    chw = np.ascontiguousarray(img_rgb.transpose(2, 0, 1), dtype=np.float32)
    return pad_to_multiple(chw, multiple, min_size)[None]


def postprocess(nchw: np.ndarray, height: int, width: int) -> np.ndarray:
    """1x3xH'xW' network output -> HxWx3 RGB float32 in [0, 1], cropped back to the input size."""
    out = np.asarray(nchw)[0, :, :height, :width]
    return np.clip(out.transpose(1, 2, 0), 0.0, 1.0).astype(np.float32)


def final_output(outputs):
    """The restored image among a network's outputs: HINet's stage 2, MIMO-UNet's full scale (the last)."""
    return outputs[-1] if isinstance(outputs, (list, tuple)) else outputs
